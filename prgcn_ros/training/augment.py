"""Training-time augmentation on preprocessed model input.

Applied after the shared preprocessing (so after centring and scaling), on tensors laid out as the
model takes them, ``(N, C, T, V, M)``; the first ``dims`` channels are coordinates, any further
channel (the confidence of 2D input) is left alone. Missing joints (confidence 0) stay exactly
where preprocessing put them. All randomness comes from the ``torch.Generator`` passed in, so a
seed gives the same augmentation on every run.
"""
from __future__ import annotations

import math

import torch

from prgcn_ros.skeleton.layouts import get_layout
from prgcn_ros.skeleton.preprocess import held_root, hold_missing

from .noise import limb_pairs, stretch_bones


def mirror_permutation(layout: str) -> list[int]:
    """Joint order of the mirror image: each ``left_*`` joint swapped with its ``right_*``."""
    lay = get_layout(layout)
    perm = list(range(lay.num_joints))
    for i, name in enumerate(lay.joints):
        for a, b in (("left_", "right_"), ("right_", "left_")):
            if name.startswith(a) and lay.has(b + name[len(a):]):
                perm[i] = lay.index(b + name[len(a):])
    return perm


def _uniform(n: int, low: float, high: float, gen: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=gen, dtype=torch.float64)


def _axis_rotation(angle: torch.Tensor, axis: int) -> torch.Tensor:
    """(N, 3, 3) rotations by ``angle`` (radians) about coordinate ``axis``."""
    n = angle.shape[0]
    c, s = torch.cos(angle), torch.sin(angle)
    rot = torch.eye(3, dtype=torch.float64).repeat(n, 1, 1)
    i, j = [a for a in range(3) if a != axis]
    # Right-handed rotation about `axis`, acting on the plane (i, j) in cyclic order.
    if axis == 1:
        i, j = j, i  # about y the cyclic plane is (z, x)
    rot[:, i, i], rot[:, i, j] = c, -s
    rot[:, j, i], rot[:, j, j] = s, c
    return rot


