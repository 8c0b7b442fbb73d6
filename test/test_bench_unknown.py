"""bench/unknown.py's sweep on hand-made scores (no model, no data)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import unknown  # noqa: E402


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
    rows = unknown.kept_by_model(("utd_mhad",), limit=12)
    row = rows["utd_mhad"]
    assert row["n"] == 12 and 0.0 <= row["top1"] <= 1.0
    assert 0.05 < row["temperature"] < 20            # the model's fitted temperature
    kept = [row["kept"][str(t)] for t in unknown.THRESHOLDS]
    assert kept == sorted(kept, reverse=True) and kept[0] == 1.0   # nothing right is below 0.05
    assert row["kept"]["0.95"] < 1.0 or row["threshold_keeping_goal"] >= 0.95
