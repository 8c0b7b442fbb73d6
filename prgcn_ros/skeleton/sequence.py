"""The one in-memory representation every reader returns and every consumer takes."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from .layouts import get_layout


@dataclass
class SkeletonSequence:
    """A recording: ``T`` frames of ``M`` person slots, ``V`` joints, ``D`` = 2 or 3 coordinates.

    coords:      float32 (T, M, V, D), in the source's units and axis convention.
    confidence:  float32 (T, M, V); 0 means the joint is missing in that frame (its coords are
                 then meaningless, usually 0).
    layout:      name of a layout in :mod:`prgcn_ros.skeleton.layouts` (V must match it).
    fps:         frame rate of the source.
    label:       0-based class index, or None.
    label_name:  class name, or None.
    person_ids:  one id per person slot M from the source, or None when the source has none.
    source:      the file (or directory) it was read from.
    """

    coords: np.ndarray
    confidence: np.ndarray
    layout: str
    fps: float
    label: int | None = None
    label_name: str | None = None
    person_ids: list[int] | None = None
    source: str = ""

    def __post_init__(self) -> None:
        self.coords = np.asarray(self.coords, dtype=np.float32)
        self.confidence = np.asarray(self.confidence, dtype=np.float32)
        if self.coords.ndim != 4 or self.coords.shape[-1] not in (2, 3):
            raise ValueError(f"coords must be (T, M, V, D) with D = 2 or 3, got "
                             f"{self.coords.shape}")
        if self.confidence.shape != self.coords.shape[:3]:
            raise ValueError(f"confidence shape {self.confidence.shape} does not match coords "
                             f"{self.coords.shape[:3]}")
        layout = get_layout(self.layout)
        if layout.num_joints != self.coords.shape[2]:
            raise ValueError(f"layout {layout.name!r} has {layout.num_joints} joints, "
                             f"coords have {self.coords.shape[2]}")
        if self.person_ids is not None and len(self.person_ids) != self.coords.shape[1]:
            raise ValueError(f"{len(self.person_ids)} person ids for {self.coords.shape[1]} "
                             f"person slots")

    @property
    def num_frames(self) -> int:
        return int(self.coords.shape[0])

    @property
    def num_persons(self) -> int:
        return int(self.coords.shape[1])

    @property
    def num_joints(self) -> int:
        return int(self.coords.shape[2])

    @property
    def dims(self) -> int:
        """2 for image keypoints, 3 for sensor-space joints."""
        return int(self.coords.shape[3])

    def select_frames(self, index: Sequence[int] | np.ndarray | slice) -> SkeletonSequence:
        """A copy holding only the given frames (in the given order, repeats allowed)."""
        return replace(self, coords=self.coords[index].copy(),
                       confidence=self.confidence[index].copy())

    def select_persons(self, index: Sequence[int] | np.ndarray) -> SkeletonSequence:
        """A copy holding only the given person slots (ids follow their slots)."""
        index = [int(i) for i in index]
        ids = None if self.person_ids is None else [self.person_ids[i] for i in index]
        return replace(self, coords=self.coords[:, index].copy(),
                       confidence=self.confidence[:, index].copy(), person_ids=ids)

    def main_persons(self, max_persons: int) -> SkeletonSequence:
        """The ``max_persons`` slots seen most (sum of confidence), in their order in the
        recording, padded with empty slots.

        Why: datasets hold a variable number of bodies (NTU sometimes adds a spurious one)
        while a model takes a fixed M; choosing by presence keeps the real actors. Their order
        stays the recording's: live, a pair's slot 0 is the lower person_id, which a
        recording's first slot has when it is played (ordered by presence, a clip whose second
        person is seen more went into training and evaluation the other way round).
        """
        presence = self.confidence.sum(axis=(0, 2))
        order = sorted(int(i) for i in np.argsort(-presence, kind="stable")[:max_persons])
        out = self.select_persons(order)
        missing = max_persons - out.num_persons
        if missing > 0:
            t, _, v, d = out.coords.shape
            out = replace(
                out,
                coords=np.concatenate([out.coords, np.zeros((t, missing, v, d), np.float32)], 1),
                confidence=np.concatenate([out.confidence, np.zeros((t, missing, v),
                                                                    np.float32)], 1),
                person_ids=None if out.person_ids is None else out.person_ids + [-1] * missing)
        return out


def frame_people(seq: SkeletonSequence, t: int, ids: list[int]
                 ) -> tuple[list[int], np.ndarray, np.ndarray]:
    """The people present in frame t, each slot named by ``ids`` (a slot with no confident
    joint is nobody): ids, coords (P, V, D) and confidence (P, V), as a driver sends them."""
    present = [m for m in range(seq.num_persons) if (seq.confidence[t, m] > 0).any()]
    return ([ids[m] for m in present], seq.coords[t, present], seq.confidence[t, present])
