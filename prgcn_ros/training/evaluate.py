"""prgcn-eval: accuracy of a model file on the test split a training config describes.

    prgcn-eval --model models/prgcn_msr_action3d.safetensors \\
               --config config/train_msr_action3d.yaml --json
    prgcn-eval --model nw_ucla --json      # a shipped model by name, with its own config

The windowing and preprocessing settings come from the model's metadata (exactly what the model
was trained with, and what the live node uses); the config only says where the data is and
which clips form the test split. Prints top-1/top-5, per-class accuracy and writes a
confusion-matrix PNG; with ``--json``, one JSON object on stdout (``top1``, ``top5`` as
fractions, ``n`` clips, ``per_class``, ``confusion``, ...).
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from prgcn_ros.model.build import logits_of
from prgcn_ros.skeleton.preprocess import pair_orders, window_setting

from . import batching
from .config import ConfigError, in_channels, load_config, split_overlap
from .datasets import SequenceDataset, build_dataset, split_description


@torch.no_grad()
def predict(model: torch.nn.Module, dataset: SequenceDataset, cfg: dict,
            progress: bool = False, forward: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Scores (n, classes) and labels (n,) for every clip, in dataset order. ``forward``: the
    network call (a backend, see prgcn_ros.model.backends); default the model itself. With
    ``inference.pair_orders: both`` a two-person clip's scores are the mean over both slot
    orders, as live."""
    forward = model if forward is None else forward
    model.eval()
    batch_size = int(cfg.get("eval", {}).get("batch_size", 64))
    device = next(iter(model.parameters())).device
    both_orders = batching.max_persons(cfg) == 2 and pair_orders(cfg) == "both"
    scores, labels = [], []
    starts = range(0, len(dataset), batch_size)
    for start in tqdm(starts, desc="evaluating", disable=not progress, leave=False,
                      file=sys.stderr, dynamic_ncols=True):
        clips = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        x, y = batching.make_batch(clips, cfg, train=False)
        probs = torch.softmax(logits_of(forward(x.to(device))).float(), dim=1)
        if both_orders:
            x, _ = batching.make_batch(clips, cfg, train=False, persons_exchanged=True)
            probs = (probs + torch.softmax(logits_of(forward(x.to(device))).float(), dim=1)) / 2
        scores.append(probs.cpu().numpy())
        labels.append(y.numpy())
    return np.concatenate(scores), np.concatenate(labels)


def metrics(scores: np.ndarray, labels: np.ndarray, class_names: list[str]) -> dict[str, Any]:
    """top-1/top-5 (fractions), per-class accuracy and the confusion matrix (rows: truth)."""
    n, k = scores.shape
    if k != len(class_names):
        raise ValueError(f"{k} model outputs for {len(class_names)} class names")
    if np.any(labels < 0) or np.any(labels >= k):
        raise ValueError(f"labels outside 0..{k - 1}")
    pred = scores.argmax(1)
    top = np.argsort(-scores, axis=1, kind="stable")[:, :min(5, k)]
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (labels, pred), 1)
    per_class = {}
    for c, name in enumerate(class_names):
        total = int(confusion[c].sum())
        per_class[name] = {"n": total,
                           "accuracy": float(confusion[c, c] / total) if total else None}
    return {
        "top1": float((pred == labels).mean()) if n else 0.0,
        "top5": float((top == labels[:, None]).any(1).mean()) if n else 0.0,
        "n": int(n),
        "per_class": per_class,
        "confusion": confusion.tolist(),
        "class_names": list(class_names),
    }


def evaluate_model(model: torch.nn.Module, dataset: SequenceDataset, cfg: dict,
                   progress: bool = False, forward: Any = None) -> dict[str, Any]:
    scores, labels = predict(model, dataset, cfg, progress=progress, forward=forward)
    return metrics(scores, labels, list(dataset.class_names))


