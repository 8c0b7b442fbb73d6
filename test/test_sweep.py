"""tools/sweep.py: variants over seeds in parallel processes, results as they finish, a deadline."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from test_training_util import MSR_CONFIG, REPO, require_data

SWEEP = REPO / "tools" / "sweep.py"
# One epoch on one training subject, tested on another: a few seconds a run.
QUICK = ["optim.epochs=1", "data.train_subjects=[1]", "data.test_subjects=[2]",
         "calibration.cross_fit=null"]


def run_sweep(tmp_path, plan: list[dict], *args: str, status: int = 0
              ) -> tuple[list[dict], str]:
    (tmp_path / "plan.yaml").write_text(json.dumps(plan))          # JSON is YAML
    done = subprocess.run([sys.executable, str(SWEEP), "--plan", str(tmp_path / "plan.yaml"),
                           "--out", str(tmp_path / "out"), "--device", "cpu", *args],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == status, done.stderr
    lines = (tmp_path / "out" / "results.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines], done.stdout


@pytest.mark.slow
def test_sweep_trains_each_variant_over_its_values(tmp_path):
    require_data()
    plan = [{"name": "quick", "config": str(MSR_CONFIG), "set": QUICK,
             "over": {"seed": [1, 2]}},
            {"name": "no_tam", "config": str(MSR_CONFIG),
             "set": [*QUICK, "model.use_tam=false"], "over": {"seed": [1]}},
            {"name": "tuned", "config": str(MSR_CONFIG), "set": QUICK, "over": {"seed": [1]},
             "init": "msr_action3d"}]
    results, table = run_sweep(tmp_path, plan, "--workers", "2")
    assert sorted((r["variant"], r["seed"]) for r in results) == [
        ("no_tam", 1), ("quick", 1), ("quick", 2), ("tuned", 1)]
    for r in results:
        assert r["status"] == "done", r
        meta = json.loads((tmp_path / "out" / r["variant"] / f"seed-{r['seed']}" /
                           "model.json").read_text())
        assert meta["training"]["seed"] == r["seed"]
        assert meta["architecture"]["use_tam"] == (r["variant"] != "no_tam")
        assert bool(meta["training"]["init"]) == (r["variant"] == "tuned")
        assert meta["accuracy"]["top1"] == r["top1"]
    assert "quick" in table and "no_tam" in table
    # --init reached the run: one epoch from the shipped model keeps its accuracy on subject
    # 2, one epoch from scratch is far from it.
    top1 = {(r["variant"], r["seed"]): r["top1"] for r in results}
    assert top1[("tuned", 1)] > max(top1[("quick", 1)], top1[("quick", 2)]) + 0.3, top1


def test_sweep_stops_at_its_deadline(tmp_path):
    require_data()
    plan = [{"name": "long", "config": str(MSR_CONFIG), "set": ["optim.epochs=50"],
             "over": {"seed": [1, 2]}}]
    results, _ = run_sweep(tmp_path, plan, "--workers", "1", "--deadline-s", "2")
    assert [r["status"] for r in results] == ["stopped at the deadline",
                                              "not started before the deadline"]


@pytest.mark.parametrize("plan, words", [
    ({"name": "x"}, "expected a list of variants"),
    ([{"name": "x", "config": "c.yaml", "set": "optim.epochs=1"}], "set: must be a list"),
    ([{"name": "x"}], "needs a name and a config"),
    ([{"name": "x", "config": "c.yaml", "over": {"seed": 1}}], "over: must be one key"),
    ([{"name": "x", "config": "c.yaml", "over": {"seed": [1, 1]}}], "would train in one folder"),
    ([{"name": "x", "config": "c.yaml"}, {"name": "x", "config": "d.yaml"}],
     "would train in one folder"),
])
def test_a_malformed_plan_is_one_line(tmp_path, plan, words):
    (tmp_path / "plan.yaml").write_text(json.dumps(plan))
    done = subprocess.run([sys.executable, str(SWEEP), "--plan", str(tmp_path / "plan.yaml"),
                           "--out", str(tmp_path / "out")], capture_output=True, text=True,
                          timeout=60, cwd=REPO)
    assert done.returncode != 0 and words in done.stderr and "Traceback" not in done.stderr
    done = subprocess.run([sys.executable, str(SWEEP), "--plan", str(tmp_path / "plan.yaml"),
                           "--out", str(tmp_path / "out"), "--workers", "0"],
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 2 and "--workers must be at least 1" in done.stderr


@pytest.mark.slow
def test_a_second_sweep_keeps_finished_runs_and_a_failed_run_fails_it(tmp_path):
    """The same plan again lists its finished runs without training them (it trained them
    again from scratch, and a deadline left the old model beside a new log); a null value
    reaches the run as null (it came as the string 'None' and failed); a failed run makes
    the exit status 1 (always 0 before)."""
    require_data()
    plan = [{"name": "quick", "config": str(MSR_CONFIG), "set": QUICK,
             "over": {"optim.grad_clip": [None]}}]
    first, _ = run_sweep(tmp_path, plan)
    assert [r["status"] for r in first] == ["done"], first
    again, _ = run_sweep(tmp_path, plan)
    assert again[1]["status"].startswith("done by an earlier sweep")
    assert again[1]["top1"] == first[0]["top1"] and again[1]["sweep"] != first[0]["sweep"]
    # The same folder for another recipe: trained, not the earlier recipe's model listed.
    plan[0]["set"] = [*QUICK, "model.use_tam=false"]
    other, _ = run_sweep(tmp_path, plan)
    assert other[-1]["status"] == "done"
    meta = json.loads((tmp_path / "out" / "quick" / "optim_grad_clip-null" /
                       "model.json").read_text())
    assert meta["architecture"]["use_tam"] is False
    broken = [{"name": "broken", "config": str(MSR_CONFIG), "set": ["optim.no_such=1"]}]
    results, _ = run_sweep(tmp_path, broken, status=1)
    assert results[-1]["status"].startswith("failed")


def sweep_tool():
    import importlib.util

    spec = importlib.util.spec_from_file_location("sweep_tool", SWEEP)
    sweep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sweep)
    return sweep


def test_run_folders_name_list_values_without_quotes_spaces_or_slashes(tmp_path):
    """A folder a shell can type: lists (cross-fit groups too), null and paths as values."""
    plan = [{"name": "cal", "config": "c.yaml", "over": {"calibration.cross_fit": [
        ["s01s03", "s02s04"], [[1, 3], [2, 4]], None]}},
            {"name": "data", "config": "c.yaml", "over": {"data.dir": ["/data/my set"]}}]
    folders = [job["dir"].relative_to(tmp_path) for job in sweep_tool().jobs_of(plan, tmp_path)]
    assert [str(f) for f in folders] == [
        "cal/calibration_cross_fit-s01s03+s02s04", "cal/calibration_cross_fit-1,3+2,4",
        "cal/calibration_cross_fit-null", "data/data_dir-_data_my_set"]


def test_a_stop_signal_while_a_run_starts_stops_that_run_too(tmp_path, monkeypatch):
    """SIGTERM delivered while subprocess.Popen starts a run (its process exists, Popen has
    not returned) raised there, and that run trained on, unlisted, with nobody to stop it."""
    import os
    import signal

    sweep = sweep_tool()
    started = []
    real_popen = subprocess.Popen

    def popen_then_signal(*args, **kwargs):
        proc = real_popen(*args, **kwargs)
        started.append(proc)
        os.kill(os.getpid(), signal.SIGTERM)     # its handler runs here, inside "Popen"
        return proc

    plan = tmp_path / "plan.yaml"
    plan.write_text(json.dumps([{"name": "long", "config": str(MSR_CONFIG),
                                 "set": ["optim.epochs=50"], "over": {"seed": [1, 2]}}]))
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    monkeypatch.setattr(sweep.subprocess, "Popen", popen_then_signal)
    try:
        status = sweep.main(["--plan", str(plan), "--out", str(tmp_path / "out"),
                             "--device", "cpu", "--workers", "1"])
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
        monkeypatch.undo()
        alive = [p for p in started if p.poll() is None]
        for proc in alive:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert status == 130 and len(started) == 1
    assert not alive, "the run started when the signal came was left running"
    rows = [json.loads(line) for line in
            (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert [r["status"] for r in rows] == ["stopped (the sweep was interrupted)",
                                           "not started (the sweep was interrupted)"]


def test_sigterm_stops_the_sweep_and_its_runs(tmp_path):
    """SIGTERM (or Ctrl-C) on the sweep stops its runs, which live in sessions of their own,
    and lists them; they went on training before, with nobody to record them."""
    import signal
    import time

    import psutil

    require_data()
    plan = [{"name": "long", "config": str(MSR_CONFIG), "set": ["optim.epochs=50"],
             "over": {"seed": [1, 2]}}]
    (tmp_path / "plan.yaml").write_text(json.dumps(plan))
    sweep = subprocess.Popen([sys.executable, str(SWEEP), "--plan", str(tmp_path / "plan.yaml"),
                              "--out", str(tmp_path / "out"), "--device", "cpu",
                              "--workers", "1"], stdout=subprocess.PIPE, text=True, cwd=REPO)
    log = tmp_path / "out" / "long" / "seed-1" / "train.log"
    deadline = time.monotonic() + 120
    while not log.is_file() and time.monotonic() < deadline:
        time.sleep(0.1)
    runs = [p for p in psutil.Process(sweep.pid).children()]
    assert runs, "no run started"
    sweep.send_signal(signal.SIGTERM)
    assert sweep.wait(timeout=60) == 130
    gone, alive = psutil.wait_procs(runs, timeout=30)
    assert not alive, alive
    rows = [json.loads(line) for line in
            (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert [r["status"] for r in rows] == ["stopped (the sweep was interrupted)",
                                           "not started (the sweep was interrupted)"]
