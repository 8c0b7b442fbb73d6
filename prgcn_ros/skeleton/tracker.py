"""Person tracking for sources without ids (OpenPose): frame-to-frame association.

Each frame's people are matched to the live tracks by the Hungarian algorithm on the mean
distance between joints confident in both (in the source's units: metres, pixels or
normalised image coordinates), a new track and a track seen last update left without its
person each costing ``gate``: the least total, a pair farther apart than ``gate`` never
matched. A track is where it was last seen or where it was heading, whichever is nearer: its
last place moved on at constant velocity (its last two sightings, by capture time) for at most
``PREDICT_S``. People left over start new tracks; :meth:`Tracker.expire` ends tracks unseen for
``timeout_s``.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

# How far ahead a track's position is predicted: about a walker's stride. A person hidden for
# longer may have turned, and a prediction run on would carry their track into whoever stands
# further along; one who stopped is found at their last place, which is always looked at too.
PREDICT_S = 0.5


@dataclass
class _Track:
    coords: np.ndarray       # (V, D): the latest confident position of every joint
    seen: np.ndarray         # (V,) bool: the joint has been confident at least once
    last_stamp_s: float
    made: bool = False       # the tracker chose its id (the source gave none)
    last_update: int = 0     # the update that last saw it
    last_ok: np.ndarray | None = None    # (V,) bool: the joints confident when last seen
    last_capture_s: float = math.nan     # capture time of the last sighting (NaN: unknown)
    velocity: np.ndarray | None = None   # (D,) per second, from the last two sightings

    def since(self, stamp_s: float, capture_s: float) -> float:
        """Time since the last sighting: by capture times where both are known, else by the
        clock tracks expire by (never one minus the other: they need not share an origin)."""
        elapsed = capture_s - self.last_capture_s
        return elapsed if math.isfinite(elapsed) else stamp_s - self.last_stamp_s

    def predicted(self, stamp_s: float, capture_s: float) -> np.ndarray:
        """Every joint moved on at the track's velocity, for at most PREDICT_S."""
        ahead = self.since(stamp_s, capture_s)
        if self.velocity is None or not ahead > 0:
            return self.coords
        return self.coords + self.velocity * min(ahead, PREDICT_S)


