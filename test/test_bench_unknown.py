"""bench/unknown.py's sweep on hand-made scores (no model, no data)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import unknown  # noqa: E402

from prgcn_ros.training import calibration  # noqa: E402


def test_sweep_counts_foreign_unknown_and_correct_in_domain_kept():
    # In-domain: right answers with confidence 0.9, 0.6, 0.6; wrong ones (0.6, 0.95) ignored.
    in_probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.4, 0.6], [0.05, 0.95], [0.6, 0.4]])
    labels = np.array([0, 1, 0, 0, 0])
    foreign = np.array([[0.5, 0.5], [0.7, 0.3], [0.2, 0.8], [0.45, 0.55]])
    rows = {r["threshold"]: r for r in unknown.sweep(in_probs, labels, foreign, [0.5, 0.65])}
    # Right answers: 0.9, 0.6, 0.6 -> kept at 0.5: 3/3, at 0.65: 1/3.
    assert rows[0.5]["in_domain_kept"] == 1.0
    assert abs(rows[0.65]["in_domain_kept"] - 1 / 3) < 1e-12
    # Foreign top confidences 0.5, 0.7, 0.8, 0.55: below 0.5 none, below 0.65 two.
    assert rows[0.5]["foreign_unknown"] == 0.0 and rows[0.65]["foreign_unknown"] == 0.5


def test_operating_point_keeps_the_goal_share_of_right_answers():
    # 20 right answers with confidences 0.40 .. 0.99; 5 % may fall: the lowest one.
    conf = np.linspace(0.4, 0.99, 20)
    in_probs = np.stack([conf, (1 - conf) / 2, (1 - conf) / 2], axis=1)
    labels = np.zeros(20, dtype=int)
    foreign = np.array([[0.35, 0.35, 0.3], [0.9, 0.05, 0.05], [0.3, 0.42, 0.28],
                        [0.25, 0.25, 0.5]])
    point = unknown.operating_point(in_probs, labels, foreign, kept=0.95)
    assert point["threshold"] == conf[1] and point["in_domain_kept"] == 0.95
    # Foreign tops 0.35, 0.9, 0.42, 0.5 against conf[1] = 0.431: two fall below.
    assert point["foreign_unknown"] == 0.5
    assert unknown.operating_point(in_probs, np.ones(20, dtype=int), foreign) is None


def test_kept_by_model_evaluates_a_shipped_model_on_its_own_test_clips(data_dir):
    """The first clips of the model's test split (not its training clips), scored with its
    fitted temperature: recomputed here from the clips and the network's softmax."""
    import torch

    from prgcn_ros.model.io import load_model, read_metadata, resolve_model
    from prgcn_ros.training import batching
    from prgcn_ros.training.config import load_config
    from prgcn_ros.training.datasets import build_dataset
    from prgcn_ros.training.evaluate import config_for_model, config_path

    row = unknown.kept_by_model(("utd_mhad",), limit=12)["utd_mhad"]
    path = resolve_model("utd_mhad")
    meta = read_metadata(path)
    cfg = config_for_model(load_config(config_path("utd_mhad")), meta)
    test = build_dataset(cfg, "test")
    assert row["test"] == f"first 12 of {test.description}" and "test" in row["test"]
    clips = [test[i] for i in range(12)]
    temperature = meta["calibration"]["temperature"]
    assert row["temperature"] == pytest.approx(temperature) and temperature != 1.0
    model, _ = load_model(path)
    model.eval()
    x, labels = batching.make_batch(clips, cfg, train=False)
    with torch.no_grad():
        probs = torch.softmax(model(x)[0] / temperature, dim=1).numpy()
    right = probs.argmax(1) == labels.numpy()
    assert row["n"] == 12 and row["top1"] == pytest.approx(right.mean())
    assert row["top1"] >= 0.75                       # the model scores 93.7 % on the split
    for threshold in unknown.THRESHOLDS:
        expected = float((probs.max(1)[right] >= threshold).mean())
        assert row["kept"][str(threshold)] == pytest.approx(expected), threshold
    assert 0.05 < row["temperature"] < 20            # a fitted temperature, in the fit's range
    kept = [row["kept"][str(t)] for t in unknown.THRESHOLDS]
    assert kept == sorted(kept, reverse=True) and kept[0] == 1.0   # nothing right is below 0.05


def test_live_streaming_gives_the_offline_scores_without_smoothing(data_dir):
    """A clip streamed frame by frame through the recognizer, its whole length in the window
    and no smoothing, ends on the scores prgcn-eval gives the clip, both after the model's
    temperature: the live figures differ from the offline ones by the smoothing alone."""
    from prgcn_ros.model.io import load_model, resolve_model
    from prgcn_ros.training.config import load_config
    from prgcn_ros.training.datasets import build_dataset
    from prgcn_ros.training.evaluate import config_for_model, config_path, predict

    model, meta = load_model(resolve_model("msr_action3d"))
    cfg = config_for_model(load_config(config_path("msr_action3d")), meta)
    test = unknown._first(build_dataset(cfg, "test"), 3)
    clips = [test[i] for i in range(len(test))]
    assert max(clip.num_frames for clip in clips) <= 96
    offline, _ = predict(model, test, cfg)
    temperature = calibration.temperature_of(meta)
    assert temperature != 1.0                   # a difference the comparison would show
    offline = calibration.scaled(offline, temperature)
    live = unknown.live_probabilities(model, meta, clips,
                                      {"window": 96, "min_frames": 10, "smoothing": 1})
    np.testing.assert_allclose(live, offline, atol=1e-5)
    smoothed = unknown.live_probabilities(model, meta, clips, unknown.live_settings())
    assert unknown.live_settings()["smoothing"] > 1 and not np.allclose(smoothed, offline)


def test_held_out_operating_point_scores_each_subject_by_the_others_threshold():
    """Subject 1's right answers at 0.5-0.8, subject 2's at 0.4-0.99; keeping 75 %: subject
    1 is scored at the threshold subject 2 gives (0.9: none kept), subject 2 at subject 1's
    (0.6: three of four). Pooled 3 of 8, not the in-sample share."""
    conf = np.array([0.5, 0.6, 0.7, 0.8, 0.4, 0.9, 0.95, 0.99])
    in_probs = np.stack([conf, (1 - conf) / 2, (1 - conf) / 2], axis=1)
    labels = np.zeros(8, dtype=int)
    foreign = np.array([[0.65, 0.2, 0.15], [0.95, 0.03, 0.02]])
    point = unknown.held_out_operating_point(in_probs, labels, ["1"] * 4 + ["2"] * 4, foreign,
                                             kept=0.75)
    assert point["in_domain_kept"] == 3 / 8
    assert point["thresholds"] == [0.6, 0.9]
    # Foreign tops 0.65 and 0.95: at 0.9 one below, at 0.6 none: 0.25 on average.
    assert point["foreign_unknown"] == 0.25
    assert unknown.held_out_operating_point(in_probs, labels, ["1"] * 8, foreign) is None
