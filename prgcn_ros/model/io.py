"""Model files: weights as safetensors, metadata (with the architecture) as JSON beside them.

Loading never unpickles: the network is rebuilt from the JSON "architecture" and the weights are
read with safetensors. Every problem raises ModelFileError with one line naming the file.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from prgcn_ros.model.build import build_model, model_arch
from prgcn_ros.model.graph import layout_name

FORMAT = "prgcn_ros-model/1"


class ModelFileError(ValueError):
    """A model file (weights or metadata) that is missing, unreadable or does not fit."""


def metadata_path(path: str | Path) -> Path:
    """The metadata JSON that belongs to a weights file."""
    return Path(path).with_suffix(".json")


def save_model(path: str | Path, model: nn.Module, metadata: dict[str, Any]) -> None:
    """Write ``path`` (safetensors weights) and ``path.with_suffix('.json')`` (metadata).

    The metadata gets the model's "architecture" (it overrides one the caller passes) and a
    "format" tag; everything else is the caller's (class names, preprocessing, accuracy, ...).
    """
    path = Path(path)
    meta = dict(metadata)
    meta["architecture"] = model_arch(model)
    meta["format"] = FORMAT
    text = json.dumps(meta, indent=2, sort_keys=True)  # fails before anything is written
    weights = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(weights, str(path), metadata={"format": FORMAT})
    metadata_path(path).write_text(text + "\n")


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata of the model at ``path`` (the weights file), checked to have an architecture."""
    path = Path(path)
    meta_file = metadata_path(path)
    if not meta_file.is_file():
        raise ModelFileError(f"model {path}: metadata file {meta_file} is missing")
    try:
        meta = json.loads(meta_file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelFileError(f"model {path}: metadata {meta_file} is not valid JSON "
                             f"({_one_line(error)})") from None
    if not isinstance(meta, dict):
        raise ModelFileError(f"model {path}: metadata {meta_file} is not a JSON object")
    if not isinstance(meta.get("architecture"), dict):
        raise ModelFileError(f"model {path}: metadata {meta_file} has no \"architecture\" object")
    return meta


def load_model(path: str | Path, device: str | torch.device = "cpu",
               expected_layout: str | None = None,
               expected_channels: int | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the network of ``path``, load its weights; returns (model in eval mode, metadata)."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model {path}: file is missing")
    meta = read_metadata(path)
    arch = meta["architecture"]
    try:
        model = build_model(arch)
    except (ValueError, KeyError) as error:
        raise ModelFileError(f"model {path}: architecture cannot be built: "
                             f"{_one_line(error)}") from None
    layout = layout_name(arch["layout"])
    if expected_layout is not None and layout != expected_layout:
        raise ModelFileError(f"model {path} is for layout {layout!r}, the node is configured "
                             f"for {expected_layout!r}")
    channels = int(arch.get("in_channels", 3))
    if expected_channels is not None and channels != expected_channels:
        raise ModelFileError(f"model {path} takes {channels} input channels, the node gives "
                             f"{expected_channels}")
    try:
        weights = load_file(str(path))
    except Exception as error:  # safetensors raises several types for damaged files
        raise ModelFileError(f"model {path}: weights cannot be read, the file is corrupt or "
                             f"truncated ({_one_line(error)})") from None
    _check_weights(path, model, weights)
    model.load_state_dict(weights, strict=True)
    return model.to(device).eval(), meta


def _check_weights(path: Path, model: nn.Module, weights: dict[str, torch.Tensor]) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    mismatched = [f"{key} {tuple(weights[key].shape)} != {tuple(expected[key].shape)}"
                  for key in sorted(set(expected) & set(weights))
                  if weights[key].shape != expected[key].shape]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing (e.g. {missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
    if mismatched:
        problems.append(f"{len(mismatched)} with the wrong shape (e.g. {mismatched[0]})")
    if problems:
        raise ModelFileError(f"model {path}: weights do not match the architecture: "
                             + "; ".join(problems))


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())
