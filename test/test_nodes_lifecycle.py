"""The recognizer's life as a ROS node (issue 13), across processes over real DDS: namespaces
and /**-keyed parameter files, unknown parameters, time-windowed latency with its budget,
Ctrl-C at any moment, and sim time (no /clock yet, a paused replay)."""
from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
import yaml
from builtin_interfaces.msg import Time
from rosgraph_msgs.msg import Clock
from rosutil import (
    connected_probe,
    process_log,
    recognizer_args,
    recognizer_process,
    skeleton_array,
    spin_until,
    standing,
    start_process,
    stop_process,
    wait_for_subscribers,
)

from prgcn_ros.live_data import local_id

pytestmark = pytest.mark.ros

WARN = 1


def start(model, tmp_path, ns: str, *overrides: str, params: dict | None = None):
    """The recognizer in namespace ``ns``, with a further /**-keyed parameter file."""
    ros_args = ["-r", f"__ns:={ns}"]
    if params is not None:
        extra = tmp_path / "params.yaml"
        extra.write_text(yaml.safe_dump({"/**": {"ros__parameters": params}}))
        ros_args = ["--params-file", str(extra), *ros_args]
    return recognizer_process(model, tmp_path / "recognizer.log", *overrides,
                              ros_args=tuple(ros_args))


@pytest.mark.slow
def test_a_namespace_moves_every_topic_and_the_parameter_file_still_applies(
        ros_context, tiny_model, tmp_path):
    """-r __ns:=/robot2 with /**-keyed files: topics under /robot2, the node's full name in
    its diagnostics, parameters from the files; an unknown parameter (a launch-wide
    SetParameter) is warned about, not fatal; latency percentiles cover the last
    latency_window_s and turn the status WARN over latency_budget_ms."""
    with start(tiny_model, tmp_path, "/robot2", "launch_wide_setting:=true",
               params={"min_frames": 3, "window": 8, "diagnostics_period_s": 0.25,
                       "latency_budget_ms": 0.001, "latency_window_s": 1.5}) as proc, \
            connected_probe(proc, "/robot2") as probe:
        assert probe.node.count_subscribers("/skeletons") == 0
        last = probe.play({7: standing(60)}, 3)
        msg, action = probe.wait_action(7, stamp=last)
        assert action.num_frames == 3                    # min_frames 3 from the file
        warned = probe.wait_diagnostics(lambda d: int(d["latency_samples"]) > 0)
        assert warned["level"] == WARN and "latency p99" in warned["message"]
        # Nothing new for longer than the window: the percentiles empty out, WARN ends.
        quiet = probe.wait_diagnostics(lambda d: int(d["latency_samples"]) == 0, 20)
        assert float(quiet["latency_p99_ms"]) == 0 and "latency" not in quiet["message"]
        assert proc.poll() is None
        log = process_log(proc)
        assert "ignoring parameters this node does not know: launch_wide_setting" in log


def _mapped(proc, library: str) -> bool:
    try:
        return library in Path(f"/proc/{proc.pid}/maps").read_text()
    except OSError:
        return False


# Moments of start-up, each seen from outside: the library the process has just loaded.
MOMENTS = {"rclpy imported, torch next": lambda p: _mapped(p, "librcl.so"),
           "torch loading": lambda p: _mapped(p, "libtorch_cpu"),
           "DDS up, model and node next": lambda p: _mapped(p, "librmw_fastrtps"),
           "running": lambda p: "inputs (" in p.log_path.read_text()}


