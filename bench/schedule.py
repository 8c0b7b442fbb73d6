"""Pass scheduling at 10 and 20 people, 30 Hz: people per pass (max_batch), the per-person
rate cap (max_rate_hz) and inference threads, per network backend, side by side.

    .venv/bin/python bench/schedule.py [--repeats 3] [--duration 12] [--quick] [--no-results]
        [--backends onnxruntime torch] [--persons 10 20] [--max-batch 0 1000]
        [--max-rate-hz 60] [--threads 1 2]

Every setting (backend x max_batch x max_rate_hz x threads; all start-up parameters) is one
recognizer run per repeat, the settings alternating, with bench/live.py's phases of the given
person counts: the same recordings, rate, warm-up and latency definition. max_batch 0 is the
automatic value (4 per pass on a CPU), 1000 puts every person due into one pass. Per setting and
person count: p50/p99 latency, dropped frames, updates per person per second, medians over the
repeats; per backend and person count the setting with the lowest median p99 among those that
dropped no frame (``best``). The lead picks the shipped defaults from these on a quiet machine.

Writes "schedule" into bench/results.json (other keys are kept). ``schedule.capped`` and
``schedule.one_pass`` keep the earlier figures' meaning: the default backend, 10 people,
max_batch 0 against 1000 at the shipped rate cap.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import live  # noqa: E402
import livekit  # noqa: E402

FIGURES = ("p50_ms", "p99_ms", "max_ms", "inference_hz", "person_update_hz")


def setting_name(backend: str, max_batch: int, rate: float, threads: int = 1) -> str:
    name = f"{backend}.max_batch_{max_batch}.rate_{rate:g}"
    return name if threads == 1 else f"{name}.threads_{threads}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    live.add_run_arguments(parser)
    parser.add_argument("--backends", nargs="+", choices=live.BACKENDS,
                        default=[livekit.default_backend()],
                        help="network backends (default: what backend auto runs here)")
    parser.add_argument("--persons", nargs="+", type=int, default=[10, 20])
    parser.add_argument("--max-batch", nargs="+", type=int, default=[0, 1000],
                        help="people per pass (0: automatic, 4 on a CPU)")
    parser.add_argument("--max-rate-hz", nargs="+", type=float, default=[60.0],
                        help="per-person rate caps (the shipped value is 60)")
    parser.add_argument("--threads", nargs="+", type=int, default=[1],
                        help="inference threads (the shipped value is 1 on 2 cores)")
    args = live.parse_run_arguments(parser)
    model, model_kind = livekit.model_file()
    persons = tuple(args.persons)
    plan = live.scenario(1, args.duration, persons)
    settings = {setting_name(b, m, r, t): {"backend": b, "max_batch": m, "max_rate_hz": r,
                                           "threads": t}
                for b, m, r, t in itertools.product(args.backends, args.max_batch,
                                                    args.max_rate_hz, args.threads)}
    load_start = livekit.load_average()
    runs: dict[str, dict[int, list[dict]]] = {name: {n: [] for n in persons}
                                              for name in settings}
    alive = True
    order = list(settings)
    for repeat in range(args.repeats):
        for name in (order if repeat % 2 == 0 else order[::-1]):
            run = livekit.run_scenario(f"schedule_{name}", plan, model, settings[name])
            alive = alive and run.alive
            for n in persons:
                phase = f"persons_{n}_run0"
                figures = run.phase_figures(phase, live.WARMUP_S)
                figures["person_update_hz"] = round(
                    figures["inference_hz"] * _mean_people_per_action(run, phase) / n, 2)
                runs[name][n].append(figures)
                print(f"repeat {repeat} {name} {n} people: p50 {figures['p50_ms']} ms, p99 "
                      f"{figures['p99_ms']} ms, dropped {figures['dropped_frames']}, person "
                      f"updates {figures['person_update_hz']} Hz", file=sys.stderr, flush=True)
    out: dict = {
        "what": "N people at 30 Hz (bench/live.py's phases) through recognizer runs with "
                "different backend / max_batch / max_rate_hz / threads, alternating; medians "
                "over repeats",
        "date": livekit.today(), "machine": livekit.machine(), "model_kind": model_kind,
        "load_average_start": load_start, "load_average_end": livekit.load_average(),
        "repeats": args.repeats, "phase_s": args.duration, "recognizer_alive": alive,
        "settings": {}, "best": {},
    }
    for name, by_persons in runs.items():
        out["settings"][name] = {"parameters": settings[name]}
        for n, figures in by_persons.items():
            row = {key: livekit.median(f[key] for f in figures) for key in FIGURES}
            row["dropped_frames"] = sum(f["dropped_frames"] for f in figures)
            row["runs"] = figures
            out["settings"][name][f"persons_{n}"] = row
    for backend, n in itertools.product(args.backends, persons):
        rows = {name: out["settings"][name][f"persons_{n}"] for name in settings
                if settings[name]["backend"] == backend}
        clean = {k: r for k, r in rows.items()
                 if r["dropped_frames"] == 0 and r["p99_ms"] is not None}
        if clean:
            best = min(clean, key=lambda k: clean[k]["p99_ms"])
            out["best"][f"{backend}.persons_{n}"] = {"setting": settings[best],
                                                     "p99_ms": clean[best]["p99_ms"]}
    # The earlier layout: default backend, 10 people, automatic vs one pass.
    default, rate = livekit.default_backend(), 60.0
    capped, one = setting_name(default, 0, rate), setting_name(default, 1000, rate)
    if 10 in persons and capped in settings and one in settings:
        out["capped"] = out["settings"][capped]["persons_10"]
        out["one_pass"] = out["settings"][one]["persons_10"]
        for key in ("p50_ms", "p99_ms"):
            out[f"ratio_{key}_one_pass_over_capped"] = livekit.median(
                round(a[key] / b[key], 3) for a, b in zip(runs[one][10], runs[capped][10])
                if a[key] and b[key])
    summary = {name: {f"persons_{n}": {k: v for k, v in out["settings"][name][f"persons_{n}"]
                                       .items() if k != "runs"} for n in persons}
               for name in settings}
    print(json.dumps({"settings": summary, "best": out["best"]}, indent=2))
    for key in ("p50_ms", "p99_ms"):
        ratio = out.get(f"ratio_{key}_one_pass_over_capped")
        if ratio is not None:
            print(f"10 people, one pass of everyone / passes of max_batch, {key[:3]}: "
                  f"{ratio:.2f}x (median of neighbouring runs)")
    if not args.no_results:
        livekit.update_results({"schedule": out})
    return 0 if alive else 1


def _mean_people_per_action(run: livekit.Run, phase: str) -> float:
    """People per /action message received during the phase's measured part: from the end of
    its warm-up to its last input message, the span phase_figures counts inference_hz over."""
    index = run.phase_index(phase)
    start, _ = run.phase_span(index)
    last_pub = int(run.inputs["pub_ns"][run.messages(index)[-1]])
    a = run.actions
    inside = (a["recv_ns"] >= start + live.WARMUP_S * livekit.NS) & (a["recv_ns"] <= last_pub)
    messages = len(set(a["msg"][inside].tolist()))
    return float(inside.sum()) / max(messages, 1)


if __name__ == "__main__":
    sys.exit(main())
