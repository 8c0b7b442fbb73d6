"""prgcn-export: a model file as ONNX or TorchScript, with its metadata beside it.

    prgcn-export --model models/prgcn_msr_action3d.safetensors --format onnx
      -> models/prgcn_msr_action3d.onnx + models/prgcn_msr_action3d.onnx.json

The example input has the model's own window length, channels, joints and person slots (from
its metadata); the metadata JSON written beside the export is the model's, plus what the export
expects as input and returns.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

from prgcn_ros.model.graph import layout_name
from prgcn_ros.skeleton.layouts import get_layout
from prgcn_ros.skeleton.preprocess import window_setting

SUFFIX = {"onnx": ".onnx", "torchscript": ".pt"}


def example_input(metadata: dict[str, Any], batch: int = 1, frames: int | None = None
                  ) -> torch.Tensor:
    """A zero (N, C, T, V, M) tensor shaped like the model's input (its architecture's layout
    and channels, else the metadata's top-level copies)."""
    arch = metadata.get("architecture") or {}
    channels = int(arch.get("in_channels", metadata.get("in_channels", 3)))
    length = int(frames or window_setting(metadata.get("window"))[1])
    joints = get_layout(layout_name(arch.get("layout", metadata.get("layout")))).num_joints
    persons = int(metadata.get("max_persons", 1))
    return torch.zeros(batch, channels, length, joints, persons)


def default_output(model_path: Path, fmt: str) -> Path:
    return model_path.with_suffix(SUFFIX[fmt])


def export(model_path: str | Path, fmt: str, output: str | Path | None = None,
           frames: int | None = None, force: bool = False) -> dict[str, Any]:
    """Export ``model_path`` to ``fmt``; returns where the files went. Refuses (ValueError) to
    overwrite a shipped model, a tracked file or an installed one unless ``force``."""
    from prgcn_ros.model.export import INPUT_NAME, export_model, output_names
    from prgcn_ros.model.io import load_model, metadata_path, resolve_model

    from .outputs import export_protection

    if fmt not in SUFFIX:
        raise ValueError(f"unknown export format {fmt!r}; expected one of {sorted(SUFFIX)}")
    model_path = resolve_model(model_path)
    model, metadata = load_model(model_path, device="cpu")
    model.eval()
    out = Path(output) if output else default_output(model_path, fmt)
    meta_path = out.with_name(out.name + ".json")
    sources = {model_path.resolve(), metadata_path(model_path).resolve()}
    if {out.resolve(), meta_path.resolve()} & sources:     # not even with --force
        raise ValueError(f"--output {out} would replace the model it exports ({model_path})")
    reason = None if force else export_protection(out, meta_path)
    if reason:
        raise ValueError(f"{reason}; pass --force to overwrite it or choose another --output")
    out.parent.mkdir(parents=True, exist_ok=True)
    x = example_input(metadata, frames=frames)
    export_model(model, out, fmt, x)
    doc = dict(metadata)
    doc["export"] = {
        "format": fmt,
        "source": model_path.name,
        "input": {"name": INPUT_NAME, "shape": list(x.shape),
                  "layout": "N, C, T, V, M (batch, channels, frames, joints, persons)",
                  "preprocessing": "prgcn_ros.skeleton.preprocess with metadata 'preprocess'"},
        "outputs": {"logits": "(N, classes)", "refined": "refined poses (N, C, T, V, M)"}
        if "refined" in output_names(model) else {"logits": "(N, classes)"},
    }
    meta_path.write_text(json.dumps(doc, indent=1) + "\n")
    return {"model": str(out), "metadata": str(meta_path), "format": fmt,
            "input_shape": list(x.shape)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="prgcn-export", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True,
                        help="model file (.safetensors) or a shipped model's name")
    parser.add_argument("--format", required=True, choices=sorted(SUFFIX))
    parser.add_argument("--output", help="exported file (default: beside the model, .onnx/.pt)")
    parser.add_argument("--frames", type=int,
                        help="window length of the example input (default: the model's)")
    parser.add_argument("--force", action="store_true",
                        help="overwrite the output even when it is a shipped model, a file "
                             "tracked by git or an installed file")
    args = parser.parse_args(argv)
    try:
        result = export(args.model, args.format, args.output, args.frames, args.force)
    except (FileNotFoundError, OSError, RuntimeError, ValueError) as exc:
        print(f"prgcn-export: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
