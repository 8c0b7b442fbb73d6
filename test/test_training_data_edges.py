"""Edges of the training data code: the standard splits as the datasets define them (the
official SBU folds, NW-UCLA's views and subjects), what a split records of itself for the
evaluation's overlap check, outliers from the other dataset's training split only, the
ST-GCN arrays' test files, mistakes in file lists and class names, checkpoints, and the
process-group helpers under two real processes."""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from test_training_util import REPO, require_data, small_cfg

from prgcn_ros.model.io import ModelFileError
from prgcn_ros.skeleton.labels import NW_UCLA_CLASSES
from prgcn_ros.training import evaluate
from prgcn_ros.training.checkpoint import FORMAT, CheckpointError, load_checkpoint, save_checkpoint
from prgcn_ros.training.config import ConfigError, load_config
from prgcn_ros.training.datasets import (
    SequenceDataset,
    build_dataset,
    class_names,
    msr_action3d,
    msr_clip,
    msr_file_list,
    nw_ucla,
    sbu_interaction,
    sbu_pairs,
    split_description,
    utd_mhad,
)
from prgcn_ros.training.finetune import init_from_model
from prgcn_ros.training.outliers import describe, outlier_dataset
from prgcn_ros.training.outputs import check_writable

CONFIG = REPO / "config"

# SBU Kinect Interaction's official folds, as the dataset's README lists them, with their sizes.
OFFICIAL_SBU_FOLDS = [
    ({"s01s02", "s03s04", "s05s02", "s06s04"}, 55),
    ({"s02s03", "s02s07", "s03s05", "s05s03"}, 52),
    ({"s01s03", "s01s07", "s07s01", "s07s03"}, 56),
    ({"s02s01", "s02s06", "s03s02", "s03s06"}, 54),
    ({"s04s02", "s04s03", "s04s06", "s06s02", "s06s03"}, 65),
]


def _need(name: str) -> Path:
    path = require_data() / name
    if not path.is_dir():
        pytest.skip(f"{path} missing")
    return path


def _subject(name: str) -> int:          # aAA_sSS_... (MSR, UTD-MHAD, NW-UCLA)
    return int(name.split("_")[1][1:])


# --------------------------------------------------------------------------- standard splits
@pytest.mark.parametrize("fold", range(1, 6))
def test_each_sbu_fold_tests_on_the_official_pairs(fold):
    _need("sbu_interaction")
    pairs, size = OFFICIAL_SBU_FOLDS[fold - 1]
    cfg = load_config(CONFIG / "train_sbu_interaction.yaml", {"data": {"fold": fold}})
    test, train = build_dataset(cfg, "test"), build_dataset(cfg, "train")
    assert {Path(n).parts[0] for n in test.names} == pairs and len(test) == size
    others = set().union(*(p for i, (p, _) in enumerate(OFFICIAL_SBU_FOLDS) if i != fold - 1))
    assert {Path(n).parts[0] for n in train.names} == others


def test_the_sbu_config_cross_fits_over_its_other_official_folds():
    """The shipped SBU model's temperature: one fold model per official fold it trained on,
    each held out whole (the test fold takes no part)."""
    cfg = load_config(CONFIG / "train_sbu_interaction.yaml")
    held = cfg["data"]["fold"]
    groups = [set(g) for g in cfg["calibration"]["cross_fit"]]
    assert sorted(map(sorted, groups)) == sorted(
        sorted(pairs) for k, (pairs, _) in enumerate(OFFICIAL_SBU_FOLDS, 1) if k != held)


@pytest.mark.parametrize("fold", [0, -1, 6])
def test_an_sbu_fold_outside_one_to_five_is_refused(fold):
    """Fold 0 is no fold: it must not quietly become fold 5 (Python's index -1)."""
    with pytest.raises(ConfigError, match="data.fold must be 1..5"):
        sbu_pairs(fold, "test")


def test_nw_ucla_subjects_narrow_the_views():
    root = _need("nw_ucla")
    some = nw_ucla(root, [1], subjects=[1, 2])
    assert len(some) and {_subject(n) for n in some.names} == {1, 2}
    assert all(n.endswith("_v01") for n in some.names)
    whole = nw_ucla(root, [1])
    assert set(some.names) == {n for n in whole.names if _subject(n) in (1, 2)}


