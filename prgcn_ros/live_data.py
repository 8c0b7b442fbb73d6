"""The live path's plain data, without torch or rclpy: the pipeline's and the node's
parameters, input frames, results, drop reasons, the identity rule, the statistics helpers and
the rules that turn /diagnostics WARN.

The recognizer node's conversions and the ROS-free pipeline (:mod:`prgcn_ros.ingestion`,
:mod:`prgcn_ros.recognition`) share these types; importing this module costs numpy only.
"""
from __future__ import annotations

import itertools
import math
import os
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from prgcn_ros.skeleton.labels import UNKNOWN_LABEL  # noqa: F401 - re-exported
from prgcn_ros.skeleton.layouts import LAYOUTS, TWO_D_LAYOUTS  # noqa: F401 - re-exported

if TYPE_CHECKING:
    import torch

# Why each dropped input was dropped; the keys appear in /diagnostics as dropped_<key>.
DROP_REASONS: dict[str, str] = {
    "unknown_layout": "the message's layout is not a known skeleton layout",
    "no_mapping": "no joint mapping from the message's layout to the model's",
    "wrong_joint_count": "a skeleton's joint count does not match its layout",
    "non_finite": "NaN or inf in a skeleton's confidences or in the coordinates of a joint "
                  "of confidence above 0 (as float32)",
    "implausible_coordinates": "a joint of confidence above 0 farther from the sensor than "
                               "any sensor sees (100 m for 3D layouts, whose input is in "
                               "metres: the Azure Kinect SDK's millimetres must be divided by "
                               "1000; 100,000 px for image keypoints)",
    "no_confidence": "a skeleton with no joint of confidence above 0 that the model's "
                     "layout has",
    "duplicate_id": "skeletons sharing one id in one message (every one of them is dropped)",
    "too_many_people": "a message with more than max_people skeletons, or a new person while "
                       "max_people are tracked",
    "stamp_out_of_range": "a header stamp before 0 or past the last second a ROS time holds "
                          "(2**31 - 1 s, once nanosec is carried into seconds)",
    "stamp_backwards": "a message stamped earlier than the previous one from its source",
    "stamp_repeated": "a message stamped the same as the previous one from its source",
    "stamp_outlier": "a lone message whose stamp jumped from its source's timeline (ahead by "
                     "more than stamp_tolerance_s, ahead of both the timeline and the source's "
                     "stamp step by more than 0.05 s, or back by more than track_timeout_s); "
                     "a jump the next message confirms moves the timeline instead",
    "flood": "messages closer in time than 1/max_input_hz from one source",
    "foreign_marker_id": "MarkerArray markers whose id is not body_id*100 + joint 0..31, that "
                         "are not spheres (labels, lines), or that repeat a joint or differ in "
                         "stamp or frame_id from the first",
    "no_transform": "a 3D message whose frame_id tf2 cannot (yet) transform into gravity_frame",
    "internal_error": "a message whose handling raised an unexpected error (a bug: please "
                      "report it with the logged traceback)",
}

# What ingestion adjusts in a message it keeps (counted, logged once, the message taken).
NOTICES: dict[str, str] = {
    "confidences_clipped": "joint confidences above 1 (read as 1; a driver that sends levels, "
                          "such as the Azure Kinect's 0-3, should scale them to 0-1)",
    "ids_out_of_range": "skeleton ids above 2**31 - 1 (tracked as unknown ids: their person_id "
                        "is the tracker's, not the driver's)",
    "no_frame_id": "skeleton messages with an empty header.frame_id (recognised, but their "
                   "refined poses and markers name no frame, so tf2 and RViz cannot place "
                   "them: set the driver's frame id)",
    "clock_resets": "a source whose stamps jumped and went on from there (a bag played again, a "
                    "driver restarted, a clock set, or a first message stamped far off): its "
                    "timeline moved, and back in time or ahead by more than track_timeout_s its "
                    "people started over",
}


# Input axis conventions preprocessing knows: Kinect v1/v2, MSR, NTU are y up; optical camera
# frames (the Azure Kinect driver's depth_camera_link) and image keypoints are y down.
AXES = ("y_up", "y_down")

