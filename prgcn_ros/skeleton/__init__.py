"""Skeleton layer: layouts and mappings, readers, preprocessing, tracker, device ring buffer.

Imports no ROS packages, so it runs and is tested off-robot.
"""
from .layouts import LAYOUTS, Layout, get_layout
from .mapping import has_mapping, map_joints
from .preprocess import PreprocessConfig, Transform, preprocess
from .readers import RecordingError, read_recording
from .ring_buffer import DeviceRingBuffer
from .sequence import SkeletonSequence
from .tracker import Tracker

__all__ = ["LAYOUTS", "Layout", "get_layout", "has_mapping", "map_joints", "PreprocessConfig",
           "Transform", "preprocess", "RecordingError", "read_recording", "DeviceRingBuffer",
           "SkeletonSequence", "Tracker"]
