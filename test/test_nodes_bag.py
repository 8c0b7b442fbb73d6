"""rosbag2 recordings: `prgcn-player --write-bag` writes recordings into a bag (sqlite3 or
mcap) and `prgcn-player BAG` plays it in another process, SkeletonArray onto /skeletons and the
Azure Kinect driver's MarkerArray onto its own topic, with the bag's timing and fresh stamps."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from rclpy.node import Node
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from rclpy.serialization import serialize_message
from rosutil import (
    REPO,
    azure_markers,
    play_to_end,
    standing,
)
from visualization_msgs.msg import MarkerArray

from prgcn_msgs.msg import SkeletonArray
from prgcn_ros.skeleton.bags import MARKER_ARRAY, is_bag, read_bag
from prgcn_ros.skeleton.readers import read_recording

pytestmark = pytest.mark.ros
CLIP = "a03_s02_e01_skeleton3D.txt"


def _qos() -> QoSProfile:
    return QoSProfile(depth=1000, reliability=qos_profile_sensor_data.reliability,
                      durability=qos_profile_sensor_data.durability)


def _play(node: Node, received: list, bag, tmp_path, *extra: str) -> None:
    play_to_end(node, received, ["-m", "prgcn_ros.nodes.player", str(bag), "--rate", "4", *extra],
                tmp_path / "player.log", 90)


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_recordings_written_as_a_bag_play_back_as_skeleton_arrays(storage, data_dir, tmp_path,
                                                                   ros_context):
    clip = data_dir / "msr_action3d" / CLIP
    bag = tmp_path / "demo_bag"
    written = subprocess.run(
        [sys.executable, "-m", "prgcn_ros.nodes.player", "--write-bag", str(bag), "--storage",
         storage, "--topic", "/bag_test/skeletons", str(clip)],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert written.returncode == 0, written.stdout + written.stderr
    seq = read_recording(clip)
    assert is_bag(bag) and next(bag.glob("*.mcap" if storage == "mcap" else "*.db3"))
    present = [t for t in range(seq.num_frames) if (seq.confidence[t, 0] > 0).any()]
    assert sum(1 for _ in read_bag(bag)) == len(present)    # frames with the person in view

    node = Node("bag_listener")
    received: list[SkeletonArray] = []
    node.create_subscription(SkeletonArray, "/played/skeletons", received.append, _qos())
    started = node.get_clock().now().nanoseconds
    _play(node, received, bag, tmp_path, "--topic", "/played/skeletons")
    node.destroy_node()
    # Best effort on loopback: nearly every frame, in order, as recorded, stamped at playback.
    assert len(received) >= 0.9 * len(present)
    assert all(m.layout == "kinect20" and m.header.frame_id == "camera" for m in received)
    stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in received]
    assert stamps == sorted(stamps) and stamps[0] >= started
    last = received[-1].skeletons[0]
    assert last.id == 0
    xyz = np.array([[k.position.x, k.position.y, k.position.z] for k in last.keypoints])
    np.testing.assert_allclose(xyz, seq.coords[present[-1], 0], atol=1e-6)
    # Played at 4x the recording's 15 fps: the bag's timing, not as fast as possible.
    span = (stamps[-1] - stamps[0]) / 1e9
    assert span >= 0.7 * (len(received) - 1) / (seq.fps * 4)     # catching up: 4/3 at most


def test_azure_kinect_marker_bag_plays_on_its_own_topic(tmp_path, ros_context):
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    bag = tmp_path / "azure_bag"
    bodies = {1: standing(1, "azure32"), 2: standing(2, "azure32", offset=1.0)}
    frames = 20
    with Writer(bag, version=8, storage_plugin=StoragePlugin.MCAP) as writer:
        connection = writer.add_connection("/body_tracking_data", MARKER_ARRAY,
                                           typestore=get_typestore(Stores.LATEST))
        for t in range(frames):
            stamp = 10**9 + t * 33_333_333
            msg = azure_markers(Time(sec=stamp // 10**9, nanosec=stamp % 10**9),
                                {b: xyz + 0.01 * t for b, xyz in bodies.items()})
            writer.write(connection, stamp, serialize_message(msg))

    node = Node("azure_bag_listener")
    received: list[MarkerArray] = []
    node.create_subscription(MarkerArray, "/body_tracking_data", received.append, _qos())
    _play(node, received, bag, tmp_path)
    node.destroy_node()
    assert len(received) >= 0.9 * frames
    last = received[-1]
    assert {m.id for m in last.markers} == {b * 100 + j for b in bodies for j in range(32)}
    got = {m.id: np.array([m.pose.position.x, m.pose.position.y, m.pose.position.z])
           for m in last.markers}
    t = round((got[105][0] - bodies[1][5][0]) / 0.01)      # which frame arrived last
    assert 0 <= t < frames
    np.testing.assert_allclose(got[105], bodies[1][5] + 0.01 * t, atol=1e-9)
    np.testing.assert_allclose(got[231], bodies[2][31] + 0.01 * t, atol=1e-9)
    assert all(m.header.stamp.sec > 10 for m in last.markers)   # restamped at playback


def test_player_names_the_bag_when_it_has_nothing_to_play(tmp_path):
    from rosbags.rosbag2 import Writer

    bag = tmp_path / "empty_bag"
    with Writer(bag, version=8) as writer:
        from rosbags.typesys import Stores, get_typestore
        writer.add_connection("/chatter", "std_msgs/msg/String",
                              typestore=get_typestore(Stores.LATEST))
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "prgcn_ros.nodes.player", str(bag)],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert str(bag) in result.stderr and "/chatter (std_msgs/msg/String)" in result.stderr
    assert time.monotonic() - started < 60


def test_a_write_interrupted_by_a_stop_signal_leaves_no_bag_and_says_so(data_dir, tmp_path,
                                                                       monkeypatch, capsys):
    """Ctrl-C or SIGTERM while --write-bag writes (the signal handler raises SystemExit then):
    the half-written bag goes, status 1; a folder that was there before is left alone."""
    import prgcn_ros.nodes.player as player
    from prgcn_ros.skeleton.readers import read_recording

    def interrupted(path, *args, **kwargs):
        Path(path).mkdir(exist_ok=True)
        (Path(path) / "metadata.yaml").write_text("half")
        raise SystemExit(0)

    monkeypatch.setattr(player, "write_bag", interrupted)
    clip = read_recording(data_dir / "msr_action3d" / "a01_s01_e01_skeleton3D.txt")
    out = tmp_path / "out_bag"
    args = player.parse_args([str(clip.source), "--write-bag", str(out)])
    assert player._write_bag_file(args, [clip], "/skeletons", "camera") == 1
    assert not out.exists() and "interrupted, nothing written" in capsys.readouterr().err
    out.mkdir()                                         # there before: not ours to delete
    assert player._write_bag_file(args, [clip], "/skeletons", "camera") == 1
    assert out.is_dir() and "interrupted" in capsys.readouterr().err


def test_a_write_interrupted_while_reading_the_recordings_says_so(tmp_path, monkeypatch,
                                                                  capsys):
    """A stop signal while the recordings are read (the handler raises SystemExit then):
    with --write-bag, status 1 and a message, not status 0 as if the bag were written."""
    import signal

    import prgcn_ros.nodes.player as player

    def interrupted(path):
        raise SystemExit(0)

    monkeypatch.setattr(player, "read_recording", interrupted)
    handlers = {stop: signal.getsignal(stop) for stop in player.STOP_SIGNALS}
    try:
        out = tmp_path / "out_bag"
        assert player.main(["prgcn-player", "rec.txt", "--write-bag", str(out)]) == 1
        assert not out.exists() and "interrupted, nothing written" in capsys.readouterr().err
    finally:
        for stop, handler in handlers.items():
            signal.signal(stop, handler)


def test_a_bag_whose_metadata_is_broken_is_named_in_one_line(tmp_path):
    from prgcn_ros.skeleton.bags import BagError, bag_topics

    bag = tmp_path / "broken_bag"
    bag.mkdir()
    (bag / "metadata.yaml").write_text("rosbag2_bagfile_information:\n  version: [8\n")
    with pytest.raises(BagError, match="broken_bag: not a readable rosbag2") as error:
        bag_topics(bag)
    assert "\n" not in str(error.value), str(error.value)


def test_write_bag_never_overwrites(data_dir, tmp_path):
    out = tmp_path / "exists"
    out.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "prgcn_ros.nodes.player", "--write-bag", str(out),
         str(data_dir / "msr_action3d" / CLIP)], cwd=REPO, capture_output=True, text=True,
        timeout=120)
    assert result.returncode == 1
    assert str(out) in result.stderr and "exists" in result.stderr
    assert not any(out.iterdir())


def test_a_recording_without_a_frame_rate_leaves_no_half_written_bag(data_dir, tmp_path):
    from prgcn_ros.skeleton.bags import BagError, write_bag

    seq = read_recording(data_dir / "msr_action3d" / CLIP)
    seq.fps = 0.0
    with pytest.raises(BagError, match="frame rate 0.0"):
        write_bag(tmp_path / "bag", [seq])
    assert not (tmp_path / "bag").exists()


def _bag_of(path, topics: dict[str, type]) -> None:
    """A bag with one default-constructed message on each topic."""
    from rosbags.rosbag2 import Writer

    from prgcn_ros.skeleton.bags import typestore

    store = typestore()
    with Writer(path, version=8) as writer:
        for topic, kind in topics.items():
            msgtype = MARKER_ARRAY if kind is MarkerArray else "prgcn_msgs/msg/SkeletonArray"
            connection = writer.add_connection(topic, msgtype, typestore=store)
            writer.write(connection, 10**9, serialize_message(kind()))


def test_a_bag_recorded_with_all_topics_plays_the_skeletons_not_old_rviz_markers(tmp_path):
    """`ros2 bag record -a` beside a running recognizer also holds its /refined_poses/markers:
    played back, they would draw old output over the new. Only SkeletonArray topics and the
    Azure driver's body_tracking_data play, other MarkerArray topics when named."""
    from prgcn_ros.skeleton.bags import BagError, bag_topics

    bag = tmp_path / "all_topics"
    _bag_of(bag, {"/skeletons": SkeletonArray, "/body_tracking_data": MarkerArray,
                  "/refined_poses/markers": MarkerArray})
    assert bag_topics(bag) == [("/body_tracking_data", MARKER_ARRAY),
                               ("/skeletons", "prgcn_msgs/msg/SkeletonArray")]
    assert [t for t, *_ in read_bag(bag)] == ["/skeletons", "/body_tracking_data"]
    assert bag_topics(bag, ["/refined_poses/markers"]) == [("/refined_poses/markers",
                                                            MARKER_ARRAY)]
    # A SkeletonArray topic that holds no message: named, not played as nothing.
    from rosbags.rosbag2 import Writer

    from prgcn_ros.skeleton.bags import typestore
    silent = tmp_path / "silent"
    with Writer(silent, version=8) as writer:
        writer.add_connection("/skeletons", "prgcn_msgs/msg/SkeletonArray", typestore=typestore())
    with pytest.raises(BagError, match=r"the bag has: /skeletons \(prgcn_msgs/msg/SkeletonArray"):
        bag_topics(silent)
    only_markers = tmp_path / "markers_only"
    _bag_of(only_markers, {"/refined_poses/markers": MarkerArray})
    with pytest.raises(BagError, match="play only when named.*/refined_poses/markers"):
        bag_topics(only_markers)


