"""``prgcn-train --init MODEL``: start a run from a trained model file's weights.

Every weight of the new network is taken from the model file when it has the same name and
shape. Only the classifier may differ (a dataset with other classes): it keeps its fresh
initialisation. Anything else that does not fit is an error, since fine-tuning a different
architecture would silently train from scratch.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

CLASSIFIER_PREFIX = "classifier."
# Architecture keys that may differ from the model file's: the class count (the classifier is
# replaced), rigid bones and extent_norm (steps without weights: the config decides).
MAY_DIFFER = ("num_classes", "rigid_bones", "extent_norm")


def init_from_model(model: nn.Module, path: str | Path, class_names: list[str] | None = None
                    ) -> dict[str, Any]:
    """Copy the weights of model file ``path`` into ``model`` (in place); returns a summary
    (``copied``, ``replaced``: the classifier tensors kept fresh, ``source_classes``)."""
    from prgcn_ros.model.build import complete_arch
    from prgcn_ros.model.io import (
        ModelFileError,
        read_metadata,
        read_weights,
        weight_value_problems,
    )

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"--init {path}: file is missing")
    meta = read_metadata(path)
    source_arch = complete_arch(dict(meta["architecture"]))
    own_arch = complete_arch(dict(getattr(model, "arch", {}) or {}))
    differing = sorted(k for k in set(source_arch) | set(own_arch)
                       if k not in MAY_DIFFER and source_arch.get(k) != own_arch.get(k))
    if differing:
        raise ModelFileError(f"--init {path}: its architecture differs from the config's in "
                             f"{', '.join(differing)} (" + "; ".join(
                                 f"{k}: {source_arch.get(k)!r} vs {own_arch.get(k)!r}"
                                 for k in differing) + ")")
    weights = read_weights(path, "--init")
    problems = weight_value_problems(weights)
    if problems:
        raise ModelFileError(f"--init {path}: weights {'; '.join(problems)}")
    own = model.state_dict()
    copied, replaced = [], []
    new_state = {}
    for key, value in own.items():
        if key in weights and weights[key].shape == value.shape:
            same_classes = (class_names is None or meta.get("class_names") is None
                            or list(meta["class_names"]) == list(class_names))
            if key.startswith(CLASSIFIER_PREFIX) and not same_classes:
                replaced.append(key)       # same count, other classes: start fresh
                new_state[key] = value
                continue
            new_state[key] = weights[key].to(value.dtype)
            copied.append(key)
        elif key.startswith(CLASSIFIER_PREFIX):
            replaced.append(key)
            new_state[key] = value
        else:
            raise ModelFileError(f"--init {path}: weight {key} does not fit "
                                 f"({tuple(weights[key].shape) if key in weights else 'absent'}"
                                 f" vs {tuple(value.shape)})")
    with torch.no_grad():
        model.load_state_dict(new_state, strict=True)
    return {"init": str(path), "copied": len(copied), "replaced": replaced,
            "source_classes": meta.get("num_classes")}
