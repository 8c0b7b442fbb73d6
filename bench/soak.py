"""Soak: resident memory of the recognizer over 100,000 input frames with people coming and going.

    .venv/bin/python bench/soak.py [--frames 100000] [--quick] [--no-results]

An input frame is one person's skeleton in one SkeletonArray message (a person-frame): a
message with 7 people is 7 frames. Ten places in the scene; in each, a person (a real MSR
Action3D recording, looped) stays 4-10 s, leaves for 1.5-3 s (longer than the recognizer's
1 s track timeout, so the track ends and its ring buffer slot is freed), then a new person
with a new id takes the place; every 4th person comes without an id (-1) and is tracked by
nearest-neighbour association. Messages go out at 100 Hz (stamped on a 10 ms schedule, within
the recognizer's max_input_hz) so the 100,000 frames take about two minutes.

The recognizer's RSS is sampled every 0.25 s (psutil) and placed by the frames sent so far;
``rss_growth_pct`` = median RSS over the last tenth of the frames after a warm-up of the first
10 % vs the median over the first tenth after it. Goal: <= 5 %.

Writes "soak" (and "meta") into bench/results.json; other keys are kept.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import livekit  # noqa: E402

SLOTS = 10
RATE_HZ = 100.0
CHURN = {"present_s": [4.0, 10.0], "absent_s": [1.5, 3.0], "unknown_id_every": 4}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100_000, help="person-frames to send")
    parser.add_argument("--quick", action="store_true", help="10,000 frames (smoke test)")
    parser.add_argument("--no-results", action="store_true", help="print only")
    args = parser.parse_args()
    if args.quick:
        args.frames = 10_000
    warmup = args.frames // 10
    model, model_kind = livekit.model_file()
    scenario = {
        "topic": "/skeletons", "frame_id": "bench", "spacing_m": 1.5, "seed": 1,
        "recordings": [str(p) for p in livekit.msr_recordings(40)],
        "phases": [{"name": "soak", "persons": SLOTS, "rate_hz": RATE_HZ,
                    "person_frames": args.frames, "stamps": "scheduled", "late": "catchup",
                    "id_base": 1_000_000, "churn": CHURN, "gap_after_s": 0.0}]}
    load_start = livekit.load_average()
    run = livekit.run_scenario("soak", scenario, model)
    s = run.samples
    memory = livekit.rss_growth(s["t_ns"], s["rss"], run.inputs["pub_ns"],
                                 run.inputs["people_ptr"][1:] - run.inputs["people_ptr"][:-1],
                                 warmup)
    figures = run.phase_figures("soak", 0.0)
    end = run.diagnostics[-1][1] if run.diagnostics else {}
    phase = run.phases[0]
    out = {
        "what": "100,000 person-frames (one person's skeleton in one message) at 100 Hz, 10 "
                "places with people coming (4-10 s) and going (1.5-3 s, > track timeout), "
                "every 4th without an id; recognizer RSS sampled every 0.25 s",
        "date": livekit.today(), "machine": livekit.machine(),
        "load_average_start": load_start, "load_average_end": livekit.load_average(),
        "model_kind": model_kind, "backend": run.backend, "torch_threads": run.torch_threads,
        **memory,
        "person_frames": int(phase["person_frames_sent"]), "messages": int(phase["messages"]),
        "warmup_person_frames": warmup, "duration_s": phase["elapsed_s"],
        "input_hz": phase["achieved_hz"], "people_started": phase["people_started"],
        "tracks_started": int(end.get("tracks_started", 0)),
        "tracks_expired": int(end.get("tracks_expired", 0)),
        "recognizer_alive": run.alive,
        "latency_p50_ms": figures["p50_ms"], "latency_p99_ms": figures["p99_ms"],
        "dropped_frames": figures["dropped_frames"],
        "dropped_by_reason": figures["dropped_by_reason"],
        "not_received_messages": figures["not_received_messages"],
        "inference_hz": figures["inference_hz"],
        "rss_samples_mb": [round(float(x) / 2**20, 1) for x in s["rss"][:: max(1, len(s["rss"])
                                                                              // 60)]],
    }
    print(json.dumps({k: v for k, v in out.items() if k != "rss_samples_mb"}, indent=2))
    if not args.no_results:
        livekit.update_results({"soak": out, **livekit.meta_update(run.torch_threads)})
    return 0 if run.alive else 1


if __name__ == "__main__":
    sys.exit(main())
