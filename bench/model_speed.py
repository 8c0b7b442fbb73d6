"""PR-GCN against ST-GCN on this CPU: inference time per forward, the two models alternating.

    .venv/bin/python bench/model_speed.py [--repeats R] [--quick] [--threads N ...]

Cases: one Kinetics clip (N=1, C=3, T=300, V=18 coco18, M=2, 400 classes) and streaming windows
(N = 1, 4, 10; C=3, T=64, V=25 ntu25, M=1, 60 classes). Each repeat times both models back to
back (the order alternates), so load from other processes hits both alike; medians are reported.
The headline runs with one intra-op thread, far steadier on a shared 2-core machine (the
project's rule); a second run uses torch's default thread count (recorded): with two threads
every parallel op waits for a core that other processes may hold (OMP_WAIT_POLICY=PASSIVE
softens that).

ONNX Runtime (``--no-onnx`` skips it): each network is exported with the project's
``export_model`` (the graph the recognizer's onnxruntime backend runs) and run in a session of one
intra-op thread without spinning (the node's settings). ``model.onnxruntime`` holds PR-GCN vs
ST-GCN on onnxruntime (same backend, per clip and per window), ``model.prgcn_backends`` PR-GCN on
torch (one thread) vs onnxruntime, alternating, including the shipped model's input
(N, 3, 48, 20, 1) for N = 1, 4, 10, 20, on its architecture (rigid bones). ``model.rigid_bones``:
on that input, the network with and without its rigid-bones layer (model.rigid_bones, the same
weights), per backend, alternating.

Writes its figures into bench/results.json under "model" (other keys are kept).
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import livekit  # noqa: E402

from prgcn_ros.model import PRGCN, STGCN  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results.json"
# name, layout, classes, input shape (N, C, T, V, M)
CASES = [
    ("clip_300x18x2", "coco18", 400, (1, 3, 300, 18, 2)),
    ("window_64x25_n1", "ntu25", 60, (1, 3, 64, 25, 1)),
    ("window_64x25_n4", "ntu25", 60, (4, 3, 64, 25, 1)),
    ("window_64x25_n10", "ntu25", 60, (10, 3, 64, 25, 1)),
]
# The shipped model's live input (MSR Action3D, kinect20, 48-frame windows), people per pass.
LIVE_CASES = [(f"live_48x20_n{n}", "kinect20", 20, (n, 3, 48, 20, 1)) for n in (1, 4, 10, 20)]


def time_calls(calls: dict, x: torch.Tensor, repeats: int) -> dict[str, list[float]]:
    """Seconds per call of each callable, the order rotating every repeat."""
    names = list(calls)
    with torch.inference_mode():
        for _ in range(3):
            for name in names:
                calls[name](x)
        times: dict[str, list[float]] = {name: [] for name in names}
        for r in range(repeats):
            for name in names[r % len(names):] + names[: r % len(names)]:
                start = time.perf_counter()
                calls[name](x)
                times[name].append(time.perf_counter() - start)
    return times


def onnx_backend(model: torch.nn.Module, shape: tuple, workdir: Path):
    """The recognizer's onnxruntime backend for ``model`` (one intra-op thread, no spinning)."""
    from prgcn_ros.model.backends import OnnxBackend
    from prgcn_ros.model.export import export_model

    path = workdir / f"{model.arch['name']}_{len(list(workdir.iterdir()))}.onnx"
    export_model(model, path, "onnx", torch.zeros(shape))
    return OnnxBackend(path, threads=1)


