"""The live recognition pipeline without ROS: frames in, per-person actions and refined poses out.

The recognizer node is a thin wrapper around :class:`Recognizer`: it converts messages to
:class:`InputFrame`, calls :meth:`Recognizer.ingest` from its ingestion callbacks and
:meth:`Recognizer.infer` from its inference callback (another thread), and publishes what comes
back. Everything here can be driven and tested without a ROS graph.

Clocks: header stamps are carried through untouched (window stamps, the output header); track
time-outs, rates and latencies use the monotonic arrival time, so a sensor whose clock is off
does not make people vanish.
"""
from __future__ import annotations

import math
import os
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from prgcn_ros.model.graph import layout_name
from prgcn_ros.skeleton.layouts import LAYOUTS, get_layout
from prgcn_ros.skeleton.mapping import has_mapping, map_joints
from prgcn_ros.skeleton.preprocess import PreprocessConfig, preprocess, uniform_indices
from prgcn_ros.skeleton.ring_buffer import DeviceRingBuffer
from prgcn_ros.skeleton.tracker import Tracker

# Why each dropped input was dropped; the keys appear in /diagnostics as dropped_<key>.
DROP_REASONS: dict[str, str] = {
    "unknown_layout": "the message's layout is not a known skeleton layout",
    "no_mapping": "no joint mapping from the message's layout to the model's",
    "wrong_joint_count": "a skeleton's joint count does not match its layout",
    "non_finite": "NaN or inf in a skeleton's coordinates or confidences",
    "empty": "a message with no skeletons",
    "no_confidence": "a skeleton whose every joint has confidence 0",
    "stamp_backwards": "a message stamped earlier than the previous one on its input (a jump "
                       "back by more than track_timeout_s restarts the input instead)",
    "stamp_repeated": "a message stamped the same as the previous one on its input",
    "flood": "messages closer in time than 1/max_input_hz on one input",
    "foreign_marker_id": "MarkerArray markers whose id is not body_id*100 + joint 0..31",
}

# Layouts whose coordinates are image keypoints (x, y); the others are 3D sensor joints.
TWO_D_LAYOUTS = frozenset({"coco18", "coco17", "body25"})

# Input axis conventions preprocessing knows: Kinect v1/v2, MSR, NTU are y up; optical camera
# frames (the Azure Kinect driver's depth_camera_link) and image keypoints are y down.
AXES = ("y_up", "y_down")

DEFAULT_MODEL = "models/prgcn_msr_action3d.safetensors"

# People per forward pass on a CPU when max_batch is 0. A pass costs about linearly in people
# there, and a frame waits for the pass under way before its own: capped passes, oldest frames
# first, shorten that wait (README, "How it keeps up"). A GPU's pass costs about the same for
# 1 or 10 people, so there every ready person goes into one pass.
CPU_MAX_BATCH = 4


class ParameterError(ValueError):
    """Invalid or unknown recognizer parameters; the message lists every problem."""


