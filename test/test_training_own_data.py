"""Training on a user's own data and choosing models: the new datasets' standard splits,
shipped-model names, protected outputs (a copied config run from the repository root leaves
every tracked file untouched), world-readable model files, --init fine-tuning, the ST-GCN
variant from the config, the data folder's precedence, and temperature calibration."""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_training_util import MSR_CONFIG, REPO, msr_split, require_data, small_cfg, subset

from prgcn_ros.model.build import build_model
from prgcn_ros.model.io import (
    SHIPPED_MODELS,
    ModelFileError,
    load_model,
    read_metadata,
    resolve_model,
    save_model,
)
from prgcn_ros.training import calibration
from prgcn_ros.training import evaluate as evaluate_cli
from prgcn_ros.training import train as train_cli
from prgcn_ros.training.config import (
    DATA_KIND_LAYOUTS,
    ConfigError,
    load_config,
    model_spec,
)
from prgcn_ros.training.datasets import build_dataset
from prgcn_ros.training.finetune import init_from_model
from prgcn_ros.training.outputs import protection, resolve_outputs
from prgcn_ros.training.train import Trainer, save_trained_model

CONFIG = REPO / "config"


def _data(name: str) -> None:
    path = require_data() / name
    if not path.is_dir():
        pytest.skip(f"{path} missing")


@pytest.fixture(scope="module")
def msr_model(tmp_path_factory) -> Path:
    """A 20-class MSR model file after one step on a few real clips."""
    trainer = Trainer(small_cfg(seed=3), train_set=subset(msr_split("train"), 8),
                      log=lambda m: None)
    trainer.train_epoch(progress=False, max_steps=1)
    path = tmp_path_factory.mktemp("msr") / "msr.safetensors"
    return save_trained_model(path, trainer, None)


# --------------------------------------------------------------------------- standard splits
@pytest.mark.parametrize("name, kind, sizes", [
    ("nw_ucla", "nw_ucla", (1020, 464)),
    ("utd_mhad", "utd_mhad", (431, 430)),
    ("sbu_interaction", "sbu_interaction", (227, 55)),
])
def test_new_configs_use_the_standard_protocol(name, kind, sizes):
    _data(name)
    cfg = load_config(CONFIG / f"train_{name}.yaml")
    assert cfg["data"]["kind"] == kind
    train, test = build_dataset(cfg, "train"), build_dataset(cfg, "test")
    assert (len(train), len(test)) == sizes
    assert train[0].layout == test[0].layout == DATA_KIND_LAYOUTS[kind] == cfg["layout"]
    assert not set(train.names) & set(test.names)
    assert train.class_names == test.class_names and len(set(train.labels)) == \
        len(train.class_names)
    if kind == "sbu_interaction":
        assert cfg["data"]["max_persons"] == 2 and cfg["layout"] == "openni15"


@pytest.mark.parametrize("name", ["nw_ucla", "utd_mhad", "sbu_interaction"])
def test_new_configs_train_and_evaluate(name, tmp_path):
    """One step on real clips, then the evaluation code on a few test clips (SBU: both people
    of each interaction in one (N, 3, T, 15, 2) sample)."""
    _data(name)
    cfg = load_config(CONFIG / f"train_{name}.yaml",
                      {"optim": {"batch_size": 4},
                       "output": {"dir": str(tmp_path / "run"), "model": None},
                       # 4 clips hold no calibration subject (the split is tested elsewhere)
                       "calibration": {"subjects": None}})
    trainer = Trainer(cfg, train_set=subset(build_dataset(cfg, "train"), 4), log=lambda m: None)
    stats = trainer.train_epoch(progress=False, max_steps=1)
    assert np.isfinite(stats["loss"]) and stats["clips"] == 4
    model = save_trained_model(tmp_path / "m.safetensors", trainer, None)
    meta = json.loads(model.with_suffix(".json").read_text())
    assert meta["max_persons"] == (2 if name == "sbu_interaction" else 1)
    assert meta["layout"] == cfg["layout"] and meta["class_names"] == trainer.class_names
    net, meta = load_model(model)
    result = evaluate_cli.evaluate_model(net, subset(build_dataset(cfg, "test"), 6), cfg)
    assert result["n"] == 6 and len(result["per_class"]) == len(trainer.class_names)
    if name == "sbu_interaction":     # evaluated on the fold it was trained without
        meta["training"]["data"]["fold"] = 3
        assert evaluate_cli.config_for_model(cfg, meta)["data"]["fold"] == 3


