"""Pass scheduling with 10 people at 30 Hz: passes of at most max_batch people (the automatic
default) against one pass of everyone, side by side.

    .venv/bin/python bench/schedule.py [--repeats 3] [--duration 12] [--quick] [--no-results]

The two settings alternate, one recognizer run each (max_batch is read at start-up), with the
10-person phase of bench/live.py: the same recordings, rate, warm-up and latency definition.
Per setting: p50/p99 latency, updates per person per second, medians over the repeats; the ratios
one-pass / capped are taken per repeat (neighbouring runs) and their median reported.

Writes "schedule" into bench/results.json; other keys are kept.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import live  # noqa: E402
import livekit  # noqa: E402

PERSONS = 10
# max_batch above the number of people: every person due goes into one pass.
SETTINGS = {"capped": {}, "one_pass": {"max_batch": 1000}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    live.add_run_arguments(parser)
    args = live.parse_run_arguments(parser)
    model, model_kind = livekit.model_file()
    plan, phase = live.one_phase(PERSONS, args.duration)
    load_start = livekit.load_average()
    runs: dict[str, list[dict]] = {name: [] for name in SETTINGS}
    for repeat in range(args.repeats):
        for name, params in SETTINGS.items():
            run = livekit.run_scenario(f"schedule_{name}", plan, model, params)
            figures = run.phase_figures(phase, live.WARMUP_S)
            figures["person_update_hz"] = round(
                figures["inference_hz"] * _mean_people_per_action(run, phase) / PERSONS, 2)
            runs[name].append(figures)
            print(f"repeat {repeat} {name}: p50 {figures['p50_ms']} ms, p99 "
                  f"{figures['p99_ms']} ms, person updates {figures['person_update_hz']} Hz",
                  file=sys.stderr, flush=True)
    out: dict = {
        "what": f"{PERSONS} people at 30 Hz (bench/live.py's phase): max_batch 0 (automatic) "
                "against max_batch 1000 (everyone in one pass), alternating recognizer runs",
        "date": livekit.today(), "machine": livekit.machine(), "model_kind": model_kind,
        "load_average_start": load_start, "load_average_end": livekit.load_average(),
        "repeats": args.repeats, "phase_s": args.duration,
    }
    for name, figures in runs.items():
        out[name] = {key: livekit.median(f[key] for f in figures)
                     for key in ("p50_ms", "p99_ms", "max_ms", "inference_hz",
                                 "person_update_hz")}
        out[name]["dropped_frames"] = sum(f["dropped_frames"] for f in figures)
        out[name]["runs"] = figures
    for key in ("p50_ms", "p99_ms"):
        out[f"ratio_{key}_one_pass_over_capped"] = livekit.median(
            round(one[key] / capped[key], 3)
            for one, capped in zip(runs["one_pass"], runs["capped"]))
    summary = {name: {k: v for k, v in out[name].items() if k != "runs"} for name in SETTINGS}
    summary.update({k: v for k, v in out.items() if k.startswith("ratio_")})
    print(json.dumps(summary, indent=2))
    if not args.no_results:
        livekit.update_results({"schedule": out})
    return 0


def _mean_people_per_action(run: livekit.Run, phase: str) -> float:
    """People per /action message received during the phase's measured part."""
    start, _ = run.phase_span(run.phase_index(phase))
    a = run.actions
    inside = a["recv_ns"] >= start + live.WARMUP_S * livekit.NS
    messages = len(set(a["msg"][inside].tolist()))
    return float(inside.sum()) / max(messages, 1)


if __name__ == "__main__":
    sys.exit(main())
