"""Edges of the message conversions (prgcn_ros.nodes.conversions), program_args and the
player's argument handling, against the message and topic contract (DESIGN.md sections 3-4):
stamps and frame_ids copied from the input, ids and confidences kept, the identity rule's
person ids and marker (namespace, id) pairs. Real messages, no ROS graph."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rclpy
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticStatus
from geometry_msgs.msg import Point
from rclpy.node import Node
from std_msgs.msg import Header
from visualization_msgs.msg import Marker, MarkerArray

from prgcn_msgs.msg import Keypoint, Skeleton, SkeletonArray
from prgcn_ros.live_data import ID_SPAN, InferenceResult, PersonResult
from prgcn_ros.nodes import player, program_args
from prgcn_ros.nodes.conversions import (
    action_array_msg,
    azure_markers_to_frame,
    delete_markers_msg,
    diagnostics_msg,
    markers_msg,
    ns_to_stamp,
    publisher_key,
    refined_array_msg,
    skeleton_array_msg,
    skeleton_array_to_frame,
    stamp_to_ns,
)
from prgcn_ros.nodes.player import declare_frame_id, parse_args

SOURCE_1 = ID_SPAN          # person 0 of the second source
NS = 1_700_000_000 * 10**9 + 999_999_999     # a real-time stamp, nanosec at its largest


# ---------------------------------------------------------------------------- time
def test_stamps_convert_exactly_both_ways():
    for ns in (0, 1, 999_999_999, 10**9, 1_234_567_890_123, NS, (2**31 - 1) * 10**9 + 999_999_999):
        stamp = ns_to_stamp(ns)
        assert 0 <= stamp.nanosec < 10**9
        assert stamp_to_ns(stamp) == ns
    assert (ns_to_stamp(NS).sec, ns_to_stamp(NS).nanosec) == (1_700_000_000, 999_999_999)
    assert stamp_to_ns(Time(sec=3, nanosec=7)) == 3_000_000_007


# ---------------------------------------------------------------------------- inputs
def _skeleton(pid: int, joints: int, base: float = 0.0) -> Skeleton:
    return Skeleton(id=pid, keypoints=[
        Keypoint(position=Point(x=base + j, y=base + j + 0.25, z=base + j + 0.5),
                 confidence=0.125 * (j % 8))
        for j in range(joints)])


def test_a_skeleton_array_keeps_its_header_layout_ids_and_joints():
    msg = SkeletonArray(header=Header(stamp=ns_to_stamp(NS), frame_id="kinect_front"),
                        layout="ntu25", skeletons=[_skeleton(42, 25), _skeleton(7, 25, 100.0)])
    frame = skeleton_array_to_frame(msg, 12.5, source="skeletons", max_people=10)
    assert (frame.stamp_ns, frame.frame_id, frame.layout) == (NS, "kinect_front", "ntu25")
    assert frame.ids == [42, 7] and frame.arrival == 12.5 and frame.dropped == {}
    j = np.arange(25.0)
    np.testing.assert_allclose(frame.coords[0], np.stack([j, j + 0.25, j + 0.5], axis=1))
    np.testing.assert_allclose(frame.coords[1][:, 2], 100.0 + j + 0.5)
    np.testing.assert_allclose(frame.confidence[1], 0.125 * (np.arange(25) % 8))
    assert frame.confidence[0][0] == 0.0          # a missing joint stays missing


def test_an_azure32_skeleton_array_is_converted_whole():
    """32 keypoints is the largest layout (azure32), not 'more than any layout has'."""
    msg = SkeletonArray(layout="azure32", skeletons=[_skeleton(1, 32), _skeleton(2, 33)])
    frame = skeleton_array_to_frame(msg, 0.0)
    assert [c.shape for c in frame.coords] == [(32, 3), (0, 3)]
    assert frame.confidence[0].shape == (32,)


def _marker(mid: int, xyz=(0.0, 0.0, 0.0), frame_id="depth_camera_link", sec=5,
            action=Marker.ADD) -> Marker:
    m = Marker(id=mid, type=Marker.SPHERE, action=action)
    m.header.frame_id, m.header.stamp = frame_id, Time(sec=sec, nanosec=250)
    m.pose.position = Point(x=float(xyz[0]), y=float(xyz[1]), z=float(xyz[2]))
    return m


def test_azure_markers_keep_every_coordinate_the_header_and_seen_joints_at_one():
    body = [_marker(300 + j, (0.1 * j, -0.2 * j, 1.5 + 0.01 * j), frame_id="cam_b", sec=8)
            for j in range(32)]
    # New joints of body 1, not repeats: one of another camera, one of another stamp (last).
    other_camera = _marker(106, (9.0, 9.0, 9.0), frame_id="cam_c", sec=8)
    later = _marker(107, (9.0, 9.0, 9.0), frame_id="cam_b", sec=9)
    frame = azure_markers_to_frame(MarkerArray(markers=[
        *body, _marker(105, frame_id="cam_b", sec=8), other_camera, later]), 1.0)
    assert frame.ids == [1, 3] and frame.layout == "azure32"
    assert (frame.frame_id, frame.stamp_ns) == ("cam_b", 8 * 10**9 + 250)
    j = np.arange(32)
    np.testing.assert_allclose(frame.coords[1], np.stack([0.1 * j, -0.2 * j, 1.5 + 0.01 * j], 1))
    np.testing.assert_allclose(frame.confidence[1], 1.0)
    assert frame.confidence[0][5] == 1.0 and frame.confidence[0].sum() == 1.0
    assert frame.dropped == {"foreign_marker_id": 2}


def test_azure_marker_ids_past_joint_31_or_negative_are_foreign_and_deletes_ignored():
    markers = [_marker(j, (j, 0.0, 1.0)) for j in range(32)]
    markers += [_marker(32, (5.0, 5.0, 5.0)), _marker(99, (5.0, 5.0, 5.0)),
                _marker(-100, (5.0, 5.0, 5.0)), _marker(-1, (5.0, 5.0, 5.0))]
    markers += [_marker(200, (7.0, 7.0, 7.0), action=Marker.DELETEALL),
                _marker(201, (7.0, 7.0, 7.0), action=Marker.DELETE)]
    frame = azure_markers_to_frame(MarkerArray(markers=markers), 0.0)
    assert frame.ids == [0] and frame.dropped == {"foreign_marker_id": 4}
    np.testing.assert_allclose(frame.coords[0][:, 0], np.arange(32))


def test_no_azure_marker_is_an_empty_frame_of_no_frame():
    frame = azure_markers_to_frame(MarkerArray(), 0.0)
    assert (frame.ids, frame.frame_id, frame.stamp_ns, frame.dropped) == ([], "", 0, {})


def test_publisher_key():
    assert publisher_key(None) == b"" and publisher_key({}) == b""
    assert publisher_key({"publisher_gid": {"data": [1, 2, 3]}}) == b"\x01\x02\x03"
    assert publisher_key({"publisher_gid": b"\x04\x05"}) == b"\x04\x05"


def test_a_skeleton_array_message_is_what_the_player_was_given():
    header = Header(stamp=ns_to_stamp(NS), frame_id="kinect")
    coords = np.array([[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], [[7.0, 8.0, 9.0], [0.5, 0.25, 0.0]]])
    msg = skeleton_array_msg(header, "openni15", [100, 101], coords,
                             np.array([[1.0, 0.5], [0.0, 0.25]]))
    assert (stamp_to_ns(msg.header.stamp), msg.header.frame_id, msg.layout) == \
        (NS, "kinect", "openni15")
    assert [s.id for s in msg.skeletons] == [100, 101]
    got = [[(k.position.x, k.position.y, k.position.z, k.confidence) for k in s.keypoints]
           for s in msg.skeletons]
    assert got == [[(1.0, 2.0, 3.0, 1.0), (4.0, 5.0, 6.0, 0.5)],
                   [(7.0, 8.0, 9.0, 0.0), (0.5, 0.25, 0.0, 0.25)]]
    # 2D keypoints (OpenPose pixels): z = 0; -1 is an unknown id for the tracker.
    flat = skeleton_array_msg(header, "body25", [-1], coords[:1, :, :2], np.ones((1, 2)))
    assert [(k.position.x, k.position.y, k.position.z) for k in flat.skeletons[0].keypoints] \
        == [(1.0, 2.0, 0.0), (4.0, 5.0, 0.0)]
    assert flat.skeletons[0].id == -1
    # Through the input conversion and back: nothing lost.
    frame = skeleton_array_to_frame(msg, 0.0)
    assert (frame.ids, frame.frame_id, frame.stamp_ns) == ([100, 101], "kinect", NS)
    np.testing.assert_allclose(np.stack(frame.coords), coords)


# ---------------------------------------------------------------------------- outputs
def _person(pid: int, *, frame_id: str = "kinect", joints: int = 15, refined=None,
            conf=None, **kwargs) -> PersonResult:
    rng = np.random.default_rng(pid % 1000)
    refined = rng.normal(0, 0.3, (joints, 3)) + (0, 0, 2) if refined is None else refined
    fields = dict(person_id=pid, class_index=2, label="waving", confidence=0.7,
                  top_labels=["waving", "clapping", "bowing"], top_scores=[0.7, 0.2, 0.05],
                  window_start_ns=NS - 10**9, window_end_ns=NS, num_frames=31,
                  refined=refined, offsets=np.full((len(refined), 3), 0.01) * np.arange(3),
                  joint_confidence=np.ones(len(refined)) if conf is None else conf,
                  probabilities=np.full(3, 1 / 3), frame_id=frame_id)
    fields.update(kwargs)
    return PersonResult(**fields)


def _result(*people: PersonResult) -> InferenceResult:
    return InferenceResult.of(list(people), "openni15", [], 0.01)


def test_actions_carry_every_field_and_the_frame_of_their_people():
    msg = action_array_msg(_result(_person(3), _person(SOURCE_1 + 3, refined_stamp_ns=NS - 5)))
    assert (stamp_to_ns(msg.header.stamp), msg.header.frame_id) == (NS, "kinect")
    assert [a.person_id for a in msg.actions] == [3, SOURCE_1 + 3]   # unique across sources
    action = msg.actions[0]
    assert (action.label, action.class_index, action.num_frames) == ("waving", 2, 31)
    assert list(action.top_labels) == ["waving", "clapping", "bowing"]
    np.testing.assert_allclose(action.top_scores, [0.7, 0.2, 0.05], rtol=1e-6)
    assert stamp_to_ns(action.window_start) == NS - 10**9
    assert stamp_to_ns(action.window_end) == NS


def test_refined_poses_carry_layout_confidence_offsets_and_source_ids():
    conf = np.linspace(0.0, 1.0, 15)
    msg = refined_array_msg(_result(_person(SOURCE_1 + 4, conf=conf)))
    assert msg.layout == "openni15" and msg.header.frame_id == "kinect"
    skeleton = msg.skeletons[0]
    assert skeleton.person_id == SOURCE_1 + 4
    np.testing.assert_allclose([k.confidence for k in skeleton.keypoints], conf, rtol=1e-6)
    person = _person(SOURCE_1 + 4)
    np.testing.assert_allclose([(k.position.x, k.position.y, k.position.z)
                                for k in skeleton.keypoints], person.refined)
    np.testing.assert_allclose([(o.x, o.y, o.z) for o in skeleton.offsets], person.offsets)


def _by_key(msg: MarkerArray) -> dict[tuple[str, int], Marker]:
    keys = [(m.ns, m.id) for m in msg.markers]
    assert len(keys) == len(set(keys)), f"marker (ns, id) clash: {keys}"
    return dict(zip(keys, msg.markers))


def test_markers_of_two_sources_never_share_a_namespace_and_id():
    """Person 3 of source 0 and person 3 of source 1: ids stay int32, the source goes into the
    namespace; each person has its joints, bones and label, in its own frame."""
    msg = markers_msg(_result(_person(3), _person(SOURCE_1 + 3)), lifetime_s=2.5)
    markers = _by_key(msg)
    assert set(markers) == {("joints", 3), ("bones", 3), ("label", 3),
                            ("joints/1", 3), ("bones/1", 3), ("label/1", 3)}
    for (ns, _), m in markers.items():
        assert m.header.frame_id == "kinect" and stamp_to_ns(m.header.stamp) == NS
        assert (m.lifetime.sec, m.lifetime.nanosec) == (2, 500_000_000)
        assert m.action == Marker.ADD
        assert m.type == {"joints": Marker.SPHERE_LIST, "bones": Marker.LINE_LIST,
                          "label": Marker.TEXT_VIEW_FACING}[ns.split("/")[0]]
    assert markers[("label/1", 3)].text == f"{SOURCE_1 + 3}: waving 0.70"


def test_markers_show_only_seen_joints_and_bones_between_them():
    conf = np.ones(15)
    conf[[0, 5]] = 0.0                                   # two joints missing
    refined = np.random.default_rng(0).normal(0, 0.3, (15, 3)) + (0, 0, 2)
    refined[[0, 5]] = 50.0                               # where missing joints must not be drawn
    markers = _by_key(markers_msg(_result(_person(1, refined=refined, conf=conf))))
    joints, bones = markers[("joints", 1)], markers[("bones", 1)]
    assert len(joints.points) == 13
    assert all(abs(p.x) < 10 for m in (joints, bones) for p in m.points)
    assert bones.points and len(bones.points) % 2 == 0


def test_a_person_with_no_seen_joint_has_no_markers_and_a_lone_joint_a_visible_one():
    nobody = _person(1, conf=np.zeros(15))
    lone_conf = np.zeros(15)
    lone_conf[3] = 1.0
    lone = _person(2, conf=lone_conf)
    markers = _by_key(markers_msg(_result(nobody, lone)))
    assert {key[1] for key in markers} == {2}
    assert markers[("joints", 2)].scale.x > 0 and markers[("label", 2)].scale.z > 0


def test_the_label_is_above_the_head_along_the_persons_up():
    standing = np.zeros((15, 3))
    standing[:, 1] = np.linspace(0.0, 1.7, 15)           # joint 14 highest in +y
    standing[:, 2] = 2.0

    def label_y(**kwargs) -> float:
        msg = markers_msg(_result(_person(1, refined=standing, **kwargs)))
        return _by_key(msg)[("label", 1)].pose.position.y

    assert label_y(axis="y_up") > 1.7
    assert label_y(axis="y_down") < 0.0                  # optical frame: up is -y
    label = _by_key(markers_msg(_result(_person(1, refined=standing,
                                                up=np.array([0.0, 0.0, 1.0])))))[("label", 1)]
    assert label.pose.position.z > 2.0                   # the model's up, input rotated


def test_markers_are_sized_by_the_person_in_metres_or_pixels():
    """A 1.7 m person and a 400 px one: the label's text and the joints scale with the body
    (a fixed 0.08 would be 0.08 px, invisible, on an image)."""
    standing = np.zeros((15, 3))
    standing[:, 1] = np.linspace(0.0, 1.7, 15)
    standing[:, 2] = 2.0
    for scale in (1.0, 400 / 1.7):
        markers = _by_key(markers_msg(_result(_person(1, refined=standing * scale))))
        assert markers[("label", 1)].scale.z == pytest.approx(1.7 * scale * 0.08)
        assert markers[("bones", 1)].scale.x == pytest.approx(1.7 * scale * 0.015)


def test_deletes_reach_every_marker_of_the_departed_in_their_own_frame_and_stamp():
    msg = delete_markers_msg([(SOURCE_1 + 3, "cam_b", NS), (3, "cam_a", 5)])
    got = {(m.ns, m.id): (m.header.frame_id, stamp_to_ns(m.header.stamp), m.action)
           for m in msg.markers}
    assert got == {**{(ns + "/1", 3): ("cam_b", NS, Marker.DELETE)
                      for ns in ("joints", "bones", "label")},
                   **{(ns, 3): ("cam_a", 5, Marker.DELETE)
                      for ns in ("joints", "bones", "label")}}
    # ... which are exactly the markers that person was shown with.
    shown = _by_key(markers_msg(_result(_person(SOURCE_1 + 3, frame_id="cam_b"))))
    assert set(shown) == {key for key in got if key[0].endswith("/1")}


def test_diagnostics_warn_with_every_reason_and_figures_formatted():
    ok = diagnostics_msg(Time(sec=4), "prgcn", {"rate": 29.97, "dropped_flood": 0})
    assert ok.status[0].level == DiagnosticStatus.OK and ok.status[0].message == "ok"
    assert ok.header.stamp.sec == 4
    assert {v.key: v.value for v in ok.status[0].values} == {"rate": "29.970",
                                                             "dropped_flood": "0"}
    warn = diagnostics_msg(Time(sec=4), "prgcn", {}, warn=["dropped_flood", "latency"])
    assert warn.status[0].level == DiagnosticStatus.WARN
    assert "dropped_flood" in warn.status[0].message and "latency" in warn.status[0].message


# ---------------------------------------------------------------------------- program_args
def test_program_args_leave_the_program_name_and_the_ros_arguments_out():
    argv = ["prgcn-player", "a.txt", "--ros-args", "-p", "frame_id:=kinect", "--", "--rate", "2"]
    assert program_args(argv, "prgcn-player") == ["a.txt", "--rate", "2"]
    assert program_args(["prgcn-player"], "prgcn-player") == []


def test_ros_arguments_that_do_not_parse_are_one_line_without_rcl_source_positions(capsys):
    with pytest.raises(SystemExit) as stop:
        program_args(["prgcn-player", "--ros-args", "-p"], "prgcn-player")
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1 and err.startswith("prgcn-player: ")
    assert ".c:" not in err and ", at " not in err


# ---------------------------------------------------------------------------- player
def test_player_defaults():
    args = parse_args(["rec.txt"])
    assert (args.rate, args.parallel, args.topic, args.wait, args.subscribers, args.storage,
            args.loop, args.bag) == (1.0, 1, "skeletons", 5.0, 1, "mcap", False, None)


def test_player_frame_id_parameter_defaults_to_camera():
    context = rclpy.Context()
    rclpy.init(args=[], context=context)
    try:
        node = Node("prgcn_player_defaults", context=context)
        try:
            assert declare_frame_id(node) == "camera"
        finally:
            node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


@pytest.mark.parametrize("argv, words", [
    ([], "give recordings to play"),
    (["rec.txt", "--parallel", "0"], "--parallel at least 1"),
    (["rec.txt", "--wait", "-1"], "--wait and --subscribers not negative"),
    (["--follow", "no_such_dir_for_the_player"], "not a directory"),
    (["--follow", "x" * 300], "not a directory"),      # a name the system refuses
    (["rec.txt", "--subscribers", "-1"], "--wait and --subscribers not negative"),
    # Options that would be accepted and then ignored: the user meant something else.
    (["rec.txt", "--storage", "sqlite3"], "only with --write-bag"),
    (["rec.txt", "--storage", "mcap"], "only with --write-bag"),
    (["rec.txt", "--bag-topic", "/body_tracking_data"], "only with a bag to play"),
])
def test_player_refuses_bad_arguments(argv, words, capsys):
    with pytest.raises(SystemExit) as stop:
        parse_args(argv)
    assert stop.value.code == 2 and words in capsys.readouterr().err


def test_player_waits_for_no_subscriber_when_told_zero():
    assert parse_args(["rec.txt", "--subscribers", "0"]).subscribers == 0


@pytest.mark.parametrize("extra", [["--parallel", "2"], ["--loop"]])
def test_follow_refuses_the_options_of_playing_recordings(tmp_path, extra, capsys):
    with pytest.raises(SystemExit) as stop:
        parse_args(["--follow", str(tmp_path), *extra])
    assert stop.value.code == 2 and "no --parallel or --loop with it" in capsys.readouterr().err


def test_a_bag_is_played_with_its_own_people(tmp_path, capsys):
    bag = tmp_path / "take.mcap"
    bag.write_bytes(b"")
    args = parse_args([str(bag), "--bag-topic", "/body_tracking_data", "--loop", "--rate", "2"])
    assert (args.bag, args.bag_topic, args.loop, args.rate) == (
        bag, ["/body_tracking_data"], True, 2.0)
    with pytest.raises(SystemExit) as stop:
        parse_args([str(bag), "--parallel", "2"])
    assert stop.value.code == 2 and "no --parallel with it" in capsys.readouterr().err


def test_write_bag_storage_defaults_to_mcap(tmp_path):
    out = tmp_path / "out"
    assert parse_args(["rec.txt", "--write-bag", str(out)]).storage == "mcap"
    assert parse_args(["rec.txt", "--write-bag", str(out), "--storage", "sqlite3"]
                      ).storage == "sqlite3"


def test_a_bag_is_played_alone(tmp_path, capsys):
    bag = tmp_path / "take.mcap"
    bag.write_bytes(b"")
    assert parse_args([str(bag)]).bag == bag
    for extra in (["rec.txt"], ["--write-bag", str(tmp_path / "out")]):
        with pytest.raises(SystemExit) as stop:
            parse_args([str(bag), *extra])
        assert stop.value.code == 2 and "played alone" in capsys.readouterr().err


def test_installed_type_hash_is_the_named_types(tmp_path, monkeypatch):
    """The type description lists the nested types too: the hash is the one of the type named."""
    (tmp_path / "msg").mkdir()
    (tmp_path / "msg" / "SkeletonArray.json").write_text(json.dumps({"type_hashes": [
        {"type_name": "std_msgs/msg/Header", "hash_string": "RIHS01_header"},
        {"type_name": "prgcn_msgs/msg/SkeletonArray", "hash_string": "RIHS01_array"}]}))
    monkeypatch.setattr(player, "installed_share", lambda package: Path(tmp_path))
    assert player.installed_type_hash("prgcn_msgs/msg/SkeletonArray") == "RIHS01_array"
    assert player.installed_type_hash("prgcn_msgs/msg/Skeleton") is None