def run_onnx(repeats: int) -> tuple[dict, dict, dict]:
    """(PR-GCN vs ST-GCN on onnxruntime, PR-GCN torch vs onnxruntime, PR-GCN with vs without
    rigid bones), one thread each."""
    import tempfile

    torch.set_num_threads(1)
    torch.manual_seed(0)
    networks, backends, rigid = {}, {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, layout, classes, shape in CASES + LIVE_CASES:
            live = (name, layout, classes, shape) in LIVE_CASES
            # The live cases run the shipped MSR model's architecture (rigid bones).
            prgcn = PRGCN(classes, layout, rigid_bones=live).eval()
            x = torch.randn(shape)
            reps = max(5, repeats // 2) if shape[2] >= 300 else repeats
            prgcn_ort = onnx_backend(prgcn, shape, Path(tmp))
            if (name, layout, classes, shape) in CASES:
                stgcn_ort = onnx_backend(STGCN(classes, layout).eval(), shape, Path(tmp))
                t = time_calls({"prgcn": prgcn_ort, "stgcn": stgcn_ort}, x, reps)
                mp, ms = (statistics.median(t[k]) * 1e3 for k in ("prgcn", "stgcn"))
                networks[name] = {"input_shape": list(shape), "repeats": reps,
                                  "prgcn_ms": round(mp, 2), "stgcn_ms": round(ms, 2),
                                  "ratio_stgcn_over_prgcn": round(ms / mp, 2)}
                print(f"  onnxruntime {name:18s} PR-GCN {mp:8.2f} ms  ST-GCN {ms:8.2f} ms  "
                      f"ratio {ms / mp:5.2f}x", flush=True)
            t = time_calls({"torch": prgcn, "onnxruntime": prgcn_ort}, x, reps)
            mt, mo = (statistics.median(t[k]) * 1e3 for k in ("torch", "onnxruntime"))
            backends[name] = {"input_shape": list(shape), "repeats": reps,
                              "torch_ms": round(mt, 2), "onnxruntime_ms": round(mo, 2),
                              "ratio_torch_over_onnxruntime": round(mt / mo, 2)}
            print(f"  PR-GCN {name:18s} torch {mt:8.2f} ms  onnxruntime {mo:8.2f} ms  "
                  f"ratio {mt / mo:5.2f}x", flush=True)
            if live:
                free = PRGCN(classes, layout).eval()
                free.load_state_dict(prgcn.state_dict())
                row = {"input_shape": list(shape), "repeats": reps}
                for backend, free_call, held_call in (
                        ("torch", free, prgcn),
                        ("onnxruntime", onnx_backend(free, shape, Path(tmp)), prgcn_ort)):
                    t = time_calls({"free": free_call, "rigid": held_call}, x, reps)
                    mf, mr = (statistics.median(t[k]) * 1e3 for k in ("free", "rigid"))
                    row[backend] = {"without_ms": round(mf, 2), "with_ms": round(mr, 2),
                                    "ratio_with_over_without": round(mr / mf, 2)}
                    print(f"  rigid bones {name:18s} {backend:11s} without {mf:7.2f} ms  "
                          f"with {mr:7.2f} ms  ratio {mr / mf:5.2f}x", flush=True)
                rigid[name] = row
    return networks, backends, rigid


def time_pair(prgcn: torch.nn.Module, stgcn: torch.nn.Module, x: torch.Tensor,
              repeats: int) -> tuple[list[float], list[float]]:
    """Seconds per forward of each model, measured in alternating order."""
    with torch.inference_mode():
        for _ in range(3):  # warm up allocators and kernels
            prgcn(x)
            stgcn(x)
        times: dict[str, list[float]] = {"prgcn": [], "stgcn": []}
        models = {"prgcn": prgcn, "stgcn": stgcn}
        for r in range(repeats):
            for name in (("prgcn", "stgcn") if r % 2 == 0 else ("stgcn", "prgcn")):
                start = time.perf_counter()
                models[name](x)
                times[name].append(time.perf_counter() - start)
    return times["prgcn"], times["stgcn"]


def run(threads: int, repeats: int) -> dict:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cases = {}
    for name, layout, classes, shape in CASES:
        prgcn = PRGCN(classes, layout).eval()
        stgcn = STGCN(classes, layout).eval()
        x = torch.randn(shape)
        # The long clip costs ST-GCN ~0.3-1 s a forward: fewer repeats there.
        reps = max(5, repeats // 2) if shape[2] >= 300 else repeats
        tp, ts = time_pair(prgcn, stgcn, x, reps)
        mp, ms = statistics.median(tp) * 1e3, statistics.median(ts) * 1e3
        cases[name] = {"input_shape": list(shape), "layout": layout, "classes": classes,
                       "repeats": reps, "prgcn_ms": round(mp, 2), "stgcn_ms": round(ms, 2),
                       "prgcn_ms_min": round(min(tp) * 1e3, 2),
                       "stgcn_ms_min": round(min(ts) * 1e3, 2),
                       "ratio_stgcn_over_prgcn": round(ms / mp, 2)}
        print(f"  threads={threads} {name:18s} PR-GCN {mp:8.2f} ms  ST-GCN {ms:8.2f} ms  "
              f"ratio {ms / mp:5.2f}x", flush=True)
    return cases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="few repeats, for a smoke test")
    parser.add_argument("--threads", type=int, nargs="*", default=[],
                        help="extra runs with these intra-op thread counts (1 and torch's "
                             "default always run)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--no-onnx", action="store_true", help="torch only")
    args = parser.parse_args(argv)
    repeats = 4 if args.quick else args.repeats
    default_threads = torch.get_num_threads()
    load_start = os.getloadavg()
    print(f"PR-GCN vs ST-GCN, torch {torch.__version__}, {os.cpu_count()} CPUs, default "
          f"threads {default_threads}, load average {load_start[0]:.2f}")
    runs = {"threads_1": run(1, repeats)}
    for threads in [default_threads, *args.threads]:
        if f"threads_{threads}" not in runs:
            runs[f"threads_{threads}"] = run(threads, repeats)
    onnx_networks, onnx_backends, rigid = ({}, {}, {}) if args.no_onnx else run_onnx(repeats)
    torch.set_num_threads(default_threads)
    headline = runs["threads_1"]
    result = {
        "what": "PR-GCN vs ST-GCN eval-mode forward time, alternating in one process, medians; "
                "the headline (ratios, cases) with one intra-op thread",
        "date": datetime.date.today().isoformat(),
        "machine": {"description": f"{os.cpu_count()}-core CPU", "cpus": os.cpu_count(),
                    "cpu_model": livekit.cpu_model(),
                    "processor": platform.processor() or platform.machine(),
                    "platform": platform.platform(), "torch": torch.__version__,
                    "default_threads": default_threads,
                    "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset"),
                    "load_average_at_start": [round(v, 2) for v in load_start],
                    "load_average_at_end": [round(v, 2) for v in os.getloadavg()]},
        "speed_ratio_stgcn_over_prgcn": headline["clip_300x18x2"]["ratio_stgcn_over_prgcn"],
        "goal_ratio": 3.5,
        "ratios": {name: case["ratio_stgcn_over_prgcn"] for name, case in headline.items()},
        "cases": headline,
        "runs": runs,
    }
    if onnx_networks:
        import onnxruntime

        result["machine"]["onnxruntime"] = onnxruntime.__version__
        result["onnxruntime"] = {
            "what": "PR-GCN vs ST-GCN, both exported with export_model and run on onnxruntime "
                    "(1 intra-op thread, no spinning), alternating, medians",
            "speed_ratio_stgcn_over_prgcn": onnx_networks["clip_300x18x2"][
                "ratio_stgcn_over_prgcn"],
            "cases": onnx_networks}
        result["prgcn_backends"] = {
            "what": "PR-GCN on torch eager (1 thread) vs onnxruntime (1 intra-op thread, no "
                    "spinning), alternating, medians; live_48x20_nN: the shipped model's input",
            "cases": onnx_backends}
        result["rigid_bones"] = {
            "what": "PR-GCN with vs without the rigid-bones layer (same weights), the shipped "
                    "model's input, torch (1 thread) and onnxruntime (1 intra-op thread), "
                    "alternating, medians",
            "cases": rigid}
    ratio = result["speed_ratio_stgcn_over_prgcn"]
    print(f"per-clip speed ratio ST-GCN / PR-GCN: {ratio:.2f}x (goal >= 3.5x, 1 thread)")
    if not args.no_write and not args.quick:
        livekit.update_results({"model": result}, RESULTS)   # under the other benches' lock
        print(f"written to {RESULTS} under 'model'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
