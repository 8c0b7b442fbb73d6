"""Training: data split, schedule, augmentation, a few real steps, seeds, checkpoints, resume."""
from __future__ import annotations

import copy
import json
import math
import re

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from test_training_util import MSR_CONFIG, REPO, frame_counter, msr_split, small_cfg, subset

from prgcn_ros.model.io import read_header
from prgcn_ros.skeleton.sequence import SkeletonSequence
from prgcn_ros.training import batching, noise
from prgcn_ros.training import evaluate as evaluate_cli
from prgcn_ros.training.augment import augment
from prgcn_ros.training.config import (
    DATA_KIND_LAYOUTS,
    ConfigError,
    data_root,
    learning_rate,
    load_config,
    lr_milestones,
)
from prgcn_ros.training.datasets import (
    SequenceDataset,
    msr_clip,
    msr_file_list,
)
from prgcn_ros.training.export import example_input
from prgcn_ros.training.train import Trainer, mixup_draw, parse_set


# --------------------------------------------------------------------------- config
def test_config_defaults_and_unknown_keys(tmp_path):
    cfg = load_config(MSR_CONFIG)
    assert cfg["layout"] == "kinect20" and cfg["model"]["in_channels"] == 3
    assert cfg["window"]["length"] == 48 and cfg["optim"]["momentum"] == 0.9
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim:\n  learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match="learning_rate"):
        load_config(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


@pytest.mark.parametrize("override, named", [
    ({"augment": {"tilt_deg": -10}}, "augment.tilt_deg"),      # read as no tilt at all
    ({"augment": {"rotate_deg": 400}}, "augment.rotate_deg"),
    ({"augment": {"mirror": 3}}, "augment.mirror"),
    ({"augment": {"swap_persons": -1}}, "augment.swap_persons"),
    ({"augment": {"translate": -0.1}}, "augment.translate"),
    ({"augment": {"scale": [-1, -1]}}, "augment.scale"),       # every clip upside down
    ({"augment": {"scale": [0.0, 1.0]}}, "augment.scale"),
    ({"augment": {"scale": [1.1]}}, "augment.scale"),          # failed at the first batch
    ({"augment": {"scale": [1.2, 0.9]}}, "augment.scale"),
    ({"augment": {"vertical_axis": 3}}, "augment.vertical_axis"),
    ({"augment": {"vertical_axis": 1.5}}, "augment.vertical_axis"),
    ({"augment": {"drop_limb": 1.2}}, "augment.drop_limb"),
    ({"augment": {"body_shape": -0.1}}, "augment.body_shape"),
    ({"augment": {"path_scale": [1.0, 0.5]}}, "augment.path_scale"),
    ({"refine": {"corrupt_prob": 1.5}}, "refine.corrupt_prob"),
    ({"refine": {"noise": {"jitter": -0.02}}}, "refine.noise.jitter"),   # noise off
    ({"refine": {"noise": {"strength": -1}}}, "refine.noise.strength"),
    ({"refine": {"noise": {"drop_frames": 2.5}}}, "refine.noise.drop_frames"),
    ({"refine": {"noise": {"drop_prob": 2}}}, "refine.noise.drop_prob"),
    ({"refine": {"noise": {"spike_range": [0.5, 0.2]}}}, "refine.noise.spike_range"),
    ({"window": {"length": 47.9}}, "window.length"),           # trained as 47 frames
    ({"window": {"length": 20_000}}, "window.length"),         # a model file refuses it
    ({"window": {"train_min_fraction": 0}}, "window.train_min_fraction"),
    ({"window": {"train_min_fraction": 1.5}}, "window.train_min_fraction"),
    ({"window": {"train_frame_step": [0.5, 1.0]}}, "window.train_frame_step"),
])
def test_augmentation_and_noise_values_out_of_range_are_named(override, named):
    """A value, not only a key, can be wrong: each out of its range is refused with its key
    at load, instead of training another recipe without a word or failing mid-setup."""
    with pytest.raises(ConfigError, match=re.escape(named)):
        load_config(MSR_CONFIG, override)


def test_outliers_per_batch_without_their_data_is_refused():
    """outliers.per_batch with no outliers.data trained without a single foreign clip."""
    with pytest.raises(ConfigError, match="outliers.data"):
        load_config(None, {"outliers": {"per_batch": 8}})
    with pytest.raises(ConfigError, match="outliers.per_batch"):
        load_config(MSR_CONFIG, {"outliers": {"per_batch": 2.5}})


def test_evaluation_strengths_multiply_the_training_noise():
    """refine.eval_strengths 1 is the training noise, whatever its own strength: the
    strength replaced the config's instead (a config of strength 2 was measured at 1)."""
    cfg = load_config(MSR_CONFIG, {"refine": {"noise": {"strength": 2.0}}})
    assert noise.noise_config(cfg, 1.0) == noise.noise_config(cfg)
    assert noise.noise_config(cfg, 2.0).strength == 4.0


def test_null_augmentation_and_noise_values_are_their_defaults(msr_train):
    """null means the default's value: it used to fail at the first batch (float(None))."""
    cfg = load_config(MSR_CONFIG, {"augment": {"rotate_deg": None, "scale": None,
                                               "mirror": None},
                                   "refine": {"noise": {"jitter": None}}})
    assert (cfg["augment"]["rotate_deg"], cfg["augment"]["scale"], cfg["augment"]["mirror"],
            cfg["refine"]["noise"]["jitter"]) == (0.0, [1.0, 1.0], 0.0, 0.02)
    batching.build_batch([msr_train[i] for i in range(2)], cfg, train=True)


def test_numbers_yaml_reads_as_strings_are_numbers(tmp_path):
    config = tmp_path / "lr.yaml"
    config.write_text("optim: {lr: 1e-3, weight_decay: 5e-4}\n")   # YAML 1.1: two strings
    cfg = load_config(config, parse_set(["optim.momentum=9e-1"]))
    assert (cfg["optim"]["lr"], cfg["optim"]["weight_decay"]) == (0.001, 0.0005)
    assert cfg["optim"]["momentum"] == 0.9


@pytest.mark.parametrize("text, words", [
    ("window: 48\n", "window: expected a section"),
    ("model: stgcn\n", "model: expected a section"),
    ("window: {length: abc}\n", "window.length: expected a number, got 'abc'"),
    ("augment: {rotate_deg: lots}\n", "augment.rotate_deg: expected a number"),
    ("augment: {scale: 1.1}\n", "augment.scale: expected a list"),
    ("optim: {nesterov: 'yes'}\n", "optim.nesterov: expected true or false"),
    ("optim: {schedule: {milestones: 40}}\n", "milestones must be a list of epochs"),
    ("optim: [1\n", "not valid YAML"),
    ("optim: {epochs: 0}\n", "optim.epochs must be a whole number of at least 1, got 0"),
    ("optim: {batch_size: -4}\n", "optim.batch_size must be a whole number of at least 1"),
    # Settings whose default is null took any value, and failed later as a traceback.
    ("data: {dir: 5}\n", "data.dir: expected a path, got 5"),
    ("output: {model: [1]}\n", "output.model: expected a path, got [1]"),
    ("calibration: {subjects: 5}\n", "calibration.subjects: expected a list of subjects"),
    ("outliers: {data: nw_ucla, per_batch: 1}\n", "outliers.data: expected a data section"),
    ("outliers: {data: {kind: nw_ucla, rot: x}, per_batch: 1}\n",
     "outliers.data: unknown key 'rot'"),
    ("optim: {grad_clip: abc}\n", "optim.grad_clip: expected a number, got 'abc'"),
    ("optim: {schedule: {every: 2.5}}\n", "optim.schedule.every must be a whole number"),
    ("data: {max_persons: 3}\n", "data.max_persons must be 1 or 2"),
    ("optim: {schedule: {every: 0}}\n", "optim.schedule.every must be a whole number"),
    ("optim: {schedule: {start: -1}}\n", "optim.schedule.start must be a whole number"),
    ("outliers: {data: {kind: nw_ucla, dir: 5}, per_batch: 1}\n",
     "outliers.data.dir: expected a path, got 5"),
    ("data: {class_names: 5}\n", "data.class_names: expected a list or a file's path"),
    ("calibration: {cross_fit: 5}\n", "calibration.cross_fit must list at least two"),
    ("outliers: {classes: 5}\n", "outliers.classes: expected a list of class numbers"),
    ("eval: {confusion_png: 5}\n", "eval.confusion_png: expected a path, got 5"),
])
def test_config_mistakes_are_one_line_naming_the_key(tmp_path, text, words):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(words)) as error:
        load_config(bad)
    assert str(bad) in str(error.value)


