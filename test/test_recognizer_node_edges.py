"""Edges of the recognizer node that the other node tests left unguarded (found by a mutation
audit of prgcn_ros/nodes/recognizer.py): main()'s exit statuses, the inputs' QoS, diagnostics'
cadence, stamp and content, marker lifetimes and DELETEs, the inference thread's waits,
failures and stop, unstamped input, and each drop reason's one log line."""
from __future__ import annotations

import gc
import os
import signal
import sys
import threading
import time

import pytest
import rclpy
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.event_handler import PublisherEventCallbacks
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosutil import PARAMS_FILE, Probe, azure_markers, drain, skeleton_array, spin_until, standing
from test_nodes_in_process import _feed, _wait, recognizer_node
from visualization_msgs.msg import Marker, MarkerArray

from prgcn_msgs.msg import SkeletonArray
from prgcn_ros.nodes import conversions
from prgcn_ros.nodes import recognizer as recognizer_module

pytestmark = pytest.mark.ros


def _args(model, *params: str) -> list[str]:
    return ["prgcn-recognizer", "--ros-args", "--params-file", str(PARAMS_FILE),
            "-p", f"model:={model}", "-p", "backend:=torch", "-p", "device:=cpu",
            *(arg for param in params for arg in ("-p", param))]


@pytest.fixture
def main_in_process(monkeypatch):
    """main() run in this process: its Ctrl-C/SIGTERM handlers give way to pytest's after
    the test, and an os._exit (main's way out past a pass still running) fails the test
    instead of ending pytest with status 0."""
    saved = {stop: signal.getsignal(stop) for stop in (signal.SIGINT, signal.SIGTERM)}

    def no_exit(code):
        raise AssertionError(f"main() left through os._exit({code}): the inference thread "
                             f"was still running after destroy_node")

    monkeypatch.setattr(recognizer_module.os, "_exit", no_exit)
    monkeypatch.setattr(recognizer_module, "_interrupt_received", False)
    yield
    for stop, handler in saved.items():
        signal.signal(stop, handler)


def _feed_at_sensor_rate(node, frames: int) -> None:
    """One person's frames 0..frames-1, paced at 30 Hz (faster is dropped as a flood)."""
    for t in range(frames):
        _feed(node, t, 1)
        time.sleep(1 / 30)


def _connected(probe: Probe, *publishers) -> None:
    assert spin_until(probe.node, lambda: all(p.get_subscription_count() > 0
                                              for p in publishers), 10)


# ---------------------------------------------------------------------------- main()
def test_main_exit_statuses_and_the_start_up_line(tmp_path, capfd, main_in_process):
    """--help: usage on stdout, 0; a typo: usage on stderr, 2; a missing model: one line on
    stderr that names the file, status 2 (the README's promise; 1 was taken for a crash)."""
    assert recognizer_module.main(["prgcn-recognizer", "--help"]) == 0
    out, err = capfd.readouterr()
    assert out.startswith("usage: prgcn-recognizer") and not err
    assert recognizer_module.main(["prgcn-recognizer", "--windw", "3"]) == 2
    out, err = capfd.readouterr()
    assert err.startswith("usage: prgcn-recognizer") and not out
    missing = tmp_path / "gone.safetensors"
    assert recognizer_module.main(_args(missing)) == 2
    out, err = capfd.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert not out.strip() and len(lines) == 1, (out, err)
    assert lines[0].startswith("prgcn-recognizer: ") and str(missing) in lines[0]
    assert not rclpy.ok()


def test_an_unforeseen_start_up_error_is_no_clean_exit(tiny_model, monkeypatch,
                                                       main_in_process):
    """A fault at start-up that is neither a refusal nor a stop signal propagates (traceback,
    non-zero status): returning 0 told systemd and launch that all went well."""
    def broken(*args, **kwargs):
        raise RuntimeError("a start-up fault nobody foresaw (simulated)")

    monkeypatch.setattr(recognizer_module.Recognizer, "from_params", broken)
    with pytest.raises(RuntimeError, match="nobody foresaw"):
        recognizer_module.main(_args(tiny_model))
    assert not rclpy.ok()


