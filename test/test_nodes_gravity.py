"""The recognizer's gravity hook, across processes: skeletons in a z-up robot frame are rotated
into the model's y-up convention on the way in, and the refined poses come back out in the
input's own frame; bad gravity parameters stop start-up with one line."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from rosutil import (
    azure_markers,
    connected_probe,
    rclpy_session,
    recognizer_args,
    recognizer_process,
    spin_until,
    standing,
    start_process,
    wait_for_exit,
)

from prgcn_ros.live_data import local_id
from prgcn_ros.skeleton.frames import gravity_rotation
from prgcn_ros.skeleton.mapping import map_joints

pytestmark = pytest.mark.ros


@pytest.fixture(scope="module")
def z_up_recognizer(tiny_model, tmp_path_factory):
    with recognizer_process(
            tiny_model, tmp_path_factory.mktemp("gravity") / "recognizer.log",
            "input_frame_convention:=z_up", "camera_tilt_deg:=10.0", "min_frames:=4",
            "window:=16", "smoothing:=1", "azure_kinect:=true", "azure_tilt_deg:=20.0") as proc:
        yield proc


def _label_and_joints(probe, stamp, pid: int) -> tuple[np.ndarray, np.ndarray]:
    """The RViz label's position and the joints of person ``pid`` at ``stamp``."""
    found = {}

    def both() -> bool:
        for m in probe.markers:
            for marker in m.markers:
                if marker.header.stamp == stamp and marker.id == local_id(pid):
                    found[marker.ns.split("/")[0]] = marker
        return "label" in found and "joints" in found

    assert spin_until(probe.node, both, 20.0)
    p = found["label"].pose.position
    return (np.array([p.x, p.y, p.z]),
            np.array([[q.x, q.y, q.z] for q in found["joints"].points]))


def _refined(probe, stamp, pid: int) -> tuple[np.ndarray, np.ndarray]:
    """Refined joints and offsets of person ``pid`` at ``stamp``."""
    assert spin_until(probe.node, lambda: any(
        local_id(s.person_id) == pid for m in probe.refined for s in m.skeletons
        if m.header.stamp == stamp), 20.0)
    skeleton = next(s for m in probe.refined for s in m.skeletons
                    if local_id(s.person_id) == pid and m.header.stamp == stamp)
    return (np.array([[k.position.x, k.position.y, k.position.z] for k in skeleton.keypoints]),
            np.array([[o.x, o.y, o.z] for o in skeleton.offsets]))


@pytest.mark.slow
def test_refined_poses_come_back_in_the_z_up_input_frame(z_up_recognizer):
    with rclpy_session(), connected_probe(z_up_recognizer) as probe:
        # A person 2 m ahead of a robot in base_link (x forward, z up).
        person = standing(4)[:, [2, 0, 1]]
        last = probe.play({31: person}, 8)
        probe.wait_action(31, stamp=last)
        refined, offsets = _refined(probe, last, 31)
        label, joints = _label_and_joints(probe, last, 31)
    # refined = input + offsets, in the frame the input came in (Probe.play moved it 7 cm).
    np.testing.assert_allclose(refined - offsets, person + 0.01 * 7, atol=1e-4)
    # The label sits above the head: up is the model's up in the input frame (about +z).
    assert label[2] > joints[:, 2].max()


@pytest.mark.slow
def test_a_pitched_azure_kinect_is_turned_upright_and_answered_in_its_own_frame(
        z_up_recognizer):
    """azure_tilt_deg: the Azure input's markers (depth_camera_link, optical, pitched 20
    degrees down) are turned into the y-up convention; refined poses come back in the
    driver's frame, the label above the head there."""
    rotation = gravity_rotation("y_down", 20.0)          # optical, pitched -> y up
    with rclpy_session(), connected_probe(z_up_recognizer, azure=True) as probe:
        person = standing(5, "azure32")
        stamp = None
        for t in range(8):
            stamp = probe.now()
            probe.azure.publish(azure_markers(stamp, {4: person + 0.01 * t}))
            probe.spin(1 / 30)
        probe.wait_action(4, stamp=stamp)
        refined, offsets = _refined(probe, stamp, 4)
        label, joints = _label_and_joints(probe, stamp, 4)
    expected, _ = map_joints(person + 0.07, np.ones(32), "azure32", "kinect20")
    np.testing.assert_allclose(refined - offsets, expected, atol=1e-4)
    up = rotation[1]                          # the model's up in the driver's frame
    assert label @ up > (joints @ up).max()


@pytest.mark.parametrize("overrides, words", [
    (["input_frame_convention:=x_up"], ["input_frame_convention must be", "z_up"]),
    (["camera_tilt_deg:=120.0", "input_frame_convention:=y_down"], ["camera_tilt_deg"]),
    # A tilt alone was ignored without a word: the frame it is undone in must be named.
    (["camera_tilt_deg:=25.0"], ["camera_tilt_deg 25", "input_frame_convention"]),
    # The Azure pitch without the Azure input, or besides tf2's: one line, not ignored.
    (["azure_tilt_deg:=6.0"], ["azure_tilt_deg 6", "azure_kinect:=true"]),
    (["azure_kinect:=true", "azure_tilt_deg:=6.0", "gravity_frame:=base_link"],
     ["azure_tilt_deg 6", "gravity_frame"]),
    # camera_tilt_deg besides tf2's pitch was applied on top of it (a level camera tilted).
    (["camera_tilt_deg:=20.0", "gravity_frame:=base_link"],
     ["camera_tilt_deg 20", "gravity_frame"]),
])
def test_bad_gravity_parameters_stop_start_up_with_one_line(overrides, words, tiny_model,
                                                           tmp_path):
    proc = start_process(recognizer_args(tiny_model, *overrides), tmp_path / "log.txt")
    code, log = wait_for_exit(proc)
    assert code == 2, log
    lines = [line for line in log.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("prgcn-recognizer: "), log
    for word in words:
        assert word in lines[0]


def test_gravity_frame_without_tf2_says_what_to_use_instead(tiny_model, tmp_path):
    if importlib.util.find_spec("tf2_ros") is not None:
        pytest.skip("tf2_ros is installed here: gravity_frame is served")
    proc = start_process(recognizer_args(tiny_model, "gravity_frame:=base_link"),
                         tmp_path / "log.txt")
    code, log = wait_for_exit(proc)
    assert code == 2, log
    assert "tf2_ros" in log and "input_frame_convention" in log
