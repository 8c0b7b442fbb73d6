"""Who is recognised together: pairs of people for models of two-person samples (M = 2).

A model trained on interactions (SBU: approaching, punching, shaking hands, ...) sees both
people of an interaction in one sample. Live, the recognizer pairs people of one source (one
sensor: the same frame_id, so their coordinates compare) by the distance between their mean
joint positions in the newest frame:

- unpaired people of the newest frame within the gate of each other become pairs: as many
  pairs as the gate allows, and of those the closest (least total distance). Closest-first
  alone would pair the middle two of two pairs standing side by side and leave the outer two
  alone. Someone missing from the frame, out of view or occluded, pairs with nobody new:
  their last position is old;
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

# Unpaired people within reach of each other, at most this many in one group, get the best
# pairs by an exact search (2^12 subsets at most); a larger crowd, closest first.
EXACT_GROUP = 12

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
        near = distance <= self.gate
        for i, j in best_pairs(distance, near):
            a, b = alone[i], alone[j]
            self._partner[a], self._partner[b] = b, a

    def _distance(self, a: int, b: int) -> float:
        return float(np.linalg.norm(self._positions[a] - self._positions[b]))


def best_pairs(distance: np.ndarray, near: np.ndarray) -> list[tuple[int, int]]:
    """Disjoint pairs (i, j), i < j, among n people with pairwise ``distance`` (n, n), where
    ``near`` allows a pair: the most pairs, then the least total distance, then the lowest
    indices; within a group of people linked by ``near`` larger than EXACT_GROUP, closest
    first."""
    n = len(distance)
    pairs: list[tuple[int, int]] = []
    unseen = set(range(n))
    while unseen:                      # groups of people linked through the gate
        group, todo = [], [min(unseen)]
        unseen.discard(todo[0])
        while todo:
            i = todo.pop()
            group.append(i)
            linked = {j for j in unseen if near[i, j]}
            unseen -= linked
            todo.extend(sorted(linked))
        group.sort()
        pairs += (_exact_pairs if len(group) <= EXACT_GROUP else _closest_first)(
            group, distance, near)
    return sorted(pairs)


def _exact_pairs(group: list[int], distance: np.ndarray, near: np.ndarray
                 ) -> list[tuple[int, int]]:
    memo: dict[tuple[int, ...], tuple[int, float, list[tuple[int, int]]]] = {}

    def best(left: tuple[int, ...]) -> tuple[int, float, list[tuple[int, int]]]:
        # (-pairs, total distance, pairs) of the best pairing of ``left``, least first
        if len(left) < 2:
            return 0, 0.0, []
        if left not in memo:
            first, rest = left[0], left[1:]
            options = [best(rest)]                                   # ``first`` alone
            for k, other in enumerate(rest):
                if near[first, other]:
                    count, total, chosen = best(rest[:k] + rest[k + 1:])
                    options.append((count - 1, total + float(distance[first, other]),
                                    [(first, other), *chosen]))
            memo[left] = min(options)
        return memo[left]

    return best(tuple(group))[2]


def _closest_first(group: list[int], distance: np.ndarray, near: np.ndarray
                   ) -> list[tuple[int, int]]:
    candidates = sorted((float(distance[i, j]), i, j) for a, i in enumerate(group)
                        for j in group[a + 1:] if near[i, j])
    taken: set[int] = set()
    pairs = []
    for _, i, j in candidates:
        if i not in taken and j not in taken:
            taken |= {i, j}
            pairs.append((i, j))
    return pairs