# ---------------------------------------------------------------------------- parameters
@dataclass
class RecognizerParams:
    """The recognizer's parameters (config/recognizer.yaml documents each)."""

    model: str = DEFAULT_MODEL
    device: str = "auto"
    window: int = 96
    min_frames: int = 10
    max_rate_hz: float = 60.0
    max_batch: int = 0
    skeleton_topic: str = "/skeletons"
    azure_kinect: bool = False
    azure_topic: str = "/body_tracking_data"
    action_topic: str = "/action"
    refined_topic: str = "/refined_poses"
    markers_topic: str = "/refined_poses/markers"
    input_layout: str = ""
    axis: str = ""
    azure_axis: str = "y_down"
    track_timeout_s: float = 1.0
    track_gate: float = 0.0
    top_k: int = 5
    smoothing: int = 3
    max_input_hz: float = 120.0
    torch_threads: int = 0
    diagnostics_period_s: float = 1.0

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> RecognizerParams:
        """Typed, range-checked parameters; unknown names and bad values raise ParameterError."""
        problems = []
        known = {f.name: f for f in fields(cls)}
        kwargs = {}
        for name, value in values.items():
            if name not in known:
                problems.append(f"unknown parameter {name!r}")
                continue
            default = known[name].default
            try:
                kwargs[name] = _coerce(value, type(default))
            except TypeError:
                problems.append(f"{name} must be {type(default).__name__}, got "
                                f"{type(value).__name__} {value!r}")
        params = cls(**kwargs)
        problems += params.problems()
        if problems:
            raise ParameterError("invalid recognizer parameters: " + "; ".join(problems)
                                 + f" (known parameters: {', '.join(cls.names())})")
        return params

    def problems(self) -> list[str]:
        out = []
        if self.device != "auto" and self.device != "cpu" and not self.device.startswith("cuda"):
            out.append(f"device must be auto, cpu or cuda[:N], got {self.device!r}")
        checks = [("window", self.window >= 1, "at least 1"),
                  ("min_frames", 1 <= self.min_frames <= max(self.window, 1),
                   f"between 1 and window ({self.window})"),
                  ("max_rate_hz", self.max_rate_hz > 0, "positive"),
                  ("max_batch", self.max_batch >= 0, "0 (automatic) or positive"),
                  ("track_timeout_s", self.track_timeout_s > 0, "positive"),
                  ("track_gate", self.track_gate >= 0, "0 (automatic) or positive"),
                  ("top_k", self.top_k >= 1, "at least 1"),
                  ("smoothing", self.smoothing >= 1, "at least 1 (1 = off)"),
                  ("max_input_hz", self.max_input_hz > 0, "positive"),
                  ("torch_threads", self.torch_threads >= 0, "0 (automatic) or positive"),
                  ("diagnostics_period_s", self.diagnostics_period_s > 0, "positive")]
        for name, ok, what in checks:
            value = getattr(self, name)
            if not ok or (isinstance(value, float) and not math.isfinite(value)):
                out.append(f"{name} must be {what}, got {value!r}")
        if self.input_layout and self.input_layout not in LAYOUTS:
            out.append(f"input_layout {self.input_layout!r} is not a known layout "
                       f"({', '.join(sorted(LAYOUTS))}; empty: use each message's layout)")
        if self.axis not in ("", *AXES):
            out.append(f"axis must be y_up, y_down or empty (the model's), got {self.axis!r}")
        if self.azure_axis not in AXES:
            out.append(f"azure_axis must be y_up or y_down, got {self.azure_axis!r}")
        if not self.model:
            out.append("model must name a model file")
        for name in ("skeleton_topic", "action_topic", "refined_topic", "markers_topic"):
            if name != "skeleton_topic" and not getattr(self, name):
                out.append(f"{name} must not be empty")
        if self.azure_kinect and not self.azure_topic:
            out.append("azure_topic must not be empty when azure_kinect is true")
        if not self.skeleton_topic and not self.azure_kinect:
            out.append("no input: skeleton_topic is empty and azure_kinect is false")
        return out

    def model_path(self) -> Path:
        """A shipped model's name, or a path (absolute; relative: from the cwd, else the share
        directory); ModelFileError listing the shipped names when neither exists."""
        from prgcn_ros.model.io import resolve_model
        return resolve_model(self.model)

    def torch_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ParameterError(f"device {self.device!r}: CUDA is not available here "
                                 f"(use device auto or cpu)")
        return torch.device(self.device)


def _coerce(value: Any, kind: type) -> Any:
    # ROS hands YAML integers to float parameters as int; bool is an int subclass: refuse it.
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind in (str, bool) and isinstance(value, kind):
        return value
    raise TypeError


