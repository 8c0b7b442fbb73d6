"""Export a network to TorchScript or ONNX (the prgcn-export command line calls export_model)."""
from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

FORMATS = ("torchscript", "onnx")
INPUT_NAME = "skeletons"


def output_names(model: nn.Module) -> list[str]:
    """ONNX output names: PR-GCN gives logits and refined poses, ST-GCN logits only."""
    is_prgcn = getattr(model, "arch", {}).get("name") == "prgcn"
    return ["logits", "refined"] if is_prgcn else ["logits"]


def export_model(model: nn.Module, path: str | Path, fmt: str,
                 example_input: torch.Tensor) -> Path:
    """Write ``model`` (put in eval mode) to ``path`` as "torchscript" (scripted, any input shape)
    or "onnx" (input "skeletons" (N, C, T, V, M) with N and T dynamic, and M too when the example
    has two or more persons; outputs "logits" and, for PR-GCN, "refined"). Returns the path."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; known: {', '.join(FORMATS)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    if fmt == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            scripted = torch.jit.script(model)
            torch.jit.save(scripted, str(path))
        return path
    _export_onnx(model, path, example_input)
    return path


def _export_onnx(model: nn.Module, path: Path, example: torch.Tensor) -> None:
    if example.dim() != 5:
        raise ValueError(f"example input must be (N, C, T, V, M), got shape {tuple(example.shape)}")
    # torch.export fixes a dimension whose example size is 1; trace with at least 2 samples and
    # frames so those axes stay dynamic (the values do not matter, only the shapes).
    example = example.detach()
    if example.shape[0] < 2:
        example = example.expand(2, -1, -1, -1, -1)
    if example.shape[2] < 2:
        example = example.expand(-1, -1, 2, -1, -1)
    example = example.contiguous()
    axes = {0: torch.export.Dim("batch", min=1), 2: torch.export.Dim("frames", min=1)}
    if example.shape[4] >= 2:
        axes[4] = torch.export.Dim("persons", min=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)
        torch.onnx.export(model, (example,), str(path), dynamo=True, input_names=[INPUT_NAME],
                          output_names=output_names(model), dynamic_shapes={"x": axes},
                          verbose=False)
