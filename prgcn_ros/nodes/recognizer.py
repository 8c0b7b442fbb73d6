"""prgcn-recognizer: skeleton topics in; action labels, refined poses, RViz markers out.

A thin rclpy wrapper around :class:`prgcn_ros.recognition.Recognizer`. Ingestion (the input
subscriptions, track expiry, diagnostics) runs on the executor; inference runs on a thread of
its own that ingestion wakes, so receiving a skeleton never waits for a forward pass.

Run: ``prgcn-recognizer --ros-args --params-file config/recognizer.yaml [-p name:=value]``
"""
from __future__ import annotations

import array
import ctypes
import os
import signal
import sys
from contextlib import contextmanager, suppress
from pathlib import Path

from prgcn_ros.signals import STOP_SIGNALS, stops_held

_interrupt_received = False


def _interrupted(signum, frame) -> None:
    # Ctrl-C or SIGTERM (systemd, docker stop, launch) at any moment, start-up included
    # (importing torch, loading the model, exporting its graph, creating the DDS participant):
    # leave quietly with status 0, running every `finally` on the way. A second signal while
    # shutting down must not break into atexit handlers (torch's).
    global _interrupt_received
    _interrupt_received = True
    for stop in STOP_SIGNALS:
        signal.signal(stop, signal.SIG_IGN)
    raise SystemExit(0)


def _handle_stop_signals() -> None:
    for stop in STOP_SIGNALS:
        signal.signal(stop, _interrupted)


# Run as the program: installed before the heavy imports below, so an early signal prints no
# traceback either. (Imported as a library, the host program's handling stays.)
if __name__ == "__main__" or Path(sys.argv[0]).name == "prgcn-recognizer":
    _handle_stop_signals()

import threading  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from dataclasses import fields  # noqa: E402
from typing import Any  # noqa: E402

import rclpy  # noqa: E402
import torch  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rcl_interfaces.msg import (  # noqa: E402
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    SetParametersResult,
)
from rclpy.clock import Clock, ClockType  # noqa: E402

try:
    from rclpy.event_handler import (  # noqa: E402
        PublisherEventCallbacks,
        SubscriptionEventCallbacks,
    )
except ImportError:   # Humble: the same classes, under their old module name
    from rclpy.qos_event import (  # noqa: E402
        PublisherEventCallbacks,
        SubscriptionEventCallbacks,
    )
from rclpy.exceptions import NameValidationException, ParameterException  # noqa: E402
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor  # noqa: E402
from rclpy.expand_topic_name import expand_topic_name  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import (  # noqa: E402
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)
from rclpy.qos_overriding_options import (  # noqa: E402
    InvalidQosOverridesError,
    QoSOverridingOptions,
)
from rclpy.signals import SignalHandlerOptions  # noqa: E402
from rclpy.subscription import Subscription  # noqa: E402
from rclpy.validate_full_topic_name import validate_full_topic_name  # noqa: E402
from rclpy.validate_topic_name import validate_topic_name  # noqa: E402
from visualization_msgs.msg import MarkerArray  # noqa: E402

from prgcn_msgs.msg import ActionArray, RefinedSkeletonArray, SkeletonArray  # noqa: E402
from prgcn_ros.live_data import (  # noqa: E402
    ALL_SPECS,
    DROP_REASONS,
    NOTICES,
    DiagnosticsWarnings,
    NodeParams,
    ParameterError,
    RecognizerParams,
    clip_text,
    parameter_names,
    parse_parameters,
)
from prgcn_ros.nodes import conversions, given_parameters, program_args  # noqa: E402
from prgcn_ros.nodes.gravity import Gravity, GravityError  # noqa: E402
from prgcn_ros.pairing import DEFAULT_GATE_2D_NORMALISED  # noqa: E402
from prgcn_ros.recognition import (  # noqa: E402
    BackendError,
    InferenceResult,
    Recognizer,
)
from prgcn_ros.skeleton.mapping import has_mapping  # noqa: E402