def default_torch_threads() -> int:
    """Leave a core to ingestion and DDS: on a 2-core robot inference gets one thread."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, cores - 1)


# ---------------------------------------------------------------------------- data
@dataclass
class InputFrame:
    """One input message: every skeleton seen at one instant, as plain arrays.

    coords: per skeleton (V, 3) (2D layouts: z ignored); confidence: per skeleton (V,).
    ids: per skeleton the driver's id, -1 when unknown. ``dropped`` counts bad parts the
    conversion already removed (reason -> count).
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
    refined: np.ndarray            # (V, D) newest frame, the input's frame and units
    offsets: np.ndarray            # (V, D) refined - input
    joint_confidence: np.ndarray   # (V,)
    probabilities: np.ndarray      # (classes,) after smoothing
    axis: str = "y_up"             # the input's axis convention (y_down: optical, image)


@dataclass
class InferenceResult:
    stamp_ns: int                  # newest input frame used
    frame_id: str
    layout: str                    # the model's layout (refined skeletons)
    people: list[PersonResult]
    arrivals: list[float]          # monotonic arrivals of the person-frames used for the first time
    forward_s: float


# ---------------------------------------------------------------------------- statistics
class RateMeter:
    """Events per second over the last few seconds."""

    def __init__(self, horizon_s: float = 5.0) -> None:
        self.horizon_s = horizon_s
        self._times: deque[float] = deque()

    def tick(self, now: float, count: int = 1) -> None:
        for _ in range(count):
            self._times.append(now)
        self._trim(now)

    def rate(self, now: float) -> float:
        self._trim(now)
        if not self._times:
            return 0.0
        return len(self._times) / self.horizon_s

    def _trim(self, now: float) -> None:
        while self._times and self._times[0] < now - self.horizon_s:
            self._times.popleft()


class Percentiles:
    """The last ``size`` samples, for p50/p99 without unbounded memory."""

    def __init__(self, size: int = 2000) -> None:
        self._values: deque[float] = deque(maxlen=size)

    def add(self, values: Iterable[float]) -> None:
        self._values.extend(values)

    def get(self, q: float) -> float:
        return float(np.percentile(self._values, q)) if self._values else 0.0

    def __len__(self) -> int:
        return len(self._values)


@dataclass
class _Stream:
    """Per input (topic): the last accepted stamp, for ordering and flood checks."""

    last_stamp_ns: int | None = None


@dataclass
class _Track:
    person_id: int
    source: str
    axis: str
    frame_id: str = ""
    last_stamp_ns: int = 0
    new_frames: int = 0
    labelled: bool = False
    last_inferred: float = -math.inf                        # monotonic start of its last pass
    pending: deque = field(default_factory=deque)           # arrivals of frames not yet used
    history: deque = field(default_factory=deque)           # probabilities, for smoothing