# No depth sensor sees a person 100 m away, no camera has 100,000 pixels a side: beyond these a
# coordinate is a driver's garbage, and one such joint would skew a person's normalisation
# (centre, scale) for a whole window.
COORDINATE_BOUND_3D_M = 100.0
COORDINATE_BOUND_2D_PX = 100_000.0

# Identity rule: a person is (input, source, id), a source being one publisher's (frame_id,
# layout) on one input. Sources are numbered in the order they are first seen (0, 1, ...);
# the published person_id is source_number * ID_SPAN + id, so the first source keeps its
# drivers' ids and no two sources can share one. Driver ids outside 0..ID_SPAN-1 are treated
# as unknown (the tracker assigns one).
ID_SPAN = 2**31

DEFAULT_MODEL = "models/prgcn_msr_action3d.safetensors"

# /action's label for a person whose calibrated top confidence is below min_confidence (the
# top-k classes are still listed) is UNKNOWN_LABEL; class_index is then UNKNOWN_CLASS_INDEX.
UNKNOWN_CLASS_INDEX = -1

# Action.partner_id of a person recognised alone (a model of one person per sample, or nobody
# within pair_gate).
NO_PARTNER = -1


# The network backends (prgcn_ros.model.backends.BACKENDS; repeated here to stay torch-free).
BACKENDS = ("auto", "torch", "onnxruntime")


