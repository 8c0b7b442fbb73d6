"""Recognition, the second half of the live path: scheduling, the forward pass, results.

The recognizer node is a thin wrapper around :class:`Recognizer`: it converts messages to
:class:`InputFrame`, calls :meth:`Recognizer.ingest` from its ingestion callbacks and
:meth:`Recognizer.infer` from its inference thread, and publishes what comes back.
Everything here can be driven and tested without a ROS graph.

The pipeline is cut at the device ring buffers: :mod:`prgcn_ros.ingestion` validates, orders,
tracks and buffers; this module picks the people due, gathers their windows, preprocesses, runs
the network through one small seam (:class:`Backend`: the preprocessed batch in, logits and
refined poses out) and turns the outputs into per-person results. The plain data types live in
the torch-free :mod:`prgcn_ros.live_data` (re-exported here).

Samples: a model of one person per sample (M = 1) runs each person alone. A model of two-person
samples (metadata ``max_persons`` 2, SBU's interactions) runs each pair that ingestion formed
(:mod:`prgcn_ros.pairing`) as one sample, the lower person_id in slot 0 (a recording's first
person, as training orders them: ``SkeletonSequence.main_persons``), and publishes its label
for both, each with the other's ``partner_id``; a person without a partner runs with the
second slot empty, as training pads a clip of one person.

Confidences are calibrated with the temperature in the model's metadata
(``calibration.temperature``; 1 without one); below ``min_confidence`` the label is
``unknown`` (:data:`prgcn_ros.live_data.UNKNOWN_LABEL`) and the top-k stay listed.

Clocks: header stamps are carried through untouched (window stamps, the output header); track
time-outs use the node's clock (``InputFrame.clock_s``; monotonic unless the node says), rates
and latencies the monotonic arrival time, so a sensor whose clock is off does not make people
vanish.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import torch

from prgcn_ros.ingestion import Departed, Ingestion
from prgcn_ros.live_data import (  # noqa: F401 - re-exported: the pipeline's public names
    AXES,
    AZURE_SOURCE,
    DEFAULT_MODEL,
    DROP_REASONS,
    NO_PARTNER,
    TWO_D_LAYOUTS,
    UNKNOWN_CLASS_INDEX,
    UNKNOWN_LABEL,
    InferenceResult,
    InputFrame,
    ParameterError,
    Percentiles,
    PersonResult,
    RateMeter,
    RecognizerParams,
    default_threads,
)
from prgcn_ros.model.backends import (  # noqa: F401 - Backend re-exported
    Backend,
    BackendError,
    BackendInfo,
    ExportError,
    TorchBackend,
    check_window,
    make_backend,
    resolve_backend,
)
from prgcn_ros.model.graph import layout_name
from prgcn_ros.skeleton.layouts import LAYOUTS, get_layout
from prgcn_ros.skeleton.preprocess import (
    INTERPOLATIONS,
    PAIR_ORDERS,
    PreprocessConfig,
    blend_frames,
    exchange_persons,
    pair_orders,
    preprocess,
    uniform_indices,
    uniform_positions,
    window_setting,
)
from prgcn_ros.training.calibration import scaled, temperature_of

# People per forward pass on a CPU when max_batch is 0. A pass costs about linearly in people
# there, and a frame waits for the pass under way before its own: capped passes, oldest frames
# first, shorten that wait (README, "How it keeps up"). A GPU's pass costs about the same for
# 1 or 10 people, so there every ready person goes into one pass.
CPU_MAX_BATCH = 4

# Layouts whose source fixes the axes, read so on /skeletons while `axis` is empty (the
# model's convention otherwise): the Azure Kinect Body Tracking SDK's camera frame is y down.
LAYOUT_AXES = {"azure32": "y_down"}


# ---------------------------------------------------------------------------- the pipeline
class Recognizer:
    """Ingestion (validation, layout mapping, tracking, device ring buffers) and batched
    inference.

    Thread-safe: :meth:`ingest` (ingestion thread) and :meth:`infer` (inference thread) only
    share state under the ingestion's short lock; the forward pass runs outside it, so
    ingestion never waits for inference.

    Scheduling: a person is due when they have new frames, at least ``min_frames`` and their
    last pass started at least 1/``max_rate_hz`` ago. A pass takes the samples of the due
    people whose oldest unused frame arrived first (then those recognised least recently), at
    most ``max_batch``. A sample is one person, or a pair with a two-person model: it runs when
    either is due, and each of the two is published once they have ``min_frames`` themselves.
    """

    def __init__(self, model: torch.nn.Module, metadata: Mapping[str, Any],
                 params: RecognizerParams, device: torch.device | str = "cpu",
                 backend: Backend | None = None) -> None:
        self.params = params
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.backend: Backend = backend or TorchBackend(self.model)
        self.backend_info = BackendInfo(getattr(self.backend, "name", "custom"))
        arch = metadata["architecture"]
        self.metadata_arch = dict(arch)
        self.layout = get_layout(layout_name(arch["layout"]))
        self.class_names = [str(n) for n in metadata["class_names"]]
        self.persons = int(metadata.get("max_persons") or 1)      # person slots M per sample
        # Pairs scored in both slot orders (see PAIR_ORDERS): the label is the same whoever
        # has the lower person_id.
        self.both_orders = self.persons == 2 and pair_orders(metadata) == "both"
        self.temperature = temperature_of(metadata)
        self.dims = 2 if self.layout.name in TWO_D_LAYOUTS else 3
        self.window_mode, self.window_length, self.interpolation = window_setting(
            metadata.get("window"))
        if self.window_mode == "crop" and params.window < self.window_length:
            raise ParameterError(f"window {params.window} frames is shorter than the crop of "
                                 f"{self.window_length} consecutive frames of model "
                                 f"{params.model}: set window to at least "
                                 f"{self.window_length}")
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
        self.ingestion = Ingestion(params, self.layout, self.dims, self.device, self.axis_for,
                                   persons=self.persons)
        self.buffer = self.ingestion.buffer
        self._lock = self.ingestion.lock
        self.inferences = 0
        self.outputs_suppressed = 0
        self._inference_rate = RateMeter()
        self.latency = Percentiles(params.latency_window_s)
        self.forward_time = Percentiles(params.latency_window_s, 500)

    @classmethod
    def from_params(cls, params: RecognizerParams,
                    announce: Callable[[str], None] | None = None) -> Recognizer:
        """Load the model the parameters name; ModelFileError / ParameterError otherwise.
        ``announce`` is told before a step that takes a while (an ONNX export)."""
        from prgcn_ros.model.io import ModelFileError, load_model

        device = params.torch_device()
        path = params.model_path()
        model, metadata = load_model(path, device)
        problem = metadata_problem(metadata)
        if problem:
            raise ModelFileError(f"model {path}: {problem}")
        rec = cls(model, metadata, params, device)
        kind = resolve_backend(params.backend, device)
        try:
            rec.use_backend(kind, path, params.effective_threads(),
                            params.backend_cache_dir or None, announce=announce)
        except ExportError as error:
            if params.backend != "auto":
                raise BackendError(f"{error}; backend torch (or auto) runs the model without "
                                   f"a graph") from None
            # auto: the fastest backend that works here, and torch always runs the model. (A
            # graph that fails its start-up check still stops the start: that is no torch's.)
            rec.use_backend("torch", path)
            rec.backend_info.fallback = str(error)
        return rec

    def use_backend(self, kind: str, model_path: str | os.PathLike | None, threads: int = 1,
                    cache_dir: str | os.PathLike | None = None, **kwargs: Any) -> BackendInfo:
        """Run the network on ``kind`` (torch, onnxruntime); BackendError when it cannot.

        The ONNX graph is checked against the torch model on one window of the model's input
        shape (see :mod:`prgcn_ros.model.backends`)."""
        arch = self.metadata_arch
        window = check_window(int(arch.get("in_channels", 3)), self.window_length,
                              self.layout.num_joints, self.persons).to(self.device)
        self.backend, self.backend_info = make_backend(
            kind, self.model, model_path, window, threads=threads, device=self.device,
            cache_dir=cache_dir, **kwargs)
        return self.backend_info

    # ------------------------------------------------------------------ ingestion
    def axis_for(self, source: str, layout: str) -> str:
        """The axis convention of ``layout`` skeletons from input ``source``."""
        if source == AZURE_SOURCE:
            return self.params.azure_axis
        return self.params.axis or LAYOUT_AXES.get(layout, self.model_axis)

    def ingest(self, frame: InputFrame) -> list[str]:
        """See :meth:`prgcn_ros.ingestion.Ingestion.ingest`."""
        return self.ingestion.ingest(frame)

    def expire(self, now: float | None = None) -> list[int]:
        """End the tracks unseen for track_timeout_s; returns their person ids (free memory)."""
        return [d.person_id for d in self.expire_people(now)]

    def expire_people(self, now: float | None = None) -> list[Departed]:
        """Like :meth:`expire`, with each person's frame_id and whether they were published."""
        return self.ingestion.expire(time.monotonic() if now is None else now)

    def still_tracked(self, tracks: Iterable[int]) -> set[int]:
        """Those of the track keys ``tracks`` (PersonResult.track) whose track has not ended:
        a pass in flight may hold people who have left since, whose outputs would come after
        their markers' DELETE. Keys, not person ids: a restarted track takes its id again."""
        with self._lock:
            return {k for k in tracks if k in self.ingestion.tracks}

    # Counters the node and the tests read.
    @property
    def dropped(self) -> dict[str, int]:
        return self.ingestion.dropped

    @property
    def frames(self) -> int:
        return self.ingestion.frames

    @property
    def clock_resets(self) -> int:
        return self.ingestion.clock_resets

    @property
    def tracks_expired(self) -> int:
        return self.ingestion.tracks_expired

    @property
    def people_tracked(self) -> int:
        return len(self.ingestion.tracks)

    # ------------------------------------------------------------------ live parameters
    # Under the lock: a pass builds its people under it, so one result follows one setting.
    def set_top_k(self, top_k: int) -> None:
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        with self._lock:
            self.params.top_k = top_k
            self.top_k = min(top_k, len(self.class_names))

    def set_smoothing(self, smoothing: int) -> None:
        self.ingestion.set_smoothing(smoothing)

    def set_min_confidence(self, min_confidence: float) -> None:
        with self._lock:
            self.params.min_confidence = min_confidence

    # ------------------------------------------------------------------ inference
    def _waiting(self) -> list[int]:
        """Tracks with new frames and enough of them (under the lock)."""
        tracks = self.ingestion.tracks
        return [k for k, t in tracks.items()
                if t.new_frames and self.buffer.total_frames(k) >= self.params.min_frames]

    def _due_at(self, key: int) -> float:
        """When person ``key`` may run again (under the lock): max_rate_hz's period after the
        last pass of every published member of their sample, since a pair runs both."""
        tracks = self.ingestion.tracks
        last = tracks[key].last_inferred
        partner = self.ingestion.partner_of(key) if self.persons >= 2 else None
        if partner in tracks and self.buffer.total_frames(partner) >= self.params.min_frames:
            last = max(last, tracks[partner].last_inferred)
        return last + self._min_period_s

    def next_due(self, now: float | None = None) -> float | None:
        """Seconds until :meth:`infer` has a person to recognise (0: now); None: nobody waits."""
        now = time.monotonic() if now is None else now
        with self._lock:
            due_at = [self._due_at(k) for k in self._waiting()]
        return max(0.0, min(due_at) - now) if due_at else None

    def _samples(self, due: list[int]) -> list[tuple[int, ...]]:
        """The due people as the model's samples, in the pass's order (under the lock): a
        person alone, or with a two-person model a pair (slot order: lower person_id first)."""
        tracks = self.ingestion.tracks
        # Ties (people of one message) go to the person recognised least recently.
        due = sorted(due, key=lambda k: (tracks[k].waiting_since, tracks[k].last_inferred))
        samples, taken = [], set()
        for key in due:
            if key in taken:
                continue
            partner = self.ingestion.partner_of(key) if self.persons >= 2 else None
            members = (key,) if partner not in tracks else tuple(
                sorted((key, partner), key=lambda k: tracks[k].person_id))
            taken.update(members)
            samples.append(members)
        return samples

    def infer(self, now: float | None = None) -> InferenceResult | None:
        """One batched forward over the samples of the people due (see the class docstring).

        A person whose outputs come out NaN or inf (a degenerate skeleton) is left out of the
        result and counted in ``outputs_suppressed``: outputs are always finite.
        """
        began = time.monotonic()
        start = began if now is None else now
        with self._lock:
            tracks_by_key = self.ingestion.tracks
            due = [k for k in self._waiting() if self._due_at(k) <= start]
            samples = self._samples(due)[: self.max_batch]
            batch, keys, stamps, counts = self.buffer.gather([k for s in samples for k in s])
            if not keys:
                return None
            row = {k: i for i, k in enumerate(keys)}
            sample_rows = [rows for rows in ([row[k] for k in s if k in row] for s in samples)
                           if rows]
            tracks = [tracks_by_key[k] for k in keys]
            partner_id = [NO_PARTNER] * len(keys)
            for a, b in (rows for rows in sample_rows if len(rows) == 2):
                partner_id[a], partner_id[b] = tracks[b].person_id, tracks[a].person_id
            snapshot = [(t.person_id, t.frame_id, t.axis, t.source[0]) for t in tracks]
            # A partner below min_frames runs in the pair's sample but gets no label yet.
            published = [self.buffer.total_frames(k) >= self.params.min_frames for k in keys]
            # Latency counts from a person's frame to the first /action that used it; before
            # a person's first label only the newest frame counts (the rest were warm-up).
            waited = {i: list(t.pending) if t.labelled else list(t.pending)[-1:]
                      for i, (t, shown) in enumerate(zip(tracks, published)) if shown}
            for t, shown in zip(tracks, published):
                if shown:
                    t.new_frames = 0
                    t.pending.clear()
                    t.waiting_since = None
                    t.last_inferred = start

        x, last, windows, refined_rows, newest, newest_conf = self._sample_windows(
            batch, stamps, counts, sample_rows)
        coords, conf = x[..., : self.dims], x[..., self.dims]
        probs = torch.empty((len(sample_rows), len(self.class_names)))
        refined = torch.empty((len(sample_rows), self.persons, self.layout.num_joints,
                               self.dims))
        offsets = torch.empty_like(refined)
        # The people of a sample share a source, so an axis convention.
        sample_axis = [snapshot[rows[0]][2] for rows in sample_rows]
        for axis in sorted(set(sample_axis)):
            chosen = [s for s, a in enumerate(sample_axis) if a == axis]
            index = torch.tensor(chosen, device=x.device)
            p, r, o = self._forward(coords[index], conf[index], axis, last[index],
                                    newest[index])
            probs[chosen], refined[chosen], offsets[chosen] = p, r, o
        if self.temperature != 1.0:
            probs = torch.from_numpy(scaled(probs.numpy(), self.temperature)).float()
        # The joints' confidences of the input frame each refined pose is (not the window's
        # blend of two frames there, with linear resampling).
        newest_conf = newest_conf.cpu().numpy()
        finite_probs = torch.isfinite(probs).all(1).tolist()
        finite_pose = (torch.isfinite(refined).flatten(2).all(2)
                       & torch.isfinite(offsets).flatten(2).all(2)).tolist()   # (S, M)

        people, shown_rows = [], []
        with self._lock:
            for s, rows in enumerate(sample_rows):
                # Every member's score history takes every pass of its sample, a partner still
                # below min_frames too, and all start over when any member's sample changed
                # (one was away while the other ran alone): a pair smooths to one set of scores.
                smoothed = {i: probs[s].numpy() for i in rows}
                members = [(i, tracks_by_key.get(keys[i])) for i in rows]
                members = [(i, track) for i, track in members if track is not None]
                if self.params.smoothing > 1 and finite_probs[s]:
                    partner = {i: next((keys[j] for j in rows if j != i), None) for i in rows}
                    if any(track.partner != partner[i] for i, track in members):
                        for i, track in members:
                            track.history.clear()
                            track.partner = partner[i]
                    for i, track in members:
                        track.history.append(smoothed[i])
                        smoothed[i] = np.mean(track.history, axis=0)
                for slot, i in enumerate(rows):
                    if not published[i]:
                        continue
                    first_ns, last_ns, used = windows[i]
                    if not used:     # a partner missing from every frame of the time line
                        continue
                    if not (finite_probs[s] and finite_pose[s][slot]):
                        self.outputs_suppressed += 1
                        continue
                    pid, frame_id, axis, source = snapshot[i]
                    person = self._person(pid, smoothed[i], (first_ns, last_ns), used,
                                          refined[s, slot].numpy(), offsets[s, slot].numpy(),
                                          newest_conf[s, slot])
                    person.axis = axis
                    person.frame_id = frame_id
                    person.source = source
                    person.partner_id = partner_id[i]
                    person.track = keys[i]
                    row = refined_rows[s, slot]
                    person.refined_stamp_ns = int(stamps[i, row]) if row >= 0 else last_ns
                    people.append(person)
                    shown_rows.append(i)
                    tracks[i].labelled = True
        done = time.monotonic()
        self.inferences += 1
        self._inference_rate.tick(done)
        self.forward_time.add([done - began], done)
        if not people:
            return None
        # A suppressed output or an unused partner is in no /action: its frames are not counted.
        arrivals = sorted(a for i in shown_rows for a in waited[i])
        return InferenceResult.of(people, self.layout.name, arrivals, done - began)

    def _sample_windows(self, batch: torch.Tensor, stamps: np.ndarray, counts: list[int],
                        sample_rows: list[list[int]]
                        ) -> tuple[torch.Tensor, torch.Tensor, dict[int, tuple[int, int, int]],
                                   np.ndarray, torch.Tensor, torch.Tensor]:
        """The frames the model sees, (S, T, M, V, C): each sample's people in its slots;
        where each slot's newest frame is in it, (S, M); per gathered row the window it
        used: (first stamp, last stamp, frames; 0, 0, 0 when the model sees none of its
        frames); the frame each slot's refined pose is, as the gathered frame there, (S, M)
        (-1: none; between two frames, the nearer); and that frame's coordinates, (S, M, V, D),
        and confidences, (S, M, V) (linear steps blend two frames in the window, and a refined
        pose is one input frame, refined).

        resample: the held frames spread evenly over the model's length (the whole clip,
        offline), by the nearest frame or linear between frames as the model was trained;
        crop: the newest ``length`` frames; a shorter track's followed by empty frames, as
        training pads a short clip. Slots without a person are empty, as training pads a clip
        of fewer people (``SkeletonSequence.main_persons``).

        The two people of a pair share one time line, the stamps either of them has (newest
        ``window``): each is at their frame of that stamp or empty (confidence 0) where they
        have none (not yet there, occluded, or dropped from that message), as a training clip
        holds both people frame by frame.
        """
        length = batch.shape[1]
        count = len(sample_rows)
        people = np.zeros((count, self.persons), np.int64)
        # line[s, j, m]: the gathered position of slot m's frame at time line position j
        # (-1: none there); held[s]: the time line's frames, at its end.
        line = np.full((count, length, self.persons), -1, np.int64)
        held = np.zeros(count, np.int64)
        for s, rows in enumerate(sample_rows):
            people[s, : len(rows)] = rows
            if len(rows) == 1:     # the person's own frames (the front repeats the oldest)
                line[s, :, 0] = np.arange(length)
                held[s] = counts[rows[0]]
                continue
            own = [stamps[r, length - counts[r]:] for r in rows]
            if any((np.diff(theirs) <= 0).any() for theirs in own):
                # Stamps that do not rise (unstamped input stamped by a node clock that went
                # back, e.g. a looped bag's sim time) cannot be lined up: newest with newest.
                held[s] = max(counts[r] for r in rows)
                for slot, r in enumerate(rows):
                    line[s, length - counts[r]:, slot] = np.arange(length - counts[r], length)
                continue
            times = np.union1d(*own)[-length:]
            held[s] = len(times)
            for slot, (r, theirs) in enumerate(zip(rows, own)):
                at = np.searchsorted(theirs, times)
                found = theirs[np.minimum(at, len(theirs) - 1)] == times
                line[s, length - len(times):, slot] = np.where(
                    found, length - counts[r] + at, -1)
        device = batch.device
        people_t = torch.from_numpy(people).to(device)

        def gather(rows: np.ndarray) -> torch.Tensor:
            """Each sample's slots' gathered frames ``rows`` ((S, ..., M); -1: none, empty):
            (S, ..., M, V, C)."""
            slots = people_t.view(count, *[1] * (rows.ndim - 2), self.persons)
            x = batch[slots, torch.from_numpy(rows.clip(min=0)).to(device)]
            if (rows < 0).any():
                present = torch.from_numpy(rows >= 0).to(device=device, dtype=x.dtype)
                x = x * present[..., None, None]
            return x

        def frames(index: np.ndarray) -> torch.Tensor:
            """Each sample's people at time line positions ``index`` (S, T): (S, T, M, V, C)."""
            return gather(line[np.arange(count)[:, None], index])

        if self.window_mode == "crop":
            # The newest frames, as many as the model takes; a shorter track's frames first,
            # then empty frames (confidence 0), as training pads a short clip at its end.
            t = self.window_length
            taken = np.minimum(held, t)
            index = np.arange(t)[None, :] + (length - taken)[:, None]
            at = np.minimum(index, length - 1)
            x = frames(at)
            padding = torch.from_numpy(np.arange(t)[None, :] >= taken[:, None]).to(device)
            x = x.masked_fill(padding[:, :, None, None, None], 0.0)
        else:
            taken = held
            if self.interpolation == "nearest":
                at = np.stack([length - c + uniform_indices(c, self.window_length)
                               for c in held])
                x = frames(at)
            else:
                position = np.stack([length - c + uniform_positions(c, self.window_length)
                                     for c in held])
                before = np.floor(position).astype(np.int64)
                # The nearer frame, a tie to the later one as blend_frames takes it.
                at = np.minimum(before + (position - before >= 0.5), length - 1)
                weight = torch.from_numpy(position - before).to(device)[:, :, None].expand(
                    -1, -1, self.persons)
                x = blend_frames(frames(before), frames(np.minimum(before + 1, length - 1)),
                                 weight, self.dims)
        # Each slot's newest frame: the last window position where it has a joint (-1: none,
        # then the window's last frame), copied back once.
        shown = (x[..., self.dims] > 0).any(-1)                                # (S, T, M)
        positions = torch.arange(shown.shape[1], device=device)[None, :, None]
        newest = torch.where(shown, positions, -1).amax(1).cpu().numpy()       # (S, M)
        seen = newest >= 0
        last_at = np.where(seen, newest, (taken - 1).clip(0, shown.shape[1] - 1)[:, None])
        last = torch.from_numpy(last_at).to(device)
        windows = {}
        for s, rows in enumerate(sample_rows):
            for slot, r in enumerate(rows):
                used = line[s, length - taken[s]:, slot]
                used = used[used >= 0]
                # No frame of theirs in the window, or none where it was sampled (a partner
                # seen every other message, a window resampled from twice its length): the
                # model did not see them, so they are not published.
                windows[r] = (int(stamps[r, used[0]]), int(stamps[r, used[-1]]), len(used)) \
                    if len(used) and seen[s, slot] else (0, 0, 0)
        # Each slot's refined pose is its newest frame in the window the model saw (a pair's
        # time line, or a window resampled from over twice its length, may skip the person's
        # very newest frame).
        refined_rows = line[np.arange(count)[:, None], at][
            np.arange(count)[:, None], last_at, np.arange(self.persons)]      # (S, M)
        frames_refined = gather(refined_rows)                                  # (S, M, V, C)
        return (x, last, windows, refined_rows, frames_refined[..., : self.dims],
                frames_refined[..., self.dims])

    def _forward(self, coords: torch.Tensor, conf: torch.Tensor, axis: str, last: torch.Tensor,
                 newest: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Preprocess samples (S, T, M, V, D), forward, and each slot's newest frame (``newest``
        (S, M, V, D), at window position ``last`` (S, M)) refined by the PRM's offset there,
        back in sensor space, (S, M, V, D)."""
        config = self._preprocess[axis]
        model_in, transform = preprocess(coords, conf, self.layout, config)
        n = model_in.shape[0]
        batch_in = model_in
        if self.both_orders:
            other_coords, other_conf, pairs = exchange_persons(coords, conf)
            if pairs.any():
                # The pairs in the other slot order, in the same forward pass.
                other_in, _ = preprocess(other_coords[pairs], other_conf[pairs], self.layout,
                                         config)
                batch_in = torch.cat([model_in, other_in])
        logits, refined = self.backend(batch_in)
        probs = torch.softmax(logits.float(), dim=-1)
        if batch_in.shape[0] > n:
            other = probs[n:]
            probs, refined = probs[:n].clone(), refined[:n]
            probs[pairs] = (probs[pairs] + other) / 2
        probs = probs.cpu()
        # The PRM's offset on the newest frame, in sensor units, added to the newest input.
        m = model_in.shape[-1]
        at = last.view(n, 1, 1, 1, m).expand(-1, model_in.shape[1], 1, model_in.shape[3], -1)
        offset = refined.gather(2, at) - model_in.gather(2, at)
        offset = transform.inverse_offsets(offset)[:, 0]                # (S, M, V, D)
        return probs, (newest + offset).float().cpu(), offset.float().cpu()

    def _person(self, pid: int, probs: np.ndarray, stamps: tuple[int, int], count: int,
                refined: np.ndarray, offsets: np.ndarray, joint_conf: np.ndarray
                ) -> PersonResult:
        order = np.argsort(-probs, kind="stable")[: self.top_k]
        best = int(order[0])
        known = float(probs[best]) >= self.params.min_confidence
        return PersonResult(
            person_id=pid, class_index=best if known else UNKNOWN_CLASS_INDEX,
            label=self.class_names[best] if known else UNKNOWN_LABEL,
            confidence=float(probs[best]), top_labels=[self.class_names[i] for i in order],
            top_scores=[float(probs[i]) for i in order], window_start_ns=stamps[0],
            window_end_ns=stamps[1], num_frames=count, refined=refined, offsets=offsets,
            joint_confidence=joint_conf, probabilities=probs)

    def mark_published(self, result: InferenceResult, now: float | None = None) -> None:
        """Record each used person-frame's latency, arrival to publication of its /action."""
        now = time.monotonic() if now is None else now
        self.latency.add((now - a for a in result.arrivals), now)

    # ------------------------------------------------------------------ figures
    def stats(self, now: float | None = None) -> dict[str, Any]:
        now = time.monotonic() if now is None else now
        ing = self.ingestion
        with self._lock:
            waiting = self._waiting()
            out: dict[str, Any] = {
                "input_rate_hz": ing.input_rate.rate(now),
                "source_rate_hz": ing.fastest_source_rate(now),
                "inference_rate_hz": self._inference_rate.rate(now),
                "latency_p50_ms": 1e3 * self.latency.get(50, now),
                "latency_p99_ms": 1e3 * self.latency.get(99, now),
                "latency_samples": self.latency.count(now),
                "latency_window_s": self.latency.horizon_s,
                "inference_p50_ms": 1e3 * self.forward_time.get(50, now),
                "people_tracked": len(ing.tracks),
                "messages_received": ing.messages,
                "messages_empty": ing.empty_messages,
                **ing.kept_notices,
                "frames_buffered": ing.frames,
                "inferences": self.inferences,
                "outputs_suppressed": self.outputs_suppressed,
                "people_waiting": len(waiting),
                # As latency counts: before a person's first label only the newest frame (the
                # rest were warm-up up to min_frames); from when the person was due, as
                # max_rate_hz's wait is the setting's, not a pass falling behind (a frame still
                # in that wait has waited 0 ms, not less).
                "oldest_wait_ms": 1e3 * max(
                    [0.0] + [now - max(t.waiting_since if t.labelled else t.pending[-1],
                                       self._due_at(k))
                             for k, t in ((k, ing.tracks[k]) for k in waiting) if t.pending]),
                "tracks_started": ing.tracks_started,
                "tracks_expired": ing.tracks_expired,
                "clock_resets": ing.clock_resets,
                "dropped_total": sum(ing.dropped.values()),
            }
            out.update({f"dropped_{k}": v for k, v in ing.dropped.items()})
        return out


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
    if UNKNOWN_LABEL in names:
        return (f"a class is named {UNKNOWN_LABEL!r}, the label /action gives below "
                f"min_confidence: a listener could not tell the two apart")
    try:
        PreprocessConfig.from_dict(dict(metadata.get("preprocess") or {}))
        mode, length, interpolation = window_setting(metadata.get("window"))
    except (ValueError, TypeError, OverflowError) as error:
        return f"metadata preprocessing/window settings are invalid ({error})"
    if mode not in ("resample", "crop") or length < 1 or interpolation not in INTERPOLATIONS:
        return f"metadata window {metadata.get('window')!r} is invalid"
    orders = pair_orders(metadata)
    if orders not in PAIR_ORDERS:
        return f"metadata inference.pair_orders {orders!r} is not one of {', '.join(PAIR_ORDERS)}"
    return None