def test_inference_that_keeps_failing_ends_main_with_status_1(tiny_model, monkeypatch, capfd,
                                                              main_in_process):
    monkeypatch.setattr(recognizer_module, "MAX_FAILED_PASSES", 3)

    def broken(*args, **kwargs):
        raise ValueError("a backend that refuses every input (simulated)")

    monkeypatch.setattr(recognizer_module.Recognizer, "next_due", broken)
    assert recognizer_module.main(_args(tiny_model)) == 1
    assert "inference failed 3 times in a row" in capfd.readouterr().err
    assert not rclpy.ok()


class _SignalledWhileBuilt(SingleThreadedExecutor):
    """The moment right after the start-up line: SIGTERM (systemd, launch) arrives while
    main() builds its executor."""

    def __init__(self, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        super().__init__(*args, **kwargs)


def test_a_stop_signal_while_the_executor_is_built_exits_without_a_traceback(
        tiny_model, monkeypatch, main_in_process):
    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    monkeypatch.setattr(recognizer_module, "SingleThreadedExecutor", _SignalledWhileBuilt)
    assert recognizer_module.main(_args(tiny_model)) == 0
    gc.collect()
    assert not unraisable, [f"{u.exc_type.__name__}: {u.exc_value}" for u in unraisable]


# ---------------------------------------------------------------------------- inputs
@pytest.mark.parametrize("reliability", ["best_effort", "reliable"])
def test_inputs_take_the_sensor_data_profile_with_the_depth_and_reliability_set(
        tiny_model, reliability):
    """Both inputs: keep last input_depth, volatile, input_reliability (best effort by
    default, as the sensor-data profile), as the node's subscriptions and the ROS graph say."""
    expected = {"best_effort": ReliabilityPolicy.BEST_EFFORT,
                "reliable": ReliabilityPolicy.RELIABLE}[reliability]
    with recognizer_node(tiny_model, "azure_kinect:=true", "input_depth:=7",
                         f"input_reliability:={reliability}") as node:
        qos = {sub.topic_name: sub.qos_profile for sub in node.subscriptions}
        probe = Probe()
        try:
            for topic in ("/skeletons", "/body_tracking_data"):
                assert qos[topic].depth == 7 and qos[topic].history == HistoryPolicy.KEEP_LAST
                assert qos[topic].durability == DurabilityPolicy.VOLATILE
                assert qos[topic].reliability == expected
                assert spin_until(probe.node, lambda t=topic: any(
                    i.node_name == "prgcn_recognizer"
                    for i in probe.node.get_subscriptions_info_by_topic(t)), 10)
                seen = [i.qos_profile for i in probe.node.get_subscriptions_info_by_topic(topic)
                        if i.node_name == "prgcn_recognizer"]
                assert [q.reliability for q in seen] == [expected]
                assert [q.durability for q in seen] == [DurabilityPolicy.VOLATILE]
        finally:
            probe.node.destroy_node()


def test_an_unforeseen_error_in_azure_input_drops_the_message_not_the_node(tiny_model,
                                                                          monkeypatch, capfd):
    with recognizer_node(tiny_model, "azure_kinect:=true") as node:
        ingest = node.recognizer.ingest
        calls = []

        def fails_once(frame):
            calls.append(frame)
            if len(calls) == 1:
                raise RuntimeError("an Azure fault validation did not foresee")
            return ingest(frame)

        monkeypatch.setattr(node.recognizer, "ingest", fails_once)
        for t in range(3):
            node._on_azure_markers(azure_markers(Time(sec=100, nanosec=t * 33_000_000),
                                                 {1: standing(1, "azure32")}))
        stats = node.recognizer.stats()
        assert stats["dropped_internal_error"] == 1 and stats["messages_received"] == 2
    assert "an Azure fault validation did not foresee" in capfd.readouterr().err


def test_two_azure_kinects_on_one_topic_are_two_sources(tiny_model):
    """Two Azure Kinect drivers on one topic in the same frame_id (two robots' cameras
    remapped together): each one's body 1 is a person of their own, none of their frames a
    flood of the other's (rclpy >= Iron tells the publishers apart)."""
    with recognizer_node(tiny_model, "azure_kinect:=true", "min_frames:=4") as node:
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        threading.Thread(target=executor.spin, daemon=True).start()
        probe = Probe()
        try:
            second = probe.node.create_publisher(MarkerArray, "/body_tracking_data", 10)
            _connected(probe, probe.azure, second, node.action_pub)
            for t in range(12):
                now = probe.now()
                later = Time(sec=now.sec, nanosec=now.nanosec)
                later.nanosec, later.sec = (now.nanosec + 5_000_000) % 10**9, \
                    now.sec + (now.nanosec + 5_000_000) // 10**9
                probe.azure.publish(azure_markers(now, {1: standing(1, "azure32") + 0.01 * t}))
                second.publish(azure_markers(later, {1: standing(2, "azure32", 2) + 0.01 * t}))
                probe.spin(1 / 30)      # pacing at the sensor's rate
            assert spin_until(probe.node, lambda: len(
                {a.person_id for m in probe.actions for a in m.actions}) == 2, 20), \
                {a.person_id for m in probe.actions for a in m.actions}
            assert node.recognizer.stats()["dropped_flood"] == 0
        finally:
            probe.node.destroy_node()
            executor.shutdown()


def test_each_new_reason_of_one_message_is_logged_once_with_its_source(tiny_model, capfd):
    """One message with a skeleton short of a joint and one with a NaN: both reasons logged,
    each naming the layout and frame_id, and not again for the next such message."""
    with recognizer_node(tiny_model) as node:
        for t in range(2):
            msg = skeleton_array(Time(sec=100, nanosec=t * 33_000_000),
                                 {1: standing(1), 2: standing(2)}, frame_id="cam_left")
            msg.skeletons[0].keypoints.pop()
            msg.skeletons[1].keypoints[0].position.x = float("nan")
            node._on_skeletons(msg)
        stats = node.recognizer.stats()
        assert stats["dropped_wrong_joint_count"] == 2 and stats["dropped_non_finite"] == 2
    log = capfd.readouterr().err
    for reason in ("wrong_joint_count", "non_finite"):
        lines = [line for line in log.splitlines() if f"dropped_{reason} in" in line]
        assert len(lines) == 1, log
        assert "layout 'kinect20', frame_id 'cam_left'" in lines[0], lines[0]


def test_input_layout_reads_every_message_as_that_layout(tiny_model):
    """A driver that fills layout with its own name (or nothing): input_layout kinect20 reads
    its skeletons as kinect20 instead of dropping them as unknown_layout."""
    with recognizer_node(tiny_model, "input_layout:=kinect20") as node:
        for t, layout in enumerate(["", "my_tracker_v2", "kinect20"]):
            node._on_skeletons(skeleton_array(Time(sec=100, nanosec=t * 33_000_000),
                                              {7: standing(7)}, layout=layout))
        stats = node.recognizer.stats()
        assert stats["frames_buffered"] == 3 and stats["dropped_total"] == 0, stats


def test_unstamped_input_is_stamped_even_before_sim_time_starts(tiny_model):
    """use_sim_time with no /clock yet: the node's clock reads 0, so unstamped skeletons take
    the wall clock; their /action carries that stamp, not 0."""
    with recognizer_node(tiny_model, "use_sim_time:=true") as node:
        probe = Probe()
        try:
            _connected(probe, node.action_pub)
            before = time.time()
            for _ in range(12):
                node._on_skeletons(skeleton_array(Time(), {7: standing(7)}))
                time.sleep(1 / 30)      # pacing at the sensor's rate (floods are checked)
            msg, _ = probe.wait_action(7)
            stamp = msg.header.stamp.sec + msg.header.stamp.nanosec / 1e9
            assert before - 1 < stamp < time.time() + 1, stamp
        finally:
            probe.node.destroy_node()


def test_unstamped_messages_queued_together_are_paced_by_their_send_times(tiny_model):
    """Unstamped messages sent at 30 Hz that the node takes in one burst (it was busy) are
    no flood: their send times, where the middleware gives them, are 33 ms apart."""
    with recognizer_node(tiny_model) as node:
        sent = time.time_ns() - 1_000_000_000
        for t in range(12):
            node._on_skeletons(skeleton_array(Time(), {7: standing(7)}),
                               {"source_timestamp": sent + t * 33_333_333})
        stats = node.recognizer.stats()
        assert stats["dropped_flood"] == 0 and stats["frames_buffered"] == 12, stats


def test_a_wall_clock_step_is_not_counted_as_latency(tiny_model):
    """The wall clock stepped between the middleware's reception and the callback: a message
    'received' 10 minutes ago waited MAX_QUEUED_S at most, one 'received' in 10 minutes not
    at all (a negative wait would make its latency negative)."""
    with recognizer_node(tiny_model) as node:
        waits = []
        for t, step_s in enumerate((-600, 600)):
            info = {"received_timestamp": time.time_ns() + step_s * 1_000_000_000}
            node._on_skeletons(skeleton_array(Time(sec=100, nanosec=t * 33_000_000),
                                              {7: standing(7)}), info)
            track = next(iter(node.recognizer.ingestion.tracks.values()))
            waits.append(time.monotonic() - track.pending[-1])
        limit = recognizer_module.MAX_QUEUED_S
        assert limit - 1 < waits[0] < limit + 5 and 0 <= waits[1] < 1, waits


# ---------------------------------------------------------------------------- diagnostics
def test_diagnostics_come_once_a_period_and_a_stall_brings_no_burst(tiny_model):
    """The housekeeping timer (driven by hand here, every 50 ms) publishes diagnostics once
    per diagnostics_period_s; after the executor stalled for four periods, one message, not
    one for each period missed, and the next a period later (before, the tick after the stall's
    first one published again)."""
    with recognizer_node(tiny_model, "diagnostics_period_s:=0.5") as node:
        probe = Probe()
        try:
            _connected(probe, node.diagnostics_pub)
            start = len(probe.diagnostics)
            end = time.monotonic() + 1.2
            while time.monotonic() < end:
                node._on_housekeeping()
                probe.spin(0.05)
            drain(probe.node, probe.diagnostics)
            assert 2 <= len(probe.diagnostics) - start <= 4, len(probe.diagnostics) - start
            time.sleep(2.1)              # the executor stalls (a long callback, a busy core)
            start = len(probe.diagnostics)
            for _ in range(5):
                node._on_housekeeping()
            drain(probe.node, probe.diagnostics)
            assert len(probe.diagnostics) - start == 1, len(probe.diagnostics) - start
        finally:
            probe.node.destroy_node()


def test_diagnostics_carry_the_clock_stamp_and_the_failed_passes(tiny_model, monkeypatch):
    with recognizer_node(tiny_model) as node:
        probe = Probe()
        stamps = []
        probe.node.create_subscription(
            DiagnosticArray, "/diagnostics",
            lambda m: stamps.extend(m.header.stamp for s in m.status
                                    if s.name == probe.status_name), 10)
        try:
            _connected(probe, node.diagnostics_pub)
            infer = node.recognizer.infer
            calls = []

            def fails_once(*args, **kwargs):
                calls.append(1)
                if len(calls) == 1:
                    raise RuntimeError("CUDA out of memory (simulated)")
                return infer(*args, **kwargs)

            monkeypatch.setattr(node.recognizer, "infer", fails_once)
            _feed(node, 0, 12)
            assert _wait(lambda: node.inference_errors == 1)
            node._publish_diagnostics()
            assert spin_until(probe.node, lambda: probe.diagnostics and stamps, 10)
            assert probe.diagnostics[-1]["inference_errors"] == "1"
            now = node.get_clock().now().nanoseconds / 1e9
            assert abs(stamps[-1].sec + stamps[-1].nanosec / 1e9 - now) < 5, stamps[-1]
        finally:
            probe.node.destroy_node()


def test_publishers_qos_cannot_reach_are_counted_and_each_logged_once(tiny_model, capfd):
    """input_reliability reliable: two best-effort publishers (and the probe's reliable one,
    which reaches the node) give publishers_incompatible 2 at every diagnostics, and one log
    line each, not one per diagnostics period."""
    with recognizer_node(tiny_model, "input_reliability:=reliable") as node:
        probe = Probe()
        try:
            for _ in range(2):
                probe.node.create_publisher(  # (our side's own warning is not the point)
                    SkeletonArray, "/skeletons",
                    QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT),
                    event_callbacks=PublisherEventCallbacks(use_default_callbacks=False))
            assert spin_until(probe.node, lambda: len(
                node.get_publishers_info_by_topic("/skeletons")) == 3, 10)
            for _ in range(3):
                start = len(probe.diagnostics)
                node._publish_diagnostics()
                assert spin_until(probe.node, lambda s=start: len(probe.diagnostics) > s, 10)
                assert probe.diagnostics[-1]["publishers_incompatible"] == "2"
        finally:
            probe.node.destroy_node()
    lines = [line for line in capfd.readouterr().err.splitlines()
             if "none of its messages arrive" in line]
    assert len(lines) == 2 and all("/recognizer_probe publishes /skeletons best effort" in line
                                   for line in lines), lines


