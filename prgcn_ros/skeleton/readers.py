"""Readers for skeleton recordings; each returns a :class:`SkeletonSequence`.

Every reader parses the whole file before building its result, so a truncated or malformed file
raises :class:`RecordingError` (naming the file and the line, frame or byte where it broke) and
nothing half-read is ever returned.
"""
from __future__ import annotations

import _compat_pickle
import json
import os
import pickle
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .labels import (
    MSR_ACTION3D_CLASSES,
    NTU60_CLASSES,
    NW_UCLA_ACTIONS,
    NW_UCLA_CLASSES,
    SBU_INTERACTION_CLASSES,
    UTD_MHAD_CLASSES,
    ntu_class_name,
)
from .layouts import LAYOUTS, TWO_D_LAYOUTS, get_layout
from .sequence import SkeletonSequence

MSR_FPS = 15.0
NTU_FPS = 30.0
KINETICS_FPS = 30.0
UTD_FPS = 30.0
SBU_FPS = 15.0
# The NW-UCLA files do not state a rate; walking there moves the hip centre a median 6 cm per
# frame, which is a walking pace (~0.9 m/s) at 15 fps and twice that at 30.
NW_UCLA_FPS = 15.0

# Kinect v2 tracking state -> confidence: tracked, inferred (estimated, still usable), not tracked.
NTU_STATE_CONFIDENCE = {2: 1.0, 1: 0.5, 0: 0.0}

_MSR_NAME = re.compile(r"a(\d+)_s(\d+)_e(\d+)", re.IGNORECASE)
_NTU_NAME = re.compile(r"S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})")
_NW_UCLA_NAME = re.compile(r"a(\d+)_s(\d+)_e(\d+)_v(\d+)", re.IGNORECASE)
_UTD_NAME = re.compile(r"a(\d+)_s(\d+)_t(\d+)", re.IGNORECASE)
_SBU_PAIR = re.compile(r"^s(\d\d)s(\d\d)$")

# Joint orders of the Kinect v1 files that are not MSR Action3D's (kinect20), by kinect20 name;
# the readers reorder them into kinect20 so every Kinect v1 dataset shares one layout.
KINECT_SDK20_ORDER: tuple[str, ...] = (
    "hip_center", "spine", "shoulder_center", "head", "left_shoulder", "left_elbow",
    "left_wrist", "left_hand", "right_shoulder", "right_elbow", "right_wrist", "right_hand",
    "left_hip", "left_knee", "left_ankle", "left_foot", "right_hip", "right_knee",
    "right_ankle", "right_foot")
UTD_MHAD_ORDER: tuple[str, ...] = (
    "head", "shoulder_center", "spine", "hip_center", "left_shoulder", "left_elbow",
    "left_wrist", "left_hand", "right_shoulder", "right_elbow", "right_wrist", "right_hand",
    "left_hip", "left_knee", "left_ankle", "left_foot", "right_hip", "right_knee",
    "right_ankle", "right_foot")


class RecordingError(ValueError):
    """A recording that cannot be read; says which file and where in it."""

    def __init__(self, path: str | Path, where: str, problem: str) -> None:
        self.path = str(path)
        self.where = where
        self.problem = problem
        super().__init__(f"{self.path}: {where}: {problem}" if where else
                         f"{self.path}: {problem}")


# --------------------------------------------------------------------------- file names
@dataclass(frozen=True)
class MsrName:
    action: int      # 1-based, as in the file name
    subject: int
    episode: int


@dataclass(frozen=True)
class NtuName:
    setup: int
    camera: int
    performer: int
    replication: int
    action: int      # 1-based, as in the file name


@dataclass(frozen=True)
class NwUclaName:
    action: int      # 1-based action number as in the file name (a01..a12, no a07/a10)
    subject: int
    episode: int
    view: int


@dataclass(frozen=True)
class UtdName:
    action: int      # 1-based, as in the file name
    subject: int
    trial: int


@dataclass(frozen=True)
class SbuName:
    pair: str        # subject pair folder, e.g. "s01s02"
    action: int      # 1-based class folder
    repetition: int


def parse_nw_ucla_name(path: str | Path) -> NwUclaName | None:
    """Action, subject, episode, view from ``aAA_sSS_eEE_vVV``; None when the name differs."""
    match = _NW_UCLA_NAME.search(Path(path).name)
    return NwUclaName(*(int(g) for g in match.groups())) if match else None


def parse_utd_name(path: str | Path) -> UtdName | None:
    """Action, subject, trial from ``aA_sS_tT_skeleton.mat``; None when the name differs."""
    match = _UTD_NAME.search(Path(path).name)
    return UtdName(*(int(g) for g in match.groups())) if match else None


def parse_sbu_path(path: str | Path) -> SbuName | None:
    """Pair, class, repetition from ``.../sXXsYY/CC/NNN/skeleton_pos.txt``; None otherwise."""
    parts = Path(path).parts
    if len(parts) < 4 or not _SBU_PAIR.match(parts[-4]):
        return None
    try:
        return SbuName(parts[-4], int(parts[-3]), int(parts[-2]))
    except ValueError:
        return None


def parse_msr_name(path: str | Path) -> MsrName | None:
    """Action, subject and repetition from ``aAA_sSS_eEE...``; None when the name differs."""
    match = _MSR_NAME.search(Path(path).name)
    return MsrName(*(int(g) for g in match.groups())) if match else None