# 3D layouts whose recordings are in metres (the noise levels of the configs assume it).
_METRIC_LAYOUTS = ("kinect20", "ntu25", "azure32")


def _bone_cv(p: torch.Tensor, present: torch.Tensor, bones: list[tuple[int, int]]
             ) -> torch.Tensor:
    """Coefficient of variation over time of each bone's length, per (clip, bone, person) where
    the bone is seen in at least 3 frames: (K,) values. ``p`` (N, D, T, V, M) in sensor units."""
    out = []
    for a, b in bones:
        length = (p[:, :, :, a] - p[:, :, :, b]).norm(dim=1)                # (N, T, M)
        seen = (present[:, :, a] & present[:, :, b]).to(length.dtype)
        count = seen.sum(1)
        mean = (length * seen).sum(1) / count.clamp(min=1)
        var = (((length - mean[:, None]) ** 2) * seen).sum(1) / count.clamp(min=1)
        ok = (count >= 3) & (mean > 1e-6)
        out.append((var.sqrt() / mean.clamp(min=1e-6))[ok])
    return torch.cat(out) if out else torch.zeros(0)


def _acceleration(p: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """|p[t+1] - 2 p[t] + p[t-1]| of every joint seen in three consecutive frames (sensor
    units per frame squared), flattened."""
    acc = (p[:, :, 2:] - 2 * p[:, :, 1:-1] + p[:, :, :-2]).norm(dim=1)     # (N, T-2, V, M)
    seen = present[:, 2:] & present[:, 1:-1] & present[:, :-2]
    return acc[seen]


def savgol(x: torch.Tensor, dims: int, window: int = 7, order: int = 2) -> torch.Tensor:
    """The Savitzky-Golay baseline: scipy's filter over time, per joint and axis, on the first
    ``dims`` channels of (N, C, T, V, M) windows (the rest passes through)."""
    from scipy.signal import savgol_filter
    if x.shape[2] < window:
        return x.clone()
    out = x.clone()
    smooth = savgol_filter(x[:, :dims].double().numpy(), window, order, axis=2, mode="interp")
    out[:, :dims] = torch.from_numpy(smooth).to(x.dtype)
    return out


@torch.no_grad()
def evaluate_refinement(model: torch.nn.Module, dataset: SequenceDataset, cfg: dict,
                        strengths: list[float] | None = None, spikes_per_clip: int = 5,
                        spike_size: float = 0.5, seed: int = 0) -> dict[str, Any]:
    """What the PRM does to poses, on the dataset's evaluation windows.

    Clean windows: mean |offset| (cm when the input is in metres), bone-length coefficient of
    variation and mean joint acceleration of the refined vs the input window. Corrupted windows
    (the config's noise model at each strength, the same draws for every model with the same
    seed): MPJPE of the refined window against the clean one divided by the corrupted input's
    (``mpjpe_ratio``), the same for a Savitzky-Golay filter (window 7, order 2), and top-1.
    Label stability: the fraction of windows whose label changes when one frame gets a
    ``spike_size`` jump on one joint. Errors and offsets are in sensor units.
    """
    from prgcn_ros.skeleton.layouts import get_layout

    from .noise import corrupt, mpjpe, noise_config

    model.eval()
    layout = get_layout(cfg["layout"])
    strengths = list(strengths if strengths is not None else cfg["refine"]["eval_strengths"])
    batch_size = int(cfg.get("eval", {}).get("batch_size", 64))
    gen = torch.Generator().manual_seed(seed)
    has_prm = getattr(model, "prm", None) is not None
    offsets, cv_in, cv_out, acc_in, acc_out = [], [], [], [], []
    correct_clean = changed = spiked = 0
    per_strength = {s: {"err_in": 0.0, "err_ref": 0.0, "err_sg": 0.0, "correct": 0, "n": 0}
                    for s in strengths}
    n_total = 0
    for start in range(0, len(dataset), batch_size):
        clips = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        b = batching.build_batch(clips, cfg, train=False)
        d, n = b.dims, b.x.shape[0]
        n_total += n
        unit = b.scale[:, None, None, None, :]                 # model -> sensor units
        logits, refined = model(b.x)
        pred = logits.argmax(1)
        correct_clean += int((pred == b.labels).sum())
        sensor_in, sensor_ref = b.x[:, :d] * unit, refined[:, :d] * unit
        offset = (sensor_ref - sensor_in).norm(dim=1)                          # (N, T, V, M)
        offsets.append(offset[b.present])
        cv_in.append(_bone_cv(sensor_in, b.present, list(layout.bones)))
        cv_out.append(_bone_cv(sensor_ref, b.present, list(layout.bones)))
        acc_in.append(_acceleration(sensor_in, b.present))
        acc_out.append(_acceleration(sensor_ref, b.present))
        for s in strengths:
            noisy, _ = corrupt(b.x, b.present, b.scale, layout, noise_config(cfg, s), gen, dims=d,
                               missing=cfg["preprocess"]["missing"])
            out_logits, out_ref = model(noisy)
            row = per_strength[s]
            weight = b.present.to(torch.float32).sum((1, 2, 3))
            scale = b.scale.mean(1)
            for key, value in (("err_in", noisy), ("err_ref", out_ref),
                               ("err_sg", savgol(noisy, d))):
                row[key] += float((mpjpe(value, b.x, b.present, d) * scale * weight).sum())
            row["weight"] = row.get("weight", 0.0) + float(weight.sum())
            row["correct"] += int((out_logits.argmax(1) == b.labels).sum())
            row["n"] += n
        # Label stability: one joint of one frame jumps by spike_size (sensor units).
        t, v = b.x.shape[2], b.x.shape[3]
        for _ in range(spikes_per_clip):
            x = b.x.clone()
            frame = torch.randint(0, t, (n,), generator=gen)
            joint = torch.randint(0, v, (n,), generator=gen)
            direction = torch.randn((n, d), generator=gen)
            direction = direction / direction.norm(dim=1, keepdim=True).clamp(min=1e-6)
            jump = direction * spike_size / b.scale[:, :1]          # person 0, model units
            idx = torch.arange(n)
            x[idx, :d, frame, joint, 0] += jump
            changed += int((model(x)[0].argmax(1) != pred).sum())
            spiked += n

    def mean(parts: list[torch.Tensor]) -> float:
        values = torch.cat(parts) if parts else torch.zeros(0)
        return float(values.mean()) if values.numel() else float("nan")

    result: dict[str, Any] = {
        "has_prm": has_prm,
        "n": n_total,
        "top1_clean": correct_clean / max(n_total, 1),
        "clean": {
            "mean_offset": mean(offsets),
            "bone_cv_input": mean(cv_in), "bone_cv_refined": mean(cv_out),
            "acceleration_input": mean(acc_in), "acceleration_refined": mean(acc_out),
        },
        "label_change_one_spike": changed / max(spiked, 1),
        "spike_size": spike_size,
        "corrupted": {},
    }
    for s, row in per_strength.items():
        w = max(row.get("weight", 0.0), 1.0)
        err_in, err_ref, err_sg = row["err_in"] / w, row["err_ref"] / w, row["err_sg"] / w
        result["corrupted"][f"{s:g}"] = {
            "strength": s, "mpjpe_input": err_in, "mpjpe_refined": err_ref,
            # No error to divide at strength 0 (a clean baseline): null, as JSON has no NaN.
            "mpjpe_savgol": err_sg, "mpjpe_ratio": err_ref / err_in if err_in else None,
            "savgol_ratio": err_sg / err_in if err_in else None,
            "top1": row["correct"] / max(row["n"], 1),
        }
    result["noise"] = noise_config(cfg).to_dict()
    result["units"] = "m" if cfg["layout"] in _METRIC_LAYOUTS else "input units"
    return result


def plot_confusion(result: dict[str, Any], path: str | Path, title: str) -> Path:
    """Row-normalised confusion matrix as a PNG (counts written in the cells)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    confusion = np.asarray(result["confusion"], dtype=np.float64)
    names = result["class_names"]
    k = len(names)
    rows = confusion.sum(1, keepdims=True)
    norm = np.divide(confusion, rows, out=np.zeros_like(confusion), where=rows > 0)
    size = max(6.0, 0.42 * k + 2.5)
    fig, ax = plt.subplots(figsize=(size, size * 0.92), dpi=110)
    image = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0)
    if k <= 60:
        ax.set_xticks(range(k), names, rotation=90, fontsize=8)
        ax.set_yticks(range(k), names, fontsize=8)
        if k <= 30:
            for i in range(k):
                for j in range(k):
                    if confusion[i, j]:
                        ax.text(j, i, int(confusion[i, j]), ha="center", va="center",
                                fontsize=7, color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title}\ntop-1 {100 * result['top1']:.1f} %, top-5 "
                 f"{100 * result['top5']:.1f} %, {result['n']} clips", fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def calibration_report(scores: np.ndarray, labels: np.ndarray, metadata: dict[str, Any]
                       ) -> dict[str, Any]:
    """ECE and confidence of the clips before and after the model's temperature (from its
    metadata; none: T = 1, only the "before" figures mean anything)."""
    from .calibration import report, temperature_of

    stored = metadata.get("calibration") or {}
    out = report(scores, labels, temperature_of(metadata))
    out["temperature"] = stored.get("temperature")
    out["fitted_on"] = stored.get("split")
    if stored.get("not_applied"):
        out["not_applied"] = stored["not_applied"]
    return out


def config_for_model(cfg: dict, metadata: dict[str, Any]) -> dict:
    """The config with the model's own windowing/preprocessing (its metadata wins)."""
    cfg = copy.deepcopy(cfg)
    if metadata.get("preprocess"):
        cfg["preprocess"] = dict(metadata["preprocess"])
    # Read as the live node reads it (a plain length or a dict; what a model lacks at its default).
    mode, length, interpolation = window_setting(metadata.get("window"))
    cfg["window"].update(mode=mode, length=length, interpolation=interpolation)
    if metadata.get("max_persons"):
        cfg["data"]["max_persons"] = int(metadata["max_persons"])
    # As live: the model's own setting, else the slot order as given.
    cfg["inference"] = {"pair_orders": "given", **(metadata.get("inference") or {})}
    # A cross-validated model (SBU) is tested on the fold it was trained without.
    trained_on = (metadata.get("training") or {}).get("data") or {}
    if cfg["data"].get("kind") == "sbu_interaction" and trained_on.get("fold"):
        cfg["data"]["fold"] = int(trained_on["fold"])
    return cfg