def default_threads() -> int:
    """Leave a core to ingestion and DDS: on a 2-core robot inference gets one thread."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, cores - 1)


def source_number(person_id: int) -> int:
    """The number of the source a published person_id belongs to (the identity rule)."""
    return int(person_id) // ID_SPAN


def local_id(person_id: int) -> int:
    """The id a published person_id had within its source (the driver's or the tracker's)."""
    return int(person_id) % ID_SPAN


def clip_text(text: str, limit: int = 80) -> str:
    """A string from the input as it may appear in a log line: at most ``limit`` characters."""
    text = str(text)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


class ParameterError(ValueError):
    """Invalid or unknown recognizer parameters; the message lists every problem."""


# ---------------------------------------------------------------------------- parameters
@dataclass(frozen=True)
class ParamSpec:
    """What a parameter means and the range the node declares for it."""

    description: str
    low: float | None = None
    high: float | None = None
    live: bool = False          # applied on `ros2 param set`; others are read-only


# Descriptions and ranges of the pipeline's parameters (the node declares these).
PARAMETER_SPECS: dict[str, ParamSpec] = {
    "model": ParamSpec("model file (.safetensors + .json metadata); relative: from the working "
                       "directory, else the package's share directory"),
    "device": ParamSpec("auto (cuda when present), cpu, cuda or cuda:N"),
    "window": ParamSpec("frames of history kept per person, resampled to the model's window",
                        1, 100_000),
    "min_frames": ParamSpec("frames a person needs before a first label", 1, 100_000),
    "max_rate_hz": ParamSpec("each person is recognised at most this many times a second",
                             1e-3, 1e9),
    "max_batch": ParamSpec("samples per forward pass, a pair of a two-person model being one "
                           "(0: 4 on a CPU, everyone on a GPU)",
                           0, 100_000),
    "max_people": ParamSpec("people tracked at once over all inputs; a message with more "
                            "skeletons is dropped (bounds memory for crowds)", 1, 100_000),
    "input_layout": ParamSpec("read every SkeletonArray as this layout; empty: each message's"),
    "axis": ParamSpec("axis convention of the skeleton input: y_up, y_down; empty: azure32 "
                      "y_down (the SDK's camera frame), others the model's"),
    "azure_axis": ParamSpec("axis convention of the Azure Kinect input: y_up or y_down"),
    "track_timeout_s": ParamSpec("a person unseen this long is dropped (node clock: sim time "
                                 "under use_sim_time)", 1e-3, 1e6),
    "track_gate": ParamSpec("association distance for people without ids (0: 0.5 m for 3D, "
                            "80 px for 2D, 0.05 for 2D normalised to the image size)", 0.0,
                            1e9),
    "stamp_tolerance_s": ParamSpec("how far a message's stamp may run ahead of its source's "
                                   "timeline (the fastest delivery seen)", 1e-3, 1e6),
    "pair_gate": ParamSpec("models of two-person samples (max_persons 2): people of one source "
                           "whose mean joint positions are this close are recognised as a pair "
                           "(metres; pixels for 2D layouts; 0: 2 m for 3D, 400 px for 2D, 0.25 for "
                           "2D normalised to the image size); a "
                           "pair parts when one leaves or they are 1.25 x the gate apart",
                           0.0, 1e9),
    "top_k": ParamSpec("classes listed per person on the action topic", 1, 10_000, live=True),
    "smoothing": ParamSpec("average the class scores of a person's last N inferences (1: off)",
                           1, 1000, live=True),
    "min_confidence": ParamSpec("below this calibrated top confidence (the temperature in the "
                                "model's metadata) /action says 'unknown' and still lists the "
                                "top-k; 0: off", 0.0, 1.0, live=True),
    "max_input_hz": ParamSpec("messages from one source closer in time than 1/max_input_hz "
                              "are dropped as a flood", 1e-3, 1e9),
    "backend": ParamSpec("network backend: auto (onnxruntime on a CPU when installed, torch "
                         "on CUDA), torch or onnxruntime"),
    "threads": ParamSpec("inference threads of either backend (0: all cores but one)", 0, 1024),
    "backend_cache_dir": ParamSpec("where the onnxruntime backend caches the model's ONNX graph; "
                                   "empty: beside the model file, else the user's cache"),
    "torch_threads": ParamSpec("deprecated, use threads (still honoured when threads is 0)",
                               0, 1024),
    "latency_window_s": ParamSpec("seconds of samples the latency percentiles cover (what is "
                                  "happening now, not an old burst)", 0.1, 3600.0),
}


@dataclass
class RecognizerParams:
    """The pipeline's parameters (config/recognizer.yaml documents each); the node's own
    (topics, QoS, diagnostics) live with the node."""

    model: str = DEFAULT_MODEL
    device: str = "auto"
    window: int = 96
    min_frames: int = 10
    max_rate_hz: float = 60.0
    max_batch: int = 0
    max_people: int = 50
    input_layout: str = ""
    axis: str = ""
    azure_axis: str = "y_down"
    track_timeout_s: float = 1.0
    track_gate: float = 0.0
    stamp_tolerance_s: float = 0.3
    pair_gate: float = 0.0
    top_k: int = 5
    smoothing: int = 3
    min_confidence: float = 0.0
    max_input_hz: float = 120.0
    backend: str = "auto"
    threads: int = 0
    backend_cache_dir: str = ""
    torch_threads: int = 0          # deprecated name of threads
    latency_window_s: float = 10.0

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> RecognizerParams:
        """Typed, range-checked parameters; unknown names and bad values raise ParameterError."""
        kwargs, problems = coerce_values(cls, values)
        params = cls(**kwargs)
        problems += params.problems()
        if problems:
            raise ParameterError("invalid recognizer parameters: " + "; ".join(problems)
                                 + f" (known parameters: {', '.join(cls.names())})")
        return params

    def problems(self) -> list[str]:
        from prgcn_ros.model.backends import device_problem  # torch: only when validating

        out = []
        if device_problem(self.device):   # the message quotes a clipped value
            out.append(str(device_problem(clip_text(self.device))))
        out += range_problems(self, PARAMETER_SPECS)
        if not 1 <= self.min_frames <= max(self.window, 1):
            out.append(f"min_frames must be between 1 and window ({self.window}), "
                       f"got {self.min_frames!r}")
        if self.input_layout and self.input_layout not in LAYOUTS:
            out.append(f"input_layout {clip_text(self.input_layout)!r} is not a known layout "
                       f"({', '.join(sorted(LAYOUTS))}; empty: use each message's layout)")
        if self.axis not in ("", *AXES):
            out.append(f"axis must be y_up, y_down or empty (the model's), "
                       f"got {clip_text(self.axis)!r}")
        if self.azure_axis not in AXES:
            out.append(f"azure_axis must be y_up or y_down, got {clip_text(self.azure_axis)!r}")
        if not self.model:
            out.append("model must name a model file")
        if self.backend not in BACKENDS:
            out.append(f"backend must be {', '.join(BACKENDS)}, got {clip_text(self.backend)!r}")
        return out

    def effective_threads(self) -> int:
        """threads; else the deprecated torch_threads; else all cores but one."""
        return self.threads or self.torch_threads or default_threads()

    def model_path(self) -> Path:
        """A shipped model's name, or a path (absolute; relative: from the cwd, else the share
        directory); ModelFileError listing the shipped names when neither exists."""
        from prgcn_ros.model.io import resolve_model  # torch: only where a model is loaded
        return resolve_model(self.model)

    def torch_device(self) -> torch.device:
        """The torch device (imports torch: only the pipeline needs it)."""
        from prgcn_ros.model.backends import resolve_device

        try:
            return resolve_device(self.device)
        except ValueError as exc:
            raise ParameterError(str(exc)) from None


def coerce_values(cls: type, values: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The values of a parameter dataclass, typed like its defaults; problems for the rest."""
    problems: list[str] = []
    known = {f.name: f for f in fields(cls)}
    kwargs = {}
    for name, value in values.items():
        if name not in known:
            problems.append(f"unknown parameter {clip_text(name)!r}")
            continue
        default = known[name].default
        try:
            kwargs[name] = coerce(value, type(default))
        except TypeError:
            problems.append(f"{name} must be {type(default).__name__}, got "
                            f"{type(value).__name__} {clip_text(repr(value))}")
    return kwargs, problems


