"""Live latency and throughput: 1, 4, 10 and 20 people at 30 Hz through the running recognizer,
on each network backend (torch, onnxruntime).

    .venv/bin/python bench/live.py [--repeats 3] [--duration 12] [--quick] [--no-results]
                                   [--backends torch onnxruntime] [--persons 1 4 10 20]

One recognizer process (config/recognizer.yaml, as a user starts it), one skeleton source and
one action sink (bench/peers/), over real DDS on loopback. Each person replays a different
MSR Action3D recording, looped, at 30 Hz, stamped with the time of sending. The phases
follow each other, 1, 4, 10 and 20 people, in each run; between phases the source pauses long
enough for every track to time out and the diagnostics to settle. Per phase: latency of each
input (stamp -> first /action covering it) p50/p99 after a warm-up, dropped frames (not
buffered by the recognizer + never covered by an action; the recognizer's drop counters by
reason), /action rate. Figures are medians over the repeats (dropped frames: the sum).

Backends: one recognizer run per backend and repeat (the backend is a start-up parameter),
the backends alternating so load from other processes hits both alike. ``live.backends.<name>.
persons_N`` holds each backend's figures; ``live.persons_N`` repeats the default backend's (what
``backend: auto`` chooses here: onnxruntime on a CPU), so older readers keep working.

Writes "live" (and "meta") into bench/results.json; other keys are kept.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import livekit  # noqa: E402

PERSONS = (1, 4, 10, 20)
BACKENDS = ("torch", "onnxruntime")
RATE_HZ = 30.0
GAP_S = 2.5          # > track_timeout_s (1 s) + expiry period + two diagnostics periods
WARMUP_S = 2.0       # per phase, not measured


def scenario(repeats: int, duration_s: float, persons: tuple[int, ...] = PERSONS) -> dict:
    phases = [{"name": "warmup", "persons": 10, "rate_hz": RATE_HZ, "duration_s": 4.0,
               "stamps": "now", "late": "reanchor", "id_base": 100, "gap_after_s": GAP_S}]
    for r in range(repeats):
        for n in persons:
            phases.append({"name": f"persons_{n}_run{r}", "persons": n, "rate_hz": RATE_HZ,
                           "duration_s": duration_s, "stamps": "now", "late": "reanchor",
                           "id_base": 1000 * (len(phases) + 1), "gap_after_s": GAP_S})
    return {"topic": "/skeletons", "frame_id": "bench", "spacing_m": 1.2, "seed": 0,
            "recordings": [str(p) for p in livekit.msr_recordings(max(PERSONS + persons))],
            "phases": phases}


def one_phase(persons: int, duration_s: float) -> tuple[dict, str]:
    """The scenario's warm-up and one phase of ``persons`` people; (scenario, phase name)."""
    plan = scenario(1, duration_s, (persons,))
    name = f"persons_{persons}_run0"
    plan["phases"] = [p for p in plan["phases"] if p["name"] in ("warmup", name)]
    return plan, name


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """--repeats, --duration, --quick, --no-results (bench/schedule.py takes them too)."""
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--duration", type=float, default=12.0, help="seconds per phase")
    parser.add_argument("--quick", action="store_true", help="1 repeat of 6 s (smoke test)")
    parser.add_argument("--no-results", action="store_true", help="print only")


def parse_run_arguments(parser: argparse.ArgumentParser) -> argparse.Namespace:
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.duration = 1, 6.0
    return args


def profile(model: Path, duration_s: float, params: dict, persons: int = 10) -> int:
    plan, phase = one_phase(persons, duration_s)
    run = livekit.run_scenario("live_profile", plan, model, params, profile=True)
    figures = run.phase_figures(phase, WARMUP_S)
    print(json.dumps({f"persons_{persons} (under py-spy)": figures,
                      "profile": livekit.profile_summary(run.workdir / "profile.txt")},
                     indent=1))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_arguments(parser)
    parser.add_argument("--param", action="append", default=[], metavar="NAME:=VALUE",
                        help="recognizer parameter over config/recognizer.yaml (experiments; "
                             "recorded with the results)")
    parser.add_argument("--profile", action="store_true",
                        help="one phase (the first --persons count, default 10), sampled with "
                             "py-spy; prints where the recognizer's threads spend their time "
                             "(writes no results)")
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS),
                        help="network backends to run (default: both)")
    parser.add_argument("--persons", nargs="+", type=int, default=list(PERSONS),
                        help="people per phase (default: 1 4 10 20)")
    args = parse_run_arguments(parser)
    model, model_kind = livekit.model_file()
    params = dict(p.split(":=", 1) for p in args.param)
    if args.profile:
        return profile(model, args.duration, params,
                       args.persons[0] if args.persons != list(PERSONS) else 10)
    load_start = livekit.load_average()
    persons = tuple(args.persons)
    default = livekit.default_backend()
    backends = list(dict.fromkeys(args.backends))
    # One run per backend and repeat, alternating (start-up parameter); each run plays every
    # person count once.
    runs: dict[str, list[livekit.Run]] = {b: [] for b in backends}
    for r in range(args.repeats):
        for backend in (backends if r % 2 == 0 else backends[::-1]):
            runs[backend].append(livekit.run_scenario(
                f"live_{backend}", scenario(1, args.duration, persons), model,
                {**params, "backend": backend}))
    alive = all(run.alive for rs in runs.values() for run in rs)
    threads = next(run.torch_threads for rs in runs.values() for run in rs)
    out: dict = {
        "what": "SkeletonArray at 30 Hz with N people (MSR Action3D recordings, one per person, "
                "looped) -> prgcn-recognizer (config/recognizer.yaml) -> /action, three "
                "processes over DDS on loopback; latency = stamp of an input -> receipt of the "
                "first /action whose window for that person reaches it; persons_N: the default "
                f"backend ({default}), backends.<name>.persons_N: each backend",
        "date": livekit.today(), "machine": livekit.machine(),
        "load_average_start": load_start, "load_average_end": livekit.load_average(),
        "model": str(model.relative_to(livekit.REPO) if model.is_relative_to(livekit.REPO)
                     else model), "model_kind": model_kind,
        "torch_threads": threads, "threads": threads, "parameter_overrides": params,
        "default_backend": default, "repeats": args.repeats,
        "phase_s": args.duration, "warmup_s": WARMUP_S, "recognizer_alive": alive,
        "backends": {},
    }
    keys = ("p50_ms", "p99_ms", "dropped_frames", "inference_hz")
    summary: dict = {}
    for backend, backend_runs in runs.items():
        figures = {}
        for n in persons:
            per_run = [run.phase_figures(f"persons_{n}_run0", WARMUP_S) for run in backend_runs]
            figures[f"persons_{n}"] = {
                "p50_ms": livekit.median(r["p50_ms"] for r in per_run),
                "p99_ms": livekit.median(r["p99_ms"] for r in per_run),
                "dropped_frames": sum(r["dropped_frames"] for r in per_run),
                "inference_hz": livekit.median(r["inference_hz"] for r in per_run),
                "runs": per_run,
            }
        out["backends"][backend] = figures
        summary[backend] = {k: {f: v[f] for f in keys} for k, v in figures.items()}
    if default in out["backends"]:
        out.update(out["backends"][default])
    print(json.dumps({"live": summary, "default_backend": default,
                      "load_average": [load_start, out["load_average_end"]],
                      "model": model_kind}, indent=2))
    if not args.no_results:
        livekit.update_results({"live": out, **livekit.meta_update(threads)})
    return 0 if alive else 1

if __name__ == "__main__":
    sys.exit(main())