# ---------------------------------------------------------------------------- outputs
def test_markers_outlive_the_next_pass_and_nobody_unshown_is_deleted(tiny_model, monkeypatch):
    """Markers carry a lifetime past the next due pass and the person's drop (so a lost
    DELETE does not leave them up for good); a person who never got an /action gets no
    DELETE; and housekeeping with nobody gone publishes no empty MarkerArray."""
    timeout_s, rate_hz = 0.6, 4.0
    with recognizer_node(tiny_model, f"track_timeout_s:={timeout_s}",
                         f"max_rate_hz:={rate_hz}") as node:
        probe = Probe()
        try:
            _connected(probe, node.markers_pub, node.action_pub)
            for t in range(12):      # person 5 only in the first 3 frames: never published
                people = {7: standing(7), 5: standing(5, offset=1.5)} if t < 3 else \
                    {7: standing(7)}
                node._on_skeletons(skeleton_array(Time(sec=100, nanosec=t * 33_000_000),
                                                  people))
            assert spin_until(probe.node, lambda: any(
                mk.id == 7 for m in probe.markers for mk in m.markers), 30)
            for _ in range(5):
                node._on_housekeeping()
            clock_now = node._clock_now
            monkeypatch.setattr(node, "_clock_now", lambda: clock_now() + 1000.0)
            node._on_housekeeping()                           # both tracks time out
            monkeypatch.setattr(node, "_clock_now", clock_now)
            assert node.recognizer.tracks_expired == 2
            assert spin_until(probe.node, lambda: any(
                mk.id == 7 and mk.action == Marker.DELETE
                for m in probe.markers for mk in m.markers), 10)
            drain(probe.node, probe.markers)
        finally:
            probe.node.destroy_node()
    assert all(m.markers for m in probe.markers), "an empty MarkerArray was published"
    assert not [mk for m in probe.markers for mk in m.markers if mk.id == 5]
    added = [mk for m in probe.markers for mk in m.markers if mk.action == Marker.ADD]
    lifetime = conversions.marker_lifetime_s(timeout_s, rate_hz)
    assert added and lifetime > 0
    for marker in added:
        assert marker.lifetime.sec + marker.lifetime.nanosec / 1e9 == pytest.approx(lifetime)