def range_problems(params: Any, specs: Mapping[str, ParamSpec]) -> list[str]:
    """Each numeric parameter outside its declared range (or not finite), as a sentence."""
    out = []
    for name, spec in specs.items():
        value = getattr(params, name, None)
        if spec.low is None or not isinstance(value, int | float) or isinstance(value, bool):
            continue
        if not (math.isfinite(value) and spec.low <= value <= spec.high):
            out.append(f"{name} must be between {spec.low:g} and {spec.high:g}, got {value!r}")
    return out


def coerce(value: Any, kind: type) -> Any:
    # ROS hands YAML integers to float parameters as int; bool is an int subclass: refuse it.
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind in (str, bool) and isinstance(value, kind):
        return value
    raise TypeError


OUTPUT_TOPICS = ("action_topic", "refined_topic", "markers_topic")


@dataclass
class NodeParams:
    """The node's own parameters: topics, QoS, diagnostics (the pipeline never sees them).
    Topic names are relative, so a namespace (-r __ns:=/robot2) moves them."""

    skeleton_topic: str = "skeletons"
    azure_kinect: bool = False
    azure_topic: str = "body_tracking_data"
    action_topic: str = "action"
    refined_topic: str = "refined_poses"
    markers_topic: str = "refined_poses/markers"
    input_reliability: str = "best_effort"
    input_depth: int = 100
    diagnostics_period_s: float = 1.0
    latency_budget_ms: float = 100.0
    # Gravity (prgcn_ros/nodes/gravity.py): rotate 3D input into the model's y-up convention.
    input_frame_convention: str = ""
    camera_tilt_deg: float = 0.0
    gravity_frame: str = ""
    azure_tilt_deg: float = 0.0

    def problems(self) -> list[str]:
        out = range_problems(self, NODE_PARAMETER_SPECS)
        if self.input_reliability not in ("best_effort", "reliable"):
            out.append(f"input_reliability must be best_effort or reliable, got "
                       f"{clip_text(self.input_reliability)!r}")
        for name in OUTPUT_TOPICS:
            if not getattr(self, name):
                out.append(f"{name} must not be empty")
        if self.azure_kinect and not self.azure_topic:
            out.append("azure_topic must not be empty when azure_kinect is true")
        if not self.skeleton_topic and not self.azure_kinect:
            out.append("no input: skeleton_topic is empty and azure_kinect is false")
        return out

    def topics_in_use(self) -> dict[str, str]:
        """Topic parameter -> topic, for every topic the node subscribes or publishes to."""
        names = ["skeleton_topic", *OUTPUT_TOPICS, *(["azure_topic"] if self.azure_kinect else [])]
        return {name: getattr(self, name) for name in names if getattr(self, name)}


