"""The live path under real streams (issue 13), across processes over real DDS: every person
kept apart, every bad input counted, nothing lost. One recognizer process serves the module;
each test uses its own frame_ids and person ids and reads counters as differences."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType, ParameterValue
from rcl_interfaces.srv import DescribeParameters, SetParameters
from rosutil import (
    LIVE_SETTINGS,
    Probe,
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

from prgcn_ros.live_data import local_id

pytestmark = pytest.mark.ros

_ids = itertools.count(3000, 10)


def plus(stamp: Time, ns: int) -> Time:
    total = stamp.sec * 1_000_000_000 + stamp.nanosec + int(ns)
    return Time(sec=total // 1_000_000_000, nanosec=total % 1_000_000_000)


@pytest.fixture(scope="module")
def recognizer(tiny_model, tmp_path_factory):
    log = tmp_path_factory.mktemp("streams") / "recognizer.log"
    with recognizer_process(tiny_model, log, *LIVE_SETTINGS) as proc:
        yield proc


@pytest.fixture(scope="module")
def probe(recognizer):
    with rclpy_session(), connected_probe(recognizer, azure=True) as probe:
        yield probe


def counters(probe: Probe, *keys: str) -> dict[str, int]:
    """Counters once every message sent so far was taken (read as differences after)."""
    stats = probe.settled()
    return {k: int(stats[k]) for k in keys}


def wait_counts(probe: Probe, at_least: dict[str, int], timeout_s: float = 20.0
                ) -> dict[str, str]:
    return probe.wait_diagnostics(
        lambda d: all(int(d[k]) >= v for k, v in at_least.items()), timeout_s)


def by_frame(probe: Probe) -> dict[int, set[str]]:
    """person_id -> the header frame_ids of the /action messages that carried them."""
    out: dict[int, set[str]] = {}
    for msg in probe.actions:
        for action in msg.actions:
            out.setdefault(action.person_id, set()).add(msg.header.frame_id)
    return out


# ---------------------------------------------------------------------------- 1, 2, 3: identity
def test_ids_from_different_inputs_layouts_and_sources_are_published_apart(probe):
    """/skeletons id 1 and Azure body 1; id 1 in ntu25 and in kinect20 from one frame; two
    id-less sources: every one a person of their own, every output in their own frame."""
    for t in range(8):
        now = probe.now()
        move = 0.01 * t
        probe.skeletons.publish(skeleton_array(now, {1: standing(30) + move},
                                               frame_id="cam_ids"))
        probe.skeletons.publish(skeleton_array(plus(now, 5_000_000),
                                               {1: standing(31, "ntu25", 2.0) + move},
                                               layout="ntu25", frame_id="cam_ids"))
        probe.skeletons.publish(skeleton_array(now, {-1: standing(32) + move},
                                               frame_id="cam_ids_a"))
        probe.skeletons.publish(skeleton_array(now, {-1: standing(33, offset=2.0) + move},
                                               frame_id="cam_ids_b"))
        probe.azure.publish(azure_markers(now, {1: standing(34, "azure32", -2.0) + move}))
        probe.spin(1 / 30)

    def people(frame_id: str) -> set[int]:
        return {a.person_id for m in probe.actions if m.header.frame_id == frame_id
                for a in m.actions}
    assert spin_until(probe.node, lambda: len(people("cam_ids")) == 2 and
                      all(people(f) for f in ("cam_ids_a", "cam_ids_b", "depth_camera_link")),
                      30), {f: people(f) for f in ("cam_ids", "cam_ids_a", "cam_ids_b")}
    same_frame = people("cam_ids")
    assert {local_id(p) for p in same_frame} == {1}          # both keep the driver's id 1
    azure = {p for p in people("depth_camera_link") if local_id(p) == 1}
    idless = people("cam_ids_a") | people("cam_ids_b")
    assert len(azure) == 1 and len(idless) == 2
    everyone = [*same_frame, *azure, *idless]
    assert len(set(everyone)) == len(everyone) == 5
    # Every /action carries its people's own frame: nobody appears under two frames.
    frames = by_frame(probe)
    assert all(len(frames[p]) == 1 for p in everyone), frames
    # RViz: no two markers of one MarkerArray share a namespace and id, and one result's
    # markers are in its input's frame. (People who leave in one housekeeping tick share a
    # DELETE array, each DELETE in its person's frame: test 13. On a loaded machine these five
    # can leave together.)
    assert spin_until(probe.node, lambda: len(probe.markers) > 0, 10)
    for msg in probe.markers:
        added = [m for m in msg.markers if m.action == Marker.ADD]
        assert len(added) == len({(m.ns, m.id) for m in added})
        assert len({m.header.frame_id for m in added}) <= 1


@pytest.mark.parametrize("offset_ms", [5, -20])
def test_two_cameras_on_one_topic_lose_no_frame(probe, offset_ms):
    """A second camera on /skeletons stamped 5 ms after (or 20 ms before) the first one."""
    a, b = next(_ids), next(_ids)
    fa, fb = f"cam_two_a{offset_ms}", f"cam_two_b{offset_ms}"
    before = counters(probe, "frames_buffered", "dropped_total")
    last = {}
    for t in range(20):
        now = probe.now()
        last[fa], last[fb] = now, plus(now, offset_ms * 1_000_000)
        probe.skeletons.publish(skeleton_array(last[fa], {a: standing(40) + 0.01 * t},
                                               frame_id=fa))
        probe.skeletons.publish(skeleton_array(last[fb], {b: standing(41, offset=2) + 0.01 * t},
                                               frame_id=fb))
        probe.spin(1 / 30)
    stats = wait_counts(probe, {"frames_buffered": before["frames_buffered"] + 40})
    assert int(stats["frames_buffered"]) == before["frames_buffered"] + 40
    assert int(stats["dropped_total"]) == before["dropped_total"]
    for pid, frame in ((a, fa), (b, fb)):
        msg, _ = probe.wait_action(pid, stamp=last[frame])
        assert msg.header.frame_id == frame


@pytest.mark.slow
def test_two_players_at_once_are_two_sources(probe, data_dir, tmp_path):
    """Two prgcn-player processes with one frame_id: each publisher is a source of its own."""
    recording = data_dir / "msr_action3d" / "a05_s02_e01_skeleton3D.txt"
    players = [start_process(["-m", "prgcn_ros.nodes.player", str(recording), "--rate", "2",
                              "--quiet", "--ros-args", "-p", "frame_id:=twin_player"],
                             tmp_path / f"player{k}.log") for k in range(2)]
    try:
        def twins() -> set[int]:
            return {a.person_id for m in probe.actions if m.header.frame_id == "twin_player"
                    for a in m.actions}
        assert spin_until(probe.node, lambda: len(twins()) == 2, 60), \
            ([process_log(p) for p in players], twins(), probe.diagnostics[-1],
             {m.header.frame_id for m in probe.actions})
        for player in players:
            assert player.wait(timeout=60) == 0, process_log(player)
    finally:
        for player in players:
            stop_process(player)
    assert {local_id(p) for p in twins()} == {0}


def test_duplicate_ids_in_one_message_are_dropped_and_counted(probe):
    pid = next(_ids)
    before = counters(probe, "dropped_duplicate_id")["dropped_duplicate_id"]
    for t in range(5):
        msg = skeleton_array(probe.now(), {pid: standing(42) + 0.01 * t})
        twin = skeleton_array(probe.now(), {pid: standing(43, offset=2.0) + 0.01 * t})
        msg.skeletons.append(twin.skeletons[0])
        probe.skeletons.publish(msg)
        probe.spin(1 / 30)
    wait_counts(probe, {"dropped_duplicate_id": before + 10})
    # An /action for pid would come after the counter: a valid person on the same input after
    # it, once labelled, shows that anything the duplicates caused has arrived too.
    later = next(_ids)
    last = probe.play({later: standing(42)}, 5)
    probe.wait_action(later, stamp=last)
    assert not probe.actions_for(pid)


# ---------------------------------------------------------------------------- 4: stamps
def test_one_bad_stamp_costs_nobody(probe):
    """0.5 s ahead, a year ahead, 1970: each dropped alone; every valid frame around them kept,
    no track ended, no output stamped in the future."""
    pid = next(_ids)
    frame_id = "cam_outlier"
    keys = ("frames_buffered", "dropped_stamp_outlier", "dropped_stamp_backwards",
            "clock_resets")
    before = counters(probe, *keys)
    last = probe.play({pid: standing(44)}, 6, frame_id=frame_id)
    person = {pid: standing(44) + 0.06}
    for bad in (plus(probe.now(), 500_000_000), plus(probe.now(), 365 * 86400 * 10**9),
                Time(sec=1, nanosec=0)):
        probe.skeletons.publish(skeleton_array(bad, person, frame_id=frame_id))
        probe.spin(1 / 30)
    last = probe.play(person, 14, frame_id=frame_id)
    stats = wait_counts(probe, {"frames_buffered": before["frames_buffered"] + 20,
                                "dropped_stamp_outlier": before["dropped_stamp_outlier"] + 3})
    assert int(stats["frames_buffered"]) == before["frames_buffered"] + 20
    assert int(stats["dropped_stamp_outlier"]) == before["dropped_stamp_outlier"] + 3
    assert int(stats["dropped_stamp_backwards"]) == before["dropped_stamp_backwards"]
    assert int(stats["clock_resets"]) == before["clock_resets"]
    probe.wait_action(pid, stamp=last)
    for msg, action in probe.actions_for(pid):
        end = (action.window_end.sec, action.window_end.nanosec)
        assert end <= (last.sec, last.nanosec) and msg.header.stamp.sec > 1


def test_a_persistent_jump_back_restarts_the_source(probe):
    """A bag played again: the first message back is held as an outlier, the next confirms
    the jump and the source's people start over instead of waiting out the old clock."""
    pid = next(_ids)
    frame_id = "cam_replayed"
    before = counters(probe, "clock_resets")["clock_resets"]
    probe.play({pid: standing(45)}, 5, frame_id=frame_id)
    start = plus(probe.now(), -10 * 10**9)
    last = None
    for t in range(6):
        last = plus(start, t * 33_000_000)
        probe.skeletons.publish(skeleton_array(last, {pid: standing(45) + 0.01 * t},
                                               frame_id=frame_id))
        probe.spin(1 / 30)
    wait_counts(probe, {"clock_resets": before + 1})
    _, action = probe.wait_action(pid, stamp=last)
    assert action.num_frames == 6       # the new timeline only, its first (held) message too


