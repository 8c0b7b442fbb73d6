"""Build a network from its plain-dict architecture (the "architecture" entry of a model file)."""
from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from prgcn_ros.model.prgcn import PRGCN
from prgcn_ros.model.stgcn import STGCN

ARCHITECTURES: dict[str, type[nn.Module]] = {"prgcn": PRGCN, "stgcn": STGCN}


def build_model(arch: dict[str, Any]) -> nn.Module:
    """``{"name": "prgcn" | "stgcn", "num_classes": ..., "layout": ..., ...}`` -> a fresh network.

    Every key but "name" is a constructor argument; unknown names and arguments raise ValueError.
    """
    if not isinstance(arch, dict):
        raise ValueError(f"architecture must be a dict, not {type(arch).__name__}")
    name = arch.get("name")
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}; known: {', '.join(ARCHITECTURES)}")
    kwargs = {key: value for key, value in arch.items() if key != "name"}
    unknown = sorted(set(kwargs) - set(inspect.signature(ARCHITECTURES[name]).parameters))
    if unknown:
        raise ValueError(f"architecture {name!r} has no option {', '.join(unknown)} (a model "
                         f"file from a newer prgcn_ros? upgrade it)")
    # Counts and sizes: "20" or 1e400 in a file would fail deep in torch, unnamed. Switches:
    # "false" in a file would build the network with the switch on.
    defaults = inspect.signature(ARCHITECTURES[name]).parameters
    for key, value in kwargs.items():
        if isinstance(defaults[key].default, bool) and not isinstance(value, bool):
            raise ValueError(f"architecture {name!r}: {key} {value!r} is not true or false")
        if key.startswith("num_") or key.endswith(("_channels", "_kernel")):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValueError(f"architecture {name!r}: {key} {value!r} is not an integer")
    try:
        return ARCHITECTURES[name](**kwargs)
    # RuntimeError: e.g. a negative size; IndexError: a layout's bone past its joints
    except (TypeError, RuntimeError, OverflowError, IndexError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"bad arguments for architecture {name!r}: {first}") from None


def logits_of(output: Any) -> torch.Tensor:
    """PR-GCN returns (logits, refined poses); ST-GCN the logits alone."""
    return output[0] if isinstance(output, (tuple, list)) else output


def model_arch(model: nn.Module) -> dict[str, Any]:
    """The dict that rebuilds ``model`` with build_model (a copy)."""
    arch = getattr(model, "arch", None)
    if not isinstance(arch, dict):
        raise ValueError(f"{type(model).__name__} has no architecture dict (.arch)")
    return dict(arch)


def complete_arch(arch: dict[str, Any]) -> dict[str, Any]:
    """``arch`` with every constructor argument it leaves out at its default: model files
    written before an option existed compare equal to a network built with it off."""
    network = ARCHITECTURES.get(arch.get("name"))
    if network is None:
        return dict(arch)
    defaults = {name: parameter.default
                for name, parameter in inspect.signature(network).parameters.items()
                if parameter.default is not inspect.Parameter.empty}
    return {**defaults, **arch}
