"""Skeleton layer: layouts and mappings, readers, preprocessing, tracker, device ring buffer.

Imports no ROS packages, so it runs and is tested off-robot. Names load on first use, so the
torch-free layouts do not bring torch with them.
"""
from __future__ import annotations

import importlib
from typing import Any

_WHERE = {"LAYOUTS": "layouts", "Layout": "layouts", "get_layout": "layouts",
          "has_mapping": "mapping", "map_joints": "mapping",
          "PreprocessConfig": "preprocess", "Transform": "preprocess",
          "RecordingError": "readers", "read_recording": "readers",
          "DeviceRingBuffer": "ring_buffer", "SkeletonSequence": "sequence",
          "Tracker": "tracker"}

__all__ = list(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