# ---------------------------------------------------------------------------- 5: coordinates
def _finite_outputs(probe: Probe) -> None:
    for msg in probe.actions:
        for a in msg.actions:
            assert math.isfinite(a.confidence) and all(map(math.isfinite, a.top_scores))
    for msg in probe.refined:
        for s in msg.skeletons:
            values = [v for k in s.keypoints for v in (k.position.x, k.position.y,
                                                       k.position.z, k.confidence)]
            values += [v for o in s.offsets for v in (o.x, o.y, o.z)]
            assert all(map(math.isfinite, values))
    for msg in probe.markers:
        for m in msg.markers:
            if m.action != Marker.ADD:
                continue
            values = [m.scale.x, m.scale.y, m.scale.z, m.pose.position.x, m.pose.position.y,
                      m.pose.position.z] + [v for p in m.points for v in (p.x, p.y, p.z)]
            size = m.scale.z if m.type == Marker.TEXT_VIEW_FACING else m.scale.x
            assert all(map(math.isfinite, values)) and size > 0


def test_non_physical_coordinates_are_dropped_and_outputs_stay_finite(probe):
    pid, flat = next(_ids), next(_ids)
    keys = ("dropped_non_finite", "dropped_implausible_coordinates")
    before = counters(probe, *keys)
    huge, far = standing(46), standing(46)
    huge[3, 0] = 1e39          # finite as float64, inf as float32
    far[3, 0] = 1e4            # 10 km from the sensor
    last = None
    for t in range(10):
        last = probe.now()
        people = {pid: {3: huge, 6: far}.get(t, standing(46)) + 0.01 * t,
                  # every joint on one point: nothing to scale by
                  flat: np.zeros((20, 3)) + (2.0, 0.0, 2.0)}
        probe.skeletons.publish(skeleton_array(last, people, frame_id="cam_coords"))
        probe.spin(1 / 30)
    wait_counts(probe, {"dropped_non_finite": before["dropped_non_finite"] + 1,
                        "dropped_implausible_coordinates":
                            before["dropped_implausible_coordinates"] + 1})
    _, action = probe.wait_action(pid, stamp=last)
    assert action.num_frames == 8
    assert spin_until(probe.node, lambda: any(m.header.stamp == last for m in probe.refined), 5)
    _finite_outputs(probe)


