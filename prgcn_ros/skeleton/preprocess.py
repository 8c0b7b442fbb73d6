"""The one preprocessing used by training and by the live node (torch, batched, any device).

Sensor coordinates (N, T, M, V, D) -> model input (N, C, T, V, M), and back with
:meth:`Transform.inverse`. Steps, per sample n and person m:

1. **axis**: the model always sees y up. ``y_up`` (Kinect v1/v2, MSR, NTU) is left alone.
   ``y_down`` (camera optical frames, Azure Kinect; image keypoints): 3D points are turned
   180 degrees about the depth axis, (x, y, z) -> (-x, -y, z), which keeps the frame
   right-handed so left and right stay where a Kinect would put them; 2D image points are
   flipped, (x, y) -> (x, -y), so the person stands upright.
2. **center**: subtract the person's root: the hip centre (kinect20 ``hip_center``, ntu25
   ``spine_base``, azure32 ``pelvis``, body25 ``mid_hip``, coco18/coco17 the midpoint of the
   hips). ``first_frame``: the root in the first frame where it is confident. ``per_frame``:
   the root of each frame (a frame whose root is missing uses the last confident one, frames
   before the first confident one use that one). A person without a confident root is centred
   on the mean of its confident joints in the first frame that has any; with none at all, not
   moved. ``none``: no centring.
3. **align_view** (3D only): rotate about the vertical (y) axis so that the left->right
   ``hips`` or ``shoulders`` line, averaged over the frames where both joints are confident,
   points along +x (the person faces the sensor). ``none`` by default.
4. **scale** ``torso``: divide by the mean root-to-shoulder-centre length over the frames
   where both are confident (shoulder centre: kinect20 ``shoulder_center``, ntu25
   ``spine_shoulder``, body25/coco18 ``neck``, azure32/coco17 midpoint of the shoulders).
   Without such a frame (the hips out of view, as a person close to a camera is seen) the
   widest the shoulders were apart times :data:`TORSO_PER_SHOULDER_WIDTH`; without either,
   1.
5. **missing** joints (confidence 0): ``zero`` sets them to 0, i.e. onto the root after
   centring (ST-GCN's convention for absent joints and bodies); ``previous`` repeats the joint's
   last confident value in the model's frame (0 before the first one).

**persons** ``each`` (default): steps 2-4 per person, each centred on its own root.
``shared``: every person of a sample gets the centre, rotation and scale of the sample's first
person that has a confident root (the others' absolute positions relative to it are kept): what
an interaction model needs to see who approaches, pushes or hugs whom. ``pair``: the same, but
the centre is the mean of the persons' roots and the scale their mean torso length, so the
result does not depend on which person comes first (no align_view: two people facing each other
have no common facing direction).

Channels: C = 3, (x, y, z) for D = 3 and (x, y, confidence) for D = 2.
"""
from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np
import torch

from .layouts import Layout, get_layout
from .sequence import SkeletonSequence

_CHOICES = {
    "center": ("first_frame", "per_frame", "none"),
    "scale": ("torso", "none"),
    "align_view": ("none", "hips", "shoulders"),
    "axis": ("y_up", "y_down"),
    "missing": ("zero", "previous"),
    "persons": ("each", "shared", "pair"),
}

# Anchor points by joint name; a list means the midpoint of those joints.
_ROOT = {"kinect20": ["hip_center"], "ntu25": ["spine_base"], "azure32": ["pelvis"],
         "body25": ["mid_hip"], "coco18": ["left_hip", "right_hip"],
         "coco17": ["left_hip", "right_hip"], "openni15": ["left_hip", "right_hip"]}
_SHOULDER_CENTER = {"kinect20": ["shoulder_center"], "ntu25": ["spine_shoulder"],
                    "azure32": ["left_shoulder", "right_shoulder"], "body25": ["neck"],
                    "coco18": ["neck"], "coco17": ["left_shoulder", "right_shoulder"],
                    "openni15": ["neck"]}