NODE_PARAMETER_SPECS: dict[str, ParamSpec] = {
    "skeleton_topic": ParamSpec("prgcn_msgs/SkeletonArray input (relative: in the node's "
                                "namespace); empty: off"),
    "azure_kinect": ParamSpec("subscribe to the Azure Kinect ROS driver's body tracking"),
    "azure_topic": ParamSpec("Azure Kinect body tracking MarkerArray input"),
    "action_topic": ParamSpec("prgcn_msgs/ActionArray output"),
    "refined_topic": ParamSpec("prgcn_msgs/RefinedSkeletonArray output"),
    "markers_topic": ParamSpec("visualization_msgs/MarkerArray output for RViz"),
    "input_reliability": ParamSpec("QoS reliability of the inputs: best_effort (sensor data) "
                                   "or reliable (large messages, e.g. crowds)"),
    "input_depth": ParamSpec("QoS history depth of the inputs", 1, 100_000),
    "diagnostics_period_s": ParamSpec("seconds between /diagnostics messages", 1e-3, 3600.0),
    "latency_budget_ms": ParamSpec("/diagnostics turns WARN while the p99 latency of the "
                                   "last seconds is above this plus the wait max_rate_hz sets "
                                   "(its period less the input's frame interval), or a due "
                                   "person's frame has waited longer than this for a pass",
                                   0.0, 1e9, live=True),
    "input_frame_convention": ParamSpec("the 3D input's axes: empty (the axis parameter "
                                        "decides), y_up, y_down (optical frames) or z_up "
                                        "(REP-103 base_link, odom)"),
    "camera_tilt_deg": ParamSpec("a fixed camera pitch to undo, degrees, positive looking down",
                                 -90.0, 90.0),
    "gravity_frame": ParamSpec("a gravity-aligned frame (e.g. base_link): each input frame is "
                               "rotated into it with tf2 (robots only)"),
    "azure_tilt_deg": ParamSpec("the Azure Kinect's fixed camera pitch to undo, degrees, "
                                "positive looking down", -90.0, 90.0),
}
ALL_SPECS: dict[str, ParamSpec] = {**PARAMETER_SPECS, **NODE_PARAMETER_SPECS}


def parameter_names() -> list[str]:
    """Every parameter the node declares (besides rclpy's own)."""
    return RecognizerParams.names() + [f.name for f in fields(NodeParams)]


def parse_parameters(values: dict) -> tuple[RecognizerParams, NodeParams, list[str]]:
    """The pipeline's and the node's parameters from name -> value; unknown names are
    returned (warned about, not fatal); invalid values raise ParameterError naming each."""
    node_names = {f.name for f in fields(NodeParams)}
    core_names = set(RecognizerParams.names())
    unknown = sorted(n for n in values if n not in node_names | core_names)
    core, problems = coerce_values(RecognizerParams,
                                   {k: v for k, v in values.items() if k in core_names})
    node_kwargs, node_problems = coerce_values(
        NodeParams, {k: v for k, v in values.items() if k in node_names})
    problems += node_problems
    params = RecognizerParams(**core)
    node = NodeParams(**node_kwargs)
    problems += params.problems() + node.problems()
    if problems:
        raise ParameterError("invalid recognizer parameters: " + "; ".join(problems))
    return params, node, unknown


# ---------------------------------------------------------------------------- data
# InputFrame.source of the Azure Kinect driver's body-tracking markers (its own axis settings).
AZURE_SOURCE = "azure_kinect"


@dataclass
class InputFrame:
    """One input message: every skeleton seen at one instant, as plain arrays.

    coords: per skeleton (V, 3) (2D layouts: z ignored); confidence: per skeleton (V,).
    ids: per skeleton the driver's id, -1 when unknown. ``source`` names the input (the node
    uses "skeletons" and AZURE_SOURCE); with ``frame_id``, ``layout`` and ``publisher`` it
    names the sensor.
    ``arrival``: monotonic seconds (latency, rates); ``clock_s``: the node's clock in seconds
    (track time-outs, stamp checks; sim time under use_sim_time), None: ``arrival``.
    ``stamped``: False when the message carried no stamp and the node stamped it on arrival
    (then only floods are checked, by ``sent_s`` where the middleware gives the send time, else
    by the arrival: messages taken in a burst were not sent in one). ``dropped`` counts bad
    parts the conversion already removed (reason -> count).
    """

    stamp_ns: int
    frame_id: str
    layout: str
    ids: list[int]
    coords: list[np.ndarray]
    confidence: list[np.ndarray]
    source: str = "skeletons"
    arrival: float = field(default_factory=time.monotonic)
    dropped: dict[str, int] = field(default_factory=dict)
    clock_s: float | None = None
    stamped: bool = True
    publisher: bytes = b""     # the publisher's GID where the middleware says (else empty)
    sent_s: float | None = None   # unstamped messages: the middleware's send time, if given

    @property
    def clock(self) -> float:
        return self.arrival if self.clock_s is None else self.clock_s