class Tracker:
    """Assigns a stable track id to every person of every frame.

    ``update`` returns one id per input person. When the source gives ids they are kept as they
    are (an id < 0 means "unknown" and is associated like an id-less person). Fresh ids count up
    from 0, skip ids in use, and start again from 0 at ``id_limit`` (the span a person id may
    take, so that a crowd turned away for weeks never runs past it). When the source later
    gives an id the tracker had chosen for an id-less person, that person's track ends (listed
    in :attr:`taken_over` after the update) and they are associated again under a fresh id: an
    id never stands for two people.
    Association uses the joints at ``min_confidence`` or above, or, where a person has none,
    every joint with a confidence above 0. A person without one cannot be associated and gets
    -1 (no track is started for it).
    """

    def __init__(self, gate: float, timeout_s: float, min_confidence: float = 0.1,
                 id_limit: int = 2**31) -> None:
        if gate <= 0 or timeout_s <= 0 or id_limit < 1:
            raise ValueError(f"gate ({gate}), timeout_s ({timeout_s}) and id_limit "
                             f"({id_limit}) must be positive")
        self.id_limit = int(id_limit)
        self.gate = float(gate)
        self.timeout_s = float(timeout_s)
        self.min_confidence = float(min_confidence)
        self._tracks: dict[int, _Track] = {}
        self._ids = itertools.count()
        self._updates = 0
        self.taken_over: list[int] = []     # tracker-made ids a source id ended, last update

    @property
    def active_ids(self) -> list[int]:
        return list(self._tracks)

    def __len__(self) -> int:
        return len(self._tracks)

    def _fresh_id(self) -> int:
        for _ in range(len(self._tracks) + 1):
            candidate = next(self._ids) % self.id_limit
            if candidate not in self._tracks:
                return candidate
        raise RuntimeError(f"all {self.id_limit} track ids are in use")

    def _refresh(self, track_id: int, coords: np.ndarray, ok: np.ndarray, stamp_s: float,
                 capture_s: float, made: bool = False) -> None:
        track = self._tracks.get(track_id)
        if track is None:
            self._tracks[track_id] = _Track(np.where(ok[:, None], coords, 0.0), ok.copy(),
                                            stamp_s, made, self._updates, ok.copy(), capture_s)
            return
        track.last_update = self._updates
        # The body's mean step over the joints confident in both sightings: one joint's
        # jitter averages out, and a joint that came or went does not count as motion. By
        # capture time: two frames handled back to back were not taken 0.3 ms apart. No
        # step in time (a repeated or earlier stamp): no velocity until the next one.
        elapsed = track.since(stamp_s, capture_s)
        both = ok & track.last_ok
        track.velocity = ((coords[both] - track.coords[both]).mean(0) / elapsed
                          if elapsed > 0 and both.any() else None)
        track.last_capture_s = capture_s
        track.last_ok = ok.copy()
        # Joints not seen in this frame keep their last position: occluded limbs still help.
        track.coords = np.where(ok[:, None], coords, track.coords)
        track.seen |= ok
        track.last_stamp_s = max(track.last_stamp_s, stamp_s)

    def cost_matrix(self, coords: np.ndarray, ok: np.ndarray, track_ids: Sequence[int],
                    stamp_s: float, capture_s: float = math.nan) -> np.ndarray:
        """(P, K) mean joint distance between each person and each track, over the joints
        confident in both, to the track's last place or to its place predicted for the
        frame (:meth:`update`'s times), whichever is nearer; inf where they share no joint."""
        if not track_ids or not len(coords):
            return np.zeros((len(coords), len(track_ids)))
        tracks = [self._tracks[i] for i in track_ids]
        track_ok = np.stack([t.seen for t in tracks])                    # (K, V)
        both = ok[:, None] & track_ok[None]
        shared = both.sum(-1)
        cost = np.full(both.shape[:2], np.inf)
        for places in ([t.coords for t in tracks],
                       [t.predicted(stamp_s, capture_s) for t in tracks]):
            dist = np.linalg.norm(coords[:, None] - np.stack(places)[None], axis=-1)  # P, K, V
            with np.errstate(invalid="ignore", divide="ignore"):
                cost = np.minimum(cost, np.where(both, dist, 0.0).sum(-1) / shared)
        return np.where(shared > 0, cost, np.inf)

    def update(self, coords: np.ndarray, confidence: np.ndarray, stamp_s: float,
               ids: Sequence[int] | None = None, capture_s: float | None = None
               ) -> list[int]:
        """Associate one frame: coords (P, V, D), confidence (P, V) -> a track id per person.

        ``stamp_s`` is the clock tracks expire by; ``capture_s`` (default ``stamp_s``) the
        frame's capture time, which motion is measured by (NaN: unknown, e.g. a message its
        source sent unstamped; ``stamp_s`` stands in then). Given ``ids`` (>= 0) are returned
        unchanged and refresh their tracks' last-seen time.
        """
        capture_s = stamp_s if capture_s is None else capture_s
        coords = np.asarray(coords, dtype=np.float64)
        confidence = np.asarray(confidence, dtype=np.float64)
        if coords.ndim != 3 or confidence.shape != coords.shape[:2]:
            raise ValueError(f"expected coords (P, V, D) and confidence (P, V), got "
                             f"{coords.shape} and {confidence.shape}")
        people = len(coords)
        if ids is not None and len(ids) != people:
            raise ValueError(f"{len(ids)} ids for {people} people")
        ok = confidence >= self.min_confidence
        # A person seen only faintly (every joint under min_confidence, as OpenPose reports a
        # far or blurred person) is associated by the joints it has.
        faint = ~ok.any(1)
        ok[faint] = confidence[faint] > 0
        result: list[int | None] = [None] * people
        self.taken_over = []
        self._updates += 1
        if ids is not None:
            for p, given in enumerate(ids):
                if given is not None and int(given) >= 0:
                    result[p] = int(given)
                    track = self._tracks.get(result[p])
                    if track is not None and track.made:
                        del self._tracks[result[p]]
                        self.taken_over.append(result[p])
                    self._refresh(int(given), coords[p], ok[p], stamp_s, capture_s)
        todo = [p for p in range(people) if result[p] is None]
        if todo:
            claimed = {r for r in result if r is not None}
            candidates = [i for i in self._tracks if i not in claimed]
            cost = self.cost_matrix(coords[todo], ok[todo], candidates, stamp_s, capture_s)
            allowed = cost <= self.gate
            # A person and a track not seen in the last update, each other's nearest within the
            # gate, are matched first: such a track is free to leave below, so its person,
            # back, would take a track seen last update instead, whose leaving costs (two close
            # people seen in turn swapped ids every frame).
            hidden = np.array([self._tracks[i].last_update != self._updates - 1
                               for i in candidates], dtype=bool)
            mutual = (allowed & hidden[None] & (cost == cost.min(1, keepdims=True))
                      & (cost == cost.min(0, keepdims=True))) if allowed.any() else allowed
            mutual &= (mutual.sum(1, keepdims=True) == 1) & (mutual.sum(0, keepdims=True) == 1)
            for r, c in zip(*np.nonzero(mutual)):
                result[todo[r]] = candidates[c]
            everyone = todo
            rest, free = ~mutual.any(1), ~mutual.any(0)
            todo = [p for p, left in zip(todo, rest) if left]
            candidates = [c for c, left in zip(candidates, free) if left]
            cost, allowed = cost[rest][:, free], allowed[rest][:, free]
            if allowed.any():
                # Least total of the matched distances plus ``gate`` for each person who starts
                # a new track and for each track seen in the last update that is left without
                # its person, so nobody is pushed off their own track to make more pairs (a
                # track not seen last update is free to leave). Ambiguous without appearance:
                # a person hidden in the very frame a newcomer comes within the gate can swap
                # with them (docs/design.md). Beyond the gate costs more than any of that, so
                # it is never chosen, yet not so much that real distances round away beside it.
                p, k = cost.shape
                beyond = 3.0 * self.gate + 1.0
                square = np.zeros((p + k, k + p))
                square[:p, :k] = np.where(allowed, cost, beyond)
                square[:p, k:] = beyond
                square[:p, k:][np.diag_indices(p)] = self.gate               # a new track
                square[p:, :k] = beyond
                left = [self.gate if self._tracks[i].last_update == self._updates - 1 else 0.0
                        for i in candidates]
                square[p:, :k][np.diag_indices(k)] = left                    # a track left
                rows, cols = linear_sum_assignment(square)
                for r, c in zip(rows, cols):
                    if r < p and c < k and allowed[r, c]:
                        result[todo[r]] = candidates[c]
            for p in everyone:
                made = result[p] is None
                if made:
                    if not ok[p].any():
                        result[p] = -1
                        continue
                    result[p] = self._fresh_id()
                self._refresh(result[p], coords[p], ok[p], stamp_s, capture_s, made)
        return [int(r) for r in result]  # type: ignore[arg-type]

    def expire(self, stamp_s: float) -> list[int]:
        """Remove and return the tracks not seen for more than ``timeout_s`` before
        ``stamp_s``."""
        gone = [i for i, t in self._tracks.items() if stamp_s - t.last_stamp_s > self.timeout_s]
        for i in gone:
            del self._tracks[i]
        return gone

    def remove(self, track_id: int) -> None:
        self._tracks.pop(track_id, None)

    def last_seen_s(self, track_id: int) -> float:
        return self._tracks[track_id].last_stamp_s