def run(model_path: str | Path, cfg: dict, split: str = "test", confusion: str | None = None,
        device: str = "cpu", progress: bool = True, refinement: bool = False,
        backend: str = "torch") -> dict[str, Any]:
    from prgcn_ros.model.io import load_model, resolve_model
    from prgcn_ros.recognition import metadata_problem

    model_path = resolve_model(model_path)
    model, metadata = load_model(model_path, device=device, expected_layout=cfg["layout"],
                                 expected_channels=in_channels(cfg),
                                 expected_by=f"the config {cfg.get('_path') or ''}".strip())
    problem = metadata_problem(metadata)      # what the live node would refuse, too
    if problem:
        raise ConfigError(f"model {model_path}: {problem}")
    trained_on = (metadata.get("training") or {}).get("data") or {}
    same_data = trained_on.get("dataset") == split_description(cfg).get("dataset")
    overlap = same_data and split_overlap({**trained_on, "kind": cfg["data"]["kind"]},
                                          cfg["data"])
    if overlap and split == "test":
        raise ConfigError(f"model {model_path} was trained on {overlap} of the config's test "
                          f"split: its accuracy there would not be a test figure")
    cfg = config_for_model(cfg, metadata)
    dataset = build_dataset(cfg, split)
    names = metadata.get("class_names")
    if names and list(names) != list(dataset.class_names):
        differ = (f"{len(names)} vs {len(dataset.class_names)} classes"
                  if len(names) != len(dataset.class_names) else
                  "first difference: " + next(f"{a!r} vs {b!r}" for a, b in
                                              zip(names, dataset.class_names) if a != b))
        raise ConfigError(f"{model_path}: the model's class names do not match the dataset's "
                          f"({differ})")
    forward, backend_name = _backend(backend, model, model_path, dataset, cfg, device)
    scores, labels = predict(model, dataset, cfg, progress=progress, forward=forward)
    result = metrics(scores, labels, list(dataset.class_names))
    result["calibration"] = calibration_report(scores, labels, metadata)
    result = {"model": str(model_path), "split": dataset.description, "backend": backend_name,
              **result}
    png = confusion or str(Path(cfg["output"]["dir"]) / "confusion.png")
    if cfg.get("eval", {}).get("confusion_png") and confusion is None:
        png = cfg["eval"]["confusion_png"]
    result["confusion_png"] = str(plot_confusion(result, png, f"{Path(model_path).name} on "
                                                 f"{dataset.description}"))
    if refinement:
        result["refinement"] = evaluate_refinement(model.cpu(), dataset, cfg)
    return result


