"""The live benchmarks' analysis on synthetic data (bench/livekit.py): no processes, no ROS."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import livekit  # noqa: E402

MS = 1_000_000


def test_latency_is_time_to_the_first_action_whose_window_reaches_the_input():
    # Person 7 sends every 33 ms; actions arrive at irregular times covering up to some stamp.
    stamps = np.arange(10) * 33 * MS
    # (recv, window_start, window_end): the first action is received at 100 ms and covers
    # stamps up to 66 ms, the next (received at 180 ms) up to 165 ms, the last up to 264 ms.
    acts = np.array([[100, 0, 66], [180, 0, 165], [300, 0, 264]]) * MS
    latency, warm = livekit.cover_latencies(
        np.full(10, 7), stamps, np.full(3, 7), acts[:, 0], acts[:, 1], acts[:, 2])
    expected_recv = [100, 100, 100, 180, 180, 180, 300, 300, 300]
    assert np.allclose(latency[:9] / MS, np.array(expected_recv) - stamps[:9] / MS)
    assert np.isnan(latency[9])              # stamp 297 ms: no action reached it
    assert warm.tolist() == [True, True] + [False] * 8   # before the first label (66 ms)


def test_latency_uses_receive_order_people_apart_and_window_start():
    stamps = np.array([0, 50, 0, 50]) * MS
    people = np.array([1, 1, 2, 2])
    # Out of order in the arrays; person 2's only action starts after its first input.
    acts = np.array([[1, 200, 0, 50], [1, 120, 0, 10], [2, 90, 40, 60]])
    latency, _ = livekit.cover_latencies(people, stamps, acts[:, 0], acts[:, 1] * MS,
                                         acts[:, 2] * MS, acts[:, 3] * MS)
    assert latency[0] / MS == 120 and latency[1] / MS == 200 - 50
    assert np.isnan(latency[2])              # left the window before any action used it
    assert latency[3] / MS == 40


def test_people_without_actions_are_not_covered():
    latency, warm = livekit.cover_latencies(np.array([3, 3]), np.array([0, 1]), np.array([4]),
                                            np.array([5]), np.array([0]), np.array([9]))
    assert np.isnan(latency).all() and not warm.any()


def test_flood_rule_keeps_messages_at_least_a_period_apart():
    stamps = np.array([0, 1, 5, 9, 10, 18, 30]) * MS
    keep = livekit.kept_by_rate_limit(stamps, 120.0)   # 8.33 ms
    assert keep.tolist() == [True, False, False, True, False, True, True]


def test_rss_growth_compares_the_last_tenth_with_the_first_after_warm_up():
    # 110 messages of 10 people; memory grows 1 MB per message during warm-up, then 0.1 %.
    pub = np.arange(110) * 10 * MS
    people = np.full(110, 10)
    t = pub + 5 * MS
    rss = np.where(np.arange(110) < 10, 100 + np.arange(110), 110) * 2.0**20
    rss = rss * (1 + 0.00001 * np.arange(110))
    out = livekit.rss_growth(t, rss, pub, people, warmup_frames=100)
    assert 0 < out["rss_growth_pct"] < 0.2
    assert out["samples_first_tenth"] == out["samples_last_tenth"] == 10


def test_rss_growth_leaves_out_the_samples_taken_after_the_input_stopped():
    """Memory flat while input runs and lower once it stops (the node winding down): no
    growth, and no shrinkage either; the samples after the last message do not count."""
    pub = np.arange(110) * 10 * MS
    people = np.full(110, 10)
    t = np.concatenate([pub + 5 * MS, pub[-1] + np.arange(1, 31) * 10 * MS])   # 30 after
    rss = np.concatenate([np.full(110, 200.0), np.full(30, 150.0)]) * 2.0**20
    out = livekit.rss_growth(t, rss, pub, people, warmup_frames=100)
    assert out["rss_growth_pct"] == 0.0
    assert out["samples_first_tenth"] == out["samples_last_tenth"] == 10


def test_update_results_keeps_other_keys(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"model": {"speed_ratio_stgcn_over_prgcn": 4.0},
                                "meta": {"other": 1}}))
    livekit.update_results({"live": {"persons_1": {"p99_ms": 20.0}}, "meta": {"date": "d"}},
                           path)
    data = json.loads(path.read_text())
    assert data["model"] == {"speed_ratio_stgcn_over_prgcn": 4.0}
    assert data["live"]["persons_1"]["p99_ms"] == 20.0
    assert data["meta"] == {"other": 1, "date": "d"}


def test_a_repeat_that_measured_nothing_makes_the_median_not_measured():
    assert livekit.median([4.0, 6.0, 5.0]) == 5.0
    assert livekit.median([4.0, None, 5.0]) is None      # not the median of the other two
    assert livekit.median([]) is None


def test_the_report_shows_a_goal_it_could_not_measure():
    """A goal whose figure is missing (a failed live phase, fewer seeds than the goal's five)
    is a row that says so, not a row left out; figures and verdicts come from the file."""
    import report

    data = json.loads((Path(report.__file__).parent / "results.json").read_text())
    full = {row[0]: row for row in report.rows(data)}
    del data["live"]["persons_10"]
    data["refine"]["seeds"] = {"top1": {"1": 0.93}, "mean": 0.93, "sd": None}
    assert len(report.rows(data)) == len(full)
    rows = {row[0].split(":")[0]: row for row in report.rows(data)}
    assert rows["Live, 10 people at 30 Hz, onnxruntime"][3] == "not measured"
    assert rows["MSR Action3D top-1, seeds 1"][3] == "not measured (1 of 5 seeds)"
    # ... and from the file as measured: a verdict, met or missed, where the figure is there.
    for live in ("Live, 1 person at 30 Hz, onnxruntime", "Soak, "):
        assert any(name.startswith(live) and row[3] in ("met", "**missed**")
                   for name, row in full.items()), live


@pytest.mark.parametrize("missing", [
    "refine.savgol_ratio", "refine.clean_mean_offset_cm", "refine.label_change_one_spike",
    "refine.seeds.mean", "unknown.goal", "unknown.temperature",
    "unknown.at_goal_kept.foreign_unknown", "gpu_check.streaming", "schedule.capped.p50_ms",
    "live.persons_1.dropped_frames", "unknown.at_goal_kept_held_out.thresholds",
    "unknown.live.at_goal_kept.threshold", "gpu_check.failures"])
def test_the_report_says_not_measured_for_any_missing_figure(missing):
    """Each of these raised (TypeError, KeyError) instead of a row without the figure; a live
    phase without its drop count was marked missed for drops."""
    import report

    data = json.loads((Path(report.__file__).parent / "results.json").read_text())
    *keys, last = missing.split(".")
    section = data
    for key in keys:
        section = section[key]
    section[last] = None
    rows = report.rows(data)
    assert rows
    if missing == "live.persons_1.dropped_frames":
        [live] = [row for row in rows if row[0].startswith("Live, 1 person")]
        assert "(dropped)" not in live[3] and "drops not recorded" in live[3]
    if missing == "gpu_check.failures":
        [row] = [row for row in rows if row[0].startswith("GPU check")]
        assert row[3] == "not measured"
    if missing == "unknown.at_goal_kept.foreign_unknown":
        [row] = [row for row in rows if row[0].startswith("'unknown' (MSR model")]
        assert row[3] == "not measured"


def test_a_live_run_records_the_backend_the_recognizer_started_with():
    """soak and flood start backend auto: a fallback to torch was not recorded anywhere."""
    line = ("[INFO] [1.0] [prgcn_recognizer]: model m.safetensors: layout kinect20, 20 classes, "
            "window 96 frames resampled to 48, one person a sample, confidence temperature 0.49, "
            "device cpu, backend {}, 1 thread(s), at most 4 samples per pass; inputs "
            "(best_effort): /skeletons")
    assert livekit.started_backend(line.format("torch")) == "torch"
    assert livekit.started_backend(line.format(
        "onnxruntime (cached graph /x.onnx, max abs difference to torch 1e-06)")) == "onnxruntime"
    assert livekit.started_backend("no start-up line") is None


def test_the_report_prints_shares_as_percentages():
    import report

    data = json.loads((Path(report.__file__).parent / "results.json").read_text())
    spikes = data["refine"]["label_change_one_spike"]["default"]
    [row] = [row for row in report.rows(data) if row[0].startswith("One 0.5 m spike")]
    assert row[2] == f"{100 * spikes:.1f} %"
