"""The recognizer node in this process, its callbacks called directly: what needs a fault put
into ingestion, or a message info no middleware would give on cue."""
from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import rclpy
from builtin_interfaces.msg import Time
from rosutil import PARAMS_FILE, skeleton_array, standing

from prgcn_ros.nodes.recognizer import RecognizerNode

pytestmark = pytest.mark.ros


@contextmanager
def recognizer_node(model) -> Iterator[RecognizerNode]:
    rclpy.init(args=["prgcn-recognizer", "--ros-args", "--params-file", str(PARAMS_FILE),
                     "-p", f"model:={model}", "-p", "backend:=torch", "-p", "device:=cpu"])
    try:
        node = RecognizerNode()
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
