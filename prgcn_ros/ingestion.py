"""Ingestion, the first half of the live path: validation, per-source ordering and flood
checks, tracking and buffering into the per-person device ring buffers.

Recognition (:mod:`prgcn_ros.recognition`) reads those buffers; the two halves share state only
under :attr:`Ingestion.lock`, held briefly on both sides, so ingesting never waits for a
forward pass.

Identity: a person is (input, source, id) from arrival to publication, a source being one
publisher's (``frame_id``, layout) on one input. Ordering and flood checks are per source, so
two cameras on one topic do not drop each other's frames; the published person_id is unique
by the rule in :data:`prgcn_ros.live_data.ID_SPAN`.

For models of two-person samples (``persons`` 2) the people of each source are paired here,
frame by frame (:mod:`prgcn_ros.pairing`); recognition reads the pairs under the same lock.
"""
from __future__ import annotations

import math
import threading
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from prgcn_ros.live_data import (
    COORDINATE_BOUND_2D_PX,
    COORDINATE_BOUND_3D_M,
    DROP_REASONS,
    ID_SPAN,
    TWO_D_LAYOUTS,
    InputFrame,
    RateMeter,
    RecognizerParams,
)
from prgcn_ros.pairing import (
    DEFAULT_GATE_2D_NORMALISED,
    DEFAULT_GATE_2D_PX,
    DEFAULT_GATE_3D_M,
    Pairing,
    mean_positions,
)
from prgcn_ros.skeleton.layouts import LAYOUTS, Layout
from prgcn_ros.skeleton.mapping import has_mapping, map_joints
from prgcn_ros.skeleton.ring_buffer import DeviceRingBuffer
from prgcn_ros.skeleton.tracker import Tracker

# (input, frame_id, layout, publisher): one sensor. A player mixing recordings of two layouts
# on one topic is two sensors, each with its own stamps and people; so are two players (or two
# cameras) publishing on one topic, even with one frame_id.
SourceKey = tuple[str, str, str, bytes]

# Sources remembered at most; beyond it, those with nobody tracked are forgotten, oldest first
# (their numbers are never reused, so published ids stay unique).
MAX_SOURCES = 256
# The default association gate of image keypoints normalised to [0, 1] (80 px of a 1080p
# image is 0.04-0.07 of it).
NORMALISED_GATE = 0.05
# The newest stamp a ROS time (int32 seconds, nanoseconds) holds: outputs carry input stamps.
MAX_STAMP_NS = (2**31 - 1) * 1_000_000_000 + 999_999_999


# How fast (seconds per second) a source's reference offset may rise: a backlog that drained
# must not make the next fresh message look early, yet a slow replay's stamps are followed.
OFFSET_RELAX = 0.05
# A message whose stamp runs ahead by more than this (s), both of its source's timeline and of the
# source's last stamp step, is held until the next one shows whether it was alone: taken at once, a
# stray stamp ahead would make the messages after it look backwards. A faster delivery than any
# before (a drained backlog) or a replay faster than real time leads the timeline at an even stamp
# step, and a lost message steps further on time: neither is held.
HOLD_AHEAD_S = 0.05


def sent_time(frame: InputFrame) -> float:
    """When an unstamped message was sent: the middleware's send time, else its arrival (not
    the node's clock, which sim time may hold still or set back)."""
    return frame.arrival if frame.sent_s is None else frame.sent_s


