"""prgcn-recognizer: skeleton topics in; action labels, refined poses, RViz markers out.

A thin rclpy wrapper around :class:`prgcn_ros.recognition.Recognizer`. Ingestion (the input
subscriptions, track expiry, diagnostics) and inference run in separate callback groups on a
multi-threaded executor, so receiving a skeleton never waits for a forward pass.

Run: ``prgcn-recognizer --ros-args --params-file config/recognizer.yaml [-p name:=value]``
"""
from __future__ import annotations

import sys
import time

import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup

try:
    from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
except ImportError:   # Humble: the same classes, under their old module name
    from rclpy.qos_event import PublisherEventCallbacks, SubscriptionEventCallbacks
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray

from prgcn_msgs.msg import ActionArray, RefinedSkeletonArray, SkeletonArray
from prgcn_ros.nodes import conversions
from prgcn_ros.nodes.gravity import PARAMETERS as GRAVITY_PARAMETERS
from prgcn_ros.nodes.gravity import Gravity, GravityError
from prgcn_ros.recognition import (
    DROP_REASONS,
    InferenceResult,
    ParameterError,
    Recognizer,
    RecognizerParams,
    default_torch_threads,
)
from prgcn_ros.skeleton.mapping import has_mapping

NODE_NAME = "prgcn_recognizer"
# Parameters every rclpy node has; not ours to validate.
_BUILTIN_PARAMETERS = {"use_sim_time", "start_type_description_service"}
# Sensor-data QoS (best effort, volatile) with a deeper queue: a short ingestion pause (a busy
# machine) must not lose frames from several people publishing at 30 Hz.
INPUT_QOS = QoSProfile(depth=100, history=qos_profile_sensor_data.history,
                       reliability=qos_profile_sensor_data.reliability,
                       durability=qos_profile_sensor_data.durability)
HOUSEKEEPING_PERIOD_S = 0.1
# Every entity is visited by the executor on every wake-up, in Python: no default QoS-event
# handlers (measured: they cost ingestion a good part of its throughput).
NO_EVENTS_SUB = SubscriptionEventCallbacks(use_default_callbacks=False)
NO_EVENTS_PUB = PublisherEventCallbacks(use_default_callbacks=False)


class StartupError(Exception):
    """Start-up cannot go on (parameters, model file); the message is one line for the user."""