def test_sbu_five_folds_cover_every_sequence_once():
    _data("sbu_interaction")
    seen: list[str] = []
    for fold in range(1, 6):
        cfg = load_config(CONFIG / "train_sbu_interaction.yaml", {"data": {"fold": fold}})
        test, train = build_dataset(cfg, "test"), build_dataset(cfg, "train")
        assert len(test) + len(train) == 282
        seen += test.names
    assert len(seen) == len(set(seen)) == 282
    with pytest.raises(ConfigError, match="fold"):
        build_dataset(load_config(CONFIG / "train_sbu_interaction.yaml",
                                  {"data": {"fold": 6}}), "test")


# --------------------------------------------------------------------------- model names
def test_models_by_name_or_path(tmp_path, monkeypatch):
    shipped = REPO / "models" / "prgcn_msr_action3d.safetensors"
    assert shipped.is_file(), f"the shipped model {shipped} is missing"
    assert resolve_model("msr_action3d") == shipped.resolve()
    assert resolve_model(str(shipped)) == shipped.resolve()
    monkeypatch.chdir(tmp_path)          # relative paths: the cwd, else the share directory
    assert resolve_model("models/prgcn_msr_action3d.safetensors") == shipped
    with pytest.raises(ModelFileError) as error:
        resolve_model("no_such_model")
    assert all(name in str(error.value) for name in SHIPPED_MODELS)
    assert "neither a shipped model name nor a file" in str(error.value)   # a typo, not "gone"
    with pytest.raises(ModelFileError, match="file is missing.*msr_action3d"):
        resolve_model(tmp_path / "gone.safetensors")
    with pytest.raises(ModelFileError, match="a folder, not a model file.*msr_action3d"):
        resolve_model(tmp_path)                 # model:=<the models folder>
    for name in SHIPPED_MODELS:
        if not (REPO / "models" / f"prgcn_{name}.safetensors").is_file():
            with pytest.raises(ModelFileError, match=f"{name}.*shipped models: .*msr_action3d"):
                resolve_model(name)
        assert (CONFIG / f"train_{name}.yaml").is_file()    # prgcn-eval --model NAME's config


def test_a_shipped_model_name_finds_the_installed_share_directory(tmp_path, monkeypatch):
    """Installed (no source checkout), `model: nw_ucla` is share/prgcn_ros/models' file."""
    from prgcn_ros import paths

    share = tmp_path / "share" / "prgcn_ros"
    (share / "models").mkdir(parents=True)
    installed = share / "models" / "prgcn_nw_ucla.safetensors"
    installed.write_bytes(b"weights")
    monkeypatch.setattr(paths, "source_root", lambda: None)
    monkeypatch.setattr(paths, "share_dir", lambda: share)
    monkeypatch.chdir(tmp_path)
    assert resolve_model("nw_ucla") == installed.resolve()


def test_recognizer_parameter_takes_a_model_name():
    from prgcn_ros.recognition import RecognizerParams

    assert (REPO / "models" / "prgcn_msr_action3d.safetensors").is_file()
    assert RecognizerParams(model="msr_action3d").model_path().name == \
        "prgcn_msr_action3d.safetensors"
    with pytest.raises(ModelFileError, match="sbu_interaction"):
        RecognizerParams(model="not_a_model").model_path()


# --------------------------------------------------------------------------- protected outputs
def _tracked_digests() -> dict[str, str]:
    names = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True,
                           check=True).stdout.decode().split("\0")
    return {n: hashlib.sha256((REPO / n).read_bytes()).hexdigest()
            for n in names if n and (REPO / n).is_file()}