def parse_ntu_name(path: str | Path) -> NtuName | None:
    """Setup, camera, performer, replication, action from ``SsssCcccPpppRrrrAaaa``."""
    match = _NTU_NAME.search(Path(path).name)
    return NtuName(*(int(g) for g in match.groups())) if match else None


# --------------------------------------------------------------------------- helpers
def _read_text(path: Path, encoding: str = "ascii") -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RecordingError(path, "", f"cannot read: {exc.strerror or exc}") from None
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        what = "non-ASCII byte" if encoding == "ascii" else "not UTF-8"
        raise RecordingError(path, f"byte {exc.start} (line {line})",
                             f"not a text file ({what})") from None


def _check_line_end(path: Path, text: str, lines: list[str]) -> None:
    # Both text formats are machine-written with a line end after every row; a last row
    # without one is the tell-tale of a file cut short mid-row.
    if text and not text.endswith("\n"):
        raise RecordingError(path, f"line {len(lines)}",
                             "file ends in the middle of a line (truncated?)")


def _floats(path: Path, lineno: int, line: str, count: int, what: str) -> list[float]:
    parts = line.split()
    if len(parts) != count:
        raise RecordingError(path, f"line {lineno}",
                             f"expected {count} numbers ({what}), found {len(parts)}")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise RecordingError(path, f"line {lineno}", f"not a number in {line.strip()!r}") from None
    if not _finite32(values):
        raise RecordingError(path, f"line {lineno}", "non-finite number (NaN, inf or beyond "
                             "float32's range)")
    return values


FLOAT32_MAX = float(np.finfo(np.float32).max)


def _finite32(values: Any) -> bool:
    """Whether every value is a number that stays finite as the float32 it is read into (a
    value like 1e39 becomes inf there). NaN compares false."""
    if isinstance(values, list):     # a text line's numbers: no array for a dozen of them
        return all(abs(v) <= FLOAT32_MAX for v in values)
    return bool(np.all(np.abs(np.asarray(values, dtype=np.float64)) <= FLOAT32_MAX))


def _present(coords: np.ndarray) -> np.ndarray:
    """Joints whose coordinates are not all exactly zero (the datasets' way to mark 'missing')."""
    return np.any(coords != 0, axis=-1)


# --------------------------------------------------------------------------- MSR Action3D
def read_msr_action3d(path: str | Path,
                      confidence: Literal["presence", "file"] = "presence") -> SkeletonSequence:
    """MSR Action3D ``aAA_sSS_eEE_skeleton3D.txt``: rows ``x y z c``, 20 rows per frame.

    Returns (T, 1, 20, 3) in metres, layout ``kinect20``, y up (column 2 is vertical), 15 fps,
    label = action - 1 with its name; no person ids (one person). All-zero frames (the sensor
    lost the person) come out as missing.

    ``confidence="presence"`` (default) gives 1 to every joint with coordinates, because the
    file's ``c`` column is not a detection confidence: it is 0 for the hip centre, spine and
    shoulder centre in over 90 % of frames although their coordinates are consistent.
    ``confidence="file"`` returns the column as it is.
    """
    path = Path(path)
    text = _read_text(path)
    lines = text.splitlines()
    _check_line_end(path, text, lines)
    numbered = [(i + 1, line) for i, line in enumerate(lines) if line.strip()]
    if not numbered:
        raise RecordingError(path, "", "empty file: no frames")
    rows = [line.split() for _, line in numbered]
    try:
        if any(len(r) != 4 for r in rows):
            raise ValueError
        values = np.array(rows, dtype=np.float64)
        if not _finite32(values):
            raise ValueError
    except ValueError:
        # Slow path only to find and name the first bad row.
        for lineno, line in numbered:
            _floats(path, lineno, line, 4, "x y z c")
        raise RecordingError(path, "", "unparsable rows") from None
    joints = get_layout("kinect20").num_joints
    if len(values) % joints:
        frame = len(values) // joints
        raise RecordingError(
            path, f"line {numbered[-1][0]} (frame {frame + 1})",
            f"{len(values)} joint rows is not a whole number of {joints}-joint frames: the file "
            f"ends inside frame {frame + 1} (truncated?)")
    values = values.reshape(-1, 1, joints, 4)
    coords = values[..., :3].astype(np.float32)
    conf = (_present(coords).astype(np.float32) if confidence == "presence"
            else np.clip(values[..., 3], 0.0, 1.0).astype(np.float32))
    name = parse_msr_name(path)
    label = name.action - 1 if name and 1 <= name.action <= len(MSR_ACTION3D_CLASSES) else None
    return SkeletonSequence(coords=coords, confidence=conf, layout="kinect20", fps=MSR_FPS,
                            label=label,
                            label_name=None if label is None else MSR_ACTION3D_CLASSES[label],
                            person_ids=None, source=str(path))


