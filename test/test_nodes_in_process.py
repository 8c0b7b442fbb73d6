"""The recognizer node in this process, its callbacks called directly: what needs a fault put
into ingestion, or a message info no middleware would give on cue."""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import rclpy
import torch
from builtin_interfaces.msg import Time
from rosutil import PARAMS_FILE, Probe, skeleton_array, spin_until, standing
from visualization_msgs.msg import Marker

from prgcn_ros.nodes import recognizer as recognizer_module
from prgcn_ros.nodes.recognizer import RecognizerNode

pytestmark = pytest.mark.ros


@contextmanager
def recognizer_node(model, *params: str) -> Iterator[RecognizerNode]:
    """``params``: more "name:=value" settings."""
    argv = ["prgcn-recognizer", "--ros-args", "--params-file", str(PARAMS_FILE),
            "-p", f"model:={model}", "-p", "backend:=torch", "-p", "device:=cpu",
            *(arg for param in params for arg in ("-p", param))]
    rclpy.init(args=argv)
    try:
        node = RecognizerNode(argv)
        try:
            yield node
        finally:
            node.destroy_node()
    finally:
        rclpy.try_shutdown()


def test_an_unforeseen_error_drops_the_message_not_the_node(tiny_model, monkeypatch, capfd):
    """Counted as dropped_internal_error, its traceback logged once, the next messages taken."""
    with recognizer_node(tiny_model) as node:
        ingest = node.recognizer.ingest
        calls = []

        def fails_twice(frame):
            calls.append(frame)
            if len(calls) <= 2:
                raise RuntimeError("a fault validation did not foresee")
            return ingest(frame)

        monkeypatch.setattr(node.recognizer, "ingest", fails_twice)
        for t in range(4):
            node._on_skeletons(skeleton_array(Time(sec=100 + t), {7: standing(t)}))
        stats = node.recognizer.stats()
        assert stats["dropped_internal_error"] == 2
        assert stats["messages_received"] == 2 and stats["people_tracked"] == 1
    log = capfd.readouterr().err
    assert log.count("dropped_internal_error in /diagnostics") == 1, log
    assert "a fault validation did not foresee" in log


def test_float_parameters_given_whole_numbers_stay_floats(tiny_model):
    """min_confidence and latency_budget_ms given as 0 and 60 at start-up, and set live to
    whole numbers (as `ros2 param set` sends 0): each value used is a float, and each
    parameter stays a double (an integer set was stored as an integer before)."""
    from rclpy.parameter import Parameter

    with recognizer_node(tiny_model, "min_confidence:=0", "latency_budget_ms:=60") as node:
        for name, value in (("min_confidence", 0.0), ("latency_budget_ms", 60.0)):
            assert node.get_parameter(name).type_ == Parameter.Type.DOUBLE
            assert node.get_parameter(name).value == value
        results = node.set_parameters([Parameter("min_confidence", value=1),
                                       Parameter("latency_budget_ms", value=80)])
        assert all(r.successful for r in results)
        for name, value in (("min_confidence", 1.0), ("latency_budget_ms", 80.0)):
            assert node.get_parameter(name).type_ == Parameter.Type.DOUBLE
            assert node.get_parameter(name).value == value
        assert node.recognizer.params.min_confidence == 1.0
        assert node.node_params.latency_budget_ms == 80.0
        refused = node.set_parameters([Parameter("min_confidence", value="high")])[0]
        assert not refused.successful
        assert node.get_parameter("min_confidence").type_ == Parameter.Type.DOUBLE


def test_on_humble_whole_numbers_still_set_float_parameters(tiny_model, monkeypatch):
    """rclpy before Iron has no pre-set callbacks: the node starts, and a whole number set live
    is still taken for a float parameter (dynamic typing, as before Iron's callback)."""
    from rclpy.node import Node
    from rclpy.parameter import Parameter

    monkeypatch.delattr(Node, "add_pre_set_parameters_callback")
    with recognizer_node(tiny_model) as node:
        assert node.set_parameters([Parameter("min_confidence", value=1)])[0].successful
        assert node.recognizer.params.min_confidence == 1.0


class _TurningHead:
    """tf2's Buffer for a head camera turning at 30 degrees a second (tf2_ros has no wheel
    here): its rotation at any time, the present one for time 0."""

    def lookup_transform(self, target: str, source: str, when):
        from types import SimpleNamespace

        import numpy as np

        at = when.nanoseconds or time.time_ns()
        half = np.radians(30.0 * (at % 10**12) / 1e9) / 2
        rotation = SimpleNamespace(x=0.0, y=0.0, z=float(np.sin(half)), w=float(np.cos(half)))
        return SimpleNamespace(transform=SimpleNamespace(rotation=rotation))


