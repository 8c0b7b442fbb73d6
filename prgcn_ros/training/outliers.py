"""Outlier exposure (Hendrycks, Mazeika and Dietterich, ICLR 2019) for the "unknown" answer.

A model trained on its classes alone answers a foreign action with the confidence of a known
one (docs/more_datasets.md: a squat comes out as "bend" at the confidence of a real bend). Here
each training batch also holds clips of actions outside the classes, taken from another
dataset (config section ``outliers``), whose softmax is pulled towards the uniform
distribution by a cross-entropy to it. The classes' own clips train as before.
"""
from __future__ import annotations

from typing import Any

import torch

from .calibration import subset
from .datasets import SequenceDataset, build_dataset


def outlier_dataset(cfg: dict) -> SequenceDataset | None:
    """The clips of the ``outliers`` section: its ``data`` (a data section of another dataset,
    its ``train`` split), only the actions named in ``classes``; None when unset."""
    spec = cfg.get("outliers") or {}
    if not spec.get("data") or int(spec.get("per_batch") or 0) <= 0:
        return None
    other = {**cfg, "data": {**cfg["data"], **spec["data"]}}
    clips = build_dataset(other, "train")
    wanted = list(spec.get("classes") or clips.class_names)
    unknown = sorted(set(wanted) - set(clips.class_names))
    if unknown:
        raise ValueError(f"outliers.classes {unknown} are not classes of {clips.description} "
                         f"(its classes: {', '.join(clips.class_names)})")
    keep = [i for i, label in enumerate(clips.labels) if clips.class_names[label] in wanted]
    if not keep:
        raise ValueError(f"outliers: no clips of {wanted} in {clips.description}")
    return subset(clips, keep, f"{clips.description}, outliers: {', '.join(wanted)}")


def outlier_loss(logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of (N, K) logits to the uniform distribution (log K at the uniform)."""
    return -torch.log_softmax(logits, dim=1).mean(dim=1).mean()


def describe(cfg: dict, clips: SequenceDataset | None) -> dict[str, Any] | None:
    """What the model's metadata says of the outliers it was trained with."""
    if clips is None:
        return None
    spec = cfg["outliers"]
    return {"clips": len(clips), "description": clips.description,
            "per_batch": int(spec["per_batch"]), "weight": float(spec["weight"]),
            "restore": bool(spec.get("restore"))}