def config_path(model: str, config: str | None = None) -> Path:
    """The config given, else the shipped config of a shipped model's name."""
    from prgcn_ros import paths
    from prgcn_ros.model.io import SHIPPED_MODELS, is_model_name

    if config:
        return Path(config)
    if is_model_name(model) and model in SHIPPED_MODELS:
        return paths.share_file("config", f"train_{model}.yaml")
    raise ConfigError("--config is required unless --model is a shipped model's name "
                      f"({', '.join(SHIPPED_MODELS)})")


def _safe_png(png: str, cfg: dict, force: bool) -> Path:
    from .outputs import safe_destination
    return safe_destination(png, cfg["output"]["dir"], force, "confusion PNG",
                            lambda msg: print(f"prgcn-eval: {msg}", file=sys.stderr))


def _backend(kind: str, model: torch.nn.Module, model_path: str | Path,
             dataset: SequenceDataset, cfg: dict, device: str) -> tuple[Any, str]:
    """The network call the live node would use for ``kind`` (its ONNX graph checked against
    the model on one evaluation window, as at the node's start)."""
    if kind == "torch":
        return None, "torch"
    from prgcn_ros.model.backends import ExportError, make_backend, resolve_backend

    asked, kind = kind, resolve_backend(kind, device)
    window, _ = batching.make_batch([dataset[0]], cfg, train=False)
    try:
        forward, info = make_backend(
            kind, model, model_path, window.to(device), threads=torch.get_num_threads(),
            device=device, announce=lambda what: print(f"prgcn-eval: {what}", file=sys.stderr))
    except ExportError as error:
        if asked != "auto":
            raise
        # As the node: auto runs torch where no graph can be made.
        print(f"prgcn-eval: {error}; running torch", file=sys.stderr)
        return None, "torch"
    return (None if kind == "torch" else forward), info.name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="prgcn-eval", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True,
                        help="model file (.safetensors) or a shipped model's name "
                             "(msr_action3d, nw_ucla, utd_mhad, sbu_interaction)")
    parser.add_argument("--config", help="training config naming the data (default for a "
                        "shipped model's name: its config/train_<name>.yaml)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set data.dir=/data (a "
                             "cross-validated model is always tested on the fold it was "
                             "trained without)")
    parser.add_argument("--force", action="store_true",
                        help="let the confusion PNG overwrite a file tracked by git")
    parser.add_argument("--split", default="test", choices=("test", "train"))
    parser.add_argument("--confusion", help="confusion-matrix PNG to write "
                        "(default: the config's eval.confusion_png, else output.dir)")
    parser.add_argument("--device", default="cpu",
                        help="auto (CUDA where there is one), cpu (default), cuda or cuda:N")
    parser.add_argument("--refinement", action="store_true",
                        help="also measure the PRM: offsets, jitter and bone lengths on clean "
                             "windows, MPJPE on windows corrupted by the config's noise model "
                             "(against a Savitzky-Golay filter), label changes after one spike")
    parser.add_argument("--backend", default="torch", choices=("torch", "onnxruntime", "auto"),
                        help="network call: torch (default) or the live node's onnxruntime "
                             "graph (cached beside the model)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    try:
        from .train import parse_set
        cfg = load_config(config_path(args.model, args.config), parse_set(args.set) or None)
        png = args.confusion or cfg.get("eval", {}).get("confusion_png") or \
            str(Path(cfg["output"]["dir"]) / "confusion.png")
        args.confusion = str(_safe_png(png, cfg, args.force))
        from prgcn_ros.model.backends import resolve_device

        result = run(args.model, cfg, split=args.split, confusion=args.confusion,
                     device=str(resolve_device(args.device)), progress=not args.json,
                     refinement=args.refinement, backend=args.backend)
    except (ConfigError, FileNotFoundError, OSError, RuntimeError, ValueError) as exc:
        print(f"prgcn-eval: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, allow_nan=False))
        return 0
    print(f"{result['model']} on {result['split']}: {result['n']} clips")
    print(f"top-1 {100 * result['top1']:.2f} %   top-5 {100 * result['top5']:.2f} %")
    cal = result["calibration"]
    if cal["temperature"]:
        print(f"confidence: temperature {cal['temperature']:.3f}, ECE {cal['ece_before']:.3f} "
              f"-> {cal['ece_after']:.3f}, mean top-1 confidence "
              f"{cal['mean_confidence_before']:.3f} -> {cal['mean_confidence_after']:.3f}")
    else:
        print("confidence: not calibrated (no temperature in the metadata"
              + (f": {cal['not_applied']}" if cal.get("not_applied") else "")
              + f"), ECE {cal['ece_before']:.3f}")
    width = max(len(name) for name in result["per_class"])
    for name, row in result["per_class"].items():
        acc = "   -" if row["accuracy"] is None else f"{100 * row['accuracy']:5.1f} %"
        print(f"  {name:<{width}}  {acc}  ({row['n']} clips)")
    print(f"confusion matrix: {result['confusion_png']}")
    if "refinement" in result:
        print(format_refinement(result["refinement"]))
    return 0


def format_refinement(r: dict[str, Any]) -> str:
    """The refinement measurement as a few lines of text."""
    c, u = r["clean"], r["units"]
    lines = [f"refinement on {r['n']} clean windows: mean |offset| {c['mean_offset']:.4f} {u}, "
             f"bone-length CV {c['bone_cv_refined']:.4f} (input {c['bone_cv_input']:.4f}), "
             f"acceleration {c['acceleration_refined']:.4f} (input "
             f"{c['acceleration_input']:.4f}) {u}/frame^2",
             f"one {r['spike_size']:g} {u} spike changes {100 * r['label_change_one_spike']:.1f} "
             f"% of labels"]
    def ratio(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    for key, row in r["corrupted"].items():
        lines.append(f"noise x{key}: MPJPE input {row['mpjpe_input']:.4f}, refined "
                     f"{row['mpjpe_refined']:.4f} (ratio {ratio(row['mpjpe_ratio'])}), "
                     f"Savitzky-Golay {row['mpjpe_savgol']:.4f} (ratio "
                     f"{ratio(row['savgol_ratio'])}) {u}; top-1 {100 * row['top1']:.1f} %")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