def test_one_pass_of_two_cameras_answers_each_in_its_own_frame(tiny_model, monkeypatch):
    """Two people from two cameras recognised in one pass: /action, /refined_poses and the
    markers each come once per camera, in that camera's frame_id and with its stamp."""
    with recognizer_node(tiny_model) as node:
        probe = Probe()
        try:
            _connected(probe, node.action_pub, node.refined_pub, node.markers_pub)
            release = threading.Event()
            infer = node.recognizer.infer

            def held(*args, **kwargs):
                release.wait(30)           # both people are due before the pass starts
                return infer(*args, **kwargs)

            monkeypatch.setattr(node.recognizer, "infer", held)
            last = {}
            for t in range(12):
                for pid, frame_id, shift in ((1, "cam_a", 0), (2, "cam_b", 7_000_000)):
                    last[frame_id] = Time(sec=100, nanosec=t * 33_000_000 + shift)
                    node._on_skeletons(skeleton_array(last[frame_id], {pid: standing(pid)},
                                                      frame_id=frame_id))
            release.set()

            def frames(messages):
                return {(m.header.frame_id, m.header.stamp.nanosec) for m in messages}

            def stamps(messages):
                return {(m.markers[0].header.frame_id, m.markers[0].header.stamp.nanosec)
                        for m in messages if m.markers}
            wanted = {(f, stamp.nanosec) for f, stamp in last.items()}
            assert spin_until(probe.node, lambda: wanted <= frames(probe.actions)
                              and wanted <= frames(probe.refined)
                              and wanted <= stamps(probe.markers), 20), \
                (frames(probe.actions), frames(probe.refined), stamps(probe.markers))
            for msg in probe.markers:
                assert len({mk.header.frame_id for mk in msg.markers}) == 1
        finally:
            probe.node.destroy_node()