@dataclass
class Source:
    """One sensor's timeline: the last accepted stamp, the reference offset between the node's
    clock and its stamps, and a held stamp jump."""

    number: int
    last_stamp_ns: int | None = None
    last_clock: float = 0.0                     # node clock at the last accepted message
    # clock - stamp (s), the lowest of the accepted messages (the fastest delivery), rising at
    # most OFFSET_RELAX per second since offset_clock.
    offset: float = 0.0
    offset_clock: float = 0.0
    last_sent: float = 0.0                      # unstamped messages: send time (else arrival)
    last_step_ns: int = 0                       # stamp gap to the previous accepted message
    held: InputFrame | None = None              # a stamp ahead or a jump, not yet confirmed
    # Its messages with people a second: its people's frame interval (the latency allowance).
    rate: RateMeter = field(default_factory=RateMeter)

    def reference(self, clock: float) -> float:
        return self.offset + OFFSET_RELAX * max(0.0, clock - self.offset_clock)

    def accept(self, frame: InputFrame, restart: bool = False) -> None:
        stamp_ns, clock = frame.stamp_ns, frame.clock
        self.last_sent = sent_time(frame)
        self.last_clock = clock
        if not frame.stamped:
            # Stamped on arrival by the node: not the sensor's capture time, so it must not
            # move the timeline the source's own stamps are checked against.
            return
        seen = clock - stamp_ns / 1e9
        first = self.last_stamp_ns is None or restart
        self.offset = seen if first else min(seen, self.reference(clock))
        self.offset_clock = clock
        self.last_step_ns = 0 if first else stamp_ns - self.last_stamp_ns
        self.last_stamp_ns = stamp_ns

    def lead(self, frame: InputFrame) -> float:
        """How much earlier than the fastest delivery seen (as of the last accepted message)
        the frame's stamp claims it was sent, in seconds. Late delivery (a backlog, lost
        messages) only lowers it; a clock jump raises it. Time without messages (nobody in
        view) says nothing about the sensor's clock, so it does not move the reference."""
        return self.offset - (frame.clock - frame.stamp_ns / 1e9)


@dataclass
class Track:
    person_id: int                  # published id (identity rule)
    source: SourceKey
    local_id: int                   # the driver's or the tracker's id within the source
    axis: str
    last_stamp_ns: int = 0
    new_frames: int = 0
    labelled: bool = False
    last_inferred: float = -float("inf")                    # monotonic start of its last pass
    pending: deque = field(default_factory=deque)           # arrivals of frames not yet used
    # The arrival of the oldest frame not yet used: pending keeps the newest `window` of them,
    # and a pass that falls further behind must still know who has waited longest.
    waiting_since: float | None = None
    history: deque = field(default_factory=deque)           # probabilities, for smoothing
    # The partner (internal key) of its last pass: smoothing starts over when it changes, the
    # scores of another sample are not this one's.
    partner: int | None = None

    @property
    def frame_id(self) -> str:
        return self.source[1]


@dataclass
class Departed:
    """A person whose track ended: their own frame, the stamp of their last skeleton, and
    whether they were ever published."""

    person_id: int
    frame_id: str
    labelled: bool
    last_stamp_ns: int = 0


def normalised(given: tuple[np.ndarray, np.ndarray]) -> bool:
    """Whether 2D keypoints (coords (P, V, D), confidences (P, V)) are normalised to the image
    size (Kinetics-skeleton, as the player sends it), not pixels: every confident joint's x and
    y within 1.5."""
    coords, conf = given
    seen = np.abs(coords[..., :2][conf > 0])
    return bool(seen.size) and float(seen.max()) <= 1.5


