"""The shipped models reach their goals on their datasets' standard protocols (issue 12),
evaluated here with `prgcn-eval --model NAME --json`, as the README's table says to reproduce
them; the figure in each model's metadata must be the one the evaluation gives."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml
from test_training_util import REPO

from prgcn_ros import paths
from prgcn_ros.model.io import read_metadata

# name: (dataset folder, goal top-1 on the standard protocol, test clips)
GOALS = {
    "nw_ucla": ("nw_ucla", 0.93, 464),          # cross-view, view 3 tests
    "utd_mhad": ("utd_mhad", 0.90, 430),        # cross-subject, subjects 2, 4, 6, 8 test
}
# Models below their goal: the figure the README's table states. They are reported as not
# reached (xfail) until a recipe gets there; a changed figure without the table fails.
DOCUMENTED_BELOW_GOAL = {"nw_ucla": 0.912}
# SBU: 5-fold cross-validation; the shipped model is fold 1's, models/sbu_folds/ the others.
SBU_GOAL = 0.95
SBU_DOCUMENTED_MEAN = 0.9650
SBU_FOLD_CLIPS = {1: 55, 2: 52, 3: 56, 4: 54, 5: 65}


def evaluate(model: str, *extra: str) -> dict:
    run = subprocess.run([sys.executable, "-m", "prgcn_ros.training.evaluate", "--model", model,
                          *extra, "--json"], cwd=REPO, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout)


def require(folder: str) -> None:
    if not (paths.data_dir() / folder).is_dir():
        pytest.skip(f"no {folder} data in {paths.data_dir()} (../shared/data/README.md)")


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(GOALS))
def test_shipped_model_reaches_its_goal(name):
    folder, goal, clips = GOALS[name]
    model = REPO / "models" / f"prgcn_{name}.safetensors"
    assert model.is_file(), f"{model} is not shipped"
    require(folder)
    result = evaluate(name)
    assert result["n"] == clips
    meta = json.loads(model.with_suffix(".json").read_text())
    assert result["top1"] == pytest.approx(meta["accuracy"]["top1"], abs=1e-9)
    # Calibrated for min_confidence: a temperature fitted on held-out training subjects.
    assert 0.05 < meta["calibration"]["temperature"] < 20
    if name in DOCUMENTED_BELOW_GOAL:
        assert result["top1"] == pytest.approx(DOCUMENTED_BELOW_GOAL[name], abs=5e-4)
        if result["top1"] < goal:
            pytest.xfail(f"{name}: {result['top1']:.3f} < goal {goal} (docs/more_datasets.md)")
    assert result["top1"] >= goal, f"{name}: {result['top1']:.3f} < {goal}"


@pytest.mark.slow
def test_sbu_interaction_five_fold_mean_reaches_its_goal():
    """Each fold's model evaluated on the fold it was trained without (metadata's data.fold)."""
    require("sbu_interaction")
    models = {1: REPO / "models" / "prgcn_sbu_interaction.safetensors"}
    models.update({k: REPO / "models" / "sbu_folds" / f"prgcn_sbu_interaction_fold{k}.safetensors"
                   for k in range(2, 6)})
    missing = [str(p) for p in models.values() if not p.is_file()]
    assert not missing, f"not shipped: {missing}"
    top1, confidence = {}, {}
    for fold, model in models.items():
        result = evaluate(str(model), "--config", str(REPO / "config" /
                                                      "train_sbu_interaction.yaml"))
        assert result["n"] == SBU_FOLD_CLIPS[fold], fold
        top1[fold], confidence[fold] = result["top1"], result["calibration"]
    mean = sum(top1.values()) / len(top1)
    # The figure the README's table states: folds 94.5, 98.1, 98.2, 96.3, 95.4 %.
    assert mean == pytest.approx(SBU_DOCUMENTED_MEAN, abs=5e-4), top1
    assert mean >= SBU_GOAL, f"SBU 5-fold mean {mean:.3f} < goal {SBU_GOAL}"
    # The shipped model's temperature is cross-fitted over the folds it trained on, each scored
    # by a model trained without it (the config's calibration.cross_fit); on the test pairs it
    # never saw, its calibrated confidences are closer to how often it is right.
    stored = read_metadata(models[1])["calibration"]
    groups = yaml.safe_load((REPO / "config" / "train_sbu_interaction.yaml").read_text())[
        "calibration"]["cross_fit"]
    assert stored["method"].endswith("cross-fitted")
    assert [f["subject"] for f in stored["folds"]] == ["+".join(g) for g in groups]
    assert confidence[1]["temperature"] == stored["temperature"]
    assert confidence[1]["ece_after"] < confidence[1]["ece_before"], confidence[1]


@pytest.mark.slow
def test_msr_model_says_unknown_for_foreign_actions(tmp_path):
    """Issue 12's "unknown" goal, measured by bench/unknown.py on the shipped MSR model: at the
    threshold that keeps 95 % of its right answers on the MSR test clips, >= 80 % of the UTD-MHAD
    clips of actions MSR Action3D has nothing like come out below it."""
    require("msr_action3d")
    require("utd_mhad")
    out = tmp_path / "results.json"
    run = subprocess.run([sys.executable, str(REPO / "bench" / "unknown.py"), "--results",
                          str(out), "--no-live"], cwd=REPO, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(out.read_text())["unknown"]
    # The sets measured: every MSR test clip, every UTD-MHAD clip of the seven foreign actions
    # (the threshold is chosen to keep 95 %, so only the foreign share is a finding).
    assert result["n_in_domain"] == 273 and result["n_foreign"] == 222, result
    # Calibrated confidences, as the node publishes them: the temperature cross-fitted over the
    # model's five training subjects (its metadata), not the raw softmax.
    meta = read_metadata(REPO / "models" / "prgcn_msr_action3d.safetensors")
    assert result["calibrated"] and result["temperature"] == meta["calibration"]["temperature"]
    assert meta["calibration"]["method"].endswith("cross-fitted")
    assert [f["subject"] for f in meta["calibration"]["folds"]] == ["1", "3", "5", "7", "9"]
    accuracy = meta["accuracy"]["top1"]
    assert result["in_domain_top1"] == pytest.approx(accuracy, abs=1e-3)
    point = result["at_goal_kept"]
    assert point["in_domain_kept"] >= 0.95, point
    assert point["foreign_unknown"] >= 0.80, point