def test_protected_destinations(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)           # the config's relative paths, from the repository root
    assert protection(REPO / "README.md") is not None                  # tracked by git
    shipped = REPO / "models" / "prgcn_msr_action3d.safetensors"
    if shipped.is_file():
        assert "shipped model" in protection(shipped)
        assert "shipped model" in protection(shipped.with_suffix(".json"))
    assert protection(tmp_path / "mine.safetensors") is None
    cfg = load_config(MSR_CONFIG, {"output": {"dir": str(tmp_path / "run")}})
    lines: list[str] = []
    safe = resolve_outputs(cfg, log=lines.append)
    assert safe["output"]["model"] == str(tmp_path / "run" / "prgcn_msr_action3d.safetensors")
    assert safe["eval"]["confusion_png"] == str(tmp_path / "run" / "confusion_msr_action3d.png")
    assert len(lines) == 2 and all("--force" in line for line in lines)
    forced = resolve_outputs(cfg, force=True, log=lines.append)
    assert forced["output"]["model"] == "models/prgcn_msr_action3d.safetensors"
    nothing = resolve_outputs(load_config(MSR_CONFIG, {"output": {"dir": str(tmp_path / "r"),
                                                                  "model": None}}))
    assert nothing["output"]["model"] == str(tmp_path / "r" / "prgcn_msr_action3d.safetensors")


def _git_repository(path: Path) -> Path:
    path.mkdir()
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    return path


def test_only_tracked_files_of_a_checkout_are_protected(tmp_path):
    """A user's own checkout: an untracked model file may be written again (a second run),
    a tracked one, or its tracked metadata beside it, may not."""
    repo = _git_repository(tmp_path / "repo")
    (repo / "mine.safetensors").write_text("")
    assert protection(repo / "mine.safetensors") is None
    subprocess.run(["git", "-C", str(repo), "add", "mine.safetensors"], check=True)
    assert "tracked by git" in protection(repo / "mine.safetensors")
    (repo / "m.json").write_text("{}")
    subprocess.run(["git", "-C", str(repo), "add", "m.json"], check=True)
    assert "m.json is a file tracked by git" in protection(repo / "m.safetensors")


def test_without_git_nothing_counts_as_tracked(tmp_path, monkeypatch):
    from prgcn_ros.training import outputs

    def no_git(*args, **kwargs):
        raise FileNotFoundError("git")
    monkeypatch.setattr(outputs.subprocess, "run", no_git)
    (tmp_path / "m.safetensors").write_text("")
    assert protection(tmp_path / "m.safetensors") is None


def test_an_installed_share_directory_is_protected(tmp_path, monkeypatch):
    from prgcn_ros import paths

    share = tmp_path / "share" / "prgcn_ros"
    (share / "config").mkdir(parents=True)
    monkeypatch.setattr(paths, "source_root", lambda: None)
    monkeypatch.setattr(paths, "share_dir", lambda: share)
    assert "installed file" in protection(share / "config" / "mine.png")


def test_a_run_directory_among_the_shipped_models_needs_force(monkeypatch):
    """output.dir: models would put the run's model file over the shipped one."""
    monkeypatch.chdir(REPO)
    cfg = load_config(MSR_CONFIG, {"output": {"dir": "models"}})
    with pytest.raises(ValueError, match="--force"):
        resolve_outputs(cfg, log=lambda line: None)


def test_an_unwritable_output_folder_stops_the_run_before_training(tmp_path, monkeypatch):
    """Found at the start, not after hours (tests run as root, who may write anywhere)."""
    from prgcn_ros.training import outputs

    monkeypatch.setattr(outputs.os, "access", lambda *args, **kwargs: False)
    with pytest.raises(OSError, match="cannot write to"):
        outputs.check_writable(tmp_path / "run" / "m.safetensors")


