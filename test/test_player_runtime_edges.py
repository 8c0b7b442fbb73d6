"""prgcn-player at run time, at its edges: timing (--rate, --parallel, a stall, a bag's own
timing and --loop rounds), waiting for subscribers (--wait, a late subscriber, a bag's marker
topic), stopping (no message after a stop, a stop while waiting or while the recordings are
read), --follow (empty frames, a burst at --rate, a folder that goes away), and the one-line
errors and exit statuses of bad recordings and --write-bag."""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import test_nodes_player
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosutil import (
    REPO,
    drain,
    play_to_end,
    process_log,
    spin_until,
    start_process,
    stop_process,
    wait_for_exit,
    wait_for_log,
)
from test_nodes_bag import _bag_of
from test_nodes_player import wait_until_following
from test_skeleton_playback import openpose_frame
from visualization_msgs.msg import MarkerArray

from prgcn_msgs.msg import SkeletonArray
from prgcn_ros.nodes import player
from prgcn_ros.nodes.player import PlayerNode, installed_type_hash, parse_args
from prgcn_ros.skeleton.bags import read_bag, write_bag
from prgcn_ros.skeleton.playback import MIN_SPACING
from prgcn_ros.skeleton.readers import read_recording

pytestmark = pytest.mark.ros
listener = test_nodes_player.listener    # the fixture: a best-effort subscriber on /player_test

CLIP = "msr_action3d/a01_s01_e01_skeleton3D.txt"      # 54 frames at 15 fps, one person
OTHER_CLIP = "msr_action3d/a03_s02_e01_skeleton3D.txt"  # 32 frames at 15 fps
TOPIC = "/player_test"                                   # the listener fixture's topic


def stamp_s(msg) -> float:
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


def play_args(*args: str) -> list[str]:
    return ["-m", "prgcn_ros.nodes.player", *args]


def run_player(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *play_args(*args)], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


def move_in(folder, frames: list[dict]) -> None:
    """OpenPose frame files that appear in ``folder`` together (one poll sees them all), each
    complete: written beside the folder, then moved in, in order."""
    staging = folder.parent / f"{folder.name}.staging"
    staging.mkdir()
    for i, frame in enumerate(frames):
        (staging / f"burst_{i:012d}_keypoints.json").write_text(json.dumps(frame))
    for path in sorted(staging.iterdir()):
        path.rename(folder / path.name)
    staging.rmdir()


def first_joint(msg) -> tuple[float, float, float]:
    p = msg.skeletons[0].keypoints[0].position
    return (p.x, p.y, p.z)


# ---------------------------------------------------------------------------- timing
def test_parallel_recordings_share_messages_at_their_frame_rate_times_rate(listener, data_dir,
                                                                            tmp_path):
    """Two clips with --parallel 2 --rate 4: both people in the same messages (ids 0 and 100),
    one message per tick of 15 fps * 4 (the longer clip's frames), not faster, not slower; a
    line for each clip as it starts."""
    node, received = listener
    clips = [data_dir / CLIP, data_dir / OTHER_CLIP]
    frames = [read_recording(c).num_frames for c in clips]
    longest = max(frames)
    proc = play_to_end(node, received, play_args(*map(str, clips), "--parallel", "2",
                                                 "--rate", "4", "--topic", TOPIC),
                       tmp_path / "player.log")
    for clip, count, pid in zip(clips, frames, (0, 100)):
        assert (f"playing {clip.name}: {count} frames at 15 fps as person(s) [{pid}]"
                in process_log(proc)), process_log(proc)
    assert any({s.id for s in m.skeletons} == {0, 100} for m in received)
    # The median gap: a stall (a busy machine) or a message lost on the way moves the span.
    gaps = np.diff(sorted(stamp_s(m) for m in received))
    assert len(gaps) >= 0.85 * longest - 1
    period = 1.0 / (15.0 * 4)
    assert 0.85 * period <= np.median(gaps) <= 1.5 * period, gaps


def test_a_stall_while_playing_goes_on_late_without_a_burst(listener, data_dir):
    """A publish held up for 0.5 s (a busy machine; about 30 ticks at --rate 4): the frames
    after it keep at least 3/4 of a tick apart, never back to back (a flood to the
    recognizer)."""
    node, received = listener
    seq = read_recording(data_dir / CLIP)

    class StallingPlayer(PlayerNode):
        sent = 0

        def publish(self, *message) -> None:
            if self.sent == 3:
                time.sleep(0.5)
            super().publish(*message)
            self.sent += 1

    playing = StallingPlayer(parse_args([str(seq.source), "--rate", "4", "--quiet",
                                         "--topic", TOPIC, "--wait", "20"]))
    try:
        playing.wait_for_subscribers()
        playing.play([seq])
    finally:
        playing.destroy_node()
    drain(node, received)
    stamps = sorted(stamp_s(m) for m in received)
    assert len(stamps) >= 0.9 * seq.num_frames
    gaps = np.diff(stamps)
    assert gaps.max() > 0.45                            # the stall happened
    period = 1.0 / (seq.fps * 4)
    assert gaps.min() >= 0.9 * MIN_SPACING * period, gaps


