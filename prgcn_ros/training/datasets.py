"""Datasets for training and evaluation, each with its standard protocol: MSR Action3D and
UTD-MHAD (cross-subject), NW-UCLA (cross-view), SBU Kinect Interaction (5 folds), ST-GCN arrays.

Every dataset yields :class:`prgcn_ros.skeleton.sequence.SkeletonSequence` items with a 0-based
``label``; windowing, the shared preprocessing and augmentation happen in
:mod:`prgcn_ros.training.batching`, identically for every dataset.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from prgcn_ros import paths
from prgcn_ros.skeleton.labels import (
    MSR_ACTION3D_CLASSES,
    NTU60_CLASSES,
    NW_UCLA_ACTIONS,
    NW_UCLA_CLASSES,
    SBU_INTERACTION_CLASSES,
    UNKNOWN_LABEL,
    UTD_MHAD_CLASSES,
)
from prgcn_ros.skeleton.sequence import SkeletonSequence

from .config import ConfigError, data_base, data_root

_MSR_NAME = re.compile(r"^a(\d+)_s(\d+)_e(\d+)$")


class DataNotFound(FileNotFoundError):
    """A dataset file or folder that is not there; :func:`build_dataset` says, from the
    config, which setting to change."""

    def __init__(self, path: Path) -> None:
        super().__init__(paths.missing_data_message(path))
        self.path = Path(path)


@dataclass(frozen=True)
class MSRClip:
    """One MSR Action3D recording, from its name ``aAA_sSS_eEE``."""

    name: str
    action: int      # 1-based, as in the file name
    subject: int
    repetition: int

    @property
    def label(self) -> int:
        return self.action - 1

    @property
    def filename(self) -> str:
        return f"{self.name}_skeleton3D.txt"


def msr_clip(name: str) -> MSRClip:
    """``a01_s02_e03`` (optionally ``..._skeleton3D.txt``) -> MSRClip(action=1, subject=2)."""
    stem = name.strip()
    stem = stem.removesuffix(".txt").removesuffix("_skeleton3D")
    match = _MSR_NAME.match(stem)
    if not match:
        raise ValueError(f"not an MSR Action3D clip name: {name!r}")
    action, subject, rep = (int(g) for g in match.groups())
    return MSRClip(stem, action, subject, rep)


def msr_file_list(root: Path, file_list: str | None) -> list[MSRClip]:
    """The clips named in ``root/file_list`` (one name a line), or every file in ``root``."""
    if file_list:
        listing = root / file_list
        if not listing.is_file():
            raise DataNotFound(listing)
        names = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
    else:
        if not root.is_dir():
            raise DataNotFound(root)
        names = sorted(p.name for p in root.glob("a*_s*_e*_skeleton3D.txt"))
    return [msr_clip(n) for n in names]


class SequenceDataset:
    """A list of labelled sequences, loaded on first access and kept in memory."""

    def __init__(self, loaders: Sequence, labels: Sequence[int], names: Sequence[str],
                 class_names: Sequence[str], description: str, cache: bool = True,
                 recordings: Sequence[str] | None = None) -> None:
        self._loaders = list(loaders)
        self.labels = [int(label) for label in labels]
        self.names = list(names)
        # The performance each clip records: clips with the same key are one performance seen
        # by several sensors (NW-UCLA's views). By default every clip is its own.
        self.recordings = list(names) if recordings is None else list(recordings)
        if len(self.recordings) != len(self.names):
            raise ValueError(f"{len(self.recordings)} recording keys for {len(self.names)} clips")
        self.class_names = list(class_names)
        self.description = description
        self._cache: dict[int, SkeletonSequence] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self._loaders)

    def other_views(self) -> list[list[int]]:
        """For each clip, the other clips of its performance (empty when it has none)."""
        members: dict[str, list[int]] = {}
        for index, key in enumerate(self.recordings):
            members.setdefault(key, []).append(index)
        return [[j for j in members[key] if j != i] for i, key in enumerate(self.recordings)]

    def __getitem__(self, index: int) -> SkeletonSequence:
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        seq = self._loaders[index]()
        if self._cache is not None:
            self._cache[index] = seq
        return seq


def msr_action3d(root: Path, file_list: str | None, subjects: Sequence[int],
                 description: str = "") -> SequenceDataset:
    """MSR Action3D clips of the given subjects (the 557-file list by default)."""
    from prgcn_ros.skeleton.readers import read_msr_action3d

    wanted = {int(s) for s in subjects}
    clips = [c for c in msr_file_list(root, file_list) if c.subject in wanted]
    if not clips:
        raise ConfigError(f"no MSR Action3D clips of subjects {sorted(wanted)} under {root}")
    missing = [c.filename for c in clips if not (root / c.filename).is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} MSR Action3D files listed but missing under "
                                f"{root}, e.g. {missing[0]}")

    def loader(clip: MSRClip):
        return lambda: read_msr_action3d(root / clip.filename)

    return SequenceDataset([loader(c) for c in clips], [c.label for c in clips],
                           [c.name for c in clips], MSR_ACTION3D_CLASSES,
                           description or f"MSR Action3D subjects {sorted(wanted)}")


def stgcn_arrays(data: Path, label: Path, class_names: Sequence[str], layout: str | None = None,
                 fps: float = 30.0, description: str = "") -> SequenceDataset:
    """ST-GCN preprocessed arrays (N, C, T, V, M ``.npy`` + ``.pkl`` labels), memory-mapped."""
    from prgcn_ros.skeleton.readers import read_stgcn_arrays

    for path in (data, label):
        if not path.is_file():
            raise DataNotFound(path)
    arrays = read_stgcn_arrays(data, label, layout=layout, fps=fps, label_names=class_names)

    def loader(i: int):
        return lambda: arrays[i]

    labels = [int(v) for v in arrays.labels]
    outside = sorted({v for v in labels if not 0 <= v < len(class_names)})
    if outside:
        raise ValueError(f"{label}: labels {outside[:5]}{' ...' if len(outside) > 5 else ''} "
                         f"are outside 0..{len(class_names) - 1}, the {len(class_names)} class "
                         f"names (data.class_names)")
    names = [str(v) for v in arrays.sample_names]
    # Memory-mapped: items are cheap to re-read, and a full NTU set does not fit in memory.
    return SequenceDataset([loader(i) for i in range(len(arrays))], labels, names, class_names,
                           description or f"ST-GCN arrays {data}", cache=False)


# SBU Kinect Interaction's official 5 folds of subject pairs (data.fold k tests on fold k).
SBU_FOLDS: tuple[tuple[str, ...], ...] = (
    ("s01s02", "s03s04", "s05s02", "s06s04"), ("s02s03", "s02s07", "s03s05", "s05s03"),
    ("s01s03", "s01s07", "s07s01", "s07s03"), ("s02s01", "s02s06", "s03s02", "s03s06"),
    ("s04s02", "s04s03", "s04s06", "s06s02", "s06s03"))

# Dataset kinds read from their own files, with their class names.
_KIND_CLASSES: dict[str, tuple[str, ...]] = {
    "msr_action3d": MSR_ACTION3D_CLASSES, "nw_ucla": NW_UCLA_CLASSES,
    "utd_mhad": UTD_MHAD_CLASSES, "sbu_interaction": SBU_INTERACTION_CLASSES}


def _need_dir(root: Path) -> None:
    if not root.is_dir():
        raise DataNotFound(root)


def _need_all(asked: set, found: set, unit: str, what: str, root: Path) -> None:
    """Every subject, view or pair a split names has clips: one missing from the data (an
    incomplete download) would shrink the split without a word, and its figure with it."""
    absent = sorted(asked - found)
    if absent:
        raise ConfigError(f"no {what} clips of {unit} {', '.join(map(str, absent))} under "
                          f"{root}: the data there is incomplete, or the config names "
                          f"{unit} the dataset does not have")


def _from_files(files: Sequence[Path], reader, labels: Sequence[int], class_list: Sequence[str],
                description: str, what: str, root: Path,
                recordings: Sequence[str] | None = None) -> SequenceDataset:
    if not files:
        raise ConfigError(f"no {what} clips under {root} for {description}")

    def loader(path: Path):
        return lambda: reader(path)

    # A clip's name: the file stem, or for SBU its folders (pair/class/repetition).
    names = [str(Path(*Path(f).parts[-4:-1])) if Path(f).name == "skeleton_pos.txt"
             else Path(f).stem for f in files]
    return SequenceDataset([loader(f) for f in files], labels, names, class_list, description,
                           recordings=recordings)


def nw_ucla(root: Path, views: Sequence[int], subjects: Sequence[int] | None = None,
            description: str = "") -> SequenceDataset:
    """NW-UCLA clips ``aAA_sSS_eEE_vVV.json`` of the given views (and subjects, if given)."""
    from prgcn_ros.skeleton.readers import parse_nw_ucla_name, read_nw_ucla

    _need_dir(root)
    wanted = {int(v) for v in views}
    people = None if subjects is None else {int(s) for s in subjects}
    files, labels = [], []
    for path in sorted(root.glob("a*_s*_e*_v*.json")):
        name = parse_nw_ucla_name(path)
        if (name is None or name.view not in wanted or name.action not in NW_UCLA_ACTIONS
                or (people is not None and name.subject not in people)):
            continue
        files.append(path)
        labels.append(NW_UCLA_ACTIONS.index(name.action))
    if files:
        named = [parse_nw_ucla_name(path) for path in files]
        _need_all(wanted, {n.view for n in named}, "view", "NW-UCLA", root)
        if people is not None:
            _need_all(people, {n.subject for n in named}, "subject", "NW-UCLA", root)
    # aAA_sSS_eEE: the three Kinects filmed each performance at once.
    return _from_files(files, read_nw_ucla, labels, NW_UCLA_CLASSES,
                       description or f"NW-UCLA views {sorted(wanted)}", "NW-UCLA", root,
                       recordings=[path.stem.rsplit("_v", 1)[0] for path in files])


def utd_mhad(root: Path, subjects: Sequence[int], description: str = "") -> SequenceDataset:
    """UTD-MHAD clips ``aA_sS_tT_skeleton.mat`` of the given subjects."""
    from prgcn_ros.skeleton.readers import parse_utd_name, read_utd_mhad

    _need_dir(root)
    wanted = {int(s) for s in subjects}
    files, labels = [], []
    for path in sorted(root.glob("a*_s*_t*_skeleton.mat")):
        name = parse_utd_name(path)
        if name is None or name.subject not in wanted \
                or not 1 <= name.action <= len(UTD_MHAD_CLASSES):
            continue
        files.append(path)
        labels.append(name.action - 1)
    if files:
        _need_all(wanted, {parse_utd_name(path).subject for path in files}, "subject",
                  "UTD-MHAD", root)
    return _from_files(files, read_utd_mhad, labels, UTD_MHAD_CLASSES,
                       description or f"UTD-MHAD subjects {sorted(wanted)}", "UTD-MHAD", root)


def sbu_pairs(fold: int, split: str, folds: Sequence[Sequence[str]] = SBU_FOLDS) -> list[str]:
    """The subject pairs of SBU ``split`` ('train' or 'test') when fold ``fold`` (1-based) is
    held out."""
    if not 1 <= int(fold) <= len(folds):
        raise ConfigError(f"data.fold must be 1..{len(folds)}, got {fold!r}")
    held = [str(p) for p in folds[int(fold) - 1]]
    if split == "test":
        return held
    return [str(p) for i, f in enumerate(folds) if i != int(fold) - 1 for p in f]


def sbu_interaction(root: Path, pairs: Sequence[str], description: str = ""
                    ) -> SequenceDataset:
    """SBU Kinect Interaction sequences ``sXXsYY/CC/NNN/skeleton_pos.txt`` of the given pairs."""
    from prgcn_ros.skeleton.readers import parse_sbu_path, read_sbu_interaction

    _need_dir(root)
    wanted = set(pairs)
    files, labels = [], []
    for path in sorted(root.glob("s*s*/*/*/skeleton_pos.txt")):
        name = parse_sbu_path(path)
        if name is None or name.pair not in wanted \
                or not 1 <= name.action <= len(SBU_INTERACTION_CLASSES):
            continue
        files.append(path)
        labels.append(name.action - 1)
    if files:
        _need_all(wanted, {parse_sbu_path(path).pair for path in files}, "pairs", "SBU", root)
    return _from_files(files, read_sbu_interaction, labels, SBU_INTERACTION_CLASSES,
                       description or f"SBU pairs {sorted(wanted)}", "SBU", root)


def class_names(cfg: dict) -> list[str]:
    """The class names the config names: a list, a file under the data root, or a known set."""
    names = _named_classes(cfg)
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigError(f"class names repeat: {', '.join(repeated)} (data.class_names): "
                          f"each class needs a name of its own")
    if UNKNOWN_LABEL in names:
        raise ConfigError(f"a class may not be named {UNKNOWN_LABEL!r}: the recognizer answers "
                          f"that below min_confidence (rename it, e.g. 'other')")
    return names


def _named_classes(cfg: dict) -> list[str]:
    names = cfg["data"].get("class_names")
    if isinstance(names, list):
        return [str(n) for n in names]
    if isinstance(names, str):
        if names == "msr_action3d":
            return list(MSR_ACTION3D_CLASSES)
        if names == "ntu60":
            return list(NTU60_CLASSES)
        path = Path(names).expanduser()
        path = path if path.is_absolute() else data_root(cfg) / path
        if not path.is_file():
            raise DataNotFound(path)
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if cfg["data"]["kind"] in _KIND_CLASSES:
        return list(_KIND_CLASSES[cfg["data"]["kind"]])
    raise ConfigError("data.class_names is required for ST-GCN arrays (a list, 'ntu60', or a "
                      "file with one name a line)")


def build_dataset(cfg: dict, split: str) -> SequenceDataset:
    """The ``train`` or ``test`` split the config describes; a missing-data error says which
    setting chose the data folder and how to change it."""
    try:
        return _build_dataset(cfg, split)
    except DataNotFound as error:
        _, via = data_base(cfg)
        given = cfg["data"].get("dir")
        if via == f"${paths.DATA_ENV}":
            advice = f"Put the data there or set ${paths.DATA_ENV} to the folder holding it."
        elif given and Path(given).expanduser().is_absolute():
            advice = "Put the data there or change data.dir in the config."
            via += f"; an absolute data.dir wins over ${paths.DATA_ENV}"
        elif given:
            advice = (f"Put the data there, change data.dir in the config (relative: from "
                      f"the working directory) or set ${paths.DATA_ENV}.")
        else:
            advice = None
        raise FileNotFoundError(f"{paths.missing_data_message(error.path, advice)} (data "
                                f"folder chosen by {via})") from None


def _build_dataset(cfg: dict, split: str) -> SequenceDataset:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    data = cfg["data"]
    root = data_root(cfg)
    if data["kind"] == "msr_action3d":
        subjects = data[f"{split}_subjects"]
        return msr_action3d(root, data.get("file_list"), subjects,
                            f"MSR Action3D cross-subject {split} (subjects "
                            f"{', '.join(str(s) for s in subjects)})")
    if data["kind"] == "utd_mhad":
        subjects = data[f"{split}_subjects"]
        return utd_mhad(root, subjects, f"UTD-MHAD cross-subject {split} (subjects "
                        f"{', '.join(str(s) for s in subjects)})")
    if data["kind"] == "nw_ucla":
        views = data[f"{split}_views"]
        return nw_ucla(root, views, description=f"NW-UCLA cross-view {split} (views "
                       f"{', '.join(str(v) for v in views)})")
    if data["kind"] == "sbu_interaction":
        fold = int(data["fold"])
        return sbu_interaction(root, sbu_pairs(fold, split),
                               f"SBU Kinect Interaction fold {fold} {split}")
    npy, pkl = data.get(f"{split}_data"), data.get(f"{split}_label")
    if not npy or not pkl:
        raise ConfigError(f"data.{split}_data and data.{split}_label are required for ST-GCN "
                          f"arrays")
    npy, pkl = Path(npy).expanduser(), Path(pkl).expanduser()
    return stgcn_arrays(npy if npy.is_absolute() else root / npy,
                        pkl if pkl.is_absolute() else root / pkl, class_names(cfg),
                        layout=cfg["layout"], fps=float(cfg["fps"]),
                        description=f"ST-GCN arrays {split} ({npy.name})")


def split_description(cfg: dict) -> dict:
    """What the model was trained and evaluated on, for the model's metadata."""
    data = cfg["data"]
    if data["kind"] == "msr_action3d":
        return {"dataset": "MSR Action3D", "protocol": "cross-subject",
                "file_list": data.get("file_list"),
                "train_subjects": list(data["train_subjects"]),
                "test_subjects": list(data["test_subjects"])}
    if data["kind"] == "utd_mhad":
        return {"dataset": "UTD-MHAD", "protocol": "cross-subject",
                "train_subjects": list(data["train_subjects"]),
                "test_subjects": list(data["test_subjects"])}
    if data["kind"] == "nw_ucla":
        return {"dataset": "NW-UCLA", "protocol": "cross-view",
                "train_views": list(data["train_views"]),
                "test_views": list(data["test_views"])}
    if data["kind"] == "sbu_interaction":
        fold = int(data["fold"])
        return {"dataset": "SBU Kinect Interaction", "protocol": "5-fold cross-validation",
                "fold": fold, "test_pairs": sbu_pairs(fold, "test"),
                "train_pairs": sbu_pairs(fold, "train")}
    return {"dataset": cfg.get("name"), "protocol": "ST-GCN arrays",
            "train": [data.get("train_data"), data.get("train_label")],
            "test": [data.get("test_data"), data.get("test_label")]}