def test_a_config_without_output_writes_under_runs_of_its_own_name(tmp_path, monkeypatch):
    """A user's config need not say where to write: runs/<name>/<name>.safetensors, never the
    MSR run's folder or model."""
    config = tmp_path / "my_actions.yaml"
    config.write_text("name: my_actions\nbase: " + str(MSR_CONFIG) + "\noutput: {dir: null, "
                      "model: null}\n")
    monkeypatch.chdir(tmp_path)
    lines: list[str] = []
    cfg = resolve_outputs(load_config(config), log=lines.append)
    assert cfg["output"]["dir"] == str(Path("runs") / "my_actions")
    assert cfg["output"]["model"] == str(Path("runs") / "my_actions" / "my_actions.safetensors")
    bare = tmp_path / "bare.yaml"
    bare.write_text("name: mine\ndata: {kind: msr_action3d}\n")
    cfg = resolve_outputs(load_config(bare), log=lines.append)
    assert cfg["output"]["model"] == str(Path("runs") / "mine" / "mine.safetensors")
    assert not lines


@pytest.mark.slow
def test_copied_config_run_from_the_repository_root_touches_no_tracked_file(tmp_path):
    """The new user's case: the MSR config copied elsewhere, unchanged (its output.model and
    eval.confusion_png name the shipped files), trained and evaluated from the repository
    root under a strict umask."""
    require_data()
    config = tmp_path / "mine.yaml"
    config.write_text(MSR_CONFIG.read_text().replace("dir: runs/msr_action3d",
                                                     f"dir: {tmp_path / 'run'}"))
    before = _tracked_digests()
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=600,
                              preexec_fn=lambda: os.umask(0o077))

    done = run("prgcn_ros.training.train", "--config", str(config), "--epochs", "1",
               "--max-steps", "1", "--no-eval", "--no-progress",
               "--set", "optim.batch_size=4", "--set", "data.test_subjects=[2]")
    assert done.returncode == 0, done.stderr
    model = tmp_path / "run" / "prgcn_msr_action3d.safetensors"
    assert json.loads(done.stdout.splitlines()[-1])["model"] == str(model)
    assert "shipped model" in done.stderr and "--force" in done.stderr
    assert "confusion_png" not in done.stderr          # training writes no figure
    for path in (model, model.with_suffix(".json")):
        assert path.stat().st_mode & 0o777 == 0o644     # readable by a node of another user
    done = run("prgcn_ros.training.evaluate", "--model", str(model), "--config", str(config),
               "--set", "data.test_subjects=[2]", "--json")
    assert done.returncode == 0, done.stderr
    png = Path(json.loads(done.stdout)["confusion_png"])
    assert png == tmp_path / "run" / "confusion_msr_action3d.png" and png.is_file()
    assert _tracked_digests() == before


# --------------------------------------------------------------------------- a user's faults
def _own_arrays(root: Path, labels: list[int], stem: str) -> None:
    rng = np.random.default_rng(len(labels))
    data = np.cumsum(rng.normal(0, 0.01, (len(labels), 3, 16, 20, 1)), axis=2) + 1.0
    np.save(root / f"{stem}_data.npy", data.astype(np.float32))
    with (root / f"{stem}_label.pkl").open("wb") as fh:
        pickle.dump(([f"{stem}{k}" for k in range(len(labels))], labels), fh)


def _own_config(tmp_path: Path, classes: list[str]) -> dict:
    return load_config(None, {
        "name": "mine", "layout": "kinect20", "fps": 30.0,
        "data": {"kind": "stgcn_arrays", "dir": str(tmp_path), "root": "mine",
                 "train_data": "train_data.npy", "train_label": "train_label.pkl",
                 "test_data": "val_data.npy", "test_label": "val_label.pkl",
                 "class_names": classes, "max_persons": 1},
        "window": {"length": 16}, "optim": {"batch_size": 4, "epochs": 1},
        "outliers": None, "calibration": {"subjects": None, "fraction": None},
        "output": {"dir": str(tmp_path / "run"), "model": str(tmp_path / "run" / "m.safetensors")},
        "threads": 1})


