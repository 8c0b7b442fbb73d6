"""Confidence calibration: temperature scaling (Guo et al., ICML 2017) on a held-out split.

The ``calibration:`` section of a training config takes a validation split out of the training
data before training: the clips of the named training ``subjects`` (MSR Action3D, UTD-MHAD,
NW-UCLA: subjects; SBU: subject pairs such as ``s01s02``), or else a ``fraction`` of the
training clips (per class, whole performances, drawn with ``seed``). After training one
temperature T is fitted on that split (minimum negative log-likelihood of softmax(logits / T))
and stored in the model's metadata as ``calibration.temperature`` (none, with the reason in
``not_applied``, when the fit runs to an end of FIT_RANGE); calibrated confidences are
softmax(logits / T). Nothing here changes which class wins: only how sure the model says it is.

Held-out subjects cost training data, which a small dataset (MSR Action3D's five training
subjects) cannot spare. ``calibration.cross_fit`` keeps every clip in training and fits T on
models of the same recipe instead, one per listed subject (or group of subjects, such as an SBU
fold's pairs), trained without it and scoring it (:func:`cross_fit`): every training clip is
scored once by a model that never saw it.
"""
from __future__ import annotations

import contextlib
import copy
import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .config import ConfigError, fold_subjects, recipe, subject_key, with_defaults
from .datasets import SequenceDataset

if TYPE_CHECKING:
    from torch import nn

ECE_BINS = 15
_GROUP = {
    "msr_action3d": re.compile(r"_s(\d+)_e"), "utd_mhad": re.compile(r"_s(\d+)_t"),
    "nw_ucla": re.compile(r"_s(\d+)_e"), "sbu_interaction": re.compile(r"^(s\d\ds\d\d)"),
}


def enabled(cfg: dict) -> bool:
    cal = cfg.get("calibration") or {}
    return bool(cal.get("subjects")) or float(cal.get("fraction") or 0.0) > 0.0


def subject_of(name: str, kind: str) -> str | None:
    """The subject (or pair) a clip of dataset ``kind`` is of, by its name; None unknown."""
    pattern = _GROUP.get(kind)
    match = pattern.search(name) if pattern else None
    if match is None:
        return None
    return subject_key(match.group(1))


def split_indices(dataset: SequenceDataset, cfg: dict) -> tuple[list[int], list[int]]:
    """(training indices, calibration indices) of the training split."""
    cal = cfg.get("calibration") or {}
    kind = cfg["data"]["kind"]
    n = len(dataset)
    if cal.get("subjects"):
        wanted = {subject_key(s) for s in cal["subjects"]}
        held = [i for i in range(n) if subject_of(dataset.names[i], kind) in wanted]
        if not held:
            raise ValueError(f"calibration.subjects {sorted(wanted)}: no training clip of "
                             f"those subjects in {dataset.description}")
    else:
        fraction = float(cal.get("fraction") or 0.0)
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"calibration.fraction must be in (0, 1), got {fraction}")
        rng = np.random.default_rng(int(cal.get("seed") or 0))
        held = []
        labels = np.asarray(dataset.labels)
        # Whole performances: another camera's view of a training clip is no held-out clip.
        clips_of: dict[str, list[int]] = {}
        for i, key in enumerate(dataset.recordings):
            clips_of.setdefault(key, []).append(i)
        for label in np.unique(labels):
            members = np.flatnonzero(labels == label)
            take = max(1, int(round(fraction * len(members))))
            keys = sorted({dataset.recordings[i] for i in members})
            chosen: list[int] = []
            for k in rng.permutation(len(keys))[:-1]:   # one performance stays in training
                if len(chosen) >= take:
                    break
                chosen.extend(clips_of[keys[k]])
            held.extend(chosen)
        held.sort()
        if not held:
            raise ValueError(f"calibration.fraction {fraction:g} leaves no clip for "
                             f"calibration: every class has a single training clip")
    held_set = set(held)
    rest = [i for i in range(n) if i not in held_set]
    if not rest:
        raise ValueError("calibration split leaves no training clip")
    return rest, held


def subset(dataset: SequenceDataset, index: list[int], description: str) -> SequenceDataset:
    """The clips ``index`` of ``dataset`` (loaded through it, so its cache is shared)."""
    def loader(i: int):
        return lambda: dataset[i]

    return SequenceDataset([loader(i) for i in index], [dataset.labels[i] for i in index],
                           [dataset.names[i] for i in index], dataset.class_names, description,
                           cache=False, recordings=[dataset.recordings[i] for i in index])


def split_training_set(dataset: SequenceDataset, cfg: dict
                       ) -> tuple[SequenceDataset, SequenceDataset | None]:
    """(the clips to train on, the calibration clips or None when the config has none)."""
    if not enabled(cfg):
        return dataset, None
    rest, held = split_indices(dataset, cfg)
    cal = cfg["calibration"]
    how = (f"subjects {', '.join(str(s) for s in cal['subjects'])}" if cal.get("subjects")
           else f"{cal['fraction']:g} of each class, seed {cal.get('seed') or 0}")
    return (subset(dataset, rest, f"{dataset.description} without the calibration split"),
            subset(dataset, held, f"calibration split of {dataset.description} ({how})"))


