"""prgcn-train / prgcn-eval / prgcn-export end to end on real data, the ST-GCN array path, and
the shipped model's file."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from test_training_util import MSR_CONFIG, REPO, msr_split, require_data, small_cfg, subset

from prgcn_ros.training import evaluate as evaluate_cli
from prgcn_ros.training import export as export_cli
from prgcn_ros.training import train as train_cli
from prgcn_ros.training.config import ConfigError, load_config
from prgcn_ros.training.train import Trainer, save_trained_model

SHIPPED = REPO / "models" / "prgcn_msr_action3d.safetensors"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A model file trained for two steps on a few real clips (its metadata is real)."""
    train = msr_split("train")
    trainer = Trainer(small_cfg(seed=7), train_set=subset(train, 8), log=lambda m: None)
    trainer.train_epoch(progress=False)
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    return save_trained_model(path, trainer, {"split": "none", "top1": 0.0, "top5": 0.0,
                                              "n": 0})


def _one_subject_config(tmp_path: Path) -> Path:
    """The MSR config restricted to one test subject, writing into tmp_path."""
    text = MSR_CONFIG.read_text()
    text = text.replace("test_subjects: [2, 4, 6, 8, 10]", "test_subjects: [2]")
    text = text.replace("confusion_png: docs/confusion_msr_action3d.png",
                        f"confusion_png: {tmp_path / 'confusion.png'}")
    text = text.replace("dir: runs/msr_action3d", f"dir: {tmp_path / 'run'}")
    text = text.replace("cross_fit: [1, 3, 5, 7, 9]", "cross_fit: null")   # no fold trainings
    cfg = tmp_path / "msr.yaml"
    cfg.write_text(text)
    return cfg


def test_model_file_metadata(tiny_model):
    from prgcn_ros.model.io import ModelFileError, load_model

    meta = json.loads(tiny_model.with_suffix(".json").read_text())
    assert meta["layout"] == "kinect20" and meta["in_channels"] == 3
    assert len(meta["class_names"]) == 20 and meta["class_names"][12] == "bend"
    assert meta["fps"] == 15 and "window_length" not in meta
    assert meta["window"] == {"length": 48, "mode": "resample", "interpolation": "nearest"}
    assert meta["preprocess"]["center"] == "first_frame"
    assert meta["preprocess"]["scale"] == "torso"
    assert meta["inference"] == {"pair_orders": "given"}
    assert meta["training"]["data"]["train_subjects"] == [1, 3, 5, 7, 9]
    assert meta["training"]["data"]["test_subjects"] == [2, 4, 6, 8, 10]
    assert meta["code_version"] and "accuracy" in meta
    model, loaded = load_model(tiny_model, device="cpu", expected_layout="kinect20",
                               expected_channels=3)
    assert loaded["class_names"] == meta["class_names"]
    with pytest.raises(ModelFileError, match="tiny.safetensors"):
        load_model(tiny_model, device="cpu", expected_layout="ntu25", expected_channels=3)
    with pytest.raises(ModelFileError, match="tiny.safetensors"):
        load_model(tiny_model, device="cpu", expected_layout="kinect20", expected_channels=2)