NODE_NAME = "prgcn_recognizer"
# rclpy hands a callback of two arguments the message info (publisher GID) since Iron.
WITH_MESSAGE_INFO = hasattr(Subscription, "CallbackType")
# Parameters every rclpy node has; not ours to validate.
_BUILTIN_PARAMETERS = {"use_sim_time", "start_type_description_service"}
HOUSEKEEPING_PERIOD_S = 0.1
# Failed inference passes in a row that stop the node (a fault that does not go away), the
# pause after each, and how many kinds of error are logged (each once).
MAX_FAILED_PASSES = 50
FAILED_PASS_PAUSE_S = 0.1
MAX_ERROR_KINDS = 16
# Every entity is visited by the executor on every wake-up, in Python: no default QoS-event
# handlers (they cost ingestion throughput; docs/recognizer.md). The inputs keep one:
# messages the middleware lost (best effort, large messages) are counted, not silent.
NO_EVENTS_PUB = PublisherEventCallbacks(use_default_callbacks=False)
# The identity rule in log lines: strings from the input are cut to this length.
LOG_TEXT_LIMIT = 80


def _has_pre_set_callbacks() -> bool:
    return hasattr(Node, "add_pre_set_parameters_callback")   # rclpy 3.7 (Iron) on


def descriptor(name: str, value: Any) -> ParameterDescriptor:
    spec = ALL_SPECS[name]
    # A live float takes a whole number too (`ros2 param set ... min_confidence 0`): turned
    # into the float by a pre-set callback (Iron and later), else typed dynamically (Humble).
    desc = ParameterDescriptor(name=name, description=spec.description,
                               read_only=not spec.live,
                               dynamic_typing=(spec.live and isinstance(value, float)
                                               and not _has_pre_set_callbacks()))
    if spec.low is not None and not isinstance(value, bool):
        if isinstance(value, int):
            desc.integer_range = [IntegerRange(from_value=int(spec.low), to_value=int(spec.high),
                                               step=0)]
        elif isinstance(value, float):
            desc.floating_point_range = [FloatingPointRange(from_value=float(spec.low),
                                                            to_value=float(spec.high), step=0.0)]
    return desc


class StartupError(Exception):
    """Start-up cannot go on (parameters, model file); the message is one line for the user."""


# The longest wait in the input queue believed (a clock step beyond it is not latency).
MAX_QUEUED_S = 60.0


def topic_name_problems(params: NodeParams, node_name: str, namespace: str) -> list[str]:
    """The topics in use that rclpy would refuse when the node subscribes or publishes (with a
    traceback there), each with rclpy's reason."""
    problems = []
    for name, topic in params.topics_in_use().items():
        try:
            validate_topic_name(topic)
            validate_full_topic_name(expand_topic_name(topic, node_name, namespace))
        except NameValidationException as error:   # "Invalid topic name: why:\n  'x'\n  ^"
            reason = str(error).splitlines()[0].split(": ", 1)[-1].rstrip(":")
            problems.append(f"{name} {clip_text(topic, LOG_TEXT_LIMIT)!r} is not a valid topic "
                            f"name ({reason})")
    return problems


