"""Sequences -> model input batches, with the skeleton layer's windowing and preprocessing.

Training and evaluation both go through :func:`make_batch`; the windows and the normalisation
come from :mod:`prgcn_ros.skeleton.preprocess`, the functions the live node uses, with the
settings stored in the model's metadata. Only training adds a random window choice and the
augmentation of :mod:`prgcn_ros.training.augment`.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch

from prgcn_ros.skeleton.preprocess import (
    PreprocessConfig,
    drop_empty_frames,
    exchange_persons,
    preprocess,
    random_sorted_indices,
    random_window,
    resample_window,
)
from prgcn_ros.skeleton.sequence import SkeletonSequence

from .augment import augment


def preprocess_config(cfg: dict) -> PreprocessConfig:
    return PreprocessConfig.from_dict(dict(cfg["preprocess"]))


def max_persons(cfg: dict) -> int:
    return int(cfg["data"].get("max_persons") or 1)


def crop_window(seq: SkeletonSequence, length: int, rng: np.random.Generator | None
                ) -> SkeletonSequence:
    """``length`` consecutive frames (a random start when ``rng`` is given, else the newest:
    what the live node has when the clip ends), padded with empty frames (confidence 0) when
    the sequence is shorter (ST-GCN's windows)."""
    start = max(seq.num_frames - length, 0)
    if rng is not None and seq.num_frames > length:
        start = int(rng.integers(0, seq.num_frames - length + 1))
    index = np.arange(start, min(start + length, seq.num_frames))
    out = seq.select_frames(index)
    pad = length - out.num_frames
    if pad > 0:
        t, m, v, d = out.coords.shape
        out = SkeletonSequence(
            coords=np.concatenate([out.coords, np.zeros((pad, m, v, d), np.float32)]),
            confidence=np.concatenate([out.confidence, np.zeros((pad, m, v), np.float32)]),
            layout=out.layout, fps=out.fps, label=out.label, label_name=out.label_name,
            person_ids=out.person_ids, source=out.source)
    return out


def thin_frames(seq: SkeletonSequence, step_range: Sequence[float], rng: np.random.Generator
                ) -> SkeletonSequence:
    """Every s-th frame of the clip, s uniform in ``step_range`` [lo, hi] (lo >= 1), from a
    random start: the whole action in fewer frames, as a shorter recording of it shows it once
    resampled to the window. Unchanged, and nothing drawn, when hi is 1."""
    low, high = (float(v) for v in step_range)
    if high <= 1.0:
        return seq
    step = rng.uniform(low, high)
    positions = np.arange(rng.uniform(0.0, step), seq.num_frames, step)
    index = np.unique(positions.astype(np.int64))
    return seq.select_frames(index) if len(index) else seq


def window(seq: SkeletonSequence, cfg: dict, rng: np.random.Generator | None
           ) -> SkeletonSequence:
    """The model's window of a clip: random in training (``rng`` given), fixed otherwise."""
    length = int(cfg["window"]["length"])
    interpolation = cfg["window"].get("interpolation", "nearest")
    seq = drop_empty_frames(seq)
    if rng is not None:
        seq = thin_frames(seq, cfg["window"].get("train_frame_step", (1.0, 1.0)), rng)
    if cfg["window"]["mode"] == "crop":
        return crop_window(seq, length, rng)
    if rng is None:
        return resample_window(seq, length, interpolation)
    if cfg["window"].get("train_sampling", "crop") == "sorted_random":
        return seq.select_frames(random_sorted_indices(seq.num_frames, length, rng))
    return random_window(seq, length, rng,
                         min_fraction=float(cfg["window"].get("train_min_fraction", 1.0)),
                         interpolation=interpolation)


class Batch(NamedTuple):
    """A batch of model input with what the refinement objective needs besides it."""

    x: torch.Tensor          # (N, C, T, V, M) float32, preprocessed (and augmented in training)
    labels: torch.Tensor     # (N,) int64, -1 where a clip has no label
    present: torch.Tensor    # (N, T, V, M) bool, joints observed in the input
    scale: torch.Tensor      # (N, M) sensor units per model unit (the preprocessing scale)
    dims: int                # coordinate channels: 3 for (x, y, z), 2 for (x, y, confidence)


def build_batch(seqs: Sequence[SkeletonSequence], cfg: dict, train: bool,
                generator: torch.Generator | None = None,
                persons_exchanged: bool = False) -> Batch:
    """The :class:`Batch` of a list of clips.

    ``train``: random window choice and augmentation, drawn from ``generator``.
    ``persons_exchanged``: two-person clips with their slots exchanged (the other order of
    ``inference.pair_orders: both``).
    """
    if not seqs:
        raise ValueError("empty batch")
    rng = None
    if train:
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        rng = np.random.default_rng(int(torch.randint(0, 2 ** 62, (1,), generator=gen)))
    persons = max_persons(cfg)
    chosen = [s.main_persons(persons) for s in seqs]
    swap = float(cfg["augment"].get("swap_persons", 0.0))
    swapping = None
    if rng is not None and swap > 0 and persons == 2:
        swapping = torch.tensor([rng.random() < swap for _ in chosen])
    windows = [window(s, cfg, rng) for s in chosen]
    coords = torch.from_numpy(np.stack([w.coords for w in windows]))
    conf = torch.from_numpy(np.stack([w.confidence for w in windows]))
    if persons_exchanged or swapping is not None:
        coords, conf, _ = exchange_persons(coords, conf,
                                           None if persons_exchanged else swapping)
    settings = preprocess_config(cfg)
    x, transform = preprocess(coords, conf, cfg["layout"], settings)
    present = (conf > 0).permute(0, 1, 3, 2)                     # (N, T, V, M)
    if train and _augments(cfg["augment"]):
        x, present = augment(x, present, coords.shape[-1], cfg["augment"], gen,
                             layout=cfg["layout"], missing=settings.missing)
    labels = torch.tensor([-1 if s.label is None else int(s.label) for s in seqs],
                          dtype=torch.int64)
    return Batch(x.float(), labels, present, transform.scale.float(), int(coords.shape[-1]))


def make_batch(seqs: Sequence[SkeletonSequence], cfg: dict, train: bool,
               generator: torch.Generator | None = None, persons_exchanged: bool = False
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Model input (N, C, T, V, M) float32 and labels (N,) int64 for a list of clips
    (:func:`build_batch` without the extras)."""
    batch = build_batch(seqs, cfg, train, generator, persons_exchanged)
    return batch.x, batch.labels


def _augments(aug: dict) -> bool:
    lo, hi = (float(v) for v in aug.get("scale", (1.0, 1.0)))
    path = tuple(float(v) for v in aug.get("path_scale", (1.0, 1.0)))
    return bool(float(aug.get("rotate_deg", 0)) or float(aug.get("tilt_deg", 0))
                or float(aug.get("translate", 0)) or float(aug.get("mirror", 0))
                or float(aug.get("body_shape", 0)) or float(aug.get("drop_limb", 0))
                or lo != 1.0 or hi != 1.0 or path != (1.0, 1.0))
