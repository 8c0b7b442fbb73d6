"""Readers of NW-UCLA, UTD-MHAD and SBU Kinect Interaction on every real file.

The joint orders are checked against the coordinates, not against the names the readers use:
bones of the two sides have the same length, lengths are human in metres, and the joints called
``left_*`` lie on the body's left, with the body's front found without the names (where the
feet point, where the partner stands) or by which hand does the right-hand actions.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from prgcn_ros.skeleton.labels import (
    NW_UCLA_CLASSES,
    SBU_INTERACTION_CLASSES,
    UTD_MHAD_CLASSES,
)
from prgcn_ros.skeleton.layouts import get_layout
from prgcn_ros.skeleton.mapping import describe_mapping, map_joints
from prgcn_ros.skeleton.readers import (
    RecordingError,
    parse_nw_ucla_name,
    parse_sbu_path,
    parse_utd_name,
    read_nw_ucla,
    read_recording,
    read_sbu_interaction,
    read_utd_mhad,
    sbu_to_metres,
)

UP = np.array([0.0, 1.0, 0.0])


def _files(data_dir: Path, sub: str, pattern: str) -> list[Path]:
    files = sorted((data_dir / sub).glob(pattern))
    if not files:
        pytest.skip(f"no {sub} files under {data_dir / sub}")
    return files


@pytest.fixture(scope="module")
def nw_ucla(data_dir):
    return [read_nw_ucla(p) for p in _files(data_dir, "nw_ucla", "a*_s*_e*_v*.json")]


@pytest.fixture(scope="module")
def utd(data_dir):
    return [read_utd_mhad(p) for p in _files(data_dir, "utd_mhad", "a*_s*_t*_skeleton.mat")]


@pytest.fixture(scope="module")
def sbu(data_dir):
    return [read_sbu_interaction(p)
            for p in _files(data_dir, "sbu_interaction", "s*s*/*/*/skeleton_pos.txt")]


def _joints(seqs, layout: str, name: str) -> np.ndarray:
    """(frames, 3) of one joint over every person-frame where it is present."""
    index = get_layout(layout).index(name)
    out = [s.coords[:, m, index][s.confidence[:, m, index] > 0]
           for s in seqs for m in range(s.num_persons)]
    return np.concatenate(out)


def _bone_lengths(seqs, layout: str, a: str, b: str) -> np.ndarray:
    lay = get_layout(layout)
    ia, ib = lay.index(a), lay.index(b)
    out = []
    for s in seqs:
        ok = (s.confidence[..., ia] > 0) & (s.confidence[..., ib] > 0)
        out.append(np.linalg.norm(s.coords[..., ia, :] - s.coords[..., ib, :], axis=-1)[ok])
    return np.concatenate(out)


def _check_bones(seqs, layout: str) -> None:
    """Every left bone has the length of its right twin (median over the dataset, within
    12 %), and limbs have human lengths in metres."""
    lay = get_layout(layout)
    names = lay.joints
    checked = 0
    for a, b in lay.bones:
        ja, jb = names[a], names[b]
        if not (ja.startswith("left_") and jb.startswith("left_")):
            continue
        left = np.median(_bone_lengths(seqs, layout, ja, jb))
        right = np.median(_bone_lengths(seqs, layout, ja.replace("left_", "right_"),
                                        jb.replace("left_", "right_")))
        assert abs(left - right) / max(left, right) < 0.12, (ja, jb, left, right)
        assert 0.03 < left < 0.6, (ja, jb, left)
        checked += 1
    assert checked >= 4
    for side in ("left", "right"):
        thigh = np.median(_bone_lengths(seqs, layout, f"{side}_hip", f"{side}_knee"))
        upper_arm = np.median(_bone_lengths(seqs, layout, f"{side}_shoulder", f"{side}_elbow"))
        assert 0.25 < thigh < 0.6 and 0.18 < upper_arm < 0.4, (side, thigh, upper_arm)


def _left_fraction(left: np.ndarray, right: np.ndarray, forward: np.ndarray) -> float:
    """Share of frames where ``left`` lies on the body's left of ``right``, the body facing
    ``forward`` (horizontal) with y up: left = up x forward in a right-handed frame."""
    side = np.cross(UP, forward)
    return float(((left - right) * side).sum(-1).__gt__(0).mean())


def _feet_forward(seq, layout: str) -> np.ndarray:
    """The body's front from where the feet point (foot - ankle), per frame, horizontal."""
    lay = get_layout(layout)
    fwd = sum(seq.coords[:, 0, lay.index(f"{s}_foot")] - seq.coords[:, 0, lay.index(f"{s}_ankle")]
              for s in ("left", "right"))
    fwd[:, 1] = 0
    return fwd


