"""Training checkpoints without pickle: tensors in safetensors, everything else in JSON.

``<dir>/checkpoint.safetensors`` holds the model's state (``model.*``) and the optimizer's
per-parameter buffers (``optim.<param index>.<name>``, e.g. SGD's momentum buffers) and, with
weight averaging, the averaged model's state (``averaged.*``);
``<dir>/checkpoint.json`` holds the epoch count, the optimizer's hyper-parameters, the config and
the training history. That state is in the weights file's header too, and read from there: one
file written to a temporary name and renamed commits a checkpoint, so a run stopped while
saving leaves the previous one whole (with two files, weights of one epoch could be resumed
with the state of the one before). The JSON is the same state for people and tools.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import safetensors
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from prgcn_ros.model.io import read_header, read_weights, write_atomic_together

WEIGHTS = "checkpoint.safetensors"
STATE = "checkpoint.json"
FORMAT = "prgcn_ros.training.checkpoint/1"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be resumed from; the message names the file."""


def _tensors(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
             averaged: torch.nn.Module | None) -> dict[str, torch.Tensor]:
    tensors = {f"model.{k}": v.detach().cpu().contiguous().clone()
               for k, v in model.state_dict().items()}
    if averaged is not None:
        tensors.update({f"averaged.{k}": v.detach().cpu().contiguous().clone()
                        for k, v in averaged.state_dict().items()})
    for index, state in optimizer.state_dict()["state"].items():
        for name, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{index}.{name}"] = value.detach().cpu().contiguous().clone()
    return tensors


def _optimizer_json(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    sd = optimizer.state_dict()
    groups = [{k: v for k, v in g.items() if isinstance(v, (int, float, bool, str, list))
               or v is None} for g in sd["param_groups"]]
    scalars = {str(i): {k: v for k, v in s.items() if not isinstance(v, torch.Tensor)}
               for i, s in sd["state"].items()}
    return {"param_groups": groups, "scalar_state": scalars}


def save_checkpoint(directory: str | os.PathLike, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer, state: dict[str, Any],
                    averaged: torch.nn.Module | None = None) -> Path:
    """Write the checkpoint; ``state`` (JSON-able) must hold ``epoch`` = epochs completed.
    ``averaged``: the weight average (torch.optim.swa_utils.AveragedModel) of a run with one."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = _tensors(model, optimizer, averaged)
    doc = {"format": FORMAT, **state, "optimizer": _optimizer_json(optimizer)}
    text = json.dumps(doc, indent=1)
    write_atomic_together([
        (directory / WEIGHTS, lambda p: save_file(
            tensors, str(p), metadata={"format": FORMAT, "state": text})),
        (directory / STATE, lambda p: p.write_text(text))])
    return directory / STATE


def find_checkpoint(path: str | os.PathLike) -> Path:
    """The checkpoint JSON for a run folder or a checkpoint file (either of the pair; the JSON
    may be missing where the weights, which hold the state too, are there)."""
    path = Path(path)
    if path.is_dir():
        path = path / STATE
    elif path.suffix == ".safetensors":
        path = path.with_suffix(".json")
    if not (path.is_file() or path.with_suffix(".safetensors").is_file()):
        raise CheckpointError(f"no checkpoint to resume from at {path}")
    return path


def checkpoint_state(path: str | os.PathLike) -> dict[str, Any]:
    """The state of the checkpoint at ``path`` (its file or folder), tensors not read: from
    the weights' header, which a checkpoint commits with them; from the JSON for checkpoints
    written before the header held it."""
    state_path = find_checkpoint(path)
    weights_path = state_path.with_suffix(".safetensors")
    text, source = None, weights_path
    if weights_path.is_file():
        try:
            text = read_header(weights_path, "checkpoint").get("state")
        except ValueError as exc:
            raise CheckpointError(str(exc)) from None
    try:
        if text is None:
            text, source = state_path.read_text(), state_path
        doc = json.loads(text)
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{source}: unreadable checkpoint state ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CheckpointError(f"{source}: not a prgcn_ros training checkpoint")
    return doc


def refined_channels(path: str | os.PathLike) -> int | None:
    """How many channels the checkpoint's PRM refines, from its weights' shapes (None: no PRM,
    or weights not there); tensors not read."""
    weights_path = find_checkpoint(path).with_suffix(".safetensors")
    try:
        with safe_open(str(weights_path), "pt") as weights:
            if "model.prm.offset.bias" not in weights.keys():
                return None
            return int(weights.get_slice("model.prm.offset.bias").get_shape()[0])
    except (OSError, safetensors.SafetensorError):
        return None


def load_checkpoint(path: str | os.PathLike, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer | None = None,
                    averaged: torch.nn.Module | None = None) -> dict[str, Any]:
    """Restore model (and optimizer, and weight average) in place; returns the JSON state."""
    state_path = find_checkpoint(path)
    weights_path = state_path.with_suffix(".safetensors")
    doc = checkpoint_state(state_path)
    if not weights_path.is_file():
        raise CheckpointError(f"{weights_path}: checkpoint weights missing")
    try:
        tensors = read_weights(weights_path, "checkpoint")
    except ValueError as exc:
        raise CheckpointError(str(exc)) from None
    model_state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        model.load_state_dict(model_state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{weights_path}: does not fit the model ({exc})") from exc
    average = {k[len("averaged."):]: v for k, v in tensors.items() if k.startswith("averaged.")}
    if bool(average) != (averaged is not None):
        raise CheckpointError(f"{weights_path}: written by a run "
                              f"{'with' if average else 'without'} weight averaging, resumed "
                              f"{'without' if average else 'with'} it (optim.ema_decay)")
    if averaged is not None:
        averaged.load_state_dict(average, strict=True)
    if optimizer is not None:
        opt = doc["optimizer"]
        per_param: dict[int, dict[str, Any]] = {}
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, index, name = key.split(".", 2)
                per_param.setdefault(int(index), {})[name] = value
        for index, scalars in opt.get("scalar_state", {}).items():
            per_param.setdefault(int(index), {}).update(scalars)
        current = optimizer.state_dict()
        if len(current["param_groups"]) != len(opt["param_groups"]):
            raise CheckpointError(f"{state_path}: optimizer groups do not match the model")
        groups = []
        for mine, saved in zip(current["param_groups"], opt["param_groups"]):
            groups.append({**mine, **{k: v for k, v in saved.items() if k != "params"}})
        optimizer.load_state_dict({"state": per_param, "param_groups": groups})
    return doc
