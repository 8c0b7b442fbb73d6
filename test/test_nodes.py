"""prgcn-recognizer across processes over real DDS: test publisher -> recognizer -> test
subscriber (no mocks). One recognizer process serves the whole module; each test uses its own
person ids and reads counters as differences, so the tests do not depend on their order."""
from __future__ import annotations

import itertools
import math
import time

import numpy as np
import pytest
import torch
from rosutil import (
    CLASSES,
    FRAME_ID,
    LIVE_SETTINGS,
    azure_markers,
    connected_probe,
    process_log,
    rclpy_session,
    recognizer_process,
    skeleton_array,
    spin_until,
    standing,
    start_process,
    stop_process,
)
from visualization_msgs.msg import Marker

from prgcn_msgs.msg import SkeletonArray
from prgcn_ros.live_data import local_id
from prgcn_ros.recognition import CPU_MAX_BATCH
from prgcn_ros.skeleton.layouts import get_layout

pytestmark = pytest.mark.ros

_person_ids = itertools.count(1000, 10)


@pytest.fixture(scope="module")
def recognizer(tiny_model, tmp_path_factory):
    log = tmp_path_factory.mktemp("recognizer") / "recognizer.log"
    with recognizer_process(tiny_model, log, *LIVE_SETTINGS) as proc:
        yield proc


@pytest.fixture(scope="module")
def probe(recognizer):
    with rclpy_session(), connected_probe(recognizer, azure=True) as probe:
        yield probe


# ---------------------------------------------------------------------------- outputs
def test_labels_carry_the_input_stamp_and_frame_id(probe):
    pid = next(_person_ids)
    last = probe.play({pid: standing(1)}, 10)
    msg, action = probe.wait_action(pid, stamp=last)
    assert msg.header.stamp == last and msg.header.frame_id == FRAME_ID
    assert action.label in CLASSES and action.label == CLASSES[action.class_index]
    assert list(action.top_labels)[0] == action.label and len(action.top_labels) == 4
    assert math.isclose(action.confidence, action.top_scores[0], rel_tol=1e-6)
    assert action.num_frames == 10 and action.window_end == last
    assert (action.window_start.sec, action.window_start.nanosec) < (last.sec, last.nanosec)


def test_refined_poses_have_the_layout_joint_count(probe):
    pid = next(_person_ids)
    last = probe.play({pid: standing(2)}, 6)
    probe.wait_action(pid, stamp=last)
    assert spin_until(probe.node, lambda: any(
        m.header.stamp == last and any(local_id(s.person_id) == pid for s in m.skeletons)
        for m in probe.refined), 5)
    msg = next(m for m in probe.refined if m.header.stamp == last)
    assert msg.layout == "kinect20" and msg.header.frame_id == FRAME_ID
    person = next(s for s in msg.skeletons if local_id(s.person_id) == pid)
    assert len(person.keypoints) == 20 and len(person.offsets) == 20
    # Refined = input + offset, in the input's frame and units (metres around z = 2).
    xyz = np.array([[k.position.x, k.position.y, k.position.z] for k in person.keypoints])
    offsets = np.array([[o.x, o.y, o.z] for o in person.offsets])
    np.testing.assert_allclose(xyz - offsets, standing(2) + 0.01 * 5, atol=1e-4)


def test_markers_show_joints_bones_and_label_and_are_deleted_when_the_person_leaves(probe):
    pid = next(_person_ids)
    last = probe.play({pid: standing(3)}, 6)
    _, action = probe.wait_action(pid, stamp=last)

    def ours(action_kind):
        return [mk for m in probe.markers for mk in m.markers
                if mk.id == pid and mk.action == action_kind]
    assert spin_until(probe.node, lambda: len({m.ns for m in ours(Marker.ADD)}) == 3, 5)
    added = {m.ns.split("/")[0]: m for m in ours(Marker.ADD)}
    assert added["joints"].type == Marker.SPHERE_LIST and len(added["joints"].points) == 20
    assert added["bones"].type == Marker.LINE_LIST
    assert len(added["bones"].points) == 2 * len(get_layout("kinect20").bones)
    assert added["label"].type == Marker.TEXT_VIEW_FACING and action.label in added["label"].text
    assert added["label"].header.frame_id == FRAME_ID
    assert added["joints"].color == added["bones"].color == added["label"].color
    # Above the head: higher (y up) than every joint.
    assert added["label"].pose.position.y > max(p.y for p in added["joints"].points)
    # Gone for track_timeout_s: every marker of the person is deleted.
    assert spin_until(probe.node, lambda: len({m.ns for m in ours(Marker.DELETE)}) == 3, 5)


def test_diagnostics_report_rates_latency_and_people(probe):
    pid = next(_person_ids)
    probe.play({pid: standing(4), pid + 1: standing(5, offset=1.5)}, 12)
    stats = probe.wait_diagnostics(lambda d: float(d["inference_rate_hz"]) > 0)
    for key in ("input_rate_hz", "latency_p50_ms", "latency_p99_ms", "people_tracked",
                "dropped_total", "dropped_non_finite", "dropped_flood"):
        assert key in stats
    assert float(stats["input_rate_hz"]) > 0 and float(stats["source_rate_hz"]) > 0
    assert 0 < float(stats["latency_p50_ms"]) < 5000