def test_unstamped_input_from_a_turning_camera_goes_back_with_its_own_rotation(tiny_model):
    """Unstamped skeletons (stamp 0) are stamped on arrival before they are turned, so the
    rotation is kept by that stamp and a refined pose goes back with its own frame's, not the
    newest one (kept under stamp 0 before: off by the turn made during the pass)."""
    import numpy as np

    from prgcn_ros.nodes.gravity import Gravity

    with recognizer_node(tiny_model) as node:
        node.gravity = Gravity(convention="z_up", gravity_frame="base_link")
        node.gravity._buffer = _TurningHead()
        network = node.recognizer.backend

        def slow(x):                               # frames come in during every pass
            time.sleep(0.12)
            return network(x)
        node.recognizer.backend = slow
        published = []
        publish = node._publish_outputs

        def recorded(result):
            publish(result)                        # turns the poses back in place
            published.extend(p.refined - p.offsets for p in result.people)
        node._publish_outputs = recorded
        given = [standing(t) for t in range(40)]
        for t in range(40):
            node._on_skeletons(skeleton_array(Time(), {5: given[t]}, frame_id="head_cam"))
            time.sleep(0.05)
        assert len(published) >= 3
        for back in published:                     # each pose is one of the frames given
            assert min(np.abs(back - g).max() for g in given) < 1e-4


class _TfOfOneFrame:
    """tf2's Buffer that transforms "camera" only (tf2_ros has no wheel here)."""

    def lookup_transform(self, target: str, source: str, when):
        from types import SimpleNamespace

        if source != "camera":
            raise LookupError(f'"{source}" passed to lookupTransform does not exist')
        rotation = SimpleNamespace(x=0.0, y=0.0, z=0.0, w=1.0)
        return SimpleNamespace(transform=SimpleNamespace(rotation=rotation))


def test_a_frame_tf2_cannot_transform_is_logged_once_per_frame_id(tiny_model, capfd):
    """A camera's first message before its tf arrived used up the node's one no_transform
    line, so a mistyped frame_id later was never named in the log."""
    from prgcn_ros.nodes.gravity import Gravity

    with recognizer_node(tiny_model) as node:
        node.gravity = Gravity(convention="z_up", gravity_frame="base_link")
        node.gravity._buffer = _TfOfOneFrame()
        for t, frame_id in enumerate(["camera_early", "camera", "camra", "camra", "camera"]):
            node._on_skeletons(skeleton_array(Time(sec=100, nanosec=t * 33_000_000),
                                              {7: standing(7)}, frame_id=frame_id))
        assert node.recognizer.stats()["dropped_no_transform"] == 3
    log = capfd.readouterr().err
    lines = [line for line in log.splitlines() if "dropped_no_transform" in line]
    assert len(lines) == 2, log
    assert "'camera_early'" in lines[0] and "'camra'" in lines[1]


def test_frame_ids_past_the_kept_number_are_not_logged_again_and_again(tiny_model, capfd):
    """A driver that numbers its frame_ids, none of which tf2 knows: the first MAX_FRAMES are
    named once each, later ones not at all (forgetting the oldest named each again as it came
    back: a line per message)."""
    from prgcn_ros.nodes.gravity import MAX_FRAMES, Gravity

    with recognizer_node(tiny_model) as node:
        node.gravity = Gravity(convention="z_up", gravity_frame="base_link")
        node.gravity._buffer = _TfOfOneFrame()
        frame_ids = [f"cam_{i}" for i in range(MAX_FRAMES + 44)]
        for t, frame_id in enumerate(frame_ids * 2):
            node._on_skeletons(skeleton_array(Time(sec=100 + t // 30,
                                                   nanosec=t % 30 * 33_000_000),
                                              {7: standing(7)}, frame_id=frame_id))
        assert node.recognizer.stats()["dropped_no_transform"] == 2 * len(frame_ids)
    log = capfd.readouterr().err
    lines = [line for line in log.splitlines() if "dropped_no_transform" in line]
    assert len(lines) == MAX_FRAMES, len(lines)


def test_a_held_message_dropped_as_the_node_clock_starts_over_is_logged(tiny_model, capfd):
    """A message held for its stamp (a bag looped: 30 s back) when the node's clock changes
    basis is dropped as stamp_outlier: logged, not counted silently; and a real lone outlier
    later is counted too (before, the silent one had used up the reason's line)."""
    with recognizer_node(tiny_model) as node:
        def send(t: int, shift_s: float = 0.0) -> None:
            stamp = 100 + t * 0.033 + shift_s
            node._on_skeletons(skeleton_array(Time(sec=int(stamp),
                                                   nanosec=round(stamp % 1 * 1e9)),
                                              {7: standing(t)}))
        for t in range(5):
            send(t)
        send(5, -30.0)                                    # held: 30 s back
        node._track_clock = lambda: ("sim", 5.0)          # /clock starts: tracks start over
        node._clock_now()
        stats = node.recognizer.stats()
        assert stats["dropped_stamp_outlier"] == 1 and stats["people_tracked"] == 0
    log = capfd.readouterr().err
    lines = [line for line in log.splitlines() if "dropped_stamp_outlier" in line]
    assert len(lines) == 1 and "the node's clock changed" in lines[0], log