def test_nullable_numbers_and_schedule_bounds_that_are_right_load(tmp_path):
    config = tmp_path / "ok.yaml"
    config.write_text("optim: {grad_clip: 1e1, schedule: {start: 0, every: 1}}\n")
    cfg = load_config(config)
    assert cfg["optim"]["grad_clip"] == 10.0
    assert (cfg["optim"]["schedule"]["start"], cfg["optim"]["schedule"]["every"]) == (0, 1)


def test_an_override_is_checked_against_the_default_not_the_configs_null(tmp_path):
    """The MSR config sets optim.schedule.start to null: --set start=abc was not checked, and
    failed at the first epoch as int('abc') naming no setting."""
    assert load_config(MSR_CONFIG)["optim"]["schedule"]["start"] is None
    for value in ("abc", "[1]"):
        with pytest.raises(ConfigError, match=re.escape("overrides.optim.schedule.start: "
                                                        "expected a number")):
            load_config(MSR_CONFIG, parse_set([f"optim.schedule.start={value}"]))


def test_data_location_from_config_and_env(tmp_path, monkeypatch):
    monkeypatch.delenv("PRGCN_DATA", raising=False)
    cfg = load_config(MSR_CONFIG, {"data": {"dir": str(tmp_path / "cfgdata")}})
    assert data_root(cfg) == tmp_path / "cfgdata" / "msr_action3d"
    monkeypatch.setenv("PRGCN_DATA", str(tmp_path / "env"))
    # An absolute data.dir is the config's explicit choice and wins; a relative one does not.
    assert data_root(cfg) == tmp_path / "cfgdata" / "msr_action3d"
    relative = load_config(MSR_CONFIG, {"data": {"dir": "somewhere"}})
    assert data_root(relative) == tmp_path / "env" / "msr_action3d"
    assert data_root(load_config(MSR_CONFIG)) == tmp_path / "env" / "msr_action3d"
    # The error says which setting chose the folder, and that $PRGCN_DATA cannot move it.
    from prgcn_ros.training.datasets import build_dataset
    with pytest.raises(FileNotFoundError, match="data.dir of the config; an absolute data.dir "
                       "wins over .PRGCN_DATA"):
        build_dataset(cfg, "train")
    with pytest.raises(FileNotFoundError, match=r"chosen by \$PRGCN_DATA\)"):
        build_dataset(relative, "train")
    monkeypatch.delenv("PRGCN_DATA")
    default = load_config(MSR_CONFIG)
    assert data_root(default).parent.name == "data"        # ../shared/data by default


def test_lr_schedule_forms():
    cfg = load_config(MSR_CONFIG, parse_set(["optim.epochs=40", "optim.lr=0.01",
                                             "optim.schedule.milestones=null",
                                             "optim.schedule.start=10",
                                             "optim.schedule.every=10"]))
    assert lr_milestones(cfg) == [10, 20, 30]
    assert learning_rate(cfg, 9) == pytest.approx(0.01)
    assert learning_rate(cfg, 10) == pytest.approx(0.001)
    assert learning_rate(cfg, 35) == pytest.approx(1e-5)
    cfg = load_config(MSR_CONFIG, parse_set(["optim.schedule.milestones=[50, 80]"]))
    assert [learning_rate(cfg, e) for e in (49, 50, 80)] == pytest.approx([0.01, 1e-3, 1e-4])


def test_a_class_named_unknown_is_refused():
    """'unknown' is what /action says below min_confidence: a class of that name could not be
    told apart from it."""
    from prgcn_ros.training.datasets import class_names

    cfg = load_config(None, overrides={"data": {"kind": "stgcn_arrays",
                                                "class_names": ["wave", "unknown"]}})
    with pytest.raises(ConfigError, match="may not be named 'unknown'"):
        class_names(cfg)


def test_lr_cosine_schedule_and_warmup():
    cfg = load_config(MSR_CONFIG, parse_set(["optim.epochs=45", "optim.lr=0.02",
                                             "optim.schedule.kind=cosine",
                                             "optim.schedule.warmup=5"]))
    rates = [learning_rate(cfg, e) for e in range(45)]
    assert rates[:6] == pytest.approx([0.02 * k / 6 for k in range(1, 6)] + [0.02])
    assert rates[25] == pytest.approx(0.01)                # half way along the cosine
    assert all(a > b for a, b in zip(rates[5:], rates[6:]))
    assert 0 < rates[-1] < 0.001
    assert lr_milestones(cfg) == []
    # the step schedule takes the warm-up too, then its milestones as before
    cfg = load_config(MSR_CONFIG, parse_set(["optim.schedule.milestones=[50, 80]",
                                             "optim.schedule.warmup=3"]))
    assert [learning_rate(cfg, e) for e in (0, 2, 3, 50)] == pytest.approx(
        [0.0025, 0.0075, 0.01, 1e-3])
    for bad, match in (("optim.schedule.kind=linear", "schedule.kind"),
                       ("optim.schedule.warmup=1000", "schedule.warmup")):
        with pytest.raises(ConfigError, match=match):
            load_config(MSR_CONFIG, parse_set([bad]))


# --------------------------------------------------------------------------- data
def test_msr_names_and_cross_subject_split():
    clip = msr_clip("a12_s03_e02_skeleton3D.txt")
    assert (clip.action, clip.subject, clip.repetition, clip.label) == (12, 3, 2, 11)
    with pytest.raises(ValueError):
        msr_clip("a12_s03.txt")
    cfg = load_config(MSR_CONFIG)
    msr_split("train")
    listed = msr_file_list(data_root(cfg), "files_used_in_cvpr12_paper.txt")
    assert len(listed) == 557
    train, test = msr_split("train"), msr_split("test")
    assert len(train) + len(test) == 557
    assert (len(train), len(test)) == (284, 273)
    subjects = {n: msr_clip(n).subject for n in train.names + test.names}
    assert {subjects[n] for n in train.names} == {1, 3, 5, 7, 9}
    assert {subjects[n] for n in test.names} == {2, 4, 6, 8, 10}
    assert sorted(set(train.labels)) == list(range(20)) == sorted(set(test.labels))
    assert train.class_names[0] == "high arm wave" and len(train.class_names) == 20
    seq = train[0]
    assert seq.layout == "kinect20" == DATA_KIND_LAYOUTS["msr_action3d"]
    assert seq.label == train.labels[0]