def _check_left_by_feet(seqs) -> None:
    lay = get_layout("kinect20")
    shares = []
    for seq in seqs:
        fwd = _feet_forward(seq, "kinect20")
        hips = _left_fraction(seq.coords[:, 0, lay.index("left_hip")],
                              seq.coords[:, 0, lay.index("right_hip")], fwd)
        shoulders = _left_fraction(seq.coords[:, 0, lay.index("left_shoulder")],
                                   seq.coords[:, 0, lay.index("right_shoulder")], fwd)
        shares.append((hips + shoulders) / 2)
    # Kinect v1 feet are noisy; the names are right when most clips agree.
    assert np.mean(np.array(shares) > 0.5) > 0.8, np.mean(np.array(shares) > 0.5)


def _check_up(seqs, layout: str, head: str, foot: str) -> None:
    lay = get_layout(layout)
    for seq in seqs:
        h, f = seq.coords[..., lay.index(head), 1], seq.coords[..., lay.index(foot), 1]
        ok = (seq.confidence[..., lay.index(head)] > 0) & (seq.confidence[..., lay.index(foot)] > 0)
        assert (h[ok] > f[ok]).mean() > 0.9, seq.source


# --------------------------------------------------------------------------- NW-UCLA
def test_nw_ucla_every_file(nw_ucla, data_dir):
    assert len(nw_ucla) == 1484
    views = Counter()
    for seq in nw_ucla:
        name = parse_nw_ucla_name(seq.source)
        views[name.view] += 1
        assert seq.layout == "kinect20" and seq.coords.shape[1:] == (1, 20, 3)
        assert seq.fps == 15.0 and seq.person_ids is None
        assert seq.label_name == NW_UCLA_CLASSES[seq.label]
    assert views == {1: 516, 2: 504, 3: 464}
    # The file's own 1-based label agrees with the class the reader takes from the name.
    for path in sorted((data_dir / "nw_ucla").glob("a*_s01_e00_v01.json")):
        assert read_nw_ucla(path).label == json.loads(path.read_text())["label"] - 1
    assert min(s.num_frames for s in nw_ucla) == 1


def test_nw_ucla_joint_order_from_coordinates(nw_ucla):
    _check_bones(nw_ucla, "kinect20")
    _check_up(nw_ucla, "kinect20", "head", "left_foot")
    _check_left_by_feet([s for s in nw_ucla if s.num_frames >= 10])
    # The spine chain goes up: hip centre < spine < shoulder centre < head.
    lay = get_layout("kinect20")
    ys = [np.median(_joints(nw_ucla, "kinect20", j)[:, 1])
          for j in ("hip_center", "spine", "shoulder_center", "head")]
    assert ys == sorted(ys), ys
    assert lay.joints[lay.center] == "hip_center"


# --------------------------------------------------------------------------- UTD-MHAD
def test_utd_every_file(utd):
    assert len(utd) == 861
    subjects = Counter()
    for seq in utd:
        name = parse_utd_name(seq.source)
        subjects[name.subject % 2] += 1
        assert seq.layout == "kinect20" and seq.coords.shape[1:] == (1, 20, 3)
        assert seq.fps == 30.0 and 41 <= seq.num_frames <= 125
        assert seq.label == name.action - 1
        assert seq.label_name == UTD_MHAD_CLASSES[seq.label]
    assert subjects == {1: 431, 0: 430}     # the cross-subject split: odd train, even test


def test_utd_joint_order_from_coordinates(utd):
    _check_bones(utd, "kinect20")
    _check_up(utd, "kinect20", "head", "right_foot")
    _check_left_by_feet(utd)
    # Right-hand actions move the joint called right_hand more than left_hand.
    right_handed = {1, 2, 3, 5, 8, 9, 10, 12, 19, 20, 21}
    lay = get_layout("kinect20")
    wins = []
    for seq in utd:
        if seq.label + 1 in right_handed:
            path = {side: np.linalg.norm(np.diff(seq.coords[:, 0, lay.index(f"{side}_hand")],
                                                 axis=0), axis=-1).sum()
                    for side in ("left", "right")}
            wins.append(path["right"] > path["left"])
    assert len(wins) > 300 and np.mean(wins) > 0.95, np.mean(wins)