def test_ctrl_c_at_any_moment_of_start_up_exits_cleanly(tiny_model, tmp_path):
    """SIGINT while rclpy, torch, the model and DDS start, and once running: status 0 and no
    traceback (Python's own start-up, before any of the package runs, is not ours). Each
    process gets a second SIGINT from stop_process while it shuts down: ignored."""
    procs = {name: start_process(recognizer_args(tiny_model), tmp_path / f"r{k}.log")
             for k, name in enumerate(MOMENTS)}
    waiting = dict(procs)
    deadline = time.monotonic() + 120
    while waiting and time.monotonic() < deadline:
        for name, proc in list(waiting.items()):
            if MOMENTS[name](proc) or proc.poll() is not None:
                proc.send_signal(signal.SIGINT)
                del waiting[name]
        time.sleep(0.005)
    assert not waiting, f"never reached: {list(waiting)}"
    for name, proc in procs.items():
        code = stop_process(proc, timeout_s=60)
        log = proc.log_path.read_text()
        assert code == 0 and "Traceback" not in log, f"{name}: {log}"


def _exporting(cache: Path):
    return lambda p: any(entry.name.startswith(".export.") for entry in cache.iterdir())


def test_sigterm_at_any_moment_exits_cleanly_and_promptly(tiny_model, tmp_path):
    """SIGTERM (systemd, docker stop, launch after its SIGINT) while torch loads, while the
    ONNX graph of a first start is being exported, and once running: status 0, no traceback,
    and out within seconds (docker stop's grace period is 10 s)."""
    cache = tmp_path / "graphs"
    cache.mkdir()
    moments = {"torch loading": ((), MOMENTS["torch loading"]),
               "exporting the graph": (("backend:=onnxruntime", f"backend_cache_dir:={cache}"),
                                       _exporting(cache)),
               "running": ((), MOMENTS["running"])}
    procs = {name: start_process(recognizer_args(tiny_model, *overrides),
                                 tmp_path / f"r{k}.log")
             for k, (name, (overrides, _)) in enumerate(moments.items())}
    signalled, deadline = {}, time.monotonic() + 120
    while len(signalled) < len(procs) and time.monotonic() < deadline:
        for name, proc in procs.items():
            if name not in signalled and (moments[name][1](proc) or proc.poll() is not None):
                proc.send_signal(signal.SIGTERM)
                signalled[name] = time.monotonic()
        time.sleep(0.005)
    assert len(signalled) == len(procs), f"never reached: {set(procs) - set(signalled)}"
    exited: dict[str, float] = {}
    while len(exited) < len(procs) and time.monotonic() < max(signalled.values()) + 15:
        for name, proc in procs.items():
            if name not in exited and proc.poll() is not None:
                exited[name] = time.monotonic()
        time.sleep(0.01)
    for name, proc in procs.items():
        took = exited.get(name, float("inf")) - signalled[name]
        code = stop_process(proc, timeout_s=60)
        log = proc.log_path.read_text()
        assert code == 0 and "Traceback" not in log, f"{name}: exit {code}: {log}"
        assert took < 15, f"{name}: {took:.1f} s after SIGTERM"
    # The interrupted export's work folder and temporary file went with it.
    assert [e.name for e in cache.iterdir() if e.name.startswith(".")] == []


def test_a_stop_signal_during_a_long_pass_exits_cleanly(tiny_model, tmp_path):
    """SIGTERM and SIGINT while a forward pass computes for 6 s (a first CUDA pass, a starved
    CPU): status 0 within seconds. Python's shutdown ran beside the pass still in torch's C++
    code, which aborted the process ("terminate called without an active exception", -6)."""
    peer = str(Path(__file__).parent / "peers" / "slow_pass_recognizer.py")
    for stop in (signal.SIGTERM, signal.SIGINT):
        proc = start_process([peer, "6", str(tiny_model)], tmp_path / f"{stop.name}.log",
                             env={"PYTHONPATH": str(Path(__file__).parent)})
        try:
            deadline = time.monotonic() + 120
            while ("pass started" not in process_log(proc) and proc.poll() is None
                   and time.monotonic() < deadline):
                time.sleep(0.05)
            assert "pass started" in process_log(proc), process_log(proc)
            proc.send_signal(stop)
            sent = time.monotonic()
            proc.wait(timeout=30)
            took = time.monotonic() - sent
        finally:
            code = stop_process(proc)
        log = process_log(proc)
        assert code == 0 and "terminate called" not in log, f"{stop.name}: {code}: {log}"
        assert "pass ended" not in log and took < 10, f"{stop.name}: {took:.1f} s: {log}"


