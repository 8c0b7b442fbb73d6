"""prgcn-recognizer refuses to start, with one line naming the problem and a non-zero exit code,
on bad parameters and on missing, corrupt or mismatched model files."""
from __future__ import annotations

import json
import time

import pytest
from rosutil import make_tiny_model, recognizer_args, start_process, wait_for_exit

pytestmark = [pytest.mark.slow, pytest.mark.ros]


def corrupt(path):
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 3])
    return path


def wrong_classes(path):
    meta = path.with_suffix(".json")
    doc = json.loads(meta.read_text())
    doc["architecture"]["num_classes"] = 7
    meta.write_text(json.dumps(doc))
    return path


# name -> (how to spoil the model file or None, extra parameters, words the line must hold)
CASES = {
    # Every problem in one line (an unknown name alone is only warned about).
    "bad_parameters": (None, ["windoww:=10", "window:=0", "device:=tpu",
                              "input_reliability:=sometimes"],
                       ["window must be between 1 and", "device must be auto",
                        "input_reliability must be best_effort or reliable"]),
    # rclpy refuses them only when the node subscribes or publishes (a traceback there).
    "bad_topic_names": (None, ["skeleton_topic:=my skeletons", "action_topic:=action/"],
                        ["skeleton_topic 'my skeletons' is not a valid topic name",
                         "action_topic 'action/' is not a valid topic name (topic name must "
                         "not end with a forward slash)"]),
    # rcl reads the params file's 96 over a -p of another type: the program checks its argv.
    "value_of_another_type": (None, ["window:=64.0"], ["window must be int, got float 64.0"]),
    "missing_model": ("missing", [], ["missing"]),
    "corrupt_model": (corrupt, [], ["corrupt"]),
    "mismatched_model": (wrong_classes, [], ["do not match"]),
}


@pytest.fixture(scope="module")
def refusals(tmp_path_factory):
    """Start every bad configuration at once (start-up is mostly the torch import)."""
    procs = {}
    for name, (spoil, overrides, _) in CASES.items():
        folder = tmp_path_factory.mktemp(name)
        model = folder / "model.safetensors"
        if spoil == "missing":
            model = folder / "no_such_model.safetensors"
        else:
            make_tiny_model(model)
            if spoil is not None:
                spoil(model)
        procs[name] = (model, start_process(recognizer_args(model, *overrides),
                                            folder / "log.txt"))
    deadline = time.monotonic() + 120
    out = {}
    for name, (model, proc) in procs.items():
        out[name] = (model, *wait_for_exit(proc, max(0.0, deadline - time.monotonic())))
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_start_up_is_refused_with_one_line(refusals, case):
    model, code, log = refusals[case]
    assert code is not None, f"still running after 120 s:\n{log}"
    assert code != 0
    lines = [line for line in log.splitlines() if line.strip()]
    assert len(lines) == 1, log
    assert lines[0].startswith("prgcn-recognizer: ")
    for word in CASES[case][2]:
        assert word in lines[0], lines[0]
    if CASES[case][0] is not None:
        assert str(model) in lines[0]


@pytest.mark.parametrize("node", ["recognizer", "player"])
def test_a_params_file_that_does_not_open_is_one_line(tmp_path, node):
    """A params file given relative to another folder (the README's command run from where
    the model was trained): rclpy's traceback before, one line and status 2 now."""
    log = tmp_path / "log.txt"
    proc = start_process(["-m", f"prgcn_ros.nodes.{node}", "--ros-args", "--params-file",
                          "no_such_folder/recognizer.yaml"], log)
    code, text = wait_for_exit(proc, 120)
    lines = [line for line in text.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, text
    assert lines[0].startswith(f"prgcn-{node}: ") and "no_such_folder/recognizer.yaml" in lines[0]
    assert "working directory" in lines[0]