def test_a_users_faulty_data_stops_the_run_before_training(tmp_path):
    """A fault in the test split stops the run before its first epoch, not after the last
    (the test arrays used to be read only then, and no model was written); repeated class
    names are refused; a class without training clips is named in a warning; a missing
    folder is named, with the advice that applies to an absolute data.dir."""
    root = tmp_path / "mine"
    root.mkdir()
    _own_arrays(root, [0, 1, 0, 1, 0, 1, 0, 1], "train")
    lines: list[str] = []
    with pytest.raises(FileNotFoundError, match="val_data.npy"):
        train_cli.train(_own_config(tmp_path, ["wave", "kick", "bow"]), progress=False,
                        log=lines.append)
    assert not any(line.startswith('{"epoch"') for line in lines), lines
    assert not (tmp_path / "run" / "checkpoint.json").exists()

    _own_arrays(root, [0, 1, 2, 0], "val")
    lines.clear()
    done = train_cli.train(_own_config(tmp_path, ["wave", "kick", "bow"]), progress=False,
                           max_steps=1, log=lines.append)
    assert Path(done["model"]).is_file()
    assert [line for line in lines if "no training clip" in line] == [
        "warning: no training clip for 1 classes (bow): the model cannot learn them"]

    with pytest.raises(ConfigError, match="epoch 1 trained on no clip"):    # no step at all
        train_cli.train(_own_config(tmp_path, ["wave", "kick", "bow"]), progress=False,
                        max_steps=0, log=lines.append)
    with pytest.raises(SystemExit):
        train_cli.main(["--config", "any.yaml", "--max-steps", "0"])
    with pytest.raises(ConfigError, match="class names repeat: wave"):
        train_cli.train(_own_config(tmp_path, ["wave", "kick", "wave"]), progress=False,
                        log=lines.append)
    cfg = _own_config(tmp_path, ["wave", "kick", "bow"])
    cfg["data"]["root"] = "theirs"
    with pytest.raises(FileNotFoundError) as error:
        build_dataset(cfg, "train")
    message = str(error.value)
    assert f"({tmp_path / 'theirs'} does not exist)" in message
    assert "change data.dir in the config" in message and "PRGCN_DATA=" not in message


# --------------------------------------------------------------------------- --init
def test_init_fine_tunes_and_replaces_a_classifier_of_other_classes(msr_model, tmp_path):
    _data("utd_mhad")
    source = load_model(msr_model)[0].state_dict()
    utd_cfg = load_config(CONFIG / "train_utd_mhad.yaml",
                          {"optim": {"batch_size": 4},
                           "output": {"dir": str(tmp_path / "run"), "model": None}})
    trainer = Trainer(utd_cfg, train_set=subset(build_dataset(utd_cfg, "train"), 8),
                      log=lambda m: None)
    done = init_from_model(trainer.model, msr_model, trainer.class_names)
    state = trainer.model.state_dict()
    assert done["replaced"] == ["classifier.weight", "classifier.bias"]
    assert state["classifier.weight"].shape[0] == 27 and done["source_classes"] == 20
    for key, value in state.items():
        if not key.startswith("classifier."):
            assert torch.equal(value, source[key]), key
    # Same classes: everything, the classifier included, is the model file's.
    same = Trainer(small_cfg(seed=9), train_set=subset(msr_split("train"), 4),
                   log=lambda m: None)
    assert init_from_model(same.model, msr_model, same.class_names)["replaced"] == []
    assert torch.equal(same.model.state_dict()["classifier.weight"],
                       source["classifier.weight"])
    # As many classes, other names: the classifier is replaced too (not MSR's, relabelled).
    fresh = Trainer(small_cfg(seed=9), train_set=subset(msr_split("train"), 4),
                    log=lambda m: None)
    untrained = fresh.model.state_dict()["classifier.weight"].clone()
    done = init_from_model(fresh.model, msr_model, [f"mine{i}" for i in range(20)])
    assert done["replaced"] == ["classifier.weight", "classifier.bias"]
    assert done["copied"] == len(source) - 2
    assert torch.equal(fresh.model.state_dict()["classifier.weight"], untrained)
    # Another architecture is an error, not a silent fresh start.
    other = Trainer(small_cfg(model={"use_tam": False}), train_set=subset(msr_split("train"), 4),
                    log=lambda m: None)
    with pytest.raises(ModelFileError, match="use_tam"):
        init_from_model(other.model, msr_model, other.class_names)
    # Weights no training leaves are refused here too, naming the file (a NaN copied in would
    # surface only as a diverged training).
    from safetensors.torch import load_file, save_file
    broken = tmp_path / "broken.safetensors"
    weights = load_file(str(msr_model))
    weights["classifier.weight"][0, 0] = float("nan")
    save_file(weights, str(broken), metadata={"format": "prgcn_ros-model/1"})
    broken.with_suffix(".json").write_text(msr_model.with_suffix(".json").read_text())
    with pytest.raises(ModelFileError, match=f"--init {broken}: weights 1 holding NaN"):
        init_from_model(same.model, broken, same.class_names)
    # A weight of another shape than its own metadata says: refused, not trained afresh.
    weights = load_file(str(msr_model))
    key = next(k for k in weights if not k.startswith("classifier.") and weights[k].dim() > 1)
    weights[key] = weights[key].flatten().clone()
    misfit = tmp_path / "misfit.safetensors"
    save_file(weights, str(misfit), metadata={"format": "prgcn_ros-model/1"})
    misfit.with_suffix(".json").write_text(msr_model.with_suffix(".json").read_text())
    with pytest.raises(ModelFileError, match=f"weight {key} does not fit"):
        init_from_model(same.model, misfit, same.class_names)
    # A model file without class names (written by hand): its classifier is taken as it is.
    plain = tmp_path / "plain.safetensors"
    save_model(plain, same.model, {})
    assert init_from_model(same.model, plain, [f"c{i}" for i in range(20)])["replaced"] == []


