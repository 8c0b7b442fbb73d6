"""Training configuration: one YAML file per benchmark, merged over documented defaults.

The data location: an absolute ``data.dir`` in the config wins; else ``$PRGCN_DATA``; else a
relative ``data.dir``; with neither, the data lives in ``../shared/data`` next to the source
checkout (:func:`prgcn_ros.paths.data_dir`). Errors about missing data say which one was used.
"""
from __future__ import annotations

import copy
import inspect
import math
import os
from pathlib import Path
from typing import Any

import yaml

from prgcn_ros import paths
from prgcn_ros.model.io import MAX_WINDOW_FRAMES
from prgcn_ros.skeleton.preprocess import INTERPOLATIONS, PreprocessConfig

DEFAULTS: dict[str, Any] = {
    "name": "prgcn",
    "seed": 1,
    "data": {
        # "msr_action3d": text files + cross-subject split; "stgcn_arrays": N,C,T,V,M .npy + .pkl;
        # "nw_ucla", "utd_mhad", "sbu_interaction": those datasets' files and standard protocol.
        "kind": "msr_action3d",
        # Folder holding the datasets; null: $PRGCN_DATA, else ../shared/data next to the checkout.
        "dir": None,
        "root": "msr_action3d",
        "file_list": "files_used_in_cvpr12_paper.txt",
        "train_subjects": [1, 3, 5, 7, 9],
        "test_subjects": [2, 4, 6, 8, 10],
        # stgcn_arrays: paths relative to root.
        "train_data": None, "train_label": None, "test_data": None, "test_label": None,
        "class_names": None,   # a list, or a text file (one name a line) relative to root
        # nw_ucla: cross-view (views 1, 2 train; 3 test).
        "train_views": [1, 2], "test_views": [3],
        # sbu_interaction: the official fold (1-5) held out for testing; report the mean of 5.
        "fold": 1,
        "max_persons": 1,      # person slots M of the model input
    },
    "layout": "kinect20",
    "fps": 15.0,
    "window": {
        # "resample": the whole clip (or, in training, a random part of it) resampled to
        # `length` frames; "crop": `length` consecutive frames (random start in training,
        # the newest in evaluation, as live), zero-padded when the clip is shorter.
        "mode": "resample",
        "length": 48,
        # Resample mode: "nearest" frame (a short clip repeats frames, so its motion comes in
        # steps) or "linear" between frames (it moves smoothly at any frame rate). Kept in the
        # model's metadata: the live node resamples the same way.
        "interpolation": "nearest",
        # Training only (resample mode): the random window keeps a uniform fraction in
        # [train_min_fraction, 1] of the clip at a random start (1.0: always the whole clip).
        "train_min_fraction": 1.0,
        # Training only (resample mode): "crop", the random window above resampled evenly;
        # "sorted_random", `length` frames drawn at random from the whole clip and put in
        # order, so the pace varies within the window (train_min_fraction is not used).
        "train_sampling": "crop",
        # Training only: each clip first keeps every s-th frame, s uniform in [lo, hi] (>= 1),
        # from a random start: the whole action in fewer frames ([1, 1]: off).
        "train_frame_step": [1.0, 1.0],
    },
    # Passed to prgcn_ros.skeleton.preprocess.PreprocessConfig.from_dict (the live node uses
    # the same settings, read back from the model's metadata); its fields' defaults.
    "preprocess": PreprocessConfig().to_dict(),
    "augment": {
        "rotate_deg": 0.0,        # uniform in +-rotate_deg about the vertical axis
        "tilt_deg": 0.0,          # uniform in +-tilt_deg about the two horizontal axes
        "scale": [1.0, 1.0],      # uniform isotropic scale range
        "translate": 0.0,         # uniform +-translate per axis, same offset for the whole clip
        "vertical_axis": 1,       # channel index of the vertical axis (y)
        # Two-person samples: probability of exchanging the two people's slots (live, the slot
        # order is the driver's ids; a clip with an empty slot keeps its order).
        "swap_persons": 0.0,
        "mirror": 0.0,            # probability of the mirror image (x negated, left <-> right)
        # Other body proportions: each bone of a clip stretched by 1 + N(0, body_shape), the
        # same over the clip and for a left bone and its right twin (0: off).
        "body_shape": 0.0,
        # Each person's path over the ground scaled by a factor uniform in [lo, hi] (the pose
        # in each frame unchanged; [1, 1]: off).
        "path_scale": [1.0, 1.0],
        # Probability that one limb of a person (an arm from the elbow, a leg from the knee,
        # drawn at random) is missing for the whole window (0: off).
        "drop_limb": 0.0,
    },
    # Exactly the architecture dict of prgcn_ros.model.build.build_model (and of the model
    # file's metadata), less "num_classes" and "layout", which come from the data and `layout`.
    # "name": prgcn | stgcn; any other key is that network's constructor argument
    # (prgcn: in_channels, refine_channels, use_prm, use_tam, fusion, use_motion, rigid_bones,
    # bone_input, partner_input, extent_norm, learned_edges, temporal_kernel, sample_topology,
    # temporal_dilations, gfm_channels, graph_norm;
    # stgcn: in_channels, dropout, variant). Unset keys take the constructor's defaults.
    "model": {"name": "prgcn"},
    # The PRM's training objective. "restore" (default): besides the classification loss, the
    # PRM learns to undo a driver noise model (prgcn_ros.training.noise): a fraction
    # `corrupt_prob` of the training windows is corrupted, the classifier sees the corrupted
    # window, and the refined window is pulled towards the clean one by a smooth-L1 loss
    # (`restore_weight`, `restore_beta` in model units, i.e. torso lengths) over the clean
    # window's joints, plus `offset_weight` x mean |offset|. "classification": the paper's PRM,
    # trained by the classification loss alone (no corruption, no reconstruction loss).
    "refine": {
        "objective": "restore",
        "corrupt_prob": 0.5,
        "restore_weight": 10.0,
        "restore_beta": 0.05,
        "offset_weight": 0.1,
        # The PRM's learning rate relative to the rest of the network (both objectives), and
        # its optimiser: "sgd" (the network's) or "adam" (no weight decay; it follows the same
        # schedule). SGD at the classifier's rates barely moves the PRM towards restoration.
        "prm_lr_scale": 0.3,
        "prm_optimizer": "sgd",
        # Levels in sensor units (metres for 3D): prgcn_ros.training.noise.NoiseConfig.
        "noise": {"jitter": 0.02, "drop_prob": 0.01, "drop_frames": 5, "spike_prob": 0.02,
                  "spike_range": [0.2, 0.5], "swap_prob": 0.0, "bone_noise": 0.03,
                  "strength": 1.0},
        # The strengths `prgcn-eval --refinement` measures at (1: the training noise).
        "eval_strengths": [1.0, 2.0],
    },
    "optim": {
        "lr": 0.01,
        "momentum": 0.9,
        "nesterov": False,
        "weight_decay": 0.0001,
        "batch_size": 16,
        "epochs": 100,
        # Learning-rate decay by `gamma` at each milestone epoch (0-based epoch index at which
        # the new rate starts). Either explicit `milestones`, or `start` + `every`: decays at
        # start, start + every, ... (the paper's "every 10 epochs apart from the first 10").
        # kind "cosine" ignores those: the rate falls from lr towards 0 along half a cosine over
        # the epochs after `warmup` (such a run resumes only with its own number of epochs).
        # Either kind: the first `warmup` epochs rise linearly to lr.
        "schedule": {"kind": "step", "gamma": 0.1, "milestones": None, "start": 10, "every": 10,
                     "warmup": 0},
        "grad_clip": None,
        "label_smoothing": 0.0,
        # An exponential moving average of the weights (and batch-norm statistics), updated
        # after every step with this decay (0: off); the model file and the evaluation get the
        # averaged weights. torch.optim.swa_utils.AveragedModel.
        "ema_decay": 0.0,
        # Weight of a view-consistency term (0: off): every training clip recorded by other
        # sensors too (the same performance, SequenceDataset.recordings) brings one of those
        # recordings into its batch, and weight x (1 - cosine similarity) of the two clips'
        # pooled features (the classifier's input, centred on the batch mean) joins the loss.
        "view_consistency": 0.0,
        # Mixup (Zhang et al. 2018): each batch is blended with itself in a random order, the
        # windows and their labels by one weight drawn from Beta(mixup, mixup) (0: off). The
        # restore objective's target is the same blend of the clean windows.
        "mixup": 0.0,
        # Learning rate of the links beside the skeleton's (model.learned_edges,
        # model.sample_topology; they start at zero) relative to the rest of the network.
        "links_lr_scale": 1.0,
    },
    # Confidence calibration (temperature scaling, prgcn_ros.training.calibration): a validation
    # split taken out of the training data, either the clips of these training `subjects`
    # (SBU: subject pairs), or else this `fraction` of each class (drawn with `seed`); the
    # fitted temperature goes into the model's metadata. Neither: no calibration. Or, with
    # `cross_fit` (a list of training subjects or pairs, or of lists of them, without the other
    # two), the model trains on every training clip and the temperature is fitted on models of
    # the same recipe, one per entry trained without its subjects, each scoring the clips it
    # never saw (one more training per entry).
    "calibration": {"subjects": None, "fraction": 0.0, "seed": 0, "cross_fit": None},
    # Outlier exposure (prgcn_ros.training.outliers): every training batch also holds
    # `per_batch` clips of actions outside the classes, from `data` (a data section of another
    # dataset, its train split; `classes`: the actions taken, null: all), and `weight` x their
    # cross-entropy to the uniform distribution joins the loss. per_batch 0: none. `restore`:
    # whether the restore objective's reconstruction loss covers them too.
    "outliers": {"data": None, "classes": None, "per_batch": 0, "weight": 0.5,
                 "restore": False},
    # How the model is applied, in evaluation and live (stored in the model's metadata).
    # pair_orders (two-person models): "given", the slot order as it comes (live: the lower
    # person_id first); "both", scored in both slot orders and the scores averaged, so the label
    # does not depend on which person is first (prgcn_ros.skeleton.preprocess.PAIR_ORDERS).
    "inference": {"pair_orders": "given"},
    "eval": {
        "batch_size": 64,
        "confusion_png": None,             # prgcn-eval's picture; null: <output.dir>/confusion.png
    },
    "output": {
        "dir": None,                       # checkpoints and logs; null: runs/<name> (in the cwd)
        "model": None,                     # the model file; null: <output.dir>/<name>.safetensors
        "checkpoint_every": 1,
    },
    "threads": 0,                          # torch threads; 0: leave torch's default
    # auto: the GPU where CUDA is available, else the CPU (under torchrun: each process's GPU
    # with nccl, or the CPU with gloo); cpu; cuda[:N].
    "device": "auto",
}


