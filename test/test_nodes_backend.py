"""prgcn-recognizer with the onnxruntime backend, across processes over real DDS: it answers
on /action with what the torch pipeline computes for the same frames, reuses its cached graph
on the next start, and refuses to start on a graph that does not match the model."""
from __future__ import annotations

import time

import numpy as np
import pytest
import rclpy
from rosutil import process_log, start_process, stop_process, wait_for_subscribers
from test_backends import tamper
from test_nodes import (
    CLASSES,
    FRAME_ID,
    Probe,
    make_tiny_model,
    recognizer_args,
    standing,
    wait_for_recognizer_input,
)

from prgcn_ros.recognition import InputFrame, Recognizer, RecognizerParams

pytestmark = pytest.mark.ros

SETTINGS = ("min_frames:=4", "window:=16", "smoothing:=1", "diagnostics_period_s:=0.25",
            "max_input_hz:=100.0")


def _wait_log(proc, text: str, timeout_s: float = 120.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        log = process_log(proc)
        if text in log:
            return log
        time.sleep(0.2)
    raise AssertionError(f"{text!r} never logged:\n{process_log(proc)}")


def _torch_probabilities(model_file, frames: list[np.ndarray]) -> np.ndarray:
    """What the torch pipeline gives for one person's frames (same parameters)."""
    params = RecognizerParams.from_dict({"model": str(model_file), "min_frames": 4,
                                         "window": 16, "backend": "torch", "device": "cpu",
                                         "max_rate_hz": 1e9})
    rec = Recognizer.from_params(params)
    for t, xyz in enumerate(frames):
        rec.ingest(InputFrame(stamp_ns=1_000_000_000 + t * 33_000_000, frame_id=FRAME_ID,
                              layout="kinect20", ids=[7], coords=[xyz],
                              confidence=[np.ones(len(xyz))], arrival=100.0 + t / 30))
    return rec.infer(now=1e6).people[0].probabilities


def test_onnxruntime_node_answers_like_torch_and_reuses_its_graph(tmp_path):
    model = make_tiny_model(tmp_path / "tiny.safetensors", window=8)
    cache = tmp_path / "cache"
    args = recognizer_args(model, *SETTINGS, "backend:=onnxruntime",
                           f"backend_cache_dir:={cache}")
    proc = start_process(args, tmp_path / "first.log")
    rclpy.init()
    probe = Probe()
    try:
        wait_for_subscribers(probe.node, probe.skeletons, timeout_s=120)
        wait_for_recognizer_input(probe, timeout_s=120)
        log = _wait_log(proc, "backend onnxruntime")
        assert "exported graph" in log and str(cache) in log
        pid = 77
        person = standing(3)
        last = probe.play({pid: person}, 10)
        msg, action = probe.wait_action(pid, stamp=last, timeout_s=30)
        assert action.label in CLASSES and action.num_frames == 10
        sent = [person + 0.01 * t for t in range(action.num_frames)]
        expected = _torch_probabilities(model, sent)
        scores = dict(zip(action.top_labels, action.top_scores))
        assert max(abs(scores[c] - float(expected[i])) for i, c in enumerate(CLASSES)) < 1e-4
        assert action.label == CLASSES[int(np.argmax(expected))]
    finally:
        probe.node.destroy_node()
        rclpy.try_shutdown()
        code = stop_process(proc)
    assert code == 0, process_log(proc)
    graphs = list(cache.glob("*.onnx"))
    assert len(graphs) == 1
    stamp = graphs[0].stat().st_mtime_ns

    # The second start loads the cached graph instead of exporting again.
    proc = start_process(args, tmp_path / "second.log")
    try:
        log = _wait_log(proc, "backend onnxruntime")
        assert "cached graph" in log
    finally:
        code = stop_process(proc)
    assert code == 0, process_log(proc)
    assert graphs[0].stat().st_mtime_ns == stamp

    # A graph that loads but computes something else: start refused, the file named.
    tamper(graphs[0])
    proc = start_process(args, tmp_path / "third.log")
    try:
        proc.wait(timeout=120)
    finally:
        stop_process(proc)
    log = (tmp_path / "third.log").read_text()
    assert proc.returncode == 2, log
    assert "differs from the torch model" in log and str(graphs[0]) in log