def test_batches_use_shared_preprocessing(msr_train):
    cfg = load_config(MSR_CONFIG)
    clips = [msr_train[i] for i in range(4)]
    x, y = batching.make_batch(clips, cfg, train=False)
    assert x.shape == (4, 3, 48, 20, 1) and x.dtype == torch.float32
    assert y.tolist() == [c.label for c in clips]
    # First-frame centring: the hip centre of the first frame is the origin.
    hip = 6
    assert torch.allclose(x[:, :, 0, hip, 0], torch.zeros(4, 3), atol=1e-5)
    # Torso-length scale: mean hip-centre -> shoulder-centre distance is 1.
    torso = (x[:, :, :, 2, 0] - x[:, :, :, hip, 0]).norm(dim=1).mean(1)
    assert torch.allclose(torso, torch.ones(4), atol=0.05)
    again, _ = batching.make_batch(clips, cfg, train=False)
    assert torch.equal(x, again)                       # evaluation is deterministic
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    a, _ = batching.make_batch(clips, cfg, train=True, generator=g1)
    b, _ = batching.make_batch(clips, cfg, train=True, generator=g2)
    assert torch.equal(a, b) and not torch.equal(a, x)


def test_augment_rotates_about_vertical_and_keeps_missing_joints():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(6, 3, 5, 4, 1)
    present = torch.ones(6, 5, 4, 1, dtype=torch.bool)
    present[:, :, 3] = False
    x[:, :, :, 3] = 0.0
    out, _ = augment(x, present, 3, {"rotate_deg": 20, "vertical_axis": 1}, gen)
    assert torch.allclose(out[:, 1], x[:, 1])          # heights unchanged
    horizontal = lambda t: t[:, [0, 2]].norm(dim=1)    # noqa: E731
    assert torch.allclose(horizontal(out), horizontal(x), atol=1e-5)
    assert not torch.allclose(out, x)
    assert torch.equal(out[:, :, :, 3], x[:, :, :, 3])  # missing joints not moved
    # At most 20 degrees.
    cos = (out[:, [0, 2]] * x[:, [0, 2]]).sum(1) / (horizontal(out) * horizontal(x)).clamp(1e-6)
    assert cos[:, :, :3].min() >= math.cos(math.radians(20)) - 1e-4
    moved, _ = augment(x, present, 3, {"translate": 0.1}, torch.Generator().manual_seed(1))
    shift = moved - x
    assert shift[:, :, :, :3].abs().max() <= 0.1 + 1e-6
    assert torch.equal(shift[:, :, :, 3], torch.zeros_like(shift[:, :, :, 3]))
    two_d = torch.randn(2, 3, 5, 4, 1)                 # x, y, confidence
    out2, _ = augment(two_d, torch.ones(2, 5, 4, 1, dtype=torch.bool), 2, {"rotate_deg": 10},
                      torch.Generator().manual_seed(2))
    assert torch.equal(out2[:, 2], two_d[:, 2])        # confidence channel untouched


# --------------------------------------------------------------------------- training
def test_a_few_steps_lower_the_loss(msr_train):
    cfg = small_cfg(seed=3)
    trainer = Trainer(cfg, train_set=subset(msr_train, 12), log=lambda m: None)
    clips = [trainer.train_set[i] for i in range(len(trainer.train_set))]
    batch = batching.build_batch(clips, cfg, train=False)
    # 20 steps, not 8: at the recipe's weight the restore term dominates the sum and rises for
    # a few steps while the PRM's Adam starts (the total is back under 0.7x by step 17).
    losses = [trainer.step(batch, torch.Generator().manual_seed(0))["loss"] for _ in range(20)]
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.7 * losses[0], losses


def test_fixed_seed_is_repeatable(msr_train):
    data = subset(msr_train, 8)

    def run(seed):
        trainer = Trainer(small_cfg(seed=seed), train_set=data, log=lambda m: None)
        stats = trainer.train_epoch(progress=False)
        return stats["loss"], {k: v.clone() for k, v in trainer.model.state_dict().items()}

    loss_a, a = run(1)
    loss_b, b = run(1)
    loss_c, c = run(2)
    assert loss_a == loss_b
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


def test_pair_orders_setting():
    assert load_config(MSR_CONFIG)["inference"]["pair_orders"] == "given"
    with pytest.raises(ConfigError, match="inference.pair_orders must be one of given, both"):
        load_config(MSR_CONFIG, {"inference": {"pair_orders": "sorted"}})


def test_train_sampling_setting():
    """sorted_random draws each training window's frames from the whole clip in order; the
    evaluation window stays the even resampling."""
    assert load_config(MSR_CONFIG)["window"]["train_sampling"] == "crop"
    with pytest.raises(ConfigError, match="window.train_sampling must be"):
        load_config(MSR_CONFIG, {"window": {"train_sampling": "shuffle"}})
    cfg = load_config(MSR_CONFIG, {"window": {"train_sampling": "sorted_random"}})
    seq = frame_counter(30)
    rng = np.random.default_rng(3)
    drawn = [batching.window(seq, cfg, rng).coords[:, 0, 0, 0] for _ in range(10)]
    assert all(len(d) == 48 and np.all(np.diff(d) >= 0) for d in drawn)
    assert len({tuple(d) for d in drawn}) == 10
    even = batching.window(seq, cfg, None).coords[:, 0, 0, 0]
    assert np.array_equal(even, batching.window(seq, load_config(MSR_CONFIG), None)
                          .coords[:, 0, 0, 0])


def test_train_frame_step_setting():
    """window.train_frame_step thins each training clip to every s-th frame over the whole
    clip (fewer frames of the whole action); evaluation and the default draw nothing."""
    assert load_config(MSR_CONFIG)["window"]["train_frame_step"] == [1.0, 1.0]
    for bad, said in (([0.5, 2.0], "must be"), ([2.0, 1.5], "must be"), ("2", "expected a list")):
        with pytest.raises(ConfigError, match=f"window.train_frame_step.*{said}"):
            load_config(MSR_CONFIG, {"window": {"train_frame_step": bad}})
    whole = {"train_min_fraction": 1.0}
    cfg = load_config(MSR_CONFIG, {"window": {**whole, "train_frame_step": [2.0, 3.0]}})
    seq = frame_counter(60)
    rng = np.random.default_rng(5)
    for _ in range(20):
        frames = batching.window(seq, cfg, rng).coords[:, 0, 0, 0]
        kept = np.unique(frames)
        assert len(frames) == 48 and 20 <= len(kept) <= 30, kept     # 60 / 3 .. 60 / 2
        assert kept[0] < 3 and kept[-1] >= 57                          # the whole clip
        assert np.all(np.diff(kept) >= 2) and np.all(np.diff(kept) <= 3)
    # Off by default: the random stream, and so every earlier recipe's windows, unchanged.
    plain = load_config(MSR_CONFIG, {"window": whole})
    before = copy.deepcopy(plain)
    del before["window"]["train_frame_step"]          # a config from before the setting
    a, b = np.random.default_rng(9), np.random.default_rng(9)
    assert np.array_equal(batching.window(seq, plain, a).coords,
                          batching.window(seq, before, b).coords)
    assert a.random() == b.random()
    even = batching.window(seq, cfg, None).coords[:, 0, 0, 0]
    assert np.array_equal(even, batching.window(seq, plain, None).coords[:, 0, 0, 0])


