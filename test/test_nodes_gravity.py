"""The recognizer's gravity hook, across processes: skeletons in a z-up robot frame are rotated
into the model's y-up convention on the way in, and the refined poses come back out in the
input's own frame; bad gravity parameters stop start-up with one line."""
from __future__ import annotations

import importlib.util
import time

import numpy as np
import pytest
import rclpy
from rosutil import process_log, spin_until, start_process, stop_process, wait_for_subscribers
from test_nodes import Probe, make_tiny_model, recognizer_args, standing

pytestmark = pytest.mark.ros


@pytest.fixture(scope="module")
def z_up_recognizer(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gravity")
    model = make_tiny_model(folder / "tiny.safetensors")
    proc = start_process(recognizer_args(
        model, "input_frame_convention:=z_up", "camera_tilt_deg:=10.0", "min_frames:=4",
        "window:=16", "smoothing:=1"), folder / "recognizer.log")
    yield proc
    code = stop_process(proc)
    assert code == 0, process_log(proc)


def test_refined_poses_come_back_in_the_z_up_input_frame(z_up_recognizer):
    rclpy.init()
    probe = Probe()
    try:
        wait_for_subscribers(probe.node, probe.skeletons, timeout_s=60)
        probe.spin(1.0)
        # A person 2 m ahead of a robot in base_link (x forward, z up).
        person = standing(4)[:, [2, 0, 1]]
        last = probe.play({31: person}, 8)
        probe.wait_action(31, stamp=last)
        assert spin_until(probe.node, lambda: any(
            s.person_id == 31 for m in probe.refined for s in m.skeletons
            if m.header.stamp == last), 20.0), process_log(z_up_recognizer)
    finally:
        probe.node.destroy_node()
        rclpy.try_shutdown()
    skeleton = next(s for m in probe.refined for s in m.skeletons
                    if s.person_id == 31 and m.header.stamp == last)
    refined = np.array([[k.position.x, k.position.y, k.position.z] for k in skeleton.keypoints])
    offsets = np.array([[o.x, o.y, o.z] for o in skeleton.offsets])
    # refined = input + offsets, in the frame the input came in (Probe.play moved it 7 cm).
    np.testing.assert_allclose(refined - offsets, person + 0.01 * 7, atol=1e-4)


@pytest.mark.parametrize("overrides, words", [
    (["input_frame_convention:=x_up"], ["input_frame_convention must be", "z_up"]),
    (["camera_tilt_deg:=120.0", "input_frame_convention:=y_down"], ["camera_tilt_deg"]),
])
def test_bad_gravity_parameters_stop_start_up_with_one_line(overrides, words, tmp_path):
    model = make_tiny_model(tmp_path / "tiny.safetensors")
    proc = start_process(recognizer_args(model, *overrides), tmp_path / "log.txt")
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    log = process_log(proc)
    code = stop_process(proc)
    assert code == 2, log
    lines = [line for line in log.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("prgcn-recognizer: "), log
    for word in words:
        assert word in lines[0]


def test_gravity_frame_without_tf2_says_what_to_use_instead(tmp_path):
    if importlib.util.find_spec("tf2_ros") is not None:
        pytest.skip("tf2_ros is installed here: gravity_frame is served")
    model = make_tiny_model(tmp_path / "tiny.safetensors")
    proc = start_process(recognizer_args(model, "gravity_frame:=base_link"),
                         tmp_path / "log.txt")
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    log = process_log(proc)
    assert stop_process(proc) == 2, log
    assert "tf2_ros" in log and "input_frame_convention" in log
