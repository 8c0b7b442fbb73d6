"""prgcn-train: train PR-GCN (or a variant, or ST-GCN) from a YAML config.

    prgcn-train --config config/train_msr_action3d.yaml
    prgcn-train --config config/train_msr_action3d.yaml --resume          # continue the run
    prgcn-train --config config/train_msr_action3d.yaml --set model.use_prm=false \\
                --set model.rigid_bones=false --output runs/no_prm/model.safetensors  # ablation
    prgcn-train --config my.yaml --init msr_action3d                      # fine-tune
    torchrun --nproc_per_node 2 -m prgcn_ros.training.train --config ...  # 2 processes (DDP)

The model file goes to ``output.model`` (null: ``<output.dir>/<name>.safetensors``); a shipped
model or a file tracked by git is never overwritten without ``--force`` (the run writes under
its run directory instead).

Repeatable: the seed fixes the initial weights, and every epoch draws its shuffling, windows,
augmentation and dropout from generators seeded by (seed, epoch), so a run resumed from a
checkpoint continues exactly as the uninterrupted run would have. Bit for bit on a CPU (tested);
on CUDA the same draws go into kernels that may sum in another order from run to run, so two
GPU runs of one seed agree closely, not exactly.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn
from torch.optim import swa_utils
from tqdm import tqdm

from prgcn_ros import paths
from prgcn_ros.model.build import logits_of

from . import batching, calibration, distributed, noise, outliers
from .checkpoint import (
    STATE,
    checkpoint_state,
    load_checkpoint,
    refined_channels,
    save_checkpoint,
)
from .config import (
    ConfigError,
    deep_update,
    in_channels,
    learning_rate,
    load_config,
    lr_milestones,
    model_spec,
    public,
    recipe,
    schedule_description,
    with_defaults,
)
from .datasets import SequenceDataset, build_dataset, class_names, split_description


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of everything random in one epoch (independent of earlier epochs)."""
    return (int(seed) * 1_000_003 + int(epoch) * 7_919 + 17) % (2 ** 63)


def rank_seed(seed: int, rank: int) -> int:
    """A process's own seed under torchrun, from the epoch's: mixed, not seed + k * rank
    (which is another epoch's seed, so ranks would replay each other's draws)."""
    return int(np.random.SeedSequence([int(seed), int(rank)]).generate_state(
        1, dtype=np.uint64)[0] % (2 ** 63))


def device_name(device: torch.device) -> str:
    """``cpu``, or ``cuda (NVIDIA H200)``: where a run trained, for its metadata."""
    if device.type != "cuda":
        return device.type
    return f"cuda ({torch.cuda.get_device_name(device)})"


def set_threads(cfg: dict) -> None:
    threads = int(cfg.get("threads") or 0)
    if threads > 0:
        torch.set_num_threads(threads)


def build_model(cfg: dict, num_classes: int) -> nn.Module:
    """The network the config's ``model`` section describes (the one builder path:
    :func:`prgcn_ros.model.build.build_model` on the architecture dict)."""
    from prgcn_ros.model.build import build_model as build
    try:
        return build(model_spec(cfg, num_classes))
    except ValueError as error:
        raise ConfigError(f"model section: {error}") from None


def param_groups(model: nn.Module, lr: float, prm_lr_scale: float,
                 links_lr_scale: float = 1.0) -> list[dict[str, Any]]:
    """The rest of the network (learning rate x 1), the PRM's parameters (x ``prm_lr_scale``)
    and, when ``links_lr_scale`` is not 1, the learned links beside the skeleton's (x that).

    The PRM's last layer writes offsets straight into the input's units: at the classifier's
    learning rate one SGD step moves every offset by a tenth of a torso, which the restore loss
    then spends epochs undoing. The links start at zero and stay near it at the network's rate.
    """
    prm = getattr(model, "prm", None)
    prm_ids = {id(p) for p in prm.parameters()} if prm is not None else set()
    links = [p for name, p in model.named_parameters()
             if links_lr_scale != 1.0 and id(p) not in prm_ids
             and (name.endswith(".edges") or ".topology." in name)]
    apart = prm_ids | {id(p) for p in links}
    rest = [p for p in model.parameters() if id(p) not in apart]
    groups = [{"params": rest, "lr": lr, "lr_scale": 1.0}]
    if links:
        groups.append({"params": links, "lr": lr * links_lr_scale,
                       "lr_scale": float(links_lr_scale)})
    if prm_ids:
        groups.append({"params": list(prm.parameters()), "lr": lr * prm_lr_scale,
                       "lr_scale": float(prm_lr_scale)})
    return groups