class RecognizerNode(Node):
    def __init__(self, argv: list[str] | None = None) -> None:
        """``argv``: the command line rclpy was initialised with, to tell which value of a
        parameter given twice is the last (see :func:`given_parameters`)."""
        super().__init__(NODE_NAME)
        self._argv = argv
        self.params, self.node_params = self._declare_parameters()
        node = self.node_params
        problems = topic_name_problems(node, self.get_name(), self.get_namespace())
        if problems:
            raise StartupError("invalid recognizer parameters: " + "; ".join(problems))
        try:
            self.gravity = Gravity.from_parameters(
                {"input_frame_convention": node.input_frame_convention,
                 "camera_tilt_deg": node.camera_tilt_deg, "gravity_frame": node.gravity_frame,
                 "azure_tilt_deg": node.azure_tilt_deg, "azure_axis": self.params.azure_axis},
                node=self)
        except GravityError as error:
            raise StartupError(str(error)) from None
        if node.azure_tilt_deg and not node.azure_kinect:
            raise StartupError(f"azure_tilt_deg {node.azure_tilt_deg:g} is for the Azure Kinect "
                               f"input, which is off (azure_kinect:=true turns it on)")
        # Rotated input arrives in the y-up convention.
        if self.gravity.active:
            self.params.axis = "y_up"
        if self.gravity.azure_active:
            self.params.azure_axis = "y_up"
        if self.params.torch_threads:
            self.get_logger().warning("parameter torch_threads is deprecated: use threads "
                                      "(one setting for both backends)"
                                      + (", which is set and wins" if self.params.threads
                                         else ""))
        # Preprocessing runs on torch whatever the backend: the same thread count for both.
        torch.set_num_threads(self.params.effective_threads())
        try:
            self.recognizer = Recognizer.from_params(self.params,
                                                     announce=self.get_logger().info)
        except (ParameterError, BackendError) as error:
            raise StartupError(str(error)) from None
        except ValueError as error:   # ModelFileError names the file and the problem
            raise StartupError(str(error)) from None
        rec = self.recognizer
        if self.gravity.active and rec.dims == 2:
            raise StartupError(f"input_frame_convention/gravity_frame rotate 3D skeletons; the "
                               f"model {self.params.model_path()} is 2D ({rec.layout.name!r})")
        if self.params.input_layout and not has_mapping(self.params.input_layout,
                                                        rec.layout.name):
            raise StartupError(f"input_layout {self.params.input_layout!r} cannot be mapped to "
                               f"the layout of model {self.params.model_path()} "
                               f"({rec.layout.name!r})")
        if _has_pre_set_callbacks():
            self.add_pre_set_parameters_callback(self._whole_numbers_as_floats)
        self.add_on_set_parameters_callback(self._on_set_parameters)

        p = self.node_params
        qos = QoSProfile(depth=p.input_depth, history=qos_profile_sensor_data.history,
                         durability=qos_profile_sensor_data.durability,
                         reliability=(ReliabilityPolicy.RELIABLE
                                      if p.input_reliability == "reliable"
                                      else ReliabilityPolicy.BEST_EFFORT))
        self.messages_lost = 0
        events = SubscriptionEventCallbacks(message_lost=self._on_message_lost,
                                            use_default_callbacks=False)
        inputs = []
        self._input_subscriptions = []
        self._incompatible_seen: set[bytes] = set()
        # With the message info (rclpy >= Iron) each publisher is a source of its own. rclpy
        # passes it to callbacks that cannot be called with the message alone.
        if WITH_MESSAGE_INFO:
            def on_skeletons(msg, info):
                self._on_skeletons(msg, info)

            def on_markers(msg, info):
                self._on_azure_markers(msg, info)
        else:
            on_skeletons, on_markers = self._on_skeletons, self._on_azure_markers
        # ROS 2's qos_overrides.<topic>.<publisher|subscription>.<history|depth|reliability>
        # parameters apply over these profiles (read at start-up).
        overridable = QoSOverridingOptions.with_default_policies()
        with _qos_override_problems():
            if p.skeleton_topic:
                sub = self.create_subscription(SkeletonArray, p.skeleton_topic, on_skeletons,
                                               qos, event_callbacks=events,
                                               qos_overriding_options=overridable)
                inputs.append(sub.topic_name)
                self._input_subscriptions.append(sub)
            if p.azure_kinect:
                sub = self.create_subscription(MarkerArray, p.azure_topic, on_markers,
                                               qos, event_callbacks=events,
                                               qos_overriding_options=overridable)
                inputs.append(f"{sub.topic_name} (Azure Kinect)")
                self._input_subscriptions.append(sub)

            def publisher(kind, topic):
                return self.create_publisher(kind, topic, 10, event_callbacks=NO_EVENTS_PUB,
                                             qos_overriding_options=overridable)
            self.action_pub = publisher(ActionArray, p.action_topic)
            self.refined_pub = publisher(RefinedSkeletonArray, p.refined_topic)
            self.markers_pub = publisher(MarkerArray, p.markers_topic)
            # Absolute: diagnostic aggregators listen on /diagnostics whatever the namespace;
            # the status carries the node's full name instead.
            self.diagnostics_pub = publisher(DiagnosticArray, "/diagnostics")
        self.status_name = f"{self.get_fully_qualified_name()}: recognition"
        # One timer for track expiry and diagnostics: fewer entities, cheaper wake-ups. On the
        # steady clock: under use_sim_time with no /clock (yet, or paused) diagnostics go on.
        self._steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(HOUSEKEEPING_PERIOD_S, self._on_housekeeping, clock=self._steady)
        self._next_diagnostics = time.monotonic() + p.diagnostics_period_s
        self._warnings = DiagnosticsWarnings()
        self._suppressed_logged = False
        # Outputs and a departed person's DELETE are published one at a time: no marker of a
        # person can follow their DELETE (it would stay up until its lifetime ran out).
        self._publishing = threading.Lock()
        self._clock_basis, self._clock_last = self._track_clock()
        per_pass = (f"at most {rec.max_batch} samples" if rec.max_batch
                    else "every person due")
        samples = ("one person a sample" if rec.persons == 1 else
                   f"{rec.persons} person slots a sample (pairs within "
                   f"{rec.ingestion.pair_gate:g} {'m' if rec.dims == 3 else 'px'}"
                   + (f", {DEFAULT_GATE_2D_NORMALISED:g} for normalised keypoints"
                      if rec.dims == 2 and not self.params.pair_gate else "") + ")")
        unknown = (f", 'unknown' below {self.params.min_confidence:g}"
                   if self.params.min_confidence else "")
        info = rec.backend_info
        if info.fallback:
            self.get_logger().warning(f"backend auto runs torch: {info.fallback}")
        backend = info.name
        if info.graph is not None:
            backend += (f" ({'cached' if info.reused else 'exported'} graph {info.graph}, "
                        f"max abs difference to torch {info.max_diff:.2g})")
        self.get_logger().info(
            f"model {self.params.model_path().name}: layout {rec.layout.name}, "
            f"{len(rec.class_names)} classes, window {self.params.window} frames resampled to "
            f"{rec.window_length}, {samples}, confidence temperature {rec.temperature:g}"
            f"{unknown}, device {rec.device}, backend {backend}, "
            f"{self.params.effective_threads()} thread(s), {per_pass} per pass; inputs "
            f"({p.input_reliability}): {', '.join(inputs)}")
        self._start_inference()

    # ------------------------------------------------------------------ parameters
    def _declare_parameters(self) -> tuple[RecognizerParams, NodeParams]:
        """Every parameter declared with its description and range; start-up ones read-only.
        Values from the parameter file and -p are validated first, every problem named."""
        overrides = {name: param.value for name, param in self._parameter_overrides.items()
                     if name not in _BUILTIN_PARAMETERS and not name.startswith("qos_overrides.")}
        if self._argv is not None:
            # A value given last whose type differs from an earlier one's: rcl kept the
            # earlier value without a word. The last one is what the user asked for: checked.
            given, unmatched = given_parameters(self._argv, self.get_name(),
                                                self.get_fully_qualified_name())
            for name, (value, _) in given.items():
                if name in overrides and _value_kind(value) != _value_kind(overrides[name]):
                    overrides[name] = value
            for path, keys in unmatched:     # a misspelt node name: none of it applies
                self.get_logger().warning(
                    f"parameter file {clip_text(path, LOG_TEXT_LIMIT)} has no section for "
                    f"this node ({self.get_fully_qualified_name()}; its sections: "
                    f"{clip_text(', '.join(keys), LOG_TEXT_LIMIT)}): none of its values apply "
                    f"(key a section /** or {self.get_name()})")
        try:
            params, node_params, unknown = parse_parameters(overrides)
        except ParameterError as error:
            raise StartupError(str(error)) from None
        if unknown:
            # A launch-wide SetParameter or a typo: said once, not fatal.
            self.get_logger().warning(
                f"ignoring parameters this node does not know: "
                f"{', '.join(clip_text(n, LOG_TEXT_LIMIT) for n in unknown[:20])}"
                + (f" and {len(unknown) - 20} more" if len(unknown) > 20 else "")
                + f" (known: {', '.join(parameter_names())})")
        for holder in (params, node_params):
            for f in fields(holder):
                value = getattr(holder, f.name)
                # The file may give 60 for a float: declare the typed value the check accepted.
                self._parameter_overrides[f.name] = Parameter(f.name, value=value)
                self.declare_parameter(f.name, value, descriptor(f.name, value))
        return params, node_params

    def _whole_numbers_as_floats(self, changes: list[Parameter]) -> list[Parameter]:
        """A float parameter set to a whole number (`ros2 param set ... min_confidence 0` sends
        an integer) is set to that float: its type stays double, as declared."""
        return [Parameter(c.name, Parameter.Type.DOUBLE, float(c.value))
                if c.type_ == Parameter.Type.INTEGER and self.has_parameter(c.name)
                and self.get_parameter(c.name).type_ == Parameter.Type.DOUBLE else c
                for c in changes]

    def _on_set_parameters(self, changes: list[Parameter]) -> SetParametersResult:
        """Live parameters are checked and applied here; the rest are read-only (rclpy
        refuses them with the reason)."""
        values = {}
        for change in changes:
            # rclpy's own: use_sim_time live, qos_overrides.* declared read-only by rclpy as
            # each publisher and subscription is made.
            if change.name in _BUILTIN_PARAMETERS or change.name.startswith("qos_overrides."):
                continue
            spec = ALL_SPECS.get(change.name)
            if spec is None or not spec.live:
                return SetParametersResult(successful=False,
                                           reason=f"{change.name} is read-only")
            values[change.name] = change.value
        if not values:
            return SetParametersResult(successful=True)
        current = {f.name: getattr(self.params, f.name) for f in fields(self.params)}
        current |= {f.name: getattr(self.node_params, f.name) for f in fields(self.node_params)}
        try:
            params, node_params, _ = parse_parameters(current | values)
        except ParameterError as error:
            return SetParametersResult(successful=False, reason=str(error))
        if params.top_k != self.params.top_k:
            self.recognizer.set_top_k(params.top_k)
        if params.smoothing != self.params.smoothing:
            self.recognizer.set_smoothing(params.smoothing)
        if params.min_confidence != self.params.min_confidence:
            self.recognizer.set_min_confidence(params.min_confidence)
        self.node_params.latency_budget_ms = node_params.latency_budget_ms
        return SetParametersResult(successful=True)

    # ------------------------------------------------------------------ clocks
    def _track_clock(self) -> tuple[str, float]:
        """Track time-outs and stamp checks run on the node's clock: sim time once /clock
        ticks (a paused replay keeps its people), else the steady clock."""
        if self.get_clock().ros_time_is_active:
            now = self.get_clock().now().nanoseconds
            if now > 0:
                return "sim", now / 1e9
        return "steady", time.monotonic()

    def _clock_now(self) -> float:
        basis, now = self._track_clock()
        if basis != self._clock_basis:
            # /clock started (or stopped): times on the two bases do not compare.
            self.get_logger().info(f"node clock is now {basis} time: tracks start over")
            self._clock_basis = basis
            self._log_reasons(self.recognizer.ingestion.end_all(),
                              "a message held for its stamp as the node's clock changed")
        elif now < self._clock_last - self.params.track_timeout_s:
            # Sim time went back (a simulation reset, a replay looping with --clock): people
            # seen 'later' than now would not time out before the clock caught up with them.
            self.get_logger().info(f"node clock went back {self._clock_last - now:.1f} s "
                                   f"({basis} time): tracks start over")
            self._log_reasons(self.recognizer.ingestion.end_all(),
                              "a message held for its stamp as the node's clock went back")
        self._clock_last = now
        return now

    # ------------------------------------------------------------------ ingestion
    def _on_skeletons(self, msg: SkeletonArray, info: dict | None = None) -> None:
        try:
            frame = conversions.skeleton_array_to_frame(msg, time.monotonic(),
                                                        max_people=self.params.max_people)
            if self.params.input_layout:
                frame.layout = self.params.input_layout
            self._ingest(frame, info)
        except Exception:
            self._internal_error()

    def _on_azure_markers(self, msg: MarkerArray, info: dict | None = None) -> None:
        try:
            frame = conversions.azure_markers_to_frame(msg, time.monotonic())
            self._ingest(frame, info)
        except Exception:
            self._internal_error()

    def _internal_error(self) -> None:
        """A message whose handling raised what validation did not foresee: one message lost,
        not the node (the traceback once, to report)."""
        if self.recognizer.ingestion.count_drop("internal_error"):
            self.get_logger().error(
                f"dropping input: {DROP_REASONS['internal_error']}; counted as "
                f"dropped_internal_error in /diagnostics, logged only this once:\n"
                f"{traceback.format_exc()}")

    def _on_message_lost(self, info) -> None:
        self.messages_lost += int(info.total_count_change)

    def _incompatible_publishers(self) -> int:
        """Input publishers whose messages cannot reach us: best effort against our reliable
        (the one QoS mismatch our inputs' profile allows). Found in the ROS graph at each
        diagnostics period rather than by a QoS event handler, which would cost every executor
        wake-up. Each is logged once while it stays."""
        if self.node_params.input_reliability != "reliable":
            return 0
        present: set[bytes] = set()
        for sub in self._input_subscriptions:
            for info in self.get_publishers_info_by_topic(sub.topic_name):
                if info.qos_profile.reliability != ReliabilityPolicy.BEST_EFFORT:
                    continue
                gid = bytes(info.endpoint_gid)
                present.add(gid)
                if gid not in self._incompatible_seen:
                    self.get_logger().warning(
                        f"{info.node_namespace.rstrip('/')}/{info.node_name} publishes "
                        f"{sub.topic_name} best effort, and input_reliability is reliable: "
                        f"none of its messages arrive (input_reliability best_effort takes "
                        f"them)")
        self._incompatible_seen = present     # those gone are forgotten: nothing grows
        return len(present)

    def _ingest(self, frame, info: dict | None) -> None:
        frame.clock_s = self._clock_now()
        frame.publisher = conversions.publisher_key(info)
        # Latency counts from the middleware's reception where it says (rclpy >= Iron): time
        # a message waited in the input queue behind a busy node is latency too.
        received = (info or {}).get("received_timestamp")
        if received:
            frame.arrival -= min(max(time.time_ns() - received, 0) / 1e9, MAX_QUEUED_S)
        if frame.stamp_ns == 0:   # unstamped input: stamp it on arrival
            now = self.get_clock().now().nanoseconds
            frame.stamp_ns = now if now > 0 else time.time_ns()
            frame.stamped = False
            sent = (info or {}).get("source_timestamp")
            frame.sent_s = sent / 1e9 if sent else None
        # Turned after stamping: a moving camera's rotation is kept by the frame's stamp.
        frame = self.gravity.to_model(frame)
        before = self.recognizer.frames
        reasons = self.recognizer.ingest(frame)
        if self.gravity.first_missing(frame) and "no_transform" not in reasons:
            reasons.append("no_transform")     # once per frame_id: which camera lacks tf
        self._log_reasons(reasons, f"layout {clip_text(frame.layout, LOG_TEXT_LIMIT)!r}, "
                                   f"frame_id {clip_text(frame.frame_id, LOG_TEXT_LIMIT)!r}")
        if self.recognizer.frames > before:
            self._wake.set()

    def _log_reasons(self, reasons: list[str], where: str) -> None:
        """One line for each drop reason or notice ingestion saw for the first time."""
        for reason in reasons:
            if reason in NOTICES:
                self.get_logger().warning(
                    f"input kept: {NOTICES[reason]} ({where}); counted as {reason} in "
                    f"/diagnostics, logged only this once")
                continue
            self.get_logger().warning(
                f"dropping input: {DROP_REASONS[reason]} ({where}); counted as "
                f"dropped_{reason} in /diagnostics, logged only this once")

    def _on_housekeeping(self) -> None:
        now = time.monotonic()
        if now >= self._next_diagnostics:
            period = self.node_params.diagnostics_period_s
            # On the period's beat; after a stall, a period from now (not at the next tick).
            self._next_diagnostics += period
            if self._next_diagnostics <= now:
                self._next_diagnostics = now + period
            self._publish_diagnostics()
        with self._publishing:
            gone = self.recognizer.expire_people(self._clock_now())
            # Only people who were published have markers; each DELETE in their own frame.
            shown = [(d.person_id, d.frame_id, d.last_stamp_ns) for d in gone if d.labelled]
            if shown:
                self.markers_pub.publish(conversions.delete_markers_msg(shown))

    def _publish_diagnostics(self) -> None:
        stats = self.recognizer.stats()
        stats["messages_lost"] = self.messages_lost
        stats["publishers_incompatible"] = self._incompatible_publishers()
        stats["inference_errors"] = self.inference_errors
        warn = self._warnings(stats, self.node_params.diagnostics_period_s,
                              self.node_params.latency_budget_ms, self.params.max_rate_hz)
        if stats["outputs_suppressed"] and not self._suppressed_logged:
            self._suppressed_logged = True
            self.get_logger().warning(
                "the model gave non-finite values (NaN or inf) for a person: that output is "
                "not published (counted as outputs_suppressed in /diagnostics, logged only "
                "this once)")
        self.diagnostics_pub.publish(conversions.diagnostics_msg(
            self.get_clock().now().to_msg(), self.status_name, stats, warn))

    # ------------------------------------------------------------------ inference
    def _start_inference(self) -> None:
        # A thread of its own rather than an executor callback: a multi-threaded executor
        # re-offers a pending wake-up to a busy callback group, spinning a core while a pass
        # runs (docs/benchmarks.md, "The executor loop").
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.inference_error: BaseException | None = None
        self.inference_errors = 0
        self._inference_errors_seen: set[str] = set()
        self._inference = threading.Thread(target=self._inference_loop, name="inference",
                                           daemon=True)
        self._inference.start()

    def _inference_loop(self) -> None:
        failed_in_a_row = 0
        while not self._stop.is_set():
            try:
                wait = self.recognizer.next_due()
                if wait is None:          # nobody waits: sleep until ingestion has frames
                    self._wake.wait()
                    self._wake.clear()
                elif wait > 0:            # each person at most max_rate_hz; new frames (of
                    self._wake.wait(wait)     # someone due now) end the wait early
                    self._wake.clear()
                else:
                    result = self.recognizer.infer()
                    if result is not None:
                        self._publish_result(result)
                    failed_in_a_row = 0
            except Exception as error:
                if self._stop.is_set() or not self.context.ok():
                    return   # shut down during the pass: nothing to publish to
                # A pass can fail for a while and recover (CUDA out of memory beside another
                # process): the people of the failed pass wait for their next frames.
                failed_in_a_row += 1
                self.inference_errors += 1
                if failed_in_a_row >= MAX_FAILED_PASSES:
                    self.inference_error = error
                    self.get_logger().fatal(
                        f"inference failed {failed_in_a_row} times in a row, last: "
                        f"{type(error).__name__}: {error}")
                    self.context.try_shutdown()   # the executor stops; main() reports it
                    return
                kind = f"{type(error).__name__}: {str(error)[:LOG_TEXT_LIMIT]}"
                seen = self._inference_errors_seen
                if kind not in seen and len(seen) < MAX_ERROR_KINDS:
                    seen.add(kind)
                    self.get_logger().error(
                        f"an inference pass failed, its people are skipped until their next "
                        f"frames (counted as inference_errors in /diagnostics, each kind of "
                        f"error logged once; {MAX_FAILED_PASSES} in a row stop the node):\n"
                        f"{traceback.format_exc()}")
                self._stop.wait(FAILED_PASS_PAUSE_S)

    def inference_running(self) -> bool:
        """Whether the inference thread is still running (a pass in the backend)."""
        return hasattr(self, "_inference") and self._inference.is_alive()

    def destroy_node(self) -> None:
        if hasattr(self, "_inference"):   # (a Ctrl-C during start-up may leave it unstarted)
            self._stop.set()
            self._wake.set()
            if self._inference.is_alive() and threading.current_thread() is not self._inference:
                # Bounded: a pass stuck in the backend must not hold up the exit (daemon).
                self._inference.join(timeout=2.0)
        super().destroy_node()

    def _publish_result(self, result: InferenceResult) -> None:
        with self._publishing:
            # People whose track ended during the pass have had their DELETE: nothing more.
            kept = result.only(self.recognizer.still_tracked(p.track for p in result.people))
            if kept is not None:
                self._publish_outputs(kept)

    def _publish_outputs(self, result: InferenceResult) -> None:
        for person in result.people:   # refined poses back in the input's own frame
            # ... with the rotation their frame came in with (a moving camera's, by tf2)
            where = (person.frame_id, person.source, person.refined_at_ns)
            person.refined = self.gravity.to_input(person.refined, *where)
            person.offsets = self.gravity.to_input(person.offsets, *where)
            if person.refined.shape[-1] == 3:
                person.up = self.gravity.up_in(*where)
        # One message per frame_id: every output carries its people's own frame.
        groups = result.by_frame()
        for group in groups:
            self.action_pub.publish(conversions.action_array_msg(group))
        self.recognizer.mark_published(result)
        # Nobody listening: skip building the bigger messages.
        if self.refined_pub.get_subscription_count():
            for group in groups:
                self.refined_pub.publish(conversions.refined_array_msg(group))
        if self.markers_pub.get_subscription_count():
            lifetime = conversions.marker_lifetime_s(self.params.track_timeout_s,
                                                     self.params.max_rate_hz)
            for group in groups:
                self.markers_pub.publish(conversions.markers_msg(group, lifetime_s=lifetime))