def test_write_bag_holds_what_playing_sends(data_dir, tmp_path):
    """Ids as the player sends them (-1 for a clip whose people have no ids), the frame_id
    parameter, and the topic in the node's namespace."""
    from rclpy.serialization import deserialize_message

    clip = data_dir / "kinetics_skeleton" / "--33Lscn6sk.json"
    bag = tmp_path / "kinetics_bag"
    written = subprocess.run(
        [sys.executable, "-m", "prgcn_ros.nodes.player", "--write-bag", str(bag), str(clip),
         "--ros-args", "-p", "frame_id:=kinect", "-r", "__ns:=/robot1"],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert written.returncode == 0, written.stdout + written.stderr
    entries = list(read_bag(bag))
    messages = [(topic, deserialize_message(raw, SkeletonArray)) for topic, _, _, raw in entries]
    assert {topic for topic, _ in messages} == {"/robot1/skeletons"}
    assert {m.header.frame_id for _, m in messages} == {"kinect"}
    assert {s.id for _, m in messages for s in m.skeletons} == {-1}
    assert max(len(m.skeletons) for _, m in messages) > 1
    # Each message is its frame's people as the recording has them: a frame with nobody and
    # a slot with nobody are not sent; the header stamp is the bag's time of the message.
    seq = read_recording(clip)
    frames = [t for t in range(seq.num_frames) if (seq.confidence[t] > 0).any()]
    assert len(messages) == len(frames) < seq.num_frames
    for (_, msg), (_, _, stamp_ns, _), t in zip(messages, entries, frames):
        assert msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec == stamp_ns
        assert msg.layout == seq.layout == "coco18"
        slots = [m for m in range(seq.num_persons) if (seq.confidence[t, m] > 0).any()]
        assert len(msg.skeletons) == len(slots)
        for skeleton, m in zip(msg.skeletons, slots):
            xy = [(k.position.x, k.position.y, k.position.z) for k in skeleton.keypoints]
            np.testing.assert_allclose(xy, np.pad(seq.coords[t, m], ((0, 0), (0, 1))),
                                       rtol=1e-6)
            np.testing.assert_allclose([k.confidence for k in skeleton.keypoints],
                                       seq.confidence[t, m], rtol=1e-6)


def test_a_stalled_bag_player_catches_up_without_a_burst(data_dir, tmp_path, ros_context):
    """After a stall (a busy machine), messages go out at most 4/3 as fast as recorded, never
    back to back: the recognizer would drop a burst as a flood."""
    from prgcn_ros.nodes.player import PlayerNode, parse_args
    from prgcn_ros.skeleton.bags import write_bag

    bag = tmp_path / "stall_bag"
    seq = read_recording(data_dir / "msr_action3d" / CLIP)
    write_bag(bag, [seq])
    node = PlayerNode(parse_args([str(bag), "--rate", "4", "--quiet"]))
    node.open_bag(bag)
    sent: list[float] = []

    class Recorder:
        def publish(self, msg) -> None:
            if len(sent) == 3:
                time.sleep(0.5)          # the stall: about 30 messages' worth at this rate
            sent.append(time.monotonic())

    node.bag_publishers = {t: (kind, Recorder()) for t, (kind, _) in node.bag_publishers.items()}
    node.play_bag(bag)
    node.destroy_node()
    spacing = 1.0 / (seq.fps * 4)
    gaps = np.diff(sent[3:])                            # from the first one after it
    assert len(sent) == sum(1 for _ in read_bag(bag))
    assert gaps.min() >= 0.9 * 0.75 * spacing     # never closer than 3/4 of the recorded gap
    # Catching up: on average faster than recorded (0.75 of it, plus each sleep's overshoot).
    assert np.mean(gaps) < 0.95 * spacing


def _bag_of_other_definitions(path, storage: str = "mcap") -> None:
    """/skeletons as another prgcn_msgs would record it (a Skeleton with a score field) and
    the Azure driver's markers as Foxy recorded them (a Marker without texture fields)."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    other = get_typestore(Stores.LATEST)
    other.register(get_types_from_msg("geometry_msgs/Point position\nfloat32 confidence",
                                      "prgcn_msgs/msg/Keypoint"))
    other.register(get_types_from_msg("int64 id\nfloat32 score\nKeypoint[] keypoints",
                                      "prgcn_msgs/msg/Skeleton"))
    other.register(get_types_from_msg("std_msgs/Header header\nstring layout\n"
                                      "Skeleton[] skeletons", "prgcn_msgs/msg/SkeletonArray"))
    types = other.types
    msg = types["prgcn_msgs/msg/SkeletonArray"](
        header=types["std_msgs/msg/Header"](
            stamp=types["builtin_interfaces/msg/Time"](sec=1, nanosec=0), frame_id="kinect"),
        layout="kinect20", skeletons=[types["prgcn_msgs/msg/Skeleton"](
            id=7, score=0.9, keypoints=[types["prgcn_msgs/msg/Keypoint"](
                position=types["geometry_msgs/msg/Point"](x=0.0, y=1.0, z=2.0),
                confidence=1.0) for _ in range(20)])])
    foxy = get_typestore(Stores.ROS2_FOXY)
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with Writer(path, version=8, storage_plugin=plugin) as writer:
        skeletons = writer.add_connection("/skeletons", "prgcn_msgs/msg/SkeletonArray",
                                          typestore=other)
        markers = writer.add_connection("/body_tracking_data", MARKER_ARRAY, typestore=foxy)
        for k in range(3):
            writer.write(skeletons, 10**9 + k * 33_000_000,
                         other.serialize_cdr(msg, "prgcn_msgs/msg/SkeletonArray"))
            writer.write(markers, 10**9 + k * 33_000_000, foxy.serialize_cdr(
                foxy.types[MARKER_ARRAY](markers=[_foxy_marker(foxy)]), MARKER_ARRAY))


def _foxy_marker(foxy):
    t = foxy.types
    return t["visualization_msgs/msg/Marker"](
        header=t["std_msgs/msg/Header"](stamp=t["builtin_interfaces/msg/Time"](sec=1, nanosec=0),
                                        frame_id="depth_camera_link"),
        ns="", id=101, type=2, action=0,
        pose=t["geometry_msgs/msg/Pose"](
            position=t["geometry_msgs/msg/Point"](x=0.0, y=0.0, z=1.5),
            orientation=t["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0)),
        scale=t["geometry_msgs/msg/Vector3"](x=0.05, y=0.05, z=0.05),
        color=t["std_msgs/msg/ColorRGBA"](r=1.0, g=0.0, b=0.0, a=1.0),
        lifetime=t["builtin_interfaces/msg/Duration"](sec=0, nanosec=250_000_000),
        frame_locked=False, points=[], colors=[], text="", mesh_resource="",
        mesh_use_embedded_materials=False)


def test_a_bag_without_type_hashes_that_does_not_decode_is_one_line(tmp_path, monkeypatch,
                                                                   capsys):
    """A bag with no type hashes to compare (recorded on Humble or earlier; here the Azure
    driver's markers as Foxy defined them) whose messages do not decode as the installed type:
    one line naming the topic, not an rclpy traceback."""
    from prgcn_ros.nodes import player

    bag = tmp_path / "humble_bag"
    _bag_of_other_definitions(bag)
    monkeypatch.setattr(player, "installed_type_hash", lambda msgtype: None)
    assert player.main(["prgcn-player", str(bag), "--bag-topic", "/body_tracking_data",
                        "--wait", "0", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "/body_tracking_data" in err and "does not decode" in err, err


def test_a_bag_of_another_message_definition_is_refused_in_one_line(tmp_path):
    """Another prgcn_msgs' SkeletonArray (its type hash differs) played as 0-keypoint skeletons
    without a word: one line naming the topic."""
    topic = "/skeletons"
    bag = tmp_path / "other_bag"
    _bag_of_other_definitions(bag)
    result = subprocess.run([sys.executable, "-m", "prgcn_ros.nodes.player", str(bag),
                             "--bag-topic", topic, "--quiet"], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert topic in lines[0] and "another definition" in lines[0]


def test_a_bag_whose_recording_did_not_close_still_plays(data_dir, tmp_path):
    """`ros2 bag record` writes metadata.yaml when it closes: after a power cut the folder holds
    only its storage file, and was taken for an OpenPose folder. It plays from that file; a
    folder of several files says how to index it; an mcap cut short says how to recover it."""
    from prgcn_ros.skeleton.bags import BagError, bag_topics, write_bag

    bag = tmp_path / "cut_bag"
    count = write_bag(bag, [read_recording(data_dir / "msr_action3d" / CLIP)])
    (bag / "metadata.yaml").unlink()
    assert is_bag(bag)
    assert bag_topics(bag) == [("/skeletons", "prgcn_msgs/msg/SkeletonArray")]
    assert sum(1 for _ in read_bag(bag)) == count
    [storage] = list(bag.glob("*.mcap"))
    (bag / "second.mcap").write_bytes(storage.read_bytes())
    with pytest.raises(BagError, match="no metadata.yaml.*ros2 bag reindex"):
        bag_topics(bag)
    (bag / "second.mcap").unlink()
    storage.write_bytes(storage.read_bytes()[: storage.stat().st_size * 6 // 10])
    with pytest.raises(BagError, match="mcap recover"):
        bag_topics(bag)


def test_a_file_that_never_was_mcap_is_not_told_to_recover(tmp_path):
    """A text file named .mcap: one line, without the cut-short recording's mcap recover."""
    from prgcn_ros.skeleton.bags import BagError, bag_topics

    (tmp_path / "notes.mcap").write_text("not a bag\n" * 100)
    with pytest.raises(BagError) as error:
        bag_topics(tmp_path / "notes.mcap")
    assert "not a readable rosbag2" in str(error.value)
    assert "mcap recover" not in str(error.value) and "\n" not in str(error.value)


def test_an_openpose_folder_with_a_stray_storage_file_is_no_bag(tmp_path):
    (tmp_path / "frame_000000000000_keypoints.json").write_text('{"people": []}')
    (tmp_path / "stray.mcap").write_bytes(b"")
    assert not is_bag(tmp_path)