def temperature_of(metadata: Mapping[str, Any]) -> float:
    """A model's fitted temperature (metadata ``calibration.temperature``); 1 (the scores as
    they are) for a model without one."""
    return float((metadata.get("calibration") or {}).get("temperature") or 1.0)


def scaled(probs: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(logits / T) from softmax(logits): p^(1/T), renormalised (shift-invariant)."""
    logp = np.log(np.clip(probs, 1e-30, None)) / float(temperature)
    logp -= logp.max(axis=1, keepdims=True)
    out = np.exp(logp)
    return out / out.sum(axis=1, keepdims=True)


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    return float(-np.mean(np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-30, None))))


def ece(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error: |accuracy - confidence| over equal-width confidence bins,
    weighted by the share of clips in each bin."""
    if len(labels) == 0:
        return 0.0
    conf = probs.max(axis=1)
    right = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            total += inside.mean() * abs(right[inside].mean() - conf[inside].mean())
    return float(total)


# The temperatures fit_temperature searches (a model file may carry 0.01-100, model.io). A fit
# at either end is no calibration: a split the model gets all right drives T to the lower end
# (every confidence near 1, foreign actions too, so min_confidence never says unknown).
FIT_RANGE = (0.05, 20.0)


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> float:
    """The T > 0 of least NLL: golden-section search on log T in FIT_RANGE (NLL of a
    temperature is smooth and unimodal in log T for these models)."""
    lo, hi = (math.log(t) for t in FIT_RANGE)
    ratio = (math.sqrt(5.0) - 1.0) / 2.0

    def cost(log_t: float) -> float:
        return nll(scaled(probs, math.exp(log_t)), labels)

    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = cost(a), cost(b)
    for _ in range(60):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = cost(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = cost(b)
    return float(math.exp((lo + hi) / 2))


def report(probs: np.ndarray, labels: np.ndarray, temperature: float) -> dict[str, Any]:
    """Confidence figures before and after scaling with ``temperature``."""
    after = scaled(probs, temperature)
    return {"temperature": float(temperature), "n": int(len(labels)),
            "ece_before": ece(probs, labels), "ece_after": ece(after, labels),
            "nll_before": nll(probs, labels), "nll_after": nll(after, labels),
            "mean_confidence_before": float(probs.max(1).mean()) if len(labels) else 0.0,
            "mean_confidence_after": float(after.max(1).mean()) if len(labels) else 0.0}


def calibrate(model: nn.Module, dataset: SequenceDataset, cfg: dict) -> dict[str, Any]:
    """Fit the temperature of ``model`` on ``dataset``; the metadata's ``calibration``."""
    from .evaluate import predict

    probs, labels = predict(model, dataset, cfg)
    return _fitted(probs, labels, dataset.description, "temperature scaling, minimum NLL")


def _fitted(probs: np.ndarray, labels: np.ndarray, split: str, method: str) -> dict[str, Any]:
    """The metadata's ``calibration``: the temperature fitted on these scores, and its report."""
    temperature, why_not = temperature_for(probs, labels)
    out = {**report(probs, labels, temperature), "split": split, "method": method}
    if why_not:     # no temperature stored: the model's scores are used as they are
        out["temperature"], out["not_applied"] = None, why_not
    return out


def fold_name(entry: Any) -> str:
    """One entry of ``calibration.cross_fit`` in messages and folder names: ``3``,
    ``s02s03+s02s07``."""
    return "+".join(str(s) for s in fold_subjects(entry))


def fold_config(cfg: dict, entry: Any, out_dir: str | Path) -> dict:
    """The config of the cross-fit fold without ``entry`` (a subject or a list of them): the
    recipe unchanged, their clips its calibration split, its files in
    ``out_dir``/cross_fit/subject_<name>/."""
    fold = copy.deepcopy(cfg)
    fold["calibration"] = {"subjects": fold_subjects(entry), "fraction": 0.0, "seed": 0,
                           "cross_fit": None}
    folder = Path(out_dir) / "cross_fit" / f"subject_{fold_name(entry)}"
    fold["output"] = {**fold["output"], "dir": str(folder),
                      "model": str(folder / "model.safetensors")}
    fold["eval"] = {**fold["eval"], "confusion_png": None}
    return fold


def recipe_difference(recorded: dict, cfg: dict) -> list[str]:
    """The sections in which a model file's recorded config trains another model than ``cfg``
    (:func:`config.recipe`); ["config"] when the recorded config cannot be read."""
    try:
        mine, theirs = recipe(cfg), recipe(with_defaults(recorded))
    except Exception:  # noqa: BLE001 - a config this code cannot read is no match
        return ["config"]
    return sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))