_EPS = 1e-6
# A torso's length (the scale's root to shoulder centre) per shoulder width, for a person
# whose torso is never seen: per-clip medians of 1.22-1.42 in MSR Action3D, UTD-MHAD, NW-UCLA
# and SBU, 1.67 in NTU (its spine_base sits lower). Image keypoints of a person turned
# sideways give narrower shoulders, so a larger input, but not pixels.
TORSO_PER_SHOULDER_WIDTH = 1.3


@dataclass(frozen=True)
class PreprocessConfig:
    """Preprocessing settings; plain data, stored in a model's metadata via :meth:`to_dict`.

    ``axis`` describes the input sensor (the model always sees y up); the other fields
    describe what the model was trained with.
    """

    center: str = "first_frame"
    scale: str = "torso"
    align_view: str = "none"
    axis: str = "y_up"
    missing: str = "zero"
    persons: str = "each"

    def __post_init__(self) -> None:
        for name, allowed in _CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"preprocess {name}={getattr(self, name)!r}; expected one of "
                                 f"{', '.join(allowed)}")
        if self.persons == "pair" and self.align_view != "none":
            raise ValueError("preprocess persons='pair' takes no align_view (two people facing "
                             "each other have no common facing direction); use 'none'")

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessConfig:
        """Inverse of :meth:`to_dict`; absent keys take defaults, unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown preprocess settings {sorted(unknown)}; known: "
                             f"{sorted(known)}")
        return cls(**data)


@functools.lru_cache(maxsize=64)
def _joint_index(layout: Layout, names: tuple[str, ...], device: torch.device) -> torch.Tensor:
    # Cached so the live node does not copy the same few integers to the GPU every window.
    return torch.tensor([layout.index(n) for n in names], device=device)


def _anchor(layout: Layout, names: list[str], coords: torch.Tensor, conf: torch.Tensor
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Midpoint of the named joints (N, T, M, D) and whether all of them are confident."""
    index = _joint_index(layout, tuple(names), coords.device)
    point = coords.index_select(3, index).mean(3)
    ok = (conf.index_select(3, index) > 0).all(3)
    return point, ok


def _first_true(ok: torch.Tensor) -> torch.Tensor:
    """Index along dim 1 of the first True (0 when none)."""
    return torch.argmax(ok.to(torch.int8), dim=1)


