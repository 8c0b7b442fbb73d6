"""The recognizer's gravity hook: rotate 3D input skeletons into the y-up camera convention.

Parameters (read by the recognizer node, validated here):

- ``input_frame_convention``: ``""`` (off: the ``axis`` parameter decides, as before),
  ``y_up``, ``y_down`` (optical frames) or ``z_up`` (REP-103 ``base_link``, ``odom``);
- ``camera_tilt_deg``: a fixed camera pitch, positive looking down, undone about the camera's
  x axis (with ``input_frame_convention`` y_up or y_down);
- ``gravity_frame``: a gravity-aligned frame (e.g. ``base_link``): each message's rotation
  from its ``frame_id`` into it is looked up in tf2, then the frame is read as
  ``input_frame_convention`` (default z_up). Needs tf2_ros (robots have it; pip rclpy does not).

The refined poses go back into the input's own frame (:meth:`Gravity.to_input`).
The math lives in :mod:`prgcn_ros.skeleton.frames` (ROS-free, tested off-robot).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from prgcn_ros.recognition import TWO_D_LAYOUTS, InputFrame
from prgcn_ros.skeleton.frames import CONVENTIONS, gravity_rotation, quaternion_matrix

PARAMETERS = {"input_frame_convention": "", "camera_tilt_deg": 0.0, "gravity_frame": ""}

# frame_ids whose rotation is remembered at most (a driver that names a frame per message
# must not grow the node's memory).
MAX_FRAMES = 256


class GravityError(ValueError):
    """A gravity parameter is invalid or cannot be served here; one line for the user."""


@dataclass
class Gravity:
    convention: str = ""
    tilt_deg: float = 0.0
    gravity_frame: str = ""
    node: Any = None                     # rclpy node, for tf2 (gravity_frame only)
    _fixed: np.ndarray | None = None
    _by_frame: dict[str, np.ndarray] = field(default_factory=dict)
    _buffer: Any = None

    @classmethod
    def from_parameters(cls, values: dict[str, Any], node: Any = None) -> Gravity:
        convention = str(values.get("input_frame_convention", "") or "")
        gravity_frame = str(values.get("gravity_frame", "") or "")
        try:
            tilt = float(values.get("camera_tilt_deg", 0.0))
        except (TypeError, ValueError):
            raise GravityError("camera_tilt_deg must be a number (degrees, positive looking "
                               "down)") from None
        if convention and convention not in CONVENTIONS:
            raise GravityError(f"input_frame_convention must be {', '.join(CONVENTIONS)} or "
                               f"empty, got {convention!r}")
        if not -90.0 <= tilt <= 90.0:
            raise GravityError(f"camera_tilt_deg must be within -90..90, got {tilt:g}")
        if gravity_frame and not convention:
            convention = "z_up"          # REP-103 frames are z up
        if tilt and not convention:      # it would be ignored: a pitch of which axes?
            raise GravityError(f"camera_tilt_deg {tilt:g} is undone in the frame "
                               f"input_frame_convention names; set that too (y_up: a Kinect's "
                               f"camera frame, y_down: an optical frame)")
        gravity = cls(convention, tilt, gravity_frame, node)
        if gravity_frame:
            gravity._start_tf2()
        elif convention:
            gravity._fixed = gravity_rotation(convention, tilt)
        return gravity

    @property
    def active(self) -> bool:
        return bool(self.convention)

    def _start_tf2(self) -> None:
        try:
            from tf2_ros import Buffer, TransformListener
        except ImportError as error:
            raise GravityError(f"gravity_frame {self.gravity_frame!r} needs tf2_ros, which is "
                               f"not installed here ({error}); use input_frame_convention and "
                               f"camera_tilt_deg instead") from None
        self._buffer = Buffer()
        self._listener = TransformListener(self._buffer, self.node)

    def rotation(self, frame_id: str) -> np.ndarray | None:
        """Input frame -> y-up camera convention; None while tf2 has no transform yet."""
        if self._buffer is None:
            return self._fixed
        from rclpy.time import Time
        try:
            t = self._buffer.lookup_transform(self.gravity_frame, frame_id, Time())
        except Exception:   # tf2's lookup, connectivity and extrapolation errors alike
            return None
        q = t.transform.rotation
        return gravity_rotation(self.convention, self.tilt_deg,
                                quaternion_matrix(q.x, q.y, q.z, q.w))

    def to_model(self, frame: InputFrame) -> InputFrame:
        """Rotate a frame's 3D skeletons (2D layouts pass untouched). Without a transform its
        skeletons are removed and counted as dropped ``no_transform``."""
        if not self.active or frame.layout in TWO_D_LAYOUTS or not frame.ids:
            return frame        # (an empty array needs no transform: nobody to rotate)
        rotation = self.rotation(frame.frame_id)
        if rotation is None:
            dropped = {**frame.dropped, "no_transform": frame.dropped.get("no_transform", 0) + 1}
            frame.ids, frame.coords, frame.confidence, frame.dropped = [], [], [], dropped
            return frame
        if frame.frame_id not in self._by_frame and len(self._by_frame) >= MAX_FRAMES:
            self._by_frame.pop(next(iter(self._by_frame)))     # the oldest frame_id
        self._by_frame[frame.frame_id] = rotation
        frame.coords = [(c @ rotation.T).astype(c.dtype, copy=False) for c in frame.coords]
        return frame

    def to_input(self, points: np.ndarray, frame_id: str) -> np.ndarray:
        """Points (..., 3) of the y-up convention back into the frame `frame_id` they came in
        (by its latest rotation)."""
        rotation = self._by_frame.get(frame_id) if self.active else None
        if rotation is None or points.shape[-1] != 3:
            return points
        return (points @ rotation).astype(points.dtype, copy=False)