def check_cross_fit(dataset: SequenceDataset, cfg: dict, under_torchrun: bool) -> None:
    """ConfigError before anything trains when ``calibration.cross_fit`` cannot run: under
    torchrun, or a listed subject whose fold has no clip of it in ``dataset`` (the training
    split) or nothing left to train on."""
    if under_torchrun:
        raise ConfigError("calibration.cross_fit trains its folds one after another in one "
                          "process: run it without torchrun (or calibrate on held-out "
                          "calibration.subjects)")
    for entry in cfg["calibration"]["cross_fit"]:
        try:
            split_indices(dataset, fold_config(cfg, entry, "."))
        except ValueError as error:     # the fold's own message: no clip, or nothing left
            raise ConfigError(f"calibration.cross_fit, the fold without subject "
                              f"{fold_name(entry)}: "
                              f"{error} (list training subjects, or set calibration.cross_fit: "
                              f"null)") from None


def _same_run(recorded: Mapping[str, Any], fold: dict, start: str | None) -> bool:
    """Whether a fold's model or checkpoint (its recorded ``config`` and ``init``) is of this
    recipe and starts where this fold does (from scratch, or from the same model file)."""
    return (not recipe_difference(recorded.get("config") or {}, fold)
            and (recorded.get("init") or {}).get("init") == start)


def cross_fit(cfg: dict, out_dir: str | Path, progress: bool = False,
              max_steps: int | None = None, log: Callable[[str], None] = print,
              init: str | Path | None = None,
              dataset: SequenceDataset | None = None, resume: bool = False) -> dict[str, Any]:
    """The metadata's ``calibration`` for a model trained on every training clip: for each
    entry of ``calibration.cross_fit`` (a subject or a group) a model of the same recipe and
    start trained without it (a finished one in its folder is used again; with ``resume``, an
    unfinished one goes on from its checkpoint) scores its clips, and T is fitted on all of
    those scores together. ``dataset``: the training split, if the caller has it already."""
    from prgcn_ros.model.io import load_model, read_metadata, resolve_model

    from .checkpoint import STATE, CheckpointError, checkpoint_state
    from .datasets import build_dataset
    from .evaluate import predict
    from .train import train

    everyone = dataset if dataset is not None else build_dataset(cfg, "train")
    entries = cfg["calibration"]["cross_fit"]
    start = None if init is None else str(resolve_model(init))
    probs, labels, folds = [], [], []
    for number, entry in enumerate(entries, 1):
        subject = fold_name(entry)
        fold = fold_config(cfg, entry, out_dir)
        model_file = Path(fold["output"]["model"])
        fold_dir = Path(fold["output"]["dir"])

        def say(msg: str, s: Any = subject) -> None:
            log(f"cross-fit, subject {s}: {msg}")
        unfinished = None
        if resume and (fold_dir / STATE).is_file():
            with contextlib.suppress(CheckpointError, OSError, ValueError):
                unfinished = checkpoint_state(fold_dir)
        if model_file.is_file() and _same_run(read_metadata(model_file).get("training", {}),
                                              fold, start):
            say(f"using the finished fold model {model_file}")
        elif unfinished is not None and _same_run(unfinished, fold, start):
            say(f"fold {number} of {len(entries)}: going on from its checkpoint after epoch "
                f"{unfinished.get('epoch')}")
            # A resumed run keeps the start its checkpoint holds.
            train(fold, resume=str(fold_dir), progress=progress, max_steps=max_steps,
                  evaluate_at_end=False, log=say)
        else:
            say(f"training fold {number} of {len(entries)} without this subject")
            train(fold, progress=progress, max_steps=max_steps, evaluate_at_end=False,
                  log=say, init=init)
        model, _ = load_model(model_file)
        _, held = split_indices(everyone, fold)
        fold_probs, fold_labels = predict(model, subset(everyone, held, f"subject {subject}"),
                                          fold)
        probs.append(fold_probs)
        labels.append(fold_labels)
        folds.append({"subject": subject, "n": len(held), "model": str(model_file),
                      "top1": float((fold_probs.argmax(1) == fold_labels).mean())})
    split = (f"cross-fitted on {everyone.description}: subjects "
             f"{', '.join(f['subject'] for f in folds)}, each scored by a model of this recipe "
             f"trained without it")
    out = _fitted(np.concatenate(probs), np.concatenate(labels), split,
                  "temperature scaling, minimum NLL, cross-fitted")
    return {**out, "folds": folds}


def temperature_for(probs: np.ndarray, labels: np.ndarray) -> tuple[float, str | None]:
    """The temperature to apply: the fitted one, or 1 with the reason when the fit ran to an
    end of FIT_RANGE (see there)."""
    fitted = fit_temperature(probs, labels)
    lo, hi = FIT_RANGE
    if lo * 1.05 < fitted < hi / 1.05:
        return fitted, None
    wrong = int((probs.argmax(1) != labels).sum())
    if fitted <= lo * 1.05:
        why = (f"{wrong} of {len(labels)} wrong: too few errors to calibrate on (hold out "
               f"whole subjects, calibration.subjects)")
    else:
        why = (f"{wrong} of {len(labels)} wrong, or one class: the scores say nothing that a "
               f"temperature could calibrate")
    return 1.0, (f"the fit ran to the end of its range (T = {fitted:.3g}) on clips of which "
                 f"{why}; not applied (T = 1)")