# The architecture the shipped MSR model's metadata recorded when it was trained (7f10ccb),
# before options such as bone_input existed; its metadata lists them all since 2026-12-07.
EARLY_ARCHITECTURE = ("fusion", "in_channels", "layout", "name", "num_classes", "refine_channels",
                      "rigid_bones", "use_motion", "use_prm", "use_tam")


def test_init_from_a_model_written_before_later_options(tmp_path):
    """A model file whose metadata predates options such as bone_input: a network built with
    them off is the same architecture."""
    cfg = load_config(CONFIG / "train_msr_action3d.yaml")
    model = build_model(model_spec(cfg, 20))
    shipped = REPO / "models" / "prgcn_msr_action3d.safetensors"
    early = tmp_path / "early.safetensors"
    early.write_bytes(shipped.read_bytes())
    meta = json.loads(shipped.with_suffix(".json").read_text())
    meta["architecture"] = {k: meta["architecture"][k] for k in EARLY_ARCHITECTURE}
    early.with_suffix(".json").write_text(json.dumps(meta))
    assert "bone_input" not in read_metadata(early)["architecture"]
    assert init_from_model(model, early)["replaced"] == []


def test_init_takes_a_model_without_the_weightless_steps_the_config_turns_on():
    """rigid_bones and extent_norm hold no weights: the config decides them, every tensor of
    the model file is copied (the shipped UTD-MHAD model into the NW-UCLA recipe, which has
    extent_norm); a step with weights (learned_edges) is still refused."""
    shipped = REPO / "models" / "prgcn_utd_mhad.safetensors"
    assert not read_metadata(shipped)["architecture"].get("extent_norm")
    spec = model_spec(load_config(CONFIG / "train_nw_ucla.yaml"), 10)
    assert spec["extent_norm"]
    model = build_model({**spec, "rigid_bones": True})
    done = init_from_model(model, shipped)
    assert done["replaced"] == ["classifier.weight", "classifier.bias"]
    source = load_model(shipped)[0].state_dict()
    for key, value in model.state_dict().items():
        if not key.startswith("classifier."):
            assert torch.equal(value, source[key]), key
    with pytest.raises(ModelFileError, match="learned_edges"):
        init_from_model(build_model({**spec, "learned_edges": True}), shipped)