# ---------------------------------------------------------------------------- the pipeline
class Recognizer:
    """Validation, layout mapping, tracking, device ring buffers and batched inference.

    Thread-safe: :meth:`ingest` (ingestion thread) and :meth:`infer` (inference thread) only
    share state under a short lock; the forward pass runs outside it, so ingestion never
    waits for inference.

    Scheduling: a person is due when they have new frames, at least ``min_frames`` and their
    last pass started at least 1/``max_rate_hz`` ago. A pass takes the due people whose oldest
    unused frame arrived first (then those recognised least recently), at most ``max_batch``.
    """

    def __init__(self, model: torch.nn.Module, metadata: Mapping[str, Any],
                 params: RecognizerParams, device: torch.device | str = "cpu") -> None:
        self.params = params
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        arch = metadata["architecture"]
        self.layout = get_layout(layout_name(arch["layout"]))
        self.class_names = [str(n) for n in metadata["class_names"]]
        self.dims = 2 if self.layout.name in TWO_D_LAYOUTS else 3
        self.window_mode, self.window_length = _window_setting(metadata.get("window"))
        pre = dict(metadata.get("preprocess") or {})
        self.model_axis = pre.get("axis", "y_up")
        # The model's settings with the input's axis convention (preprocessing turns it y up).
        self._preprocess = {axis: PreprocessConfig.from_dict({**pre, "axis": axis})
                            for axis in AXES}
        self.top_k = min(params.top_k, len(self.class_names))
        # People per pass; None: every person due.
        self.max_batch: int | None = params.max_batch or (
            CPU_MAX_BATCH if self.device.type == "cpu" else None)
        self._min_period_s = 1.0 / params.max_rate_hz
        self.buffer = DeviceRingBuffer(params.window, self.layout.num_joints, self.dims + 1,
                                       self.device)
        self._lock = threading.Lock()
        self._trackers: dict[str, Any] = {}
        self._streams: dict[str, _Stream] = {}
        self._tracks: dict[int, _Track] = {}            # internal key -> track
        self._keys: dict[tuple[str, int], int] = {}     # (source, tracker id) -> internal key
        self._next_key = 0
        self._ended: list[int] = []                     # person ids ended, for expire()
        # Counters and figures for /diagnostics.
        self.dropped: dict[str, int] = dict.fromkeys(DROP_REASONS, 0)
        self._reported: set[str] = set()
        self.messages = 0
        self.frames = 0
        self.inferences = 0
        self.tracks_started = 0
        self.tracks_expired = 0
        self.clock_resets = 0
        self._input_rate = RateMeter()
        self._inference_rate = RateMeter()
        self.latency = Percentiles()
        self.forward_time = Percentiles(500)

    @classmethod
    def from_params(cls, params: RecognizerParams) -> Recognizer:
        """Load the model the parameters name; ModelFileError / ParameterError otherwise."""
        from prgcn_ros.model.io import ModelFileError, load_model

        device = params.torch_device()
        path = params.model_path()
        model, metadata = load_model(path, device)
        problem = metadata_problem(metadata)
        if problem:
            raise ModelFileError(f"model {path}: {problem}")
        return cls(model, metadata, params, device)

    # ------------------------------------------------------------------ ingestion
    def axis_for(self, source: str) -> str:
        if source == "azure_kinect":
            return self.params.azure_axis
        return self.params.axis or self.model_axis

    def ingest(self, frame: InputFrame) -> list[str]:
        """Validate, map, track and buffer one message. Returns the drop reasons seen for the
        first time (log them once); every drop is counted in :attr:`dropped`."""
        with self._lock:
            new: list[str] = []
            self.messages += 1
            self._input_rate.tick(frame.arrival)
            for reason, count in frame.dropped.items():
                self._drop(reason, new, count)
            if frame.layout not in LAYOUTS:
                self._drop("unknown_layout", new)
                return new
            layout = LAYOUTS[frame.layout]
            if not has_mapping(layout.name, self.layout.name):
                self._drop("no_mapping", new)
                return new
            if not frame.ids:
                if not frame.dropped:   # a MarkerArray of foreign markers only is not "empty"
                    self._drop("empty", new)
                return new
            # One stream per input and layout: a player mixing recordings of two layouts on
            # one topic is two sensors, each with its own stamps and people.
            stream_key = f"{frame.source}:{layout.name}"
            stream = self._streams.setdefault(stream_key, _Stream())
            if stream.last_stamp_ns is not None:
                gap = frame.stamp_ns - stream.last_stamp_ns
                if -gap > 1e9 * self.params.track_timeout_s:
                    # Not jitter: the source's clock jumped back (a bag played again, a
                    # driver restarted). Its people start over rather than wait forever.
                    self._end_stream(stream_key)
                    self.clock_resets += 1
                elif gap < 0 or gap == 0 or gap < 1e9 / self.params.max_input_hz:
                    self._drop("stamp_backwards" if gap < 0 else
                               "stamp_repeated" if gap == 0 else "flood", new)
                    return new

            ids, coords, conf = [], [], []
            for pid, xyz, c in zip(frame.ids, frame.coords, frame.confidence):
                xyz, c = np.asarray(xyz, np.float64), np.asarray(c, np.float64)
                if xyz.shape != (layout.num_joints, 3) or c.shape != (layout.num_joints,):
                    self._drop("wrong_joint_count", new)
                elif not (np.isfinite(xyz).all() and np.isfinite(c).all()):
                    self._drop("non_finite", new)
                elif not (c > 0).any():
                    self._drop("no_confidence", new)
                else:
                    ids.append(int(pid))
                    coords.append(xyz[:, : self.dims])
                    conf.append(np.clip(c, 0.0, 1.0))
            if not ids:
                return new
            # Only messages that brought a skeleton move the stream on.
            stream.last_stamp_ns = frame.stamp_ns
            coords_np = np.stack(coords).astype(np.float32)
            conf_np = np.stack(conf).astype(np.float32)
            track_ids = self._tracker(stream_key, layout.name).update(
                coords_np, conf_np, frame.arrival, ids)
            mapped, mapped_conf = map_joints(coords_np, conf_np, layout.name, self.layout.name)
            frames = torch.from_numpy(np.concatenate([mapped, mapped_conf[..., None]], -1))
            axis = self.axis_for(frame.source)
            for p, tid in enumerate(track_ids):
                if tid < 0:
                    self._drop("no_confidence", new)
                    continue
                key = self._keys.get((stream_key, tid))
                if key is None:
                    key = self._keys[(stream_key, tid)] = self._next_key
                    self._next_key += 1
                    # Frames older than the window can no longer be used: not kept waiting.
                    self._tracks[key] = _Track(person_id=tid, source=frame.source, axis=axis,
                                               history=deque(maxlen=self.params.smoothing),
                                               pending=deque(maxlen=self.params.window))
                    self.tracks_started += 1
                self.buffer.append(key, frames[p], frame.stamp_ns)
                track = self._tracks[key]
                track.frame_id = frame.frame_id
                track.last_stamp_ns = frame.stamp_ns
                track.new_frames += 1
                track.pending.append(frame.arrival)
                self.frames += 1
            return new

    def _end_stream(self, stream_key: str) -> None:
        """End every track of one input (under the lock); expire() reports them."""
        tracker = self._trackers.get(stream_key)
        if tracker is None:
            return
        for tid in tracker.active_ids:
            tracker.remove(tid)
            self._remove_track(stream_key, tid)

    def _remove_track(self, stream_key: str, tid: int) -> None:
        key = self._keys.pop((stream_key, tid), None)
        if key is not None:
            self.buffer.remove(key)
            self._ended.append(self._tracks.pop(key).person_id)

    def _drop(self, reason: str, new: list[str], count: int = 1) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + count
        if reason not in self._reported:
            self._reported.add(reason)
            new.append(reason)

    def _tracker(self, stream: str, layout: str):
        tracker = self._trackers.get(stream)
        if tracker is None:
            # Metres for 3D sensors, pixels for image keypoints, unless the user says.
            gate = self.params.track_gate or (80.0 if layout in TWO_D_LAYOUTS else 0.5)
            tracker = self._trackers[stream] = Tracker(gate, self.params.track_timeout_s)
        return tracker

    def expire(self, now: float | None = None) -> list[int]:
        """End the tracks unseen for track_timeout_s; returns their person ids (free memory)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            for stream, tracker in self._trackers.items():
                for tid in tracker.expire(now):
                    self._remove_track(stream, tid)
            gone, self._ended = self._ended, []
            self.tracks_expired += len(gone)
        return gone

    # ------------------------------------------------------------------ inference
    def _waiting(self) -> list[int]:
        """Tracks with new frames and enough of them (under the lock)."""
        return [k for k, t in self._tracks.items()
                if t.new_frames and self.buffer.total_frames(k) >= self.params.min_frames]

    def next_due(self, now: float | None = None) -> float | None:
        """Seconds until :meth:`infer` has a person to recognise (0: now); None: nobody waits."""
        now = time.monotonic() if now is None else now
        with self._lock:
            due_at = [self._tracks[k].last_inferred + self._min_period_s
                      for k in self._waiting()]
        return max(0.0, min(due_at) - now) if due_at else None

    def infer(self, now: float | None = None) -> InferenceResult | None:
        """One batched forward over the people due (see the class docstring)."""
        began = time.monotonic()
        start = began if now is None else now
        with self._lock:
            due = [k for k in self._waiting()
                   if self._tracks[k].last_inferred + self._min_period_s <= start]
            # Ties (people of one message) go to the person recognised least recently.
            due.sort(key=lambda k: (self._tracks[k].pending[0], self._tracks[k].last_inferred))
            batch, keys, stamps, counts = self.buffer.gather(due[: self.max_batch])
            if not keys:
                return None
            tracks = [self._tracks[k] for k in keys]
            snapshot = [(t.person_id, t.frame_id, t.last_stamp_ns, t.axis) for t in tracks]
            # Latency counts from a person's frame to the first /action that used it; before
            # a person's first label only the newest frame counts (the rest were warm-up).
            arrivals = sorted(a for t in tracks for a in (t.pending if t.labelled
                                                          else [t.pending[-1]]))
            for t in tracks:
                t.new_frames = 0
                t.pending.clear()
                t.labelled = True
                t.last_inferred = start

        x = self._model_window(batch, counts)                     # (N, T, V, C)
        coords, conf = x[..., : self.dims], x[..., self.dims]
        probs = torch.empty((len(keys), len(self.class_names)))
        refined = torch.empty((len(keys), self.layout.num_joints, self.dims))
        offsets = torch.empty_like(refined)
        for axis in sorted({s[3] for s in snapshot}):
            rows = [i for i, s in enumerate(snapshot) if s[3] == axis]
            index = torch.tensor(rows, device=x.device)
            p, r, o = self._forward(coords[index], conf[index], axis)
            probs[rows], refined[rows], offsets[rows] = p, r, o
        newest_conf = conf[:, -1].cpu().numpy()

        people = []
        with self._lock:
            for i, (key, (pid, _, _, _)) in enumerate(zip(keys, snapshot)):
                track = self._tracks.get(key)
                p = probs[i].numpy()
                if track is not None and self.params.smoothing > 1:
                    track.history.append(p)
                    p = np.mean(track.history, axis=0)
                person = self._person(pid, p, stamps[i], counts[i], refined[i].numpy(),
                                      offsets[i].numpy(), newest_conf[i])
                person.axis = snapshot[i][3]
                people.append(person)
        newest = max(range(len(keys)), key=lambda i: snapshot[i][2])
        done = time.monotonic()
        self.inferences += 1
        self._inference_rate.tick(done)
        self.forward_time.add([done - began])
        return InferenceResult(stamp_ns=snapshot[newest][2], frame_id=snapshot[newest][1],
                               layout=self.layout.name, people=people, arrivals=arrivals,
                               forward_s=done - began)

    def _model_window(self, batch: torch.Tensor, counts: list[int]) -> torch.Tensor:
        """The frames the model sees, as training and evaluation chose them.

        resample: each person's held frames spread evenly over the model's length (the whole
        clip, offline); crop: the last ``length`` frames, padded like the ring buffer does.
        """
        n, length = batch.shape[:2]
        if self.window_mode == "crop":
            t = min(self.window_length, length)
            return batch[:, length - t:]
        # Held frames sit at the end of the gathered window (the front repeats the oldest).
        index = np.stack([length - c + uniform_indices(c, self.window_length) for c in counts])
        index_t = torch.from_numpy(index).to(batch.device)
        return batch[torch.arange(n, device=batch.device)[:, None], index_t]

    def _forward(self, coords: torch.Tensor, conf: torch.Tensor, axis: str
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Preprocess, forward, and the newest frame's refined pose back in sensor space."""
        model_in, transform = preprocess(coords[:, :, None], conf[:, :, None], self.layout,
                                         self._preprocess[axis])
        with torch.inference_mode():
            logits, refined = self.model(model_in)
        probs = torch.softmax(logits.float(), dim=-1).cpu()
        # The PRM's offset on the last model frame, in sensor units, added to the newest input.
        offset = refined[:, :, -1:] - model_in[:, :, -1:]
        offset = transform.inverse_offsets(offset)[:, 0, 0]          # (N, V, D)
        newest = coords[:, -1]
        return probs, (newest + offset).float().cpu(), offset.float().cpu()

    def _person(self, pid: int, probs: np.ndarray, stamps: tuple[int, int], count: int,
                refined: np.ndarray, offsets: np.ndarray, joint_conf: np.ndarray
                ) -> PersonResult:
        order = np.argsort(-probs, kind="stable")[: self.top_k]
        best = int(order[0])
        return PersonResult(
            person_id=pid, class_index=best, label=self.class_names[best],
            confidence=float(probs[best]), top_labels=[self.class_names[i] for i in order],
            top_scores=[float(probs[i]) for i in order], window_start_ns=stamps[0],
            window_end_ns=stamps[1], num_frames=count, refined=refined, offsets=offsets,
            joint_confidence=joint_conf, probabilities=probs)

    def mark_published(self, result: InferenceResult, now: float | None = None) -> None:
        """Record each used person-frame's latency, arrival to publication of its /action."""
        now = time.monotonic() if now is None else now
        self.latency.add(now - a for a in result.arrivals)

    # ------------------------------------------------------------------ figures
    @property
    def people_tracked(self) -> int:
        return len(self._tracks)

    def stats(self, now: float | None = None) -> dict[str, Any]:
        now = time.monotonic() if now is None else now
        with self._lock:
            out: dict[str, Any] = {
                "input_rate_hz": self._input_rate.rate(now),
                "inference_rate_hz": self._inference_rate.rate(now),
                "latency_p50_ms": 1e3 * self.latency.get(50),
                "latency_p99_ms": 1e3 * self.latency.get(99),
                "inference_p50_ms": 1e3 * self.forward_time.get(50),
                "people_tracked": len(self._tracks),
                "messages_received": self.messages,
                "frames_buffered": self.frames,
                "inferences": self.inferences,
                "tracks_started": self.tracks_started,
                "tracks_expired": self.tracks_expired,
                "clock_resets": self.clock_resets,
                "dropped_total": sum(self.dropped.values()),
            }
            out.update({f"dropped_{k}": v for k, v in self.dropped.items()})
        return out


