"""Export a network to TorchScript or ONNX (the prgcn-export command line calls export_model)."""
from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch
import torch.fx.experimental._config as fx_config
from torch import nn

FORMATS = ("torchscript", "onnx")
INPUT_NAME = "skeletons"


def output_names(model: nn.Module) -> list[str]:
    """ONNX output names: PR-GCN gives logits and refined poses, ST-GCN logits only."""
    is_prgcn = getattr(model, "arch", {}).get("name") == "prgcn"
    return ["logits", "refined"] if is_prgcn else ["logits"]


def export_model(model: nn.Module, path: str | Path, fmt: str,
                 example_input: torch.Tensor) -> Path:
    """Write ``model`` (put in eval mode) to ``path``; returns the path.

    "torchscript": scripted, takes any input shape. "onnx": input "skeletons" (N, C, T, V, M) with
    N, T and M dynamic (any T >= 1), outputs "logits" and, for PR-GCN, "refined". The example
    input gives C, V, dtype and device; the graph is traced on a window of that kind.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; known: {', '.join(FORMATS)}")
    if example_input.dim() != 5:
        raise ValueError(f"example input must be (N, C, T, V, M), got {tuple(example_input.shape)}")
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
    # Trace on N = M = 2, T = 48: an axis of size 1 in the example (or one that shrinks to 1 after
    # the strides) would be fixed by torch.export. Values do not matter, only shapes.
    _, c, _, v, _ = example.shape
    trace_input = torch.zeros(2, c, 48, v, 2, dtype=example.dtype, device=example.device)
    auto = torch.export.Dim.AUTO
    # Size-oblivious reasoning: without it torch.export guards on layout details of size-1 axes
    # (channels-last strides, view-ability) and demands T >= 7, although the graph is the same
    # for every T. Exporting here, not inside torch.onnx.export, also stops the ONNX exporter from
    # silently falling back to a graph fixed to the example's T.
    # The exporter warns four times that torchvision is not installed (its detection operators,
    # which no network here uses): a first start looked like a missing dependency.
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)
    try:
        with fx_config.patch(backed_size_oblivious=True), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            program = torch.export.export(model, (trace_input,),
                                          dynamic_shapes={"x": {0: auto, 2: auto, 4: auto}})
            torch.onnx.export(program, (trace_input,), str(path), input_names=[INPUT_NAME],
                              output_names=output_names(model), verbose=False)
    finally:
        registration.setLevel(level)