@dataclass
class PersonResult:
    person_id: int
    class_index: int
    label: str
    confidence: float
    top_labels: list[str]
    top_scores: list[float]
    window_start_ns: int
    window_end_ns: int
    num_frames: int
    refined: np.ndarray            # (V, D) newest frame the model saw, input's frame and units
    offsets: np.ndarray            # (V, D) refined - input
    joint_confidence: np.ndarray   # (V,)
    probabilities: np.ndarray      # (classes,) after smoothing
    axis: str = "y_up"             # the input's axis convention (y_down: optical, image)
    frame_id: str = ""             # the person's own sensor frame
    source: str = "skeletons"      # the input it came from (InputFrame.source)
    up: np.ndarray | None = None   # (3,) the model's up in that frame, for input rotated in
    partner_id: int = NO_PARTNER   # the other person of a two-person sample
    track: int = -1                # the recognizer's internal track key (never reused)
    refined_stamp_ns: int = 0      # the input frame `refined` is (0: window_end_ns)

    @property
    def refined_at_ns(self) -> int:
        """The stamp of the input frame ``refined`` is."""
        return self.refined_stamp_ns or self.window_end_ns


@dataclass
class InferenceResult:
    stamp_ns: int                  # newest input frame used
    frame_id: str                  # that frame's frame_id (see by_frame() for every person's)
    layout: str                    # the model's layout (refined skeletons)
    people: list[PersonResult]
    arrivals: list[float]          # monotonic arrivals of the person-frames used for the first time
    forward_s: float

    @classmethod
    def of(cls, people: list[PersonResult], layout: str, arrivals: list[float],
           forward_s: float) -> InferenceResult:
        """The result for ``people`` (at least one), stamped with the newest frame among
        theirs and that frame's frame_id."""
        newest = max(people, key=lambda p: p.window_end_ns)
        return cls(stamp_ns=newest.window_end_ns, frame_id=newest.frame_id, layout=layout,
                   people=people, arrivals=arrivals, forward_s=forward_s)

    def only(self, tracks: set[int]) -> InferenceResult | None:
        """The result for the people of those tracks alone, stamped with their newest frame
        (None: none). The arrivals stay: latency counts every frame the pass used."""
        people = [p for p in self.people if p.track in tracks]
        if len(people) == len(self.people):
            return self
        if not people:
            return None
        return InferenceResult.of(people, self.layout, self.arrivals, self.forward_s)

    def by_frame(self) -> list[InferenceResult]:
        """One result per frame_id, each stamped with its own people's newest frame: every
        output message then carries the frame its people were seen in."""
        groups: dict[str, list[PersonResult]] = {}
        for person in self.people:
            groups.setdefault(person.frame_id, []).append(person)
        if len(groups) <= 1:
            return [self]
        return [InferenceResult.of(people, self.layout, self.arrivals if k == 0 else [],
                                   self.forward_s)
                for k, people in enumerate(groups.values())]


# ---------------------------------------------------------------------------- statistics
class RateMeter:
    """Events per second over the last few seconds. Thread-safe: ingestion ticks it while
    diagnostics read it."""

    def __init__(self, horizon_s: float = 5.0) -> None:
        self.horizon_s = horizon_s
        self._times: deque[float] = deque()
        self._lock = threading.Lock()
        self._first: float | None = None     # the first tick: a younger meter sees less

    def tick(self, now: float, count: int = 1) -> None:
        with self._lock:
            if self._first is None:
                self._first = now
            for _ in range(count):
                self._times.append(now)
            self._trim(now)

    def rate(self, now: float) -> float:
        with self._lock:
            self._trim(now)
            times = self._times
            young = self._first is not None and now - self._first < self.horizon_s
            if young and len(times) >= 2 and times[-1] > times[0]:
                # Over the span seen so far, not the whole horizon, which a young meter has
                # not seen yet: the events before the newest instant, over the time from the
                # first to it, or to now less one interval once no event has come for longer
                # (input that stops: the rate falls, not held at the last pace).
                newest = sum(1 for _ in itertools.takewhile(lambda t: t == times[-1],
                                                            reversed(times)))
                events = len(times) - newest
                interval = (times[-1] - times[0]) / events
                return events / (max(times[-1], now - interval) - times[0])
            return len(times) / self.horizon_s

    def _trim(self, now: float) -> None:
        while self._times and self._times[0] < now - self.horizon_s:
            self._times.popleft()


