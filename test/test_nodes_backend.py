"""prgcn-recognizer with the onnxruntime backend, across processes over real DDS: it answers
on /action with what the torch pipeline computes for the same frames, reuses its cached graph
on the next start, and refuses to start on a graph that does not match the model."""
from __future__ import annotations

import numpy as np
import pytest
from rosutil import (
    CLASSES,
    FRAME_ID,
    connected_probe,
    make_tiny_model,
    rclpy_session,
    recognizer_args,
    running,
    standing,
    wait_for_log,
)
from test_backends import tamper

from prgcn_ros.recognition import InputFrame, Recognizer, RecognizerParams

pytestmark = [pytest.mark.slow, pytest.mark.ros]

SETTINGS = ("min_frames:=4", "window:=16", "smoothing:=1", "diagnostics_period_s:=0.25",
            "max_input_hz:=100.0")


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
    with running(args, tmp_path / "first.log") as proc, rclpy_session(), \
            connected_probe(proc, timeout_s=120) as probe:
        log = wait_for_log(proc, "backend onnxruntime")
        assert "exported graph" in log and str(cache) in log
        # Said before the export, which a start waits for without a word otherwise.
        assert log.index("exporting model tiny.safetensors") < log.index("exported graph"), log
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
    graphs = list(cache.glob("*.onnx"))
    assert len(graphs) == 1
    stamp = graphs[0].stat().st_mtime_ns

    # The second start loads the cached graph instead of exporting again.
    with running(args, tmp_path / "second.log") as proc:
        log = wait_for_log(proc, "backend onnxruntime")
        assert "cached graph" in log and "exporting model" not in log, log
    assert graphs[0].stat().st_mtime_ns == stamp

    # A graph that loads but computes something else (a cache copied from another install):
    # named, exported again, and the node starts on the new one.
    tamper(graphs[0])
    with running(args, tmp_path / "third.log") as proc:
        log = wait_for_log(proc, "backend onnxruntime")
        assert "exporting it again" in log and str(graphs[0]) in log, log
        assert "exported graph" in log
    assert graphs[0].stat().st_mtime_ns != stamp
