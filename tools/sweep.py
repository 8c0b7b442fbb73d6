#!/usr/bin/env python3
"""Train variants of a recipe over seeds (or folds) in parallel processes, before a deadline.

    python tools/sweep.py --plan PLAN.yaml --out runs/sweep [--workers 4] [--device auto]
                   [--deadline-s 3600] [--results FILE.jsonl]

PLAN.yaml lists variants, run in order (the first ones finish first when the deadline cuts):

    - name: base
      config: config/train_msr_action3d.yaml
      set: ["optim.epochs=100"]              # prgcn-train --set overrides (optional)
      over: {seed: [1, 2, 3, 4, 5]}          # one run per value (any config key)
      init: msr_action3d                     # prgcn-train --init: fine-tune (optional)

Each run is ``prgcn-train --no-progress`` writing under OUT/NAME/KEY-VALUE/; its summary (test
top-1, training time) is appended to the results file as it finishes, and a table of mean +- sd
per variant is printed at the end. Runs still going at the deadline are stopped and listed as
such. A run whose folder holds a finished model from an earlier sweep is not trained again
(its figure is listed; --rerun trains it again). Each results row names the sweep that wrote
it (``sweep``: its start). Ctrl-C or SIGTERM stops the runs going and lists them. The exit
status is 1 when a run failed. Several runs share one GPU well: each is small and spends most
of its time launching kernels.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml


def variant_problem(variant: object) -> str | None:
    """What is wrong with one plan entry, or None."""
    if not isinstance(variant, dict):
        return "not a mapping"
    if not (variant.get("name") and variant.get("config")):
        return "needs a name and a config"
    sets = variant.get("set", [])
    if not (isinstance(sets, list) and all(isinstance(x, str) and "=" in x for x in sets)):
        return "set: must be a list of KEY=VALUE strings"
    over = variant.get("over", {"seed": [1]})
    if not (isinstance(over, dict) and len(over) == 1
            and isinstance(next(iter(over.values())), list)):
        return "over: must be one key with a list of values"
    return None


def check_plan(plan: object, where: Path) -> list[dict]:
    """The plan's variants, or SystemExit with one line saying what is wrong."""
    if not isinstance(plan, list) or not plan:
        raise SystemExit(f"sweep: {where}: expected a list of variants (see the top of "
                         f"tools/sweep.py)")
    for i, variant in enumerate(plan):
        problem = variant_problem(variant)
        if problem:
            name = variant.get("name") if isinstance(variant, dict) else None
            raise SystemExit(f"sweep: {where}: variant {i + 1} ({name or '?'}): {problem}")
    return plan


def folder_text(value: object, depth: int = 0) -> str:
    """A value as part of a run folder's name, without quotes, spaces or slashes: ``[1, 3]``
    is ``1+3``, ``[[1, 3], [2, 4]]`` is ``1,3+2,4``, ``None`` is ``null``."""
    if isinstance(value, list):
        return ("+" if depth == 0 else ",").join(folder_text(v, depth + 1) for v in value)
    text = json.dumps(value) if value is None or isinstance(value, bool) else str(value)
    return re.sub(r"[\s/]+", "_", text)


def jobs_of(plan: list[dict], out: Path) -> list[dict]:
    """One job per variant and value; SystemExit when two would share a run folder."""
    jobs, seen = [], {}
    for variant in plan:
        (key, values), = variant.get("over", {"seed": [variant.get("seed", 1)]}).items()
        for value in values:
            run_dir = out / variant["name"] / f"{key.replace('.', '_')}-{folder_text(value)}"
            if run_dir in seen:
                raise SystemExit(f"sweep: {variant['name']} {key}={value} and {seen[run_dir]} "
                                 f"would train in one folder, {run_dir}: names and values "
                                 f"must differ")
            seen[run_dir] = f"{variant['name']} {key}={value}"
            # JSON is YAML: null, strings and lists reach --set as written in the plan.
            jobs.append({"variant": variant["name"], "config": variant["config"],
                         "set": [*variant.get("set", []), f"{key}={json.dumps(value)}"],
                         "key": key, "value": value, "dir": run_dir,
                         "init": variant.get("init")})
    return jobs


def job_spec(job: dict) -> dict:
    """What a run trains: its config, overrides and start (kept in its folder as job.json)."""
    return {"config": str(job["config"]), "set": job["set"], "init": job.get("init")}


