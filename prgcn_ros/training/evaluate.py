"""prgcn-eval: accuracy of a model file on the test split a training config describes.

    prgcn-eval --model models/prgcn_msr_action3d.safetensors \\
               --config config/train_msr_action3d.yaml --json

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

from . import batching
from .config import ConfigError, load_config
from .datasets import SequenceDataset, build_dataset


def _logits(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, (tuple, list)) else output


@torch.no_grad()
def predict(model: torch.nn.Module, dataset: SequenceDataset, cfg: dict,
            progress: bool = False, forward: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Scores (n, classes) and labels (n,) for every clip, in dataset order. ``forward``: the
    network call (a backend, see prgcn_ros.model.backends); default the model itself."""
    forward = model if forward is None else forward
    model.eval()
    batch_size = int(cfg.get("eval", {}).get("batch_size", 64))
    device = next(iter(model.parameters())).device
    scores, labels = [], []
    starts = range(0, len(dataset), batch_size)
    for start in tqdm(starts, desc="evaluating", disable=not progress, leave=False,
                      file=sys.stderr, dynamic_ncols=True):
        clips = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        x, y = batching.make_batch(clips, cfg, train=False)
        scores.append(torch.softmax(_logits(forward(x.to(device))).float(), dim=1).cpu().numpy())
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


def config_for_model(cfg: dict, metadata: dict[str, Any]) -> dict:
    """The config with the model's own windowing/preprocessing (its metadata wins)."""
    cfg = copy.deepcopy(cfg)
    if metadata.get("preprocess"):
        cfg["preprocess"] = dict(metadata["preprocess"])
    window = metadata.get("window") or {}
    if "window_length" in metadata:
        cfg["window"]["length"] = int(metadata["window_length"])
    for key in ("length", "mode"):
        if key in window:
            cfg["window"][key] = window[key]
    if metadata.get("max_persons"):
        cfg["data"]["max_persons"] = int(metadata["max_persons"])
    return cfg


def run(model_path: str | Path, cfg: dict, split: str = "test", confusion: str | None = None,
        device: str = "cpu", progress: bool = True, backend: str = "torch") -> dict[str, Any]:
    from prgcn_ros.model.io import load_model

    model, metadata = load_model(model_path, device=device, expected_layout=cfg["layout"],
                                 expected_channels=int(cfg["model"]["in_channels"]))
    cfg = config_for_model(cfg, metadata)
    dataset = build_dataset(cfg, split)
    names = metadata.get("class_names")
    if names and list(names) != list(dataset.class_names):
        raise ConfigError(f"{model_path}: the model's class names do not match the dataset's "
                          f"({len(names)} vs {len(dataset.class_names)} classes)")
    forward, backend = _backend(backend, model, model_path, dataset, cfg, device)
    result = evaluate_model(model, dataset, cfg, progress=progress, forward=forward)
    result = {"model": str(model_path), "split": dataset.description, "backend": backend,
              **result}
    png = confusion or str(Path(cfg["output"]["dir"]) / "confusion.png")
    if cfg.get("eval", {}).get("confusion_png") and confusion is None:
        png = cfg["eval"]["confusion_png"]
    result["confusion_png"] = str(plot_confusion(result, png, f"{Path(model_path).name} on "
                                                 f"{dataset.description}"))
    return result


def _backend(kind: str, model: torch.nn.Module, model_path: str | Path,
             dataset: SequenceDataset, cfg: dict, device: str) -> tuple[Any, str]:
    """The network call the live node would use for ``kind`` (its ONNX graph checked against
    the model on one evaluation window, as at the node's start)."""
    if kind == "torch":
        return None, "torch"
    from prgcn_ros.model.backends import make_backend, resolve_backend

    kind = resolve_backend(kind, device)
    window, _ = batching.make_batch([dataset[0]], cfg, train=False)
    forward, info = make_backend(kind, model, model_path, window.to(device),
                                 threads=torch.get_num_threads(), device=device)
    return (None if kind == "torch" else forward), info.name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="prgcn-eval", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="model file (.safetensors)")
    parser.add_argument("--config", required=True, help="training config naming the data")
    parser.add_argument("--split", default="test", choices=("test", "train"))
    parser.add_argument("--confusion", help="confusion-matrix PNG to write "
                        "(default: the config's eval.confusion_png, else output.dir)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backend", default="torch", choices=("torch", "onnxruntime", "auto"),
                        help="network call: torch (default) or the live node's onnxruntime "
                             "graph (cached beside the model)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config)
        result = run(args.model, cfg, split=args.split, confusion=args.confusion,
                     device=args.device, progress=not args.json, backend=args.backend)
    except (ConfigError, FileNotFoundError, OSError, RuntimeError, ValueError) as exc:
        print(f"prgcn-eval: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{result['model']} on {result['split']}: {result['n']} clips")
    print(f"top-1 {100 * result['top1']:.2f} %   top-5 {100 * result['top5']:.2f} %")
    width = max(len(name) for name in result["per_class"])
    for name, row in result["per_class"].items():
        acc = "   -" if row["accuracy"] is None else f"{100 * row['accuracy']:5.1f} %"
        print(f"  {name:<{width}}  {acc}  ({row['n']} clips)")
    print(f"confusion matrix: {result['confusion_png']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
