"""Crowds, large messages, echoed strings and bursts from prgcn-player --follow (issue 13),
across processes over real DDS. One recognizer (a 2D model, reliable input, namespace /crowd)
serves the module; counters are read as differences."""
from __future__ import annotations

import json

import numpy as np
import psutil
import pytest
from rosutil import (
    Probe,
    connected_probe,
    make_tiny_model,
    process_log,
    rclpy_session,
    recognizer_process,
    skeleton_array,
    spin_until,
    start_process,
    stop_process,
)
from test_skeleton_playback import openpose_frame

pytestmark = pytest.mark.ros

NS = "/crowd"
MB = 1024 * 1024


@pytest.fixture(scope="module")
def recognizer(tmp_path_factory):
    folder = tmp_path_factory.mktemp("crowd")
    model = make_tiny_model(folder / "tiny2d.safetensors", layout="coco18")
    with recognizer_process(model, folder / "recognizer.log", "input_reliability:=reliable",
                            "min_frames:=4", "window:=16", "diagnostics_period_s:=0.25",
                            "smoothing:=1", ros_args=("-r", f"__ns:={NS}")) as proc:
        yield proc


@pytest.fixture(scope="module")
def probe(recognizer):
    with rclpy_session(), connected_probe(recognizer, NS) as probe:
        yield probe


def crowd(probe: Probe, people: int, with_ids: bool, seed: int):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(50, 1500, (people, 18, 3))
    xy[..., 2] = 0.0
    ids = range(people) if with_ids else [-1] * people
    msg = skeleton_array(probe.now(), {}, layout="coco18", frame_id="crowd_cam")
    for pid, person in zip(ids, xy):
        msg.skeletons += skeleton_array(probe.now(), {pid: person}, layout="coco18").skeletons
    return msg


def test_crowds_keep_memory_bounded_and_large_messages_arrive_with_reliable_input(
        probe, recognizer):
    """Two messages of 1,000 id-less people and two with ids (about 0.8 MB each): every one
    arrives over reliable input and is refused whole (too_many_people); the node's memory stays
    within 50 MB of its idle size throughout."""
    node = psutil.Process(recognizer.pid)
    before = probe.settled()
    idle = node.memory_info().rss
    peak = idle
    messages = [crowd(probe, 1000, with_ids, seed) for seed, with_ids in
                enumerate((False, False, True, True))]
    for msg in messages:
        msg.header.stamp = probe.now()
        probe.skeletons.publish(msg)
        probe.spin(0.1)   # pacing: apart by more than 1/max_input_hz

    def done() -> bool:
        nonlocal peak
        peak = max(peak, node.memory_info().rss)
        last = probe.diagnostics[-1] if probe.diagnostics else before
        return (int(last["messages_received"]) >= int(before["messages_received"]) + 4 and
                int(last["dropped_too_many_people"])
                >= int(before["dropped_too_many_people"]) + 4)
    assert spin_until(probe.node, done, 60), probe.diagnostics[-1:]
    for _ in range(10):   # a little longer: memory after the messages were handled
        probe.spin(0.1)
        peak = max(peak, node.memory_info().rss)
    figures = f"RSS {idle / MB:.0f} MB idle, {peak / MB:.0f} MB peak"
    print(figures)   # shown with pytest -s
    assert peak - idle < 50 * MB, figures
    assert "messages_lost" in probe.diagnostics[-1]


def test_strings_echoed_in_logs_are_cut(probe, recognizer):
    """A 1 MB layout string is dropped as unknown_layout and logged in one short line."""
    before = int(probe.wait_diagnostics(lambda d: "dropped_unknown_layout" in d)
                 ["dropped_unknown_layout"])
    msg = skeleton_array(probe.now(), {5: np.ones((18, 3))}, layout="x" * 1_000_000,
                         frame_id="y" * 100_000)
    probe.skeletons.publish(msg)
    probe.wait_diagnostics(lambda d: int(d["dropped_unknown_layout"]) >= before + 1)
    assert spin_until(probe.node, lambda: "dropped_unknown_layout" in process_log(recognizer), 10)
    lines = process_log(recognizer).splitlines()
    assert max(len(line) for line in lines) < 1000
    assert any("(1000000 characters)" in line for line in lines)


@pytest.mark.slow
def test_player_follow_paces_a_burst_at_the_frame_rate(probe, tmp_path):
    """60 OpenPose frame files appearing at once: published at the recording's rate, none
    dropped as a flood."""
    folder = tmp_path / "openpose"
    folder.mkdir()
    player = start_process(["-m", "prgcn_ros.nodes.player", "--follow", str(folder),
                            "--topic", f"{NS}/skeletons", "--ros-args", "-p",
                            "frame_id:=follow_cam"], tmp_path / "player.log")
    try:
        assert spin_until(probe.node, lambda: "following" in process_log(player), 60)
        assert spin_until(probe.node, lambda: probe.node.count_publishers(f"{NS}/skeletons")
                          >= 2, 30)
        keys = ("frames_buffered", "dropped_flood", "dropped_total")
        before = {k: int(v) for k, v in probe.settled().items() if k in keys}
        staging = tmp_path / "staging"
        staging.mkdir()
        for i in range(60):
            (staging / f"burst_{i:012d}_keypoints.json").write_text(
                json.dumps(openpose_frame(1, 0)))
        for path in sorted(staging.iterdir()):   # complete files, all in one poll
            path.rename(folder / path.name)
        stats = probe.wait_diagnostics(
            lambda d: int(d["frames_buffered"]) >= before["frames_buffered"] + 60, 30)
    finally:
        stop_process(player)
    assert int(stats["frames_buffered"]) == before["frames_buffered"] + 60
    assert int(stats["dropped_flood"]) == before["dropped_flood"]