def test_interpolation_setting():
    """window.interpolation: linear stretches a short clip smoothly for training and evaluation;
    a model's metadata decides how its clips are resampled, nearest when it predates the key."""
    assert load_config(MSR_CONFIG)["window"]["interpolation"] == "nearest"
    with pytest.raises(ConfigError, match="window.interpolation must be one of nearest, linear"):
        load_config(MSR_CONFIG, {"window": {"interpolation": "cubic"}})
    cfg = load_config(MSR_CONFIG, {"window": {"interpolation": "linear"}})
    seq = frame_counter(20)
    rng = np.random.default_rng(3)
    for rng_or_none in (rng, rng, None):
        steps = np.diff(batching.window(seq, cfg, rng_or_none).coords[:, 0, 0, 0])
        assert np.all(steps >= 0) and np.ptp(steps[2:-2]) < 1e-5    # even pace, no stalls
    nearest = np.diff(batching.window(seq, load_config(MSR_CONFIG), None).coords[:, 0, 0, 0])
    assert (nearest == 0).sum() == 28
    meta = {"window": {"length": 48, "mode": "resample", "interpolation": "linear"}}
    assert evaluate_cli.config_for_model(load_config(MSR_CONFIG), meta)["window"][
        "interpolation"] == "linear"
    old = {"window": {"length": 48, "mode": "resample"}}
    assert evaluate_cli.config_for_model(cfg, old)["window"]["interpolation"] == "nearest"
    # save_model accepts a plain length, and the live node reads it: so does prgcn-eval.
    plain = evaluate_cli.config_for_model(cfg, {"window": 32})["window"]
    assert (plain["mode"], plain["length"], plain["interpolation"]) == ("resample", 32, "nearest")
    assert example_input({"window": 32, "layout": "kinect20"}).shape == (1, 3, 32, 20, 1)
    # The architecture is what io.load_model requires; the top-level copies may be absent.
    arch_only = {"window": 48, "max_persons": 2,
                 "architecture": {"layout": "openni15", "in_channels": 3}}
    assert example_input(arch_only).shape == (1, 3, 48, 15, 2)


def test_device_setting(msr_train):
    assert load_config(MSR_CONFIG)["device"] == "auto"
    with pytest.raises(ConfigError, match="device must be auto, cpu, cuda or cuda:N"):
        load_config(MSR_CONFIG, {"device": "gpu"})
    trainer = Trainer(small_cfg(device="cpu"), train_set=subset(msr_train, 4), log=lambda m: None)
    assert trainer.dist.device.type == "cpu"
    if not torch.cuda.is_available():
        assert Trainer(small_cfg(), train_set=subset(msr_train, 4),
                       log=lambda m: None).dist.device.type == "cpu"        # auto
        with pytest.raises(ValueError, match="CUDA is not available"):
            Trainer(small_cfg(device="cuda"), train_set=subset(msr_train, 4), log=lambda m: None)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_cuda_training_follows_the_cpu_run_and_saves_a_cpu_model(msr_train, tmp_path):
    from prgcn_ros.model.io import load_model
    from prgcn_ros.training.train import save_trained_model

    data = subset(msr_train, 8)
    runs = {}
    for device in ("cpu", "cuda"):
        trainer = Trainer(small_cfg(seed=6, device=device), train_set=data, log=lambda m: None)
        trainer.train_epoch(progress=False)
        runs[device] = trainer
    cpu, gpu = runs["cpu"], runs["cuda"]
    assert next(gpu.model.parameters()).device.type == "cuda"
    # The same batches and noise draws (made on the CPU): the same losses up to kernel rounding.
    assert gpu.history[-1]["loss"] == pytest.approx(cpu.history[-1]["loss"], rel=1e-3)
    gpu.save(tmp_path / "run")
    resumed = Trainer(small_cfg(seed=6, device="cuda"), train_set=data, log=lambda m: None)
    resumed.resume(tmp_path / "run")
    resumed.train_epoch(progress=False)
    path = save_trained_model(tmp_path / "gpu.safetensors", resumed, None)
    model, meta = load_model(path, device="cpu", expected_layout="kinect20")
    assert "trained on cuda" in meta["training"]["machine"]
    assert next(model.parameters()).device.type == "cpu"


@pytest.mark.parametrize("prm_optimizer", ["sgd", "adam"])
def test_checkpoint_resume_continues_exactly(msr_train, tmp_path, prm_optimizer):
    data = subset(msr_train, 8)
    refine = {**load_config(MSR_CONFIG)["refine"], "prm_optimizer": prm_optimizer}
    cfg = small_cfg(seed=4, epochs=2, refine=refine)
    straight = Trainer(cfg, train_set=data, log=lambda m: None)
    straight.train_epoch(progress=False)
    straight.train_epoch(progress=False)

    first = Trainer(cfg, train_set=data, log=lambda m: None)
    first.train_epoch(progress=False)
    first.save(tmp_path / "run")
    files = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert files == ["checkpoint.json", "checkpoint.safetensors"]  # no pickle
    state = json.loads((tmp_path / "run" / "checkpoint.json").read_text())
    assert state["epoch"] == 1 and state["optimizer"]["param_groups"][0]["momentum"] == 0.9

    resumed = Trainer(cfg, train_set=data, log=lambda m: None)
    resumed.resume(tmp_path / "run")
    assert resumed.epoch == 1
    resumed.train_epoch(progress=False)
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.history[-1]["loss"] == straight.history[-1]["loss"]

    if prm_optimizer == "adam":      # the PRM's Adam moments travel with the checkpoint
        saved = load_file(str(tmp_path / "run" / "checkpoint.safetensors"))
        assert any(k.endswith(".exp_avg_sq") for k in saved)
    other = Trainer(small_cfg(seed=5, epochs=2, refine=refine), train_set=data,
                    log=lambda m: None)
    with pytest.raises(ConfigError, match="seed"):
        other.resume(tmp_path / "run")


def test_checkpoint_from_before_an_option_existed_resumes(msr_train, tmp_path):
    """A checkpoint whose recorded config lacks options added since (their defaults then) is
    the same recipe as today's config."""
    data = subset(msr_train, 8)
    cfg = small_cfg(seed=4, epochs=2)
    first = Trainer(cfg, train_set=data, log=lambda m: None)
    first.train_epoch(progress=False, max_steps=1)
    first.save(tmp_path / "run")
    # Written as before the weights' header held the state: the JSON alone holds it.
    weights = tmp_path / "run" / "checkpoint.safetensors"
    save_file(load_file(str(weights)), str(weights),
              metadata={"format": "prgcn_ros.training.checkpoint/1"})
    state_file = tmp_path / "run" / "checkpoint.json"
    state = json.loads(state_file.read_text())
    del state["config"]["augment"]["body_shape"], state["config"]["optim"]["ema_decay"]
    state_file.write_text(json.dumps(state))
    resumed = Trainer(cfg, train_set=data, log=lambda m: None)
    resumed.resume(tmp_path / "run")
    assert resumed.epoch == 1
    state["config"]["augment"]["rotate_deg"] = 45.0      # a real difference is still refused
    state_file.write_text(json.dumps(state))
    with pytest.raises(ConfigError, match="augment"):
        Trainer(cfg, train_set=data, log=lambda m: None).resume(tmp_path / "run")


