"""Helpers shared by the training tests (no tests here)."""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest

from prgcn_ros.paths import data_dir, missing_data_message
from prgcn_ros.skeleton.sequence import SkeletonSequence
from prgcn_ros.training.config import load_config
from prgcn_ros.training.datasets import SequenceDataset, build_dataset

REPO = Path(__file__).resolve().parent.parent
MSR_CONFIG = REPO / "config" / "train_msr_action3d.yaml"


def require_data() -> Path:
    path = data_dir()
    if not (path / "msr_action3d").is_dir():
        pytest.skip(missing_data_message(path / "msr_action3d"))
    return path


@functools.lru_cache(maxsize=2)
def _msr(split: str) -> SequenceDataset:
    return build_dataset(load_config(MSR_CONFIG), split)


def msr_split(split: str) -> SequenceDataset:
    require_data()
    return _msr(split)


def subset(dataset: SequenceDataset, count: int, stride: int = 13) -> SequenceDataset:
    """``count`` clips spread over the dataset (several classes), loaded from its cache."""
    index = [(i * stride) % len(dataset) for i in range(count)]
    clips = [dataset[i] for i in index]
    return SequenceDataset([(lambda c=c: c) for c in clips], [dataset.labels[i] for i in index],
                           [dataset.names[i] for i in index], dataset.class_names,
                           f"{count} clips of {dataset.description}")


def small_cfg(seed: int = 1, epochs: int = 1, **sections) -> dict:
    """The MSR recipe, small batches, into a throw-away output folder; no cross-fitted
    temperature (its five fold trainings) unless ``calibration`` asks for one."""
    overrides = {"seed": seed, "optim": {"batch_size": 4, "epochs": epochs}}
    overrides.update(sections)
    overrides["calibration"] = {"cross_fit": None, **(sections.get("calibration") or {})}
    return load_config(MSR_CONFIG, overrides)


def frame_counter(frames: int) -> SkeletonSequence:
    """A kinect20 clip whose every coordinate is its frame number: windows show their frames."""
    coords = np.broadcast_to(np.arange(frames, dtype=np.float32)[:, None, None, None],
                             (frames, 1, 20, 3)).copy()
    return SkeletonSequence(coords=coords, confidence=np.ones((frames, 1, 20), np.float32),
                            layout="kinect20", fps=15.0)