class RecognizerNode(Node):
    def __init__(self) -> None:
        super().__init__(NODE_NAME, automatically_declare_parameters_from_overrides=True)
        self.params = self._read_parameters()
        torch.set_num_threads(self.params.torch_threads or default_torch_threads())
        try:
            self.recognizer = Recognizer.from_params(self.params)
        except ParameterError as error:
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

        ingestion = MutuallyExclusiveCallbackGroup()
        inference = MutuallyExclusiveCallbackGroup()
        p = self.params
        if p.skeleton_topic:
            self.create_subscription(SkeletonArray, p.skeleton_topic, self._on_skeletons,
                                     INPUT_QOS, callback_group=ingestion,
                                     event_callbacks=NO_EVENTS_SUB)
        if p.azure_kinect:
            self.create_subscription(MarkerArray, p.azure_topic, self._on_azure_markers,
                                     INPUT_QOS, callback_group=ingestion,
                                     event_callbacks=NO_EVENTS_SUB)
        def publisher(kind, topic):
            return self.create_publisher(kind, topic, 10, event_callbacks=NO_EVENTS_PUB)
        self.action_pub = publisher(ActionArray, p.action_topic)
        self.refined_pub = publisher(RefinedSkeletonArray, p.refined_topic)
        self.markers_pub = publisher(MarkerArray, p.markers_topic)
        self.diagnostics_pub = publisher(DiagnosticArray, "/diagnostics")
        # Ingestion wakes inference; the guard condition's group runs one forward at a time,
        # and triggers that arrive meanwhile collapse into the next one.
        self._wake = self.create_guard_condition(self._on_wake, callback_group=inference)
        # One timer for track expiry and diagnostics: fewer entities, cheaper wake-ups.
        self.create_timer(HOUSEKEEPING_PERIOD_S, self._on_housekeeping, callback_group=ingestion)
        self._next_diagnostics = time.monotonic() + p.diagnostics_period_s
        self._last_frame_id = ""
        self._last_dropped = 0
        per_pass = (f"at most {rec.max_batch} people" if rec.max_batch
                    else "every person due")
        self.get_logger().info(
            f"model {p.model_path().name}: layout {rec.layout.name}, "
            f"{len(rec.class_names)} classes, window {p.window} frames resampled to "
            f"{rec.window_length}, device {rec.device}, {torch.get_num_threads()} torch "
            f"thread(s), {per_pass} per pass; inputs: {p.skeleton_topic or '-'}"
            + (f", {p.azure_topic} (Azure Kinect)" if p.azure_kinect else ""))

    def _read_parameters(self) -> RecognizerParams:
        given = {name: self.get_parameter(name).value
                 for name in self.list_parameters([], 0).names
                 if name not in _BUILTIN_PARAMETERS and not name.startswith("qos_overrides.")}
        # Gravity (input_frame_convention, camera_tilt_deg, gravity_frame): nodes/gravity.py.
        gravity = {name: given.pop(name) for name in GRAVITY_PARAMETERS if name in given}
        try:
            params = RecognizerParams.from_dict(given)
            self.gravity = Gravity.from_parameters(gravity, node=self)
        except (ParameterError, GravityError) as error:
            raise StartupError(str(error)) from None
        for name, default in GRAVITY_PARAMETERS.items():
            if not self.has_parameter(name):
                self.declare_parameter(name, default)
        if self.gravity.active:   # skeletons arrive rotated into the y-up convention
            params.axis = "y_up"
        # Declare the rest with their defaults, so `ros2 param list/get` shows them all.
        for name in RecognizerParams.names():
            if not self.has_parameter(name):
                self.declare_parameter(name, getattr(params, name))
        return params

    # ------------------------------------------------------------------ ingestion
    def _on_skeletons(self, msg: SkeletonArray) -> None:
        frame = conversions.skeleton_array_to_frame(msg, time.monotonic())
        if self.params.input_layout:
            frame.layout = self.params.input_layout
        frame = self.gravity.to_model(frame)
        if frame is not None:   # None: tf2 has no transform for this frame_id yet
            self._ingest(frame)

    def _on_azure_markers(self, msg: MarkerArray) -> None:
        self._ingest(conversions.azure_markers_to_frame(msg, time.monotonic()))

    def _ingest(self, frame) -> None:
        if frame.stamp_ns == 0:   # unstamped input: stamp it on arrival
            frame.stamp_ns = self.get_clock().now().nanoseconds
        before = self.recognizer.frames
        for reason in self.recognizer.ingest(frame):
            self.get_logger().warning(
                f"dropping input: {DROP_REASONS[reason]} (layout {frame.layout!r}, frame_id "
                f"{frame.frame_id!r}); counted as dropped_{reason} in /diagnostics, "
                f"logged only this once")
        if self.recognizer.frames > before:
            self._wake.trigger()

    def _on_housekeeping(self) -> None:
        now = time.monotonic()
        if now >= self._next_diagnostics:
            self._next_diagnostics = max(self._next_diagnostics + self.params.diagnostics_period_s,
                                         now)
            self._publish_diagnostics()
        gone = self.recognizer.expire(now)
        if gone:
            header = Header(stamp=self.get_clock().now().to_msg(), frame_id=self._last_frame_id)
            self.markers_pub.publish(conversions.delete_markers_msg(gone, header))

    def _publish_diagnostics(self) -> None:
        stats = self.recognizer.stats()
        dropped = stats["dropped_total"] - self._last_dropped
        self._last_dropped = stats["dropped_total"]
        warn = [f"{dropped} inputs dropped in the last {self.params.diagnostics_period_s:g} s"
                ] if dropped else []
        self.diagnostics_pub.publish(conversions.diagnostics_msg(
            self.get_clock().now().to_msg(), f"{NODE_NAME}: recognition", stats, warn))

    # ------------------------------------------------------------------ inference
    def _on_wake(self) -> None:
        wait = self.recognizer.next_due()
        if wait is None:
            return
        if wait > 0:   # each person at most max_rate_hz; this thread only, ingestion goes on
            time.sleep(wait)
        result = self.recognizer.infer()
        # People left waiting (more than max_batch were due): the next pass, without waiting
        # for a new frame to wake it. (A loop here instead made the soak's memory grow.)
        if self.recognizer.next_due() is not None:
            self._wake.trigger()
        if result is None:
            return
        try:
            self._publish_result(result)
        except Exception:
            if self.context.ok():
                raise   # shut down during the pass: nothing to publish to, else a real error

    def _publish_result(self, result: InferenceResult) -> None:
        for person in result.people:   # refined poses in the input's own frame
            person.refined = self.gravity.to_input(person.refined, result.frame_id)
            person.offsets = self.gravity.to_input(person.offsets, result.frame_id)
        self.action_pub.publish(conversions.action_array_msg(result))
        self.recognizer.mark_published(result)
        self._last_frame_id = result.frame_id
        # Nobody listening: skip building the bigger messages.
        if self.refined_pub.get_subscription_count():
            self.refined_pub.publish(conversions.refined_array_msg(result))
        if self.markers_pub.get_subscription_count():
            self.markers_pub.publish(conversions.markers_msg(
                result, lifetime_s=2 * self.params.track_timeout_s))


USAGE = """usage: prgcn-recognizer [--help] --ros-args --params-file config/recognizer.yaml
                        [-p name:=value ...]

Recognises actions live from skeleton topics; the parameters are documented in
config/recognizer.yaml (installed in share/prgcn_ros/config)."""


def main(args: list[str] | None = None) -> int:
    argv = sys.argv if args is None else args
    extra = rclpy.utilities.remove_ros_args(argv)[1:]
    if extra:   # everything else is a ROS argument; --help or a typo
        print(USAGE, file=sys.stdout if extra in (["-h"], ["--help"]) else sys.stderr)
        return 0 if extra in (["-h"], ["--help"]) else 2
    rclpy.init(args=argv)
    try:
        node = RecognizerNode()
    except StartupError as error:
        print(f"prgcn-recognizer: {error}", file=sys.stderr, flush=True)
        rclpy.try_shutdown()
        return 2
    # Two threads: one for ingestion, one for inference (the groups keep each serial).
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
