"""Gravity: turn 3D skeletons from a robot's frame into the camera y-up frame the models expect.

The models are trained on Kinect data: x to the sensor's left, y up (against gravity), z along
the view. A robot may send skeletons in another convention:

- ``y_up``: that frame already (Kinect v1/v2, MSR Action3D, NTU RGB+D);
- ``y_down``: an optical camera frame (x right, y down, z forward; REP-103 ``*_optical_frame``,
  the Azure Kinect driver's ``depth_camera_link``): turned 180 degrees about z;
- ``z_up``: a REP-103 body frame (``base_link``, ``odom``, ``map``: x forward, y left, z up):
  the axes are relabelled (x, y, z) -> (y, z, x), a rotation, so left and right stay apart.

A camera pitched down by ``tilt_deg`` (positive: looking down) sees gravity tilted; a rotation
about the camera's x axis by the same angle undoes it. A full rotation from tf2 (quaternion)
into a gravity-aligned frame is also accepted (``quaternion_matrix``), then read as ``z_up``.

All functions are plain numpy and import no ROS package; rotations act on the last axis (3).
"""
from __future__ import annotations

import math

import numpy as np

CONVENTIONS = ("y_up", "y_down", "z_up")

# Rows: the model frame's axes expressed in the input frame's axes (p_model = R @ p_input).
_TO_Y_UP = {
    "y_up": np.eye(3),
    "y_down": np.diag([-1.0, -1.0, 1.0]),
    "z_up": np.array([[0.0, 1.0, 0.0],      # model x (left)    = input y (left)
                      [0.0, 0.0, 1.0],      # model y (up)      = input z (up)
                      [1.0, 0.0, 0.0]]),    # model z (forward) = input x (forward)
}


def convention_matrix(convention: str) -> np.ndarray:
    """The rotation that takes points in `convention` to the y-up camera convention."""
    if convention not in _TO_Y_UP:
        raise ValueError(f"frame convention must be one of {', '.join(CONVENTIONS)}, "
                         f"got {convention!r}")
    return _TO_Y_UP[convention].copy()


def tilt_matrix(tilt_deg: float) -> np.ndarray:
    """Undo a camera pitched down by `tilt_deg` (y-up camera frame; about its x axis)."""
    a = math.radians(tilt_deg)
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def quaternion_matrix(x: float, y: float, z: float, w: float) -> np.ndarray:
    """The rotation matrix of a unit quaternion (geometry_msgs/Quaternion order x, y, z, w)."""
    n = math.sqrt(x * x + y * y + z * z + w * w)
    if not n > 0.0:
        raise ValueError("quaternion has zero length")
    x, y, z, w = x / n, y / n, z / n, w / n
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def gravity_rotation(convention: str = "y_up", tilt_deg: float = 0.0,
                     frame_rotation: np.ndarray | None = None) -> np.ndarray:
    """One 3x3 rotation from the input frame to the gravity-aligned y-up camera convention.

    frame_rotation (optional, e.g. from tf2): input frame -> a frame of `convention`, applied
    first; then the convention is relabelled to y up; then the camera tilt is undone.
    """
    rotation = tilt_matrix(tilt_deg) @ convention_matrix(convention)
    if frame_rotation is not None:
        rotation = rotation @ np.asarray(frame_rotation, dtype=np.float64)
    return rotation


def rotate_points(points: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """Apply `rotation` to points of shape (..., 3); dtype is kept. Non-finite points (a
    missing joint's sentinel) stay non-finite without a warning: the checks after say why."""
    points = np.asarray(points)
    with np.errstate(invalid="ignore", over="ignore"):
        rotated = points @ np.asarray(rotation, dtype=np.float64).T
    return rotated.astype(points.dtype, copy=False)


def as_xyz(points: np.ndarray) -> np.ndarray:
    """Points (..., 2 or 3) as (..., 3) float64: image keypoints get z = 0 (the messages' and
    bags' Keypoint always has x, y, z)."""
    points = np.asarray(points, dtype=np.float64)
    if points.shape[-1] == 2:
        points = np.concatenate([points, np.zeros(points.shape[:-1] + (1,))], axis=-1)
    return points