SCHEDULE_KINDS = ("step", "cosine")
DATA_KINDS = ("msr_action3d", "stgcn_arrays", "nw_ucla", "utd_mhad", "sbu_interaction")
# The layout a dataset kind's reader gives its clips (ST-GCN arrays take the config's own).
DATA_KIND_LAYOUTS = {"msr_action3d": "kinect20", "nw_ucla": "kinect20", "utd_mhad": "kinect20",
                     "sbu_interaction": "openni15"}


class ConfigError(ValueError):
    """A training config that cannot be used; the message names the file and the key."""


# Sections whose keys are not fixed by DEFAULTS (checked in _check instead).
_OPEN_SECTIONS = ("model",)

# Numeric training settings (augmentation, noise model, windows, outliers) and the interval
# each must lie in (both ends included; integer ends: whole numbers only). Null is the
# default's value, as for every setting.
_BOUNDED = {
    ("augment", "rotate_deg"): (0.0, 180.0, "degrees"),
    ("augment", "tilt_deg"): (0.0, 180.0, "degrees"),
    ("augment", "translate"): (0.0, math.inf, "model units"),
    ("augment", "swap_persons"): (0.0, 1.0, "a probability"),
    ("augment", "mirror"): (0.0, 1.0, "a probability"),
    ("augment", "body_shape"): (0.0, math.inf, "a standard deviation"),
    ("augment", "drop_limb"): (0.0, 1.0, "a probability"),
    ("augment", "vertical_axis"): (0, 2, "a whole channel index"),
    ("refine", "corrupt_prob"): (0.0, 1.0, "a probability"),
    ("refine", "noise", "jitter"): (0.0, math.inf, "a standard deviation"),
    ("refine", "noise", "drop_prob"): (0.0, 1.0, "a probability"),
    ("refine", "noise", "drop_frames"): (1, math.inf, "a whole number of frames"),
    ("refine", "noise", "spike_prob"): (0.0, 1.0, "a probability"),
    ("refine", "noise", "swap_prob"): (0.0, 1.0, "a probability"),
    ("refine", "noise", "bone_noise"): (0.0, math.inf, "a standard deviation"),
    ("refine", "noise", "strength"): (0.0, math.inf, "a factor"),
    ("window", "length"): (1, MAX_WINDOW_FRAMES, "a whole number of frames"),
    ("window", "train_min_fraction"): (0.0, 1.0, "a fraction of the clip"),
    ("outliers", "per_batch"): (0, math.inf, "a whole number of clips"),
    ("outliers", "weight"): (0.0, math.inf, "a loss weight"),
}
# [lo, hi] settings (hi >= lo), the least lo each allows and whether lo must exceed it.
_RANGES = {
    ("augment", "scale"): (0.0, True),
    ("augment", "path_scale"): (0.0, False),
    ("refine", "noise", "spike_range"): (0.0, False),
    ("window", "train_frame_step"): (1.0, False),
}
_FIXED_BY_DATA = ("num_classes", "layout")