def test_a_checkpoint_whose_refine_channels_came_from_an_older_default_resumes(msr_train,
                                                                                tmp_path):
    """Unset, refine_channels is the code's default of the day: for image keypoints 3 until
    2026-12-06, 2 since, so such a checkpoint recorded no value and its weights hold the old
    one. It resumes with that value set, and without it the error names the setting (it was
    a weights mismatch, and setting the value was refused as a settings change). Here on 3D
    data, a run of 2 channels standing in for one whose default has since changed."""
    data = subset(msr_train, 8)
    model = {**load_config(MSR_CONFIG)["model"], "refine_channels": 2, "rigid_bones": False}
    cfg = small_cfg(seed=4, epochs=2, model=model)
    first = Trainer(cfg, train_set=data, log=lambda m: None)
    first.train_epoch(progress=False, max_steps=1)
    first.save(tmp_path / "run")
    weights = tmp_path / "run" / "checkpoint.safetensors"
    state = json.loads(read_header(weights, "checkpoint")["state"])
    del state["config"]["model"]["refine_channels"]              # as the older run recorded it
    save_file(load_file(str(weights)), str(weights),
              metadata={"format": "prgcn_ros.training.checkpoint/1", "state": json.dumps(state)})
    resumed = Trainer(cfg, train_set=data, log=lambda m: None)
    resumed.resume(tmp_path / "run")
    assert resumed.epoch == 1 and resumed.model.refine_channels == 2
    unset = Trainer(small_cfg(seed=4, epochs=2, model={**model, "refine_channels": None}),
                    train_set=data, log=lambda m: None)
    with pytest.raises(ConfigError, match="'model' settings differ.*'refine_channels': 2"):
        unset.resume(tmp_path / "run")


def test_a_checkpoint_torn_by_an_interrupted_save_resumes_whole(msr_train, tmp_path):
    """A run stopped between writing the checkpoint's weights and its JSON (epoch 2's weights,
    epoch 1's JSON; or no JSON yet) resumes epoch 2 whole: the state is committed with the
    weights. Before, epoch 2's weights, optimizer and average resumed as epoch 1, and epoch 2
    was trained twice."""
    data = subset(msr_train, 8)
    cfg = small_cfg(seed=4, epochs=3)
    run = Trainer(cfg, train_set=data, log=lambda m: None)
    run.train_epoch(progress=False, max_steps=1)
    run.save(tmp_path / "run")
    epoch_one = (tmp_path / "run" / "checkpoint.json").read_text()
    run.train_epoch(progress=False, max_steps=1)
    run.save(tmp_path / "run")
    (tmp_path / "run" / "checkpoint.json").write_text(epoch_one)     # the torn pair
    resumed = Trainer(cfg, train_set=data, log=lambda m: None)
    resumed.resume(tmp_path / "run")
    assert (resumed.epoch, resumed.steps) == (2, run.steps) and len(resumed.history) == 2
    (tmp_path / "run" / "checkpoint.json").unlink()                   # not written at all
    resumed = Trainer(cfg, train_set=data, log=lambda m: None)
    resumed.resume(tmp_path / "run")
    assert resumed.epoch == 2


def test_a_resume_by_other_code_or_processes_is_said_and_recorded(msr_train, tmp_path):
    """A checkpoint continued by other code or another number of processes: a warning each,
    and the model file's code_version names both (it named the checkpoint's alone)."""
    data = subset(msr_train, 8)
    cfg = small_cfg(seed=4, epochs=2)
    run = Trainer(cfg, train_set=data, log=lambda m: None)
    run.code_version = "v0.1-3-gdeadbee"
    run.train_epoch(progress=False, max_steps=1)
    run.save(tmp_path / "run")
    weights = tmp_path / "run" / "checkpoint.safetensors"
    header = safe_open(str(weights), framework="pt").metadata()
    state = json.loads(header["state"])
    state["processes"] = 2
    save_file(load_file(str(weights)), str(weights),
              metadata={**header, "state": json.dumps(state)})
    said = []
    resumed = Trainer(cfg, train_set=data, log=said.append)
    resumed.resume(tmp_path / "run")
    assert any("written by code v0.1-3-gdeadbee" in line for line in said), said
    assert any("written by 2 process(es)" in line for line in said), said
    assert resumed.code_version.startswith("v0.1-3-gdeadbee, resumed with ")
    # Resumed again by the same code: nothing to say, nothing added.
    resumed.save(tmp_path / "run")
    said.clear()
    again = Trainer(cfg, train_set=data, log=said.append)
    again.resume(tmp_path / "run")
    assert again.code_version == resumed.code_version
    assert not any("written by code" in line for line in said), said


def test_a_cosine_run_resumes_only_at_its_own_length(msr_train, tmp_path):
    """The step schedule's run may be extended on resume; a cosine's length is its curve (a
    50-epoch run resumed for 100 would jump from near 0 to half the rate)."""
    data = subset(msr_train, 8)

    def cfg(epochs: int) -> dict:
        return small_cfg(optim={"batch_size": 4, "epochs": epochs,
                                "schedule": {"kind": "cosine", "warmup": 1}})

    first = Trainer(cfg(3), train_set=data, log=lambda m: None)
    first.train_epoch(progress=False, max_steps=1)
    first.save(tmp_path / "run")
    Trainer(cfg(3), train_set=data, log=lambda m: None).resume(tmp_path / "run")
    with pytest.raises(ConfigError, match="cosine schedule's length"):
        Trainer(cfg(6), train_set=data, log=lambda m: None).resume(tmp_path / "run")
    step = small_cfg(epochs=3)
    first = Trainer(step, train_set=data, log=lambda m: None)
    first.save(tmp_path / "step")
    Trainer(small_cfg(epochs=6), train_set=data, log=lambda m: None).resume(tmp_path / "step")


def test_mixup_blends_the_windows_and_their_labels(msr_train):
    alpha = 0.4
    cfg = small_cfg(optim={"batch_size": 8, "mixup": alpha, "label_smoothing": 0.1},
                    refine={"corrupt_prob": 0.8}, outliers={"per_batch": 0})
    trainer = Trainer(cfg, train_set=subset(msr_train, 8), log=lambda m: None)
    clips = [trainer.train_set[i] for i in range(8)]
    batch = batching.build_batch(clips, cfg, train=True, generator=torch.Generator().manual_seed(2))
    assert len(set(batch.labels.tolist())) > 1
    seen: dict[str, torch.Tensor] = {}
    trainer.model.register_forward_hook(
        lambda _, args, output: seen.update(x=args[0].detach(), logits=output[0].detach(),
                                            refined=output[1].detach()))
    gen = torch.Generator().manual_seed(5)
    replay = torch.Generator()
    replay.set_state(gen.get_state())
    losses = trainer.step(batch, gen)

    # The same draws in the same order: the noise model's, then mixup's.
    noisy, _ = noise.corrupt(batch.x, batch.present, batch.scale, cfg["layout"], trainer.noise,
                             replay, dims=batch.dims)
    pick = torch.rand(8, generator=replay) < 0.8
    given = torch.where(pick[:, None, None, None, None], noisy, batch.x)
    weight, order = mixup_draw(8, alpha, replay)
    assert 0.0 < weight < 1.0 and not torch.equal(order, torch.arange(8))
    torch.testing.assert_close(seen["x"], weight * given + (1 - weight) * given[order])
    ce = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    expected = (weight * ce(seen["logits"], batch.labels)
                + (1 - weight) * ce(seen["logits"], batch.labels[order]))
    assert losses["classification"] == pytest.approx(float(expected), rel=1e-5)
    # The PRM is pulled towards the same blend of the clean windows, over either clip's joints.
    clean = weight * batch.x + (1 - weight) * batch.x[order]
    restore = trainer.restore_losses(seen["refined"], seen["x"], clean,
                                     batch.present | batch.present[order], batch.dims)
    assert losses["restore"] == pytest.approx(float(restore["restore"]), rel=1e-5)

    with pytest.raises(ConfigError, match="mixup is a Beta"):
        small_cfg(optim={"mixup": -1.0})
    with pytest.raises(ConfigError, match="mixup blends"):
        small_cfg(optim={"mixup": 0.2, "view_consistency": 1.0})