def test_eval_json(tiny_model, tmp_path, capsys):
    require_data()
    cfg = _one_subject_config(tmp_path)
    assert evaluate_cli.main(["--model", str(tiny_model), "--config", str(cfg), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"top1", "top5", "n", "per_class", "confusion", "class_names"} <= set(result)
    assert result["n"] == sum(row["n"] for row in result["per_class"].values()) > 40
    assert 0.0 <= result["top1"] <= result["top5"] <= 1.0
    assert len(result["per_class"]) == 20
    assert np.asarray(result["confusion"]).sum() == result["n"]
    assert Path(result["confusion_png"]).stat().st_size > 10_000


def test_eval_mistakes_are_one_line(tiny_model, capsys):
    """The wrong config for a model names the config; a device that is not there says so."""
    ntu = REPO / "config" / "train_ntu60_xsub.yaml"
    assert evaluate_cli.main(["--model", str(tiny_model), "--config", str(ntu), "--json"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("prgcn-eval: error: ") and f"the config {ntu}" in err, err
    assert evaluate_cli.main(["--model", str(tiny_model), "--config", str(MSR_CONFIG),
                              "--device", "gpu"]) == 2
    assert "device must be auto, cpu, cuda or cuda:N" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert evaluate_cli.main(["--model", str(tiny_model), "--config", str(MSR_CONFIG),
                                  "--device", "cuda"]) == 2
        assert "CUDA is not available here" in capsys.readouterr().err


def test_a_test_split_the_model_trained_on_is_refused(tiny_model, capsys):
    """Subjects 1-5 and 7/9 trained the tiny model: a config testing on subject 1 (its own
    splits disjoint) would report training accuracy as a test figure."""
    require_data()
    assert evaluate_cli.main(["--model", str(tiny_model), "--config", str(MSR_CONFIG),
                              "--set", "data.train_subjects=[3]",
                              "--set", "data.test_subjects=[1]", "--json"]) == 2
    assert "was trained on subjects [1]" in capsys.readouterr().err
    with pytest.raises(ConfigError, match=r"splits share subjects \[1\]"):
        load_config(MSR_CONFIG, {"data": {"test_subjects": [1, 2]}})


def test_a_set_section_a_flag_also_sets_is_refused_not_dropped(capsys):
    """--set optim=5 with --epochs (or output=... with --out-dir / --output): the flag's
    setting is merged into that section, which would replace the value unchecked."""
    for given in (["--set", "optim=5", "--epochs", "3"],
                  ["--set", "output=foo", "--out-dir", "runs/x"],
                  ["--set", "output=foo", "--output", "m.safetensors"]):
        assert train_cli.main(["--config", str(MSR_CONFIG), *given]) == 2
        err = capsys.readouterr().err
        assert "is a section of settings" in err and "Traceback" not in err, err


def test_eval_metrics_by_hand():
    scores = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.5, 0.4, 0.1], [0.2, 0.2, 0.6]])
    labels = np.array([0, 1, 1, 2])
    result = evaluate_cli.metrics(scores, labels, ["a", "b", "c"])
    assert result["top1"] == 0.5 and result["top5"] == 1.0 and result["n"] == 4
    assert result["per_class"]["b"] == {"n": 2, "accuracy": 0.0}
    assert result["confusion"] == [[1, 0, 0], [1, 0, 1], [0, 0, 1]]


def test_train_cli_and_resume(tmp_path, capsys):
    require_data()
    cfg = _one_subject_config(tmp_path)
    out = tmp_path / "model.safetensors"
    args = ["--config", str(cfg), "--epochs", "2", "--max-steps", "1", "--no-eval",
            "--no-progress", "--output", str(out), "--set", "optim.batch_size=4"]
    assert train_cli.main([*args[:2], "--epochs", "1", *args[4:]]) == 0
    state = json.loads((tmp_path / "run" / "checkpoint.json").read_text())
    assert state["epoch"] == 1
    assert "holds a checkpoint" not in capsys.readouterr().err
    assert train_cli.main([*args[:2], "--epochs", "1", *args[4:]]) == 0   # again, not resumed
    assert "holds a checkpoint of an earlier run: starting over" in capsys.readouterr().err
    assert train_cli.main([*args, "--resume"]) == 0
    assert "resumed from" in capsys.readouterr().err
    state = json.loads((tmp_path / "run" / "checkpoint.json").read_text())
    assert state["epoch"] == 2 and len(state["history"]) == 2
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["training"]["epochs"] == 2
    assert train_cli.main(["--config", str(tmp_path / "nope.yaml")]) == 2