def _merge(base: dict, override: dict, where: str, top: bool = True,
           defaults: dict | None = None, keys: tuple[str, ...] = ()) -> dict:
    """``override`` over ``base``, each value checked against the kind of its default in
    ``defaults`` (:data:`DEFAULTS`' section; a config's own null is no kind)."""
    defaults = base if defaults is None else defaults
    out = copy.deepcopy(base)
    for key, value in override.items():
        if top and key in _OPEN_SECTIONS and isinstance(value, dict):
            # Another network starts from its own defaults, not from this one's arguments.
            same = value.get("name", out[key].get("name")) == out[key].get("name")
            out[key] = {**(out[key] if same else {}), **copy.deepcopy(value)}
        elif key not in base:
            raise ConfigError(f"{where}: unknown key {key!r} (known: {', '.join(sorted(base))})")
        elif isinstance(base[key], dict):
            if not isinstance(value, dict) and value is not None:   # null: an empty section
                raise ConfigError(f"{where}.{key}: expected a section of settings "
                                  f"({', '.join(sorted(base[key]))}), got {value!r}")
            out[key] = _merge(base[key], value or {}, f"{where}.{key}", top=False,
                              defaults=defaults.get(key, base[key]), keys=(*keys, key))
        else:
            out[key] = _checked(defaults.get(key), copy.deepcopy(value), f"{where}.{key}",
                                ".".join((*keys, key)))
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# Settings whose default is null, and what else they take (calibration.cross_fit and
# optim.schedule.milestones: _check says more).
_NULLABLE: dict[str, tuple[Any, str]] = {
    **dict.fromkeys(("data.dir", "data.train_data", "data.train_label", "data.test_data",
                     "data.test_label", "eval.confusion_png", "output.dir", "output.model"),
                    (lambda v: isinstance(v, str), "a path")),
    "data.class_names": (lambda v: isinstance(v, str | list), "a list or a file's path"),
    "optim.grad_clip": (_is_number, "a number"),
    "calibration.subjects": (lambda v: isinstance(v, list), "a list of subjects (or pairs)"),
    "outliers.data": (lambda v: isinstance(v, dict), "a data section (kind, root, ...)"),
    "outliers.classes": (lambda v: isinstance(v, list), "a list of class numbers"),
}