def test_weight_average_follows_its_definition_and_resumes(msr_train, tmp_path):
    from prgcn_ros.training.checkpoint import CheckpointError

    data = subset(msr_train, 8)
    decay = 0.5
    cfg = small_cfg(seed=4, epochs=3, optim={"batch_size": 4, "epochs": 3, "ema_decay": decay})
    trainer = Trainer(cfg, train_set=data, log=lambda m: None)
    floats = [k for k, v in trainer.model.state_dict().items() if v.is_floating_point()]
    expected = None
    for epoch in range(3):
        trainer.train_epoch(progress=False, max_steps=1)
        weights = {k: trainer.model.state_dict()[k].clone() for k in floats}
        # EMA: the first step's weights, then decay * average + (1 - decay) * weights.
        expected = weights if expected is None else {
            k: decay * expected[k] + (1 - decay) * weights[k] for k in floats}
        if epoch == 1:
            trainer.save(tmp_path / "run")
    last = {k: trainer.model.state_dict()[k].clone() for k in floats}
    trainer.take_averaged_weights()
    averaged = trainer.model.state_dict()
    for k in floats:      # parameters and batch-norm statistics alike
        torch.testing.assert_close(averaged[k], expected[k], rtol=1e-5, atol=1e-6)
    assert any(not torch.equal(averaged[k], last[k]) for k in floats)

    resumed = Trainer(cfg, train_set=data, log=lambda m: None)
    resumed.resume(tmp_path / "run")
    resumed.train_epoch(progress=False, max_steps=1)
    resumed.take_averaged_weights()
    assert all(torch.equal(resumed.model.state_dict()[k], averaged[k]) for k in floats)

    plain = Trainer(small_cfg(seed=4, epochs=3), train_set=data, log=lambda m: None)
    with pytest.raises(ConfigError, match="'optim' settings differ.*ema_decay"):
        plain.resume(tmp_path / "run")          # the settings say so before the weights do
    from prgcn_ros.training.checkpoint import load_checkpoint
    with pytest.raises(CheckpointError, match="ema_decay"):   # and the weights, without them
        load_checkpoint(tmp_path / "run", plain.model, plain.optimizer, None)
    with pytest.raises(ConfigError, match="ema_decay"):
        small_cfg(optim={"ema_decay": 1.0})


def test_sequence_dataset_caches(msr_train):
    calls = []

    def load():
        calls.append(1)
        return msr_train[0]

    ds = SequenceDataset([load], [msr_train.labels[0]], ["x"], msr_train.class_names, "one")
    assert ds[0] is ds[0] and len(calls) == 1


def test_mirror_swaps_sides_and_negates_x():
    from prgcn_ros.skeleton.layouts import get_layout
    lay = get_layout("kinect20")
    x = torch.randn(8, 3, 4, 20, 1)
    present = torch.ones(8, 4, 20, 1, dtype=torch.bool)
    lw, rw, head = lay.index("left_wrist"), lay.index("right_wrist"), lay.index("head")
    present[:, :, lw] = False                  # the driver lost the left wrist
    x[:, :, :, lw] = 0.0
    out, mirrored = augment(x, present, 3, {"mirror": 1.0}, torch.Generator().manual_seed(0),
                            layout="kinect20")
    # The lost joint is now the right wrist: the mask goes with it (noise, restore loss).
    assert not mirrored[:, :, rw].any() and mirrored[:, :, lw].all()
    assert torch.equal(out[:, :, :, rw], torch.zeros_like(out[:, :, :, rw]))
    assert torch.allclose(out[:, 0, :, lw], -x[:, 0, :, rw])
    assert torch.allclose(out[:, 1:, :, lw], x[:, 1:, :, rw])
    assert torch.allclose(out[:, 0, :, head], -x[:, 0, :, head])
    with pytest.raises(ValueError, match="layout"):
        augment(x, present, 3, {"mirror": 0.5}, torch.Generator())


def test_path_scale_scales_the_walk_not_the_pose(msr_train):
    """augment.path_scale: the root's displacement over the ground since its first frame is
    scaled, its height and each frame's pose about the root are not; a frame whose root the
    driver lost moves with the last frame that had it, and a lost joint is not moved."""
    from prgcn_ros.skeleton.layouts import get_layout
    lay = get_layout("kinect20")
    root = lay.index("hip_center")
    batch = batching.build_batch([msr_train[i] for i in range(4)], small_cfg(), train=False)
    x, present = batch.x.clone(), batch.present.clone()
    x[:, 0, :, :, 0] += torch.linspace(0.0, 2.0, x.shape[2])[None, :, None]  # walk along x
    present[0, 3, root] = False                       # the driver lost the root in frame 3
    wrist = lay.index("left_wrist")
    present[1, 2, wrist] = False                      # and a wrist in frame 2
    out, _ = augment(x, present, 3, {"path_scale": [0.5, 0.5]}, torch.Generator(),
                     layout="kinect20")
    seen = present[1:, :, root, 0]
    moved = out[1:, :, :, root, 0] - out[1:, :, :1, root, 0]
    walked = x[1:, :, :, root, 0] - x[1:, :, :1, root, 0]
    assert torch.allclose(moved[:, [0, 2]], 0.5 * walked[:, [0, 2]], atol=1e-5)
    assert torch.allclose(moved[:, 1], walked[:, 1], atol=1e-5)          # height kept
    pose_after = out[1:, :, :, :, 0] - out[1:, :, :, root:root + 1, 0]
    pose_before = x[1:, :, :, :, 0] - x[1:, :, :, root:root + 1, 0]
    both = (present[1:, :, :, 0] & seen[:, :, None])[:, None].expand_as(pose_after)
    both = both.clone()
    both[0, :, 2, wrist] = False
    assert torch.allclose(pose_after[both], pose_before[both], atol=1e-5)
    assert torch.equal(out[1, :, 2, wrist], x[1, :, 2, wrist])
    others = [j for j in range(lay.num_joints) if j != root]   # the lost root itself stays
    assert torch.allclose(out[0, :, 3, others] - x[0, :, 3, others],
                          out[0, :, 2, others] - x[0, :, 2, others], atol=1e-6)
    assert torch.equal(out[0, :, 3, root], x[0, :, 3, root])
    with pytest.raises(ValueError, match="layout"):
        augment(x, present, 3, {"path_scale": [0.5, 1.0]}, torch.Generator())
    from prgcn_ros.training.config import ConfigError, load_config
    for wrong in ([1.2, 0.4], [-0.5, 1.0], ["far", 1.0], [0.5, 1.0, 1.5]):
        with pytest.raises(ConfigError, match="path_scale"):
            load_config(None, overrides={"augment": {"path_scale": wrong}})
    with pytest.raises(ConfigError, match="per_frame removes"):
        load_config(None, overrides={"augment": {"path_scale": [0.5, 1.0]},
                                     "preprocess": {"center": "per_frame"}})