class Ingestion:
    """Validates, tracks and buffers input frames (thread-safe; see the module docstring)."""

    def __init__(self, params: RecognizerParams, layout: Layout, dims: int,
                 device: torch.device, axis_for: Callable[[str, str], str], persons: int = 1
                 ) -> None:
        self.params = params
        self.layout = layout
        self.dims = dims
        self.axis_for = axis_for
        self.persons = persons              # the model's person slots M: pairs when >= 2
        self.pair_gate = params.pair_gate or (DEFAULT_GATE_2D_PX if dims == 2
                                              else DEFAULT_GATE_3D_M)
        self.buffer = DeviceRingBuffer(params.window, layout.num_joints, dims + 1, device)
        self.lock = threading.Lock()
        self.tracks: dict[int, Track] = {}                # internal key -> track
        self._sources: dict[SourceKey, Source] = {}
        self._trackers: dict[SourceKey, Tracker] = {}
        self._pairings: dict[SourceKey, Pairing] = {}
        self._keys: dict[tuple[SourceKey, int], int] = {}  # (source, local id) -> internal key
        self._next_key = 0
        self._next_source = 0
        self._ended: list[Departed] = []
        # Counters for /diagnostics.
        self.dropped: dict[str, int] = dict.fromkeys(DROP_REASONS, 0)
        self._reported: set[str] = set()
        self.messages = 0
        self.empty_messages = 0
        # NOTICES of what was kept: skeletons with a confidence above 1, skeletons whose
        # driver id is past ID_SPAN, messages of skeletons with an empty frame_id.
        self.kept_notices = dict.fromkeys(("confidences_clipped", "ids_out_of_range",
                                           "no_frame_id"), 0)
        self.frames = 0
        self.tracks_started = 0
        self.tracks_expired = 0
        self.clock_resets = 0
        self.input_rate = RateMeter()

    # ------------------------------------------------------------------ ingest
    def ingest(self, frame: InputFrame) -> list[str]:
        """Validate, map, track and buffer one message. Returns the drop reasons and NOTICES
        seen for the first time (log them once); every drop is counted in :attr:`dropped`."""
        with self.lock:
            new: list[str] = []
            self.messages += 1
            self.input_rate.tick(frame.arrival)
            for reason, count in frame.dropped.items():
                self._drop(reason, new, count)
            if not frame.ids:
                # Nobody in view: drivers say so every frame, some with no layout. Counted, but
                # no drop (no WARN).
                if not frame.dropped:   # a MarkerArray of foreign markers only is not "empty"
                    self.empty_messages += 1
                return new
            if not 0 <= frame.stamp_ns <= MAX_STAMP_NS:
                self._drop("stamp_out_of_range", new)
                return new
            layout = LAYOUTS.get(frame.layout)
            if layout is None:
                self._drop("unknown_layout", new)
                return new
            if not has_mapping(layout.name, self.layout.name):
                self._drop("no_mapping", new)
                return new
            if len(frame.ids) > self.params.max_people:
                # Checked before tracking: association costs people x tracks x joints.
                self._drop("too_many_people", new)
                return new
            key = (frame.source, frame.frame_id, layout.name, frame.publisher)
            source = self._source(key)
            source.rate.tick(frame.arrival)
            order = self._in_order(key, source, frame, new)
            if order is None:
                return new
            restart = order == "restart"
            if order in ("restart", "held") and source.held is not None:
                # The held message comes first (of a new timeline on a restart): nothing lost.
                held, source.held = source.held, None
                taken = self._take(held, key, source, layout, new, restart)
                restart = restart and not taken
            self._take(frame, key, source, layout, new, restart)
            return new

    def _take(self, frame: InputFrame, key: SourceKey, source: Source, layout: Layout,
              new: list[str], restart: bool = False) -> bool:
        """Validate and buffer an ordered message; False when no skeleton was valid."""
        ids, coords, conf, notes = self._valid_skeletons(frame, layout, new)
        if not ids:
            return False
        coords_np, conf_np = np.stack(coords), np.stack(conf)
        mapped, mapped_conf = map_joints(coords_np, conf_np, layout.name, self.layout.name)
        # Seen only by joints the model's layout has not (a BODY_25 person of toes and heels
        # for a COCO-18 model): the model would be shown nobody.
        seen = (mapped_conf > 0).any(axis=1)
        if not seen.all():
            self._drop("no_confidence", new, int((~seen).sum()))
            if not seen.any():
                return False
            ids = [i for i, keep in zip(ids, seen) if keep]
            notes = [n for n, keep in zip(notes, seen) if keep]
            coords_np, conf_np = coords_np[seen], conf_np[seen]
            mapped, mapped_conf = mapped[seen], mapped_conf[seen]
        # Only messages that brought a skeleton move the source on.
        source.accept(frame, restart)
        self._buffer(frame, key, source, layout, ids, (coords_np, conf_np),
                     (mapped, mapped_conf), notes, new)
        return True

    def fastest_source_rate(self, now: float) -> float:
        """Messages a second of the busiest source (under the lock)."""
        return max((s.rate.rate(now) for s in self._sources.values()), default=0.0)

    def _source(self, key: SourceKey) -> Source:
        source = self._sources.get(key)
        if source is None:
            if len(self._sources) >= MAX_SOURCES:
                self._forget_idle_sources()
            source = self._sources[key] = Source(self._next_source)
            self._next_source += 1
        return source

    def _forget_idle_sources(self) -> None:
        busy = {t.source for t in self.tracks.values()}
        idle = sorted((s.last_clock, k) for k, s in self._sources.items() if k not in busy)
        for _, key in idle[: max(1, len(idle) // 2)]:
            del self._sources[key]
            self._trackers.pop(key, None)
            self._pairings.pop(key, None)

    def _in_order(self, key: SourceKey, source: Source, frame: InputFrame, new: list[str]
                  ) -> str | None:
        """Per-source ordering, stamp-jump and flood checks: "ok", "restart" (a confirmed
        jump, the held message first: the source's people may have ended), "held" (the held
        message first, then this one) or None (dropped, counted)."""
        # 1/max_input_hz, less a microsecond: a source at exactly that rate, its stamps rounded
        # to whole nanoseconds (8,333,333 ns at 120 Hz), is not a flood.
        min_gap_ns = round(1e9 / self.params.max_input_hz) - 1000
        if not frame.stamped:
            # Stamped on arrival by the node: only a flood can be told, by the send time. A
            # send time before the last one (the sender's clock stepped back) starts anew.
            if source.last_sent and 0 <= (sent_time(frame) - source.last_sent) * 1e9 < min_gap_ns:
                self._drop("flood", new)
                return None
            return "ok"
        if source.last_stamp_ns is None:
            return "ok"
        tolerance = self.params.stamp_tolerance_s
        lead_s = source.lead(frame)
        gap_s = (frame.stamp_ns - source.last_stamp_ns) / 1e9
        # (No step yet, e.g. after a late first message: no pace to run ahead of.)
        ahead_s = (min(lead_s, gap_s - source.last_step_ns / 1e9) if source.last_step_ns
                   else 0.0)
        if (lead_s > tolerance or ahead_s > HOLD_AHEAD_S
                or gap_s < -self.params.track_timeout_s):
            # The stamp left the source's timeline (a jump), ran ahead of it and of its pace,
            # or jumped back. The message is held: alone it is an outlier (dropped and counted
            # once the next message shows it, nobody's track touched); a next message that
            # follows it confirms it.
            held = source.held
            if held is not None:
                since_s = (frame.stamp_ns - held.stamp_ns) / 1e9
                if since_s == 0:                      # the held message again
                    self._drop("stamp_repeated", new)
                    return None
                if 0 < since_s * 1e9 < min_gap_ns:    # a burst on the new timeline
                    self._drop("flood", new)
                    return None
                if 0 < since_s and since_s - (frame.clock - held.clock) <= tolerance:
                    # Confirmed: the timeline is re-anchored at the held message. A jump is a
                    # clock change. Back in time (a bag played again, a driver restarted): the
                    # source's people start over, their windows would run backwards. Ahead by
                    # more than track_timeout_s (a clock set forward, a first message stamped
                    # far off): they start over too, their windows would span that gap. Ahead
                    # by less (the first messages were taken late): the people go on. A lead
                    # within the tolerance: a stamp step the source really took.
                    held_gap_s = (held.stamp_ns - source.last_stamp_ns) / 1e9
                    timeout_s = self.params.track_timeout_s
                    back = held_gap_s < -timeout_s
                    if back or source.lead(held) > tolerance:
                        self.clock_resets += 1
                        self._notice("clock_resets", new)
                        if back or held_gap_s > timeout_s:
                            self._end_source(key)
                    if self._of_someone_gone(held, frame):
                        # Not put first into the new timeline, which starts at this message.
                        source.held = None
                        self._drop("stamp_outlier", new)
                    return "restart"
                self._drop("stamp_outlier", new)      # the held one was alone
            source.held = frame
            return None
        # Back on the timeline. A held stamp ahead within the tolerance that this message
        # follows was a step the source took (delivered faster than any before): kept, first.
        # Otherwise it was alone.
        order, last_ns, held = "ok", source.last_stamp_ns, source.held
        if held is not None:
            # ... on time, and not of someone gone.
            if (last_ns < held.stamp_ns < frame.stamp_ns and source.lead(held) <= tolerance
                    and not self._of_someone_gone(held, frame)):
                order, last_ns = "held", held.stamp_ns
            else:
                source.held = None
                self._drop("stamp_outlier", new)
        gap_ns = frame.stamp_ns - last_ns
        if gap_ns < 0:
            self._drop("stamp_backwards", new)
        elif gap_ns == 0:
            self._drop("stamp_repeated", new)
        elif gap_ns < min_gap_ns:
            self._drop("flood", new)
        else:
            return order
        return None

    def _of_someone_gone(self, held: InputFrame, frame: InputFrame) -> bool:
        """A held message ``frame`` came more than track_timeout_s after: of someone gone."""
        return frame.clock - held.clock > self.params.track_timeout_s

    def _valid_skeletons(self, frame: InputFrame, layout: Layout, new: list[str]
                         ) -> tuple[list[int], list[np.ndarray], list[np.ndarray],
                                    list[list[str]]]:
        """The valid skeletons' ids, coordinates and confidences, and for each the NOTICES it
        brings (counted once it is buffered: a skeleton dropped later was not kept)."""
        v = layout.num_joints
        bound = COORDINATE_BOUND_2D_PX if layout.name in TWO_D_LAYOUTS else COORDINATE_BOUND_3D_M
        # Ids outside the identity rule's span are unknown: the tracker assigns them. Negative
        # ids are drivers' "unknown"; ids past the span are reported.
        past = [int(i) >= ID_SPAN for i in frame.ids]
        given = [int(i) if 0 <= int(i) < ID_SPAN else -1 for i in frame.ids]
        repeated = {i for i, n in Counter(given).items() if i >= 0 and n > 1}
        ids, coords, conf, notes = [], [], [], []
        for pid, xyz, c, far in zip(given, frame.coords, frame.confidence, past):
            # Checked as the float32 the pipeline keeps: 1e39 is finite in float64 only.
            with np.errstate(over="ignore", invalid="ignore"):
                xyz = np.asarray(xyz, np.float64).astype(np.float32)
                c = np.asarray(c, np.float64).astype(np.float32)
            if pid in repeated:
                self._drop("duplicate_id", new)
                continue
            if xyz.shape != (v, 3) or c.shape != (v,):
                self._drop("wrong_joint_count", new)
                continue
            # A missing joint (confidence 0) may come as NaN, inf or a sentinel such as
            # FLT_MAX (drivers write it so): its coordinates mean nothing, and are kept at 0.
            finite = np.isfinite(xyz[:, : self.dims])
            xyz = np.where(finite & (c > 0)[:, None], xyz[:, : self.dims], np.float32(0))
            if not (np.isfinite(c).all() and finite[c > 0].all()):
                self._drop("non_finite", new)
            elif (np.abs(xyz) > bound).any():
                self._drop("implausible_coordinates", new)
            elif not (c > 0).any():
                self._drop("no_confidence", new)
            else:
                ids.append(pid)
                coords.append(xyz)
                conf.append(np.clip(c, 0.0, 1.0))   # below 0: missing, as 0
                notes.append([reason for reason, applies in (
                    ("ids_out_of_range", far), ("confidences_clipped", bool((c > 1).any())))
                    if applies])
        return ids, coords, conf, notes

    def _buffer(self, frame: InputFrame, key: SourceKey, source: Source, layout: Layout,
                ids: list[int], given: tuple[np.ndarray, np.ndarray],
                model_joints: tuple[np.ndarray, np.ndarray], notes: list[list[str]],
                new: list[str]) -> None:
        """Track and buffer valid skeletons: ``given`` (coords, confidences) in their own
        layout, for the tracker; ``model_joints`` the same mapped into the model's layout;
        ``notes`` each one's NOTICES, counted for those buffered."""
        coords_np, conf_np = given
        mapped, mapped_conf = model_joints
        tracker = self._tracker(key, layout.name, given)
        # Motion by capture time: the header stamp, unless the node stamped the message.
        capture_s = frame.stamp_ns / 1e9 if frame.stamped else math.nan
        local_ids = tracker.update(coords_np, conf_np, frame.clock, ids, capture_s)
        taken: list[tuple[int, Departed | None]] = []
        for local in tracker.taken_over:     # the driver now uses an id the tracker had chosen
            # No DELETE for it: that person_id goes on, as the driver's person, whose markers
            # overwrite these; a DELETE would wipe theirs until its next pass.
            taken.append((local, self._remove_track(key, local, report=False)))
        frames = torch.from_numpy(np.concatenate([mapped, mapped_conf[..., None]], -1))
        axis = self.axis_for(frame.source, layout.name)
        buffered: dict[int, int] = {}          # internal key -> row of this message
        for p, local in enumerate(local_ids):
            if local < 0:
                self._drop("no_confidence", new)
                continue
            internal = self._keys.get((key, local))
            if internal is None:
                if len(self.tracks) >= self.params.max_people:
                    tracker.remove(local)
                    self._drop("too_many_people", new)
                    continue
                internal = self._keys[(key, local)] = self._next_key
                self._next_key += 1
                # Frames older than the window can no longer be used: not kept waiting.
                self.tracks[internal] = Track(
                    person_id=source.number * ID_SPAN + local, source=key, local_id=local,
                    axis=axis, history=deque(maxlen=self.params.smoothing),
                    pending=deque(maxlen=self.params.window))
                self.tracks_started += 1
            self.buffer.append(internal, frames[p], frame.stamp_ns)
            track = self.tracks[internal]
            track.last_stamp_ns = frame.stamp_ns
            track.new_frames += 1
            if track.waiting_since is None:
                track.waiting_since = frame.arrival
            track.pending.append(frame.arrival)
            self.frames += 1
            buffered[internal] = p
            for reason in notes[p]:
                self._count_notice(reason, new)
        if buffered and not frame.frame_id:
            self._count_notice("no_frame_id", new)
        for local, departed in taken:
            if departed is None:
                continue
            if (key, local) not in self._keys:    # ... unless the driver's was turned away
                self._ended.append(departed)
            else:                                 # ended all the same: counted, no DELETE
                self.tracks_expired += 1
        if self.persons >= 2 and buffered:
            pairing = self._pairings.get(key)
            if pairing is None:
                gate = self.pair_gate
                if not self.params.pair_gate and self.dims == 2 and normalised(given):
                    gate = DEFAULT_GATE_2D_NORMALISED
                pairing = self._pairings[key] = Pairing(gate)
            positions = mean_positions(mapped, mapped_conf)
            pairing.update({k: positions[p] for k, p in buffered.items()})

    def _tracker(self, key: SourceKey, layout: str, given: tuple[np.ndarray, np.ndarray]
                 ) -> Tracker:
        tracker = self._trackers.get(key)
        if tracker is None:
            # Metres for 3D sensors, pixels for image keypoints, unless the user says; image
            # keypoints normalised to the image size (Kinetics-skeleton, as the player sends
            # it; told by the source's first message) get a gate in image fractions.
            gate = self.params.track_gate or 0.5
            if not self.params.track_gate and layout in TWO_D_LAYOUTS:
                gate = NORMALISED_GATE if normalised(given) else 80.0
            tracker = self._trackers[key] = Tracker(gate, self.params.track_timeout_s,
                                                    id_limit=ID_SPAN)
        return tracker

    def count_drop(self, reason: str) -> bool:
        """Count a message dropped outside :meth:`ingest`; True the first time (log it)."""
        with self.lock:
            new: list[str] = []
            self._drop(reason, new)
            return bool(new)

    def _drop(self, reason: str, new: list[str], count: int = 1) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + count
        self._notice(reason, new)

    def _count_notice(self, reason: str, new: list[str]) -> None:
        """Count one skeleton (no_frame_id: message) that a notice concerns; log it once."""
        self.kept_notices[reason] += 1
        self._notice(reason, new)

    def _notice(self, reason: str, new: list[str]) -> None:
        """``reason`` (a drop, or one of NOTICES) goes into ``new`` the first time only."""
        if reason not in self._reported:
            self._reported.add(reason)
            new.append(reason)

    # ------------------------------------------------------------------ endings
    def _end_source(self, key: SourceKey) -> None:
        """End every track of one source (under the lock); expire() reports them."""
        tracker = self._trackers.get(key)
        if tracker is None:
            return
        for local in tracker.active_ids:
            tracker.remove(local)
            self._remove_track(key, local)

    def _remove_track(self, key: SourceKey, local: int, report: bool = True
                      ) -> Departed | None:
        """End a track; its departure (None: no such track), listed for expire() to report
        unless ``report`` is false."""
        internal = self._keys.pop((key, local), None)
        if internal is None:
            return None
        pairing = self._pairings.get(key)
        if pairing is not None:
            pairing.remove(internal)
        self.buffer.remove(internal)
        track = self.tracks.pop(internal)
        departed = Departed(track.person_id, track.frame_id, track.labelled, track.last_stamp_ns)
        if report:
            self._ended.append(departed)
        return departed

    def end_all(self) -> list[str]:
        """End every track (the node's clock changed its basis: time-outs cannot compare).
        Returns the drop reasons seen for the first time, as :meth:`ingest` does."""
        with self.lock:
            new: list[str] = []
            for key in list(self._trackers):
                self._end_source(key)
            for source in self._sources.values():
                source.last_stamp_ns = None
                if source.held is not None:   # never confirmed: a lone jump, as before
                    source.held = None
                    self._drop("stamp_outlier", new)
            return new

    def expire(self, now: float) -> list[Departed]:
        """End the tracks unseen for track_timeout_s on the node's clock (memory freed);
        returns everyone who left since the last call."""
        with self.lock:
            for key, tracker in self._trackers.items():
                for local in tracker.expire(now):
                    self._remove_track(key, local)
            gone, self._ended = self._ended, []
            self.tracks_expired += len(gone)
        return gone

    def partner_of(self, key: int) -> int | None:
        """The internal key of the person paired with track ``key`` (under the lock)."""
        track = self.tracks.get(key)
        pairing = self._pairings.get(track.source) if track is not None else None
        return pairing.partner(key) if pairing is not None else None

    def set_smoothing(self, smoothing: int) -> None:
        """A live change of ``smoothing``: every person's score history keeps its newest (none
        when smoothing is off: nothing is added then, and an entry kept would be stale when
        it is turned on again)."""
        with self.lock:
            self.params.smoothing = smoothing
            for track in self.tracks.values():
                track.history = deque(track.history if smoothing > 1 else (), maxlen=smoothing)
