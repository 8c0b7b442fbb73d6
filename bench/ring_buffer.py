"""Microbenchmark of the device ring buffer: append and gather cost per frame, memory over churn.

    .venv/bin/python bench/ring_buffer.py [--quick]

Writes its figures into bench/results.json under "ring_buffer" (other keys are kept).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psutil
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import livekit  # noqa: E402

from prgcn_ros.skeleton.ring_buffer import DeviceRingBuffer  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results.json"


def _median_us(fn, repeats: int, per: int) -> float:
    """Median over ``repeats`` runs of ``fn`` (which does ``per`` operations), in us per op."""
    fn()  # warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) / per * 1e6)
    return round(statistics.median(times), 2)


def append_cost(device: str, tracks: int, window: int, joints: int, frames: int,
                repeats: int) -> float:
    buf = DeviceRingBuffer(window, joints, 3, device)
    data = [np.random.default_rng(t).normal(size=(joints, 3)).astype(np.float32)
            for t in range(tracks)]

    def run():
        for k in range(frames):
            track = k % tracks
            buf.append(track, data[track], k)
        if device != "cpu":
            torch.cuda.synchronize()

    return _median_us(run, repeats, frames)


def gather_cost(device: str, tracks: int, window: int, joints: int, calls: int,
                repeats: int) -> dict:
    buf = DeviceRingBuffer(window, joints, 3, device)
    frame = np.ones((joints, 3), np.float32)
    for k in range(window * tracks):
        buf.append(k % tracks, frame, k)

    def run():
        for _ in range(calls):
            buf.gather(length=window)
        if device != "cpu":
            torch.cuda.synchronize()

    per_call = _median_us(run, repeats, calls)
    return {"per_call_us": per_call, "per_frame_us": round(per_call / (tracks * window), 4)}


def churn(buf: DeviceRingBuffer, frames: int, max_tracks: int, seed: int,
          gather_every: int = 10,
          check: Callable[[torch.Tensor, list[int], list[int]], None] | None = None) -> dict:
    """People coming and going: up to ``max_tracks`` at a time, lifetimes of 20-400 frames,
    a gather of the half-full tracks every ``gather_every`` frames as the node does (``check``
    sees each batch, its ids and the live tracks); everyone leaves at the end.

    The one churn simulation: this benchmark and test/test_skeleton_ring_buffer.py run it.
    """
    rng = np.random.default_rng(seed)
    live: dict[int, int] = {}
    next_id = started = peak_bytes = peak_capacity = 0
    frame = np.ones((buf.num_joints, buf.channels), np.float32)
    for t in range(frames):
        for track, end in list(live.items()):
            if end <= t:
                buf.remove(track)
                del live[track]
        while len(live) < max_tracks and rng.random() < 0.3:
            live[next_id] = t + int(rng.integers(20, 400))
            next_id += 1
            started += 1
        for track in live:
            buf.append(track, frame, t)
        if t % gather_every == 0:
            batch, ids, _, _ = buf.gather(length=buf.window, min_frames=buf.window // 2)
            if check is not None:
                check(batch, ids, list(live))
        peak_bytes = max(peak_bytes, buf.memory_bytes())
        peak_capacity = max(peak_capacity, buf.capacity)
    end_bytes = buf.memory_bytes()
    for track in live:
        buf.remove(track)
    return {"frames": frames, "max_live_tracks": max_tracks, "tracks_started": started,
            "peak_capacity_slots": peak_capacity, "peak_buffer_bytes": peak_bytes,
            "end_buffer_bytes": end_bytes}


def churn_memory(device: str, frames: int, max_tracks: int, window: int, joints: int) -> dict:
    """The churn simulation's figures, and resident memory growth over it after a warm-up of
    a tenth as many frames (allocator and caches)."""
    buf = DeviceRingBuffer(window, joints, 3, device)
    process = psutil.Process()
    churn(buf, frames // 10, max_tracks, seed=1)
    rss = process.memory_info().rss
    out = churn(buf, frames, max_tracks, seed=0)
    out["rss_growth_after_warmup_bytes"] = process.memory_info().rss - rss
    if device != "cpu":
        out["cuda_allocated_bytes_end"] = torch.cuda.memory_allocated()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (for smoke tests)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    repeats = 3 if args.quick else 7
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    default_threads = torch.get_num_threads()
    results: dict = {
        "what": "DeviceRingBuffer (prgcn_ros/skeleton/ring_buffer.py): append one (V, 3) float32 "
                "numpy frame; gather the last `window` frames of every track into one batch",
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "torch": torch.__version__,
                    "platform": platform.platform(),
                    "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
                    "cuda": torch.cuda.get_device_name(0) if "cuda" in devices else None},
        "devices": {},
    }
    for device in devices:
        figures: dict = {}
        for threads in sorted({default_threads, 1}, reverse=True):
            torch.set_num_threads(threads)
            key = f"torch_threads_{threads}"
            figures[key] = {
                "append_us_per_frame": {
                    f"V{v}_window{w}_tracks{n}": append_cost(device, n, w, v, 2000, repeats)
                    for v, w, n in ((20, 48, 10), (25, 300, 20))},
                "gather": {
                    f"V{v}_window{w}_tracks{n}": gather_cost(device, n, w, v, 20, repeats)
                    for v, w, n in ((20, 48, 1), (20, 48, 10), (25, 48, 20), (25, 300, 20))},
            }
        torch.set_num_threads(default_threads)
        figures["memory_churn"] = churn_memory(device, 1_000 if args.quick else 10_000, 20,
                                               48, 25)
        results["devices"][device] = figures
    if not args.quick:       # a smoke test's few repeats are no result
        livekit.update_results({"ring_buffer": results}, args.out)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
