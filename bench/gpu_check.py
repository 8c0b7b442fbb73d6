"""GPU check: the model and the live pipeline on CUDA, host<->device copies counted, timings.

    .venv/bin/python bench/gpu_check.py [--device cuda] [--json OUT.json]

Run by bench/gpu_check.sh on a machine with a CUDA GPU (``--device cpu`` runs the same code
paths without the copy checks, to try the script out anywhere). It

1. checks that the PR-GCN forward matches the CPU one on the same weights (tolerance 1e-3 in
   float32; with torch's default TF32 convolutions, 1 % of the logits' scale);
2. times, with CUDA events, PR-GCN and ST-GCN per clip on (1, 3, 300, 18, 2) (coco18,
   400 classes), alternating, and the model (kinect20, the live model's architecture and
   window) on streaming windows of N = 1, 4, 10 people, plus (3, 64, 25, 1) windows (ntu25);
3. drives the ROS-free live pipeline (prgcn_ros.recognition.Recognizer, device cuda) with 10
   people of real MSR Action3D recordings and counts, with torch.profiler, the host-to-device
   and device-to-host copies: ingesting must upload exactly one copy per person-frame and
   download nothing; one inference may copy a fixed handful (index tensors up, results down)
   that does not grow with the frames held;
4. times the pipeline's ingest per message and infer per batch of 1, 4, 10 people;
5. where onnxruntime has the CUDA provider (onnxruntime-gpu), builds the recognizer's
   onnxruntime backend on the GPU (its start-up check against torch must pass) and times it
   against torch on CUDA for N = 1, 4, 10, 20 live windows; skipped, and said so, otherwise.

Exit status 1 when a check fails. Everything it measures is printed, and on CUDA written under
"gpu_check" in bench/results.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import livekit  # noqa: E402

from prgcn_ros.model.build import build_model  # noqa: E402
from prgcn_ros.model.io import load_model  # noqa: E402
from prgcn_ros.recognition import InputFrame, Recognizer, RecognizerParams  # noqa: E402
from prgcn_ros.skeleton.readers import read_msr_action3d  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_ms(fn, device: torch.device, repeats: int) -> float:
    """Median wall time of fn() in ms (CUDA events on a GPU)."""
    fn()
    sync(device)
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t = time.perf_counter()
            fn()
            times.append(1e3 * (time.perf_counter() - t))
    return round(statistics.median(times), 3)


def per_clip(device: torch.device, repeats: int) -> dict:
    """PR-GCN vs ST-GCN on one (3, 300, 18, 2) clip, alternating in one process."""
    torch.manual_seed(0)
    models = {name: build_model({"name": name, "num_classes": 400, "layout": "coco18"})
              .to(device).eval() for name in ("prgcn", "stgcn")}
    x = torch.randn(1, 3, 300, 18, 2, device=device)
    runs: dict[str, list[float]] = {name: [] for name in models}
    with torch.inference_mode():
        for _ in range(3):
            for name, model in models.items():
                runs[name].append(time_ms(lambda m=model: m(x), device, repeats))
    out = {f"{name}_ms": round(statistics.median(v), 3) for name, v in runs.items()}
    out["ratio_stgcn_over_prgcn"] = round(out["stgcn_ms"] / out["prgcn_ms"], 2)
    return out


def streaming(model: torch.nn.Module, window: int, device: torch.device, repeats: int) -> dict:
    """The live model on (N, 3, window, V, 1) windows, and PR-GCN (ntu25) on (N, 3, 64, 25, 1)."""
    torch.manual_seed(0)
    ntu = build_model({"name": "prgcn", "num_classes": 60, "layout": "ntu25"}).to(device).eval()
    v = model.layout.num_joints
    out = {}
    with torch.inference_mode():
        for n in (1, 4, 10):
            x = torch.randn(n, 3, window, v, 1, device=device)
            out[f"live_model_T{window}_N{n}_ms"] = time_ms(lambda x=x: model(x), device, repeats)
            y = torch.randn(n, 3, 64, 25, 1, device=device)
            out[f"ntu25_T64_N{n}_ms"] = time_ms(lambda y=y: ntu(y), device, repeats)
    return out


def matches_cpu(model: torch.nn.Module, window: int, device: torch.device
                ) -> dict[str, float]:
    """Max abs difference of the logits from the CPU's: in full float32 (TF32 off), and with
    torch's defaults on this GPU (cuDNN convolutions in TF32 on Ampere and later); the same of
    the refined poses under ``<name>_refined`` (the onnxruntime start-up check bounds both)."""
    cpu_model = model.to("cpu")
    x = torch.randn(4, 3, window, model.layout.num_joints, 1)
    flags = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    out = {}
    with torch.inference_mode():
        ref, ref_refined = cpu_model(x)
        model.to(device)
        # "default": each flag as torch had it (cuDNN TF32 on, matmul TF32 off), as the
        # recognizer runs; it had set both to cuDNN's.
        for name, (conv, matmul) in (("float32", (False, False)), ("default", flags)):
            torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = conv, matmul
            got, got_refined = (y.cpu() for y in model(x.to(device)))
            out[name] = float((ref - got).abs().max())
            out[f"{name}_refined"] = float((ref_refined - got_refined).abs().max())
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = flags
    out["max_abs_logit"] = float(ref.abs().max())
    return out


class People:
    """Ten people from real MSR Action3D recordings, as InputFrames (driver ids 0..9)."""

    def __init__(self, count: int) -> None:
        self.seqs = [read_msr_action3d(p) for p in livekit.msr_recordings(count)]
        self.k = 0

    def frame(self, persons: int) -> InputFrame:
        self.k += 1
        coords = [s.coords[self.k % s.num_frames, 0] + (1.2 * i, 0, 0)
                  for i, s in enumerate(self.seqs[:persons])]
        conf = [s.confidence[self.k % s.num_frames, 0] for s in self.seqs[:persons]]
        return InputFrame(stamp_ns=self.k * 33_333_333, frame_id="gpu_check",
                          layout="kinect20", ids=list(range(persons)), coords=coords,
                          confidence=conf)


def copies(prof) -> dict[str, int]:
    """Host-to-device and device-to-host copies the profiler saw (CUDA memcpy activities)."""
    counts = {"HtoD": 0, "DtoH": 0, "DtoD": 0}
    for event in prof.events():
        name = event.name
        if "Memcpy" in name or "memcpy" in name:
            for kind in counts:
                if kind in name:
                    counts[kind] += 1
    return counts


def pipeline(path: Path, device: torch.device, repeats: int) -> tuple[dict, list[str]]:
    """Copies per ingested frame and per inference, and the pipeline's timings."""
    # Passes back to back, as fast as they go (no per-person rate limit), each of everyone.
    params = RecognizerParams(model=str(path), device=device.type, max_rate_hz=1e9,
                              max_batch=1000)
    recognizer = Recognizer.from_params(params)
    people = People(10)
    failures: list[str] = []
    out: dict = {}
    for _ in range(params.window):   # fill every ring buffer
        recognizer.ingest(people.frame(10))
    recognizer.infer()
    sync(device)
    if device.type == "cuda":
        from torch.profiler import ProfilerActivity, profile

        messages = 30
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            for _ in range(messages):
                recognizer.ingest(people.frame(10))
            sync(device)
        ingest = copies(prof)
        frames = messages * 10
        out["ingest_copies_per_person_frame"] = {k: round(v / frames, 3)
                                                 for k, v in ingest.items()}
        if ingest["HtoD"] != frames or ingest["DtoH"]:
            failures.append(f"ingesting {frames} person-frames made {ingest}, expected "
                            f"{frames} HtoD and no DtoH")
        per_infer = {}
        for held in (10, params.window):
            for n in (1, 10):
                rec = Recognizer.from_params(params)
                for _ in range(held):
                    rec.ingest(people.frame(n))
                sync(device)
                with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                    rec.infer()
                    sync(device)
                per_infer[f"N{n}_held{held}"] = copies(prof)
        out["infer_copies"] = per_infer
        growth = {k: per_infer[f"N10_held{params.window}"][k] - per_infer["N10_held10"][k]
                  for k in ("HtoD", "DtoH")}
        if any(growth.values()):
            failures.append(f"copies per inference grow with the frames held: {per_infer}")
    # Timings: ingest of one 10-person message; infer with 1, 4, 10 people.
    t = time.perf_counter()
    for _ in range(200):
        recognizer.ingest(people.frame(10))
    sync(device)
    out["ingest_10_people_us"] = round((time.perf_counter() - t) / 200 * 1e6, 1)
    for n in (1, 4, 10):
        rec = Recognizer.from_params(params)
        for _ in range(params.window):
            rec.ingest(people.frame(n))

        def infer(rec=rec, n=n):
            rec.ingest(people.frame(n))
            rec.infer()
        out[f"ingest_and_infer_N{n}_ms"] = time_ms(infer, device, repeats)
    return out, failures