def test_ten_people_at_30_hz_lose_no_frame_while_inference_runs(probe):
    """Ingestion never waits for a forward pass: every frame of every person is buffered."""
    ids = [next(_person_ids) for _ in range(10)]
    before = probe.counter("frames_buffered")
    dropped = probe.counter("dropped_total")
    people = {pid: standing(20 + k, offset=1.5 * k) for k, pid in enumerate(ids)}
    first = len(probe.actions)
    last = probe.play(people, 60)
    for pid in ids:
        probe.wait_action(pid, stamp=last, timeout_s=20)
    # max_batch 0 (automatic): a pass takes at most CPU_MAX_BATCH people on the CPU, all on CUDA.
    sizes = [len(m.actions) for m in probe.actions[first:]]
    assert max(sizes) == (10 if torch.cuda.is_available() else CPU_MAX_BATCH), sizes
    stats = probe.wait_diagnostics(lambda d: int(d["frames_buffered"]) >= before + 600)
    assert int(stats["frames_buffered"]) == before + 600
    assert int(stats["dropped_total"]) == dropped


def test_azure_kinect_markers_with_32_joints_are_recognised(probe):
    body = 7
    stamp = None
    for t in range(6):
        stamp = probe.now()
        probe.azure.publish(azure_markers(stamp, {body: standing(6, "azure32") + 0.01 * t}))
        probe.spin(1 / 30)
    msg, action = probe.wait_action(body, stamp=stamp)
    assert msg.header.frame_id == "depth_camera_link" and action.num_frames == 6
    assert spin_until(probe.node, lambda: any(m.header.stamp == stamp for m in probe.refined), 5)
    refined = next(m for m in probe.refined if m.header.stamp == stamp)
    person = next(s for s in refined.skeletons if local_id(s.person_id) == body)
    assert refined.layout == "kinect20" and len(person.keypoints) == 20
    assert refined.header.frame_id == "depth_camera_link"


# ---------------------------------------------------------------------------- bad input
def _bad_skeletons(probe, kind: str) -> SkeletonArray:
    pid = 900
    good = standing(9)
    if kind == "wrong_joint_count":
        return skeleton_array(probe.now(), {pid: good[:12]})
    if kind == "unknown_layout":
        return skeleton_array(probe.now(), {pid: good}, layout="kinect21")
    if kind == "non_finite":
        bad = good.copy()
        bad[2, 0], bad[5, 1] = np.nan, np.inf
        return skeleton_array(probe.now(), {pid: bad})
    if kind == "no_confidence":
        return skeleton_array(probe.now(), {pid: good}, confidence=0.0)
    raise ValueError(kind)


def _check_recovers_and_logged_once(probe, recognizer, reason: str, before: int, sent: int):
    """Counted in /diagnostics, logged once, the next valid messages recognised."""
    key = f"dropped_{reason}"
    probe.wait_diagnostics(lambda d: int(d[key]) >= before + sent)
    pid = next(_person_ids)
    # Sensor-data QoS is best effort: while the node still drains a burst, the newest message
    # itself can be lost on the way (a 1 kHz burst once left no /action for the last of five
    # frames). Recovering means an /action for the newest frame of a later round.
    for _ in range(3):
        last = probe.play({pid: standing(10)}, 5)
        if spin_until(probe.node, lambda stamp=last: any(
                a.window_end == stamp for _, a in probe.actions_for(pid)), 5.0):
            break
    else:
        raise AssertionError(f"no /action for person {pid} ending at the newest frame {last}")
    assert recognizer.poll() is None
    assert process_log(recognizer).count(f"dropped_{reason} in /diagnostics") == 1


@pytest.mark.parametrize("kind", ["wrong_joint_count", "unknown_layout", "non_finite",
                                  "no_confidence"])
def test_bad_skeleton_messages_are_dropped_counted_and_logged_once(probe, recognizer, kind):
    before = probe.counter(f"dropped_{kind}")
    for _ in range(3):
        probe.skeletons.publish(_bad_skeletons(probe, kind))
        probe.spin(0.05)
    _check_recovers_and_logged_once(probe, recognizer, kind, before, 3)


@pytest.mark.parametrize("reason", ["stamp_backwards", "stamp_repeated"])
def test_stamps_going_backwards_or_repeating_are_dropped(probe, recognizer, reason):
    before = probe.counter(f"dropped_{reason}")
    pid = next(_person_ids)
    first = probe.now()
    probe.spin(0.05)
    second = probe.now()
    probe.skeletons.publish(skeleton_array(second, {pid: standing(11)}))
    probe.spin(0.05)
    for _ in range(2):
        probe.skeletons.publish(skeleton_array(first if reason == "stamp_backwards" else second,
                                               {pid: standing(11)}))
        probe.spin(0.05)
    _check_recovers_and_logged_once(probe, recognizer, reason, before, 2)