def _held_at_last_sight(x: torch.Tensor, present: torch.Tensor) -> bool:
    """Every joint not present is at its joint's latest present place (0 before any)."""
    for n, t, v, m in (~present).nonzero().tolist():
        seen = present[n, :t + 1, v, m].nonzero()
        want = x[n, :3, int(seen[-1]), v, m] if len(seen) else torch.zeros(3)
        if not torch.equal(x[n, :3, t, v, m], want):
            return False
    return True


def test_missing_previous_holds_joints_where_augmentation_and_noise_leave_them(msr_train):
    """preprocess.missing: previous holds a lost joint at its last place; training moves the
    body (turns, mirror) and corrupts it after preprocessing, and the held joints go with it
    as the live node would hold them, not left where the unmoved body had them."""
    from prgcn_ros.skeleton.layouts import get_layout
    hand = get_layout("kinect20").index("left_hand")
    clips = []
    for i in range(4):
        seq = msr_train[i]
        confidence = seq.confidence.copy()
        confidence[20:, 0, hand] = 0.0                  # the driver lost the hand at frame 20
        clips.append(SkeletonSequence(seq.coords, confidence, seq.layout, seq.fps, seq.label))
    cfg = small_cfg(preprocess={"missing": "previous"},
                    augment={"rotate_deg": 90.0, "mirror": 0.5, "scale": [0.8, 1.2]})
    batch = batching.build_batch(clips, cfg, train=True,
                                 generator=torch.Generator().manual_seed(3))
    assert (~batch.present).any() and _held_at_last_sight(batch.x, batch.present)
    noisy, still = noise.corrupt(batch.x, batch.present, batch.scale, "kinect20",
                                 noise.noise_config(cfg), torch.Generator().manual_seed(4),
                                 dims=3, missing="previous")
    assert (batch.present & ~still).any() and _held_at_last_sight(noisy, still)


def test_body_shape_changes_proportions_not_motion(msr_train):
    """augment.body_shape: each bone keeps its direction in every frame and gets one length
    factor for the whole clip, shared by its left and right twins; the root stays, and a
    joint the driver missed is not moved."""
    from prgcn_ros.skeleton.layouts import get_layout
    lay = get_layout("kinect20")
    batch = batching.build_batch([msr_train[i] for i in range(4)], small_cfg(), train=False)
    x, present = batch.x, batch.present.clone()
    present[0, 2, lay.index("left_wrist")] = False   # as if the driver lost it in frame 2
    out, _ = augment(x, present, 3, {"body_shape": 0.15}, torch.Generator().manual_seed(0),
                     layout="kinect20")
    root = lay.center
    assert torch.equal(out[:, :, :, root], x[:, :, :, root])
    wrist = lay.index("left_wrist")
    assert torch.equal(out[0, :, 2, wrist], x[0, :, 2, wrist])
    factors = {}
    seen = present[1:, :, :, 0]           # clips 1-3: every joint where the driver saw it
    for parent, child in lay.tree():
        before = x[1:, :, :, child, 0] - x[1:, :, :, parent, 0]               # (3, C, T)
        after = out[1:, :, :, child, 0] - out[1:, :, :, parent, 0]
        both = seen[:, :, child] & seen[:, :, parent] & (before.norm(dim=1) > 1e-3)
        ratio = after.norm(dim=1) / before.norm(dim=1).clamp(min=1e-9)          # (3, T)
        cos = torch.nn.functional.cosine_similarity(after, before, dim=1)
        assert torch.all(cos[both] > 0.9999)
        factor = ratio[both].reshape(-1)
        per_clip = [ratio[i][both[i]] for i in range(3)]
        assert all(torch.allclose(r, r[0].expand_as(r), atol=1e-4) for r in per_clip if len(r))
        factors[lay.joints[child]] = torch.stack([r[0] for r in per_clip])
        assert torch.all((factor > 0.49) & (factor < 1.51))
    assert torch.allclose(factors["left_elbow"], factors["right_elbow"], atol=1e-4)
    assert torch.allclose(factors["left_knee"], factors["right_knee"], atol=1e-4)
    assert not torch.allclose(factors["left_elbow"], factors["left_knee"], atol=1e-2)
    assert float(torch.stack(list(factors.values())).std()) > 0.05
    with pytest.raises(ValueError, match="layout"):
        augment(x, present, 3, {"body_shape": 0.1}, torch.Generator())
    with pytest.raises(ConfigError, match="body_shape"):
        small_cfg(augment={"body_shape": -0.1})


def test_drop_limb_takes_one_whole_limb_out_of_the_window():
    """augment.drop_limb: at probability 1 each person loses exactly one limb (an arm from
    the elbow, a leg from the knee) in every frame, zeroed and no longer present; the other
    joints are untouched; at 0.5 about half of the people lose one."""
    from prgcn_ros.skeleton.layouts import get_layout
    lay = get_layout("kinect20")
    x = torch.randn(400, 3, 6, 20, 1)
    present = torch.ones(400, 6, 20, 1, dtype=torch.bool)
    out, kept = augment(x, present, 3, {"drop_limb": 1.0}, torch.Generator().manual_seed(0),
                        layout="kinect20")
    lost = ~kept[:, 0, :, 0]                                       # (N, V), frame 0
    assert torch.equal(~kept, lost[:, None, :, None].expand_as(kept))   # the whole window
    assert torch.all(out.permute(0, 2, 3, 4, 1)[~kept] == 0)
    assert torch.equal(out[kept[:, None].expand_as(out)], x[kept[:, None].expand_as(x)])
    limbs = {tuple(j for j in range(20) if lay.joints[j].startswith(side) and any(
        part in lay.joints[j] for part in parts))
        for side in ("left_", "right_") for parts in (("elbow", "wrist", "hand"),
                                                      ("knee", "ankle", "foot"))}
    drawn = {tuple(torch.nonzero(row).flatten().tolist()) for row in lost}
    assert drawn == limbs                                         # each of the four, and only
    _, half = augment(x, present, 3, {"drop_limb": 0.5}, torch.Generator().manual_seed(1),
                      layout="kinect20")
    assert 0.4 < float((~half[:, 0, :, 0]).any(1).float().mean()) < 0.6
    with pytest.raises(ValueError, match="layout"):
        augment(x, present, 3, {"drop_limb": 0.5}, torch.Generator())
    with pytest.raises(ConfigError, match="drop_limb"):
        small_cfg(augment={"drop_limb": 1.5})


