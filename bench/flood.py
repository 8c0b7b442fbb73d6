"""Flood: SkeletonArray at 1,000 Hz for 10 s into the recognizer, then ordinary input again.

    .venv/bin/python bench/flood.py [--persons 4] [--rate 1000] [--seconds 10] [--no-results]

Three phases over real DDS: 3 s at 30 Hz (the baseline), the flood (every message stamped
with the time it is sent, as fast as the schedule asks), and, after a pause longer than the
track timeout, 5 s at 30 Hz with new people. Reported: whether the recognizer process is alive
afterwards and still labels the new people (``alive``); drops by reason from its /diagnostics
counters, plus messages that never reached it (DDS queue overflow); the latency of the frames
it kept (those its documented rule keeps: at least 1/max_input_hz after the previous kept one;
checked against its own count) and of every flood frame to the first /action covering it.

Writes "flood" (and "meta") into bench/results.json; other keys are kept.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import livekit  # noqa: E402

GAP_S = 2.5


def max_input_hz() -> float:
    params = yaml.safe_load(livekit.PARAMS_FILE.read_text())
    return float(params["/**"]["ros__parameters"]["max_input_hz"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=4, help="people in every message")
    parser.add_argument("--rate", type=float, default=1000.0, help="flood rate in Hz")
    parser.add_argument("--seconds", type=float, default=10.0, help="flood duration")
    parser.add_argument("--no-results", action="store_true", help="print only")
    args = parser.parse_args()
    model, model_kind = livekit.model_file()
    n = args.persons
    steady = {"persons": n, "rate_hz": 30.0, "stamps": "now", "late": "reanchor",
              "gap_after_s": GAP_S}
    scenario = {
        "topic": "/skeletons", "frame_id": "bench", "spacing_m": 1.2, "seed": 2,
        "recordings": [str(p) for p in livekit.msr_recordings(n)],
        "phases": [{**steady, "name": "before", "duration_s": 3.0, "id_base": 1000},
                   {"name": "flood", "persons": n, "rate_hz": args.rate,
                    "duration_s": args.seconds, "stamps": "now", "late": "catchup",
                    "id_base": 2000, "gap_after_s": GAP_S},
                   {**steady, "name": "after", "duration_s": 5.0, "id_base": 3000}]}
    load_start = livekit.load_average()
    run = livekit.run_scenario("flood", scenario, model)
    limit = max_input_hz()
    flood = run.phase_figures("flood", 0.0, max_input_hz=limit)
    after = run.phase_figures("after", 1.0)
    before = run.phase_figures("before", 1.0)
    people_after = set(run.person_frames(run.phase_index("after"))[1].tolist())
    labelled_after = people_after & set(run.actions["person"].tolist())
    answering = len(labelled_after) == len(people_after) == n and \
        after["uncovered_person_frames"] == 0
    t_flood = run.phase_span(run.phase_index("flood"))
    rss = {name: round(float(run.rss_at(t)) / 2**20, 1)
           for name, t in (("before_flood", t_flood[0]), ("after_flood", t_flood[1]),
                           ("end", run.extra["end_ns"]))}
    out = {
        "what": f"{n} people per message at {args.rate:g} Hz for {args.seconds:g} s (stamped "
                f"when sent), between 30 Hz phases; recognizer max_input_hz {limit:g}",
        "date": livekit.today(), "machine": livekit.machine(),
        "load_average_start": load_start, "load_average_end": livekit.load_average(),
        "model_kind": model_kind, "backend": run.backend, "torch_threads": run.torch_threads,
        "alive": bool(run.alive and answering),
        "process_alive": run.alive, "labels_after_flood": answering,
        "persons": n, "flood_input_hz": flood["input_hz"], "flood_seconds": args.seconds,
        "flood_messages": flood["published_messages"],
        "dropped_by_reason": flood["dropped_by_reason"],
        "not_received_messages": flood["not_received_messages"],
        "kept_messages_by_rule": flood["kept_messages_by_rule"],
        "kept_messages_by_node": flood["kept_messages_by_node"],
        "kept_latency_p50_ms": flood["kept_p50_ms"], "kept_latency_p99_ms": flood["kept_p99_ms"],
        "kept_latency_max_ms": flood["kept_max_ms"],
        "all_latency_p50_ms": flood["p50_ms"], "all_latency_p99_ms": flood["p99_ms"],
        "node_latency_p99_ms": flood["node_latency_p99_ms"],
        "inference_hz": flood["inference_hz"],
        "recognizer_cpu_pct": flood["recognizer_cpu_pct"],
        "before": {k: before[k] for k in ("p50_ms", "p99_ms", "inference_hz", "dropped_frames")},
        "after": {k: after[k] for k in ("p50_ms", "p99_ms", "inference_hz", "dropped_frames",
                                        "dropped_by_reason")},
        "rss_mb": rss,
    }
    print(json.dumps(out, indent=2))
    if not args.no_results:
        livekit.update_results({"flood": out, **livekit.meta_update(run.torch_threads)})
    return 0 if out["alive"] else 1


if __name__ == "__main__":
    sys.exit(main())