def random_transforms(n: int, dims: int, aug: dict, gen: torch.Generator
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-clip linear maps (N, dims, dims) and offsets (N, dims) drawn from the ``augment`` config.

    3D: a rotation of +-rotate_deg about the vertical axis, then +-tilt_deg about each horizontal
    axis, an isotropic scale and a translation. 2D: an in-plane rotation of +-rotate_deg, scale and
    translation.
    """
    rotate = math.radians(float(aug.get("rotate_deg", 0.0)))
    tilt = math.radians(float(aug.get("tilt_deg", 0.0)))
    lo, hi = (float(v) for v in aug.get("scale", (1.0, 1.0)))
    shift = float(aug.get("translate", 0.0))
    if dims == 3:
        vertical = int(aug.get("vertical_axis", 1))
        mat = _axis_rotation(_uniform(n, -rotate, rotate, gen), vertical)
        if tilt > 0:
            for axis in (a for a in range(3) if a != vertical):
                mat = _axis_rotation(_uniform(n, -tilt, tilt, gen), axis) @ mat
    elif dims == 2:
        angle = _uniform(n, -rotate, rotate, gen)
        c, s = torch.cos(angle), torch.sin(angle)
        mat = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)
    else:
        raise ValueError(f"augmentation needs 2 or 3 coordinate channels, got {dims}")
    mat = mat * _uniform(n, lo, hi, gen)[:, None, None]
    offset = _uniform(n * dims, -shift, shift, gen).reshape(n, dims)
    return mat.float(), offset.float()


def body_shape_factors(n: int, m: int, sd: float, layout: str, gen: torch.Generator
                       ) -> torch.Tensor:
    """(N, V, M) bone stretch factors 1 + N(0, sd), clamped to [0.5, 1.5]; a left bone and its
    right twin (see :func:`mirror_permutation`) share theirs, as in a real body."""
    lay = get_layout(layout)
    factor = (1.0 + sd * torch.randn((n, lay.num_joints, m), generator=gen)).clamp(0.5, 1.5)
    twin = [min(i, j) for i, j in enumerate(mirror_permutation(layout))]
    return factor[:, twin]


def scale_paths(x: torch.Tensor, present: torch.Tensor, dims: int, factor: torch.Tensor,
                layout: str, vertical_axis: int) -> torch.Tensor:
    """``x`` (N, C, T, V, M) with each person's path over the ground scaled by ``factor`` (N,):
    every frame shifted along the horizontal axes by (factor - 1) x the root's displacement
    since its first confident frame, so the pose in each frame is unchanged and the person
    covers more or less ground. A frame whose root is missing keeps the last confident one's
    shift. Missing joints are not moved."""
    root = held_root(x[:, :dims], present, layout)                 # (N, D, T, M)
    shift = root - root[:, :, :1]
    shift = shift * (factor.to(x.dtype) - 1.0)[:, None, None, None]
    shift[:, vertical_axis] = 0.0
    keep = present[:, None].to(torch.bool)
    out = x.clone()
    out[:, :dims] = torch.where(keep, x[:, :dims] + shift[:, :, :, None], x[:, :dims])
    return out


def limb_masks(layout: str) -> torch.Tensor:
    """(L, V) bool: the joints of each limb of ``layout`` (left arm, right arm, left leg, right
    leg: from the elbow or the knee outwards), as far as the layout has them."""
    lay = get_layout(layout)
    masks = []
    for pairs in limb_pairs(lay.name):
        for side in (0, 1):
            mask = torch.zeros(lay.num_joints, dtype=torch.bool)
            mask[[pair[side] for pair in pairs]] = True
            masks.append(mask)
    return torch.stack(masks) if masks else torch.zeros((0, lay.num_joints), dtype=torch.bool)


def drop_limbs(x: torch.Tensor, present: torch.Tensor, p: float, layout: str,
               gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """With probability ``p`` per person, one limb drawn at random (see :func:`limb_masks`)
    missing for the whole window: its joints zeroed in every channel, as preprocessing leaves
    a missing joint, and no longer ``present`` (so no loss asks for them back)."""
    masks = limb_masks(layout)
    n, m = x.shape[0], x.shape[-1]
    if len(masks) == 0:
        return x, present
    hit = torch.rand((n, m), generator=gen) < p
    limb = torch.randint(0, len(masks), (n, m), generator=gen)
    drop = masks[limb] & hit[..., None]                           # (N, M, V)
    drop = drop.permute(0, 2, 1)[:, None]                         # (N, 1, V, M)
    x = x.masked_fill(drop[:, None], 0.0)
    return x, present & ~drop


def augment(x: torch.Tensor, present: torch.Tensor, dims: int, aug: dict,
            gen: torch.Generator, layout: str | None = None, missing: str = "zero"
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Randomly rotated/scaled/translated (and, with ``mirror`` > 0, mirrored; with
    ``body_shape`` > 0, re-proportioned) copy of model input ``x`` (N, C, T, V, M), and
    ``present`` as it goes with the copy (mirrored clips' left and right exchanged: the
    noise model and the restore loss must see the joints where they now are).

    ``present`` (N, T, V, M) is true where a joint was observed; other joints are not moved,
    except that with ``missing`` "previous" (the preprocessing's setting) each is held again
    at its joint's last present place after the move.
    Mirroring (probability ``aug["mirror"]``, needs ``layout``) negates x and swaps left and
    right joints: the same action performed with the other hand. ``body_shape`` (needs
    ``layout``) stretches each bone of a clip by its own factor 1 + N(0, body_shape), the same
    over the clip and for both sides: the same motion by a person of other proportions.
    ``path_scale`` [lo, hi] (needs ``layout``) scales each person's path over the ground by a
    factor uniform in [lo, hi] (see :func:`scale_paths`): the same motion covering more or
    less ground, as a sensor that tracks a shorter part of a walk sees it. ``drop_limb``
    (needs ``layout``) takes one limb of a person out of the whole window at that probability
    (see :func:`drop_limbs`): the same action with an arm or leg the sensor lost.
    """
    if x.shape[1] < dims:
        raise ValueError(f"input has {x.shape[1]} channels, fewer than {dims} coordinates")
    n = x.shape[0]
    mat, offset = random_transforms(n, dims, aug, gen)
    shape_sd = float(aug.get("body_shape", 0.0))
    if shape_sd > 0:
        if layout is None:
            raise ValueError("body_shape needs the layout (its bones)")
        factor = body_shape_factors(n, x.shape[-1], shape_sd, layout, gen).to(x.dtype)
        keep = present[:, None].to(torch.bool)
        stretched = stretch_bones(x[:, :dims], keep, factor, get_layout(layout))
        x = torch.cat((stretched, x[:, dims:]), dim=1)
    path_lo, path_hi = (float(v) for v in aug.get("path_scale", (1.0, 1.0)))
    if (path_lo, path_hi) != (1.0, 1.0):
        if layout is None:
            raise ValueError("path_scale needs the layout (its root joint)")
        factor = _uniform(n, path_lo, path_hi, gen)
        x = scale_paths(x, present, dims, factor, layout, int(aug.get("vertical_axis", 1)))
    p_mirror = float(aug.get("mirror", 0.0))
    if p_mirror > 0:
        if layout is None:
            raise ValueError("mirroring needs the layout (which joints are left and right)")
        flip = torch.rand(n, generator=gen) < p_mirror
        perm = torch.tensor(mirror_permutation(layout))
        x = torch.where(flip[:, None, None, None, None], x[:, :, :, perm], x)
        present = torch.where(flip[:, None, None, None], present[:, :, perm], present)
        sign = torch.ones(n, dims)
        sign[flip, 0] = -1.0
        mat = mat * sign[:, None, :]       # negate x before rotating
    p_drop = float(aug.get("drop_limb", 0.0))
    if p_drop > 0:
        if layout is None:
            raise ValueError("drop_limb needs the layout (its limbs)")
        x, present = drop_limbs(x, present, p_drop, layout, gen)
    coords = x[:, :dims]
    moved = torch.einsum("nij,njtvm->nitvm", mat.to(x.dtype), coords)
    moved = moved + offset.to(x.dtype)[:, :, None, None, None]
    keep = present[:, None].to(torch.bool)
    out = x.clone()
    out[:, :dims] = torch.where(keep, moved, coords)
    if missing == "previous":
        out = hold_missing(out, present, dims)
    return out, present