def test_confidences_above_one_are_logged_once_and_the_skeletons_kept(tiny_model, capfd):
    with recognizer_node(tiny_model) as node:
        for t in range(3):
            node._on_skeletons(skeleton_array(Time(sec=100, nanosec=t * 33_000_000),
                                              {7: standing(7)}, confidence=3.0))
        stats = node.recognizer.stats()
        assert stats["confidences_clipped"] == 3 and stats["dropped_total"] == 0
        assert stats["frames_buffered"] == 3
    log = capfd.readouterr().err
    assert log.count("counted as confidences_clipped") == 1, log
    assert "dropping input" not in log


def test_latency_counts_the_wait_in_the_input_queue(tiny_model):
    """A message the middleware received 2 s before the node took it (a busy node, a deep
    queue) arrived 2 s ago as far as latency goes."""
    with recognizer_node(tiny_model) as node:
        info = {"received_timestamp": time.time_ns() - 2_000_000_000}
        node._on_skeletons(skeleton_array(Time(sec=100), {7: standing(7)}), info)
        track = next(iter(node.recognizer.ingestion.tracks.values()))
        waited = time.monotonic() - track.pending[-1]
        assert 1.9 < waited < 3.0, waited
        node._on_skeletons(skeleton_array(Time(sec=100, nanosec=33_000_000), {7: standing(7)}),
                           None)
        assert time.monotonic() - track.pending[-1] < 1.0      # no info: taken now


