"""Device ring buffer: gathered windows equal what was appended; memory follows live tracks."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import psutil
import pytest
import torch

from prgcn_ros.skeleton.ring_buffer import DeviceRingBuffer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from ring_buffer import churn  # noqa: E402  (the churn simulation bench/ring_buffer.py runs)

V, C = 25, 3


def _frame(track: int, k: int) -> np.ndarray:
    """A frame whose values say which track and which append it was."""
    frame = np.full((V, C), track * 100_000 + k, np.float32)
    frame[:, 1] = np.arange(V)
    return frame


def test_gather_returns_the_last_frames_in_order():
    window = 16
    buf = DeviceRingBuffer(window, V, C, "cpu", initial_capacity=2)
    appended: dict[int, list[np.ndarray]] = {}
    rng = np.random.default_rng(0)
    for step in range(400):
        track = int(rng.integers(0, 7))
        appended.setdefault(track, []).append(_frame(track, len(appended.get(track, []))))
        buf.append(track, appended[track][-1], stamp_ns=1_000 * step)
        if step % 37 == 0:
            for length in (1, 5, window):
                batch, ids, stamps, used = buf.gather(length=length)
                assert batch.shape == (len(ids), length, V, C)
                assert sorted(ids) == sorted(appended)
                for row, track in enumerate(ids):
                    frames = appended[track][-length:]
                    assert used[row] == len(frames)
                    # fewer frames than asked: the oldest one repeats in front
                    expect = [frames[0]] * (length - len(frames)) + frames
                    assert np.array_equal(batch[row].numpy(), np.stack(expect))
                    assert stamps[row, -1] == buf.last_stamp_ns(track)
                    assert (np.diff(stamps[row, length - len(frames):]) > 0).all()
    assert buf.capacity == 8 and len(buf) == 7


def test_min_frames_subsets_and_stamps():
    buf = DeviceRingBuffer(8, V, C)
    for k in range(12):
        buf.append(1, _frame(1, k), stamp_ns=100 + k)
    for k in range(3):
        buf.append(2, torch.from_numpy(_frame(2, k)), stamp_ns=500 + k)
    batch, ids, stamps, used = buf.gather(min_frames=4)
    assert ids == [1] and used == [8] and stamps.tolist() == [list(range(104, 112))]
    assert batch[0, :, 0, 0].tolist() == [100_000 + k for k in range(4, 12)]
    batch, ids, stamps, used = buf.gather(track_ids=[2, 99], length=5)
    assert ids == [2] and used == [3] and stamps.tolist() == [[500, 500, 500, 501, 502]]
    assert batch[0, :, 0, 0].tolist() == [200_000] * 3 + [200_001, 200_002]
    batch, ids, _, _ = buf.gather(track_ids=[2, 1], length=2)      # in the order asked for
    assert ids == [2, 1] and batch[:, -1, 0, 0].tolist() == [200_002, 100_011]
    assert buf.num_frames(1) == 8 and buf.total_frames(1) == 12 and buf.num_frames(2) == 3
    empty, ids, _, _ = buf.gather(track_ids=[])
    assert empty.shape == (0, 8, V, C) and ids == []
    with pytest.raises(ValueError, match="frame shape"):
        buf.append(3, np.zeros((V, C + 1), np.float32), 0)
    with pytest.raises(ValueError, match="length 9"):
        buf.gather(length=9)
    # float64 input is converted on the single copy into the buffer's dtype
    buf.append(3, np.ones((V, C)), 7)
    assert buf.gather([3])[0].dtype == torch.float32


def test_remove_frees_and_restarts():
    buf = DeviceRingBuffer(4, V, C, initial_capacity=1)
    for track in range(5):
        buf.append(track, _frame(track, 0), 0)
    assert buf.capacity == 8
    for track in range(4):
        buf.remove(track)
    # Halved each time a quarter or less was in use: 8 -> 4 -> 2 for the one left.
    assert len(buf) == 1 and buf.capacity == 2
    batch, ids, _, _ = buf.gather()
    assert ids == [4] and batch[0, -1, 0, 0] == 400_000  # survived the move
    buf.append(4, _frame(4, 1), 1)
    buf.remove(4)
    buf.append(4, _frame(4, 9), 9)
    assert buf.num_frames(4) == 1 and buf.last_stamp_ns(4) == 9
    buf.remove(12345)                                  # unknown: nothing to do


def _check_gather(batch: torch.Tensor, ids: list[int], live: list[int], buf) -> None:
    ready = sum(buf.num_frames(i) >= buf.window // 2 for i in live)
    assert batch.shape[0] == len(ids) == ready


@pytest.mark.slow
def test_memory_bounded_with_tracks_coming_and_going():
    buf = DeviceRingBuffer(48, V, C, "cpu")
    process = psutil.Process()
    churn(buf, 1_000, 20, seed=1)                      # warm up allocator and caches
    rss_before = process.memory_info().rss
    # The node gathers too; every 50 frames keeps it light here (2 cores, shared).
    stats = churn(buf, 10_000, 20, seed=2, gather_every=50,
                  check=lambda b, ids, live: _check_gather(b, ids, live, buf))
    rss_growth = process.memory_info().rss - rss_before
    slot_bytes = 48 * V * C * 4
    assert stats["tracks_started"] > 150               # many tracks came and went
    assert stats["peak_capacity_slots"] <= 32          # never more than 20 live + doubling
    assert stats["peak_buffer_bytes"] <= 32 * slot_bytes
    assert rss_growth < 8 * 2**20, f"resident memory grew by {rss_growth / 2**20:.1f} MiB"
    assert len(buf) == 0 and buf.memory_bytes() <= 4 * slot_bytes


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_cuda_buffer_memory_and_device():
    buf = DeviceRingBuffer(48, V, C, "cuda")
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    stats = churn(buf, 10_000, 20, seed=3,
                  check=lambda b, ids, live: _check_gather(b, ids, live, buf))
    batch, ids, _, _ = buf.gather()
    assert batch.device.type == "cuda"
    del batch
    torch.cuda.synchronize()
    assert torch.cuda.memory_allocated() - base <= stats["peak_buffer_bytes"] + 2**20


def test_window_stamps_survive_the_pool_growing_and_shrinking():
    """The stamps of every frame in a window (pairs are lined up by them), not only the newest."""
    buf = DeviceRingBuffer(8, V, C, initial_capacity=1)
    for k in range(4):
        buf.append(0, _frame(0, k), stamp_ns=100 + k)
    buf.append(1, _frame(1, 0), 500)                     # grows to 2
    buf.append(2, _frame(2, 0), 600)                     # grows to 4
    _, ids, stamps, _ = buf.gather([0], length=4)
    assert ids == [0] and stamps.tolist() == [[100, 101, 102, 103]]
    buf.remove(1)
    buf.remove(2)                                        # shrinks
    _, _, stamps, _ = buf.gather([0], length=4)
    assert stamps.tolist() == [[100, 101, 102, 103]] and buf.last_stamp_ns(0) == 103


@pytest.mark.parametrize("chunk_rows", [None, 5])
def test_a_gather_in_cpu_chunks_returns_every_frame(monkeypatch, chunk_rows):
    """None: a real size (20 people x 48 frames, over the chunk size); 5: chunks of 5 rows
    with a remainder."""
    if chunk_rows:
        monkeypatch.setattr(DeviceRingBuffer, "_CPU_CHUNK_ELEMENTS", chunk_rows * V * C)
        window, tracks = 4, 3
    else:
        window, tracks = 48, 20
    buf = DeviceRingBuffer(window, V, C)
    for k in range(window):
        for track in range(tracks):
            buf.append(track, _frame(track, k), k)
    batch, ids, _, _ = buf.gather()
    expect = np.stack([np.stack([_frame(t, k) for k in range(window)]) for t in ids])
    assert np.array_equal(batch.numpy(), expect)