def _clock(sim_ns: int) -> Clock:
    return Clock(clock=Time(sec=sim_ns // 10**9, nanosec=sim_ns % 10**9))


@pytest.mark.slow
def test_sim_time_without_clock_then_a_paused_replay_keeps_its_tracks(
        ros_context, tiny_model, tmp_path):
    """use_sim_time: with no /clock yet, diagnostics and expiry go on and unstamped input is
    taken; a replay that publishes /clock, pauses for longer than track_timeout_s and resumes
    keeps its people."""
    # connected_probe waits for diagnostics that count our input: they arrive without /clock.
    with start(tiny_model, tmp_path, "/sim", "use_sim_time:=true", "min_frames:=4",
               "window:=16", "track_timeout_s:=0.6", "diagnostics_period_s:=0.25",
               "smoothing:=1") as proc, connected_probe(proc, "/sim") as probe:
        clock_pub = probe.node.create_publisher(Clock, "/clock", 10)
        before = probe.settled()
        # Unstamped input (stamp 0) at 30 Hz: each message is taken.
        for t in range(10):
            probe.skeletons.publish(skeleton_array(Time(), {11: standing(61) + 0.01 * t},
                                                   frame_id="sim_cam"))
            probe.spin(1 / 30)
        stats = probe.wait_diagnostics(
            lambda d: int(d["frames_buffered"]) >= int(before["frames_buffered"]) + 10)
        assert int(stats["frames_buffered"]) == int(before["frames_buffered"]) + 10
        assert int(stats["dropped_total"]) == int(before["dropped_total"])
        assert spin_until(probe.node, lambda: bool(probe.actions_for(11)), 15)
        # ... and the person expires on the steady clock.
        probe.wait_diagnostics(
            lambda d: int(d["tracks_expired"]) >= int(before["tracks_expired"]) + 1, 15)

        # A replay: /clock and frames stamped in sim time.
        wait_for_subscribers(probe.node, clock_pub, timeout_s=20)
        sim = 1_000 * 10**9
        step = 33_000_000

        def replay(frames: int) -> Time:
            nonlocal sim
            stamp = None
            for t in range(frames):
                sim += step
                clock_pub.publish(_clock(sim))
                stamp = _clock(sim).clock
                probe.skeletons.publish(skeleton_array(stamp, {12: standing(62) + 0.001 * t},
                                                       frame_id="sim_cam"))
                probe.spin(1 / 30)
            return stamp
        last = replay(6)
        _, first = probe.wait_action(12, stamp=last)
        expired = int(probe.wait_diagnostics(lambda d: "tracks_expired" in d)["tracks_expired"])
        # Paused: 8 diagnostics periods (2 s on the steady clock) with neither /clock nor input.
        count = len(probe.diagnostics)
        assert spin_until(probe.node, lambda: len(probe.diagnostics) >= count + 8, 30)
        paused = probe.diagnostics[-1]
        assert int(paused["tracks_expired"]) == expired and int(paused["people_tracked"]) >= 1
        last = replay(4)
        _, resumed = probe.wait_action(12, stamp=last)
        assert local_id(resumed.person_id) == 12
        # The same track, its frames from before the pause still in its window.
        assert resumed.person_id == first.person_id
        assert resumed.num_frames == first.num_frames + 4


@pytest.mark.slow
def test_sim_time_going_back_ends_the_tracks_of_before(ros_context, tiny_model, tmp_path):
    """A simulation reset (Gazebo's sends /clock back to 0) or a replay looping with --clock:
    the people tracked before the jump end (their frames were seen 'later' than the clock now
    reads, so they would not time out before it caught up), here on a camera that sends
    nothing after the jump, and input after the jump is taken."""
    with start(tiny_model, tmp_path, "/reset", "use_sim_time:=true", "min_frames:=4",
               "window:=16", "track_timeout_s:=0.6", "diagnostics_period_s:=0.25",
               "smoothing:=1") as proc, connected_probe(proc, "/reset") as probe:
        clock_pub = probe.node.create_publisher(Clock, "/clock", 10)
        wait_for_subscribers(probe.node, clock_pub, timeout_s=20)
        before = probe.settled()

        def play(start_ns: int, frames: int, person: int, camera: str) -> Time:
            stamp = None
            for t in range(frames):
                stamp = _clock(start_ns + t * 33_000_000).clock
                clock_pub.publish(Clock(clock=stamp))
                probe.skeletons.publish(skeleton_array(stamp, {person: standing(person)
                                                               + 0.001 * t},
                                                       frame_id=camera))
                probe.spin(1 / 30)
            return stamp
        probe.wait_action(13, stamp=play(1_000 * 10**9, 6, 13, "sim_cam"))
        # The world resets: sim time from 5 s; camera 1 sees nobody (and sends nothing), camera 2
        # sees person 14.
        last = play(5 * 10**9, 6, 14, "sim_cam2")
        stats = probe.wait_diagnostics(
            lambda d: int(d["tracks_expired"]) >= int(before["tracks_expired"]) + 1, 15)
        assert int(stats["tracks_expired"]) == int(before["tracks_expired"]) + 1
        probe.wait_action(14, stamp=last)
        assert int(probe.diagnostics[-1]["people_tracked"]) == 1
    assert "node clock went back" in proc.log_path.read_text()


def test_a_person_due_now_is_not_held_back_by_another_persons_rate_limit(
        ros_context, tiny_model, tmp_path):
    """max_rate_hz 1: person A, seen on, waits up to a second for their next pass. Person B,
    new on another camera, is due as soon as they have min_frames: their first /action comes
    then, not when A's second is up."""
    with start(tiny_model, tmp_path, "/rate", "max_rate_hz:=1.0", "min_frames:=4",
               "window:=16") as proc, connected_probe(proc, "/rate") as probe:
        a, b = 71, 72
        for t in range(4):
            probe.skeletons.publish(skeleton_array(probe.now(), {a: standing(a) + 0.01 * t},
                                                   frame_id="cam_a"))
            probe.spin(1 / 30)
        probe.wait_action(a)              # A's pass: A is rate limited for the next second
        for t in range(4):                # A goes on; B arrives on camera B
            probe.skeletons.publish(skeleton_array(probe.now(), {a: standing(a) + 0.01 * t},
                                                   frame_id="cam_a"))
            probe.skeletons.publish(skeleton_array(probe.now(), {b: standing(b) + 0.01 * t},
                                                   frame_id="cam_b"))
            probe.spin(1 / 30)
        due = time.monotonic()             # B has min_frames now
        probe.wait_action(b, timeout_s=5.0)
        assert time.monotonic() - due < 0.5, "B waited out A's rate limit"


def test_a_publisher_whose_qos_cannot_reach_the_node_is_reported(ros_context, tiny_model,
                                                                 tmp_path):
    """input_reliability reliable against a best-effort publisher: DDS never connects them;
    the node says so in its log and /diagnostics instead of waiting in silence."""
    from rclpy.event_handler import PublisherEventCallbacks
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rosutil import Probe

    from prgcn_msgs.msg import SkeletonArray

    with start(tiny_model, tmp_path, "/qos", "input_reliability:=reliable",
               "diagnostics_period_s:=0.25") as proc:
        probe = Probe("/qos")
        try:
            probe.node.create_publisher(  # (our side's own warning is not the point)
                SkeletonArray, "/qos/skeletons",
                QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT),
                event_callbacks=PublisherEventCallbacks(use_default_callbacks=False))
            stats = probe.wait_diagnostics(lambda d: int(d["publishers_incompatible"]) == 1,
                                           timeout_s=30)
            assert stats["level"] == WARN and "QoS cannot reach this node" in stats["message"]
            assert process_log(proc).count("/skeletons best effort, and input_reliability is "
                                           "reliable: none of its messages arrive") == 1
        finally:
            probe.node.destroy_node()