class Optimizers:
    """Several optimisers stepped as one, with one ``param_groups`` list and one state dict
    (parameters numbered across them in order, as a single optimiser numbers its groups'), so
    the schedule and the checkpoints treat them like one optimiser."""

    def __init__(self, optimizers: list[torch.optim.Optimizer]) -> None:
        self.optimizers = optimizers

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return [group for opt in self.optimizers for group in opt.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for opt in self.optimizers:
            opt.step()

    def state_dict(self) -> dict[str, Any]:
        state: dict[int, Any] = {}
        groups: list[dict[str, Any]] = []
        first = 0
        for opt in self.optimizers:
            sd = opt.state_dict()
            state.update({first + int(i): v for i, v in sd["state"].items()})
            for group in sd["param_groups"]:
                groups.append({**group, "params": [first + i for i in group["params"]]})
            first += sum(len(g["params"]) for g in sd["param_groups"])
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        groups = iter(state_dict["param_groups"])
        first = 0
        for opt in self.optimizers:
            mine = [next(groups) for _ in opt.param_groups]
            count = sum(len(g["params"]) for g in mine)
            opt.load_state_dict({
                "state": {int(i) - first: v for i, v in state_dict["state"].items()
                          if first <= int(i) < first + count},
                "param_groups": [{**g, "params": [i - first for i in g["params"]]}
                                 for g in mine]})
            first += count


def make_optimizer(model: nn.Module, cfg: dict) -> torch.optim.Optimizer | Optimizers:
    """SGD over the network; the PRM's group at ``refine.prm_lr_scale`` x the rate, by SGD too
    or by Adam (``refine.prm_optimizer``)."""
    opt, refine = cfg["optim"], cfg["refine"]
    lr = float(opt["lr"])
    groups = param_groups(model, lr, float(refine["prm_lr_scale"]),
                          float(opt["links_lr_scale"]))

    def sgd(chosen: list[dict[str, Any]]) -> torch.optim.SGD:
        return torch.optim.SGD(chosen, lr=lr, momentum=float(opt["momentum"]),
                               nesterov=bool(opt["nesterov"]),
                               weight_decay=float(opt["weight_decay"]))

    if refine["prm_optimizer"] == "sgd" or getattr(model, "prm", None) is None:
        return sgd(groups)
    # The PRM's group is the last.
    return Optimizers([sgd(groups[:-1]), torch.optim.Adam(groups[-1:], lr=lr, weight_decay=0.0)])


def code_version() -> str:
    """``git describe`` of the source checkout, else the installed package version."""
    root = paths.source_root()
    if root is not None and (root / ".git").exists():
        try:
            out = subprocess.run(["git", "describe", "--always", "--dirty", "--tags"], cwd=root,
                                 capture_output=True, text=True, timeout=10, check=True)
            commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root,
                                    capture_output=True, text=True, timeout=10, check=True)
            return f"{out.stdout.strip()} ({commit.stdout.strip()})"
        except (OSError, subprocess.SubprocessError):
            pass
    try:
        from importlib.metadata import version
        return f"prgcn_ros {version('prgcn_ros')}"
    except Exception:  # noqa: BLE001 - any failure: unknown version
        return "unknown"


