"""prgcn-player on its own: every recording format onto /skeletons, and --follow on a folder
that OpenPose writes into."""
from __future__ import annotations

import json
import signal
import time

import pytest
from rclpy.node import Node
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from rosutil import (
    play_to_end,
    process_log,
    spin_until,
    start_process,
    stop_process,
)
from test_skeleton_playback import openpose_frame

from prgcn_msgs.msg import SkeletonArray
from prgcn_ros.skeleton.readers import read_recording

pytestmark = pytest.mark.ros


@pytest.fixture
def listener(ros_context):
    node = Node("player_listener")
    received: list[SkeletonArray] = []
    # Sensor-data QoS as a user would subscribe, with a queue deep enough that a test spinning
    # on a busy machine does not lose the player's bursts (the default depth is 5).
    qos = QoSProfile(depth=1000, reliability=qos_profile_sensor_data.reliability,
                     durability=qos_profile_sensor_data.durability)
    node.create_subscription(SkeletonArray, "/player_test", received.append, qos)
    yield node, received
    node.destroy_node()


def test_player_publishes_every_format_with_its_layout_and_ids(listener, data_dir, tmp_path):
    node, received = listener
    recordings = [data_dir / "ntu_samples" / "S001C003P008R002A058.skeleton",
                  data_dir / "kinetics_skeleton" / "--33Lscn6sk.json",
                  data_dir / "msr_action3d" / "a01_s01_e01_skeleton3D.txt"]
    # The Kinetics clip's frames with someone in them (an empty frame is not sent).
    kinetics = read_recording(recordings[1])
    coco_frames = int((kinetics.confidence > 0).any(axis=(1, 2)).sum())
    play_to_end(node, received, ["-m", "prgcn_ros.nodes.player", *map(str, recordings),
                                 "--topic", "/player_test", "--parallel", "3", "--rate", "4",
                                 "--ros-args", "-p", "frame_id:=cam7"], tmp_path / "player.log")
    by_layout: dict[str, list[SkeletonArray]] = {}
    for msg in received:
        by_layout.setdefault(msg.layout, []).append(msg)
    assert set(by_layout) == {"ntu25", "coco18", "kinect20"}
    assert {msg.header.frame_id for msg in received} == {"cam7"}
    ntu_ids = {s.id for m in by_layout["ntu25"] for s in m.skeletons}
    assert ntu_ids == {0, 1}                         # recording 0, two bodies
    assert {s.id for m in by_layout["coco18"] for s in m.skeletons} == {-1}   # no ids: tracker
    assert {s.id for m in by_layout["kinect20"] for s in m.skeletons} == {200}
    assert {len(s.keypoints) for m in by_layout["ntu25"] for s in m.skeletons} == {25}
    # Image keypoints: z = 0; a message for most of the clip's frames with someone (163 of
    # its 189; the rest are empty).
    assert all(k.position.z == 0 for m in by_layout["coco18"] for s in m.skeletons
               for k in s.keypoints)
    assert 0.85 * coco_frames <= len(by_layout["coco18"]) <= coco_frames
    # Best effort over loopback: nearly every frame arrives, stamps strictly increase.
    for layout, recording in (("ntu25", recordings[0]), ("kinect20", recordings[2])):
        frames = read_recording(recording).num_frames
        assert 0.85 * frames <= len(by_layout[layout]) <= frames, (layout, frames)
    stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in by_layout["ntu25"]]
    assert all(b > a for a, b in zip(stamps, stamps[1:]))


def wait_until_following(node: Node, player) -> None:
    """Both sides of the player's match before a frame file goes in (a frame sent before it is
    lost): the listener's subscription has matched the player's publisher, and the player has
    logged "following", which it does once its publisher matched a subscriber (--wait 60)."""
    subscription = next(iter(node.subscriptions))
    assert spin_until(node, lambda: subscription.get_publisher_count() >= 1
                      and "following" in process_log(player), 30), process_log(player)


def test_player_follows_a_folder_openpose_writes_into(listener, tmp_path):
    node, received = listener
    folder = tmp_path / "openpose"
    folder.mkdir()
    (folder / "old_000000000000_keypoints.json").write_text(json.dumps(openpose_frame(1, 0)))
    player = start_process(["-m", "prgcn_ros.nodes.player", "--follow", str(folder), "--wait",
                            "60", "--topic", "/player_test"], tmp_path / "player.log")
    try:
        wait_until_following(node, player)
        for i in range(3):
            if i == 1:   # a frame file the reader refuses is skipped, the stream goes on
                bad = openpose_frame(2, 9)
                bad["people"][1]["pose_keypoints_2d"] = bad["people"][1]["pose_keypoints_2d"][:54]
                (tmp_path / "bad.json").write_text(json.dumps(bad))
                (tmp_path / "bad.json").rename(folder / "bad_000000000000_keypoints.json")
                (folder / ".copying.json").write_text("{")   # a copy tool's hidden file
            path = folder / f"live_{i:012d}_keypoints.json"
            # OpenPose writes a file, then it is complete: write elsewhere, then move in.
            tmp = tmp_path / "partial.json"
            tmp.write_text(json.dumps(openpose_frame(2, i + 1)))
            tmp.rename(path)
            assert spin_until(node, lambda n=i: len(received) >= n + 1, 10), process_log(player)
    finally:
        stop_process(player)
    assert len(received) == 3                        # the old file was skipped
    assert "skipping bad_000000000000_keypoints.json" in process_log(player)
    assert ".copying.json" not in process_log(player)
    assert all(m.layout == "body25" and len(m.skeletons) == 2 for m in received)
    assert all(s.id == -1 and len(s.keypoints) == 25 for m in received for s in m.skeletons)


