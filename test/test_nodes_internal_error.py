"""A message whose handling raises what validation did not foresee costs that message, not the
node: counted as dropped_internal_error, its traceback logged once, the next messages taken.
The node runs in this process so that a fault can be put into its ingestion."""
from __future__ import annotations

import pytest
import rclpy
from builtin_interfaces.msg import Time
from rosutil import PARAMS_FILE, skeleton_array, standing

from prgcn_ros.nodes.recognizer import RecognizerNode

pytestmark = pytest.mark.ros


def test_an_unforeseen_error_drops_the_message_not_the_node(tiny_model, monkeypatch, capfd):
    rclpy.init(args=["prgcn-recognizer", "--ros-args", "--params-file", str(PARAMS_FILE),
                     "-p", f"model:={tiny_model}", "-p", "backend:=torch", "-p", "device:=cpu"])
    try:
        node = RecognizerNode()
        try:
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
        finally:
            node.destroy_node()
    finally:
        rclpy.try_shutdown()
    log = capfd.readouterr().err
    assert log.count("dropped_internal_error in /diagnostics") == 1, log
    assert "a fault validation did not foresee" in log