def test_train_cli_init(msr_model, tmp_path, capsys):
    _data("utd_mhad")
    out = tmp_path / "utd.safetensors"
    assert train_cli.main(["--config", str(CONFIG / "train_utd_mhad.yaml"), "--init",
                           str(msr_model), "--epochs", "1", "--max-steps", "1", "--no-eval",
                           "--no-progress", "--output", str(out), "--out-dir",
                           str(tmp_path / "run"), "--set", "optim.batch_size=4"]) == 0
    assert "classifier replaced (20 -> 27 classes)" in capsys.readouterr().err
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["training"]["init"]["init"] == str(msr_model)
    assert meta["num_classes"] == 27 and len(meta["class_names"]) == 27
    # --init with --resume: one of them (the --init was ignored without a word).
    assert train_cli.main(["--config", str(CONFIG / "train_utd_mhad.yaml"), "--init",
                           str(msr_model), "--resume", str(tmp_path / "run"), "--epochs", "2",
                           "--no-eval", "--no-progress", "--output", str(out), "--out-dir",
                           str(tmp_path / "run"), "--set", "optim.batch_size=4"]) == 2
    assert "give one of them" in capsys.readouterr().err
    # ... said at once, before any data is read (a wrong data.dir is not what it reports).
    assert train_cli.main(["--config", str(CONFIG / "train_utd_mhad.yaml"), "--init",
                           str(msr_model), "--resume", str(tmp_path / "run"), "--no-progress",
                           "--set", f"data.dir={tmp_path / 'nowhere'}"]) == 2
    assert "give one of them" in capsys.readouterr().err


# --------------------------------------------------------------------------- config choices
def test_stgcn_variant_from_the_config():
    cfg = load_config(MSR_CONFIG, {"model": {"name": "stgcn", "variant": "prgcn_table1"}})
    from prgcn_ros.training.train import build_model
    model = build_model(cfg, 20)
    assert model.arch["variant"] == "prgcn_table1"
    with pytest.raises(ConfigError, match="variant"):
        load_config(MSR_CONFIG, {"model": {"variant": "huge"}})


def test_missing_data_error_names_the_setting_used(tmp_path, monkeypatch):
    monkeypatch.setenv("PRGCN_DATA", str(tmp_path / "from_env"))
    cfg = load_config(MSR_CONFIG, {"data": {"dir": str(tmp_path / "from_config")}})
    with pytest.raises(FileNotFoundError, match="from_config.*data.dir of the config"):
        build_dataset(cfg, "train")
    with pytest.raises(FileNotFoundError, match=r"from_env.*\$PRGCN_DATA"):
        build_dataset(load_config(MSR_CONFIG), "train")


# --------------------------------------------------------------------------- calibration
def test_temperature_recovers_a_known_overconfidence():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (4000, 10))
    true_t = 2.5
    p_true = np.exp(logits / true_t)
    p_true /= p_true.sum(1, keepdims=True)
    labels = np.array([rng.choice(10, p=p) for p in p_true])
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)                 # the model's: T = 1, overconfident
    fitted = calibration.fit_temperature(probs, labels)
    assert fitted == pytest.approx(true_t, rel=0.1)
    rep = calibration.report(probs, labels, fitted)
    assert rep["ece_after"] < 0.5 * rep["ece_before"] and rep["nll_after"] < rep["nll_before"]
    # Scaling never changes the winning class.
    assert (calibration.scaled(probs, fitted).argmax(1) == probs.argmax(1)).all()


def test_a_temperature_fitted_to_the_end_of_its_range_is_not_stored(monkeypatch):
    """Calibration clips the model gets all right drive the fit to T = 0.05: every confidence
    near 1, foreign actions too, so min_confidence would never say unknown. No temperature is
    stored then (T = 1 where it is read), with the reason; a real overconfidence is still
    fitted."""
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 1, (200, 10))
    labels = logits.argmax(1)                            # every clip right
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert calibration.fit_temperature(probs, labels) < 0.06
    temperature, why_not = calibration.temperature_for(probs, labels)
    assert temperature == 1.0 and "0 of 200 wrong: too few errors" in why_not
    one_class = np.ones((50, 1))
    temperature, why_not = calibration.temperature_for(one_class, np.zeros(50, int))
    assert temperature == 1.0 and "say nothing" in why_not
    # The model file then carries no temperature, and says why: T = 1 everywhere it is read.
    from types import SimpleNamespace

    from prgcn_ros.training import evaluate
    monkeypatch.setattr(evaluate, "predict", lambda model, dataset, cfg: (probs, labels))
    stored = calibration.calibrate(None, SimpleNamespace(description="held out"), {})
    assert stored["temperature"] is None and "too few errors" in stored["not_applied"]
    assert calibration.temperature_of({"calibration": stored}) == 1.0
    shown = evaluate.calibration_report(probs, labels, {"calibration": stored})
    assert shown["temperature"] is None and shown["not_applied"] == stored["not_applied"]
    logits = rng.normal(0, 3, (4000, 10))
    p_true = np.exp(logits / 2.5) / np.exp(logits / 2.5).sum(1, keepdims=True)
    labels = np.array([rng.choice(10, p=p) for p in p_true])
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    temperature, why_not = calibration.temperature_for(probs, labels)
    assert temperature == pytest.approx(2.5, rel=0.1) and why_not is None


