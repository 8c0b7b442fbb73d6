"""The recognizer's gravity hook: rotate 3D input skeletons into the y-up camera convention.

Parameters (read by the recognizer node, validated here):

- ``input_frame_convention``: ``""`` (off: the ``axis`` parameter decides, as before),
  ``y_up``, ``y_down`` (optical frames) or ``z_up`` (REP-103 ``base_link``, ``odom``);
- ``camera_tilt_deg``: a fixed camera pitch, positive looking down, undone about the camera's
  x axis (with ``input_frame_convention`` y_up or y_down);
- ``gravity_frame``: a gravity-aligned frame (e.g. ``base_link``): each message's rotation
  from its ``frame_id`` into it is looked up in tf2, then the frame is read as
  ``input_frame_convention`` (default z_up). Needs tf2_ros (robots have it; pip rclpy does not).
  It serves the Azure Kinect input too (the driver broadcasts its ``depth_camera_link``);
- ``azure_tilt_deg``: the Azure Kinect input's fixed camera pitch, undone after its
  ``azure_axis`` convention (without ``gravity_frame``).

The refined poses go back into the input's own frame (:meth:`Gravity.to_input`).
The math lives in :mod:`prgcn_ros.skeleton.frames` (ROS-free, tested off-robot).
"""
from __future__ import annotations

import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from prgcn_ros.live_data import AZURE_SOURCE, TWO_D_LAYOUTS, InputFrame
from prgcn_ros.skeleton.frames import (
    CONVENTIONS,
    gravity_rotation,
    quaternion_matrix,
    rotate_points,
)
from prgcn_ros.skeleton.layouts import LAYOUTS

# frame_ids whose rotation is remembered at most (a driver that names a frame per message
# must not grow the node's memory).
MAX_FRAMES = 256
# Rotations kept per frame_id from tf2 (a moving camera: each frame goes back with the one it
# came in with); a fixed rotation needs one.
ROTATIONS_KEPT = 128


class GravityError(ValueError):
    """A gravity parameter is invalid or cannot be served here; one line for the user."""


def _degrees(values: dict[str, Any], name: str) -> float:
    try:
        value = float(values.get(name, 0.0))
    except (TypeError, ValueError):
        raise GravityError(f"{name} must be a number (degrees, positive looking down)") from None
    if not -90.0 <= value <= 90.0:
        raise GravityError(f"{name} must be within -90..90, got {value:g}")
    return value


