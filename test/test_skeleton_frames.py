"""Gravity: skeletons from a z-up robot frame or a tilted camera, rotated back into the y-up
camera convention, get the same label from the shipped model as the y-up original (real MSR
Action3D recordings through the node's own recognition pipeline)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from prgcn_ros.paths import share_file
from prgcn_ros.recognition import InputFrame, Recognizer, RecognizerParams
from prgcn_ros.skeleton.frames import (
    CONVENTIONS,
    convention_matrix,
    gravity_rotation,
    quaternion_matrix,
    rotate_points,
    tilt_matrix,
)
from prgcn_ros.skeleton.readers import read_msr_action3d

UP = np.array([0.0, 1.0, 0.0])
# Held-out (test-subject) clips of different actions.
CLIPS = ["a02_s02_e01", "a06_s06_e01", "a08_s06_e01", "a12_s08_e01", "a15_s10_e01",
         "a18_s02_e01", "a20_s04_e01"]
TILT_DEG = 25.0


def _is_rotation(r: np.ndarray) -> bool:
    return np.allclose(r @ r.T, np.eye(3), atol=1e-12) and math.isclose(np.linalg.det(r), 1.0)


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_every_convention_is_a_proper_rotation(convention):
    # A reflection would swap the person's left and right.
    assert _is_rotation(convention_matrix(convention))
    assert _is_rotation(gravity_rotation(convention, tilt_deg=-17.0))


def test_z_up_puts_up_on_y_and_forward_on_z():
    r = convention_matrix("z_up")
    np.testing.assert_allclose(r @ [0, 0, 1], UP)          # REP-103 up
    np.testing.assert_allclose(r @ [1, 0, 0], [0, 0, 1])    # REP-103 forward: along the view
    np.testing.assert_allclose(r @ [0, 1, 0], [1, 0, 0])    # REP-103 left: Kinect's +x (left)


def test_optical_y_down_is_turned_upright():
    np.testing.assert_allclose(convention_matrix("y_down") @ [0, -1, 0], UP)
    np.testing.assert_allclose(convention_matrix("y_down") @ [0, 0, 1], [0, 0, 1])


def test_tilt_undoes_a_camera_pitched_down():
    a = math.radians(30.0)
    # A camera looking 30 degrees down sees "up" leaning back towards it (-z): its view axis
    # points partly down.
    up_seen = np.array([0.0, math.cos(a), -math.sin(a)])
    np.testing.assert_allclose(tilt_matrix(-30.0) @ UP, up_seen, atol=1e-12)
    np.testing.assert_allclose(tilt_matrix(30.0) @ up_seen, UP, atol=1e-12)


def test_quaternion_matrix_matches_a_known_turn():
    s = math.sqrt(0.5)
    r = quaternion_matrix(0.0, 0.0, s, s)                   # 90 degrees about z
    np.testing.assert_allclose(r @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    assert _is_rotation(r)
    with pytest.raises(ValueError):
        quaternion_matrix(0, 0, 0, 0)
    with pytest.raises(ValueError, match="y_up, y_down, z_up"):
        convention_matrix("x_up")


def test_rotate_points_keeps_shape_and_dtype():
    pts = np.random.default_rng(0).normal(size=(5, 20, 3)).astype(np.float32)
    out = rotate_points(pts, gravity_rotation("z_up", 10.0))
    assert out.shape == pts.shape and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=-1), np.linalg.norm(pts, axis=-1),
                               rtol=1e-5)


def test_rotate_points_passes_a_missing_joints_sentinel_on_without_a_warning():
    """A missing joint may hold inf or FLT_MAX (README); rotating it printed numpy's
    RuntimeWarning on the node's stderr. It stays non-finite, for the checks after."""
    import warnings

    pts = np.zeros((20, 3), np.float32)
    pts[3] = (np.inf, 0.0, 0.0)
    pts[4] = (3.4e38, 3.4e38, 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = rotate_points(pts, gravity_rotation("y_down", 20.0))
    assert not np.isfinite(out[3]).all() and np.isfinite(out[5:]).all()


def _label(recognizer: Recognizer, coords: np.ndarray, conf: np.ndarray, person: int,
           gravity=None) -> str:
    """One clip through the node's pipeline as person `person` (turned on the way in by the
    node's gravity hook ``gravity``, when given); the label of its last pass."""
    for t in range(len(coords)):
        frame = InputFrame(stamp_ns=(person * 1000 + t + 1) * 66_666_667, frame_id="robot",
                           layout="kinect20", ids=[person], coords=[coords[t]],
                           confidence=[conf[t]], arrival=float(t))
        recognizer.ingest(frame if gravity is None else gravity.to_model(frame))
    result = recognizer.infer(now=1e9)
    assert result is not None and [p.person_id for p in result.people] == [person]
    recognizer.expire(now=2e9)
    return result.people[0].label


@pytest.fixture(scope="module")
def recognizer(shipped_graph, tmp_path_factory):
    model = share_file("models", "prgcn_msr_action3d.safetensors")
    assert model.is_file(), f"the shipped model {model} is missing"
    # Backend auto (onnxruntime on a CPU) on the session's graph of the shipped model, cached
    # out of the checkout.
    cache = tmp_path_factory.mktemp("frames_graph")
    shipped_graph(model, cache)
    return Recognizer.from_params(RecognizerParams(
        model=str(model), device="cpu", axis="y_up", smoothing=1, min_frames=1,
        max_rate_hz=1000.0, track_timeout_s=1.0, backend_cache_dir=str(cache)))


@pytest.mark.slow
def test_z_up_and_tilted_recordings_get_the_y_up_label(data_dir, recognizer):
    """Each clip as a robot would deliver it, written out by hand (not by the code's own
    matrices, which would undo themselves): in a REP-103 frame (x forward, y left, z up) and
    as seen by a camera pitched down by TILT_DEG; turned back by the node's gravity hook from
    its parameters."""
    from prgcn_ros.nodes.gravity import Gravity

    seen = {"y_up": [], "z_up": [], "tilted": [], "z_up unrotated": []}
    a = math.radians(TILT_DEG)
    # A camera pitched down by a sees up as (0, cos a, -sin a), forward as (0, sin a, cos a).
    pitched = np.array([[1.0, 0.0, 0.0], [0.0, math.cos(a), math.sin(a)],
                        [0.0, -math.sin(a), math.cos(a)]])
    hooks = {"z_up": Gravity.from_parameters({"input_frame_convention": "z_up"}),
             "tilted": Gravity.from_parameters({"input_frame_convention": "y_up",
                                                "camera_tilt_deg": TILT_DEG}),
             "y_up": None, "z_up unrotated": None}
    person = 0
    for clip in CLIPS:
        seq = read_msr_action3d(data_dir / "msr_action3d" / f"{clip}_skeleton3D.txt")
        coords, conf = seq.coords[:, 0], seq.confidence[:, 0]
        # Kinect (x left, y up, z away from the sensor) -> REP-103 (forward, left, up).
        rep103 = coords[..., [2, 0, 1]]
        inputs = {"y_up": coords, "z_up": rep103, "tilted": coords @ pitched.T,
                  "z_up unrotated": rep103}
        for name, xyz in inputs.items():
            person += 1
            seen[name].append(_label(recognizer, xyz, conf, person, hooks[name]))
    assert seen["z_up"] == seen["y_up"]
    assert seen["tilted"] == seen["y_up"]
    # The rotation is what makes them agree: fed as they come, z-up skeletons are misread.
    assert seen["z_up unrotated"] != seen["y_up"]