def test_a_selection_without_clips_is_refused_not_an_empty_dataset(tmp_path):
    require_data()
    with pytest.raises(ConfigError, match="no NW-UCLA clips"):
        nw_ucla(_need("nw_ucla"), [4])
    with pytest.raises(ConfigError, match="no MSR Action3D clips"):
        msr_action3d(_need("msr_action3d"), "files_used_in_cvpr12_paper.txt", [11])


@pytest.mark.parametrize("name, key", [("msr_action3d", "subjects"), ("utd_mhad", "subjects"),
                                       ("nw_ucla", "views"), ("sbu_interaction", "pairs")])
def test_the_split_description_names_what_each_split_loads(name, key):
    """What the model file records of its training data (the evaluation refuses a test split
    that overlaps it) is what the training split really held, and the same for the test."""
    _need(name)
    cfg = load_config(CONFIG / f"train_{name}.yaml")
    described = split_description(cfg)

    def held(dataset):
        if key == "subjects":
            return {_subject(n) for n in dataset.names}
        if key == "views":
            return {int(n.rsplit("_v", 1)[1]) for n in dataset.names}
        return {Path(n).parts[0] for n in dataset.names}
    for split in ("train", "test"):
        assert set(described[f"{split}_{key}"]) == held(build_dataset(cfg, split)), split


def test_evaluating_the_shipped_nw_ucla_model_on_its_training_view_is_refused():
    """The shipped model recorded its split; a config testing on one of its training views
    is refused, not reported as a test accuracy."""
    _need("nw_ucla")
    cfg = load_config(CONFIG / "train_nw_ucla.yaml",
                      {"data": {"train_views": [2, 3], "test_views": [1]}})
    with pytest.raises(ConfigError, match=r"trained on views \[1\]"):
        evaluate.run(REPO / "models" / "prgcn_nw_ucla.safetensors", cfg, progress=False)


def test_outliers_come_from_the_other_datasets_training_split():
    """Outlier clips are training data: never a clip of that dataset's test split."""
    _need("nw_ucla")
    spec = {"data": {"kind": "nw_ucla", "root": "nw_ucla", "train_views": [1]},
            "classes": ["sit down"], "per_batch": 2, "weight": 1.0}
    clips = outlier_dataset(small_cfg(outliers=spec))
    assert len(clips) > 10 and all(n.endswith("_v01") for n in clips.names)


def test_outlier_classes_default_to_all_and_an_unknown_one_is_refused_among_known():
    _need("nw_ucla")
    spec = {"data": {"kind": "nw_ucla", "root": "nw_ucla", "train_views": [1]},
            "classes": None, "per_batch": 2, "weight": 1.0, "restore": True}
    cfg = small_cfg(outliers=spec)
    clips = outlier_dataset(cfg)
    assert {clips.class_names[label] for label in clips.labels} == set(NW_UCLA_CLASSES)
    assert describe(cfg, clips)["restore"] is True
    with pytest.raises(ValueError, match="squat"):
        outlier_dataset(small_cfg(outliers={**spec, "classes": ["sit down", "squat"]}))


# --------------------------------------------------------------------------- ST-GCN arrays
def _arrays(folder: Path, split: str, labels: list[int]) -> None:
    rng = np.random.default_rng(len(labels))
    np.save(folder / f"{split}_data.npy",
            rng.normal(size=(len(labels), 3, 20, 25, 2)).astype(np.float32))
    with open(folder / f"{split}_label.pkl", "wb") as f:
        pickle.dump(([f"{split}{i}" for i in range(len(labels))], labels), f)


def test_stgcn_test_split_reads_its_own_files_and_a_class_file_under_the_data_root(tmp_path):
    """The test split is the test arrays and labels (not the training ones); a relative
    data.class_names file is read from the data root, blank lines skipped."""
    root = tmp_path / "arrays"
    root.mkdir()
    _arrays(root, "train", [0, 1, 2])
    _arrays(root, "val", [2, 2])
    (root / "classes.txt").write_text("wave\n\nclap\nbow\n\n")
    cfg = load_config(None, {"name": "mine", "layout": "ntu25", "fps": 30,
                             "data": {"kind": "stgcn_arrays", "dir": str(tmp_path),
                                      "root": "arrays", "class_names": "classes.txt",
                                      "train_data": "train_data.npy",
                                      "train_label": "train_label.pkl",
                                      "test_data": "val_data.npy", "test_label": "val_label.pkl",
                                      "max_persons": 2}})
    assert class_names(cfg) == ["wave", "clap", "bow"]
    test = build_dataset(cfg, "test")
    assert test.labels == [2, 2] and test.names == ["val0", "val1"]
    assert build_dataset(cfg, "train").labels == [0, 1, 2]