def test_a_rate_limited_person_gets_their_last_frames_without_new_input(tiny_model):
    """max_rate_hz 2: frames that came during the wait are recognised once it is over, also
    when no further frame comes to wake the inference thread."""
    with recognizer_node(tiny_model, "max_rate_hz:=2.0") as node:
        probe = Probe()
        try:
            _connected(probe, node.action_pub)
            for t in range(14):
                stamp = Time(sec=100, nanosec=t * 33_000_000)
                node._on_skeletons(skeleton_array(stamp, {7: standing(7)}))
                time.sleep(1 / 30)      # pacing at the sensor's rate
            probe.wait_action(7, stamp=stamp, timeout_s=5)
        finally:
            probe.node.destroy_node()


# ---------------------------------------------------------------------------- inference thread
def test_failures_that_are_not_in_a_row_do_not_stop_the_node(tiny_model, monkeypatch):
    monkeypatch.setattr(recognizer_module, "MAX_FAILED_PASSES", 3)
    with recognizer_node(tiny_model) as node:
        infer = node.recognizer.infer
        calls = []

        def every_other(*args, **kwargs):
            calls.append(1)
            if len(calls) % 2:
                raise RuntimeError("a transient fault (simulated)")
            return infer(*args, **kwargs)

        monkeypatch.setattr(node.recognizer, "infer", every_other)
        _feed_at_sensor_rate(node, 40)
        assert _wait(lambda: node.inference_errors >= 4, 10), node.inference_errors
        assert node.context.ok() and node.inference_error is None