def test_player_follow_consume_deletes_what_it_sent_and_reports_a_bad_file_kind_once(
        listener, tmp_path):
    node, received = listener
    folder = tmp_path / "openpose"
    folder.mkdir()
    player = start_process(["-m", "prgcn_ros.nodes.player", "--follow", str(folder), "--consume",
                            "--wait", "60", "--topic", "/player_test"], tmp_path / "player.log")

    def move_in(name: str, frame: dict) -> None:
        (tmp_path / "partial.json").write_text(json.dumps(frame))
        (tmp_path / "partial.json").rename(folder / name)

    try:
        wait_until_following(node, player)
        for i in range(4):
            if i in (1, 2):      # two files the reader refuses for the same reason
                bad = openpose_frame(1, 9)
                bad["people"][0]["pose_keypoints_2d"] = bad["people"][0]["pose_keypoints_2d"][:48]
                move_in(f"bad_{i:012d}_keypoints.json", bad)
            if i == 3:           # a folder named like a frame: skipped, cannot be deleted
                (folder / "dir_000000000003_keypoints.json").mkdir()
            move_in(f"live_{i:012d}_keypoints.json", openpose_frame(1, i + 1))
            assert spin_until(node, lambda n=i: len(received) >= n + 1, 10), process_log(player)
        left = [folder / "dir_000000000003_keypoints.json"]
        assert spin_until(node, lambda: list(folder.iterdir()) == left, 10), \
            list(folder.iterdir())
    finally:
        stop_process(player)
    log = process_log(player)
    assert len(received) == 4
    assert log.count("skipping bad_") == 1 and "3 frame file(s) skipped" in log
    assert log.count("--consume: cannot delete dir_") == 1


def test_player_loops_with_fresh_stamps(listener, data_dir, tmp_path):
    node, received = listener
    clip = data_dir / "msr_action3d" / "a01_s01_e01_skeleton3D.txt"
    frames = read_recording(clip).num_frames
    player = start_process(["-m", "prgcn_ros.nodes.player", str(clip), "--loop", "--rate", "8",
                            "--topic", "/player_test", "--quiet"], tmp_path / "player.log")
    try:
        assert spin_until(node, lambda: len(received) >= frames + 10, 60), process_log(player)
    finally:
        stop_process(player)
    stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in received]
    assert all(b > a for a, b in zip(stamps, stamps[1:]))
    # The new round starts a tick after the last frame, not at once (a flood to the node).
    tick_ns = 1e9 / (15 * 8)
    assert stamps[frames] - stamps[frames - 1] > 0.5 * tick_ns
    assert {s.id for m in received for s in m.skeletons} == {0}


@pytest.mark.parametrize("stop, rate", [(signal.SIGINT, "8"), (signal.SIGTERM, "8"),
                                         (signal.SIGTERM, "0.01")])
def test_a_stop_signal_during_playback_ends_it_promptly_with_status_0(listener, data_dir,
                                                                       tmp_path, stop, rate):
    """Ctrl-C or SIGTERM while playing, at a normal rate and at one frame in 6.7 s: status
    0 within a second or two, no traceback (a publish into the context rclpy's handler had
    shut down gave a traceback and status 1; a slow rate held SIGTERM until the next frame)."""
    node, received = listener
    clip = data_dir / "msr_action3d" / "a01_s01_e01_skeleton3D.txt"
    player = start_process(["-m", "prgcn_ros.nodes.player", str(clip), "--loop", "--rate", rate,
                            "--topic", "/player_test", "--quiet"], tmp_path / "player.log")
    try:
        assert spin_until(node, lambda: len(received) >= 1, 60), process_log(player)
        spin_until(node, lambda: False, 0.3)          # mid-way between two frames
        sent = time.monotonic()
        player.send_signal(stop)
        assert spin_until(node, lambda: player.poll() is not None, 10), process_log(player)
        took = time.monotonic() - sent
    finally:
        code = stop_process(player)
    assert code == 0 and "Traceback" not in process_log(player), process_log(player)
    assert took < 3.0, took


def test_a_rate_that_is_not_a_positive_number_is_refused(capsys):
    from prgcn_ros.nodes.player import parse_args

    for rate in ("nan", "inf", "0", "-1"):
        with pytest.raises(SystemExit) as stop:
            parse_args(["rec.txt", "--rate", rate])
        error = capsys.readouterr().err
        assert stop.value.code == 2 and "--rate must be a positive, finite number" in error


def test_consume_needs_follow(tmp_path, capsys):
    from prgcn_ros.nodes.player import parse_args

    with pytest.raises(SystemExit) as stop:
        parse_args([str(tmp_path / "rec.txt"), "--consume"])
    assert stop.value.code == 2 and "only with --follow" in capsys.readouterr().err


@pytest.mark.parametrize("extra", [["rec.txt"], ["--write-bag", "out_bag"]])
def test_follow_takes_no_recordings_and_writes_no_bag(tmp_path, extra, capsys):
    from prgcn_ros.nodes.player import parse_args

    with pytest.raises(SystemExit) as stop:
        parse_args(["--follow", str(tmp_path), *extra])
    assert stop.value.code == 2 and "--follow publishes a folder" in capsys.readouterr().err


@pytest.mark.parametrize("extra", [["--rate", "2"], ["--parallel", "2"], ["--loop"]])
def test_write_bag_refuses_the_options_of_playing(tmp_path, extra, capsys):
    from prgcn_ros.nodes.player import parse_args

    with pytest.raises(SystemExit) as stop:
        parse_args(["rec.txt", "--write-bag", str(tmp_path / "out"), *extra])
    assert stop.value.code == 2 and "no --rate, --parallel or --loop" in capsys.readouterr().err