# --------------------------------------------------------------------------- mistakes
def test_repeated_class_names_are_refused():
    cfg = load_config(None, {"data": {"kind": "stgcn_arrays",
                                      "class_names": ["wave", "clap", "wave"]}})
    with pytest.raises(ConfigError, match="class names repeat: wave"):
        class_names(cfg)


def test_a_file_list_with_blank_lines_reads_its_names(tmp_path):
    (tmp_path / "list.txt").write_text("\na01_s01_e01_skeleton3D.txt\n\n  a02_s02_e01  \n\n")
    assert [c.name for c in msr_file_list(tmp_path, "list.txt")] == ["a01_s01_e01",
                                                                     "a02_s02_e01"]


def test_a_listed_clip_whose_file_is_missing_stops_before_training(tmp_path):
    (tmp_path / "list.txt").write_text("a01_s01_e01\na01_s01_e02\n")
    (tmp_path / "a01_s01_e01_skeleton3D.txt").write_text("")
    with pytest.raises(FileNotFoundError, match="1 MSR Action3D files listed but missing.*"
                                                "a01_s01_e02"):
        msr_action3d(tmp_path, "list.txt", [1])


def test_recording_keys_must_match_the_clips():
    with pytest.raises(ValueError, match="1 recording keys for 2 clips"):
        SequenceDataset([lambda: None] * 2, [0, 0], ["a", "b"], ["x"], "two",
                        recordings=["a"])


def test_msr_clip_names_parse_with_or_without_suffix():
    assert msr_clip("a20_s10_e03").label == 19
    assert msr_clip(" a01_s02_e03_skeleton3D.txt ").subject == 2


# --------------------------------------------------------------------------- processes
_RANK = """
import json, torch
from prgcn_ros.training import distributed
where = distributed.setup("cpu")
out = {"rank": where.rank, "world": where.world, "device": str(where.device),
       "main": where.is_main, "shard": distributed.shard(list(range(7)), where),
       "sum": distributed.sum_all([where.rank + 1.0, 2.0], where)}
distributed.leave()
out["left"] = not torch.distributed.is_initialized()
open(f"rank{where.rank}.json", "w").write(json.dumps(out))   # one stdout would mix them
"""


def test_two_processes_share_a_batch_sum_and_leave_together(tmp_path):
    """Under torchrun, two CPU processes form one gloo group: each takes its own part of a
    batch (together all of it, once), sums reach every rank, only rank 0 is main."""
    script = tmp_path / "rank.py"
    script.write_text(_RANK)
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
         "2", str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    outs = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in range(2)]
    assert [o["rank"] for o in outs] == [0, 1] and {o["world"] for o in outs} == {2}
    assert [o["main"] for o in outs] == [True, False]
    assert {o["device"] for o in outs} == {"cpu"}
    assert sorted(outs[0]["shard"] + outs[1]["shard"]) == list(range(7))
    assert outs[0]["shard"] and outs[1]["shard"]
    assert all(o["sum"] == [3.0, 4.0] for o in outs)
    assert all(o["left"] for o in outs)


# --------------------------------------------------------------------------- checkpoints
def _tiny_run():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.ones(2, 4)).sum().backward()
    optimizer.step()
    return model, optimizer


def test_an_older_checkpoint_resumes_from_its_weights_file_path(tmp_path):
    """A checkpoint written before the weights' header held the state, resumed by naming its
    weights file: the state comes from the JSON beside it."""
    model, optimizer = _tiny_run()
    save_checkpoint(tmp_path / "run", model, optimizer, {"epoch": 3})
    weights = tmp_path / "run" / "checkpoint.safetensors"
    save_file(load_file(str(weights)), str(weights), metadata={"format": FORMAT})
    fresh = torch.nn.Sequential(torch.nn.Linear(4, 3))
    fresh_opt = torch.optim.SGD(fresh.parameters(), lr=0.1, momentum=0.9)
    assert load_checkpoint(weights, fresh, fresh_opt)["epoch"] == 3
    assert torch.equal(fresh[0].weight, model[0].weight)