def centred_similarity(features: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of the two rows of each pair of ``pairs`` (P, 2) in ``features``
    (N, F), centred on the batch's mean first: pooled after a ReLU, every clip's features point
    much the same way (raw cosines near 1), and the differences between clips lie around it."""
    centred = features - features.mean(dim=0, keepdim=True)
    return nn.functional.cosine_similarity(centred[pairs[:, 0]], centred[pairs[:, 1]], dim=1)


def mixup_draw(n: int, alpha: float, generator: torch.Generator) -> tuple[float, torch.Tensor]:
    """Mixup's blend weight, drawn from Beta(alpha, alpha), and a random order of the batch's
    ``n`` clips to blend them with."""
    rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=generator)))
    return float(rng.beta(alpha, alpha)), torch.randperm(n, generator=generator)


# Every loss term a step can return (step checks): summed over the ranks by these names.
LOSS_NAMES = ("classification", "view", "outlier", "restore", "offset", "loss")


class Trainer:
    """One training run: model, optimizer and data, stepped epoch by epoch."""

    def __init__(self, cfg: dict, train_set: SequenceDataset | None = None,
                 log: Callable[[str], None] | None = None) -> None:
        self.cfg = cfg
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        set_threads(cfg)
        self.train_set = train_set if train_set is not None else build_dataset(cfg, "train")
        # The config's calibration split leaves the training set here (see .calibration).
        self.train_set, self.calibration_set = calibration.split_training_set(self.train_set,
                                                                              cfg)
        self.calibration: dict[str, Any] | None = None
        self.outliers = outliers.outlier_dataset(cfg)
        self.class_names = class_names(cfg) if cfg["data"]["kind"] != "msr_action3d" \
            else list(self.train_set.class_names)
        torch.manual_seed(int(cfg["seed"]))
        self.model = build_model(cfg, len(self.class_names))
        opt = cfg["optim"]
        self.optimizer = make_optimizer(self.model, cfg)
        # Label -1 marks an outlier clip (outliers.py): no class to learn, the uniform instead.
        self.loss_fn = nn.CrossEntropyLoss(
            ignore_index=-1, label_smoothing=float(opt.get("label_smoothing") or 0.0))
        self.noise = noise.noise_config(cfg)
        # Under torchrun: this process's rank, and the model wrapped in DDP for forward/backward
        # (self.model stays the plain network for checkpoints and the model file).
        self.dist = distributed.info(str(cfg["device"]))
        self.model.to(self.dist.device)
        self.net = distributed.wrap(self.model, self.dist)
        # The weight average (optim.ema_decay), made from the model on its device.
        decay = float(opt.get("ema_decay") or 0.0)
        self.averaged = None if not decay else swa_utils.AveragedModel(
            self.model, multi_avg_fn=swa_utils.get_ema_multi_avg_fn(decay), use_buffers=True)
        # optim.view_consistency: each clip's other recordings, to draw one into its batch.
        self.view_weight = float(opt.get("view_consistency") or 0.0)
        self.other_views = self.train_set.other_views() if self.view_weight else None
        if self.other_views is not None and not any(self.other_views):
            raise ConfigError(f"optim.view_consistency needs clips of one performance recorded "
                              f"by several sensors (NW-UCLA's views); {self.train_set.description}"
                              f" has none")
        self.epoch = 0            # epochs completed
        self.steps = 0
        self.history: list[dict[str, Any]] = []
        self.train_time_s = 0.0
        self.code_version = code_version()     # the code this run starts from
        self.init: dict[str, Any] | None = None  # --init: the model file it started from

    # ------------------------------------------------------------------ one step / one epoch
    def step(self, batch: batching.Batch, generator: torch.Generator | None = None,
             pairs: torch.Tensor | None = None, share: float = 1.0) -> dict[str, float]:
        """One optimiser step on ``batch``; returns its losses (``loss`` is their sum).

        With the "restore" objective a random part of the batch is corrupted by the driver
        noise model first (drawn from ``generator``), and the refined window is pulled towards
        the clean one. ``pairs`` (P, 2): batch positions of two recordings of one performance,
        whose pooled features the view-consistency term pulls together. ``share``: the loss's
        weight in the gradient, under DDP this shard's size over an even shard's (DDP averages
        the ranks' gradients: uneven shards would weigh their clips unevenly).
        """
        self.model.train()
        refine = self.cfg["refine"]
        x = batch.x
        # "restore": corrupted windows for every network (for one without a PRM they are plain
        # augmentation), and the reconstruction loss where there is a PRM to learn it.
        corrupted = refine["objective"] == "restore" and float(refine["corrupt_prob"]) > 0
        restore = corrupted and getattr(self.model, "prm", None) is not None
        mixup = float(self.cfg["optim"].get("mixup") or 0.0)
        # Drawn on the CPU, where the batch is built: the same draws on every device.
        gen = generator if generator is not None else torch.Generator().manual_seed(self.steps)
        if corrupted:
            noisy, _ = noise.corrupt(x, batch.present, batch.scale, self.cfg["layout"],
                                     self.noise, gen, dims=batch.dims,
                                     missing=self.cfg["preprocess"]["missing"])
            pick = torch.rand(x.shape[0], generator=gen) < float(refine["corrupt_prob"])
            x = torch.where(pick[:, None, None, None, None], noisy, x)
        device = self.dist.device
        clean = batch.x.to(device)
        x = clean if x is batch.x else x.to(device)     # uncorrupted: one copy, not two
        batch = batch._replace(x=clean, labels=batch.labels.to(device),
                               present=batch.present.to(device), scale=batch.scale.to(device))
        other_labels = None
        if mixup:
            weight, order = mixup_draw(x.shape[0], mixup, gen)
            order = order.to(device)
            x = weight * x + (1.0 - weight) * x[order]
            batch = batch._replace(x=weight * batch.x + (1.0 - weight) * batch.x[order],
                                   present=batch.present | batch.present[order])
            other_labels = batch.labels[order]
        pooled: list[torch.Tensor] = []
        hook = None if pairs is None or not len(pairs) else \
            self.model.classifier.register_forward_pre_hook(lambda _, args: pooled.append(args[0]))
        try:
            output = self.net(x)
        finally:
            if hook is not None:
                hook.remove()
        logits = logits_of(output)
        losses = {"classification": self.loss_fn(logits, batch.labels)}
        if other_labels is not None:
            losses["classification"] = (weight * losses["classification"]
                                        + (1.0 - weight) * self.loss_fn(logits, other_labels))
        if pooled:
            losses["view"] = self.view_weight * (1.0 - centred_similarity(pooled[0], pairs)).mean()
        foreign = batch.labels < 0
        any_foreign = bool(foreign.any())        # one device sync, used twice
        if self.outliers is not None and any_foreign:
            losses["outlier"] = (float(self.cfg["outliers"]["weight"])
                                 * outliers.outlier_loss(logits[foreign]))
        if restore:
            # Outlier clips are restored too only with outliers.restore (their tracker's output
            # is the target then).
            everyone = self.cfg["outliers"]["restore"] or not any_foreign
            own = slice(None) if everyone else ~foreign
            losses.update(self.restore_losses(output[1][own], x[own], batch.x[own],
                                              batch.present[own], batch.dims))
        assert set(losses) <= set(LOSS_NAMES), losses.keys()     # (summed by name over ranks)
        loss = sum(losses.values())
        self.optimizer.zero_grad(set_to_none=True)
        (loss * share if share != 1.0 else loss).backward()
        clip = self.cfg["optim"].get("grad_clip")
        if clip:
            nn.utils.clip_grad_norm_(self.model.parameters(), float(clip))
        self.optimizer.step()
        if self.averaged is not None:
            self.averaged.update_parameters(self.model)
        self.steps += 1
        out = {name: float(value.detach()) for name, value in losses.items()}
        out["loss"] = float(loss.detach())
        return out

    def restore_losses(self, refined: torch.Tensor, given: torch.Tensor, clean: torch.Tensor,
                       present: torch.Tensor, dims: int) -> dict[str, torch.Tensor]:
        """The restore objective's terms: smooth-L1 of the refined window against the clean one
        over the clean window's joints, and the mean |offset| from the window the PRM was given."""
        refine = self.cfg["refine"]
        refined, given, clean = refined[:, :dims], given[:, :dims], clean[:, :dims]
        weight = present[:, None].to(refined.dtype)
        error = nn.functional.smooth_l1_loss(refined, clean, reduction="none",
                                             beta=float(refine["restore_beta"]))
        restore = (error * weight).sum() / (weight.sum() * dims).clamp(min=1.0)
        offset = (refined - given).abs().mean()
        return {"restore": float(refine["restore_weight"]) * restore,
                "offset": float(refine["offset_weight"]) * offset}

    def train_epoch(self, progress: bool = True, max_steps: int | None = None
                    ) -> dict[str, Any]:
        """Train one epoch (or ``max_steps`` steps of it); returns its statistics."""
        epoch = self.epoch
        seed = epoch_seed(self.cfg["seed"], epoch)
        gen = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)               # dropout and anything else using the global RNG
        lr = learning_rate(self.cfg, epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group["lr_scale"]
        batch_size = int(self.cfg["optim"]["batch_size"])
        order = torch.randperm(len(self.train_set), generator=gen).tolist()
        batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        if max_steps is not None:
            batches = batches[:max_steps]
        if self.dist.enabled:
            # Every rank has the same global batches; each takes its shard of each and draws
            # its windows and augmentation from a generator of its own.
            # A last batch smaller than the group would leave a rank without a step (DDP needs
            # every rank in every step): it is left out.
            kept = [b for b in batches if len(b) >= self.dist.world]
            batches = [distributed.shard(b, self.dist) for b in kept]
            # The gradient of the global batch's mean: each shard weighs by its size (a batch
            # of 16 over 3 processes is 6, 5 and 5 clips).
            shares = [self.dist.world * len(s) / len(b) for s, b in zip(batches, kept,
                                                                         strict=True)]
            own = rank_seed(seed, self.dist.rank)
            gen = torch.Generator().manual_seed(own)
            # Dropout too: with the epoch's seed every rank would drop the same units of its
            # own clips, as if one mask served the whole global batch.
            torch.manual_seed(own)
            progress = progress and self.dist.is_main
        else:
            shares = [1.0] * len(batches)
        totals: dict[str, float] = {}
        seen = 0
        started = time.perf_counter()
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{self.cfg['optim']['epochs']}",
                   disable=not progress, leave=False, file=sys.stderr, dynamic_ncols=True)
        for index, share in zip(bar, shares, strict=True):
            clips = [self.train_set[i] for i in index]
            pairs = self.view_pairs(index, gen)
            if pairs is not None:
                clips += [self.train_set[i] for i in pairs[:, 1].tolist()]
                pairs[:, 1] = torch.arange(len(index), len(clips))
            foreign = self.outlier_clips(gen)
            batch = batching.build_batch(clips + foreign, self.cfg, train=True, generator=gen)
            if foreign:
                labels = batch.labels.clone()
                labels[len(clips):] = -1
                batch = batch._replace(labels=labels)
            losses = self.step(batch, gen, pairs, share)
            for name, value in losses.items():
                totals[name] = totals.get(name, 0.0) + value * len(index)
            seen += len(index)
            bar.set_postfix(loss=f"{losses['loss']:.3f}", lr=f"{lr:.2g}")
        elapsed = time.perf_counter() - started
        if self.dist.enabled:
            # By a fixed list of names, each with whether the rank had it: a term only some
            # ranks had (view consistency without a pair in one shard) would give the ranks
            # lists of other lengths, and the all-reduce would hang or mix them up.
            summed = distributed.sum_all([totals.get(n, 0.0) for n in LOSS_NAMES]
                                         + [float(n in totals) for n in LOSS_NAMES] + [seen],
                                         self.dist)
            had = summed[len(LOSS_NAMES):-1]
            totals = {n: v for n, v, h in zip(LOSS_NAMES, summed, had, strict=False) if h}
            seen = int(summed[-1])
        self.train_time_s += elapsed
        self.epoch += 1
        stats = {"epoch": self.epoch, "lr": lr,
                 **{name: value / max(seen, 1) for name, value in totals.items()},
                 "clips": seen, "time_s": round(elapsed, 2)}
        stats.setdefault("loss", 0.0)
        self.history.append(stats)
        return stats

    def view_pairs(self, index: list[int], generator: torch.Generator) -> torch.Tensor | None:
        """(P, 2): for each clip of ``index`` (by its position) that was recorded by other
        sensors too, one of those recordings drawn at random (by its training-set index);
        None when view consistency is off."""
        if self.other_views is None:
            return None
        pairs = []
        for position, i in enumerate(index):
            others = self.other_views[i]
            if others:
                pick = int(torch.randint(0, len(others), (1,), generator=generator))
                pairs.append((position, others[pick]))
        return torch.tensor(pairs, dtype=torch.long).reshape(-1, 2)

    def outlier_clips(self, generator: torch.Generator) -> list:
        """``outliers.per_batch`` clips drawn from the outlier set (none without one)."""
        if self.outliers is None:
            return []
        count = int(self.cfg["outliers"]["per_batch"])
        picks = torch.randint(0, len(self.outliers), (count,), generator=generator).tolist()
        return [self.outliers[i] for i in picks]

    # ------------------------------------------------------------------ checkpoints
    def state(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "steps": self.steps, "history": self.history,
                "train_time_s": self.train_time_s, "config": public(self.cfg),
                "code_version": self.code_version, "init": self.init,
                "processes": self.dist.world}

    def save(self, directory: str | os.PathLike) -> None:
        save_checkpoint(directory, self.model, self.optimizer, self.state(), self.averaged)

    def resume(self, path: str | os.PathLike) -> None:
        # The settings first: a changed network would otherwise fail as a weights mismatch.
        doc = checkpoint_state(path)
        # A checkpoint that recorded no config has nothing to compare.
        saved = with_defaults(doc["config"]) if "config" in doc else {}
        current = public(self.cfg)
        # The recipe (config.recipe: not where the data lies, nor calibration.cross_fit, so a
        # finished run may take it on), but the number of epochs (a run may be extended).
        if "optim" in saved:
            cosine = current["optim"]["schedule"].get("kind") == "cosine"
            if cosine and saved["optim"]["epochs"] != current["optim"]["epochs"]:
                # Its span is the run's length: another one would jump along the curve walked.
                raise ConfigError(f"cannot resume from {path} with {current['optim']['epochs']} "
                                  f"epochs: a cosine schedule's length is the run's "
                                  f"({saved['optim']['epochs']} epochs)")
            saved["optim"] = {**saved["optim"], "epochs": current["optim"]["epochs"]}
        built = refined_channels(path)
        if "model" in saved and built is not None and hasattr(self.model, "refine_channels"):
            # Unset, refine_channels is what the code of the day built (its default for
            # image keypoints changed): compared as built, so such a run resumes with the
            # value set, and without it says what differs instead of a weights mismatch.
            saved["model"] = {**saved["model"],
                              "refine_channels": saved["model"].get("refine_channels") or built}
            current = {**current, "model": {
                **current["model"], "refine_channels": self.model.refine_channels}}
        saved, current = recipe(saved), recipe(current)
        for key in saved:
            if saved[key] != current.get(key):
                raise ConfigError(f"cannot resume from {path}: its {key!r} settings differ "
                                  f"from the config's ({saved[key]} vs {current.get(key)})")
        doc = load_checkpoint(path, self.model, self.optimizer, self.averaged)
        self.epoch = int(doc["epoch"])
        self.steps = int(doc.get("steps", 0))
        self.history = list(doc.get("history", []))
        self.train_time_s = float(doc.get("train_time_s", 0.0))
        # Said, and kept in the model file: a run continued by other code, or over another
        # number of processes (other random streams and shards), is not what one run gives.
        saved_version = doc.get("code_version", self.code_version)
        if saved_version.rsplit(RESUMED_WITH, 1)[-1] != self.code_version:
            self.log(f"warning: the checkpoint was written by code {saved_version}, this is "
                     f"{self.code_version}: the model file records both")
            self.code_version = f"{saved_version}{RESUMED_WITH}{self.code_version}"
        else:
            self.code_version = saved_version
        saved_world = doc.get("processes", 1)
        if saved_world != self.dist.world:
            self.log(f"warning: the checkpoint was written by {saved_world} process(es), this "
                     f"run has {self.dist.world}: the random streams and batch shards differ "
                     f"from an uninterrupted run")
        self.init = doc.get("init", self.init)      # a fine-tuning run stays one when resumed

    def take_averaged_weights(self) -> None:
        """Put the weight average (if the run keeps one) into the model, at the end of training:
        what is evaluated, calibrated and written to the model file."""
        if self.averaged is not None:
            self.model.load_state_dict(self.averaged.module.state_dict())

    def leave_group(self) -> None:
        """Training's collectives are over: every rank drops DDP and leaves the process group
        here, together (no-op for a single process)."""
        self.net = self.model
        distributed.leave()

    # ------------------------------------------------------------------ the model file
    def metadata(self, accuracy: dict[str, Any] | None) -> dict[str, Any]:
        cfg = self.cfg
        arch = dict(getattr(self.model, "arch", {}) or {})
        return {
            "architecture": arch,
            "layout": cfg["layout"],
            "in_channels": in_channels(cfg),
            "num_classes": len(self.class_names),
            "class_names": list(self.class_names),
            "preprocess": batching.preprocess_config(cfg).to_dict(),
            "window": {"length": int(cfg["window"]["length"]), "mode": cfg["window"]["mode"],
                       "interpolation": cfg["window"]["interpolation"]},
            "fps": float(cfg["fps"]),
            "max_persons": batching.max_persons(cfg),
            "inference": dict(cfg["inference"]),
            "training": {
                "data": split_description(cfg),
                "train_clips": len(self.train_set),
                "outliers": outliers.describe(cfg, self.outliers),
                "epochs": self.epoch,
                "seed": int(cfg["seed"]),
                "optimizer": {k: cfg["optim"][k] for k in
                              ("lr", "momentum", "nesterov", "weight_decay", "batch_size",
                               "ema_decay", "mixup")},
                "lr_schedule": cfg["optim"]["schedule"],
                "lr_milestones": lr_milestones(cfg),
                "lr_gamma": float(cfg["optim"]["schedule"]["gamma"]),
                "augment": cfg["augment"],
                "refine": cfg["refine"],
                "train_time_s": round(self.train_time_s, 1),
                "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, "
                           f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
                           f"trained on {device_name(self.dist.device)}",
                "final_loss": self.history[-1]["loss"] if self.history else None,
                "init": self.init,
                "processes": self.dist.world,
                "config": public(cfg),
            },
            "accuracy": accuracy,
            "calibration": self.calibration,
            "code_version": self.code_version,
        }


def save_trained_model(path: str | os.PathLike, trainer: Trainer,
                       accuracy: dict[str, Any] | None) -> Path:
    from prgcn_ros.model.io import save_model
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_model(path, trainer.model, trainer.metadata(accuracy))
    return path


def _silent(msg: str) -> None:
    """The log of ranks other than 0 under torchrun."""


RESUMED_WITH = ", resumed with "   # code_version of a run continued by other code


def train(cfg: dict, resume: str | os.PathLike | None = None, progress: bool = True,
          max_steps: int | None = None, evaluate_at_end: bool = True,
          log: Callable[[str], None] | None = None, force: bool = False,
          init: str | os.PathLike | None = None) -> dict[str, Any]:
    """Run (or continue) the training the config describes; returns a summary.

    ``force``: the model file may overwrite a shipped model or a tracked file (see
    :mod:`.outputs`). ``init``: a model file (or shipped model name) to start from.
    Under torchrun only rank 0 logs and writes files, and every rank leaves the process group
    once training ends (rank 0 evaluates and writes after that, alone).
    """
    from .outputs import check_writable, resolve_outputs

    if init is not None and resume is not None:     # before the datasets are read
        raise ConfigError("--init starts a run from a model, --resume continues a run (which "
                          "keeps its own start): give one of them")
    where = distributed.info()
    if not where.is_main:
        log = _silent
        progress = False
    cfg = resolve_outputs(cfg, force=force, figure=False,
                          log=log or (lambda msg: print(msg, file=sys.stderr, flush=True)))
    trainer = Trainer(cfg, log=log)
    if where.enabled and min(int(cfg["optim"]["batch_size"]), len(trainer.train_set)) < \
            where.world:
        # Each process takes its share of every batch: with fewer clips than processes
        # there would be no step at all.
        raise ConfigError(f"{where.world} processes need a batch (optim.batch_size "
                          f"{cfg['optim']['batch_size']}) and a training split "
                          f"({len(trainer.train_set)} clips) of at least {where.world} clips")
    cross_fit = cfg["calibration"]["cross_fit"]
    if cross_fit:       # a fold that cannot run fails now, not after training
        calibration.check_cross_fit(trainer.train_set, cfg, where.enabled)
    # The test split is read now: a fault in it stops the run before training, not after.
    test_set = build_dataset(cfg, "test") if evaluate_at_end and where.is_main else None
    unlearned = sorted(set(range(len(trainer.class_names))) - set(trainer.train_set.labels))
    if unlearned:
        trainer.log(f"warning: no training clip for {len(unlearned)} classes "
                    f"({', '.join(trainer.class_names[k] for k in unlearned[:10])}"
                    f"{' ...' if len(unlearned) > 10 else ''}): the model cannot learn them")
    out_dir = Path(cfg["output"]["dir"])
    if init is not None:
        from prgcn_ros.model.io import resolve_model

        from .finetune import init_from_model
        done = init_from_model(trainer.model, resolve_model(init), trainer.class_names)
        trainer.init = done
        trainer.log(f"initialised from {done['init']}: {done['copied']} tensors copied"
                    + (f", classifier replaced ({done['source_classes']} -> "
                       f"{len(trainer.class_names)} classes)" if done["replaced"] else ""))
    if resume is not None:
        trainer.resume(resume)
        trainer.log(f"resumed from {resume} after epoch {trainer.epoch}")
    elif (out_dir / STATE).is_file():
        trainer.log(f"{out_dir} holds a checkpoint of an earlier run: starting over, it will "
                    f"be replaced (--resume continues it instead)")
    if where.is_main:
        # After the data and the start are read: a run that cannot start leaves no folder.
        check_writable(cfg["output"]["model"], out_dir / STATE)
    epochs = int(cfg["optim"]["epochs"])
    every = max(int(cfg["output"].get("checkpoint_every") or 1), 1)
    trainer.log(f"training {cfg['name']}: {len(trainer.train_set)} clips "
                f"({trainer.train_set.description}), {epochs} epochs, {schedule_description(cfg)}")
    bar = tqdm(total=epochs, initial=trainer.epoch, desc=cfg["name"], disable=not progress,
               file=sys.stderr, dynamic_ncols=True)
    while trainer.epoch < epochs:
        stats = trainer.train_epoch(progress=progress, max_steps=max_steps)
        if not stats["clips"]:
            raise ConfigError(f"epoch {stats['epoch']} trained on no clip "
                              f"({len(trainer.train_set)} in the training split)")
        if not math.isfinite(stats["loss"]):
            raise FloatingPointError(f"training diverged at epoch {stats['epoch']} "
                                     f"(loss {stats['loss']})")
        bar.update(1)
        bar.set_postfix(loss=f"{stats['loss']:.3f}", lr=f"{stats['lr']:.2g}")
        if not progress:
            trainer.log(json.dumps(stats))
        if (trainer.epoch % every == 0 or trainer.epoch == epochs) and where.is_main:
            trainer.save(out_dir)
    bar.close()
    trainer.take_averaged_weights()
    trainer.leave_group()
    accuracy = None
    if not where.is_main:
        # Rank 0 evaluates and writes the model file alone, out of the group: no barrier
        # after it that a long evaluation could time out.
        return {"model": cfg["output"]["model"], "epochs": trainer.epoch, "accuracy": None,
                "train_time_s": trainer.train_time_s, "history": trainer.history}
    if test_set is not None:
        from .evaluate import evaluate_model
        result = evaluate_model(trainer.model, test_set, cfg, progress=progress)
        accuracy = {"split": test_set.description, "top1": result["top1"],
                    "top5": result["top5"], "n": result["n"]}
        trainer.log(f"test: top-1 {result['top1']:.4f}, top-5 {result['top5']:.4f} "
                    f"on {result['n']} clips")
    if trainer.calibration_set is not None:
        trainer.calibration = calibration.calibrate(trainer.model, trainer.calibration_set, cfg)
    elif cross_fit:
        # The folds start where the model did (a resumed fine-tuning run's start is its own).
        start = init if init is not None else (trainer.init or {}).get("init")
        # A resumed run's folds go on from their checkpoints too (one stopped mid-fold).
        trainer.calibration = calibration.cross_fit(cfg, out_dir, progress=progress,
                                                    max_steps=max_steps, log=trainer.log,
                                                    init=start, dataset=trainer.train_set,
                                                    resume=resume is not None)
    if trainer.calibration is not None:
        if trainer.calibration.get("not_applied"):
            trainer.log(f"warning: calibration: {trainer.calibration['not_applied']}")
        else:
            trainer.log(f"calibration: temperature {trainer.calibration['temperature']:.3f} on "
                        f"{trainer.calibration['n']} clips, ECE "
                        f"{trainer.calibration['ece_before']:.3f} -> "
                        f"{trainer.calibration['ece_after']:.3f}")
    model_path = save_trained_model(cfg["output"]["model"], trainer, accuracy)
    trainer.log(f"wrote {model_path} (training {trainer.train_time_s / 60:.1f} min)")
    return {"model": str(model_path), "epochs": trainer.epoch, "accuracy": accuracy,
            "calibration": trainer.calibration, "train_time_s": trainer.train_time_s,
            "history": trainer.history}


def calibrate_model(cfg: dict, model: str | os.PathLike, progress: bool = True,
                    max_steps: int | None = None, force: bool = False,
                    log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Give a trained model file the temperature that ``calibration.cross_fit`` fits for its
    recipe (the config's; the model must have been trained by it) and write it to
    ``output.model``: the same weights and metadata, the new ``calibration``."""
    from prgcn_ros.model.io import load_model, resolve_model, save_model

    from .outputs import check_writable, resolve_outputs

    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    if not cfg["calibration"]["cross_fit"]:
        raise ConfigError("--calibrate fits calibration.cross_fit's temperature: the config "
                          "has none")
    path = resolve_model(model)
    network, meta = load_model(path)
    differ = calibration.recipe_difference(meta.get("training", {}).get("config") or {}, cfg)
    if differ:
        raise ConfigError(f"{path} was not trained by {cfg.get('_path') or 'this config'}'s "
                          f"recipe (it differs in {', '.join(differ)}): its folds would "
                          f"calibrate another model")
    everyone = build_dataset(cfg, "train")
    calibration.check_cross_fit(everyone, cfg, distributed.info().enabled)
    cfg = resolve_outputs(cfg, force=force, log=log, figure=False)
    check_writable(cfg["output"]["model"])
    start = (meta["training"].get("init") or {}).get("init")
    found = calibration.cross_fit(cfg, cfg["output"]["dir"], progress=progress,
                                  max_steps=max_steps, log=log, init=start, dataset=everyone)
    meta["calibration"] = {**found, "added_to": f"{path.name}, by {code_version()}"}
    save_model(cfg["output"]["model"], network, meta)
    log(f"wrote {cfg['output']['model']}: {path.name}'s weights, temperature "
        f"{found['temperature'] if found['temperature'] is not None else 'not applied'}")
    return {"model": cfg["output"]["model"], "calibration": found}


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def parse_set(items: list[str]) -> dict[str, Any]:
    """``["model.use_prm=false", "seed=3"]`` -> nested overrides (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(value)
    return out


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the run is, as Ctrl-C raises KeyboardInterrupt."""


def _terminate(signum: int, frame: Any) -> None:
    raise _Terminated


def _stop_on_sigterm() -> Any:
    """SIGTERM (a sweep, a job scheduler, torchrun stopping its workers) ends the run the way
    Ctrl-C does, through the files' clean-up, not at once with temporary files left. Returns
    the handler it replaced (None: none replaced), for :func:`main` to put back."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _terminate)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="prgcn-train", description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="training config (YAML)")
    parser.add_argument("--resume", nargs="?", const="", default=None, metavar="CHECKPOINT",
                        help="continue from a checkpoint (default: the config's output.dir)")
    parser.add_argument("--seed", type=int, help="override the config's seed")
    parser.add_argument("--epochs", type=int, help="override optim.epochs")
    parser.add_argument("--out-dir", help="override output.dir (checkpoints)")
    parser.add_argument("--output", help="override output.model (the trained model file)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override any config key, e.g. --set model.use_tam=false")
    parser.add_argument("--threads", type=int, help="torch threads (default: config)")
    parser.add_argument("--device", help="auto, cpu, cuda or cuda:N (default: config, auto)")
    parser.add_argument("--max-steps", type=_positive_int,
                        help="at most this many steps per epoch (1 or more)")
    parser.add_argument("--no-eval", action="store_true", help="skip the final test evaluation")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bars; one JSON line per epoch instead")
    parser.add_argument("--init", metavar="MODEL",
                        help="start from this model file or shipped model name (fine-tuning; "
                             "the classifier is replaced when the classes differ)")
    parser.add_argument("--calibrate", metavar="MODEL",
                        help="train nothing but calibration.cross_fit's folds, and write MODEL "
                             "(a file or shipped name trained by this config's recipe) with "
                             "their temperature to output.model")
    parser.add_argument("--force", action="store_true",
                        help="let the model file overwrite a shipped model or a tracked file")
    args = parser.parse_args(argv)
    where = distributed.DistInfo()
    replaced = _stop_on_sigterm()
    try:
        overrides = parse_set(args.set)
        for key, value in (("seed", args.seed), ("threads", args.threads),
                           ("device", args.device)):
            if value is not None:
                overrides[key] = value
        for section, key, value in (("optim", "epochs", args.epochs),
                                    ("output", "dir", args.out_dir or None),
                                    ("output", "model", args.output or None)):
            if value is None:
                continue
            if not isinstance(overrides.get(section, {}), dict):
                # Merged over, the --set value would vanish unchecked.
                raise ConfigError(f"--set {section}=...: {section} is a section of settings "
                                  f"(--set {section}.{key}=..., for example)")
            overrides = deep_update(overrides, {section: {key: value}})
        cfg = load_config(args.config, overrides)
        where = distributed.setup(str(cfg["device"]))
        resume = None
        if args.resume is not None:
            resume = args.resume or cfg["output"]["dir"]
        if args.calibrate is not None:
            if resume is not None or args.init is not None:
                raise ConfigError("--calibrate trains no model: it takes no --resume or --init")
            summary = calibrate_model(cfg, args.calibrate, progress=not args.no_progress,
                                      max_steps=args.max_steps, force=args.force)
        else:
            summary = train(cfg, resume=resume, progress=not args.no_progress,
                            max_steps=args.max_steps, evaluate_at_end=not args.no_eval,
                            force=args.force, init=args.init)
    except (ConfigError, FileNotFoundError, OSError, RuntimeError, ValueError,
            ArithmeticError) as exc:     # ArithmeticError: a loss that diverged
        print(f"prgcn-train: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:
        print("prgcn-train: stopped; --resume goes on from the last checkpoint in "
              "output.dir", file=sys.stderr)
        return 143 if isinstance(stop, _Terminated) else 130
    finally:
        distributed.teardown()
        if replaced is not None:       # called in-process (tests, a notebook): as it was
            signal.signal(signal.SIGTERM, replaced)
    if where.is_main:
        print(json.dumps({k: v for k, v in summary.items() if k != "history"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