def finished_model(job: dict) -> dict | None:
    """The metadata of the model a run of this very job (job.json) already wrote, or None."""
    try:
        if json.loads((job["dir"] / "job.json").read_text()) != job_spec(job):
            return None
        meta = json.loads((job["dir"] / "model.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return meta if (job["dir"] / "model.safetensors").is_file() else None


def command(job: dict, device: str) -> list[str]:
    cmd = [sys.executable, "-m", "prgcn_ros.training.train", "--config", job["config"],
           "--out-dir", str(job["dir"]), "--output", str(job["dir"] / "model.safetensors"),
           "--no-progress", "--device", device]
    for item in job["set"]:
        cmd += ["--set", item]
    if job.get("init"):
        cmd += ["--init", str(job["init"])]
    return cmd


def summary(results: list[dict]) -> str:
    lines = [f"{'variant':28s} {'runs':>4s} {'top-1 mean':>10s} {'sd':>6s}  per run"]
    for name in dict.fromkeys(r["variant"] for r in results):
        top1 = [r["top1"] for r in results if r["variant"] == name and r.get("top1") is not None]
        if not top1:
            continue
        sd = statistics.stdev(top1) if len(top1) > 1 else 0.0
        runs = " ".join(f"{100 * t:.1f}" for t in top1)
        lines.append(f"{name:28s} {len(top1):4d} {100 * statistics.mean(top1):10.2f} "
                     f"{100 * sd:6.2f}  {runs}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--workers", type=int, default=max((os.cpu_count() or 2) - 1, 1))
    parser.add_argument("--device", default="auto", help="each run's --device")
    parser.add_argument("--deadline-s", type=float, default=float("inf"))
    parser.add_argument("--results", type=Path, help="default: OUT/results.jsonl")
    parser.add_argument("--rerun", action="store_true",
                        help="train runs again whose folder holds a finished model")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    try:
        plan = check_plan(yaml.safe_load(args.plan.read_text()), args.plan)
    except (OSError, yaml.YAMLError) as error:
        raise SystemExit(f"sweep: {args.plan}: {error}") from None
    queue = jobs_of(plan, args.out)
    results_path = args.results or args.out / "results.jsonl"
    results_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    start = time.monotonic()
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    running: list[tuple[dict, subprocess.Popen, float]] = []    # job, its process, start
    results: list[dict] = []

    def record(job: dict, entry: dict) -> None:
        entry = {"variant": job["variant"], job["key"]: job["value"], "set": job["set"],
                 "dir": str(job["dir"]), "sweep": started, **entry}
        results.append(entry)
        with results_path.open("a") as f:
            f.write(json.dumps(entry) + "\n")
        print(json.dumps(entry), flush=True)

    stop: list[int] = []

    def note_stop(signum, frame) -> None:
        # Only noted: raised inside subprocess.Popen, the stop would leave the run being
        # started alive and unlisted, with nobody to stop it. run_queue stops between steps.
        stop.append(signum)

    signal.signal(signal.SIGTERM, note_stop)
    signal.signal(signal.SIGINT, note_stop)
    interrupted = False
    try:
        run_queue(queue, running, record, args, env, start, stop)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        # The runs are in sessions of their own (a deadline stops each with its children):
        # a Ctrl-C on the sweep does not reach them, so they are stopped here.
        for job, proc, began in running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()
            record(job, {"status": "stopped (the sweep was interrupted)",
                         "wall_s": round(time.monotonic() - began, 1)})
        for job in queue:
            record(job, {"status": "not started (the sweep was interrupted)"})
    print(summary(results))
    if interrupted:
        return 130
    return 1 if any(r["status"].startswith("failed") for r in results) else 0


def run_queue(queue: list[dict], running: list, record, args, env: dict, start: float,
              stop: list[int]) -> None:
    """Start, watch and record the jobs, ``args.workers`` at a time, until the queue is done
    or the deadline passed (``running`` is kept current: the caller stops what is left).
    KeyboardInterrupt as soon as ``stop`` holds a signal, never inside a step."""
    while queue or running:
        if stop:
            raise KeyboardInterrupt
        late = time.monotonic() - start > args.deadline_s
        while queue and len(running) < args.workers and not late and not stop:
            job = queue.pop(0)
            done = None if args.rerun else finished_model(job)
            if done is not None:
                record(job, {"status": "done by an earlier sweep (--rerun trains it again)",
                             "top1": (done.get("accuracy") or {}).get("top1"),
                             "model": str(job["dir"] / "model.safetensors")})
                continue
            for old in ("model.safetensors", "model.json"):
                (job["dir"] / old).unlink(missing_ok=True)
            job["dir"].mkdir(parents=True, exist_ok=True)
            (job["dir"] / "job.json").write_text(json.dumps(job_spec(job)))
            with (job["dir"] / "train.log").open("w") as log:     # the child keeps its own fd
                proc = subprocess.Popen(command(job, args.device), stdout=subprocess.PIPE,
                                        stderr=log, text=True, env=env, start_new_session=True)
            running.append((job, proc, time.monotonic()))
        for item in list(running):
            job, proc, began = item
            if proc.poll() is None:
                if late:
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait()
                    record(job, {"status": "stopped at the deadline",
                                 "wall_s": round(time.monotonic() - began, 1)})
                    running.remove(item)
                continue
            running.remove(item)
            out = proc.stdout.read().strip().splitlines()
            try:
                done = json.loads(out[-1])
                accuracy = done.get("accuracy") or {}
                record(job, {"status": "done", "top1": accuracy.get("top1"),
                             "train_time_s": round(done["train_time_s"], 1),
                             "wall_s": round(time.monotonic() - began, 1),
                             "model": done["model"]})
            except (IndexError, KeyError, json.JSONDecodeError):
                record(job, {"status": f"failed (exit {proc.returncode}, see train.log)"})
        if late and queue:
            for job in queue:
                record(job, {"status": "not started before the deadline"})
            queue.clear()
        time.sleep(0.5)


if __name__ == "__main__":
    sys.exit(main())
