"""The training loop as its config says: seeds and order, the schedule, the loss terms, the weight
average, evaluation metrics, calibration, optimiser settings, checkpoints and resume (tests
from a mutation audit: each fails on a mutant the other tests let through)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from test_training_util import MSR_CONFIG, REPO, msr_split, require_data, small_cfg, subset

from prgcn_ros.training import batching, calibration
from prgcn_ros.training import evaluate as evaluate_cli
from prgcn_ros.training import train as train_cli
from prgcn_ros.training.config import ConfigError, learning_rate, load_config
from prgcn_ros.training.datasets import SequenceDataset, build_dataset
from prgcn_ros.training.train import Trainer, epoch_seed, rank_seed


# --------------------------------------------------------------------------- seeds and order
def test_epochs_and_ranks_draw_from_seeds_of_their_own():
    """Every epoch of a run, and every rank of an epoch under torchrun, has a seed of its own
    (a rank's is no other epoch's: ranks would replay each other's draws)."""
    epochs = [epoch_seed(1, e) for e in range(200)]
    assert len(set(epochs)) == 200 and epoch_seed(2, 0) not in epochs
    ranks = [rank_seed(epochs[0], r) for r in range(8)]
    assert len(set(ranks)) == 8 and not set(ranks) & {epoch_seed(1, e) for e in range(1000)}


def test_every_epoch_shuffles_the_clips_afresh(msr_train, monkeypatch):
    """Each epoch visits every clip once, in an order of its own (drawn from the epoch's seed)."""
    data = subset(msr_train, 8)
    trainer = Trainer(small_cfg(seed=3, epochs=2, outliers={"per_batch": 0}), train_set=data,
                      log=lambda m: None)
    fed: list[list[str]] = []
    build = batching.build_batch
    monkeypatch.setattr(batching, "build_batch",
                        lambda seqs, *a, **k: (fed[-1].extend(s.source for s in seqs),
                                               build(seqs, *a, **k))[1])
    orders = []
    for _ in range(2):
        fed.append([])
        trainer.train_epoch(progress=False)
        orders.append(fed[-1])
    given = [data[i].source for i in range(len(data))]
    assert all(sorted(order) == sorted(given) for order in orders)
    assert orders[0] != given and orders[0] != orders[1]


def test_a_resumed_run_with_dropout_continues_exactly(msr_train, tmp_path):
    """Dropout draws from the global generator, seeded per epoch: a resumed ST-GCN run with
    dropout continues as the uninterrupted run would have."""
    data = subset(msr_train, 8)
    cfg = small_cfg(seed=4, epochs=2, model={"name": "stgcn", "dropout": 0.5},
                    window={"length": 16})
    straight = Trainer(cfg, train_set=data, log=lambda m: None)
    straight.train_epoch(progress=False, max_steps=1)
    straight.save(tmp_path / "run")
    straight.train_epoch(progress=False, max_steps=1)
    resumed = Trainer(cfg, train_set=data, log=lambda m: None)
    resumed.resume(tmp_path / "run")
    resumed.train_epoch(progress=False, max_steps=1)
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


# --------------------------------------------------------------------------- schedule
def test_each_epoch_steps_at_its_scheduled_rate_times_its_groups_scale(msr_train):
    """The rate of epoch e is learning_rate(cfg, e) (warm-up, milestones), and the PRM's group
    keeps its refine.prm_lr_scale every epoch, not only at the optimiser's construction."""
    cfg = small_cfg(optim={"batch_size": 4, "epochs": 4, "lr": 0.01,
                           "schedule": {"milestones": [2, 3], "warmup": 1}},
                    refine={"prm_lr_scale": 0.3})
    trainer = Trainer(cfg, train_set=subset(msr_train, 4), log=lambda m: None)
    seen = []
    step = trainer.step

    def recording_step(*args):
        seen.append([g["lr"] for g in trainer.optimizer.param_groups])
        return step(*args)

    trainer.step = recording_step
    for epoch, rate in enumerate((0.005, 0.01, 0.001, 0.0001)):
        stats = trainer.train_epoch(progress=False, max_steps=1)
        assert stats["lr"] == pytest.approx(rate) == learning_rate(cfg, epoch)
        assert seen[-1] == pytest.approx([rate, 0.3 * rate])


# --------------------------------------------------------------------------- losses
def test_restore_terms_are_weighted_as_the_config_says(msr_train):
    """restore_weight x smooth-L1(refined, clean) over the clean window's joints and channels,
    and offset_weight x mean |refined - given|, on the first `dims` channels."""
    cfg = small_cfg(refine={"restore_weight": 7.0, "offset_weight": 0.25, "restore_beta": 0.05})
    trainer = Trainer(cfg, train_set=subset(msr_train, 4), log=lambda m: None)
    g = torch.Generator().manual_seed(0)
    clean = torch.randn(2, 4, 8, 20, 1, generator=g)        # 3 coordinates + one more channel
    given = clean + 0.3 * torch.randn(clean.shape, generator=g)
    refined = clean + 0.1 * torch.randn(clean.shape, generator=g)
    present = torch.rand(2, 8, 20, 1, generator=g) > 0.3
    out = trainer.restore_losses(refined, given, clean, present, 3)
    r, c, gv = refined[:, :3], clean[:, :3], given[:, :3]
    mask = present[:, None].expand_as(c)
    error = torch.nn.functional.smooth_l1_loss(r, c, reduction="none", beta=0.05)
    assert float(out["restore"]) == pytest.approx(7.0 * float(error[mask].mean()), rel=1e-5)
    assert float(out["offset"]) == pytest.approx(0.25 * float((r - gv).abs().mean()), rel=1e-5)


def test_without_corruption_there_is_no_restore_term(msr_train):
    """refine.corrupt_prob 0: the classifier sees the clean windows and nothing pulls the PRM
    (the restore objective needs corrupted windows to learn from)."""
    cfg = small_cfg(refine={"corrupt_prob": 0.0})
    data = subset(msr_train, 4)
    trainer = Trainer(cfg, train_set=data, log=lambda m: None)
    batch = batching.build_batch([data[i] for i in range(4)], cfg, train=False)
    assert set(trainer.step(batch, torch.Generator().manual_seed(0))) == {"classification", "loss"}


def test_the_epoch_loss_is_the_mean_over_its_clips(msr_train):
    """An epoch's figures are per clip: each step's losses weighted by its clips (a last,
    smaller batch counts less), as history and the model file's final_loss report them."""
    cfg = small_cfg(optim={"batch_size": 3, "epochs": 1}, outliers={"per_batch": 0})
    trainer = Trainer(cfg, train_set=subset(msr_train, 8), log=lambda m: None)
    steps = []
    step = trainer.step

    def recording_step(batch, *rest):
        out = step(batch, *rest)
        steps.append((batch.x.shape[0], out))
        return out

    trainer.step = recording_step
    stats = trainer.train_epoch(progress=False)
    assert [n for n, _ in steps] == [3, 3, 2] and stats["clips"] == 8
    for name in ("loss", "classification", "restore", "offset"):
        expected = sum(n * out[name] for n, out in steps) / 8
        assert stats[name] == pytest.approx(expected, rel=1e-9)


OUTLIERS = {"data": {"kind": "nw_ucla", "root": "nw_ucla", "train_views": [1]},
            "classes": ["sit down", "stand up"], "per_batch": 4, "weight": 1.0}


@pytest.mark.parametrize("restore", [False, True])
def test_outlier_clips_are_the_minus_one_rows_alone(msr_train, monkeypatch, restore):
    """Only the rows labelled -1 are outliers (class 0 is a class like any other): they alone
    get the outlier loss, and the restore loss takes them only with outliers.restore."""
    from prgcn_ros.training import outliers
    data = subset(msr_train, 4)
    assert 0 in data.labels
    trainer = Trainer(small_cfg(outliers={**OUTLIERS, "restore": restore},
                                refine={"corrupt_prob": 1.0}),
                      train_set=data, log=lambda m: None)
    to_uniform, restored = [], []
    loss, restore_losses = outliers.outlier_loss, trainer.restore_losses
    monkeypatch.setattr(outliers, "outlier_loss",
                        lambda logits: (to_uniform.append(logits.shape[0]), loss(logits))[1])
    trainer.restore_losses = lambda refined, *rest: (restored.append(refined.shape[0]),
                                                     restore_losses(refined, *rest))[1]
    trainer.train_epoch(progress=False)
    assert to_uniform == [4] and restored == [8 if restore else 4]


def test_the_view_term_is_its_weight_times_one_minus_the_centred_cosine():
    """optim.view_consistency w: w x mean(1 - cos) of the paired clips' pooled features, each
    centred on the batch's mean first (raw pooled features all point much the same way)."""
    from test_training_views import nw_cfg, twin_subset
    data = twin_subset(4)
    trainer = Trainer(nw_cfg(view_consistency=3.0), train_set=data, log=lambda m: None)
    pooled, steps = [], []
    trainer.model.classifier.register_forward_pre_hook(
        lambda _, args: pooled.append(args[0].detach()))
    step = trainer.step

    def recording_step(batch, generator, pairs, *rest):
        steps.append((pairs.clone(), step(batch, generator, pairs, *rest)))
        return steps[-1][1]

    trainer.step = recording_step
    trainer.train_epoch(progress=False, max_steps=1)
    (pairs, losses), = steps
    assert len(pairs) > 0 and pooled[0].shape[0] > pairs.max()
    centred = pooled[0] - pooled[0].mean(0, keepdim=True)
    cos = torch.nn.functional.cosine_similarity(centred[pairs[:, 0]], centred[pairs[:, 1]], dim=1)
    assert losses["view"] == pytest.approx(3.0 * float((1 - cos).mean()), rel=1e-4)


# --------------------------------------------------------------------------- weight average
def test_the_weight_average_is_what_is_evaluated_calibrated_and_written(tmp_path, monkeypatch):
    """With optim.ema_decay the model file holds the average, and its accuracy and temperature
    are the average's too (not the last step's weights')."""
    from safetensors.torch import load_file

    from prgcn_ros.training import evaluate
    require_data()
    seen = {}

    def keep(what, model):
        seen[what] = {k: v.detach().clone() for k, v in model.state_dict().items()}

    monkeypatch.setattr(evaluate, "evaluate_model", lambda model, *a, **k: (
        keep("evaluated", model), {"top1": 0.5, "top5": 1.0, "n": 1})[1])
    monkeypatch.setattr(calibration, "calibrate", lambda model, *a, **k: (
        keep("calibrated", model), {"temperature": 1.5, "n": 1, "ece_before": 0.2,
                                    "ece_after": 0.1})[1])
    out = tmp_path / "m.safetensors"
    cfg = small_cfg(optim={"batch_size": 4, "epochs": 1, "ema_decay": 0.5},
                    calibration={"subjects": [9]}, data={"test_subjects": [2]},
                    output={"dir": str(tmp_path / "run"), "model": str(out)})
    train_cli.train(cfg, progress=False, max_steps=3, log=lambda m: None)
    written = load_file(str(out))
    checkpoint = load_file(str(tmp_path / "run" / "checkpoint.safetensors"))
    assert not all(torch.equal(v, checkpoint[f"model.{k}"]) for k, v in written.items())
    for k, v in written.items():
        assert torch.equal(v, checkpoint[f"averaged.module.{k}"])
        assert torch.equal(v, seen["evaluated"][k]) and torch.equal(v, seen["calibrated"][k])


# --------------------------------------------------------------------------- evaluation
def test_top5_and_per_class_accuracy_by_hand():
    """Seven classes: the true class ranked 5th counts for top-5, 6th does not; per-class
    accuracy is over each class's own clips."""
    base = np.array([0.30, 0.20, 0.15, 0.12, 0.10, 0.08, 0.05])
    scores = np.stack([base, base, base, base[::-1]])
    labels = np.array([0, 4, 5, 6])          # ranks 1, 5, 6 and (reversed row) 1
    result = evaluate_cli.metrics(scores, labels, list("abcdefg"))
    assert result["top1"] == 0.5 and result["top5"] == 0.75
    assert result["per_class"]["a"] == {"n": 1, "accuracy": 1.0}
    assert result["per_class"]["g"] == {"n": 1, "accuracy": 1.0}
    assert result["per_class"]["f"] == {"n": 1, "accuracy": 0.0}
    assert result["per_class"]["b"] == {"n": 0, "accuracy": None}


class _PairAware(torch.nn.Module):
    """Logits from each person slot's mean coordinate, by weights of its own per slot."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.first = torch.nn.Parameter(torch.randn(classes, generator=g))
        self.second = torch.nn.Parameter(3 * torch.randn(classes, generator=g))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x[..., 0].mean((1, 2, 3)), x[..., 1].mean((1, 2, 3))
        return 5 * (a[:, None] * self.first + b[:, None] * self.second)


def test_pair_orders_both_scores_the_mean_over_both_slot_orders():
    if not (require_data() / "sbu_interaction").is_dir():
        pytest.skip("SBU data not found")
    cfg = load_config(REPO / "config" / "train_sbu_interaction.yaml",
                      {"calibration": {"subjects": None}})
    assert cfg["inference"]["pair_orders"] == "both"
    data = subset(build_dataset(cfg, "test"), 6)
    model = _PairAware(len(data.class_names))
    scores, labels = evaluate_cli.predict(model, data, cfg)
    clips = [data[i] for i in range(len(data))]
    with torch.no_grad():
        given = torch.softmax(model(batching.make_batch(clips, cfg, train=False)[0]), 1)
        other = torch.softmax(model(batching.make_batch(clips, cfg, train=False,
                                                        persons_exchanged=True)[0]), 1)
    assert not torch.allclose(given, other, atol=1e-3)      # the slot order matters here
    np.testing.assert_allclose(scores, ((given + other) / 2).numpy(), rtol=1e-5, atol=1e-7)
    assert list(labels) == data.labels
    given_only = evaluate_cli.predict(model, data, {**cfg, "inference": {"pair_orders": "given"}})
    np.testing.assert_allclose(given_only[0], given.numpy(), rtol=1e-5, atol=1e-7)


def test_predict_runs_the_network_in_evaluation_mode(msr_train):
    """A model handed over in training mode (as train() hands it at the end) is scored with its
    batch-norm statistics, which the test clips leave as they are."""
    trainer = Trainer(small_cfg(), train_set=subset(msr_train, 4), log=lambda m: None)
    trainer.train_epoch(progress=False, max_steps=1)
    model = trainer.model.train()
    buffers = {k: v.clone() for k, v in model.state_dict().items()}
    test = subset(msr_split("test"), 4)
    cfg = trainer.cfg
    scores, _ = evaluate_cli.predict(model, test, cfg)
    assert all(torch.equal(v, buffers[k]) for k, v in model.state_dict().items())
    model.eval()
    with torch.no_grad():
        x = batching.make_batch([test[i] for i in range(4)], cfg, train=False)[0]
        expected = torch.softmax(model(x)[0], 1).numpy()
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- calibration
def test_ece_nll_and_confidence_by_hand():
    """15 equal bins of (lo, hi]; a confidence of exactly 1 is in the last; each bin's
    |accuracy - confidence| weighted by its share of the clips. NLL is a mean."""
    probs = np.array([[0.0, 1.0],      # confidence 1, wrong              -> bin 15
                      [0.9, 0.1],      # 0.9, wrong                       -> (0.867, 0.933]
                      [0.55, 0.45],    # 0.55, right  } one bin (0.533, 0.6]:
                      [0.42, 0.58]])   # 0.58, wrong  } accuracy 0.5, confidence 0.565
    labels = np.array([0, 1, 0, 0])
    assert calibration.ece(probs, labels) == pytest.approx(
        0.25 * 1.0 + 0.25 * 0.9 + 0.5 * abs(0.5 - 0.565))
    assert calibration.nll(np.array([[0.5, 0.5], [0.8, 0.2]]), np.array([0, 0])) == \
        pytest.approx((math.log(2) - math.log(0.8)) / 2)
    rep = calibration.report(probs[1:], labels[1:], 2.0)
    after = calibration.scaled(probs[1:], 2.0)
    assert rep["mean_confidence_after"] == pytest.approx(float(after.max(1).mean()))
    assert rep["mean_confidence_before"] == pytest.approx((0.9 + 0.55 + 0.58) / 3)
    assert rep["ece_after"] == pytest.approx(calibration.ece(after, labels[1:]))


def test_eval_reports_confidence_after_the_models_temperature():
    """prgcn-eval's "after" figures are those of the model's stored temperature."""
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 3, (300, 6))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = rng.integers(0, 6, 300)
    shown = evaluate_cli.calibration_report(probs, labels, {"calibration": {
        "temperature": 2.5, "split": "held out"}})
    after = calibration.scaled(probs, 2.5)
    assert shown["temperature"] == 2.5 and shown["fitted_on"] == "held out"
    assert shown["ece_after"] == pytest.approx(calibration.ece(after, labels))
    assert shown["nll_after"] == pytest.approx(calibration.nll(after, labels))
    assert shown["ece_after"] != pytest.approx(shown["ece_before"])


def test_fitted_temperature_is_the_nll_minimum_to_a_fine_tolerance():
    rng = np.random.default_rng(2)
    logits = rng.normal(0, 3, (2000, 8))
    p_true = np.exp(logits / 1.7) / np.exp(logits / 1.7).sum(1, keepdims=True)
    labels = np.array([rng.choice(8, p=p) for p in p_true])
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    grid = np.exp(np.linspace(math.log(1.0), math.log(3.0), 4001))
    best = grid[np.argmin([calibration.nll(calibration.scaled(probs, t), labels) for t in grid])]
    assert calibration.fit_temperature(probs, labels) == pytest.approx(best, rel=1e-3)


def _cross_fit_run(tmp_path, log: list[str], **sections) -> dict:
    """A one-step MSR run with calibration.cross_fit over subjects 1 and 3 (unless
    ``sections`` say otherwise), no outliers."""
    sections = {"calibration": {"cross_fit": [1, 3]}, **sections}
    cfg = small_cfg(outliers={"per_batch": 0},
                    output={"dir": str(tmp_path / "run"), "model": str(tmp_path / "m.safetensors")},
                    **sections)
    train_cli.train(cfg, progress=False, max_steps=1, evaluate_at_end=False, log=log.append)
    return cfg


def test_cross_fit_scores_every_listed_subject_by_a_model_that_never_saw_it(tmp_path):
    """calibration.cross_fit: the model trains on every training clip; the temperature comes
    from the scores of fold models, each trained without one listed subject and scoring that
    subject alone; a second run uses the finished folds of the same recipe again."""
    from prgcn_ros.model.io import load_model, read_metadata
    require_data()
    log: list[str] = []
    cfg = _cross_fit_run(tmp_path, log)
    everyone = build_dataset(cfg, "train")
    meta = read_metadata(tmp_path / "m.safetensors")
    assert meta["training"]["train_clips"] == len(everyone)
    stored = meta["calibration"]
    assert stored["method"].endswith("cross-fitted")
    probs, labels = [], []
    for fold, subject in zip(stored["folds"], ("1", "3"), strict=True):
        own = [i for i, name in enumerate(everyone.names)
               if calibration.subject_of(name, "msr_action3d") == subject]
        model_file = tmp_path / "run" / "cross_fit" / f"subject_{subject}" / "model.safetensors"
        model, fold_meta = load_model(model_file)
        assert fold["subject"] == subject and fold["n"] == len(own) > 0
        assert fold_meta["training"]["train_clips"] == len(everyone) - len(own)
        assert fold_meta["training"]["config"]["calibration"]["subjects"] == [int(subject)]
        p, y = evaluate_cli.predict(model, calibration.subset(everyone, own, subject), cfg)
        probs.append(p)
        labels.append(y)
    probs, labels = np.concatenate(probs), np.concatenate(labels)
    assert stored["n"] == len(labels)
    assert stored["nll_before"] == pytest.approx(calibration.nll(probs, labels))
    assert stored["ece_before"] == pytest.approx(calibration.ece(probs, labels))
    temperature, why_not = calibration.temperature_for(probs, labels)
    assert stored["temperature"] == (None if why_not else pytest.approx(temperature))

    folds = sorted((tmp_path / "run" / "cross_fit").glob("*/model.safetensors"))
    written = [f.stat().st_mtime_ns for f in folds]
    log.clear()
    _cross_fit_run(tmp_path, log)
    assert [f.stat().st_mtime_ns for f in folds] == written
    assert sum("using the finished fold model" in line for line in log) == 2
    assert read_metadata(tmp_path / "m.safetensors")["calibration"] == stored
    log.clear()
    _cross_fit_run(tmp_path, log, seed=2)           # another recipe: its folds train anew
    assert all(f.stat().st_mtime_ns != w for f, w in zip(folds, written, strict=True))
    assert not any("using the finished fold model" in line for line in log)


def test_a_resumed_run_goes_on_in_its_unfinished_fold_and_folds_keep_their_start(
        tmp_path, monkeypatch):
    """Stopped in a fold, --resume trained that fold again from epoch 0 (its checkpoint
    discarded, the log saying "--resume continues it instead"); and a fine-tuning run took the
    finished folds of a run from scratch, the temperature of another start."""
    require_data()
    real_save = train_cli.Trainer.save

    def stop_in_fold_3(self, directory):
        real_save(self, directory)
        if Path(directory).name == "subject_3" and self.epoch == 1:
            raise KeyboardInterrupt

    cfg = small_cfg(epochs=2, calibration={"cross_fit": [1, 3]}, outliers={"per_batch": 0},
                    output={"dir": str(tmp_path / "run"),
                            "model": str(tmp_path / "m.safetensors")})
    monkeypatch.setattr(train_cli.Trainer, "save", stop_in_fold_3)
    with pytest.raises(KeyboardInterrupt):
        train_cli.train(cfg, progress=False, max_steps=1, evaluate_at_end=False,
                        log=lambda m: None)
    monkeypatch.undo()
    log: list[str] = []
    train_cli.train(cfg, resume=tmp_path / "run", progress=False, max_steps=1,
                    evaluate_at_end=False, log=log.append)
    fold_3 = [json.loads(line.split(": ", 1)[1])["epoch"] for line in log
              if line.startswith('cross-fit, subject 3: {"epoch"')]
    assert fold_3 == [2], log
    assert any("subject 1: using the finished fold model" in line for line in log)
    log.clear()
    train_cli.train(cfg, progress=False, max_steps=1, evaluate_at_end=False, log=log.append,
                    init="msr_action3d")
    assert not any("using the finished fold model" in line for line in log), log
    assert sum("without this subject" in line for line in log) == 2
    log.clear()       # the same start given by name again: its folds are used again
    train_cli.train(cfg, progress=False, max_steps=1, evaluate_at_end=False, log=log.append,
                    init="msr_action3d")
    assert sum("using the finished fold model" in line for line in log) == 2, log


def test_cross_fit_holds_out_a_group_of_subjects_per_fold(tmp_path):
    """An entry of calibration.cross_fit may be a list (an SBU fold's pairs): its fold model
    trains without all of them and scores all of their clips."""
    from prgcn_ros.model.io import read_metadata
    require_data()
    cfg = _cross_fit_run(tmp_path, [], calibration={"cross_fit": [[1, 3], 5]})
    everyone = build_dataset(cfg, "train")
    stored = read_metadata(tmp_path / "m.safetensors")["calibration"]
    assert [f["subject"] for f in stored["folds"]] == ["1+3", "5"]
    for fold, held in zip(stored["folds"], ({"1", "3"}, {"5"}), strict=True):
        own = sum(calibration.subject_of(n, "msr_action3d") in held for n in everyone.names)
        assert Path(fold["model"]).parent.name == f"subject_{fold['subject']}"
        fold_meta = read_metadata(fold["model"])
        assert fold["n"] == own > 0
        assert fold_meta["training"]["train_clips"] == len(everyone) - own
    assert stored["n"] == sum(f["n"] for f in stored["folds"])


def test_a_finished_run_resumed_with_cross_fit_takes_on_the_temperature(tmp_path):
    """calibration.cross_fit is no part of the model's training: a finished run resumed with
    it trains no further epoch and writes the same weights, now with the cross-fitted T. The
    run was a fine-tuning one: its folds start from the same model."""
    from safetensors.torch import load_file

    from prgcn_ros.model.io import read_metadata, resolve_model
    require_data()
    run = tmp_path / "run"
    plain = small_cfg(outliers={"per_batch": 0},
                      output={"dir": str(run), "model": str(tmp_path / "plain.safetensors")})
    train_cli.train(plain, progress=False, max_steps=1, evaluate_at_end=False, log=lambda m: None,
                    init="msr_action3d")
    assert read_metadata(tmp_path / "plain.safetensors")["calibration"] is None
    log: list[str] = []
    cfg = small_cfg(calibration={"cross_fit": [1, 3]}, outliers={"per_batch": 0},
                    output={"dir": str(run), "model": str(tmp_path / "m.safetensors")})
    train_cli.train(cfg, resume=run, progress=False, max_steps=1, evaluate_at_end=False,
                    log=log.append)
    assert not [line for line in log if line.startswith('{"epoch"')]    # the model's own
    assert sum(line.startswith("cross-fit, subject") and '{"epoch"' in line for line in log) == 2
    before, after = load_file(str(tmp_path / "plain.safetensors")), load_file(
        str(tmp_path / "m.safetensors"))
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    meta = read_metadata(tmp_path / "m.safetensors")
    assert meta["training"]["epochs"] == 1
    assert meta["calibration"]["method"].endswith("cross-fitted")
    shipped = str(resolve_model("msr_action3d"))
    assert meta["training"]["init"]["init"] == shipped
    for fold in meta["calibration"]["folds"]:
        assert read_metadata(fold["model"])["training"]["init"]["init"] == shipped


def test_calibrate_gives_a_trained_model_file_the_cross_fitted_temperature(tmp_path):
    """prgcn-train --calibrate MODEL: the folds of the config's cross_fit are trained, and the
    model file is written again with the same weights and metadata but its calibration; a
    model of another recipe, or a config without cross_fit, is refused."""
    from safetensors.torch import load_file

    from prgcn_ros.model.io import read_metadata
    require_data()
    plain = small_cfg(outliers={"per_batch": 0},
                      output={"dir": str(tmp_path / "run"),
                              "model": str(tmp_path / "plain.safetensors")})
    train_cli.train(plain, progress=False, max_steps=1, evaluate_at_end=False, log=lambda m: None)
    cfg = small_cfg(calibration={"cross_fit": [1, 3]}, outliers={"per_batch": 0},
                    output={"dir": str(tmp_path / "cal"), "model": str(tmp_path / "m.safetensors")})
    train_cli.calibrate_model(cfg, tmp_path / "plain.safetensors", progress=False, max_steps=1,
                              log=lambda m: None)
    before, after = (load_file(str(tmp_path / f"{n}.safetensors")) for n in ("plain", "m"))
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    old, new = (read_metadata(tmp_path / f"{n}.safetensors") for n in ("plain", "m"))
    assert new["calibration"]["method"].endswith("cross-fitted")
    assert [f["subject"] for f in new["calibration"]["folds"]] == ["1", "3"]
    assert all(Path(f["model"]).is_relative_to(tmp_path / "cal" / "cross_fit")
               for f in new["calibration"]["folds"])
    for key in ("training", "accuracy", "class_names", "preprocess", "window"):
        assert new[key] == old[key], key

    with pytest.raises(ConfigError, match=r"differs in seed"):
        train_cli.calibrate_model({**cfg, "seed": 2}, tmp_path / "plain.safetensors",
                                  log=lambda m: None)
    with pytest.raises(ConfigError, match="the config has none"):
        train_cli.calibrate_model(plain, tmp_path / "plain.safetensors", log=lambda m: None)
    # Subject 2 is a test subject: refused before any fold trains (fold 1's included).
    bad = small_cfg(calibration={"cross_fit": [1, 2]}, outliers={"per_batch": 0},
                    output={"dir": str(tmp_path / "bad"), "model": str(tmp_path / "b.safetensors")})
    with pytest.raises(ConfigError, match="fold without subject 2"):
        train_cli.calibrate_model(bad, tmp_path / "plain.safetensors", log=lambda m: None)
    assert not (tmp_path / "bad").exists()
    assert train_cli.main(["--config", str(MSR_CONFIG), "--calibrate", "msr_action3d",
                           "--resume"]) == 2


def test_a_model_is_of_a_configs_recipe_wherever_either_ran_and_whichever_data_dir():
    """--calibrate and cross_fit's fold reuse compare recipes: the shipped SBU model (trained
    with device cpu, data.dir null) is of its config's recipe (device auto) with the data named
    by an absolute data.dir and other threads too; another seed is another recipe."""
    from prgcn_ros.model.io import read_metadata, resolve_model
    recorded = read_metadata(resolve_model("sbu_interaction"))["training"]["config"]
    sbu = REPO / "config" / "train_sbu_interaction.yaml"
    assert recorded["device"] == "cpu" and recorded["data"]["dir"] is None
    assert calibration.recipe_difference(recorded, load_config(sbu)) == []
    elsewhere = load_config(sbu, {"threads": 2, "data": {"dir": "/somewhere/else"}})
    assert calibration.recipe_difference(recorded, elsewhere) == []
    assert calibration.recipe_difference(recorded, load_config(sbu, {"seed": 2})) == ["seed"]
    assert calibration.recipe_difference(
        recorded, load_config(sbu, {"window": {"length": 32}})) == ["window"]


@pytest.mark.parametrize("calibration_section, message", [
    ({"cross_fit": [1]}, "at least two"),
    ({"cross_fit": []}, "at least two"),
    ({"cross_fit": [[1, 3], []]}, "at least two"),
    ({"cross_fit": [[1, 3], 5.5]}, "at least two"),
    ({"cross_fit": [[1, 3], [3, 5]]}, "lists 3 more than once"),
    ({"cross_fit": [1, "03", [3, 5]]}, "lists 3 more than once"),   # "03" is subject 3
    ({"cross_fit": [1, 3], "subjects": [5]}, "takes no calibration.subjects"),
    ({"cross_fit": [1, 3], "fraction": 0.2}, "takes no calibration.subjects"),
])
def test_cross_fit_config_errors(calibration_section, message):
    with pytest.raises(ConfigError, match=message):
        load_config(MSR_CONFIG, {"calibration": calibration_section})


def test_a_cross_fit_subject_without_training_clips_fails_before_training(tmp_path):
    """Subject 2 is a test subject: the run stops before its first epoch, not after it."""
    require_data()
    cfg = small_cfg(calibration={"cross_fit": [1, 2]}, outliers={"per_batch": 0},
                    output={"dir": str(tmp_path / "run"), "model": str(tmp_path / "m.safetensors")})
    with pytest.raises(ConfigError, match=r"fold without subject 2: calibration.subjects "
                                          r"\['2'\]: no training clip"):
        train_cli.train(cfg, progress=False, max_steps=1, log=lambda m: None)
    assert not (tmp_path / "run" / "checkpoint.json").exists()


def _performances(per_class: list[int]) -> SequenceDataset:
    """Clips of class k: per_class[k] performances, each filmed from two views."""
    labels, names, keys = [], [], []
    for label, count in enumerate(per_class):
        for p in range(count):
            for view in (1, 2):
                labels.append(label)
                names.append(f"a{label:02d}_s{p + 1:02d}_e01_v{view:02d}")
                keys.append(f"a{label:02d}_s{p + 1:02d}_e01")
    return SequenceDataset([lambda: None] * len(labels), labels, names,
                           [f"c{k}" for k in range(len(per_class))], "synthetic",
                           recordings=keys)


@pytest.mark.parametrize("fraction", [0.1, 0.9])
def test_a_calibration_fraction_holds_out_some_and_keeps_some_of_every_class(fraction):
    """Per class, whole performances: at least one held out (even where the fraction rounds to
    none) and at least one left to train on (even where it rounds to all)."""
    data = _performances([2, 2, 3, 5])
    cfg = load_config(MSR_CONFIG, {"calibration": {"fraction": fraction, "seed": 0,
                                                   "cross_fit": None}})
    rest, held = calibration.split_indices(data, cfg)
    for label in range(4):
        assert any(data.labels[i] == label for i in held), (label, held)
        assert any(data.labels[i] == label for i in rest), (label, rest)
    assert not {data.recordings[i] for i in held} & {data.recordings[i] for i in rest}


def test_mixup_restores_over_the_joints_either_clip_has(msr_train):
    """The restore target of a mixed window is the blend of the two clean windows, over the
    joints of either clip (a joint one of them lacks is still in the other's)."""
    from prgcn_ros.training import noise
    from prgcn_ros.training.train import mixup_draw
    cfg = small_cfg(optim={"batch_size": 8, "mixup": 0.4}, refine={"corrupt_prob": 0.8},
                    outliers={"per_batch": 0})
    trainer = Trainer(cfg, train_set=subset(msr_train, 8), log=lambda m: None)
    batch = batching.build_batch([trainer.train_set[i] for i in range(8)], cfg, train=True,
                                 generator=torch.Generator().manual_seed(2))
    present = batch.present.clone()
    present[::2, :, 5:12] = False           # the even clips lack joints the odd ones have
    batch = batch._replace(present=present)
    got = []
    restore = trainer.restore_losses
    trainer.restore_losses = lambda refined, given, clean, seen, dims: (
        got.append(seen.cpu()), restore(refined, given, clean, seen, dims))[1]
    gen = torch.Generator().manual_seed(5)
    replay = torch.Generator()
    replay.set_state(gen.get_state())
    trainer.step(batch, gen)
    noise.corrupt(batch.x, present, batch.scale, cfg["layout"], trainer.noise, replay,
                  dims=batch.dims)
    torch.rand(8, generator=replay)
    _, order = mixup_draw(8, 0.4, replay)
    assert not torch.equal(present, present | present[order])
    assert torch.equal(got[0], present | present[order])


# --------------------------------------------------------------------------- optimiser settings
def test_optimiser_settings_reach_the_optimisers():
    """optim.nesterov reaches SGD; the PRM's Adam has no weight decay (as documented)."""
    from prgcn_ros.model.prgcn import PRGCN
    from prgcn_ros.training.train import make_optimizer
    model = PRGCN(10, "kinect20")
    cfg = small_cfg(optim={"nesterov": True, "weight_decay": 0.01},
                    refine={"prm_optimizer": "adam"})
    sgd, adam = make_optimizer(model, cfg).optimizers
    assert all(g["nesterov"] and g["weight_decay"] == 0.01 for g in sgd.param_groups)
    assert [g["weight_decay"] for g in adam.param_groups] == [0.0]


def test_grad_clip_bounds_the_gradient_each_step_takes(msr_train):
    cfg = small_cfg(optim={"batch_size": 4, "grad_clip": 0.01}, outliers={"per_batch": 0})
    data = subset(msr_train, 4)
    trainer = Trainer(cfg, train_set=data, log=lambda m: None)
    norms = []
    step = trainer.optimizer.step

    def recording_step():
        grads = [p.grad for p in trainer.model.parameters() if p.grad is not None]
        norms.append(float(torch.linalg.vector_norm(torch.stack(
            [torch.linalg.vector_norm(g) for g in grads]))))
        step()

    trainer.optimizer.step = recording_step
    batch = batching.build_batch([data[i] for i in range(4)], cfg, train=False)
    trainer.step(batch, torch.Generator().manual_seed(0))
    assert norms[0] <= 0.01 * (1 + 1e-4)


def test_the_last_epoch_is_checkpointed_whatever_checkpoint_every(tmp_path):
    """output.checkpoint_every 2 over 3 epochs: checkpoints after epochs 2 and 3 (the run's
    end), so --resume of a finished run has nothing left to train."""
    require_data()
    cfg = small_cfg(optim={"batch_size": 4, "epochs": 3}, outliers={"per_batch": 0},
                    output={"dir": str(tmp_path / "run"), "model": str(tmp_path / "m.safetensors"),
                            "checkpoint_every": 2})
    train_cli.train(cfg, progress=False, max_steps=1, evaluate_at_end=False, log=lambda m: None)
    state = json.loads((tmp_path / "run" / "checkpoint.json").read_text())
    assert state["epoch"] == 3 and len(state["history"]) == 3


# --------------------------------------------------------------------------- resume
@pytest.mark.parametrize("section, change", [
    ("refine", {"restore_weight": 3.0}),
    ("window", {"length": 40}),
    ("preprocess", {"center": "none"}),
    ("calibration", {"subjects": [7]}),
    ("outliers", {"weight": 0.25}),
])
def test_resume_refuses_another_recipe_in_any_section(msr_train, tmp_path, section, change):
    data = subset(msr_train, 8)
    first = Trainer(small_cfg(seed=4, epochs=2), train_set=data, log=lambda m: None)
    first.save(tmp_path / "run")
    other = small_cfg(seed=4, epochs=2, **{section: change})
    with pytest.raises(ConfigError, match=f"its '{section}' settings differ"):
        Trainer(other, train_set=data, log=lambda m: None).resume(tmp_path / "run")


def test_resume_from_data_that_moved(msr_train, tmp_path):
    """data.dir may change between the run and its resume (another machine, a moved folder)."""
    data = subset(msr_train, 8)
    no_outliers = {"per_batch": 0}       # their clips would be read from data.dir
    Trainer(small_cfg(seed=4, epochs=2, outliers=no_outliers), train_set=data,
            log=lambda m: None).save(tmp_path / "run")
    moved = small_cfg(seed=4, epochs=2, outliers=no_outliers,
                      data={"dir": str(tmp_path / "elsewhere")})
    resumed = Trainer(moved, train_set=data, log=lambda m: None)
    resumed.resume(tmp_path / "run")
    assert resumed.epoch == 0


def test_the_model_files_final_loss_is_the_last_epochs(msr_train):
    trainer = Trainer(small_cfg(epochs=2, outliers={"per_batch": 0}),
                      train_set=subset(msr_train, 4), log=lambda m: None)
    for _ in range(2):
        trainer.train_epoch(progress=False, max_steps=1)
    assert trainer.history[0]["loss"] != trainer.history[1]["loss"]
    assert trainer.metadata(None)["training"]["final_loss"] == trainer.history[-1]["loss"]


def test_a_checkpoint_lacking_a_weight_is_refused_not_half_loaded(msr_train, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from prgcn_ros.training.checkpoint import CheckpointError
    data = subset(msr_train, 4)
    cfg = small_cfg(seed=4, epochs=2, outliers={"per_batch": 0})
    Trainer(cfg, train_set=data, log=lambda m: None).save(tmp_path / "run")
    weights = tmp_path / "run" / "checkpoint.safetensors"
    header = safe_open(str(weights), framework="pt").metadata()
    tensors = load_file(str(weights))
    del tensors[next(k for k in tensors if k.startswith("model.") and k.endswith(".weight"))]
    save_file(tensors, str(weights), metadata=header)
    with pytest.raises(CheckpointError, match="does not fit the model"):
        Trainer(cfg, train_set=data, log=lambda m: None).resume(tmp_path / "run")