def _checked(default: Any, value: Any, where: str, name: str = "") -> Any:
    """A setting of the kind its default is (null is always allowed: the default's meaning);
    a setting whose default is null, of the kind :data:`_NULLABLE` gives it."""
    if value is None:
        return value
    if default is None:
        if name not in _NULLABLE:
            return value
        check, kind = _NULLABLE[name]
        if isinstance(value, str) and check is _is_number:
            value = _number(value)
        if not check(value):
            raise ConfigError(f"{where}: expected {kind}, got {value!r}")
        return value
    if isinstance(default, bool):
        ok, kind = isinstance(value, bool), "true or false"
    elif isinstance(default, (int, float)):
        if isinstance(value, str):
            value = _number(value)
        ok, kind = _is_number(value), "a number"
    elif isinstance(default, str):
        ok, kind = isinstance(value, str), "a string"
    elif isinstance(default, (list, tuple)):
        ok, kind = isinstance(value, (list, tuple)), "a list"
    else:
        return value
    if not ok:
        raise ConfigError(f"{where}: expected {kind}, got {value!r}")
    return value


def _number(text: str) -> Any:
    """YAML 1.1 reads 1e-3 (no decimal point) as a string: its number, else the text."""
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if number.is_integer() and text.strip().lstrip("+-").isdigit() \
        else number