# --------------------------------------------------------------------------- SBU
SBU_FOLDS = [["s01s02", "s03s04", "s05s02", "s06s04"], ["s02s03", "s02s07", "s03s05", "s05s03"],
             ["s01s03", "s01s07", "s07s01", "s07s03"], ["s02s01", "s02s06", "s03s02", "s03s06"],
             ["s04s02", "s04s03", "s04s06", "s06s02", "s06s03"]]


def test_sbu_every_file(sbu):
    assert len(sbu) == 282
    classes = Counter(seq.label for seq in sbu)
    assert [classes[c] for c in range(8)] == [42, 43, 40, 41, 18, 21, 39, 38]
    pairs = Counter(parse_sbu_path(seq.source).pair for seq in sbu)
    assert [sum(pairs[p] for p in fold) for fold in SBU_FOLDS] == [55, 52, 56, 54, 65]
    for seq in sbu:
        assert seq.layout == "openni15" and seq.coords.shape[1:] == (2, 15, 3)
        assert 10 <= seq.num_frames <= 46 and seq.fps == 15.0 and seq.person_ids == [1, 2]
        assert seq.label_name == SBU_INTERACTION_CLASSES[seq.label]


def test_sbu_units_axes_and_sides(sbu):
    # The README's formula gives metres with y up and the same scale on all three axes: a bone
    # keeps its length while it turns (a wrong depth scale would stretch it with the turn).
    _check_bones(sbu, "openni15")
    _check_up(sbu, "openni15", "head", "left_foot")
    # The formula as the README gives it, and the scale of depth against the other axes: the
    # partners stand side-on to the sensor, so their shoulder lines run mostly along depth
    # (measured: 0.30 m; 0.38 m with depth 1.3 times too long).
    np.testing.assert_allclose(sbu_to_metres(np.array([[0.0, 0.0, 0.78125]])),
                               [[1.28, 0.96, 1.0]])
    width = np.median(_bone_lengths(sbu, "openni15", "left_shoulder", "right_shoulder"))
    assert 0.27 < width < 0.34, width
    for a, b in (("left_knee", "left_foot"), ("right_hip", "right_knee"), ("neck", "torso")):
        length = _bone_lengths(sbu, "openni15", a, b)
        spread = np.subtract(*np.percentile(length, [75, 25])) / np.median(length)
        assert spread < 0.25, (a, b, spread)
    # The two people stand 0.5-3 m apart; each faces the other while shaking hands, hugging
    # or exchanging, so "left" is up x (towards the partner).
    lay = get_layout("openni15")
    shares = []
    for seq in sbu:
        if seq.label_name not in ("hugging", "shaking hands", "exchanging"):
            continue
        torso = seq.coords[:, :, lay.index("torso")]
        gap = np.linalg.norm(torso[:, 1] - torso[:, 0], axis=-1)
        assert 0.2 < np.median(gap) < 3.0, seq.source
        for m in range(2):
            fwd = torso[:, 1 - m] - torso[:, m]
            fwd[:, 1] = 0
            for part in ("shoulder", "hip"):
                shares.append(_left_fraction(seq.coords[:, m, lay.index(f"left_{part}")],
                                             seq.coords[:, m, lay.index(f"right_{part}")], fwd))
    assert len(shares) > 200 and np.mean(np.array(shares) > 0.5) > 0.9