def test_a_fault_of_a_second_does_not_use_up_the_failures_allowed(tiny_model, monkeypatch):
    """Passes failing for 1.5 s while frames come at 30 Hz (a CUDA out-of-memory spell): the
    pause after each failure keeps them under the number that stops the node (20 here)."""
    monkeypatch.setattr(recognizer_module, "MAX_FAILED_PASSES", 20)
    with recognizer_node(tiny_model) as node:
        infer = node.recognizer.infer
        until = time.monotonic() + 1.5

        def faulty_for_a_while(*args, **kwargs):
            if time.monotonic() < until:
                raise RuntimeError("CUDA out of memory (simulated)")
            return infer(*args, **kwargs)

        monkeypatch.setattr(node.recognizer, "infer", faulty_for_a_while)
        _feed_at_sensor_rate(node, 60)
        assert node.context.ok() and node.inference_error is None
        assert 1 <= node.inference_errors < 20, node.inference_errors
        assert node.recognizer.stats()["inferences"] >= 1


def test_a_pass_ended_by_the_node_stopping_is_no_inference_error(tiny_model, monkeypatch,
                                                                  capfd):
    """A pass that fails because the node is being destroyed under it (its publishers gone)
    is part of stopping: no error logged, nothing counted."""
    with recognizer_node(tiny_model) as node:
        entered = threading.Event()

        def until_stopped(*args, **kwargs):
            entered.set()
            node._stop.wait(30)
            raise RuntimeError("publisher's handle is invalid (simulated: destroyed mid-pass)")

        monkeypatch.setattr(node.recognizer, "infer", until_stopped)
        _feed(node, 0, 12)
        assert entered.wait(30)
    assert not node.inference_running() and node.inference_errors == 0
    assert "an inference pass failed" not in capfd.readouterr().err


