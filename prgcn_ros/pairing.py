"""Who is recognised together: pairs of people for models of two-person samples (M = 2).

A model trained on interactions (SBU: approaching, punching, shaking hands, ...) sees both
people of an interaction in one sample. Live, the recognizer pairs people of one source (one
sensor: the same frame_id, so their coordinates compare) by the distance between their mean
joint positions in the newest frame:

- two unpaired people of the newest frame within the gate become a pair, the closest two
  first (someone missing from it, out of view or occluded, pairs with nobody new: their last
  position is old);
- each person is in at most one pair;
- a pair stays while both stay: it parts only when one of them leaves (the track ends) or they
  are more than ``RELEASE_FACTOR`` x the gate apart. Without that margin two people standing
  near the gate's edge would flip between paired and alone from frame to frame, and a closer
  third person never steals a partner.

numpy only: no torch, no rclpy (unit-tested without either).
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

# A pair parts beyond gate x this (hysteresis; see the module docstring).
RELEASE_FACTOR = 1.25

# pair_gate 0: these. SBU Kinect Interaction's partners are 0.1-1.9 m apart (mean joint
# positions, every frame of its 282 clips), approaching and departing included.
DEFAULT_GATE_3D_M = 2.0
DEFAULT_GATE_2D_PX = 400.0
# ... for 2D keypoints normalised to the image size (400 px of a 1080p image: 0.2-0.37 of it).
DEFAULT_GATE_2D_NORMALISED = 0.25


def mean_positions(coords: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """Per person the mean of the joints with confidence > 0: coords (P, V, D), confidence
    (P, V) -> (P, D). A person with no confident joint gets NaN (never within a gate)."""
    weight = (np.asarray(confidence) > 0).astype(np.float64)[..., None]
    count = weight.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (np.asarray(coords, np.float64) * weight).sum(axis=1) / count


class Pairing:
    """Pairs among the people of one source (keys: any hashable person key, ordered)."""

    def __init__(self, gate: float) -> None:
        if not gate > 0:
            raise ValueError(f"pair gate must be positive, got {gate!r}")
        self.gate = float(gate)
        self.release = RELEASE_FACTOR * self.gate
        self._positions: dict[int, np.ndarray] = {}
        self._partner: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._positions)

    def partner(self, person: int) -> int | None:
        return self._partner.get(person)

    def pairs(self) -> list[tuple[int, int]]:
        """Every pair, each as (lower key, higher key)."""
        return sorted((a, b) for a, b in self._partner.items() if a < b)

    def remove(self, person: int) -> None:
        """The person left: forgotten, and their partner is alone again."""
        self._positions.pop(person, None)
        partner = self._partner.pop(person, None)
        if partner is not None:
            self._partner.pop(partner, None)

    def update(self, positions: Mapping[int, np.ndarray]) -> None:
        """The newest positions of the people of one frame (people not in it keep their last
        position, and their pair, until :meth:`remove`); then pairs part, and the frame's
        people form pairs, by the rules above."""
        for person, position in positions.items():
            self._positions[person] = np.asarray(position, np.float64)
        for a, b in self.pairs():
            if not self._distance(a, b) <= self.release:   # NaN (no position) parts them too
                del self._partner[a], self._partner[b]
        alone = sorted(p for p in positions if p not in self._partner)
        if len(alone) < 2:
            return
        points = np.stack([self._positions[p] for p in alone])
        distance = np.linalg.norm(points[:, None] - points[None], axis=-1)
        first, second = np.triu_indices(len(alone), k=1)
        near = distance[first, second] <= self.gate
        # Closest first; ties in key order (deterministic).
        order = sorted(zip(distance[first, second][near], first[near], second[near]))
        for _, i, j in order:
            a, b = alone[i], alone[j]
            if a not in self._partner and b not in self._partner:
                self._partner[a], self._partner[b] = b, a

    def _distance(self, a: int, b: int) -> float:
        return float(np.linalg.norm(self._positions[a] - self._positions[b]))