def test_live_layouts_map_into_openni15(sbu, utd):
    # A Kinect v2 / Azure / Kinect v1 skeleton reaches the SBU model's layout with every joint.
    for source in ("ntu25", "azure32", "kinect20"):
        assert None not in describe_mapping(source, "openni15"), source
    # Kinect v1 skeletons (UTD-MHAD) mapped into openni15 have SBU's proportions: the neck
    # between the shoulders, the torso half way down the trunk, and knee -> foot as long,
    # relative to the thigh, as SBU's (an ankle taken for OpenNI's foot would be 17 % short).
    mapped = []
    for seq in utd[::10]:
        coords, conf = map_joints(seq.coords, seq.confidence, "kinect20", "openni15")
        mapped.append(type(seq)(coords=coords, confidence=conf, layout="openni15", fps=seq.fps))

    def trunk_position(seqs) -> float:
        neck = _joints(seqs, "openni15", "neck")
        torso = _joints(seqs, "openni15", "torso")
        hips = (_joints(seqs, "openni15", "left_hip") + _joints(seqs, "openni15", "right_hip")) / 2
        return float(np.median(np.linalg.norm(torso - neck, axis=-1)
                               / np.linalg.norm(hips - neck, axis=-1)))

    def neck_off_shoulders(seqs) -> float:
        neck = _joints(seqs, "openni15", "neck")
        shoulders = (_joints(seqs, "openni15", "left_shoulder")
                     + _joints(seqs, "openni15", "right_shoulder")) / 2
        return float(np.median(np.linalg.norm(neck - shoulders, axis=-1)))

    def shank(seqs) -> float:
        return float(np.median(_bone_lengths(seqs, "openni15", "left_knee", "left_foot"))
                     / np.median(_bone_lengths(seqs, "openni15", "left_hip", "left_knee")))

    # Measured: torso at 0.63 (Kinect v1 spine) vs 0.50 of neck -> hips; shank 0.93 vs 0.96.
    assert abs(trunk_position(mapped) - trunk_position(sbu)) < 0.15
    assert neck_off_shoulders(mapped) < 0.02 and neck_off_shoulders(sbu) < 0.02
    assert abs(shank(mapped) - shank(sbu)) / shank(sbu) < 0.08, (shank(mapped), shank(sbu))


# --------------------------------------------------------------------------- dispatch, errors
def test_read_recording_dispatches(data_dir):
    nw = next(iter(sorted((data_dir / "nw_ucla").glob("*.json"))), None)
    utd = next(iter(sorted((data_dir / "utd_mhad").glob("*.mat"))), None)
    sbu = next(iter(sorted((data_dir / "sbu_interaction").glob("*/*/*/skeleton_pos.txt"))), None)
    if not (nw and utd and sbu):
        pytest.skip("NW-UCLA, UTD-MHAD or SBU data missing")
    assert read_recording(nw).layout == "kinect20" and read_recording(nw).fps == 15.0
    assert read_recording(utd).fps == 30.0
    assert read_recording(sbu).layout == "openni15"