def onnx_cuda(path: Path, model: torch.nn.Module, window: int, device: torch.device,
              repeats: int) -> tuple[dict, list[str]]:
    """The onnxruntime backend on the CUDA provider vs torch on CUDA (item 5)."""
    import tempfile

    try:
        import onnxruntime as ort
    except ImportError:
        return {"skipped": "onnxruntime is not installed"}, []
    if device.type != "cuda" or "CUDAExecutionProvider" not in ort.get_available_providers():
        return {"skipped": f"onnxruntime {ort.__version__} has no CUDAExecutionProvider "
                           f"(onnxruntime-gpu not installed) or the device is not cuda"}, []
    from prgcn_ros.model.backends import (
        BackendError,
        TorchBackend,
        check_window,
        make_backend,
    )

    arch = model.arch
    with tempfile.TemporaryDirectory() as tmp:
        try:
            backend, info = make_backend(
                "onnxruntime", model, path,
                check_window(int(arch.get("in_channels", 3)), window, model.layout.num_joints)
                .to(device), threads=1, device=device, cache_dir=tmp)
        except BackendError as error:
            return {"error": str(error)}, [f"onnxruntime CUDA backend: {error}"]
        out: dict = {"onnxruntime": ort.__version__, "max_abs_diff_vs_torch": info.max_diff,
                     "providers": backend.session.get_providers(), "windows": {}}
        reference = TorchBackend(model)
        for n in (1, 4, 10, 20):
            x = torch.randn(n, int(arch.get("in_channels", 3)), window,
                            model.layout.num_joints, 1, device=device)
            out["windows"][f"n{n}"] = {
                "torch_cuda_ms": time_ms(lambda x=x: reference(x), device, repeats),
                "onnxruntime_cuda_ms": time_ms(lambda x=x: backend(x), device, repeats)}
    failures = []
    if "CUDAExecutionProvider" not in out["providers"]:
        failures.append("the onnxruntime session fell back to the CPU provider")
    return out, failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here: skipped")
        return 0
    path, kind = livekit.model_file()
    model, meta = load_model(path, device)
    window = int((meta.get("window") or {}).get("length", 48))
    report: dict = {"device": str(device), "torch": torch.__version__,
                    "card": torch.cuda.get_device_name(device) if device.type == "cuda" else
                    livekit.cpu_model(), "model": f"{path.name} ({kind})", "window": window,
                    "torch_threads": torch.get_num_threads()}
    failures = []
    report["max_abs_diff_vs_cpu"] = diff = matches_cpu(model, window, device)
    if diff["float32"] > 1e-3:
        failures.append(f"{device} and CPU outputs differ by {diff['float32']:.2e} in float32")
    # TF32 keeps 10 mantissa bits: about 1e-3 of the logits' scale is expected (4e-3 measured
    # on an H200 with logits up to ~8); more would be a wrong kernel, not rounding.
    if diff["default"] > 1e-2 * max(diff["max_abs_logit"], 1.0):
        failures.append(f"{device} and CPU outputs differ by {diff['default']:.2e} with TF32")
    report["per_clip"] = per_clip(device, args.repeats)
    report["streaming"] = streaming(model, window, device, args.repeats)
    report["pipeline"], more = pipeline(path, device, args.repeats)
    failures += more
    report["onnxruntime_cuda"], more = onnx_cuda(path, model, window, device, args.repeats)
    failures += more
    report["failures"] = failures
    report["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(json.dumps(report, indent=2))
    if device.type == "cuda":
        livekit.update_results({"gpu_check": report})
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    for failure in failures:
        print(f"gpu_check: FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