def test_train_cli_mistakes_are_one_line_before_any_training(tmp_path, capsys):
    """A damaged --init file or checkpoint, a changed network on --resume and an output path
    that cannot be written: exit 2, one line that says what, nothing trained."""
    require_data()
    cfg = _one_subject_config(tmp_path)
    args = ["--config", str(cfg), "--epochs", "1", "--max-steps", "1", "--no-eval",
            "--no-progress", "--set", "optim.batch_size=4"]
    assert train_cli.main([*args, "--output", str(tmp_path / "model.safetensors")]) == 0
    capsys.readouterr()

    def fails(*extra: str) -> str:
        assert train_cli.main([*args, *extra]) == 2
        err = capsys.readouterr().err
        errors = [line for line in err.splitlines() if line.startswith("prgcn-train: error: ")]
        assert len(errors) == 1 and "Traceback" not in err, err
        return errors[0]

    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes((tmp_path / "model.safetensors").read_bytes()[:100])
    truncated.with_suffix(".json").write_text((tmp_path / "model.json").read_text())
    assert "corrupt or truncated" in fails("--init", str(truncated), "--out-dir",
                                           str(tmp_path / "other"))
    assert "'model' settings differ" in fails("--resume", "--set", "model.use_tam=false")
    # Other clips, another rate: another run, not this one continued (more epochs would be).
    assert "'data' settings differ" in fails("--resume", "--set", "data.train_subjects=[1, 3]")
    assert "'optim' settings differ" in fails("--resume", "--set", "optim.lr=0.5")
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert "is a file, not a folder" in fails("--output", str(blocker / "m.safetensors"),
                                              "--out-dir", str(tmp_path / "third"))
    # The metadata's own name: it wrote the weights, then the metadata over them (exit 0).
    assert "give the weights another name" in fails("--output", str(tmp_path / "m.json"),
                                                    "--out-dir", str(tmp_path / "third"))
    assert not (tmp_path / "m.json").exists()
    assert not (tmp_path / "third" / "checkpoint.json").exists()
    weights = tmp_path / "run" / "checkpoint.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    assert "corrupt or truncated" in fails("--resume")