def test_a_looped_bag_keeps_its_timing_in_every_round_and_pauses_between_rounds(
        listener, data_dir, tmp_path):
    """A bag at --rate 4 --loop: each round spans the recorded time / 4 (the first and a later
    one), and a new round's first message comes at least 1/30 s after the last one."""
    node, received = listener
    seq = read_recording(data_dir / CLIP)
    bag = tmp_path / "loop_bag"
    write_bag(bag, [seq], topic="/skeletons")
    entries = list(read_bag(bag))
    recorded = (entries[-1][2] - entries[0][2]) / 1e9
    first, last = seq.coords[0, 0, 0], seq.coords[seq.num_frames - 1, 0, 0]
    proc = start_process(play_args(str(bag), "--rate", "4", "--loop", "--topic", TOPIC,
                                   "--quiet"), tmp_path / "player.log")
    try:
        assert spin_until(node, lambda: len(received) >= 2 * len(entries) + 5, 60), \
            process_log(proc)
    finally:
        code = stop_process(proc)
    assert code == 0, process_log(proc)

    def at(coords) -> list[int]:
        return [i for i, m in enumerate(received)
                if np.allclose(first_joint(m), coords, atol=1e-6)]
    starts, ends = at(first), at(last)
    assert len(starts) >= 2 and len(ends) >= 2, (starts, ends)
    for start, end in zip(starts, ends):
        span = stamp_s(received[end]) - stamp_s(received[start])
        assert 0.9 * recorded / 4 <= span <= 2.5 * recorded / 4, (span, recorded)
    between = stamp_s(received[starts[1]]) - stamp_s(received[ends[0]])
    assert between >= 0.9 / 30, between


# ---------------------------------------------------------------------------- waiting
def test_the_wait_for_a_subscriber_lasts_wait_seconds(ros_context):
    """--wait 0.3 with nobody listening: playing starts after 0.3 s, not after 5 s or never
    (the guard stops a wait that would not end)."""
    playing = PlayerNode(parse_args(["take.txt", "--wait", "0.3", "--topic", "/nobody_here"]))
    guard = threading.Timer(4.0, playing.stop.set)
    guard.start()
    try:
        started = time.monotonic()
        playing.wait_for_subscribers()
        took = time.monotonic() - started
    finally:
        guard.cancel()
        playing.destroy_node()
    assert 0.3 <= took < 2.0, took


def test_a_stop_while_waiting_for_a_subscriber_ends_at_once_with_status_0(ros_context,
                                                                          data_dir, tmp_path):
    """SIGTERM while the player waits (--wait 60) for a subscriber that never comes: it
    ends within seconds with status 0, not after the minute."""
    graph = Node("player_edges_graph")
    topic = "/player_edges/nobody_listens"
    proc = start_process(play_args(str(data_dir / CLIP), "--wait", "60", "--topic", topic,
                                   "--quiet"), tmp_path / "player.log")
    try:
        assert spin_until(graph, lambda: graph.count_publishers(topic) >= 1, 30), \
            process_log(proc)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code, log = wait_for_exit(proc, 10)
        took = time.monotonic() - sent
    finally:
        stop_process(proc)
        graph.destroy_node()
    assert code == 0 and "Traceback" not in log, log
    assert took < 3.0, took


def test_a_late_subscriber_gets_every_frame_once_it_comes(ros_context, data_dir, tmp_path):
    """The player waits (--wait 60) for its subscriber, starts as soon as it is there, and
    nothing was sent to nobody before: a reliable subscriber that joins late gets every
    frame."""
    seq = read_recording(data_dir / CLIP)
    present = int((seq.confidence > 0).any(axis=(1, 2)).sum())
    graph = Node("player_edges_late")
    topic = "/player_edges/late"
    proc = start_process(play_args(str(seq.source), "--wait", "60", "--rate", "4", "--topic",
                                   topic, "--quiet"), tmp_path / "player.log")
    received: list[SkeletonArray] = []
    try:
        assert spin_until(graph, lambda: graph.count_publishers(topic) >= 1, 30), \
            process_log(proc)
        graph.create_subscription(SkeletonArray, topic, received.append,
                                  QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE))
        assert spin_until(graph, lambda: proc.poll() is not None, 30), process_log(proc)
        drain(graph, received)
    finally:
        code = stop_process(proc)
        graph.destroy_node()
    assert code == 0, process_log(proc)
    assert len(received) == present, (len(received), present)


