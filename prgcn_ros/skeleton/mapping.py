"""Joint mappings between layouts, written by joint name.

A direct table says, for every joint of the target layout, which source joint it is (same name
unless an alias is given), or the midpoint of two source joints (confidence = the lower of the
two), or nothing (the joint is missing: confidence 0, coordinates 0). Longer routes are
compositions of direct tables, so each correspondence is written once.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import torch

from .layouts import get_layout

Array = np.ndarray | torch.Tensor

# target joint -> source joint name, or (a, b) for the midpoint of two source joints.
_Rule = str | tuple[str, str]

# Direct tables: only the joints whose name differs between the two layouts are listed;
# every other target joint is taken by its own name when the source has it.
_DIRECT: dict[tuple[str, str], dict[str, _Rule]] = {
    ("body25", "coco18"): {},
    ("coco17", "coco18"): {"neck": ("left_shoulder", "right_shoulder")},
    ("ntu25", "kinect20"): {"shoulder_center": "spine_shoulder", "spine": "spine_mid",
                            "hip_center": "spine_base"},
    ("azure32", "ntu25"): {"spine_base": "pelvis", "spine_mid": "spine_navel",
                           "spine_shoulder": "spine_chest"},
    # In SBU's OpenNI data the "neck" is the midpoint of the shoulders and the "torso" the
    # midpoint of the neck and the hips' midpoint (median 2 mm off). The nearest stand-ins
    # (median distance to that point on real clips): Kinect v1's spine 6 cm (the midpoint of
    # shoulder and hip centre: 9 cm), the midpoint of NTU's spine_shoulder and spine_base
    # 3 cm (spine_mid: 6 cm).
    ("kinect20", "openni15"): {"neck": ("left_shoulder", "right_shoulder"), "torso": "spine"},
    ("ntu25", "openni15"): {"neck": ("left_shoulder", "right_shoulder"),
                            "torso": ("spine_shoulder", "spine_base")},
}

# Routes through other layouts (each hop is a direct table).
_COMPOSED: dict[tuple[str, str], tuple[str, ...]] = {
    ("azure32", "kinect20"): ("azure32", "ntu25", "kinect20"),
    ("azure32", "openni15"): ("azure32", "ntu25", "openni15"),
}


@dataclass(frozen=True)
class _Table:
    first: np.ndarray    # (V',) source index, -1 = missing
    second: np.ndarray   # (V',) second source index for midpoints, else equal to first
    missing: np.ndarray  # (V',) bool


@cache
def _table(source: str, target: str) -> _Table:
    src, tgt = get_layout(source), get_layout(target)
    rules = _DIRECT[(source, target)]
    first, second = [], []
    for joint in tgt.joints:
        rule = rules.get(joint, joint)
        a, b = (rule, rule) if isinstance(rule, str) else rule
        if src.has(a) and src.has(b):
            first.append(src.index(a))
            second.append(src.index(b))
        else:
            first.append(-1)
            second.append(-1)
    first_arr, second_arr = np.array(first), np.array(second)
    return _Table(first_arr, second_arr, first_arr < 0)


def _route(source: str, target: str) -> tuple[str, ...]:
    if (source, target) in _DIRECT:
        return (source, target)
    if (source, target) in _COMPOSED:
        return _COMPOSED[(source, target)]
    raise ValueError(f"no joint mapping from layout {source!r} to layout {target!r}; known: "
                     + ", ".join(f"{s}->{t}" for s, t in available_mappings()))


def available_mappings() -> list[tuple[str, str]]:
    """Every (source, target) pair that :func:`map_joints` accepts besides identities."""
    return sorted([*_DIRECT, *_COMPOSED])


def has_mapping(source: str, target: str) -> bool:
    """True when :func:`map_joints` can map ``source`` to ``target`` (identity included)."""
    get_layout(source), get_layout(target)
    return source == target or (source, target) in _DIRECT or (source, target) in _COMPOSED


def describe_mapping(source: str, target: str) -> list[str | None]:
    """Per target joint, where it comes from ("left_hip", "mid(left_shoulder, right_shoulder)"),
    or None when it is missing. For documentation and checks."""
    route = (source,) if source == target else _route(source, target)
    names: list[str | None] = list(get_layout(source).joints)
    for hop_source, hop_target in zip(route, route[1:]):
        table = _table(hop_source, hop_target)
        out: list[str | None] = []
        for a, b, gone in zip(table.first, table.second, table.missing):
            if gone or names[a] is None or names[b] is None:
                out.append(None)
            else:
                out.append(names[a] if a == b else f"mid({names[a]}, {names[b]})")
        names = out
    return names


def _apply(table: _Table, coords: Array, confidence: Array) -> tuple[Array, Array]:
    first, second = table.first.clip(min=0), table.second.clip(min=0)
    if isinstance(coords, torch.Tensor):
        device = coords.device
        first_t = torch.as_tensor(first, device=device)
        second_t = torch.as_tensor(second, device=device)
        missing = torch.as_tensor(table.missing, device=device)
        out = 0.5 * (coords.index_select(-2, first_t) + coords.index_select(-2, second_t))
        conf = torch.minimum(confidence.index_select(-1, first_t),
                             confidence.index_select(-1, second_t))
        out = out.masked_fill(missing[:, None], 0.0)
        conf = conf.masked_fill(missing, 0.0)
        return out, conf
    coords, confidence = np.asarray(coords), np.asarray(confidence)
    same = first == second
    # Copy single joints exactly (no 0.5 * (a + a) rounding); midpoints only where needed.
    out = coords[..., first, :].copy()
    if not same.all():
        out[..., ~same, :] = 0.5 * (coords[..., first[~same], :] + coords[..., second[~same], :])
    conf = np.minimum(confidence[..., first], confidence[..., second])
    out[..., table.missing, :] = 0
    conf[..., table.missing] = 0
    return out, conf


def map_joints(coords: Array, confidence: Array, source: str, target: str
               ) -> tuple[Array, Array]:
    """Map joints from layout ``source`` to ``target``.

    coords (..., V, D) and confidence (..., V), numpy arrays or torch tensors (any device);
    returns (coords (..., V', D), confidence (..., V')) of the same kind. Target joints the
    source lacks get confidence 0 and coordinates 0. Identity (a copy) when source == target.
    Raises ValueError naming both layouts when there is no mapping.
    """
    src = get_layout(source)
    get_layout(target)
    if coords.shape[-2] != src.num_joints or confidence.shape[-1] != src.num_joints:
        raise ValueError(f"layout {source!r} has {src.num_joints} joints, got coords "
                         f"{tuple(coords.shape)} and confidence {tuple(confidence.shape)}")
    if source == target:
        if isinstance(coords, torch.Tensor):
            return coords.clone(), confidence.clone()
        return np.array(coords, copy=True), np.array(confidence, copy=True)
    route = _route(source, target)
    for hop_source, hop_target in zip(route, route[1:]):
        coords, confidence = _apply(_table(hop_source, hop_target), coords, confidence)
    return coords, confidence