def test_broken_files_raise_recording_error(tmp_path, data_dir):
    sbu = next(iter(sorted((data_dir / "sbu_interaction").glob("*/*/*/skeleton_pos.txt"))), None)
    if sbu is None:
        pytest.skip("SBU data missing")
    lines = sbu.read_text().splitlines()
    cut = tmp_path / "s01s02" / "01" / "001" / "skeleton_pos.txt"
    cut.parent.mkdir(parents=True)
    cut.write_text("\n".join(lines[:2] + [lines[2][:len(lines[2]) // 2]]) + "\n")
    with pytest.raises(RecordingError, match=r"line 3.*91"):
        read_sbu_interaction(cut)
    bad_json = tmp_path / "a01_s01_e00_v01.json"
    bad_json.write_text(json.dumps({"skeletons": [[[0.0, 1.0]] * 20]}))
    with pytest.raises(RecordingError, match="expected \\(T, 20, 3\\)"):
        read_nw_ucla(bad_json)
    # NaN or inf would reach the model (JSON as Python writes it: 1e400 reads as inf).
    inf_json = tmp_path / "a01_s01_e01_v01.json"
    inf_json.write_text(json.dumps({"skeletons": [[[0.5, 1.0, 2.0]] * 20] * 2}).replace(
        "2.0", "1e400", 1))
    with pytest.raises(RecordingError, match="skeletons.*non-finite"):
        read_nw_ucla(inf_json)
    from scipy.io import savemat
    skeleton = np.ones((20, 3, 4))
    skeleton[3, 1, 2] = np.nan
    nan_mat = tmp_path / "a1_s1_t2_skeleton.mat"
    savemat(nan_mat, {"d_skel": skeleton})
    with pytest.raises(RecordingError, match="d_skel.*non-finite"):
        read_utd_mhad(nan_mat)
    bad_mat = tmp_path / "a1_s1_t1_skeleton.mat"
    bad_mat.write_bytes(b"MATLAB 5.0 MAT-file" + bytes(40))
    with pytest.raises(RecordingError, match=re.escape(str(bad_mat))):
        read_utd_mhad(bad_mat)


def _overflowing(data_dir: Path, tmp_path: Path, kind: str) -> Path:
    """A real file of ``kind`` with one coordinate set to 1e39: finite as a float64, inf as
    the float32 every reader returns."""
    def written(rel: str, text: str) -> Path:
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    if kind == "msr":
        lines = (data_dir / "msr_action3d" / "a01_s01_e01_skeleton3D.txt").read_text() \
            .splitlines(keepends=True)
        return written("a01_s01_e01_skeleton3D.txt",
                       "".join(lines[:5]) + "1e39 0.3 2.5 1\n" + "".join(lines[6:]))
    if kind == "ntu":
        lines = (data_dir / "ntu_samples" / "S001C001P001R001A011.skeleton").read_text() \
            .splitlines(keepends=True)
        parts = lines[4].split()
        parts[0] = "1e39"
        return written("S001C001P001R001A011.skeleton",
                       "".join(lines[:4]) + " ".join(parts) + "\n" + "".join(lines[5:]))
    if kind.startswith("kinetics"):
        clip = json.loads((data_dir / "kinetics_skeleton" / "--33Lscn6sk.json").read_text())
        if kind == "kinetics":
            clip["data"][3]["skeleton"][0]["pose"][4] = 1e39
        else:                                           # a confidence, not a coordinate
            clip["data"][3]["skeleton"][0]["score"][2] = 1e39
        return written("kinetics.json", json.dumps(clip))
    if kind == "nw_ucla":
        clip = json.loads((data_dir / "nw_ucla" / "a12_s06_e04_v03.json").read_text())
        clip["skeletons"][2][3][1] = 1e39
        return written("a12_s06_e04_v03.json", json.dumps(clip))
    if kind == "utd_mhad":
        from scipy.io import loadmat, savemat
        skeleton = loadmat(str(data_dir / "utd_mhad" / "a16_s6_t2_skeleton.mat"))["d_skel"]
        skeleton[3, 1, 5] = 1e39
        path = tmp_path / "a16_s6_t2_skeleton.mat"
        savemat(str(path), {"d_skel": skeleton})
        return path
    lines = (data_dir / "sbu_interaction" / "s01s03" / "03" / "001" / "skeleton_pos.txt") \
        .read_text().splitlines(keepends=True)
    row = lines[2].split(",")
    row[5] = "1e39"
    return written("s01s03/03/001/skeleton_pos.txt",
                   "".join(lines[:2]) + ",".join(row) + "".join(lines[3:]))


@pytest.mark.parametrize("kind", ["msr", "ntu", "kinetics", "kinetics_score", "nw_ucla",
                                  "utd_mhad", "sbu"])
def test_a_value_beyond_float32s_range_is_a_damaged_file_not_an_inf_joint(
        data_dir, tmp_path, kind):
    """Checked as float64, 1e39 passed and came out inf, a confident joint at infinity."""
    path = _overflowing(data_dir, tmp_path, kind)
    with pytest.raises(RecordingError, match=r"non-finite .*float32's range"):
        read_recording(path)


@pytest.mark.parametrize("change, words", [
    (lambda rows: rows[:2] + rows[3:], "line 3: frame number 183 after frame 181"),   # lost
    (lambda rows: rows[:2] + rows[3:4] + rows[2:3] + rows[4:],                     # swapped
     "line 3: frame number 183 after frame 181"),
    (lambda rows: rows[:3] + rows[2:], "line 4: frame number 182 after frame 182"),  # repeated
])
def test_sbu_frames_out_of_step_are_a_damaged_file(data_dir, tmp_path, change, words):
    """Column 0 numbers the frames one by one in all 282 files (this one from 180); a row lost
    or moved was read without a word, the motion then out of step with the clip's."""
    rows = (data_dir / "sbu_interaction" / "s01s03" / "03" / "001" / "skeleton_pos.txt") \
        .read_text().splitlines(keepends=True)
    path = tmp_path / "s01s03" / "03" / "001" / "skeleton_pos.txt"
    path.parent.mkdir(parents=True)
    path.write_text("".join(change(rows)))
    with pytest.raises(RecordingError, match=re.escape(words)):
        read_sbu_interaction(path)


def test_a_utd_mhad_skeleton_that_is_no_array_of_numbers_is_a_damaged_file(tmp_path):
    """A cell array of the right shape raised numpy's TypeError (a traceback in the player)."""
    from scipy.io import savemat

    cells = np.empty((20, 3, 4), dtype=object)
    cells[...] = 1.0
    path = tmp_path / "a1_s1_t1_skeleton.mat"
    savemat(str(path), {"d_skel": cells})
    with pytest.raises(RecordingError, match="d_skel.*not an array of real numbers"):
        read_utd_mhad(path)