def test_calibration_split_comes_from_the_training_subjects():
    train = msr_split("train")
    held_out = {"cross_fit": None}      # the MSR config's own calibration is cross-fitted
    by_subject = load_config(MSR_CONFIG, {"calibration": {**held_out, "subjects": [9]}})
    rest, held = calibration.split_training_set(train, by_subject)
    assert len(rest) + len(held) == len(train)
    assert held.names and all("_s09_" in n for n in held.names)
    assert not any("_s09_" in n for n in rest.names)
    by_fraction = load_config(MSR_CONFIG, {"calibration": {**held_out, "fraction": 0.2,
                                                           "seed": 1}})
    rest, held = calibration.split_training_set(train, by_fraction)
    assert not set(rest.names) & set(held.names) and len(rest) + len(held) == len(train)
    assert set(held.labels) == set(train.labels)        # every class in the split
    assert 0.15 < len(held) / len(train) < 0.25
    assert calibration.split_training_set(train, load_config(MSR_CONFIG))[1] is None


def test_a_calibration_fraction_holds_out_whole_performances():
    """NW-UCLA films each performance from two training views: a held-out clip whose other
    view stays in training would be nearly a training clip."""
    nw_ucla = REPO / "config" / "train_nw_ucla.yaml"
    cfg = load_config(nw_ucla, {"calibration": {"subjects": None, "fraction": 0.2, "seed": 1}})
    _data("nw_ucla")
    from prgcn_ros.training.datasets import build_dataset
    train = build_dataset(cfg, "train")
    rest, held = calibration.split_training_set(train, cfg)
    performances = {name.rsplit("_v", 1)[0] for name in held.names}
    assert not performances & {name.rsplit("_v", 1)[0] for name in rest.names}
    assert 0.15 < len(held) / len(train) < 0.25 and set(held.labels) == set(train.labels)


def test_training_stores_a_temperature_and_eval_reports_ece(tmp_path, capsys):
    require_data()
    out = tmp_path / "cal.safetensors"
    assert train_cli.main(["--config", str(MSR_CONFIG), "--epochs", "1", "--max-steps", "2",
                           "--no-eval", "--no-progress", "--output", str(out), "--out-dir",
                           str(tmp_path / "run"), "--set", "optim.batch_size=8",
                           "--set", "calibration.subjects=[9]",
                           "--set", "calibration.cross_fit=null"]) == 0
    meta = json.loads(out.with_suffix(".json").read_text())
    cal = meta["calibration"]
    assert cal["temperature"] > 0 and cal["n"] > 40 and "subjects 9" in cal["split"]
    assert cal["nll_after"] <= cal["nll_before"] + 1e-9
    assert meta["training"]["train_clips"] + cal["n"] == len(msr_split("train"))
    capsys.readouterr()
    assert evaluate_cli.main(["--model", str(out), "--config", str(MSR_CONFIG), "--json",
                              "--set", "data.test_subjects=[2]", "--confusion",
                              str(tmp_path / "c.png")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["calibration"]["temperature"] == pytest.approx(cal["temperature"])
    assert {"ece_before", "ece_after", "mean_confidence_before",
            "mean_confidence_after"} <= set(result["calibration"])