def test_an_idle_node_leaves_the_cpu_alone(tiny_model, monkeypatch):
    """Once everyone is recognised, and someone seen for fewer than min_frames frames has
    gone (nobody due), the inference thread sleeps until frames come in: it does not keep
    asking who is due (a busy loop costs a core; counted, not timed, so a loaded machine
    does not hide it)."""
    with recognizer_node(tiny_model) as node:
        _feed(node, 0, 12)
        assert _wait(lambda: node.recognizer.stats()["inferences"] >= 1)
        assert _wait(lambda: node.recognizer.next_due() is None)
        next_due, asked = node.recognizer.next_due, []

        def counted(*args, **kwargs):
            asked.append(1)
            return next_due(*args, **kwargs)

        monkeypatch.setattr(node.recognizer, "next_due", counted)
        _feed(node, 12, 3, pid=8)                 # a glimpse of someone: nobody due
        assert _wait(lambda: asked)               # the thread woke and found nobody due
        time.sleep(0.5)                 # the span observed, not a wait for something
        assert len(asked) <= 5, f"{len(asked)} look-ups in 0.5 s while idle"


def test_the_azure_input_is_subscribed_only_when_on(tiny_model):
    with recognizer_node(tiny_model) as node:
        topics = {sub.topic_name for sub in node.subscriptions}
        assert "/skeletons" in topics and "/body_tracking_data" not in topics


def _asleep(thread: threading.Thread) -> bool:
    """The thread blocks in a threading wait (its innermost Python frame)."""
    frame = sys._current_frames().get(thread.ident)
    return (frame is not None and frame.f_code.co_name == "wait"
            and frame.f_code.co_filename == threading.__file__)


def test_destroying_the_node_ends_its_idle_inference_thread_at_once(tiny_model, monkeypatch):
    with recognizer_node(tiny_model) as node:
        next_due, idle = node.recognizer.next_due, threading.Event()

        def noted(*args, **kwargs):
            due = next_due(*args, **kwargs)
            if due is None:
                idle.set()
            return due

        monkeypatch.setattr(node.recognizer, "next_due", noted)
        _feed(node, 0, 3)                          # nobody due: the thread goes to sleep
        assert idle.wait(10) and node.inference_running()
        assert _wait(lambda: _asleep(node._inference), 10)
        start = time.monotonic()
    took = time.monotonic() - start
    assert not node.inference_running() and took < 1.0, took
