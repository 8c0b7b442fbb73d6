"""tools/demo.py (make demo): its messages without data or model, a short run end to end with
a small model the tests make, and one with the shipped model (live labels as the evaluation's)."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from rosutil import REPO, make_tiny_model

pytestmark = pytest.mark.ros
DEMO = REPO / "tools" / "demo.py"


def run_demo(*args: str, env: dict[str, str] | None = None, timeout: float = 300):
    return subprocess.run([sys.executable, str(DEMO), *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def msr_tiny(tmp_path_factory) -> Path:
    """A small model of MSR Action3D's classes, made once for the module's demo runs. The
    end-to-end run starts on this very file (its recognizer exports the ONNX graph beside it);
    the stop tests run on copies, with that graph when it is already there."""
    from prgcn_ros.skeleton.labels import MSR_ACTION3D_CLASSES

    return make_tiny_model(tmp_path_factory.mktemp("msr_tiny") / "msr.safetensors", window=48,
                           classes=list(MSR_ACTION3D_CLASSES))


def _copy(model: Path, folder: Path) -> Path:
    from prgcn_ros.model.backends import CACHE_DIR_NAME
    from prgcn_ros.model.io import metadata_path

    target = folder / model.name
    shutil.copy2(model, target)
    shutil.copy2(metadata_path(model), metadata_path(target))
    if (model.parent / CACHE_DIR_NAME).is_dir():
        shutil.copytree(model.parent / CACHE_DIR_NAME, folder / CACHE_DIR_NAME)
    return target


def test_without_data_the_demo_says_where_it_looked(tmp_path):
    result = run_demo(env={"PRGCN_DATA": str(tmp_path / "nowhere")})
    assert result.returncode == 2
    assert str(tmp_path / "nowhere" / "msr_action3d") in result.stderr
    assert "PRGCN_DATA" in result.stderr


def test_without_the_model_the_demo_says_which_file(data_dir, tmp_path):
    result = run_demo("--model", str(tmp_path / "none.safetensors"))
    assert result.returncode == 2
    assert str(tmp_path / "none.safetensors") in result.stderr and "missing" in result.stderr


def test_a_model_of_other_classes_is_refused_with_one_line(data_dir, tiny_model):
    """The demo scores MSR Action3D clips: a model of other classes would score nonsense."""
    result = run_demo("--model", str(tiny_model))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "has other classes" in result.stderr and "prgcn-eval" in result.stderr


@pytest.mark.slow
def test_a_short_demo_runs_end_to_end(data_dir, tmp_path, msr_tiny):
    model = msr_tiny                   # a first start: the recognizer exports its graph
    figure = tmp_path / "demo.png"
    result = run_demo("--model", str(model), "--clips-per-action", "1", "--rate", "6",
                      "--figure", str(figure))
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "20 held-out MSR Action3D clips" in out
    for name in ("a01_s02_e01", "a20_s02_e01"):   # one row per clip
        assert sum(line.split()[1:2] == [name] or line.split()[:1] == [name]
                   for line in out.splitlines()) == 1, out
    assert "live accuracy" in out and "offline accuracy" in out and "p99" in out
    assert "live == offline   20 of 20 clips" in out
    assert figure.stat().st_size > 10_000


def test_the_demo_with_the_shipped_model_labels_live_as_the_evaluation_does(data_dir, tmp_path):
    """The demo's claim with the model it ships: each clip's live label (its last /action,
    the whole clip seen) is the one the evaluation code gives it. A small untrained model
    gives most clips one answer, so agreement with it shows little."""
    from prgcn_ros.model.io import resolve_model
    model = _copy(resolve_model("msr_action3d"), tmp_path)   # its ONNX graph goes beside it
    result = run_demo("--model", str(model), "--clips-per-action", "1", "--rate", "6",
                      "--figure", str(tmp_path / "demo.png"))
    assert result.returncode == 0, result.stdout + result.stderr
    # Rows: mark (2), clip (13), true action (22), live (22), confidence (5), 2, offline (22).
    rows = [line for line in result.stdout.splitlines()
            if line[2:3] == "a" and line[3:5].isdigit()]
    assert len(rows) == 20, result.stdout
    live = [row[37:59].strip() for row in rows]
    offline = [row[66:88].strip() for row in rows]
    assert live == offline, result.stdout
    assert len(set(live)) >= 15, result.stdout      # the answers differ as the actions do
    assert "live == offline   20 of 20 clips" in result.stdout


def test_bad_options_and_an_existing_bag_are_one_line_not_a_traceback(data_dir, tmp_path):
    result = run_demo("--clips-per-action", "-1")
    assert result.returncode == 2 and "must be 0 or more" in result.stderr
    result = run_demo("--rate", "inf")      # the player refused it after the start-up
    assert result.returncode == 2 and "must be a number above 0" in result.stderr
    existing = tmp_path / "bag"
    existing.mkdir()
    result = run_demo("--clips-per-action", "1", "--write-bag", str(existing))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert str(existing) in result.stderr


def test_data_without_its_file_list_names_the_file(tmp_path):
    (tmp_path / "msr_action3d").mkdir()
    result = run_demo(env={"PRGCN_DATA": str(tmp_path)})
    assert result.returncode == 2
    assert "files_used_in_cvpr12_paper.txt" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("how", ["ctrl_c", "sigterm"])
def test_a_demo_stopped_midway_stops_its_processes_and_says_so(how, data_dir, tmp_path,
                                                                msr_tiny):
    """Ctrl-C (SIGINT to the terminal's process group) or SIGTERM to the demo while clips
    play: its recognizer and player stop, and it says "interrupted", exit 130; it printed an
    rclpy traceback and exited 1."""
    model = _copy(msr_tiny, tmp_path)
    proc = subprocess.Popen([sys.executable, str(DEMO), "--model", str(model),
                             "--clips-per-action", "1", "--rate", "1", "--figure",
                             str(tmp_path / "demo.png")], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        for line in proc.stdout:          # the table's header: clips are being played
            if "recognised live" in line:
                break
        if how == "ctrl_c":
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, err
    assert "demo: interrupted" in err and "Traceback" not in err, err
    # Nothing of the session is left running (an exited grandchild may wait as a zombie for
    # init to reap it: not running).
    ps = subprocess.run(["ps", "-o", "stat=,args=", "-s", str(proc.pid)], capture_output=True,
                        text=True).stdout.splitlines()
    assert [line for line in ps if not line.strip().startswith("Z")] == [], ps
