"""A noise model of real skeleton drivers, for training the PRM to restore poses and for
measuring how well it does.

Kinect, Azure body tracking and OpenPose fail in recognisable ways; each is one term here, all
on model input ``(N, C, T, V, M)`` after the shared preprocessing (so centred and scaled), with
levels given in *sensor units* (metres for 3D, pixels for 2D) and converted per sample and person
by the preprocessing scale:

- **jitter**: independent Gaussian noise of ``jitter`` (std) on every coordinate of every
  present joint in every frame (depth noise, keypoint localisation noise);
- **dropped joints**: a joint disappears (confidence 0, coordinates as preprocessing leaves
  a missing joint: 0, or its last present value with ``missing: previous``) with probability
  ``drop_prob`` per joint and frame, for a run of 1..``drop_frames`` frames (occlusion,
  tracking loss);
- **spikes**: with probability ``spike_prob`` per person and frame, one joint jumps by
  ``spike_range`` (uniform, in a random direction) in that frame alone (depth edge, wrong blob);
- **limb swaps**: with probability ``swap_prob`` per person and frame, the left and right joints
  of one arm or one leg exchange places (2D keypoint detectors' classic error);
- **bone-length noise**: each bone of a clip is stretched by a factor 1 + N(0, ``bone_noise``),
  constant over the clip, the children following their parent (skeleton fitting error).

``strength`` scales every level and probability at once (the measurement uses two strengths).
Missing joints of the clean input stay missing and are never moved.
"""
from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import torch

from prgcn_ros.skeleton.layouts import Layout, get_layout
from prgcn_ros.skeleton.preprocess import hold_missing

_ARM = ("elbow", "wrist", "hand", "hand_tip", "thumb")
_LEG = ("knee", "ankle", "foot", "heel", "big_toe", "small_toe")


@dataclass(frozen=True)
class NoiseConfig:
    """Levels of the driver noise model (sensor units; see the module docstring)."""

    jitter: float = 0.02
    drop_prob: float = 0.01
    drop_frames: int = 5
    spike_prob: float = 0.02
    spike_range: tuple[float, float] = (0.2, 0.5)
    swap_prob: float = 0.0
    bone_noise: float = 0.03
    strength: float = 1.0

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> NoiseConfig:
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown noise settings {unknown} (known: {sorted(known)})")
        if "spike_range" in data:
            lo, hi = (float(v) for v in data["spike_range"])
            data["spike_range"] = (lo, hi)
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["spike_range"] = list(self.spike_range)
        return out

    def scaled(self, strength: float) -> NoiseConfig:
        """The training noise times ``strength`` (1: the training noise itself)."""
        return replace(self, strength=self.strength * float(strength))


@functools.cache
def limb_pairs(layout_name: str) -> tuple[tuple[tuple[int, int], ...], ...]:
    """For each limb (left/right arm, leg) the (left, right) joint index pairs it swaps."""
    layout = get_layout(layout_name)
    limbs = []
    for parts in (_ARM, _LEG):
        pairs = tuple((layout.index(f"left_{p}"), layout.index(f"right_{p}")) for p in parts
                      if layout.has(f"left_{p}") and layout.has(f"right_{p}"))
        if pairs:
            limbs.append(pairs)
    return tuple(limbs)


def stretch_bones(coords: torch.Tensor, keep: torch.Tensor, factor: torch.Tensor,
                  layout: Layout) -> torch.Tensor:
    """``coords`` (N, D, T, V, M) with the bone ending in joint j stretched by ``factor``
    (N, V, M), constant over time: each child is rebuilt from its (already moved) parent.
    Joints where ``keep`` (N, 1, T, V, M) is false are not moved. A bone with an end not kept
    has no length to stretch: its child moves with the parent (a missing parent's
    coordinates are a placeholder, and a bone measured from it would move the child by where
    the person stands)."""
    rebuilt = coords.clone()
    for parent, child in layout.tree():
        bone = coords[:, :, :, child] - coords[:, :, :, parent]
        stretched = rebuilt[:, :, :, parent] + bone * factor[:, None, None, child]
        carried = coords[:, :, :, child] + (rebuilt[:, :, :, parent] - coords[:, :, :, parent])
        both = keep[:, :, :, parent] & keep[:, :, :, child]
        rebuilt[:, :, :, child] = torch.where(both, stretched, carried)
    return torch.where(keep, rebuilt, coords)