def _wait(condition, timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


def _feed(node: RecognizerNode, first: int, count: int, pid: int = 7) -> None:
    for t in range(first, first + count):
        node._on_skeletons(skeleton_array(Time(sec=100, nanosec=t * 33_000_000),
                                          {pid: standing(pid)}))


def test_a_failed_inference_pass_skips_its_people_not_the_node(tiny_model, monkeypatch,
                                                                  capfd):
    """One pass raises (CUDA out of memory beside another process): logged once with its
    traceback, counted as inference_errors, and the next frames are recognised as before."""
    with recognizer_node(tiny_model) as node:
        infer = node.recognizer.infer
        calls, published = [], []

        def fails_once(*args, **kwargs):
            calls.append(1)
            if len(calls) == 1:
                raise RuntimeError("CUDA out of memory (simulated)")
            return infer(*args, **kwargs)

        publish = node._publish_result
        monkeypatch.setattr(node.recognizer, "infer", fails_once)
        monkeypatch.setattr(node, "_publish_result",
                            lambda result: (published.append(result), publish(result)))
        _feed(node, 0, 12)
        assert _wait(lambda: node.inference_errors == 1)
        _feed(node, 12, 3)
        assert _wait(lambda: published), "nothing published after the failed pass"
        assert node.inference_error is None and node.context.ok()
        assert node._inference.is_alive()
    log = capfd.readouterr().err
    assert log.count("an inference pass failed") == 1, log
    assert "CUDA out of memory (simulated)" in log and "Traceback" in log


def test_inference_that_keeps_failing_stops_the_node(tiny_model, monkeypatch, capfd):
    """A fault that does not go away: MAX_FAILED_PASSES in a row stop the node (main()
    returns 1), after one logged error of its kind."""
    monkeypatch.setattr(recognizer_module, "MAX_FAILED_PASSES", 3)
    with recognizer_node(tiny_model) as node:
        def broken(*args, **kwargs):
            raise ValueError("a backend that refuses every input (simulated)")

        monkeypatch.setattr(node.recognizer, "next_due", broken)
        node._wake.set()
        assert _wait(lambda: not node.context.ok(), 10)
        assert isinstance(node.inference_error, ValueError) and node.inference_errors == 3
    log = capfd.readouterr().err
    assert log.count("an inference pass failed") == 1, log
    assert "inference failed 3 times in a row" in log


def test_a_stuck_pass_and_non_finite_outputs_turn_diagnostics_warn(tiny_model, monkeypatch,
                                                                    capfd):
    """/action going quiet must show in /diagnostics: people waiting longer than the latency
    budget (a pass stuck in the backend), and outputs the model gave as NaN (suppressed)."""
    with recognizer_node(tiny_model) as node:
        probe = Probe()
        release, entered, finished = threading.Event(), threading.Event(), threading.Event()
        infer = node.recognizer.infer

        def stuck(*args, **kwargs):
            entered.set()
            release.wait(30)
            try:
                return infer(*args, **kwargs)
            finally:
                finished.set()

        monkeypatch.setattr(node.recognizer, "infer", stuck)
        try:
            _feed(node, 0, 12)
            assert entered.wait(30)
            budget = node.node_params.latency_budget_ms
            assert _wait(lambda: node.recognizer.stats()["oldest_wait_ms"] > budget)

            def diagnostics():
                start = len(probe.diagnostics)
                node._publish_diagnostics()
                assert spin_until(probe.node, lambda: len(probe.diagnostics) > start, 10)
                return probe.diagnostics[-1]

            warned = diagnostics()
            assert warned["level"] == 1 and "inference is behind or stuck" in warned["message"]
            assert int(warned["people_waiting"]) == 1
        finally:
            release.set()
        assert finished.wait(30)
        forward = node.recognizer._forward

        def nan_outputs(*args, **kwargs):
            probs, refined, offsets = forward(*args, **kwargs)
            return torch.full_like(probs, float("nan")), refined, offsets

        monkeypatch.setattr(node.recognizer, "_forward", nan_outputs)
        monkeypatch.setattr(node.recognizer, "infer", infer)
        before = node.recognizer.outputs_suppressed
        _feed(node, 12, 1)                      # one new frame: one pass, one output
        assert _wait(lambda: node.recognizer.outputs_suppressed == before + 1)
        warned = diagnostics()
        assert warned["level"] == 1 and "outputs suppressed" in warned["message"], warned
        quiet = diagnostics()               # nothing new since: OK again
        assert "outputs suppressed" not in quiet["message"]
        probe.node.destroy_node()
    log = capfd.readouterr().err
    assert log.count("the model gave non-finite values") == 1, log


def test_a_low_max_rate_hz_is_no_warning(tiny_model):
    """max_rate_hz 4 (a pass every 250 ms) with 30 Hz input and the 100 ms budget: frames wait
    for their person's next pass by setting, which is neither 'behind or stuck' nor a latency
    over the budget (WARN at every diagnostics before)."""
    with recognizer_node(tiny_model, "max_rate_hz:=4.0") as node:
        probe = Probe()
        budget = node.node_params.latency_budget_ms
        waits = []
        for t in range(60):                                 # 2 s at 30 Hz
            node._on_skeletons(skeleton_array(
                Time(sec=100 + t // 30, nanosec=(t % 30) * 33_333_333), {7: standing(7)}))
            time.sleep(1 / 30)
            waits.append(node.recognizer.stats()["oldest_wait_ms"])
        stats = node.recognizer.stats()
        assert stats["inferences"] >= 4 and stats["latency_p99_ms"] > budget, stats
        assert max(waits) < budget, waits
        start = len(probe.diagnostics)
        node._publish_diagnostics()
        assert spin_until(probe.node, lambda: len(probe.diagnostics) > start, 10)
        assert probe.diagnostics[-1]["level"] == 0, probe.diagnostics[-1]
        probe.node.destroy_node()


def test_nothing_of_a_person_follows_their_delete(tiny_model, monkeypatch):
    """A pass in flight while its person's track ends (a slow backend, a stalled machine): the
    DELETE of their markers goes out, and no /action or marker of theirs after it (markers
    published after their DELETE stayed up for their lifetime, 2 x track_timeout_s)."""
    with recognizer_node(tiny_model) as node:
        probe = Probe()
        assert spin_until(probe.node, lambda: node.markers_pub.get_subscription_count() > 0
                          and node.action_pub.get_subscription_count() > 0, 10)
        computed, release = threading.Event(), threading.Event()
        infer = node.recognizer.infer

        def slow(*args, **kwargs):
            result = infer(*args, **kwargs)
            if result is not None and not computed.is_set():
                computed.set()
                release.wait(30)
            return result

        monkeypatch.setattr(node.recognizer, "infer", slow)
        try:
            _feed(node, 0, 12, pid=7)
            assert computed.wait(30)            # person 7's pass holds its result
            clock_now = node._clock_now
            monkeypatch.setattr(node, "_clock_now", lambda: clock_now() + 1000.0)
            node._on_housekeeping()             # ... while their track times out
            monkeypatch.setattr(node, "_clock_now", clock_now)
            assert node.recognizer.tracks_expired == 1
        finally:
            release.set()
        # A later person's outputs come through the same publishers, after anything the pass
        # of person 7 could have published.
        _feed(node, 12, 12, pid=8)
        assert spin_until(probe.node, lambda: probe.actions_for(8) and any(
            mk.id == 8 for m in probe.markers for mk in m.markers), 30)
        seen = [mk.action for m in probe.markers for mk in m.markers if mk.id == 7]
        assert seen and set(seen) == {Marker.DELETE}, seen
        assert not probe.actions_for(7)
        probe.node.destroy_node()