def test_a_bag_plays_once_any_of_its_topics_has_a_subscriber(ros_context, tmp_path):
    """A bag of skeletons and Azure markers, listened to on the markers only (--wait 60):
    it plays at once, and says which topics it plays on."""
    bag = tmp_path / "two_topics"
    markers_topic = "/player_edges/body_tracking_data"
    _bag_of(bag, {"/skeletons": SkeletonArray, markers_topic: MarkerArray})
    graph = Node("player_edges_markers")
    received: list[MarkerArray] = []
    graph.create_subscription(MarkerArray, markers_topic, received.append, 10)
    proc = start_process(play_args(str(bag), "--wait", "60", "--topic",
                                   "/player_edges/skeletons"), tmp_path / "player.log")
    try:
        assert spin_until(graph, lambda: proc.poll() is not None and received, 30), \
            process_log(proc)
    finally:
        code = stop_process(proc)
        graph.destroy_node()
    log = process_log(proc)
    assert code == 0, log
    line = next(line for line in log.splitlines() if line.startswith(f"playing {bag} on "))
    assert markers_topic in line and "/player_edges/skeletons" in line, line


# ---------------------------------------------------------------------------- stopping
@pytest.mark.parametrize("kind", ["recording", "bag", "follow"])
def test_a_stop_between_slow_frames_sends_nothing_more(listener, data_dir, tmp_path, kind):
    """At --rate 0.01 (a frame every 6.7 s; --follow: a burst of files 2.5 s apart) a SIGTERM
    after the first frame: status 0 at once, and no further message (the one that was due is
    not sent on the way out)."""
    node, received = listener
    source = [str(data_dir / CLIP)]
    if kind == "bag":
        source = [str(tmp_path / "slow_bag")]
        write_bag(tmp_path / "slow_bag", [read_recording(data_dir / CLIP)])
    if kind == "follow":
        (tmp_path / "openpose").mkdir()
        source = ["--follow", str(tmp_path / "openpose"), "--wait", "60"]
    proc = start_process(play_args(*source, "--rate", "0.01", "--topic", TOPIC, "--quiet"),
                         tmp_path / "player.log")
    try:
        if kind == "follow":
            wait_until_following(node, proc)
            move_in(tmp_path / "openpose", [openpose_frame(1, i) for i in range(3)])
        assert spin_until(node, lambda: len(received) >= 1, 60), process_log(proc)
        proc.send_signal(signal.SIGTERM)
        assert spin_until(node, lambda: proc.poll() is not None, 10), process_log(proc)
        drain(node, received)
    finally:
        code = stop_process(proc)
    assert code == 0 and "Traceback" not in process_log(proc), process_log(proc)
    assert len(received) == 1, len(received)
    assert "playing" not in process_log(proc)             # --quiet


# A player whose recordings are read to the end, then a SIGTERM comes: as if it came while
# they were still read (a long NTU file, a large OpenPose folder).
STOPPED_WHILE_READING = """
import os, signal, sys
import prgcn_ros.nodes.player as player
read = player.read_recording
def read_then_stop(path):
    seq = read(path)
    os.kill(os.getpid(), signal.SIGTERM)   # the player's handler runs here
    return seq
player.read_recording = read_then_stop
sys.exit(player.main(sys.argv))
"""


@pytest.mark.parametrize("write_bag_too", [False, True])
def test_a_stop_signal_while_the_recordings_are_read(data_dir, tmp_path, write_bag_too):
    """Ctrl-C or SIGTERM while the recordings are still read: the player leaves at once with
    status 0 (nothing was played yet); with --write-bag, status 1 and no bag, not a bag
    written in full after the signal."""
    out = tmp_path / "out_bag"
    result = subprocess.run(
        [sys.executable, "-c", STOPPED_WHILE_READING, str(data_dir / CLIP), "--topic",
         "/player_edges/unused", "--wait", "0", *(["--write-bag", str(out)] if write_bag_too
                                                  else [])],
        cwd=REPO, capture_output=True, text=True, timeout=60)
    assert "Traceback" not in result.stderr, result.stderr
    if write_bag_too:
        assert result.returncode == 1, result.stdout + result.stderr
        assert "interrupted, nothing written" in result.stderr
    else:
        assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr
    assert not out.exists()