def _read(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    """A config file's mapping, with its ``base:`` file (relative to it) merged underneath."""
    if not path.is_file():
        raise ConfigError(f"training config not found: {path}")
    if path.resolve() in seen:
        raise ConfigError(f"{path}: 'base' files include each other")
    with open(path) as f:
        try:
            raw = yaml.safe_load(f) or {}
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: not valid YAML ({error})".replace("\n", " ")) from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    base = raw.pop("base", None)
    if base is None:
        return raw
    base_path = Path(base).expanduser()
    base_path = base_path if base_path.is_absolute() else path.parent / base_path
    under = _read(base_path, (*seen, path.resolve()))
    return deep_update(under, raw)


def deep_update(under: dict, over: dict) -> dict:
    """``under`` with ``over`` written over it, nested mappings merged key by key."""
    out = copy.deepcopy(under)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_update(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_config(path: str | os.PathLike | None = None,
                overrides: dict | None = None) -> dict[str, Any]:
    """The config at ``path`` (YAML; a ``base:`` key names a config it builds on) merged over
    :data:`DEFAULTS`, then ``overrides``."""
    cfg = copy.deepcopy(DEFAULTS)
    if path is not None:
        path = Path(path)
        cfg = _merge(cfg, _read(path), str(path))
        cfg["_path"] = str(path.resolve())
    if overrides:
        cfg = _merge({**cfg, "_path": cfg.get("_path")}, overrides, "overrides",
                     defaults=DEFAULTS)
    if not cfg["output"]["dir"]:
        cfg["output"]["dir"] = str(Path("runs") / str(cfg["name"]))
    _check(cfg, cfg.get("_path") or "config")
    return cfg


def split_overlap(data: dict, test: dict | None = None) -> str | None:
    """What the training split of ``data`` shares with the test split of ``test`` (default:
    ``data``'s own), for the kinds whose splits are subjects or views; None when nothing."""
    test = data if test is None else test
    kind = data.get("kind")
    key = {"msr_action3d": "subjects", "utd_mhad": "subjects", "nw_ucla": "views"}.get(kind)
    if key is None or test.get("kind") != kind:
        return None
    shared = sorted(set(data.get(f"train_{key}") or []) & set(test.get(f"test_{key}") or []))
    return f"{key} {shared}" if shared else None


def subject_key(subject: str | int) -> str:
    """A subject (or pair) as the clips' names are read: ``1`` and ``"01"`` are one subject."""
    text = str(subject)
    return str(int(text)) if text.isdigit() else text


def fold_subjects(entry: Any) -> list:
    """The subjects one entry of ``calibration.cross_fit`` holds out: a subject, or a list."""
    return list(entry) if isinstance(entry, list | tuple) else [entry]


def _range(value: Any) -> tuple[float, float]:
    """A [lo, hi] setting as floats; (1, 0), a range every check refuses, when it is none."""
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        return 1.0, 0.0
    return low, high


def _check_bounds(cfg: dict, where: str) -> None:
    """The settings of :data:`_BOUNDED` and :data:`_RANGES` in their intervals (null: the
    default's value)."""
    def setting(keys: tuple[str, ...]) -> tuple[dict, dict, str]:
        section, default = cfg, DEFAULTS
        for key in keys[:-1]:
            section, default = section[key], default[key]
        return section, default, ".".join(keys)

    for keys, (low, high, kind) in _BOUNDED.items():
        section, default, name = setting(keys)
        if section[keys[-1]] is None:
            section[keys[-1]] = default[keys[-1]]
        value = section[keys[-1]]
        if not low <= value <= high or (isinstance(low, int) and not float(value).is_integer()):
            span = f"from {low:g} to {high:g}" if high != math.inf else f"of {low:g} or more"
            raise ConfigError(f"{where}: {name} must be {kind} {span}, got {value!r}")
    for keys, (least, above) in _RANGES.items():
        section, default, name = setting(keys)
        if section[keys[-1]] is None:
            section[keys[-1]] = copy.deepcopy(default[keys[-1]])
        low, high = _range(section[keys[-1]])
        if len(section[keys[-1]]) != 2 or not least <= low <= high or (above and low == least):
            raise ConfigError(f"{where}: {name} must be [lo, hi] with {least:g} "
                              f"{'<' if above else '<='} lo <= hi, got {section[keys[-1]]!r}")
    if not cfg["window"]["train_min_fraction"] > 0:
        raise ConfigError(f"{where}: window.train_min_fraction must be above 0 (1: the whole "
                          f"clip)")


def _check(cfg: dict, where: str) -> None:
    _check_bounds(cfg, where)
    overlap = split_overlap(cfg["data"])
    if overlap:
        raise ConfigError(f"{where}: data: the training and test splits share {overlap}; a "
                          f"test clip the model trained on measures nothing")
    milestones = cfg["optim"]["schedule"]["milestones"]
    if milestones is not None and not (isinstance(milestones, list) and all(
            isinstance(m, int) and not isinstance(m, bool) for m in milestones)):
        raise ConfigError(f"{where}: optim.schedule.milestones must be a list of epochs, e.g. "
                          f"[40, 60] (null: every schedule.every epochs from schedule.start), "
                          f"got {milestones!r}")
    sched = cfg["optim"]["schedule"]
    for key, least in (("start", 0), ("every", 1)):
        if sched[key] is not None and not (_is_whole(sched[key]) and sched[key] >= least):
            raise ConfigError(f"{where}: optim.schedule.{key} must be a whole number of epochs "
                              f"of at least {least} (or null), got {sched[key]!r}")
    if sched["kind"] not in SCHEDULE_KINDS:
        raise ConfigError(f"{where}: optim.schedule.kind must be one of "
                          f"{', '.join(SCHEDULE_KINDS)}, got {sched['kind']!r}")
    for key in ("epochs", "batch_size"):
        value = cfg["optim"][key]
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            raise ConfigError(f"{where}: optim.{key} must be a whole number of at least 1, "
                              f"got {value!r}")
    warmup = sched["warmup"]
    if not (isinstance(warmup, int) and not isinstance(warmup, bool)
            and 0 <= warmup < int(cfg["optim"]["epochs"])):
        raise ConfigError(f"{where}: optim.schedule.warmup must be a number of epochs from 0 to "
                          f"fewer than optim.epochs ({cfg['optim']['epochs']}), got {warmup!r}")
    cal = cfg["calibration"]
    if cal["cross_fit"] is not None:
        def subject(x: Any) -> bool:
            return isinstance(x, str | int) and not isinstance(x, bool)
        entries = cal["cross_fit"]
        if not (isinstance(entries, list) and len(entries) >= 2 and all(
                subject(e) or (isinstance(e, list) and e and all(map(subject, e)))
                for e in entries)):
            raise ConfigError(f"{where}: calibration.cross_fit must list at least two training "
                              f"subjects (or pairs, or lists of them), got {entries!r}")
        listed = [subject_key(x) for e in entries for x in fold_subjects(e)]
        twice = sorted({x for x in listed if listed.count(x) > 1})
        if twice:       # its clips would be scored twice, by two models
            raise ConfigError(f"{where}: calibration.cross_fit lists {', '.join(twice)} more "
                              f"than once")
        if cal["subjects"] or float(cal["fraction"] or 0.0) > 0.0:
            raise ConfigError(f"{where}: calibration.cross_fit trains on every training clip; "
                              f"it takes no calibration.subjects or calibration.fraction (set "
                              f"calibration.cross_fit: null to hold clips out instead)")
    if cfg["window"]["mode"] not in ("resample", "crop"):
        raise ConfigError(f"{where}: window.mode must be 'resample' or 'crop'")
    if cfg["window"]["interpolation"] not in INTERPOLATIONS:
        raise ConfigError(f"{where}: window.interpolation must be one of "
                          f"{', '.join(INTERPOLATIONS)}")
    if cfg["window"]["train_sampling"] not in ("crop", "sorted_random"):
        raise ConfigError(f"{where}: window.train_sampling must be 'crop' or 'sorted_random'")
    if cfg["data"]["kind"] not in DATA_KINDS:
        raise ConfigError(f"{where}: data.kind must be one of {', '.join(DATA_KINDS)}")
    if cfg["data"]["max_persons"] not in (1, 2):
        raise ConfigError(f"{where}: data.max_persons must be 1 or 2 (person slots of a "
                          f"sample), got {cfg['data']['max_persons']!r}")
    kinds = [("data.kind", cfg["data"]["kind"])]
    outlier_data = cfg["outliers"]["data"]
    if isinstance(outlier_data, dict):     # a data section: its keys and kinds as data's
        _merge(cfg["data"], outlier_data, f"{where}: outliers.data", top=False,
               defaults=DEFAULTS["data"], keys=("data",))
    if isinstance(outlier_data, dict) and int(cfg["outliers"]["per_batch"] or 0):
        kinds.append(("outliers.data.kind", outlier_data.get("kind", cfg["data"]["kind"])))
    for key, kind in kinds:
        kind_layout = DATA_KIND_LAYOUTS.get(kind)
        if kind_layout not in (None, cfg["layout"]):
            raise ConfigError(f"{where}: layout {cfg['layout']!r} does not fit {key} {kind!r}, "
                              f"whose clips are {kind_layout!r}"
                              + (f": set layout: {kind_layout}" if key == "data.kind" else ""))
    if cfg["refine"]["objective"] not in ("restore", "classification"):
        raise ConfigError(f"{where}: refine.objective must be 'restore' or 'classification'")
    from prgcn_ros.model.backends import device_problem
    problem = device_problem(str(cfg["device"]))
    if problem:
        raise ConfigError(f"{where}: {problem}")
    from prgcn_ros.skeleton.preprocess import PAIR_ORDERS
    if cfg["inference"]["pair_orders"] not in PAIR_ORDERS:
        raise ConfigError(f"{where}: inference.pair_orders must be one of "
                          f"{', '.join(PAIR_ORDERS)}")
    if _range(cfg["augment"]["path_scale"]) != (1.0, 1.0) \
            and cfg["preprocess"]["center"] == "per_frame":
        raise ConfigError(f"{where}: augment.path_scale scales the path that preprocess.center "
                          f"per_frame removes: use first_frame (or none) with it")
    if not 0.0 <= float(cfg["optim"]["ema_decay"] or 0.0) < 1.0:
        raise ConfigError(f"{where}: optim.ema_decay must be in [0, 1) (0: no averaging)")
    if float(cfg["optim"]["view_consistency"] or 0.0) < 0.0:
        raise ConfigError(f"{where}: optim.view_consistency must be >= 0 (0: off)")
    if float(cfg["optim"]["links_lr_scale"]) <= 0.0:
        raise ConfigError(f"{where}: optim.links_lr_scale must be positive (1: the network's "
                          f"rate)")
    mixup = float(cfg["optim"]["mixup"] or 0.0)
    if mixup < 0.0:
        raise ConfigError(f"{where}: optim.mixup is a Beta distribution's parameter (> 0; 0: off)")
    if mixup and (float(cfg["optim"]["view_consistency"] or 0.0)
                  or int(cfg["outliers"]["per_batch"] or 0)):
        raise ConfigError(f"{where}: optim.mixup blends the clips of a batch, which would blend "
                          f"the view-consistency pairs or the outlier clips too: use one of them")
    if cfg["outliers"]["per_batch"] and not cfg["outliers"]["data"]:
        raise ConfigError(f"{where}: outliers.per_batch asks for foreign clips in every batch: "
                          f"outliers.data must say where they are (a data section)")
    if cfg["refine"]["prm_optimizer"] not in ("sgd", "adam"):
        raise ConfigError(f"{where}: refine.prm_optimizer must be 'sgd' or 'adam'")
    from prgcn_ros.model.build import ARCHITECTURES
    spec = cfg["model"]
    if spec.get("name") not in ARCHITECTURES:
        raise ConfigError(f"{where}: model.name must be one of {', '.join(ARCHITECTURES)}")
    accepted = set(inspect.signature(ARCHITECTURES[spec["name"]]).parameters)
    for key in spec:
        if key in _FIXED_BY_DATA:
            raise ConfigError(f"{where}: model.{key} comes from the data and 'layout', not "
                              f"the model section")
        if key != "name" and key not in accepted:
            raise ConfigError(f"{where}: model.{key} is not an argument of {spec['name']} "
                              f"(known: {', '.join(sorted(accepted - set(_FIXED_BY_DATA)))})")


def model_spec(cfg: dict, num_classes: int) -> dict[str, Any]:
    """The architecture dict for :func:`prgcn_ros.model.build.build_model`: the config's
    ``model`` section with the class count and the layout."""
    return {**cfg["model"], "num_classes": int(num_classes), "layout": cfg["layout"]}


def in_channels(cfg: dict) -> int:
    """Input channels of the configured network (its constructor's default when unset)."""
    from prgcn_ros.model.build import complete_arch
    return int(complete_arch(cfg["model"])["in_channels"])


def data_base(cfg: dict) -> tuple[Path, str]:
    """The folder holding the datasets and what chose it: an absolute ``data.dir`` (the
    config's own, explicit choice), else ``$PRGCN_DATA``, else a relative ``data.dir`` (from the
    working directory), else ../shared/data next to the checkout."""
    given = cfg["data"].get("dir")
    if given and Path(given).expanduser().is_absolute():
        return Path(given).expanduser(), "data.dir of the config"
    if os.environ.get(paths.DATA_ENV):
        return paths.data_dir(), f"${paths.DATA_ENV}"
    if given:
        return Path(given).expanduser(), "data.dir of the config"
    return paths.data_dir(), "the default next to the checkout"


def data_root(cfg: dict) -> Path:
    """The dataset folder: :func:`data_base` / data.root (an absolute data.root wins)."""
    base, _ = data_base(cfg)
    root = Path(cfg["data"]["root"] or ".").expanduser()
    return root if root.is_absolute() else base / root


def lr_milestones(cfg: dict) -> list[int]:
    """Epochs (0-based) at which the learning rate is multiplied by ``schedule.gamma`` (none
    for the cosine schedule)."""
    sched = cfg["optim"]["schedule"]
    epochs = int(cfg["optim"]["epochs"])
    if sched.get("kind", "step") == "cosine":
        return []
    if sched.get("milestones") is not None:
        return sorted(int(m) for m in sched["milestones"])
    start, every = sched.get("start"), sched.get("every")
    if start is None:
        return []
    if not every:
        return [int(start)]
    return list(range(int(start), epochs, int(every)))

def learning_rate(cfg: dict, epoch: int) -> float:
    """The learning rate used during ``epoch`` (0-based)."""
    sched = cfg["optim"]["schedule"]
    lr = float(cfg["optim"]["lr"])
    warmup = int(sched.get("warmup") or 0)
    if epoch < warmup:
        return lr * (epoch + 1) / (warmup + 1)
    if sched.get("kind", "step") == "cosine":
        span = max(int(cfg["optim"]["epochs"]) - warmup, 1)
        return lr * 0.5 * (1.0 + math.cos(math.pi * min(epoch - warmup, span) / span))
    decays = sum(1 for m in lr_milestones(cfg) if epoch >= m)
    return lr * float(sched["gamma"]) ** decays


def schedule_description(cfg: dict) -> str:
    """The learning-rate schedule in words, for the training log."""
    sched = cfg["optim"]["schedule"]
    warmup = int(sched.get("warmup") or 0)
    rise = f", rising over the first {warmup} epochs" if warmup else ""
    if sched.get("kind", "step") == "cosine":
        return f"lr {cfg['optim']['lr']} along a cosine{rise}"
    return f"lr {cfg['optim']['lr']} x{sched['gamma']} at epochs {lr_milestones(cfg)}{rise}"


def public(cfg: dict) -> dict:
    """The config without private keys (for metadata and checkpoints)."""
    return {k: copy.deepcopy(v) for k, v in cfg.items() if not k.startswith("_")}


# The sections that decide what a run trains. Not among them: where it runs (device, threads),
# its name and where its files go (output, eval), and how a trained model is scored (inference).
RECIPE = ("seed", "fps", "layout", "data", "window", "preprocess", "augment", "model", "refine",
          "outliers", "calibration", "optim")


def recipe(cfg: dict) -> dict:
    """A config's RECIPE sections (those it has), without where the data lies (data.dir: another
    machine, a moved folder) and calibration.cross_fit (other models, trained after this one):
    two runs of equal recipes train the same model."""
    out = {k: copy.deepcopy(cfg[k]) for k in RECIPE if k in cfg}
    if "data" in out:
        out["data"]["dir"] = None
    if "calibration" in out:
        out["calibration"]["cross_fit"] = None
    return out


def with_defaults(recorded: dict) -> dict:
    """A config recorded by an earlier run (in a checkpoint or a model file) with each key it
    lacks, because the option came later, at its default: comparable with one loaded today."""
    return _merge(DEFAULTS, public(recorded), "recorded config")