def test_a_1khz_burst_is_thinned_and_the_node_keeps_up(probe, recognizer):
    settled = probe.settled()
    before, received_before = int(settled["dropped_flood"]), int(settled["messages_received"])
    pid = next(_person_ids)
    msg = skeleton_array(probe.now(), {pid: standing(12)})   # built once: only stamps change
    start = time.monotonic()
    sent = 0
    while time.monotonic() - start < 0.5:
        msg.header.stamp = probe.now()
        probe.skeletons.publish(msg)
        sent += 1
        deadline = start + sent / 1000.0
        while time.monotonic() < deadline:
            pass
    assert sent >= 250          # about 1 kHz (a busy machine slows this process down too)
    probe.wait_diagnostics(lambda d: int(d["dropped_flood"]) > before + 100)
    stats = probe.settled()
    # Thinned to max_input_hz (100 in rosutil.LIVE_SETTINGS): of the burst's 0.5 s of stamps at
    # most 51 are kept; every other message that arrived is a counted flood.
    kept = (int(stats["messages_received"]) - received_before
            - (int(stats["dropped_flood"]) - before))
    assert 0 < kept <= 100 * 0.5 + 2, kept
    _check_recovers_and_logged_once(probe, recognizer, "flood", before, 1)


def test_empty_arrays_while_nobody_is_in_view_are_counted_without_a_warning(probe, recognizer):
    """Drivers publish an empty array every frame while nobody is in view: not a drop, so
    /diagnostics does not warn of dropped input (other warnings, e.g. latency, may come)."""
    before = probe.counter("messages_empty")
    start = len(probe.diagnostics)
    for _ in range(20):
        probe.skeletons.publish(skeleton_array(probe.now(), {}))
        probe.spin(0.05)
    stats = probe.wait_diagnostics(lambda d: int(d["messages_empty"]) >= before + 15)
    assert int(stats["dropped_total"]) == int(probe.diagnostics[start]["dropped_total"])
    assert not [d["message"] for d in probe.diagnostics[start + 1:] if "dropped" in d["message"]]
    assert recognizer.poll() is None
    assert "no skeletons" not in process_log(recognizer)


def test_a_person_who_vanishes_is_dropped_and_the_others_go_on(probe):
    stay, leave = next(_person_ids), next(_person_ids)
    expired = probe.counter("tracks_expired")
    probe.play({stay: standing(13), leave: standing(14, offset=1.5)}, 5)
    last = probe.play({stay: standing(13)}, 25)
    probe.wait_action(stay, stamp=last)
    probe.wait_diagnostics(lambda d: int(d["tracks_expired"]) >= expired + 1)
    assert spin_until(probe.node, lambda: any(
        mk.id == leave and mk.action == Marker.DELETE for m in probe.markers
        for mk in m.markers), 5)


def test_foreign_marker_ids_are_dropped_and_the_bodies_kept(probe, recognizer):
    before = probe.counter("dropped_foreign_marker_id")
    body = 8
    stamp = None
    for t in range(5):
        stamp = probe.now()
        probe.azure.publish(azure_markers(stamp, {body: standing(15, "azure32") + 0.01 * t},
                                          extra_ids=(body * 100 + 45, -3)))
        probe.spin(1 / 30)
    probe.wait_action(body, stamp=stamp)
    probe.wait_diagnostics(lambda d: int(d["dropped_foreign_marker_id"]) >= before + 10)
    assert process_log(recognizer).count("dropped_foreign_marker_id in /diagnostics") == 1


# ---------------------------------------------------------------------------- the player
@pytest.mark.slow
def test_player_replays_recordings_to_the_recognizer(probe, recognizer, data_dir, tmp_path):
    """prgcn-player process -> recognizer process -> this test: MSR Action3D and NTU (two
    bodies) recordings played at once, each recording with its own person ids."""
    msr = data_dir / "msr_action3d"
    recordings = [msr / "a05_s02_e01_skeleton3D.txt", msr / "a14_s04_e02_skeleton3D.txt",
                  data_dir / "ntu_samples" / "S001C003P008R002A058.skeleton"]
    player = start_process(["-m", "prgcn_ros.nodes.player", *map(str, recordings),
                            "--parallel", "3", "--rate", "2", "--ros-args", "-p",
                            "frame_id:=kinect_player"], tmp_path / "player.log")
    try:
        expected = {0: "kinect_player", 100: "kinect_player", 200: "kinect_player",
                    201: "kinect_player"}
        assert spin_until(probe.node, lambda: all(probe.actions_for(pid) for pid in expected),
                          60), process_log(player)
        assert player.wait(timeout=30) == 0, process_log(player)
    finally:
        stop_process(player)
    for pid in expected:
        msg, action = probe.actions_for(pid)[-1]
        assert msg.header.frame_id == "kinect_player"
        assert action.label in CLASSES and 4 <= action.num_frames <= 16
