"""The recognizer's gravity hook, across processes: skeletons in a z-up robot frame are rotated
into the model's y-up convention on the way in, and the refined poses come back out in the
input's own frame; bad gravity parameters stop start-up with one line."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from rosutil import (
    connected_probe,
    process_log,
    rclpy_session,
    recognizer_args,
    recognizer_process,
    spin_until,
    standing,
    start_process,
    wait_for_exit,
)

pytestmark = pytest.mark.ros


@pytest.fixture(scope="module")
def z_up_recognizer(tiny_model, tmp_path_factory):
    with recognizer_process(
            tiny_model, tmp_path_factory.mktemp("gravity") / "recognizer.log",
            "input_frame_convention:=z_up", "camera_tilt_deg:=10.0", "min_frames:=4",
            "window:=16", "smoothing:=1") as proc:
        yield proc


@pytest.mark.slow
def test_refined_poses_come_back_in_the_z_up_input_frame(z_up_recognizer):
    with rclpy_session(), connected_probe(z_up_recognizer) as probe:
        # A person 2 m ahead of a robot in base_link (x forward, z up).
        person = standing(4)[:, [2, 0, 1]]
        last = probe.play({31: person}, 8)
        probe.wait_action(31, stamp=last)
        assert spin_until(probe.node, lambda: any(
            s.person_id == 31 for m in probe.refined for s in m.skeletons
            if m.header.stamp == last), 20.0), process_log(z_up_recognizer)
    skeleton = next(s for m in probe.refined for s in m.skeletons
                    if s.person_id == 31 and m.header.stamp == last)
    refined = np.array([[k.position.x, k.position.y, k.position.z] for k in skeleton.keypoints])
    offsets = np.array([[o.x, o.y, o.z] for o in skeleton.offsets])
    # refined = input + offsets, in the frame the input came in (Probe.play moved it 7 cm).
    np.testing.assert_allclose(refined - offsets, person + 0.01 * 7, atol=1e-4)


@pytest.mark.parametrize("overrides, words", [
    (["input_frame_convention:=x_up"], ["input_frame_convention must be", "z_up"]),
    (["camera_tilt_deg:=120.0", "input_frame_convention:=y_down"], ["camera_tilt_deg"]),
    # A tilt alone was ignored without a word: the frame it is undone in must be named.
    (["camera_tilt_deg:=25.0"], ["camera_tilt_deg 25", "input_frame_convention"]),
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