def _window_setting(window: Any) -> tuple[str, int]:
    """The metadata's window: {"mode": "resample"|"crop", "length": T} or a plain T."""
    if isinstance(window, Mapping):
        return str(window.get("mode", "resample")), int(window.get("length", 48))
    if window is None:
        return "resample", 48
    return "resample", int(window)


def metadata_problem(metadata: Mapping[str, Any]) -> str | None:
    """What in a model's metadata the live node cannot work with, or None."""
    arch = metadata.get("architecture") or {}
    try:
        name = layout_name(arch.get("layout"))
    except (ValueError, KeyError, TypeError):
        name = None
    if name not in LAYOUTS:
        return (f"layout {arch.get('layout')!r} is not a known layout "
                f"({', '.join(sorted(LAYOUTS))})")
    names = metadata.get("class_names")
    outputs = arch.get("num_classes")
    if not isinstance(names, list) or len(names) != outputs:
        count = len(names) if isinstance(names, list) else "no"
        return f"metadata has {count} class names for {outputs} model outputs"
    try:
        PreprocessConfig.from_dict(dict(metadata.get("preprocess") or {}))
        mode, length = _window_setting(metadata.get("window"))
    except (ValueError, TypeError) as error:
        return f"metadata preprocessing/window settings are invalid ({error})"
    if mode not in ("resample", "crop") or length < 1:
        return f"metadata window {metadata.get('window')!r} is invalid"
    return None