# ---------------------------------------------------------------------------- 13: markers
def test_delete_markers_carry_the_departed_persons_own_frame(probe):
    """...and the stamp of their last skeleton: input time, like every other output."""
    leave, stay, brief = next(_ids), next(_ids), next(_ids)
    now = None
    for t in range(6):
        now = probe.now()
        probe.skeletons.publish(skeleton_array(now, {leave: standing(47) + 0.01 * t},
                                               frame_id="cam_del_a"))
        probe.skeletons.publish(skeleton_array(plus(now, 5_000_000),
                                               {stay: standing(48, offset=2) + 0.01 * t},
                                               frame_id="cam_del_b"))
        if t < 2:   # never labelled (min_frames 4): no markers, so no DELETE either
            probe.skeletons.publish(skeleton_array(now, {brief: standing(49) + 0.01 * t},
                                                   frame_id="cam_del_c"))
        probe.spin(1 / 30)
    probe.wait_action(leave)
    last = probe.play({stay: standing(48, offset=2)}, 30, frame_id="cam_del_b")
    probe.wait_action(stay, stamp=last)

    def deleted(pid: int) -> list[Marker]:
        return [mk for m in probe.markers for mk in m.markers
                if mk.action == Marker.DELETE and mk.id == local_id(pid)
                and mk.header.frame_id in ("cam_del_a", "cam_del_b", "cam_del_c", "")]
    assert spin_until(probe.node, lambda: len(deleted(leave)) == 3, 10)
    assert {m.header.frame_id for m in deleted(leave)} == {"cam_del_a"}
    assert all(m.header.stamp == now for m in deleted(leave))     # leave's last skeleton
    assert not deleted(brief)
    assert all(mk.header.frame_id for m in probe.markers for mk in m.markers)