# --------------------------------------------------------------------------- NTU RGB+D
def read_ntu_skeleton(path: str | Path) -> SkeletonSequence:
    """NTU RGB+D ``.skeleton`` (Kinect v2): (T, M, 25, 3) metres, layout ``ntu25``, 30 fps.

    One person slot per distinct body id, in order of first appearance; ``person_ids`` holds
    the body ids (large integers) exactly as in the file. Confidence from each joint's tracking
    state: tracked 1.0, inferred 0.5, not tracked 0. Frames without a body are 0 / missing.
    Label = Axxx - 1 (name for NTU-60 classes).
    """
    path = Path(path)
    text = _read_text(path)
    lines = text.splitlines()
    _check_line_end(path, text, lines)
    joints_expected = get_layout("ntu25").num_joints
    pos = 0

    def next_line(where: str) -> tuple[int, str]:
        nonlocal pos
        while pos < len(lines) and not lines[pos].strip():
            pos += 1
        if pos >= len(lines):
            raise RecordingError(path, f"line {len(lines) + 1} ({where})",
                                 "unexpected end of file (truncated?)")
        pos += 1
        return pos, lines[pos - 1]

    def next_int(where: str, low: int, high: int) -> int:
        lineno, line = next_line(where)
        try:
            value = int(line.strip())
        except ValueError:
            raise RecordingError(path, f"line {lineno} ({where})",
                                 f"expected an integer, found {line.strip()[:40]!r}") from None
        if not low <= value <= high:
            raise RecordingError(path, f"line {lineno} ({where})",
                                 f"{value} is outside {low}..{high}")
        return value

    num_frames = next_int("frame count", 1, 10_000_000)
    frames: list[list[tuple[int, np.ndarray, np.ndarray]]] = []
    for f in range(num_frames):
        where_f = f"frame {f + 1} of {num_frames}"
        bodies = []
        for b in range(next_int(f"{where_f}, body count", 0, 64)):
            where_b = f"{where_f}, body {b + 1}"
            lineno, line = next_line(f"{where_b}, body info")
            info = line.split()
            if len(info) != 10:
                raise RecordingError(path, f"line {lineno} ({where_b})",
                                     f"expected 10 body values, found {len(info)}")
            try:
                body_id = int(info[0])
            except ValueError:
                raise RecordingError(path, f"line {lineno} ({where_b})",
                                     f"body id {info[0]!r} is not an integer") from None
            if any(body_id == seen for seen, _, _ in bodies):    # one slot would hold both
                raise RecordingError(path, f"line {lineno} ({where_b})",
                                     f"body id {body_id} is in this frame twice")
            count = next_int(f"{where_b}, joint count", joints_expected, joints_expected)
            xyz = np.empty((count, 3), np.float32)
            state = np.empty(count, np.float32)
            for j in range(count):
                lineno, line = next_line(f"{where_b}, joint {j + 1}")
                values = _floats(path, lineno, line, 12, f"{where_b}, joint {j + 1}")
                tracking = int(values[11])
                if tracking not in NTU_STATE_CONFIDENCE or tracking != values[11]:
                    raise RecordingError(path, f"line {lineno} ({where_b}, joint {j + 1})",
                                         f"tracking state {values[11]} is not 0, 1 or 2")
                xyz[j] = values[:3]
                state[j] = NTU_STATE_CONFIDENCE[tracking]
            bodies.append((body_id, xyz, state))
        frames.append(bodies)
    for rest in range(pos, len(lines)):
        if lines[rest].strip():
            raise RecordingError(path, f"line {rest + 1}",
                                 f"unexpected data after the last of {num_frames} frames")

    ids: list[int] = []
    for bodies in frames:
        for body_id, _, _ in bodies:
            if body_id not in ids:
                ids.append(body_id)
    coords = np.zeros((num_frames, max(len(ids), 1), joints_expected, 3), np.float32)
    conf = np.zeros(coords.shape[:3], np.float32)
    slot = {body_id: i for i, body_id in enumerate(ids)}
    for t, bodies in enumerate(frames):
        for body_id, xyz, state in bodies:
            coords[t, slot[body_id]] = xyz
            conf[t, slot[body_id]] = state
    name = parse_ntu_name(path)
    label = name.action - 1 if name else None
    return SkeletonSequence(coords=coords, confidence=conf, layout="ntu25", fps=NTU_FPS,
                            label=label,
                            label_name=None if label is None else ntu_class_name(label),
                            person_ids=ids or [-1], source=str(path))


# --------------------------------------------------------------------------- Kinetics JSON
_POSE_LAYOUTS = {18: "coco18", 25: "body25"}


def _load_json(path: Path) -> Any:
    # JSON is UTF-8 (a label may be "café"; some writers put a byte-order mark first).
    text = _read_text(path, "utf-8-sig")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecordingError(path, f"line {exc.lineno} column {exc.colno} (byte {exc.pos})",
                             f"malformed JSON: {exc.msg}") from None
    except RecursionError:
        raise RecordingError(path, "", "malformed JSON: nested too deeply") from None