USAGE = """usage: prgcn-recognizer [--help] --ros-args --params-file config/recognizer.yaml
                        [-p name:=value ...]

Recognises actions live from skeleton topics; the parameters are documented in
config/recognizer.yaml (installed in share/prgcn_ros/config)."""


def _value_kind(value: Any) -> str:
    """A parameter value's kind as rcl types it (a number YAML leaves as text, 1e-3, is one)."""
    if isinstance(value, str):
        for number in (int, float):
            with suppress(ValueError):
                return type(number(value)).__name__
    if isinstance(value, list | tuple | array.array):     # rclpy's numeric arrays: array
        return "list"
    return type(value).__name__


@contextmanager
def _qos_override_problems() -> Iterator[None]:
    """A qos_overrides value rclpy cannot apply (a policy it does not know, a depth that is no
    integer) as one line, not a traceback."""
    try:
        yield
    except (InvalidQosOverridesError, ParameterException, RuntimeError, ValueError) as error:
        raise StartupError(f"invalid qos_overrides parameter: {error}") from None


def main(args: list[str] | None = None) -> int:
    argv = sys.argv if args is None else args
    extra = program_args(argv, "prgcn-recognizer")
    if extra:   # everything else is a ROS argument; --help or a typo
        print(USAGE, file=sys.stdout if extra in (["-h"], ["--help"]) else sys.stderr)
        return 0 if extra in (["-h"], ["--help"]) else 2
    _handle_stop_signals()
    # Ours alone: rclpy's handler shuts the context down from a thread of its own, at any
    # moment, even inside the executor's constructor (whose half-built object then prints a
    # traceback). The housekeeping timer wakes the executor, so ours runs within its period.
    rclpy.init(args=argv, signal_handler_options=SignalHandlerOptions.NO)
    node = None
    executor = None
    try:
        try:
            node = RecognizerNode(argv)
        except StartupError as error:
            print(f"prgcn-recognizer: {error}", file=sys.stderr, flush=True)
            return 2
        # The executor runs ingestion; inference has the node's own thread. A stop signal
        # inside its constructor would leave a half-built object that prints a traceback from
        # its __del__: it takes effect once the executor is built.
        with stops_held():
            executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except SystemExit:
        if not _interrupt_received:   # (_interrupted's, status 0; the exit waits below)
            raise
    except RuntimeError:
        # The SystemExit of a Ctrl-C raised inside rclpy's conversion of a message taken on
        # this thread (Python code run from C++) comes out as pybind11's "Unable to convert
        # call argument": still the Ctrl-C. A context shut down (a fatal inference error)
        # between the executor's check and its wait set comes out as RCLError "the given
        # context is not valid".
        if not _interrupt_received and rclpy.ok():
            raise
    finally:
        if node is None and _interrupt_received:
            # Stopped while starting: nothing to publish or keep (a graph export's work folder
            # went on the way out). rclpy's teardown would destroy the node the constructor
            # left half-built, and once (CI, 2026-12-07) that ended in a segmentation fault in
            # a DDS thread; leave without it.
            _leave_now(0)
        if executor is not None:
            executor.shutdown()
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    code = 1 if node is not None and node.inference_error is not None else 0
    if node is not None and node.inference_running():
        # A pass still in the backend after destroy_node's bounded wait: Python's shutdown
        # beside it aborts the process (torch's C++ code cannot take the interpreter back,
        # std::terminate, status -6), so leave without it.
        _leave_now(code)
    return code


def _leave_now(code: int) -> None:
    """Exit at once with ``code``: no Python shutdown, no atexit, no rclpy teardown. What was
    logged is written out first (Python's streams, and C's: rcutils logs through stdio)."""
    sys.stdout.flush()
    sys.stderr.flush()
    with suppress(OSError, AttributeError):
        ctypes.CDLL(None).fflush(None)
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