def test_checkpoint_files_are_readable_by_other_users(tmp_path):
    model, optimizer = _tiny_run()
    save_checkpoint(tmp_path / "run", model, optimizer, {"epoch": 1})
    for name in ("checkpoint.safetensors", "checkpoint.json"):
        assert (tmp_path / "run" / name).stat().st_mode & 0o777 == 0o644, name


def test_a_model_file_or_nothing_is_no_checkpoint_and_says_so(tmp_path):
    model, optimizer = _tiny_run()
    with pytest.raises(CheckpointError, match="no checkpoint to resume from"):
        load_checkpoint(tmp_path / "nothing", model, optimizer)
    shipped = REPO / "models" / "prgcn_msr_action3d.safetensors"     # --resume of a model file
    with pytest.raises(CheckpointError, match="not a prgcn_ros training checkpoint"):
        load_checkpoint(shipped, model, optimizer)


def test_a_checkpoint_of_other_optimizer_groups_or_without_weights_is_refused(tmp_path):
    model, optimizer = _tiny_run()
    two_groups = torch.optim.SGD([{"params": [model[0].weight]}, {"params": [model[0].bias]}],
                                 lr=0.1, momentum=0.9)
    save_checkpoint(tmp_path / "two", model, two_groups, {"epoch": 1})
    with pytest.raises(CheckpointError, match="optimizer groups do not match"):
        load_checkpoint(tmp_path / "two", model, optimizer)
    save_checkpoint(tmp_path / "run", model, optimizer, {"epoch": 1})
    (tmp_path / "run" / "checkpoint.safetensors").unlink()
    with pytest.raises(CheckpointError, match="checkpoint weights missing"):
        load_checkpoint(tmp_path / "run", model, optimizer)


# --------------------------------------------------------------------------- --init, outputs
def test_init_from_a_missing_model_file_says_so(tmp_path):
    with pytest.raises(ModelFileError, match="--init .*none.safetensors: file is missing"):
        init_from_model(torch.nn.Linear(2, 2), tmp_path / "none.safetensors")


def test_an_output_folder_blocked_by_a_file_is_named(tmp_path):
    (tmp_path / "run").write_text("")
    with pytest.raises(OSError, match="run is a file, not a folder"):
        check_writable(tmp_path / "run" / "sub" / "m.safetensors")


def test_a_split_whose_subject_or_pair_has_no_clips_stops_with_its_name(tmp_path):
    """An incomplete copy of the data (one SBU pair, one UTD-MHAD subject not there) shrank the
    split without a word: fold 1 tested 41 clips instead of 55, and reported a figure for
    them."""
    data = require_data()
    sbu = tmp_path / "sbu"
    sbu.mkdir()
    for pair in (data / "sbu_interaction").iterdir():
        if pair.name != "s03s04":
            (sbu / pair.name).symlink_to(pair)
    assert len(sbu_interaction(sbu, ["s01s02"])) > 0
    with pytest.raises(ConfigError, match="no SBU clips of pairs s03s04 under"):
        sbu_interaction(sbu, sbu_pairs(1, "test"))
    utd = tmp_path / "utd"
    utd.mkdir()
    for clip in (data / "utd_mhad").glob("*_s*_t*_skeleton.mat"):
        if "_s3_" not in clip.name:
            (utd / clip.name).symlink_to(clip)
    with pytest.raises(ConfigError, match="no UTD-MHAD clips of subject 3 under"):
        utd_mhad(utd, [1, 3, 5, 7])
    with pytest.raises(ConfigError, match="no NW-UCLA clips of subject 11 under"):
        nw_ucla(data / "nw_ucla", [1, 2], subjects=[1, 11])
    views = tmp_path / "nw_ucla"
    views.mkdir()
    for clip in (data / "nw_ucla").glob("*_v0[12].json"):
        (views / clip.name).symlink_to(clip)
    with pytest.raises(ConfigError, match="no NW-UCLA clips of view 3 under"):
        nw_ucla(views, [1, 3])