def _pose_block(path: Path, where: str, pose: Any, score: Any, joints: int | None,
                stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert one person's flat keypoint list(s) into (V, 2) coords, (V,) conf."""
    try:
        flat = np.asarray(pose, dtype=np.float64)
        scores = None if score is None else np.asarray(score, dtype=np.float64)
    except (TypeError, ValueError):
        raise RecordingError(path, where, "keypoints are not a list of numbers") from None
    if (flat.ndim != 1 or not len(flat) or len(flat) % stride
            or (joints is not None and len(flat) != joints * stride)):
        raise RecordingError(path, where, f"{flat.shape} keypoint values; expected "
                             f"{stride} per joint" + (f" for {joints} joints" if joints else ""))
    flat = flat.reshape(-1, stride)
    if scores is None:
        scores = flat[:, 2]
    elif scores.shape != (len(flat),):
        raise RecordingError(path, where, f"{scores.shape} scores for {len(flat)} joints")
    if not (_finite32(flat) and _finite32(scores)):
        raise RecordingError(path, where, "non-finite keypoint (NaN, inf or beyond float32's "
                             "range)")
    return flat[:, :2].astype(np.float32), scores.astype(np.float32)


def _stack_frames(frames: list[list[tuple[np.ndarray, np.ndarray]]], joints: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    persons = max((len(p) for p in frames), default=0)
    coords = np.zeros((len(frames), max(persons, 1), joints, 2), np.float32)
    conf = np.zeros(coords.shape[:3], np.float32)
    for t, people in enumerate(frames):
        for m, (xy, score) in enumerate(people):
            coords[t, m], conf[t, m] = xy, score
    return coords, conf


def _kinetics_from_obj(path: Path, obj: Any) -> SkeletonSequence:
    if not isinstance(obj, dict) or not isinstance(obj.get("data"), list):
        raise RecordingError(path, "top level", "not a Kinetics-skeleton clip (no 'data' list)")
    entries: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    joints: int | None = None
    for k, entry in enumerate(obj["data"]):
        where = f"data[{k}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("skeleton"), list):
            raise RecordingError(path, where, "frame without a 'skeleton' list")
        # 1-based in the Kinetics release; 0-based from ST-GCN's json_pack (OpenPose numbering).
        index = entry.get("frame_index", k + 1)
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index <= 1_000_000:
            raise RecordingError(path, where, f"bad frame_index {index!r}")
        if index in entries:
            raise RecordingError(path, where, f"frame_index {index} appears twice")
        people = []
        for p, person in enumerate(entry["skeleton"]):
            where_p = f"{where} (frame {index}), skeleton[{p}]"
            if not isinstance(person, dict) or "pose" not in person or "score" not in person:
                raise RecordingError(path, where_p, "person without 'pose' and 'score'")
            xy, score = _pose_block(path, where_p, person["pose"], person["score"], joints, 2)
            if joints is None:
                joints = len(xy)
                if joints not in _POSE_LAYOUTS:
                    raise RecordingError(path, where_p, f"{joints} joints: neither COCO-18 "
                                         f"nor BODY_25")
            people.append((xy, score))
        entries[index] = people
    if not entries:
        raise RecordingError(path, "data", "no frames")
    joints = joints or 18
    first = 0 if 0 in entries else 1
    frames = [entries.get(t, []) for t in range(first, max(entries) + 1)]
    coords, conf = _stack_frames(frames, joints)
    present = _present(coords)
    if present.any() and not conf.any():
        # The NTU-derived clips carry score 0.0 everywhere: there, a keypoint is present when
        # OpenPose wrote coordinates for it (it writes 0, 0 for a missed keypoint).
        conf = present.astype(np.float32)
    conf = np.clip(conf, 0.0, 1.0)
    label, label_name = obj.get("label_index"), obj.get("label")
    ntu = parse_ntu_name(path)
    if isinstance(label, bool) or not isinstance(label, int):
        label = None
    elif ntu is not None:
        # NTU-derived clips: label_index is the 1-based NTU action (= Axxx in the name).
        label -= 1
    if label is not None and label < 0:     # no class: unlabelled, like a clip without one
        label = None
    return SkeletonSequence(coords=coords, confidence=conf, layout=_POSE_LAYOUTS[joints],
                            fps=KINETICS_FPS, label=label,
                            label_name=label_name if isinstance(label_name, str) else None,
                            person_ids=None, source=str(path))


def read_kinetics_json(path: str | Path) -> SkeletonSequence:
    """Kinetics-skeleton clip (ST-GCN release JSON): (T, M, 18, 2) image coords in [0, 1].

    T = the largest ``frame_index`` (1-based; absent frames are empty), M = the most people in
    a frame, stacked in file order (no ids: ``person_ids`` None; use the tracker to associate).
    Confidence = the OpenPose score, except in files whose scores are all 0 (the NTU-derived
    clips), where a keypoint with coordinates gets 1. Layout ``coco18``, y down, 30 fps.
    Label: ``label_index`` as given (0-based Kinetics-400 index in ST-GCN's ``label_name.txt``);
    for clips named like NTU samples it is the 1-based NTU action and is stored minus 1.
    """
    path = Path(path)
    return _kinetics_from_obj(path, _load_json(path))


# --------------------------------------------------------------------------- OpenPose
def natural_key(name: str) -> tuple:
    """Sort key of a file name by the numbers in it (OpenPose's frame_9 before frame_10)."""
    return tuple(int(part) if part.isdecimal() else part for part in re.split(r"(\d+)", name))


def openpose_frame_files(directory: Path) -> set[str]:
    """The names of the OpenPose frame files in ``directory``: its ``*.json`` files, hidden
    ones (an editor's or a copy tool's) left out."""
    return {entry.name for entry in os.scandir(directory)
            if entry.name.endswith(".json") and not entry.name.startswith(".")}


def _openpose_frame(path: Path, obj: Any, joints: int | None
                    ) -> list[tuple[np.ndarray, np.ndarray]]:
    if not isinstance(obj, dict) or not isinstance(obj.get("people"), list):
        raise RecordingError(path, "top level", "not an OpenPose frame (no 'people' list)")
    people = []
    for p, person in enumerate(obj["people"]):
        keypoints = person.get("pose_keypoints_2d") if isinstance(person, dict) else None
        if keypoints is None:
            raise RecordingError(path, f"people[{p}]", "no 'pose_keypoints_2d'")
        xy, score = _pose_block(path, f"people[{p}]", keypoints, None, joints, 3)
        joints = joints or len(xy)         # every person of a frame has the first one's count
        people.append((xy, score))
    return people


def read_openpose_dir(path: str | Path, layout: str | None = None,
                      fps: float = 30.0) -> SkeletonSequence:
    """A directory of OpenPose ``--write_json`` frames (one ``*.json`` per frame, sorted by the
    frame number in the name): (T, M, V, 2) pixels, y down.

    The layout comes from the keypoint count (25: ``body25``, 18: ``coco18``) unless given.
    People are stacked in the order OpenPose wrote them, which is not stable from frame to
    frame; ``person_ids`` is None (associate them with :class:`~.tracker.Tracker`).
    """
    path = Path(path)
    if not path.is_dir():
        raise RecordingError(path, "", "not a directory of OpenPose JSON frames")
    files = [path / name for name in sorted(openpose_frame_files(path), key=natural_key)]
    if not files:
        raise RecordingError(path, "", "no *.json frames in the directory")
    if layout and get_layout(layout).name not in TWO_D_LAYOUTS:
        raise RecordingError(path, "", f"layout {layout!r} is 3D; OpenPose writes image "
                             f"keypoints ({', '.join(sorted(TWO_D_LAYOUTS))})")
    joints = get_layout(layout).num_joints if layout else None
    frames = []
    for file in files:
        people = _openpose_frame(file, _load_json(file), joints)
        if people and joints is None:
            joints = len(people[0][0])
        frames.append(people)
    joints = joints or 25
    if layout is None:
        if joints not in _POSE_LAYOUTS:
            raise RecordingError(path, "", f"{joints} keypoints per person: neither BODY_25 nor "
                                 f"COCO-18; pass layout=")
        layout = _POSE_LAYOUTS[joints]
    coords, conf = _stack_frames(frames, joints)
    return SkeletonSequence(coords=coords, confidence=np.clip(conf, 0.0, 1.0), layout=layout,
                            fps=fps, person_ids=None, source=str(path))


# --------------------------------------------------------------------------- ST-GCN arrays
_STGCN_LAYOUTS = {18: "coco18", 25: "ntu25", 20: "kinect20", 17: "coco17", 32: "azure32",
                  15: "openni15"}
# Big enough to read a large release in few steps, small enough for any machine.
_SCAN_BYTES = 64 << 20


class _LabelUnpickler(pickle.Unpickler):
    """Unpickles plain data only. An ST-GCN label file is names and integers (numpy's where it
    was written from arrays); a pickle that imports anything else could run code, so it is
    refused before it does."""

    ALLOWED = {("builtins", name) for name in ("list", "tuple", "dict", "set", "frozenset",
                                               "str", "bytes", "int", "float", "bool")} | {
        (module, name) for module in ("numpy", "numpy.core.multiarray",
                                      "numpy._core.multiarray", "numpy.core.numeric",
                                      "numpy._core.numeric")
        for name in ("dtype", "ndarray", "_reconstruct", "scalar", "_frombuffer")} | {
        ("_codecs", "encode")}    # how protocols 0-2 carry bytes (numpy's buffers)

    def find_class(self, module: str, name: str) -> Any:
        # Python 2's names (__builtin__.set), as pickle itself maps them for protocols 0-2.
        known = _compat_pickle.NAME_MAPPING.get(
            (module, name), (_compat_pickle.IMPORT_MAPPING.get(module, module), name))
        if known in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"it would import {module}.{name}; a label file holds "
                                     f"names and integers only (refused: unpickling can run "
                                     f"code)")


def _non_finite_samples(data: np.ndarray) -> list[int]:
    """The samples of (N, ...) ``data`` holding NaN or inf as float32, read in chunks
    (memory-mapped)."""
    per_sample = max(int(np.prod(data.shape[1:], dtype=np.int64)) * data.dtype.itemsize, 1)
    step = max(_SCAN_BYTES // per_sample, 1)
    bad: list[int] = []
    for start in range(0, data.shape[0], step):
        # As training reads them: a float64 value beyond float32's range is inf there.
        with np.errstate(over="ignore"):
            chunk = np.asarray(data[start:start + step], dtype=np.float32)
        finite = np.isfinite(chunk.reshape(len(chunk), -1)).all(axis=1)
        bad.extend(start + int(i) for i in np.flatnonzero(~finite))
    return bad


def _open_npy(path: Path) -> np.ndarray:
    """Memory-map a .npy after checking its header against the file size (names the byte)."""
    try:
        with path.open("rb") as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
            offset = fh.tell()
    except OSError as exc:
        raise RecordingError(path, "", f"cannot read: {exc.strerror or exc}") from None
    except (ValueError, SyntaxError) as exc:
        raise RecordingError(path, "header (byte 0)", f"not a .npy array: {exc}") from None
    if dtype.hasobject:
        raise RecordingError(path, "header", "object arrays are not skeleton data")
    expected = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    size = path.stat().st_size
    if size < expected:
        raise RecordingError(path, f"byte {size}", f"file ends early: the header promises "
                             f"{shape} {dtype} ({expected} bytes), truncated?")
    if len(shape) != 5:
        raise RecordingError(path, "header", f"shape {shape} is not (N, C, T, V, M)")
    return np.load(path, mmap_mode="r", allow_pickle=False)


class StgcnArrays(Sequence[SkeletonSequence]):
    """ST-GCN's preprocessed release: ``(N, C, T, V, M)`` .npy (memory-mapped) + .pkl labels.

    ``len()`` is N; item ``i`` is built lazily as a :class:`SkeletonSequence`: (T', M, V, D)
    with trailing all-zero frames (the release's padding to T) removed. C must be 3: for 2D
    layouts (V = 18: coco18) the channels are x, y, score; for 3D (V = 25: ntu25) x, y, z with
    confidence 1 where a joint has coordinates.
    """

    def __init__(self, npy_path: str | Path, pkl_path: str | Path, layout: str | None = None,
                 fps: float = 30.0, label_names: Sequence[str] | None = None) -> None:
        self.npy_path, self.pkl_path = Path(npy_path), Path(pkl_path)
        self.data = _open_npy(self.npy_path)
        n, c, _, v, _ = self.data.shape
        if n == 0:
            raise RecordingError(self.npy_path, "header", "no samples (N = 0)")
        try:
            # The ST-GCN release stores (sample_names, labels) as a pickle: read as plain data.
            with self.pkl_path.open("rb") as fh:
                names, labels = _LabelUnpickler(fh).load()
            names, labels = [str(x) for x in names], list(labels)
            inexact = next((k for k, x in enumerate(labels) if not float(x).is_integer()), None)
            labels = [int(x) for x in labels] if inexact is None else labels
        except OSError as exc:
            raise RecordingError(self.pkl_path, "", f"cannot read: {exc.strerror or exc}"
                                 ) from None
        except Exception as exc:  # any unpickling failure means a bad file
            raise RecordingError(self.pkl_path, "", f"not a (sample_names, labels) pickle: "
                                 f"{type(exc).__name__}: {exc}") from None
        if inexact is not None:
            raise RecordingError(self.pkl_path, f"sample {inexact}", f"label "
                                 f"{labels[inexact]!r} is not an integer (labels are 0-based "
                                 f"class indices)")
        if len(names) != n or len(labels) != n:
            raise RecordingError(self.pkl_path, "", f"{len(names)} names and {len(labels)} "
                                 f"labels for {n} samples in {self.npy_path}")
        self.layout = layout or _STGCN_LAYOUTS.get(v)
        if self.layout is None or get_layout(self.layout).num_joints != v:
            fits = sorted(name for name, known in LAYOUTS.items() if known.num_joints == v)
            named = (f"layout {self.layout!r} has {get_layout(self.layout).num_joints}"
                     if self.layout else "no layout named")
            raise RecordingError(self.npy_path, "header", f"{v} joints, but {named} (the "
                                 f"config's `layout`); layouts of {v} joints: "
                                 f"{', '.join(fits) or 'none'}")
        if c != 3:
            raise RecordingError(self.npy_path, "header", f"{c} channels, expected 3")
        bad = _non_finite_samples(self.data)
        if bad:
            raise RecordingError(self.npy_path, f"sample {bad[0]}", f"non-finite values (NaN "
                                 f"or inf) in {len(bad)} of {n} samples: "
                                 f"{bad[:10]}{' ...' if len(bad) > 10 else ''}")
        self.two_d = self.layout in TWO_D_LAYOUTS
        self.fps = fps
        self.sample_names = names
        self.labels = labels
        if label_names is None and self.layout == "ntu25":
            label_names = NTU60_CLASSES
        self.label_names = None if label_names is None else list(label_names)

    def __len__(self) -> int:
        return int(self.data.shape[0])

    def __getitem__(self, i: int) -> SkeletonSequence:  # type: ignore[override]
        if not -len(self) <= i < len(self):
            raise IndexError(f"sample {i} of {len(self)}")
        i %= len(self)
        sample = np.asarray(self.data[i], dtype=np.float32).transpose(1, 3, 2, 0)  # T M V C
        if self.two_d:
            coords, conf = sample[..., :2], np.clip(sample[..., 2], 0.0, 1.0)
        else:
            coords = sample
            conf = _present(coords).astype(np.float32)
        used = np.flatnonzero(np.any(sample != 0, axis=(1, 2, 3)))
        length = int(used[-1]) + 1 if len(used) else 1
        label = self.labels[i]
        name = (self.label_names[label] if self.label_names is not None
                and 0 <= label < len(self.label_names) else None)
        return SkeletonSequence(coords=coords[:length].copy(), confidence=conf[:length].copy(),
                                layout=self.layout, fps=self.fps, label=label, label_name=name,
                                person_ids=None, source=f"{self.npy_path}[{i}]")


def read_stgcn_arrays(npy_path: str | Path, pkl_path: str | Path, layout: str | None = None,
                      fps: float = 30.0, label_names: Sequence[str] | None = None
                      ) -> StgcnArrays:
    """Open an ST-GCN release pair lazily; see :class:`StgcnArrays`."""
    return StgcnArrays(npy_path, pkl_path, layout=layout, fps=fps, label_names=label_names)


# --------------------------------------------------------------------------- Kinect v1 orders
def _to_kinect20(coords: np.ndarray, order: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(T, 1, 20, 3) in a file's joint order -> kinect20 order, confidence = presence."""
    index = [order.index(name) for name in get_layout("kinect20").joints]
    coords = coords[:, :, index].astype(np.float32)
    return coords, _present(coords).astype(np.float32)


# --------------------------------------------------------------------------- NW-UCLA
def read_nw_ucla(path: str | Path) -> SkeletonSequence:
    """NW-UCLA Multiview Action3D JSON ``{"file_name", "skeletons": T x 20 x 3, "label"}``.

    Kinect v1 SDK joint order, reordered into ``kinect20``: (T, 1, 20, 3) metres, y up,
    15 fps (see :data:`NW_UCLA_FPS`). Label: the class of the file name's action (a01..a12
    without a07, a10 -> 0..9), else the file's 1-based ``label``.
    """
    path = Path(path)
    return _nw_ucla_from_obj(path, _load_json(path))


def _nw_ucla_from_obj(path: Path, obj: Any) -> SkeletonSequence:
    if not isinstance(obj, dict) or "skeletons" not in obj:
        raise RecordingError(path, "top level", "not an NW-UCLA clip (no 'skeletons')")
    try:
        values = np.asarray(obj["skeletons"], dtype=np.float64)
    except (TypeError, ValueError):
        raise RecordingError(path, "skeletons", "not a T x 20 x 3 list of numbers") from None
    if values.ndim != 3 or values.shape[1:] != (20, 3) or len(values) == 0:
        raise RecordingError(path, "skeletons", f"shape {values.shape}, expected (T, 20, 3)")
    if not _finite32(values):
        raise RecordingError(path, "skeletons", "non-finite coordinate (NaN, inf or beyond "
                             "float32's range)")
    coords, conf = _to_kinect20(values[:, None], KINECT_SDK20_ORDER)
    name = parse_nw_ucla_name(path) or parse_nw_ucla_name(str(obj.get("file_name", "")))
    label = None
    if name is not None and name.action in NW_UCLA_ACTIONS:
        label = NW_UCLA_ACTIONS.index(name.action)
    elif isinstance(obj.get("label"), int) and 1 <= obj["label"] <= len(NW_UCLA_CLASSES):
        label = obj["label"] - 1
    return SkeletonSequence(coords=coords, confidence=conf, layout="kinect20", fps=NW_UCLA_FPS,
                            label=label,
                            label_name=None if label is None else NW_UCLA_CLASSES[label],
                            person_ids=None, source=str(path))


# --------------------------------------------------------------------------- UTD-MHAD
def read_utd_mhad(path: str | Path) -> SkeletonSequence:
    """UTD-MHAD ``aA_sS_tT_skeleton.mat`` (MATLAB v5, ``d_skel`` of shape (20, 3, T)).

    The file's own joint order (head first), reordered into ``kinect20``: (T, 1, 20, 3)
    metres, y up, 30 fps; label = action - 1.
    """
    path = Path(path)
    from scipy.io import loadmat  # heavy; only this reader needs it

    try:
        mat = loadmat(str(path))
    except OSError as exc:
        raise RecordingError(path, "", f"cannot read: {exc.strerror or exc}") from None
    except Exception as exc:  # scipy raises several types for damaged files
        raise RecordingError(path, "", f"not a MATLAB file ({type(exc).__name__}: "
                             f"{exc})") from None
    if "d_skel" not in mat:
        raise RecordingError(path, "", "no variable 'd_skel'")
    values = np.asarray(mat["d_skel"])
    if values.dtype.kind not in "fiu":    # a cell array, text, complex numbers, ...
        raise RecordingError(path, "d_skel", f"not an array of real numbers ({values.dtype})")
    if values.ndim == 2 and values.shape == (20, 3):
        values = values[..., None]
    if values.ndim != 3 or values.shape[:2] != (20, 3) or values.shape[2] == 0:
        raise RecordingError(path, "d_skel", f"shape {values.shape}, expected (20, 3, T)")
    if not _finite32(values):
        raise RecordingError(path, "d_skel", "non-finite coordinate (NaN, inf or beyond "
                             "float32's range)")
    coords, conf = _to_kinect20(values.transpose(2, 0, 1)[:, None].astype(np.float64),
                                UTD_MHAD_ORDER)
    name = parse_utd_name(path)
    label = name.action - 1 if name and 1 <= name.action <= len(UTD_MHAD_CLASSES) else None
    return SkeletonSequence(coords=coords, confidence=conf, layout="kinect20", fps=UTD_FPS,
                            label=label,
                            label_name=None if label is None else UTD_MHAD_CLASSES[label],
                            person_ids=None, source=str(path))


# --------------------------------------------------------------------------- SBU
def sbu_to_metres(normalised: np.ndarray) -> np.ndarray:
    """The SBU README's formula (X = 1280 - 2560 x, Y = 960 - 1920 y, Z = z * 10000 / 7.8125,
    millimetres) in metres: x to the sensor's left, y up, z depth, as Kinect camera space."""
    out = np.empty(normalised.shape, np.float64)
    out[..., 0] = 1280.0 - 2560.0 * normalised[..., 0]
    out[..., 1] = 960.0 - 1920.0 * normalised[..., 1]
    out[..., 2] = normalised[..., 2] * 10000.0 / 7.8125
    return out / 1000.0


def read_sbu_interaction(path: str | Path) -> SkeletonSequence:
    """SBU Kinect Interaction ``skeleton_pos.txt``: per line a frame index and two people's
    15 joints x (x, y, z), normalised.

    Returns (T, 2, 15, 3) metres (:func:`sbu_to_metres`), layout ``openni15``, 15 fps,
    person ids [1, 2] (the file's two people keep their slots). Label: class folder - 1.
    """
    path = Path(path)
    text = _read_text(path)
    lines = text.splitlines()
    numbered = [(i + 1, line) for i, line in enumerate(lines) if line.strip()]
    if not numbered:
        raise RecordingError(path, "", "empty file: no frames")
    _check_line_end(path, text, lines)
    joints = get_layout("openni15").num_joints
    columns = 1 + 2 * joints * 3
    rows = []
    for lineno, line in numbered:
        parts = line.replace(",", " ").split()
        if len(parts) != columns:
            raise RecordingError(path, f"line {lineno}", f"expected {columns} comma-separated "
                                 f"numbers (frame, 2 x 15 joints x 3), found {len(parts)}")
        try:
            values = [float(v) for v in parts]
        except ValueError:
            raise RecordingError(path, f"line {lineno}",
                                 f"not a number in {line.strip()[:40]!r}") from None
        if not _finite32(values):
            raise RecordingError(path, f"line {lineno}", "non-finite number (NaN, inf or "
                                 "beyond float32's range)")
        # Frames are numbered one by one in every file of the dataset: a gap, a repeat or a
        # swap is a damaged file, whose frames would be read out of step.
        if not values[0].is_integer() or (rows and values[0] != rows[-1][0] + 1):
            after = f" after frame {rows[-1][0]:g}" if rows else ""
            raise RecordingError(path, f"line {lineno}", f"frame number {values[0]:g}{after}: "
                                 f"frames missing, repeated or out of order")
        rows.append(values)
    normalised = np.asarray(rows)[:, 1:].reshape(-1, 2, joints, 3)
    conf = _present(normalised).astype(np.float32)    # (0, 0, 0) is the missing mark
    coords = (sbu_to_metres(normalised) * conf[..., None]).astype(np.float32)
    name = parse_sbu_path(path)
    label = name.action - 1 if name and 1 <= name.action <= len(SBU_INTERACTION_CLASSES) \
        else None
    return SkeletonSequence(coords=coords, confidence=conf, layout="openni15", fps=SBU_FPS,
                            label=label,
                            label_name=None if label is None else SBU_INTERACTION_CLASSES[label],
                            person_ids=[1, 2], source=str(path))


def _is_sbu_text(path: Path, text_start: str) -> bool:
    """SBU's comma-separated rows (MSR Action3D's are space-separated): by the name the dataset
    gives every clip, else by a comma in the first row (a damaged row still goes to the SBU
    reader, which names what is wrong with it)."""
    first = text_start.lstrip().split("\n", 1)[0]
    return path.name == "skeleton_pos.txt" or "," in first


# --------------------------------------------------------------------------- dispatch
def read_recording(path: str | Path) -> SkeletonSequence:
    """Read any single recording by its type: a directory of OpenPose frames, ``.skeleton``
    (NTU), ``.txt`` (MSR Action3D, or SBU's comma-separated ``skeleton_pos.txt``), ``.mat``
    (UTD-MHAD), ``.json`` (NW-UCLA clip, Kinetics-skeleton clip, or one OpenPose frame).
    """
    path = Path(path)
    if not path.exists():    # e.g. a shell pattern that matched nothing, passed on as it is
        raise RecordingError(path, "", "no such file or folder")
    if path.is_dir():
        return read_openpose_dir(path)
    suffix = path.suffix.lower()
    if suffix == ".skeleton":
        return read_ntu_skeleton(path)
    if suffix == ".txt":
        try:
            with path.open("rb") as fh:
                start = fh.read(4096).decode("ascii", errors="replace")
        except OSError as exc:
            raise RecordingError(path, "", f"cannot read: {exc.strerror or exc}") from None
        return (read_sbu_interaction(path) if _is_sbu_text(path, start)
                else read_msr_action3d(path))
    if suffix == ".mat":
        return read_utd_mhad(path)
    if suffix == ".json":
        obj = _load_json(path)
        if isinstance(obj, dict) and "skeletons" in obj:
            return _nw_ucla_from_obj(path, obj)
        if isinstance(obj, dict) and "people" in obj:
            people = _openpose_frame(path, obj, None)
            joints = len(people[0][0]) if people else 25
            if joints not in _POSE_LAYOUTS:
                raise RecordingError(path, "people[0]", f"{joints} keypoints per person")
            coords, conf = _stack_frames([people], joints)
            return SkeletonSequence(coords=coords, confidence=np.clip(conf, 0.0, 1.0),
                                    layout=_POSE_LAYOUTS[joints], fps=30.0, source=str(path))
        return _kinetics_from_obj(path, obj)
    if suffix == ".npy":
        raise RecordingError(path, "", "an ST-GCN array holds many samples: open it with "
                             "read_stgcn_arrays(npy_path, pkl_path)")
    raise RecordingError(path, "", f"unknown recording type {suffix or '(no suffix)'!r}; "
                         f"expected a directory, .skeleton, .txt, .mat or .json")