@pytest.mark.parametrize("stop", ["SIGINT", "SIGTERM"])
def test_a_stop_while_a_checkpoint_is_written_leaves_no_temporary_file(tmp_path, stop):
    """A sweep or a job scheduler stops prgcn-train with SIGTERM: it ended at once, leaving
    the checkpoint's temporary file; now as Ctrl-C does, through the clean-up, one line and
    exit 143 (Ctrl-C: 130), no traceback."""
    import os
    import signal
    import subprocess
    import sys

    require_data()
    cfg = _one_subject_config(tmp_path)
    child = tmp_path / "slow_checkpoint.py"
    child.write_text(
        "import sys, time\n"
        "import prgcn_ros.training.checkpoint as checkpoint\n"
        "real = checkpoint.save_file\n"
        "def slow(tensors, path, metadata=None):\n"
        "    real(tensors, path, metadata=metadata)\n"
        "    print('WRITING', flush=True)\n"
        "    time.sleep(60)\n"
        "checkpoint.save_file = slow\n"
        "from prgcn_ros.training import train\n"
        "sys.exit(train.main(sys.argv[1:]))\n")
    proc = subprocess.Popen(
        [sys.executable, str(child), "--config", str(cfg), "--epochs", "1", "--max-steps", "1",
         "--no-eval", "--no-progress", "--output", str(tmp_path / "model.safetensors"),
         "--set", "optim.batch_size=4"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        for line in proc.stdout:
            if line.startswith("WRITING"):
                break
        proc.send_signal(getattr(signal, stop))
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == (143 if stop == "SIGTERM" else 130), err
    assert "Traceback" not in err and "prgcn-train: stopped" in err, err
    left = [p.name for p in (tmp_path / "run").iterdir()]
    assert not [name for name in left if name.endswith(".tmp")], left
    assert not os.path.exists(tmp_path / "model.safetensors")


def test_main_in_process_leaves_the_callers_sigterm_handler_as_it_was(tmp_path):
    import signal

    before = signal.getsignal(signal.SIGTERM)
    assert train_cli.main(["--config", str(tmp_path / "nope.yaml")]) == 2
    assert signal.getsignal(signal.SIGTERM) is before


def test_train_writes_the_weight_average(tmp_path):
    from safetensors.torch import load_file

    require_data()
    cfg = _one_subject_config(tmp_path)
    out = tmp_path / "model.safetensors"
    assert train_cli.main(["--config", str(cfg), "--epochs", "1", "--max-steps", "3",
                           "--no-eval", "--no-progress", "--output", str(out),
                           "--set", "optim.batch_size=4", "--set", "optim.ema_decay=0.5"]) == 0
    written = load_file(str(out))
    checkpoint = load_file(str(tmp_path / "run" / "checkpoint.safetensors"))
    assert all(torch.equal(value, checkpoint[f"averaged.module.{key}"])
               for key, value in written.items())
    assert not all(torch.equal(value, checkpoint[f"model.{key}"])
                   for key, value in written.items())
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["training"]["optimizer"]["ema_decay"] == 0.5


@pytest.mark.parametrize("fmt", [pytest.param("onnx", marks=pytest.mark.slow), "torchscript"])
def test_export_cli(tiny_model, tmp_path, fmt):
    out = tmp_path / f"exported.{'onnx' if fmt == 'onnx' else 'pt'}"
    assert export_cli.main(["--model", str(tiny_model), "--format", fmt,
                            "--output", str(out)]) == 0
    assert out.stat().st_size > 100_000
    meta = json.loads(out.with_name(out.name + ".json").read_text())
    assert meta["layout"] == "kinect20" and meta["export"]["format"] == fmt
    assert meta["export"]["input"]["shape"] == [1, 3, 48, 20, 1]
    assert meta["class_names"] == json.loads(tiny_model.with_suffix(".json").read_text())[
        "class_names"]
    # The export computes what the model file computes.
    from prgcn_ros.model.io import load_model
    model, _ = load_model(tiny_model)
    x = torch.randn(2, 3, 48, 20, 1)
    with torch.no_grad():
        expected = model(x)[0].numpy()
    if fmt == "onnx":
        import onnxruntime
        session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    else:
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            scripted = torch.jit.load(str(out))
        got = scripted(x)[0].detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------- ST-GCN arrays
def _ntu_arrays(root: Path, data_dir: Path) -> list[int]:
    """Tiny ST-GCN release arrays (N, 3, 64, 25, 2) + pickle labels from the real NTU files."""
    from prgcn_ros.skeleton.readers import read_ntu_skeleton

    files = sorted((data_dir / "ntu_samples").glob("*.skeleton"))
    assert len(files) == 5
    data = np.zeros((len(files), 3, 64, 25, 2), np.float32)
    labels = []
    for i, path in enumerate(files):
        seq = read_ntu_skeleton(path).main_persons(2)
        t = min(seq.num_frames, 64)
        data[i, :, :t] = seq.coords[:t].transpose(3, 0, 2, 1)
        labels.append(int(seq.label))
    root.mkdir(parents=True)
    for split in ("train", "val"):
        np.save(root / f"{split}_data.npy", data)
        with open(root / f"{split}_label.pkl", "wb") as f:
            pickle.dump(([p.stem for p in files], labels), f)
    return labels


def test_stgcn_array_path(tmp_path):
    data_dir = require_data()
    if not (data_dir / "ntu_samples").is_dir():
        pytest.skip("no NTU samples")
    labels = _ntu_arrays(tmp_path / "NTU-RGB-D" / "xsub", data_dir)
    cfg = load_config(REPO / "config" / "train_ntu60_xsub.yaml",
                      {"data": {"dir": str(tmp_path)}, "window": {"length": 32},
                       "optim": {"batch_size": 5, "epochs": 1},
                       "output": {"dir": str(tmp_path / "run"),
                                  "model": str(tmp_path / "ntu.safetensors")}})
    summary = train_cli.train(cfg, progress=False, log=lambda m: None)
    assert summary["accuracy"]["n"] == 5
    meta = json.loads((tmp_path / "ntu.json").read_text())
    assert meta["layout"] == "ntu25" and meta["max_persons"] == 2
    assert meta["class_names"][labels[0]] and len(meta["class_names"]) == 60
    from prgcn_ros.training.batching import make_batch
    from prgcn_ros.training.datasets import build_dataset
    test = build_dataset(cfg, "test")
    x, y = make_batch([test[i] for i in range(5)], cfg, train=False)
    assert x.shape == (5, 3, 32, 25, 2) and y.tolist() == labels
    assert torch.isfinite(x).all()
    # Labels beyond the class names (a classes.txt too short): one line, before training.
    with open(tmp_path / "NTU-RGB-D" / "xsub" / "train_label.pkl", "wb") as f:
        pickle.dump((["a", "b", "c", "d", "e"], [0, 1, 2, 60, -1]), f)
    with pytest.raises(ValueError, match=r"labels \[-1, 60\] are outside 0..59"):
        build_dataset(cfg, "train")


# --------------------------------------------------------------------------- shipped model
def test_shipped_model_metadata():
    assert SHIPPED.is_file(), f"the shipped model {SHIPPED} is missing"
    meta = json.loads(SHIPPED.with_suffix(".json").read_text())
    assert meta["layout"] == "kinect20" and meta["in_channels"] == 3
    assert meta["architecture"]["use_prm"] and meta["architecture"]["use_tam"]
    assert len(meta["class_names"]) == 20
    acc = meta["accuracy"]
    assert acc["n"] == 273      # its figures: test_shipped_model_accuracy_matches_metadata
    # 14.6 min on a quiet 2-core machine; the restore recipe's run took 68.5 min beside two other
    # trainings on the same 2 cores (docs/refinement.md).
    assert meta["training"]["train_time_s"] < 90 * 60
    assert meta["training"]["data"]["file_list"] == "files_used_in_cvpr12_paper.txt"


@pytest.mark.slow
def test_shipped_model_accuracy_matches_metadata():
    require_data()
    assert SHIPPED.is_file(), f"the shipped model {SHIPPED} is missing"
    from prgcn_ros.model.io import load_model
    from prgcn_ros.training.datasets import build_dataset

    cfg = load_config(MSR_CONFIG)
    model, meta = load_model(SHIPPED, device="cpu", expected_layout="kinect20",
                             expected_channels=3)
    cfg = evaluate_cli.config_for_model(cfg, meta)
    result = evaluate_cli.evaluate_model(model, build_dataset(cfg, "test"), cfg)
    assert result["n"] == 273
    assert result["top1"] == pytest.approx(meta["accuracy"]["top1"], abs=1e-9)
    assert result["top5"] == pytest.approx(meta["accuracy"]["top5"], abs=1e-9)


def test_eval_never_overwrites_a_tracked_figure_without_force(tiny_model, tmp_path, capsys):
    require_data()
    tracked = REPO / "docs" / "confusion_msr_action3d.png"
    before = tracked.read_bytes()
    cfg = _one_subject_config(tmp_path)
    assert evaluate_cli.main(["--model", str(tiny_model), "--config", str(cfg), "--json",
                              "--confusion", str(tracked)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert tracked.read_bytes() == before
    assert Path(result["confusion_png"]) == tmp_path / "run" / tracked.name


def test_a_run_that_cannot_start_leaves_no_run_folder(tmp_path, capsys):
    """A calibration split with no clip stopped the run after its (empty) folder was made."""
    require_data()
    run = tmp_path / "run" / "deeper"
    assert train_cli.main(["--config", str(MSR_CONFIG), "--out-dir", str(run),
                           "--set", "calibration.subjects=[99]",
                           "--set", "calibration.cross_fit=null"]) == 2
    err = capsys.readouterr().err
    assert "calibration.subjects" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()