class Percentiles:
    """Samples of the last ``horizon_s`` seconds (at most ``size``), for p50/p99 of what is
    happening now rather than of a history of any age. Thread-safe: the inference thread adds
    while diagnostics read."""

    def __init__(self, horizon_s: float = 10.0, size: int = 20_000) -> None:
        self.horizon_s = horizon_s
        self._samples: deque[tuple[float, float]] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, values: Iterable[float], now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._samples.extend((now, v) for v in values)

    def get(self, q: float, now: float | None = None) -> float:
        with self._lock:
            self._trim(time.monotonic() if now is None else now)
            values = [v for _, v in self._samples]
        return float(np.percentile(values, q)) if values else 0.0

    def count(self, now: float | None = None) -> int:
        with self._lock:
            self._trim(time.monotonic() if now is None else now)
            return len(self._samples)

    def __len__(self) -> int:
        return len(self._samples)

    def _trim(self, now: float) -> None:
        while self._samples and self._samples[0][0] < now - self.horizon_s:
            self._samples.popleft()


class DiagnosticsWarnings:
    """The WARN lines of /diagnostics from the recognizer's stats: each counter by its growth
    since the last call, the latency and the people waiting against the budget."""

    def __init__(self) -> None:
        self._last: dict[str, int] = {}     # counters at the last call

    def _grown(self, stats: Mapping[str, Any], key: str) -> int:
        grown = stats[key] - self._last.get(key, 0)
        self._last[key] = stats[key]
        return grown

    def __call__(self, stats: Mapping[str, Any], period_s: float, budget_ms: float,
                 max_rate_hz: float) -> list[str]:
        warn = []
        failed = self._grown(stats, "inference_errors")
        if failed:
            warn.append(f"{failed} inference passes failed in the last {period_s:g} s (see "
                        f"the log)")
        suppressed = self._grown(stats, "outputs_suppressed")
        if suppressed:
            warn.append(f"{suppressed} outputs suppressed in the last {period_s:g} s (the "
                        f"model gave non-finite values)")
        dropped = self._grown(stats, "dropped_total")
        if dropped:
            warn.append(f"{dropped} inputs dropped in the last {period_s:g} s")
        if stats["publishers_incompatible"]:
            warn.append(f"{stats['publishers_incompatible']} input publishers whose QoS cannot "
                        f"reach this node (best effort; input_reliability is reliable)")
        lost = self._grown(stats, "messages_lost")
        if lost:
            warn.append(f"{lost} input messages lost in transport in the last {period_s:g} s "
                        f"(large messages: input_reliability reliable)")
        # A frame may wait for its person's next pass by setting: up to max_rate_hz's period,
        # less its source's frame interval (input slower than the rate waits for nothing); the
        # busiest source's frames wait longest. Not all sources' rate together: two cameras
        # at 30 Hz give no person a frame every 17 ms.
        rate = stats["source_rate_hz"]
        interval = 1e3 / rate if rate > 0 else 0.0
        rate_wait = max(0.0, 1e3 / max_rate_hz - interval)
        if stats["latency_samples"] and stats["latency_p99_ms"] > budget_ms + rate_wait:
            warn.append(f"latency p99 {stats['latency_p99_ms']:.1f} ms over the {budget_ms:g} "
                        f"ms budget (+ {rate_wait:.3g} ms, max_rate_hz's wait; last "
                        f"{stats['latency_window_s']:g} s)")
        if stats["people_waiting"] and stats["oldest_wait_ms"] > budget_ms:
            # What the latency figures cannot show: frames that never reach an output.
            warn.append(f"{stats['people_waiting']} people waiting for a pass, the oldest "
                        f"frame for {stats['oldest_wait_ms']:.0f} ms (over the {budget_ms:g} "
                        f"ms budget): inference is behind or stuck")
        return warn