# ---------------------------------------------------------------------------- 11: parameters
def _call(probe: Probe, client, request, timeout_s: float = 20.0):
    assert client.wait_for_service(timeout_sec=timeout_s)
    future = client.call_async(request)
    assert spin_until(probe.node, future.done, timeout_s)
    return future.result()


def _int_param(name: str, value: int) -> ParameterMsg:
    return ParameterMsg(name=name, value=ParameterValue(type=ParameterType.PARAMETER_INTEGER,
                                                        integer_value=value))


def test_parameters_are_described_live_ones_apply_and_invalid_sets_are_refused(probe):
    describe = probe.node.create_client(DescribeParameters,
                                        "/prgcn_recognizer/describe_parameters")
    setter = probe.node.create_client(SetParameters, "/prgcn_recognizer/set_parameters")
    names = ["window", "top_k", "max_people", "skeleton_topic", "latency_budget_ms"]
    found = {d.name: d for d in _call(probe, describe,
                                      DescribeParameters.Request(names=names)).descriptors}
    assert all(found[n].description for n in names)
    assert found["window"].read_only and not found["top_k"].read_only
    assert found["top_k"].integer_range[0].from_value == 1
    assert found["max_people"].integer_range and found["latency_budget_ms"].floating_point_range

    def set_one(param: ParameterMsg):
        return _call(probe, setter, SetParameters.Request(parameters=[param])).results[0]
    refused = set_one(_int_param("window", -5))        # start-up parameter: read-only
    assert not refused.successful and "window" in refused.reason
    refused = set_one(_int_param("top_k", 0))          # out of range
    assert not refused.successful and refused.reason
    try:
        assert set_one(_int_param("top_k", 2)).successful
        pid = next(_ids)
        last = probe.play({pid: standing(50)}, 5, frame_id="cam_params")
        _, action = probe.wait_action(pid, stamp=last)
        assert len(action.top_labels) == 2
    finally:
        assert set_one(_int_param("top_k", 5)).successful


# ---------------------------------------------------------------------------- 7: large messages
def test_large_messages_lost_best_effort_are_reported(probe):
    """20 messages of 1,000 people (about 0.8 MB each) on the default best-effort input: either
    every one arrives or the middleware's losses show in messages_lost (and a WARN), never a
    silent loss. (test_nodes_crowd shows reliable input delivering every one.)"""
    before = counters(probe, "messages_received", "messages_lost")
    rng = np.random.default_rng(0)
    msg = skeleton_array(probe.now(), {}, frame_id="cam_large")
    for pid in range(1000):
        msg.skeletons += skeleton_array(
            probe.now(), {pid: rng.normal(0, 0.3, (20, 3)) + (0.01 * pid, 0, 2)}).skeletons
    for _ in range(20):
        msg.header.stamp = probe.now()
        probe.skeletons.publish(msg)
        probe.spin(0.05)   # pacing: apart by more than 1/max_input_hz

    def settled(d: dict) -> bool:
        received = int(d["messages_received"]) - before["messages_received"]
        lost = int(d["messages_lost"]) - before["messages_lost"]
        return received == 20 or lost > 0
    stats = probe.wait_diagnostics(settled, 30)
    if int(stats["messages_lost"]) > before["messages_lost"]:
        assert any("lost in transport" in d["message"] for d in probe.diagnostics), \
            "losses counted but never a WARN"
