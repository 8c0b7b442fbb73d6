"""Per-track windows of the latest frames, kept on the inference device.

All tracks share one preallocated tensor ``pool`` of shape (capacity, window, V, C): a track owns
one slot (a ring of ``window`` frames). Appending writes one frame into its slot in place (one
host->device copy, O(1), nothing moves); gathering builds index tensors on the host (a few
integers per track) and reads every ready track's last frames with one indexing op on the
device, without a round trip through host memory. Slots freed by :meth:`remove` are reused; the
pool doubles when more tracks than slots exist and halves when at most a quarter is in use, so
memory follows the number of live tracks.
"""
from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import torch


class DeviceRingBuffer:
    """Ring buffers of ``window`` frames of (num_joints, channels) per track on ``device``."""

    def __init__(self, window: int, num_joints: int, channels: int,
                 device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                 initial_capacity: int = 4) -> None:
        if window < 1 or num_joints < 1 or channels < 1 or initial_capacity < 1:
            raise ValueError("window, num_joints, channels and initial_capacity must be >= 1")
        self.window = int(window)
        self.num_joints = int(num_joints)
        self.channels = int(channels)
        self.device = torch.device(device)
        self.dtype = dtype
        self._min_capacity = int(initial_capacity)
        self._lock = threading.Lock()
        self._slot: dict[int, int] = {}          # track id -> slot, in order of arrival
        self._allocate(self._min_capacity)

    # ------------------------------------------------------------------ storage
    def _allocate(self, capacity: int) -> None:
        self.pool = torch.empty((capacity, self.window, self.num_joints, self.channels),
                                dtype=self.dtype, device=self.device)
        # Frame k of slot s is row s * window + k of this view: one integer index per append
        # and one index_select per gather (far cheaper than 2-D advanced indexing).
        self._rows = self.pool.view(capacity * self.window, self.num_joints, self.channels)
        self._head = [0] * capacity                    # next write position in each ring
        self._count = [0] * capacity                   # frames appended since the slot was taken
        self._stamps = np.zeros((capacity, self.window), np.int64)
        self._free = list(range(capacity - 1, -1, -1))

    def _resize(self, capacity: int) -> None:
        """Move the live slots into a pool of ``capacity`` slots (slots renumbered 0..)."""
        old_pool, old_head, old_count, old_stamps = (self.pool, self._head, self._count,
                                                     self._stamps)
        live = list(self._slot.items())
        self._allocate(capacity)
        if live:
            old = [s for _, s in live]
            self.pool[: len(live)] = old_pool.index_select(
                0, torch.tensor(old, device=self.device))
            for new, slot in enumerate(old):
                self._head[new], self._count[new] = old_head[slot], old_count[slot]
            self._stamps[: len(live)] = old_stamps[old]
        self._slot = {track: i for i, (track, _) in enumerate(live)}
        self._free = list(range(capacity - 1, len(live) - 1, -1))

    @property
    def capacity(self) -> int:
        return int(self.pool.shape[0])

    def memory_bytes(self) -> int:
        """Bytes of device memory the buffer holds."""
        return self.pool.numel() * self.pool.element_size()

    # ------------------------------------------------------------------ tracks
    def __len__(self) -> int:
        return len(self._slot)

    def __contains__(self, track_id: int) -> bool:
        return track_id in self._slot

    def num_frames(self, track_id: int) -> int:
        """Frames held for the track (at most ``window``)."""
        return min(self._count[self._slot[track_id]], self.window)

    def total_frames(self, track_id: int) -> int:
        """Frames appended to the track since it started."""
        return self._count[self._slot[track_id]]

    def last_stamp_ns(self, track_id: int) -> int:
        slot = self._slot[track_id]
        return int(self._stamps[slot, (self._head[slot] - 1) % self.window])

    def append(self, track_id: int, frame: torch.Tensor | np.ndarray, stamp_ns: int) -> None:
        """Write ``frame`` (num_joints, channels) as the track's newest frame (a new track takes
        a slot). One copy to the device straight into the slot; O(1)."""
        if isinstance(frame, np.ndarray):
            frame = torch.from_numpy(frame)      # a view: the copy below is the only one
        if tuple(frame.shape) != (self.num_joints, self.channels):
            raise ValueError(f"frame shape {tuple(frame.shape)}, expected "
                             f"({self.num_joints}, {self.channels})")
        with self._lock:
            slot = self._slot.get(track_id)
            if slot is None:
                if not self._free:
                    self._resize(self.capacity * 2)
                slot = self._free.pop()
                self._slot[track_id] = slot
                self._head[slot] = 0
                self._count[slot] = 0
            pos = self._head[slot]
            self._rows[slot * self.window + pos].copy_(frame)
            self._stamps[slot, pos] = stamp_ns
            self._head[slot] = (pos + 1) % self.window
            self._count[slot] += 1

    def remove(self, track_id: int) -> None:
        """Forget a track; its slot is reused, and the pool shrinks when mostly empty."""
        with self._lock:
            slot = self._slot.pop(track_id, None)
            if slot is None:
                return
            self._count[slot] = 0
            self._free.append(slot)
            if self.capacity > self._min_capacity and len(self._slot) <= self.capacity // 4:
                self._resize(max(self._min_capacity, self.capacity // 2))

    # ------------------------------------------------------------------ reading
    # torch's CPU kernels split work over threads above 32768 elements, which on a small, busy
    # CPU costs far more than it saves (docs/design.md), so CPU gathers copy in chunks below
    # it, which run on the calling thread.
    _CPU_CHUNK_ELEMENTS = 32768

    def _select(self, rows: torch.Tensor) -> torch.Tensor:
        if self.device.type != "cpu":
            return self._rows.index_select(0, rows)
        chunk = max(1, self._CPU_CHUNK_ELEMENTS // (self.num_joints * self.channels))
        if len(rows) <= chunk:
            return self._rows.index_select(0, rows)
        out = self._rows.new_empty((len(rows), self.num_joints, self.channels))
        for start in range(0, len(rows), chunk):
            torch.index_select(self._rows, 0, rows[start:start + chunk],
                               out=out[start:start + chunk])
        return out

    def gather(self, track_ids: Sequence[int] | None = None, length: int | None = None,
               min_frames: int = 1
               ) -> tuple[torch.Tensor, list[int], np.ndarray, list[int]]:
        """The last ``length`` (default ``window``) frames of every ready track, oldest first.

        A track is ready when it holds at least ``min_frames`` frames; ``track_ids`` restricts
        the gather to those tracks (unknown or not-ready ids are left out). A track holding
        fewer than ``length`` frames is padded at the front by repeating its oldest frame.

        Returns ``(batch (N, length, V, C) on the device, track ids (N), stamps (N, length)
        int64 ns of those frames (the front padding repeats the oldest's), frames used per
        track (<= length))``: a track's frames used are its last ``used`` positions.
        """
        length = self.window if length is None else int(length)
        if not 1 <= length <= self.window:
            raise ValueError(f"length {length} outside 1..{self.window}")
        with self._lock:
            wanted = self._slot if track_ids is None else track_ids
            ids, slots = [], []
            for track in wanted:
                slot = self._slot.get(track)
                if slot is not None and self._count[slot] >= max(min_frames, 1):
                    ids.append(int(track))
                    slots.append(slot)
            if not ids:
                empty = self.pool.new_empty((0, length, self.num_joints, self.channels))
                return empty, [], np.zeros((0, length), np.int64), []
            slot_np = np.array(slots)
            count = np.array([self._count[s] for s in slots])
            head = np.array([self._head[s] for s in slots])
            used = np.minimum(np.minimum(count, self.window), length)               # (N,)
            # Output position j shows the frame `back` steps before the newest one; positions
            # before the oldest held frame repeat it.
            back = np.minimum(length - 1 - np.arange(length)[None], used[:, None] - 1)
            ring = (head[:, None] - 1 - back) % self.window                         # (N, length)
            rows = torch.from_numpy((slot_np[:, None] * self.window + ring).reshape(-1))
            batch = self._select(rows.to(self.device)).view(
                len(ids), length, self.num_joints, self.channels)
            stamps = self._stamps[slot_np[:, None], ring]
        return batch, ids, stamps, [int(u) for u in used]
