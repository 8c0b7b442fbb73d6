"""The ablation study: PR-GCN against itself without PRM, without TAM, and with sequential fusion,
each trained with the same recipe and seeds, evaluated on the same test split.

    python -m prgcn_ros.training.ablations --config config/train_msr_action3d.yaml \\
        --seeds 1 2 3 --out docs/ablations_msr_action3d.json

Results are merged into ``--out`` as each run finishes (a run already there is not repeated,
a run that was stopped resumes from its checkpoint), so the study can be stopped and continued.
Model files go to ``runs/ablations/`` (not shipped).
``--baseline-model`` takes the full model's result for its seed from a model file trained with
the same config (e.g. the shipped one) instead of training it again.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

from .checkpoint import STATE
from .config import load_config, recipe, with_defaults
from .train import code_version, train

# Config overrides of each variant.
# Without a PRM there are no refined bones to hold (model.rigid_bones).
VARIANTS: dict[str, dict[str, Any]] = {
    "PR-GCN": {},
    "without PRM": {"model": {"use_prm": False, "rigid_bones": False}},
    "without TAM": {"model": {"use_tam": False}},
    "sequential fusion": {"model": {"fusion": "sequential"}},
    "without PRM and TAM": {"model": {"use_prm": False, "use_tam": False,
                                      "rigid_bones": False}},
    # The paper's PRM: trained by the classification loss alone, on clean windows, at the
    # network's learning rate.
    "classification-only PRM": {"refine": {"objective": "classification", "prm_lr_scale": 1.0}},
    # The paper's baseline: no PRM, clean windows.
    "without PRM, clean training": {"model": {"use_prm": False, "rigid_bones": False},
                                    "refine": {"objective": "classification"}},
}


def _summary(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    top1 = [r["top1"] for r in runs.values()]
    top5 = [r["top5"] for r in runs.values()]
    out = {"seeds": sorted(int(s) for s in runs), "top1_mean": statistics.fmean(top1),
           "top5_mean": statistics.fmean(top5), "top1_min": min(top1), "top1_max": max(top1)}
    out["top1_std"] = statistics.stdev(top1) if len(top1) > 1 else 0.0
    return out


def _recipe(cfg: dict) -> dict[str, Any]:
    """What trains the model but the seed and the network (the study's variables)."""
    return {k: v for k, v in recipe(cfg).items() if k not in ("seed", "model")}


def baseline_from_model(config: str | Path, model: Path) -> tuple[int, dict[str, Any]]:
    """(seed, run entry) of a full PR-GCN model file trained with ``config``'s recipe."""
    meta = json.loads(model.with_suffix(".json").read_text())
    trained = with_defaults(meta["training"]["config"])
    seed = int(meta["training"]["seed"])
    cfg = load_config(config, {"seed": seed})
    arch = meta["architecture"]
    if _recipe(trained) != _recipe(cfg) or not (arch.get("use_prm") and arch.get("use_tam")
                                                and arch.get("fusion") == "parallel"):
        raise ValueError(f"{model} was not trained as the full model with {config}'s recipe")
    acc = meta["accuracy"]
    return seed, {"top1": acc["top1"], "top5": acc["top5"], "n": acc["n"],
                  "train_time_s": meta["training"]["train_time_s"], "model": str(model)}


def _load(out: Path) -> dict[str, Any]:
    doc = json.loads(out.read_text()) if out.is_file() else {}
    doc.setdefault("variants", {})
    return doc


def _record(out: Path, name: str, seed: int, run: dict[str, Any],
            extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Merge one run into the file as it is on disk now (another study may share it)."""
    doc = _load(out)
    entry = doc["variants"].setdefault(name, {"overrides": VARIANTS[name], "runs": {}})
    entry["runs"][str(seed)] = run
    entry["summary"] = _summary(entry["runs"])
    doc.update(extra or {})
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    tmp.replace(out)
    return doc


def run_study(config: str | Path, variants: list[str], seeds: list[int], out: Path,
              work_dir: Path, progress: bool = False,
              baseline_model: Path | None = None) -> dict[str, Any]:
    recipe = _recipe(load_config(config))          # the base recipe, variants' overrides aside
    recorded = _load(out).get("recipe")
    if recorded is not None and recorded != recipe:
        # Means over runs of two recipes would be no figure of either.
        raise ValueError(f"{out} holds runs of another recipe than {config}'s: give another "
                         f"--out (or remove it to start over)")
    if baseline_model is not None:
        seed, run = baseline_from_model(config, baseline_model)
        _record(out, "PR-GCN", seed, run)
    for seed in seeds:
        for name in variants:
            if str(seed) in _load(out)["variants"].get(name, {}).get("runs", {}):
                continue
            slug = name.replace(" ", "_").lower()
            # An ablation's figure is its top-1: no cross-fitted temperature (five trainings).
            cfg = load_config(config, {
                "seed": seed, **VARIANTS[name], "calibration": {"cross_fit": None},
                "output": {"dir": str(work_dir / f"{slug}_seed{seed}"),
                           "model": str(work_dir / f"{slug}_seed{seed}.safetensors"),
                           "checkpoint_every": 10}})
            # A run that was stopped continues from its last checkpoint (exactly: see train.py).
            run_dir = Path(cfg["output"]["dir"])
            resume = run_dir if (run_dir / STATE).is_file() else None
            result = train(cfg, resume=resume, progress=progress)
            acc = result["accuracy"]
            run = {"top1": acc["top1"], "top5": acc["top5"], "n": acc["n"],
                   "train_time_s": round(result["train_time_s"], 1)}
            _record(out, name, seed, run, {"config": str(config), "split": acc["split"],
                                           "recipe": recipe,
                                           "code_version": code_version()})
            print(f"{name} seed {seed}: top-1 {acc['top1']:.4f} top-5 {acc['top5']:.4f}",
                  file=sys.stderr, flush=True)
    return _load(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS)[:4],
                        choices=list(VARIANTS))
    parser.add_argument("--out", required=True, help="results JSON (merged)")
    parser.add_argument("--work-dir", default="runs/ablations")
    parser.add_argument("--baseline-model", type=Path,
                        help="a full PR-GCN model trained with --config: its seed is not rerun")
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)
    doc = run_study(args.config, args.variants, args.seeds, Path(args.out), Path(args.work_dir),
                    progress=args.progress, baseline_model=args.baseline_model)
    for name, entry in doc["variants"].items():
        if "summary" in entry:
            s = entry["summary"]
            print(f"{name:<22} top-1 {100 * s['top1_mean']:.1f} % (seeds {s['seeds']}, "
                  f"{100 * s['top1_min']:.1f}-{100 * s['top1_max']:.1f}), "
                  f"top-5 {100 * s['top5_mean']:.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
