"""Datasets for training and evaluation: MSR Action3D (cross-subject) and ST-GCN arrays.

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
from prgcn_ros.skeleton.labels import MSR_ACTION3D_CLASSES, NTU60_CLASSES
from prgcn_ros.skeleton.sequence import SkeletonSequence

from .config import ConfigError, data_root

_MSR_NAME = re.compile(r"^a(\d+)_s(\d+)_e(\d+)$")


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


def parse_msr_name(name: str) -> MSRClip:
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
            raise FileNotFoundError(paths.missing_data_message(listing))
        names = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
    else:
        if not root.is_dir():
            raise FileNotFoundError(paths.missing_data_message(root))
        names = sorted(p.name for p in root.glob("a*_s*_e*_skeleton3D.txt"))
    return [parse_msr_name(n) for n in names]


class SequenceDataset:
    """A list of labelled sequences, loaded on first access and kept in memory."""

    def __init__(self, loaders: Sequence, labels: Sequence[int], names: Sequence[str],
                 class_names: Sequence[str], description: str, cache: bool = True):
        self._loaders = list(loaders)
        self.labels = [int(label) for label in labels]
        self.names = list(names)
        self.class_names = list(class_names)
        self.description = description
        self._cache: dict[int, SkeletonSequence] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self._loaders)

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
            raise FileNotFoundError(paths.missing_data_message(path))
    arrays = read_stgcn_arrays(data, label, layout=layout, fps=fps, label_names=class_names)

    def loader(i: int):
        return lambda: arrays[i]

    labels = [int(v) for v in arrays.labels]
    names = [str(v) for v in arrays.sample_names]
    # Memory-mapped: items are cheap to re-read, and a full NTU set does not fit in memory.
    return SequenceDataset([loader(i) for i in range(len(arrays))], labels, names, class_names,
                           description or f"ST-GCN arrays {data}", cache=False)


def class_names(cfg: dict) -> list[str]:
    """The class names the config names: a list, a file under the data root, or a known set."""
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
            raise FileNotFoundError(paths.missing_data_message(path))
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if cfg["data"]["kind"] == "msr_action3d":
        return list(MSR_ACTION3D_CLASSES)
    raise ConfigError("data.class_names is required for ST-GCN arrays (a list, 'ntu60', or a "
                      "file with one name a line)")


def build_dataset(cfg: dict, split: str) -> SequenceDataset:
    """The ``train`` or ``test`` split the config describes."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    data = cfg["data"]
    root = data_root(cfg)
    if data["kind"] == "msr_action3d":
        subjects = data[f"{split}_subjects"]
        return msr_action3d(root, data.get("file_list"), subjects,
                            f"MSR Action3D cross-subject {split} (subjects "
                            f"{', '.join(str(s) for s in subjects)})")
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
    return {"dataset": cfg.get("name"), "protocol": "ST-GCN arrays",
            "train": [data.get("train_data"), data.get("train_label")],
            "test": [data.get("test_data"), data.get("test_label")]}