def _take(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """values (N, T, M, *rest) gathered along T with index (N, T', M) -> (N, T', M, *rest)."""
    extra = values.shape[3:]
    index = index.reshape(*index.shape, *([1] * len(extra))).expand(*index.shape, *extra)
    return torch.gather(values, 1, index)


def _persons_take(values: torch.Tensor, person: torch.Tensor) -> torch.Tensor:
    """values (N, T, M, D), every person replaced by person[n] (N, 1) of its sample."""
    index = person.view(-1, 1, 1, 1).expand(values.shape[0], values.shape[1], values.shape[2],
                                            values.shape[3])
    return torch.gather(values, 2, index)


def _last_true_index(ok: torch.Tensor) -> torch.Tensor:
    """Per position along dim 1, the index of the latest True at or before it (-1 if none)."""
    t = torch.arange(ok.shape[1], device=ok.device).view(1, -1, *([1] * (ok.dim() - 2)))
    marked = torch.where(ok, t, torch.full_like(t, -1))
    return torch.cummax(marked, dim=1).values


def _held_index(ok: torch.Tensor) -> torch.Tensor:
    """Per position along dim 1, the latest True at or before it; positions before the first
    True take the first (0 when there is none): per_frame centring's frame for each frame."""
    last = _last_true_index(ok)
    return torch.where(last < 0, _first_true(ok)[:, None], last)


def hold_missing(x: torch.Tensor, present: torch.Tensor, dims: int) -> torch.Tensor:
    """Model input ``x`` (N, C, T, V, M) with the first ``dims`` channels of every joint not
    ``present`` (N, T, V, M) at that joint's latest present value, 0 before its first:
    ``missing: previous``. Training applies it again after augmentation or corruption has
    moved the present joints, so a held joint stays where its joint was last seen."""
    last = _last_true_index(present)                               # (N, T, V, M)
    index = last.clamp(min=0)[:, None].expand(-1, dims, -1, -1, -1)
    held = torch.gather(x[:, :dims], 2, index)
    out = x.clone()
    out[:, :dims] = torch.where((last >= 0)[:, None], held, torch.zeros_like(held))
    return out


def held_root(coords: torch.Tensor, present: torch.Tensor, layout: str | Layout
              ) -> torch.Tensor:
    """The root (N, D, T, M) of model-input coordinates (N, D, T, V, M) in every frame, by
    per_frame centring's rule: a frame whose root is not ``present`` (N, T, V, M) holds the
    latest confident one, frames before the first confident one take that one (a person
    without any: frame 0's, so constant)."""
    layout = get_layout(layout)
    joints = _joint_index(layout, tuple(_ROOT[layout.name]), coords.device)
    root = coords.index_select(3, joints).mean(3)                      # (N, D, T, M)
    ok = present.index_select(2, joints.to(present.device)).all(2)     # (N, T, M)
    held = _held_index(ok)
    return torch.gather(root, 2, held[:, None].expand(-1, root.shape[1], -1, -1))


@dataclass
class Transform:
    """What :func:`preprocess` did to each sample and person, to map model space back.

    axis_sign (D,), origin (N, T or 1, M, D), cos/sin (N, M) of the view rotation (None when
    not aligned), scale (N, M); all on the input's device and dtype.
    """

    axis_sign: torch.Tensor
    origin: torch.Tensor
    cos: torch.Tensor | None
    sin: torch.Tensor | None
    scale: torch.Tensor
    num_frames: int

    @property
    def dims(self) -> int:
        return int(self.axis_sign.numel())

    def _linear_inverse(self, points: torch.Tensor) -> torch.Tensor:
        """points (N, T, M, V, D) in model space -> sensor axes (no translation)."""
        points = points * self.scale[:, None, :, None, None]
        if self.cos is not None:
            c, s = self.cos[:, None, :, None], self.sin[:, None, :, None]
            x, y, z = points.unbind(-1)
            points = torch.stack((c * x - s * z, y, s * x + c * z), dim=-1)
        return points

    def _to_points(self, model: torch.Tensor) -> torch.Tensor:
        if model.dim() != 5 or model.shape[1] < self.dims:
            raise ValueError(f"expected model-space (N, C>={self.dims}, T, V, M), got "
                             f"{tuple(model.shape)}")
        return model[:, : self.dims].permute(0, 2, 4, 3, 1)  # (N, T, M, V, D)

    def inverse(self, model_coords: torch.Tensor,
                frames: Sequence[int] | slice | None = None) -> torch.Tensor:
        """Model-space (N, C, T', V, M) -> sensor coordinates (N, T', M, V, D).

        The first D channels are used (for 2D the confidence channel is ignored). ``frames``
        says which of the original T frames the T' model frames are (e.g. ``[-1]`` for the
        newest frame alone); needed only with per-frame centring when T' != T.
        """
        points = self._linear_inverse(self._to_points(model_coords))
        origin = self.origin
        if origin.shape[1] != 1:
            if frames is not None:
                origin = origin[:, frames]
            if origin.shape[1] != points.shape[1]:
                raise ValueError(f"{points.shape[1]} model frames for per-frame centring of "
                                 f"{self.num_frames} frames; pass frames=")
        points = points + origin[:, :, :, None, :]
        return points * self.axis_sign

    def inverse_offsets(self, model_offsets: torch.Tensor) -> torch.Tensor:
        """Displacements (N, C, T, V, M) in model space -> sensor units/axes (N, T, M, V, D)."""
        return self._linear_inverse(self._to_points(model_offsets)) * self.axis_sign


def preprocess(coords: torch.Tensor, confidence: torch.Tensor, layout: str | Layout,
               config: PreprocessConfig) -> tuple[torch.Tensor, Transform]:
    """Sensor coords (N, T, M, V, D), confidence (N, T, M, V) -> model input (N, C, T, V, M)
    and the :class:`Transform` that maps model-space points back (see the module docstring).

    Works on any device and floating dtype; C = 3: (x, y, z) for D = 3, (x, y, conf) for D = 2.
    """
    layout = get_layout(layout)
    if coords.dim() != 5 or coords.shape[-1] not in (2, 3):
        raise ValueError(f"coords must be (N, T, M, V, D) with D = 2 or 3, got "
                         f"{tuple(coords.shape)}")
    if tuple(confidence.shape) != tuple(coords.shape[:4]):
        raise ValueError(f"confidence {tuple(confidence.shape)} does not match coords "
                         f"{tuple(coords.shape)}")
    if coords.shape[3] != layout.num_joints:
        raise ValueError(f"layout {layout.name!r} has {layout.num_joints} joints, got "
                         f"{coords.shape[3]}")
    if not coords.is_floating_point():
        coords = coords.float()
    n, t, m, _, d = coords.shape
    if d == 2 and config.align_view != "none":
        raise ValueError("align_view needs 3D joints (it rotates about the vertical axis)")
    confidence = confidence.to(coords.dtype)
    ok = confidence > 0
    # A missing joint's coordinates mean nothing and may be NaN: NaN x 0 stays NaN.
    coords = torch.where(ok[..., None], coords, torch.zeros_like(coords))

    sign = [1.0, -1.0] if d == 2 else [-1.0, -1.0, 1.0]
    axis_sign = torch.tensor(sign if config.axis == "y_down" else [1.0] * d,
                             dtype=coords.dtype, device=coords.device)
    x = coords * axis_sign

    # --- centre
    root, root_ok = _anchor(layout, _ROOT[layout.name], x, confidence)
    weight = ok.to(x.dtype)[..., None]
    count = weight.sum(3)
    centroid = (x * weight).sum(3) / count.clamp(min=1)          # (N, T, M, D)
    centroid_ok = count[..., 0] > 0
    fallback = torch.where(centroid_ok.any(1)[:, None, :, None],
                           _take(centroid, _first_true(centroid_ok)[:, None]),
                           torch.zeros_like(centroid[:, :1]))
    has_root = root_ok.any(1)[:, None, :, None]                   # (N, 1, M, 1)
    first = _first_true(root_ok)                                  # (N, M)
    if config.center == "none":
        origin = torch.zeros_like(x[:, :1, :, 0])
    elif config.center == "first_frame":
        origin = torch.where(has_root, _take(root, first[:, None]), fallback)
    else:
        origin = torch.where(has_root, _take(root, _held_index(root_ok)), fallback)
    shared = config.persons == "shared" and m > 1
    pair = config.persons == "pair" and m > 1
    # Persons seen at all (an empty slot, padding for a lone person, is not).
    seen = centroid_ok.any(1)                                              # (N, M)
    if shared:   # the first person with a confident root anchors the whole sample, else the
        rooted = has_root[:, 0, :, 0]                                      # first one seen
        anchor_ok = torch.where(rooted.any(1, keepdim=True), rooted, seen)
        reference = _first_true(anchor_ok)[:, None]                        # (N, 1)
        origin = _persons_take(origin, reference)
    elif pair:   # the mean of the persons' roots (of the seen persons' origins when none has one)
        mean_of = torch.where(has_root.any(2, keepdim=True), has_root,
                              seen[:, None, :, None]).to(x.dtype)          # (N, 1, M, 1)
        origin = ((origin * mean_of).sum(2, keepdim=True)
                  / mean_of.sum(2, keepdim=True).clamp(min=1)).expand_as(origin).contiguous()
    y = x - origin[:, :, :, None, :]

    # --- view alignment about the vertical axis
    cos = sin = None
    if config.align_view != "none":
        part = config.align_view[:-1]                             # "hip" / "shoulder"
        left, right = layout.index(f"left_{part}"), layout.index(f"right_{part}")
        v = y[:, :, :, right] - y[:, :, :, left]                  # (N, T, M, 3)
        v_xz = torch.stack((v[..., 0], v[..., 2]), -1)
        norm = v_xz.norm(dim=-1, keepdim=True)
        pair_ok = (ok[..., left] & ok[..., right] & (norm[..., 0] > _EPS)).to(y.dtype)
        mean = (v_xz / norm.clamp(min=_EPS) * pair_ok[..., None]).sum(1)  # (N, M, 2)
        length = mean.norm(dim=-1)
        good = length > _EPS
        cos = torch.where(good, mean[..., 0] / length.clamp(min=_EPS), torch.ones_like(length))
        sin = torch.where(good, mean[..., 1] / length.clamp(min=_EPS), torch.zeros_like(length))
        if shared:
            cos = torch.gather(cos, 1, reference).expand(n, m)
            sin = torch.gather(sin, 1, reference).expand(n, m)
        c, s = cos[:, None, :, None], sin[:, None, :, None]
        px, py, pz = y.unbind(-1)
        y = torch.stack((c * px + s * pz, py, -s * px + c * pz), dim=-1)

    # --- scale
    scale = torch.ones((n, m), dtype=y.dtype, device=y.device)
    if config.scale == "torso":
        top, top_ok = _anchor(layout, _SHOULDER_CENTER[layout.name], x, confidence)
        both = (top_ok & root_ok).to(y.dtype)
        torso = ((top - root).norm(dim=-1) * both).sum(1)
        frames = both.sum(1)
        mean = torso / frames.clamp(min=1)
        left, right = layout.index("left_shoulder"), layout.index("right_shoulder")
        shoulders = ok[..., left] & ok[..., right]                        # (N, T, M)
        width = torch.where(shoulders, (x[..., right, :] - x[..., left, :]).norm(dim=-1),
                            torch.zeros_like(shoulders, dtype=x.dtype)).amax(1)
        guess = width * TORSO_PER_SHOULDER_WIDTH
        measured = (frames > 0) & (mean > _EPS)
        scale = torch.where(measured, mean, torch.where(guess > _EPS, guess, scale))
        if shared:
            scale = torch.gather(scale, 1, reference).expand(n, m).contiguous()
        elif pair:   # the mean torso length of the persons that have one
            measured = (measured | (guess > _EPS)).to(y.dtype)
            pooled = ((scale * measured).sum(1, keepdim=True)
                      / measured.sum(1, keepdim=True).clamp(min=1))
            scale = torch.where(measured.sum(1, keepdim=True) > 0, pooled,
                                torch.ones_like(pooled)).expand(n, m).contiguous()
        y = y / scale[:, None, :, None, None]

    # --- missing joints
    if config.missing == "zero":
        y = y * weight

    if d == 2:
        y = torch.cat((y, confidence[..., None]), dim=-1)
    out = y.permute(0, 4, 1, 3, 2).contiguous()                   # (N, C, T, V, M)
    if config.missing == "previous":
        out = hold_missing(out, ok.permute(0, 1, 3, 2), d)
    transform = Transform(axis_sign=axis_sign, origin=origin, cos=cos, sin=sin, scale=scale,
                          num_frames=t)
    return out, transform


def preprocess_sequence(seq: SkeletonSequence, config: PreprocessConfig,
                        device: str | torch.device = "cpu") -> tuple[np.ndarray, Transform]:
    """One sequence through :func:`preprocess`: returns (C, T, V, M) numpy and the Transform
    (for a batch of one)."""
    coords = torch.from_numpy(np.ascontiguousarray(seq.coords))[None].to(device)
    conf = torch.from_numpy(np.ascontiguousarray(seq.confidence))[None].to(device)
    out, transform = preprocess(coords, conf, seq.layout, config)
    return out[0].cpu().numpy(), transform


# How a two-person model scores a pair (model metadata ``inference.pair_orders``): ``given``, in
# the slot order it comes in (live: the lower person_id first); ``both``, in both slot orders
# with the scores averaged, so the label does not depend on which person is first.
PAIR_ORDERS = ("given", "both")


def pair_orders(settings: Mapping[str, Any]) -> str:
    """The ``inference.pair_orders`` of a model's metadata or a training config (``given``
    where it has none: models trained before the setting existed)."""
    return str((settings.get("inference") or {}).get("pair_orders", "given"))


def exchange_persons(coords: torch.Tensor, confidence: torch.Tensor,
                     only: torch.Tensor | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two-person samples, coords (N, T, 2, V, D) and confidence (N, T, 2, V), with the two
    slots exchanged where both hold someone (and ``only``, a (N,) bool mask, when given), and
    the mask (N,) of the samples exchanged. A sample with one person comes back as it was: the
    person stays in slot 0, as training pads a lone person."""
    if coords.shape[2] != 2:
        raise ValueError(f"exchange_persons needs two person slots, got {coords.shape[2]}")
    both = (confidence > 0).any(3).any(1).all(1)                               # (N,)
    if only is not None:
        both = both & only.to(both.device)
    pick = both[:, None, None, None]
    coords = torch.where(pick[..., None], coords.flip(2), coords)
    confidence = torch.where(pick, confidence.flip(2), confidence)
    return coords, confidence, both


# --------------------------------------------------------------------------- windows
INTERPOLATIONS = ("nearest", "linear")


def window_setting(window: Any) -> tuple[str, int, str]:
    """A model's metadata ``window`` ({"mode", "length", "interpolation"} or a plain length)
    as (mode, length, interpolation); keys it lacks, because the model predates them, at what
    such models did: resample to 48 frames, by the nearest frame."""
    if not isinstance(window, Mapping):
        window = {} if window is None else {"length": window}
    length = window.get("length", 48)
    # A hand-edited 47.9, "48" or true is no length: int() would read them as 47, 48 and 1.
    if isinstance(length, bool) or not isinstance(length, (int, float)) or length != int(length):
        raise ValueError(f"window length {length!r} is not a whole number of frames")
    return (str(window.get("mode", "resample")), int(length),
            str(window.get("interpolation", "nearest")))


def uniform_positions(num_frames: int, length: int) -> np.ndarray:
    """``length`` times spread evenly over ``num_frames`` frames, in frame units (the middle of
    each of ``length`` equal segments, frame i being the middle of [i, i + 1)), clipped to
    [0, num_frames - 1]."""
    if num_frames < 1 or length < 1:
        raise ValueError(f"need at least one frame (num_frames={num_frames}, length={length})")
    return np.clip((np.arange(length) + 0.5) * num_frames / length - 0.5, 0, num_frames - 1)


def uniform_indices(num_frames: int, length: int) -> np.ndarray:
    """The nearest frames of :func:`uniform_positions`; shorter sequences repeat frames."""
    if num_frames < 1 or length < 1:
        raise ValueError(f"need at least one frame (num_frames={num_frames}, length={length})")
    return np.minimum(((np.arange(length) + 0.5) * num_frames / length).astype(np.int64),
                      num_frames - 1)


def blend_frames(before: torch.Tensor, after: torch.Tensor, weight: torch.Tensor,
                 confidence_channel: int) -> torch.Tensor:
    """Linear interpolation between two frames, ``before`` and ``after`` (..., V, C) with the
    confidence in channel ``confidence_channel``; ``weight`` (...) is the share of ``after``.
    A joint missing (confidence 0) in either frame takes the nearer frame's values, as nearest
    resampling would: a missing joint's coordinates mean nothing to blend."""
    both = (before[..., confidence_channel] > 0) & (after[..., confidence_channel] > 0)
    w = weight[..., None].to(before.dtype)
    w = torch.where(both, w, (w >= 0.5).to(w.dtype))[..., None]
    return torch.lerp(before, after, w)


def interpolate_frames(seq: SkeletonSequence, positions: np.ndarray) -> SkeletonSequence:
    """The sequence at fractional frame ``positions`` (linear between neighbouring frames, see
    :func:`blend_frames`): a clip of few frames stretched to a long window moves smoothly
    instead of in steps, so the motion flow sees its pace, not its frame rate."""
    positions = np.asarray(positions, np.float64)
    before = np.floor(positions).astype(np.int64)
    after = np.minimum(before + 1, seq.num_frames - 1)
    frames = torch.from_numpy(np.concatenate([seq.coords, seq.confidence[..., None]], -1))
    weight = torch.from_numpy(positions - before)[:, None].expand(-1, seq.num_persons)
    out = blend_frames(frames[before], frames[after], weight, seq.dims).numpy()
    return replace(seq, coords=np.ascontiguousarray(out[..., : seq.dims]),
                   confidence=np.ascontiguousarray(out[..., seq.dims]))


def _frames_at(seq: SkeletonSequence, start: int, keep: int, length: int,
               interpolation: str) -> SkeletonSequence:
    """``keep`` frames from ``start`` spread over ``length``, by ``interpolation``."""
    if interpolation == "nearest":
        return seq.select_frames(start + uniform_indices(keep, length))
    if interpolation == "linear":
        return interpolate_frames(seq, start + uniform_positions(keep, length))
    raise ValueError(f"interpolation {interpolation!r} is not one of {', '.join(INTERPOLATIONS)}")


def random_window_span(num_frames: int, rng: np.random.Generator,
                       min_fraction: float = 0.8) -> tuple[int, int]:
    """(start, frames kept) of a random crop keeping a uniform fraction in [min_fraction, 1]
    of the frames at a random start (training's random window choice)."""
    if not 0 < min_fraction <= 1:
        raise ValueError(f"min_fraction {min_fraction} outside (0, 1]")
    keep = max(1, int(round(num_frames * rng.uniform(min_fraction, 1.0))))
    return int(rng.integers(0, num_frames - keep + 1)), keep


def random_window_indices(num_frames: int, length: int, rng: np.random.Generator,
                          min_fraction: float = 0.8) -> np.ndarray:
    """The frames of a :func:`random_window_span` crop resampled to ``length`` (nearest)."""
    start, keep = random_window_span(num_frames, rng, min_fraction)
    return start + uniform_indices(keep, length)


def random_sorted_indices(num_frames: int, length: int, rng: np.random.Generator) -> np.ndarray:
    """``length`` frame indices drawn uniformly from the whole sequence (with replacement) and
    sorted: the order is kept, the pace varies within the clip (CTR-GCN's NW-UCLA sampling)."""
    if num_frames < 1 or length < 1:
        raise ValueError(f"need at least one frame (num_frames={num_frames}, length={length})")
    return np.sort(rng.integers(0, num_frames, size=length))


def resample_window(seq: SkeletonSequence, length: int,
                    interpolation: str = "nearest") -> SkeletonSequence:
    """The sequence resampled to exactly ``length`` frames, evenly spread (``nearest`` frame or
    ``linear`` between frames)."""
    return _frames_at(seq, 0, seq.num_frames, length, interpolation)


def random_window(seq: SkeletonSequence, length: int, rng: np.random.Generator,
                  min_fraction: float = 0.8, interpolation: str = "nearest") -> SkeletonSequence:
    """A :func:`random_window_span` crop of the sequence resampled to ``length`` frames."""
    start, keep = random_window_span(seq.num_frames, rng, min_fraction)
    return _frames_at(seq, start, keep, length, interpolation)


def drop_empty_frames(seq: SkeletonSequence) -> SkeletonSequence:
    """The sequence without frames in which no joint is confident (e.g. MSR's lost frames);
    unchanged when every frame is empty."""
    keep = np.flatnonzero((seq.confidence > 0).any(axis=(1, 2)))
    return seq if len(keep) in (0, seq.num_frames) else seq.select_frames(keep)


__all__ = ["PreprocessConfig", "Transform", "preprocess", "preprocess_sequence",
           "INTERPOLATIONS", "window_setting", "uniform_positions", "uniform_indices",
           "blend_frames", "interpolate_frames", "random_window_span", "random_window_indices",
           "random_sorted_indices", "resample_window", "random_window", "drop_empty_frames",
           "held_root"]