@dataclass
class Gravity:
    convention: str = ""
    tilt_deg: float = 0.0
    gravity_frame: str = ""
    node: Any = None                     # rclpy node, for tf2 (gravity_frame only)
    # Fixed rotations by input ("skeletons", AZURE_SOURCE), without gravity_frame.
    _fixed: dict[str, np.ndarray] = field(default_factory=dict)
    # The recent rotations by (input, frame_id), as (stamp_ns, rotation) oldest first: two
    # inputs may share a frame_id but not a rotation (the Azure input's tilt, /skeletons'
    # convention). Written by ingestion, read by the publishing thread, under _lock.
    _by_frame: OrderedDict[tuple[str, str], deque] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _buffer: Any = None
    # (input, frame_id) that tf2 could not transform, said once each (bounded as _by_frame).
    _missing: OrderedDict[tuple[str, str], None] = field(default_factory=OrderedDict)

    @classmethod
    def from_parameters(cls, values: dict[str, Any], node: Any = None) -> Gravity:
        """``values``: the parameters above (missing: their defaults) and ``azure_axis``
        (the Azure input's convention)."""
        convention = str(values.get("input_frame_convention", "") or "")
        gravity_frame = str(values.get("gravity_frame", "") or "")
        tilt = _degrees(values, "camera_tilt_deg")
        azure_tilt = _degrees(values, "azure_tilt_deg")
        if convention and convention not in CONVENTIONS:
            raise GravityError(f"input_frame_convention must be {', '.join(CONVENTIONS)} or "
                               f"empty, got {convention!r}")
        if gravity_frame and not convention:
            convention = "z_up"          # REP-103 frames are z up
        if tilt and not convention:      # it would be ignored: a pitch of which axes?
            raise GravityError(f"camera_tilt_deg {tilt:g} is undone in the frame "
                               f"input_frame_convention names; set that too (y_up: a Kinect's "
                               f"camera frame, y_down: an optical frame)")
        if azure_tilt and gravity_frame:
            raise GravityError(f"azure_tilt_deg {azure_tilt:g} undoes a fixed pitch, and with "
                               f"gravity_frame tf2 gives the Azure camera's: set one of them")
        if tilt and gravity_frame:       # applied on top of tf2's, it tilted a level camera
            raise GravityError(f"camera_tilt_deg {tilt:g} undoes a fixed pitch, and with "
                               f"gravity_frame tf2 gives the camera's: set one of them")
        gravity = cls(convention, tilt, gravity_frame, node)
        if gravity_frame:
            gravity._start_tf2()
            return gravity
        if convention:
            gravity._fixed["skeletons"] = gravity_rotation(convention, tilt)
        if azure_tilt:
            azure_axis = str(values.get("azure_axis", "y_down"))
            gravity._fixed[AZURE_SOURCE] = gravity_rotation(azure_axis, azure_tilt)
        return gravity

    @property
    def active(self) -> bool:
        """Whether /skeletons input is rotated (into the y-up convention)."""
        return bool(self.convention)

    @property
    def azure_active(self) -> bool:
        """Whether the Azure Kinect input is rotated (into the y-up convention)."""
        return self._buffer is not None or AZURE_SOURCE in self._fixed

    def active_for(self, source: str) -> bool:
        return self.azure_active if source == AZURE_SOURCE else self.active

    def _start_tf2(self) -> None:
        try:
            from tf2_ros import Buffer, TransformListener
        except ImportError as error:
            raise GravityError(f"gravity_frame {self.gravity_frame!r} needs tf2_ros (package "
                               f"tf2_ros_py), which is not installed here ({error}); use "
                               f"input_frame_convention and camera_tilt_deg instead") from None
        self._buffer = Buffer()
        self._listener = TransformListener(self._buffer, self.node)

    def rotation(self, frame_id: str, source: str = "skeletons", stamp_ns: int = 0
                 ) -> np.ndarray | None:
        """Input frame -> y-up camera convention at ``stamp_ns`` (tf2's latest where it has
        none for that time, e.g. not yet; 0: the latest); None while tf2 has no transform."""
        if self._buffer is None:
            return self._fixed.get(source)
        from rclpy.time import Time
        t = None
        for when in ((Time(nanoseconds=stamp_ns),) if stamp_ns > 0 else ()) + (Time(),):
            try:
                t = self._buffer.lookup_transform(self.gravity_frame, frame_id, when)
                break
            except Exception:   # tf2's lookup, connectivity and extrapolation errors alike
                continue
        if t is None:
            return None
        q = t.transform.rotation
        return gravity_rotation(self.convention, 0.0, quaternion_matrix(q.x, q.y, q.z, q.w))

    def to_model(self, frame: InputFrame) -> InputFrame:
        """Rotate a frame's 3D skeletons (2D layouts pass untouched). Without a transform its
        skeletons are removed and counted as dropped ``no_transform``."""
        if (not self.active_for(frame.source) or frame.layout in TWO_D_LAYOUTS
                or frame.layout not in LAYOUTS or not frame.ids):
            # Nobody to rotate; or a layout ingestion drops anyway (one reason per message).
            return frame
        rotation = self.rotation(frame.frame_id, frame.source, frame.stamp_ns)
        if rotation is None:
            dropped = {**frame.dropped, "no_transform": frame.dropped.get("no_transform", 0) + 1}
            frame.ids, frame.coords, frame.confidence, frame.dropped = [], [], [], dropped
            return frame
        key = (frame.source, frame.frame_id)
        with self._lock:
            # Least recently used first out: a camera's frame stays while others come and go.
            if key in self._by_frame:
                self._by_frame.move_to_end(key)
            else:
                if len(self._by_frame) >= MAX_FRAMES:
                    self._by_frame.popitem(last=False)
                self._by_frame[key] = deque(
                    maxlen=ROTATIONS_KEPT if self._buffer is not None else 1)
            self._by_frame[key].append((frame.stamp_ns, rotation))
        frame.coords = [rotate_points(c, rotation) for c in frame.coords]
        return frame

    def first_missing(self, frame: InputFrame) -> bool:
        """Whether ``frame`` is the first of its input and frame_id dropped as no_transform: a
        camera whose tf2 is there only after start-up must not keep another frame_id's miss
        (mistyped, unconnected) from the log."""
        key = (frame.source, frame.frame_id)
        with self._lock:      # the two inputs' callbacks may run on two threads
            # Past MAX_FRAMES frame_ids (a driver numbering its frames) no more are named:
            # forgetting the oldest would name each one again as it comes back.
            if ("no_transform" not in frame.dropped or key in self._missing
                    or len(self._missing) >= MAX_FRAMES):
                return False
            self._missing[key] = None
            return True

    def _rotation_at(self, frame_id: str, source: str, stamp_ns: int) -> np.ndarray | None:
        """The rotation the frame of ``stamp_ns`` came in with: the kept one of the latest
        stamp at or before it (0: of the latest stamp; earlier than all kept: of the earliest);
        None for a frame never rotated. By stamp, not by arrival: a message that came late
        (dropped as stamp_backwards after it was rotated) is kept behind newer ones."""
        with self._lock:
            kept = self._by_frame.get((source, frame_id))
            if not kept:
                return None
            if stamp_ns <= 0:
                return max(kept, key=lambda entry: entry[0])[1]
            before = [entry for entry in kept if entry[0] <= stamp_ns]
            if before:
                return max(before, key=lambda entry: entry[0])[1]
            return min(kept, key=lambda entry: entry[0])[1]

    def up_in(self, frame_id: str, source: str = "skeletons", stamp_ns: int = 0
              ) -> np.ndarray | None:
        """The y-up convention's up direction in frame ``frame_id`` of input ``source`` at
        ``stamp_ns`` (0: its latest rotation); None for a frame never rotated."""
        rotation = self._rotation_at(frame_id, source, stamp_ns)
        return None if rotation is None else rotation[1].copy()

    def to_input(self, points: np.ndarray, frame_id: str, source: str = "skeletons",
                 stamp_ns: int = 0) -> np.ndarray:
        """Points (..., 3) of the y-up convention back into the frame ``frame_id`` of input
        ``source`` they came in, with the rotation of the frame of ``stamp_ns`` (0: the
        latest)."""
        rotation = self._rotation_at(frame_id, source, stamp_ns)
        if rotation is None or points.shape[-1] != 3:
            return points
        return (points @ rotation).astype(points.dtype, copy=False)