# ---------------------------------------------------------------------------- --follow
def test_follow_sends_no_empty_frame_and_paces_a_burst_by_rate(listener, tmp_path):
    """A frame with nobody in it (OpenPose writes one when no one is in view) is not sent; a
    burst of 20 files goes out at 4/3 of 30 fps times --rate 2, not at 30 fps, not back to
    back; no 'skipped' line when none was skipped."""
    node, received = listener
    folder = tmp_path / "openpose"
    folder.mkdir()
    proc = start_process(play_args("--follow", str(folder), "--wait", "60", "--rate", "2",
                                   "--topic", TOPIC), tmp_path / "player.log")
    try:
        wait_until_following(node, proc)
        move_in(folder, [{"people": []}] + [openpose_frame(1, i) for i in range(1, 21)])
        assert spin_until(node, lambda: len(received) >= 20, 20), process_log(proc)
        drain(node, received)
    finally:
        code = stop_process(proc)
    log = process_log(proc)
    assert code == 0, log
    assert len(received) == 20 and all(m.skeletons for m in received)
    assert "skipped as unreadable" not in log, log
    gaps = np.diff(sorted(stamp_s(m) for m in received))
    spacing = MIN_SPACING / (30.0 * 2)
    assert gaps.min() >= 0.9 * spacing, gaps
    assert np.median(gaps) < 1.6 * spacing, gaps


def test_a_followed_folder_that_goes_away_is_one_line_and_status_1(listener, tmp_path):
    """The folder is deleted (or its disk unmounted) while followed: one line naming it,
    status 1, and the count of the files skipped until then."""
    node, _ = listener
    folder = tmp_path / "openpose"
    folder.mkdir()
    proc = start_process(play_args("--follow", str(folder), "--wait", "60", "--topic", TOPIC),
                         tmp_path / "player.log")
    try:
        wait_until_following(node, proc)
        bad = openpose_frame(1, 0)
        bad["people"][0]["pose_keypoints_2d"] = bad["people"][0]["pose_keypoints_2d"][:48]
        move_in(folder, [bad])
        wait_for_log(proc, "skipping burst_", 20)
        shutil.rmtree(folder)
        code, log = wait_for_exit(proc, 20)
    finally:
        stop_process(proc)
    assert code == 1 and "Traceback" not in log, log
    errors = [line for line in log.splitlines() if line.startswith("prgcn-player: ")]
    assert len(errors) == 1 and str(folder) in errors[0], log
    assert "1 frame file(s) skipped as unreadable" in log, log


# ---------------------------------------------------------------------------- errors
def test_a_recording_that_is_not_there_is_one_line_on_stderr_and_status_1(tmp_path):
    missing = tmp_path / "a01_s01_e01_skeleton3D.txt"
    result = run_player(str(missing))
    assert result.returncode == 1 and result.stdout == "", result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("prgcn-player: ") and str(missing) in lines[0]


def test_a_recording_name_the_system_refuses_is_one_line_on_stderr_and_status_1(tmp_path):
    """A file name over 255 bytes (a generated name, a pasted log line): the OS refuses it
    (ENAMETOOLONG); one line naming it, like any recording that cannot be read."""
    name = "x" * 300 + ".txt"
    result = run_player(str(tmp_path / name))
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("prgcn-player: "), result.stderr


def test_write_bag_says_what_it_wrote(data_dir, tmp_path):
    bag = tmp_path / "said_bag"
    result = run_player("--write-bag", str(bag), "--storage", "sqlite3", "--topic", "edges",
                        str(data_dir / CLIP), "--ros-args", "-p", "frame_id:=kinect",
                        "-r", "__ns:=/robot2")
    assert result.returncode == 0, result.stdout + result.stderr
    count = sum(1 for _ in read_bag(bag))
    assert (f"wrote {count} SkeletonArray messages on /robot2/edges (frame_id kinect) to "
            f"{bag} (sqlite3)") in result.stdout


@pytest.mark.parametrize("content", [None, "{not json", '{"other": 1}', '{"type_hashes": null}',
                                     "[1, 2]"])
def test_installed_type_hash_is_none_without_a_readable_description(tmp_path, monkeypatch,
                                                                    content):
    """No description (Humble), or one that does not read: None (no check), not an error that
    stops a bag from playing."""
    (tmp_path / "msg").mkdir()
    if content is not None:
        (tmp_path / "msg" / "SkeletonArray.json").write_text(content)
    monkeypatch.setattr(player, "installed_share", lambda package: tmp_path)
    assert installed_type_hash("prgcn_msgs/msg/SkeletonArray") is None