def test_swap_persons_exchanges_the_two_people_before_preprocessing():
    """augment.swap_persons 1: a two-person clip trains as if its people came in the other
    order (the shared preprocessing then anchors on the other person); a lone person keeps
    slot 0."""
    from prgcn_ros import paths
    from prgcn_ros.training.datasets import build_dataset

    if not (paths.data_dir() / "sbu_interaction").is_dir():
        pytest.skip("no SBU data (../shared/data/README.md)")
    sbu = REPO / "config" / "train_sbu_interaction.yaml"
    still = {"rotate_deg": 0, "scale": [1.0, 1.0], "translate": 0.0}
    swapping = load_config(sbu, {"augment": {**still, "swap_persons": 1.0},
                                 "window": {"train_min_fraction": 1.0}})
    keeping = load_config(sbu, {"augment": {**still, "swap_persons": 0.0},
                                "window": {"train_min_fraction": 1.0}})
    clip = build_dataset(keeping, "test")[0]
    swapped = batching.build_batch([clip], swapping, train=True,
                                   generator=torch.Generator().manual_seed(0))
    reversed_clip = batching.build_batch([clip.select_persons([1, 0])], keeping, train=True,
                                         generator=torch.Generator().manual_seed(0))
    plain = batching.build_batch([clip], keeping, train=True,
                                 generator=torch.Generator().manual_seed(0))
    assert torch.equal(swapped.x, reversed_clip.x) and not torch.equal(swapped.x, plain.x)
    alone = clip.select_persons([0]).main_persons(2)
    lone = batching.build_batch([alone], swapping, train=True,
                                generator=torch.Generator().manual_seed(0))
    assert bool(lone.present[..., 0].any()) and not bool(lone.present[..., 1].any())


def test_main_persons_choose_by_presence_and_keep_the_recordings_order():
    """The people seen most make a sample, in the order the recording has them: live, a
    pair's slot 0 is the lower person_id, a played recording's first slot. Ordered by
    presence, a clip whose second person is seen more trained the other way round."""
    t, v = 10, 15
    confidence = np.ones((t, 3, v), np.float32)
    confidence[:4, 0] = 0.0          # the first person comes in late
    confidence[:, 1, :8] = 0.0       # a spurious body, half seen
    coords = np.arange(t * 3 * v * 3, dtype=np.float32).reshape(t, 3, v, 3)
    clip = SkeletonSequence(coords, confidence, "openni15", 15.0, person_ids=[7, 8, 9])
    pair = clip.main_persons(2)
    assert pair.person_ids == [7, 9]
    assert np.array_equal(pair.coords, coords[:, [0, 2]])
    assert clip.main_persons(1).person_ids == [9]                  # the one seen most
    assert clip.main_persons(4).person_ids == [7, 8, 9, -1]


@pytest.mark.parametrize("prm_optimizer", ["sgd", "adam"])
def test_links_learn_at_their_own_rate(prm_optimizer):
    """optim.links_lr_scale: the per-sample and learned links (they start at zero) in a group
    of their own at that multiple of the rate, the PRM's group as before, every parameter in
    exactly one group; at 1 the groups are the network's and the PRM's alone."""
    from prgcn_ros.model.prgcn import PRGCN
    from prgcn_ros.training.train import make_optimizer

    model = PRGCN(10, "kinect20", sample_topology=True, learned_edges=True)
    names = {id(p): name for name, p in model.named_parameters()}
    for scale, count in ((10.0, 3), (1.0, 2)):
        cfg = small_cfg(optim={"lr": 0.01, "links_lr_scale": scale},
                        refine={"prm_optimizer": prm_optimizer, "prm_lr_scale": 0.3})
        optimizer = make_optimizer(model, cfg)
        groups = optimizer.param_groups
        assert len(groups) == count
        if prm_optimizer == "adam":                 # Adam takes the PRM's group alone
            sgd, adam = optimizer.optimizers
            assert isinstance(adam, torch.optim.Adam) and len(adam.param_groups) == 1
            assert all(names[id(p)].startswith("prm.") for p in adam.param_groups[0]["params"])
            assert not any(names[id(p)].startswith("prm.") for g in sgd.param_groups
                           for p in g["params"])
        owners = [id(p) for g in groups for p in g["params"]]
        assert sorted(owners) == sorted(names) and len(set(owners)) == len(owners)
        by_rate = {round(g["lr"], 6): {names[id(p)] for p in g["params"]} for g in groups}
        assert all(n.startswith("prm.") for n in by_rate[0.003])
        if scale == 10.0:
            links = by_rate[0.1]
            assert len(links) == 7 * 7 + 7      # 7 convolutions: 3 1x1 convs and alpha, edges
            assert all(".topology." in n or n.endswith(".edges") for n in links)
            assert not any(".topology." in n for n in by_rate[0.01])
    with pytest.raises(ConfigError, match="links_lr_scale"):
        small_cfg(optim={"links_lr_scale": 0.0})


@pytest.mark.parametrize("override, named", [
    ({"layout": "ntu25"}, "does not fit data.kind 'msr_action3d', whose clips are 'kinect20': "
     "set layout: kinect20"),
    ({"layout": "openni15", "data": {"kind": "nw_ucla"}}, "data.kind 'nw_ucla'"),
    ({"data": {"kind": "sbu_interaction"}}, "data.kind 'sbu_interaction', whose clips are "
     "'openni15'"),
    ({"outliers": {"data": {"kind": "sbu_interaction", "root": "sbu"}}},
     "outliers.data.kind 'sbu_interaction'"),
])
def test_a_layout_that_does_not_fit_the_datasets_clips_is_refused(override, named):
    """Refused at load, naming the layout to set; before, the first batch failed on the joint
    count, after the data had loaded."""
    with pytest.raises(ConfigError, match=re.escape(named)):
        load_config(MSR_CONFIG, override)


def test_random_transforms_cover_their_ranges_on_both_sides():
    """Each augmentation draws over its whole range, both signs: rotations of +-rotate_deg
    about the vertical, tilts of +-tilt_deg about each horizontal axis, scales over [lo, hi],
    shifts of +-translate along each axis (a one-sided or halved range trains on other poses
    than the recipe says)."""
    from prgcn_ros.training.augment import random_transforms

    aug = {"rotate_deg": 30, "tilt_deg": 10, "scale": [0.9, 1.1], "translate": 0.2,
           "vertical_axis": 1}
    mat, offset = random_transforms(4000, 3, aug, torch.Generator().manual_seed(0))
    mat, offset = mat.double(), offset.double()
    scale = torch.linalg.det(mat).abs() ** (1 / 3)
    assert scale.min() < 0.905 and scale.max() > 1.095 and scale.min() >= 0.9 - 1e-5
    rot = mat / scale[:, None, None]
    # The vertical axis's image: tilted by up to the tilt each way about x and z.
    up = rot[:, :, 1]
    for horizontal in (0, 2):
        tilt = torch.rad2deg(torch.asin(up[:, horizontal].clamp(-1, 1)))
        assert tilt.min() < -8 and tilt.max() > 8 and tilt.abs().max() < 15
    # The heading: x's image in the horizontal plane, up to 30 degrees each way.
    heading = torch.rad2deg(torch.atan2(rot[:, 2, 0], rot[:, 0, 0]))
    assert heading.min() < -27 and heading.max() > 27 and heading.abs().max() < 33
    assert offset.min() < -0.19 and offset.max() > 0.19 and offset.abs().max() <= 0.2 + 1e-6
    for axis in range(3):
        assert offset[:, axis].min() < -0.15 and offset[:, axis].max() > 0.15