def corrupt(x: torch.Tensor, present: torch.Tensor, scale: torch.Tensor,
            layout: str | Layout, config: NoiseConfig, generator: torch.Generator,
            dims: int, missing: str = "zero") -> tuple[torch.Tensor, torch.Tensor]:
    """A corrupted copy of model input ``x`` (N, C, T, V, M) and its ``present`` mask.

    ``present`` (N, T, V, M) bool: joints observed in the clean input. ``scale`` (N, M): sensor
    units per model unit (the preprocessing :class:`~prgcn_ros.skeleton.preprocess.Transform`'s
    ``scale``). ``dims``: coordinate channels, 3 for (x, y, z) input, 2 for (x, y, confidence)
    input (whose confidence of a dropped joint becomes 0). ``missing``: the preprocessing's
    setting, which says what a dropped joint's coordinates become. All randomness comes from
    ``generator`` (a CPU generator).
    """
    layout = get_layout(layout)
    n, c, t, v, m = x.shape
    dims = int(dims)
    s = config.strength
    gen = generator
    dev, dtype = x.device, x.dtype
    unit = (1.0 / scale.to(dtype).clamp(min=1e-6)).to(dev)[:, None, None, None, :]  # (N,1,1,1,M)
    keep = present.to(dev)[:, None]                                                 # (N,1,T,V,M)
    coords = x[:, :dims].clone()

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=gen).to(dev, dtype)

    if config.bone_noise > 0 and s > 0:
        factor = 1.0 + config.bone_noise * s * torch.randn((n, v, m), generator=gen).to(dev, dtype)
        coords = stretch_bones(coords, keep, factor, layout)

    # Limb swaps: one limb's left and right joints exchange places in one frame.
    limbs = limb_pairs(layout.name)
    if config.swap_prob > 0 and s > 0 and limbs:
        swap = rand(n, t, m) < min(config.swap_prob * s, 1.0)
        which = torch.randint(0, len(limbs), (n, t, m), generator=gen).to(dev)
        for k, pairs in enumerate(limbs):
            hit = (swap & (which == k))[:, None, :, :]                    # (N,1,T,M)
            for left, right in pairs:
                a, b = coords[:, :, :, left].clone(), coords[:, :, :, right].clone()
                both = hit & keep[:, :, :, left] & keep[:, :, :, right]
                coords[:, :, :, left] = torch.where(both, b, a)
                coords[:, :, :, right] = torch.where(both, a, b)

    # Jitter.
    if config.jitter > 0 and s > 0:
        noise = torch.randn(coords.shape, generator=gen).to(dev, dtype)
        coords = coords + torch.where(keep, noise * (config.jitter * s) * unit, 0.0)

    # Spikes: one joint, one frame, a jump of spike_range in a random direction.
    if config.spike_prob > 0 and s > 0:
        spike = rand(n, t, m) < min(config.spike_prob * s, 1.0)
        joint = torch.randint(0, v, (n, t, m), generator=gen).to(dev)
        direction = torch.randn((n, dims, t, m), generator=gen).to(dev, dtype)
        direction = direction / direction.norm(dim=1, keepdim=True).clamp(min=1e-6)
        lo, hi = config.spike_range
        size = (lo + (hi - lo) * rand(n, t, m)) * s
        jump = direction * size[:, None] * unit[:, :, 0, 0][:, :, None]    # (N,D,T,M)
        onehot = torch.nn.functional.one_hot(joint, v).permute(0, 1, 3, 2).to(dtype)  # (N,T,V,M)
        mask = (onehot * spike[:, :, None, :].to(dtype))[:, None]          # (N,1,T,V,M)
        coords = coords + torch.where(keep, jump[:, :, :, None, :] * mask, 0.0)

    # Dropped joints: runs of 1..drop_frames frames.
    still = present.to(dev).clone()
    if config.drop_prob > 0 and s > 0:
        start = rand(n, t, v, m) < min(config.drop_prob * s, 1.0)
        runs = max(int(config.drop_frames), 1)
        length = torch.randint(1, runs + 1, (n, t, v, m), generator=gen).to(dev)
        dropped = torch.zeros_like(start)
        for k in range(runs):
            shifted = start & (length > k)
            if k:
                shifted = torch.cat([torch.zeros_like(shifted[:, :k]), shifted[:, :-k]], dim=1)
            dropped |= shifted
        still = still & ~dropped
        coords = coords * still[:, None].to(dtype)

    out = x.clone()
    out[:, :dims] = coords
    if dims < c:
        out[:, dims] = out[:, dims] * still.to(dtype)
    if missing == "previous":
        out = hold_missing(out, still, dims)
    return out, still


def noise_config(cfg: dict, strength: float | None = None) -> NoiseConfig:
    """The training config's ``refine.noise`` section as a :class:`NoiseConfig`."""
    noise = NoiseConfig.from_dict(cfg.get("refine", {}).get("noise"))
    return noise if strength is None else noise.scaled(strength)


def mpjpe(a: torch.Tensor, b: torch.Tensor, present: torch.Tensor, dims: int) -> torch.Tensor:
    """Mean per-joint position error between (N, C, T, V, M) windows over ``present`` joints,
    per sample (N,), in the windows' units."""
    dist = (a[:, :dims] - b[:, :dims]).norm(dim=1)                         # (N, T, V, M)
    w = present.to(dist.dtype)
    return (dist * w).sum((1, 2, 3)) / w.sum((1, 2, 3)).clamp(min=1.0)
