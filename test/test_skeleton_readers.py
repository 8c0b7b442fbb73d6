"""Readers on every real file in the shared data, and clean failures on broken copies."""
from __future__ import annotations

import json
import os
import pickle
import random
from pathlib import Path

import numpy as np
import pytest

from prgcn_ros.skeleton.labels import MSR_ACTION3D_CLASSES, NTU60_CLASSES
from prgcn_ros.skeleton.readers import (
    RecordingError,
    parse_msr_name,
    read_kinetics_json,
    read_msr_action3d,
    read_ntu_skeleton,
    read_openpose_dir,
    read_recording,
    read_stgcn_arrays,
)

NTU_FILES = {  # name -> (frames, bodies, 1-based action) from the files' headers and names
    "S001C001P001R001A011": (82, 1, 11),
    "S001C003P008R002A058": (70, 2, 58),
    "S002C001P003R001A003": (100, 1, 3),
    "S003C001P015R001A034": (71, 1, 34),
    "S004C002P003R001A017": (124, 1, 17),
}
KINETICS_CLIP = "--33Lscn6sk.json"


@pytest.fixture(scope="module")
def msr_files(data_dir) -> list[Path]:
    files = sorted((data_dir / "msr_action3d").glob("*_skeleton3D.txt"))
    if not files:
        pytest.skip(f"no MSR Action3D files under {data_dir / 'msr_action3d'}")
    return files


# --------------------------------------------------------------------------- real files
def test_every_msr_file(msr_files):
    assert len(msr_files) == 567
    lengths, lost, empty = [], 0, []
    for path in msr_files:
        seq = read_msr_action3d(path)
        name = parse_msr_name(path)
        assert seq.coords.shape[1:] == (1, 20, 3) and seq.layout == "kinect20"
        assert seq.coords.dtype == np.float32 and seq.confidence.dtype == np.float32
        assert seq.label == name.action - 1 and seq.label_name == MSR_ACTION3D_CLASSES[seq.label]
        assert seq.fps == 15.0 and seq.source == str(path) and seq.person_ids is None
        lengths.append(seq.num_frames)
        lost += int((seq.confidence == 0).all(axis=(1, 2)).sum())
        # Column 2 is vertical (y up): the head is above the ankles whenever both are there.
        ok = (seq.confidence[:, 0, 19] > 0) & (seq.confidence[:, 0, 15] > 0)
        if ok.any():
            assert (seq.coords[ok, 0, 19, 1] > seq.coords[ok, 0, 15, 1]).mean() > 0.95
        else:
            empty.append(path.name)
    assert empty == ["a13_s09_e02_skeleton3D.txt"]  # every frame of it is zeros
    assert min(lengths) == 13 and max(lengths) == 936 and np.median(lengths) == 39
    assert lost > 0  # some files hold all-zero frames: read as missing (confidence 0)


def test_msr_file_confidence_column(msr_files):
    seq = read_msr_action3d(msr_files[0], confidence="file")
    assert 0 <= seq.confidence.min() and seq.confidence.max() <= 1
    assert seq.confidence[0, 0, 5] == pytest.approx(0.971154)   # row 6 of the file


def test_every_ntu_sample(data_dir):
    for name, (frames, bodies, action) in NTU_FILES.items():
        seq = read_ntu_skeleton(data_dir / "ntu_samples" / f"{name}.skeleton")
        assert seq.coords.shape == (frames, bodies, 25, 3) and seq.layout == "ntu25"
        assert seq.label == action - 1 and seq.label_name == NTU60_CLASSES[action - 1]
        assert seq.fps == 30.0 and len(seq.person_ids) == bodies
        assert all(i > 2**56 for i in seq.person_ids)  # Kinect body ids, kept as they are
        assert (seq.confidence > 0).mean() > 0.9
    seq = read_ntu_skeleton(data_dir / "ntu_samples" / "S001C003P008R002A058.skeleton")
    assert seq.person_ids == [72057594037944738, 72057594037944734]
    assert seq.label_name == "handshaking"
    assert seq.coords[0, 0, 0].tolist() == pytest.approx([0.7201789, 0.1647426, 3.561895])
    assert set(np.unique(seq.confidence)) <= {0.0, 0.5, 1.0}


def test_kinetics_json(data_dir):
    folder = data_dir / "kinetics_skeleton"
    seq = read_kinetics_json(folder / KINETICS_CLIP)
    assert seq.coords.shape == (189, 3, 18, 2) and seq.layout == "coco18"
    names = (folder / "label_name.txt").read_text().splitlines()
    assert seq.label == 129 and seq.label_name == "flipping pancake" == names[129]
    assert seq.person_ids is None and seq.fps == 30.0
    assert 0 <= seq.coords.min() and seq.coords.max() <= 1.1
    assert 0 < seq.confidence.max() <= 1 and seq.confidence[0, 0, 1] == pytest.approx(0.764)
    for name, action, label_name in (("S004C002P003R001A055_rgb.json", 55, "hugging other person"),
                                     ("S004C003P003R001A007_rgb.json", 7, "throw")):
        ntu = read_kinetics_json(folder / name)
        assert ntu.coords.shape[2:] == (18, 2) and ntu.label == action - 1
        assert ntu.label_name == label_name == NTU60_CLASSES[action - 1]
        # Every score in these files is 0.0: presence stands in for confidence.
        assert set(np.unique(ntu.confidence)) == {0.0, 1.0}
        present = np.any(ntu.coords != 0, axis=-1)
        assert np.array_equal(present, ntu.confidence > 0)


def _openpose_frames(seq, folder: Path, width: float, height: float, body25: bool) -> None:
    """Write a real clip in OpenPose --write_json form (one file per frame, pixels)."""
    folder.mkdir()
    for t in range(seq.num_frames):
        people = []
        for m in range(seq.num_persons):
            if not (seq.confidence[t, m] > 0).any():
                continue
            xy = seq.coords[t, m] * [width, height]
            conf = seq.confidence[t, m]
            if body25:  # COCO-18 joints by name into BODY_25 order; mid hip, feet missing
                order = [0, 1, 2, 3, 4, 5, 6, 7, None, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17,
                         None, None, None, None, None, None]
                xy = np.array([xy[i] if i is not None else (0, 0) for i in order])
                conf = np.array([conf[i] if i is not None else 0 for i in order])
            flat = np.concatenate([xy, conf[:, None]], 1).reshape(-1)
            people.append({"person_id": [-1], "pose_keypoints_2d": flat.round(3).tolist(),
                           "face_keypoints_2d": []})
        (folder / f"clip_{t:012d}_keypoints.json").write_text(
            json.dumps({"version": 1.3, "people": people}))


def test_openpose_dir_coco18_and_body25(data_dir, tmp_path):
    clip = read_kinetics_json(data_dir / "kinetics_skeleton" / KINETICS_CLIP)
    _openpose_frames(clip, tmp_path / "coco", 340.0, 256.0, body25=False)
    seq = read_openpose_dir(tmp_path / "coco")
    assert seq.layout == "coco18" and seq.num_frames == 189 and seq.person_ids is None
    assert seq.coords.shape[2:] == (18, 2)
    t, m = 0, 0
    assert np.allclose(seq.coords[t, m], clip.coords[t, m] * [340, 256], atol=1e-3)
    assert np.allclose(seq.confidence[t, m], clip.confidence[t, m], atol=1e-6)
    _openpose_frames(clip, tmp_path / "b25", 340.0, 256.0, body25=True)
    b25 = read_openpose_dir(tmp_path / "b25")
    assert b25.layout == "body25" and b25.coords.shape[2:] == (25, 2)
    assert np.allclose(b25.coords[0, 0, 12], clip.coords[0, 0, 11] * [340, 256], atol=1e-3)
    assert read_recording(tmp_path / "b25").layout == "body25"
    one = read_recording(tmp_path / "b25" / "clip_000000000000_keypoints.json")
    assert one.num_frames == 1 and one.layout == "body25"
    with pytest.raises(RecordingError, match="coco18"):
        read_openpose_dir(tmp_path / "b25", layout="coco18")


def test_openpose_frames_sorted_by_number(tmp_path):
    folder = tmp_path / "op"
    folder.mkdir()
    for t in (0, 2, 10, 1):
        flat = np.zeros((25, 3))
        flat[:, 0], flat[:, 2] = t, 1.0
        (folder / f"v_{t}_keypoints.json").write_text(
            json.dumps({"people": [{"pose_keypoints_2d": flat.reshape(-1).tolist()}]}))
    (folder / ".v_3_keypoints.json").write_text("{")   # a copy tool's hidden file: not a frame
    seq = read_openpose_dir(folder)
    assert seq.coords[:, 0, 0, 0].tolist() == [0, 1, 2, 10]


def test_stgcn_arrays_memory_mapped(data_dir, tmp_path):
    seqs = [read_ntu_skeleton(data_dir / "ntu_samples" / f"{n}.skeleton") for n in NTU_FILES]
    data = np.zeros((len(seqs), 3, 300, 25, 2), np.float32)
    for i, s in enumerate(seqs):
        data[i, :, : s.num_frames, :, : s.num_persons] = s.coords.transpose(3, 0, 2, 1)
    np.save(tmp_path / "x.npy", data)
    with (tmp_path / "x.pkl").open("wb") as fh:
        pickle.dump((list(NTU_FILES), [s.label for s in seqs]), fh)
    arrays = read_stgcn_arrays(tmp_path / "x.npy", tmp_path / "x.pkl")
    assert isinstance(arrays.data, np.memmap) and len(arrays) == 5
    for i, s in enumerate(seqs):
        item = arrays[i]
        assert item.layout == "ntu25" and item.label == s.label
        assert item.label_name == s.label_name
        assert item.num_frames == s.num_frames
        assert np.array_equal(item.coords[:, : s.num_persons], s.coords)
    assert arrays[-1].label == seqs[-1].label

    clip = read_kinetics_json(data_dir / "kinetics_skeleton" / KINETICS_CLIP)
    two_d = np.zeros((1, 3, 300, 18, 3), np.float32)
    two_d[0, :2, :189] = clip.coords.transpose(3, 0, 2, 1)
    two_d[0, 2, :189] = clip.confidence.transpose(0, 2, 1)
    np.save(tmp_path / "k.npy", two_d)
    with (tmp_path / "k.pkl").open("wb") as fh:
        pickle.dump((["--33Lscn6sk"], [129]), fh)
    item = read_stgcn_arrays(tmp_path / "k.npy", tmp_path / "k.pkl")[0]
    assert item.layout == "coco18" and item.coords.shape[-1] == 2 and item.label == 129
    assert item.num_frames <= 189
    assert np.array_equal(item.confidence, clip.confidence[: item.num_frames])


def test_read_recording_dispatch(data_dir, msr_files, tmp_path):
    assert read_recording(msr_files[0]).layout == "kinect20"
    assert read_recording(data_dir / "ntu_samples" / "S001C001P001R001A011.skeleton"
                          ).layout == "ntu25"
    assert read_recording(data_dir / "kinetics_skeleton" / KINETICS_CLIP).layout == "coco18"
    # A shell pattern that matched nothing: named as missing, not as an unknown kind.
    with pytest.raises(RecordingError, match=r"\*\.nomatch: no such file or folder"):
        read_recording(tmp_path / "*.nomatch")
    (tmp_path / "a.npy").write_bytes(b"")
    with pytest.raises(RecordingError, match="read_stgcn_arrays"):
        read_recording(tmp_path / "a.npy")
    (tmp_path / "a.csv").write_text("1,2\n")
    with pytest.raises(RecordingError, match="unknown recording type"):
        read_recording(tmp_path / "a.csv")


# --------------------------------------------------------------------------- broken copies
def _broken_copies(original: Path, tmp_path: Path, cuts=(0.1, 0.5, 0.9)) -> list[Path]:
    data = original.read_bytes()
    rng = random.Random(4)
    copies = []
    for k, cut in enumerate((*cuts, None)):
        path = tmp_path / f"cut{k}_{original.name}"
        path.write_bytes(data[: int(len(data) * cut)] if cut else data[:-3])
        copies.append(path)
    garbage = tmp_path / f"garbage_{original.name}"
    garbage.write_bytes(bytes(rng.randrange(256) for _ in range(2000)))
    text_garbage = tmp_path / f"text_{original.name}"
    text_garbage.write_bytes(data[: len(data) // 3] + b"1.0 oops nan\n" + data[len(data) // 3:])
    return [*copies, garbage, text_garbage]


def _fails_cleanly(reader, path: Path, where: str):
    with pytest.raises(RecordingError) as info:
        reader(path)
    message = str(info.value)
    assert str(path) in message
    assert any(word in message for word in where.split("|")), message
    assert isinstance(info.value, ValueError)


def test_truncated_and_garbage_msr(msr_files, tmp_path):
    for path in _broken_copies(msr_files[0], tmp_path):
        _fails_cleanly(read_msr_action3d, path, "line|byte")
    empty = tmp_path / "a01_s01_e01_skeleton3D.txt"
    empty.write_text("")
    _fails_cleanly(read_msr_action3d, empty, "empty")
    # A whole-row cut (file still ends with a line end) leaves a partial frame.
    rows = msr_files[0].read_text().splitlines(keepends=True)
    partial = tmp_path / "partial_skeleton3D.txt"
    partial.write_text("".join(rows[:-7]))
    _fails_cleanly(read_msr_action3d, partial, "frame")


def test_truncated_and_garbage_ntu(data_dir, tmp_path):
    original = data_dir / "ntu_samples" / "S001C003P008R002A058.skeleton"
    for path in _broken_copies(original, tmp_path):
        _fails_cleanly(read_ntu_skeleton, path, "line|byte")
    lines = original.read_text().splitlines(keepends=True)
    whole_lines = tmp_path / "lines.skeleton"
    whole_lines.write_text("".join(lines[: len(lines) // 2]))
    _fails_cleanly(read_ntu_skeleton, whole_lines, "frame")
    bad_count = tmp_path / "count.skeleton"
    bad_count.write_text("".join([lines[0], lines[1], lines[2], "24\r\n", *lines[4:]]))
    _fails_cleanly(read_ntu_skeleton, bad_count, "joint count")


def test_truncated_and_garbage_kinetics(data_dir, tmp_path):
    for name in (KINETICS_CLIP, "S004C002P003R001A055_rgb.json"):
        for path in _broken_copies(data_dir / "kinetics_skeleton" / name, tmp_path):
            _fails_cleanly(read_kinetics_json, path, "line|byte")
    clip = json.loads((data_dir / "kinetics_skeleton" / KINETICS_CLIP).read_text())
    clip["data"][3]["skeleton"][0]["pose"] = clip["data"][3]["skeleton"][0]["pose"][:-1]
    short = tmp_path / "short.json"
    short.write_text(json.dumps(clip))
    _fails_cleanly(read_kinetics_json, short, "data[3]")


def test_truncated_and_garbage_openpose(data_dir, tmp_path):
    clip = read_kinetics_json(data_dir / "kinetics_skeleton" / KINETICS_CLIP)
    _openpose_frames(clip.select_frames(slice(0, 20)), tmp_path / "op", 100.0, 100.0, False)
    frame = sorted((tmp_path / "op").glob("*.json"))[7]
    frame.write_bytes(frame.read_bytes()[:50])
    _fails_cleanly(read_openpose_dir, tmp_path / "op", frame.name)
    (tmp_path / "empty").mkdir()
    _fails_cleanly(read_openpose_dir, tmp_path / "empty", "no *.json")


def test_truncated_and_garbage_stgcn(data_dir, tmp_path):
    data = np.zeros((3, 3, 50, 25, 2), np.float32)
    np.save(tmp_path / "x.npy", data)
    with (tmp_path / "x.pkl").open("wb") as fh:
        pickle.dump((["a", "b", "c"], [0, 1, 2]), fh)
    raw = (tmp_path / "x.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(RecordingError, match=r"cut\.npy: byte \d+: file ends early"):
        read_stgcn_arrays(tmp_path / "cut.npy", tmp_path / "x.pkl")
    (tmp_path / "junk.npy").write_bytes(bytes(range(256)) * 4)
    with pytest.raises(RecordingError, match=r"junk\.npy: header"):
        read_stgcn_arrays(tmp_path / "junk.npy", tmp_path / "x.pkl")
    pkl = (tmp_path / "x.pkl").read_bytes()
    (tmp_path / "cut.pkl").write_bytes(pkl[: len(pkl) // 2])
    with pytest.raises(RecordingError, match=r"cut\.pkl"):
        read_stgcn_arrays(tmp_path / "x.npy", tmp_path / "cut.pkl")
    with (tmp_path / "two.pkl").open("wb") as fh:
        pickle.dump((["a", "b"], [0, 1]), fh)
    with pytest.raises(RecordingError, match="2 names and 2 labels for 3 samples"):
        read_stgcn_arrays(tmp_path / "x.npy", tmp_path / "two.pkl")


class _Payload:
    """Unpickled, it would run a command: what a label file from a stranger could hold."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


class _Call:
    """Unpickled, it calls ``function(*args)``."""

    def __init__(self, function, *args) -> None:
        self.function, self.args = function, args

    def __reduce__(self):
        return (self.function, self.args)


def _calls(ran: Path) -> dict[str, _Call]:
    """Callables a hostile label file could name besides os.system, each of which would leave
    ``ran`` behind where it runs (getattr only fetches a method: named all the same)."""
    touch = f"open({str(ran)!r}, 'w').close()"
    calls = {"builtins.eval": _Call(eval, touch), "builtins.exec": _Call(exec, touch),
             "builtins.getattr": _Call(getattr, "text", "upper")}
    try:       # numpy's private helper that runs a string: there in numpy 2.4
        from numpy.testing._private.utils import runstring
        calls["numpy.testing._private.utils.runstring"] = _Call(runstring, touch, {})
    except ImportError:
        pass
    return calls


def _stgcn_pair(tmp_path: Path, data: np.ndarray, names: object, labels: object,
                stem: str = "x") -> tuple[Path, Path]:
    np.save(tmp_path / f"{stem}.npy", data)
    with (tmp_path / f"{stem}.pkl").open("wb") as fh:
        pickle.dump((names, labels), fh)
    return tmp_path / f"{stem}.npy", tmp_path / f"{stem}.pkl"


def test_stgcn_labels_are_read_as_plain_data_only(tmp_path):
    """A label pickle that would import code is refused before it runs; numpy's integers and
    arrays (labels written from arrays) are read; a label that is not an integer is named."""
    data = np.zeros((2, 3, 8, 20, 1), np.float32)
    ran = tmp_path / "ran"
    npy, pkl = _stgcn_pair(tmp_path, data, [_Payload(ran), "b"], [0, 1])
    with pytest.raises(RecordingError, match=r"x\.pkl: .*would import (posix|os)\.system"):
        read_stgcn_arrays(npy, pkl, layout="kinect20")
    assert not ran.exists()
    for name, call in _calls(ran).items():      # not only os.system: any callable is refused
        npy, pkl = _stgcn_pair(tmp_path, data, ["a", "b"], [call, 1])
        with pytest.raises(RecordingError, match=rf"would import {name}"):
            read_stgcn_arrays(npy, pkl, layout="kinect20")
        assert not ran.exists(), name
    for labels in (np.array([0, 2]), [np.int64(0), np.int32(2)], [0.0, 2.0]):
        npy, pkl = _stgcn_pair(tmp_path, data, np.array(["a", "b"]), labels)
        assert read_stgcn_arrays(npy, pkl, layout="kinect20").labels == [0, 2]
        for protocol in range(3):   # as Python 2 era tools wrote them (bytes via _codecs)
            with pkl.open("wb") as fh:
                pickle.dump((np.array(["a", "b"]), labels), fh, protocol=protocol)
            assert read_stgcn_arrays(npy, pkl, layout="kinect20").labels == [0, 2]
    # Protocol 2 names Python 2's modules (__builtin__.frozenset), as Python 2 wrote them.
    with pkl.open("wb") as fh:
        pickle.dump((frozenset({"a", "b"}), [0, 2]), fh, protocol=2)
    assert b"__builtin__" in pkl.read_bytes()
    assert read_stgcn_arrays(npy, pkl, layout="kinect20").labels == [0, 2]
    npy, pkl = _stgcn_pair(tmp_path, data, ["a", "b"], [0, 1.7])
    with pytest.raises(RecordingError, match=r"sample 1: label 1\.7 is not an integer"):
        read_stgcn_arrays(npy, pkl, layout="kinect20")


def test_stgcn_arrays_refused_when_opened(tmp_path):
    """Faults a user's own arrays can have, each named when the arrays are opened (before
    any training), not when a batch first reaches the clip."""
    npy, pkl = _stgcn_pair(tmp_path, np.zeros((0, 3, 8, 20, 1), np.float32), [], [])
    with pytest.raises(RecordingError, match=r"x\.npy: header: no samples"):
        read_stgcn_arrays(npy, pkl, layout="kinect20")
    data = np.zeros((5, 3, 8, 20, 1), np.float32)
    data[1, 0, 3, 4] = np.nan
    data = data.astype(np.float64)
    data[3, 2, 0, 0] = 1e39                        # finite as float64, inf as training reads it
    npy, pkl = _stgcn_pair(tmp_path, data, list("abcde"), [0] * 5)
    with pytest.raises(RecordingError, match=r"sample 1: non-finite values .* in 2 of 5 "
                                             r"samples: \[1, 3\]"):
        read_stgcn_arrays(npy, pkl, layout="kinect20")
    npy, pkl = _stgcn_pair(tmp_path, np.zeros((2, 3, 8, 25, 1), np.float32), ["a", "b"], [0, 1])
    with pytest.raises(RecordingError, match="25 joints, but layout 'kinect20' has 20 .*"
                                             "layouts of 25 joints: body25, ntu25"):
        read_stgcn_arrays(npy, pkl, layout="kinect20")


def test_kinetics_json_numbered_from_zero_and_labels_out_of_range(data_dir, tmp_path):
    """ST-GCN's json_pack numbers frames from 0 (OpenPose's file numbers); a label_index below
    0 is no class."""
    clip = json.loads((data_dir / "kinetics_skeleton" / KINETICS_CLIP).read_text())
    first = read_kinetics_json(data_dir / "kinetics_skeleton" / KINETICS_CLIP)
    for entry in clip["data"]:
        entry["frame_index"] -= 1
    clip["label_index"] = -5
    zero = tmp_path / "zero_based.json"
    zero.write_text(json.dumps(clip))
    seq = read_kinetics_json(zero)
    assert seq.num_frames == first.num_frames and seq.label is None
    np.testing.assert_array_equal(seq.coords, first.coords)


def test_json_in_utf8_and_too_deep(data_dir, tmp_path):
    clip = json.loads((data_dir / "kinetics_skeleton" / KINETICS_CLIP).read_text())
    clip["label"] = "café"
    accented = tmp_path / "accented.json"
    accented.write_bytes(b"\xef\xbb\xbf" + json.dumps(clip, ensure_ascii=False).encode())
    assert read_kinetics_json(accented).label_name == "café"
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    _fails_cleanly(read_kinetics_json, deep, "nested too deeply")


def test_openpose_frames_without_body_keypoints(tmp_path):
    """OpenPose with --body 0 writes empty pose lists: one line naming the frame."""
    folder = tmp_path / "op"
    folder.mkdir()
    for i in range(2):
        (folder / f"v_{i:012d}_keypoints.json").write_text(json.dumps(
            {"version": 1.3, "people": [{"pose_keypoints_2d": [],
                                         "face_keypoints_2d": [1, 2, 0.5] * 70}]}))
    _fails_cleanly(read_openpose_dir, folder, "v_000000000000_keypoints.json")


def test_openpose_frame_whose_people_differ_in_keypoint_count(tmp_path):
    """A frame holding a BODY_25 person and a COCO-18 one: one line naming the frame, not an
    error from deep inside numpy (the player's --follow skips such a file and goes on)."""
    folder = tmp_path / "op"
    folder.mkdir()
    (folder / "v_000000000000_keypoints.json").write_text(json.dumps({"people": [
        {"pose_keypoints_2d": [100.0, 200.0, 0.9] * 25},
        {"pose_keypoints_2d": [100.0, 200.0, 0.9] * 18}]}))
    _fails_cleanly(read_openpose_dir, folder, "people[1]")


def test_sbu_file_cut_short_or_damaged_in_its_first_row(data_dir, tmp_path):
    source = data_dir / "sbu_interaction" / "s01s02" / "07" / "001" / "skeleton_pos.txt"
    if not source.is_file():
        pytest.skip("no SBU data")
    text = source.read_text()
    cut = tmp_path / "cut" / "skeleton_pos.txt"
    cut.parent.mkdir()
    cut.write_text(text[:-3])                          # mid-number, no line end
    _fails_cleanly(read_recording, cut, "line")
    damaged = tmp_path / "damaged" / "skeleton_pos.txt"
    damaged.parent.mkdir()
    damaged.write_text(text.replace(",", ";", 1))      # a stray character in the first row
    with pytest.raises(RecordingError, match="line 1: expected 91 comma-separated"):
        read_recording(damaged)                        # the SBU reader's message, not MSR's


def test_openpose_frames_read_as_a_3d_layout_are_refused(data_dir, tmp_path):
    clip = read_kinetics_json(data_dir / "kinetics_skeleton" / KINETICS_CLIP)
    _openpose_frames(clip.select_frames(slice(0, 3)), tmp_path / "op", 100.0, 100.0, False)
    with pytest.raises(RecordingError, match="'ntu25' is 3D"):
        read_openpose_dir(tmp_path / "op", layout="ntu25")


def test_a_non_finite_number_is_refused_where_it_stands(msr_files, data_dir, tmp_path):
    """NaN or inf in a recording would reach the model: each reader names where it stands."""
    rows = msr_files[0].read_text().splitlines(keepends=True)
    msr = tmp_path / "a01_s01_e01_skeleton3D.txt"
    msr.write_text("".join([*rows[:5], "nan " + rows[5].split(" ", 1)[1], *rows[6:]]))
    _fails_cleanly(read_msr_action3d, msr, "line 6")
    lines = (data_dir / "ntu_samples" / "S001C001P001R001A011.skeleton").read_text().splitlines(
        keepends=True)
    numbers = lines[4].split(" ")
    ntu = tmp_path / "nan.skeleton"
    ntu.write_text("".join([*lines[:4], " ".join(["inf", *numbers[1:]]), *lines[5:]]))
    _fails_cleanly(read_ntu_skeleton, ntu, "line 5")
    clip = json.loads((data_dir / "kinetics_skeleton" / KINETICS_CLIP).read_text())
    clip["data"][2]["skeleton"][0]["pose"][4] = float("nan")
    kinetics = tmp_path / "nan.json"
    kinetics.write_text(json.dumps(clip))         # written as NaN, which Python's JSON reads
    _fails_cleanly(read_kinetics_json, kinetics, "data[2]")


def test_ntu_data_after_the_last_frame_is_refused(data_dir, tmp_path):
    """The header counts the frames: more after them is a damaged or concatenated file."""
    text = (data_dir / "ntu_samples" / "S001C001P001R001A011.skeleton").read_text()
    longer = tmp_path / "longer.skeleton"
    longer.write_text(text + "1\r\n")
    _fails_cleanly(read_ntu_skeleton, longer, "unexpected data")


def test_an_ntu_body_id_twice_in_one_frame_is_refused(data_dir, tmp_path):
    """Each id has one slot: the second body overwrote the first without a word."""
    lines = (data_dir / "ntu_samples" / "S001C003P008R002A058.skeleton").read_text() \
        .splitlines(keepends=True)
    body = lines[2:29]                   # frame 1's first body: its info, 25, 25 joints
    twice = tmp_path / "twice.skeleton"
    twice.write_text("".join(["1\r\n", "2\r\n", *body, *body]))
    _fails_cleanly(read_ntu_skeleton, twice, "is in this frame twice")


def test_kinetics_frames_with_nobody_keep_their_place_and_repeats_are_refused(data_dir,
                                                                              tmp_path):
    """A frame missing from ``data`` is a frame with nobody in view, not a frame less (the
    action would play faster); one frame_index twice is a damaged file."""
    source = data_dir / "kinetics_skeleton" / KINETICS_CLIP
    clip = json.loads(source.read_text())
    whole = read_kinetics_json(source)
    gap = [entry["frame_index"] for entry in clip["data"][50:60]]
    del clip["data"][50:60]
    holed = tmp_path / "holed.json"
    holed.write_text(json.dumps(clip))
    seq = read_kinetics_json(holed)
    assert seq.num_frames == whole.num_frames == 189
    first = min(entry["frame_index"] for entry in clip["data"])
    missing = [t - first for t in gap]
    assert (seq.confidence[missing] == 0).all()
    kept = [t for t in range(189) if t not in missing]
    np.testing.assert_array_equal(seq.coords[kept], whole.coords[kept])
    clip["data"].append(dict(clip["data"][0]))
    twice = tmp_path / "twice.json"
    twice.write_text(json.dumps(clip))
    _fails_cleanly(read_kinetics_json, twice, "appears twice")


def test_one_openpose_frame_file_is_read_at_openposes_frame_rate(tmp_path):
    """prgcn-player --follow spaces its messages by this rate: OpenPose's 30 fps."""
    frame = tmp_path / "v_000000000000_keypoints.json"
    frame.write_text(json.dumps({"people": [{"pose_keypoints_2d": [100.0, 200.0, 0.9] * 25}]}))
    seq = read_recording(frame)
    assert seq.fps == 30.0 and seq.layout == "body25" and seq.num_frames == 1


@pytest.mark.parametrize(("array", "message"), [
    (np.array([[1, "a"]], dtype=object), "object arrays are not skeleton data"),
    (np.zeros((2, 3, 8, 20), np.float32), r"shape \(2, 3, 8, 20\) is not \(N, C, T, V, M\)"),
    (np.zeros((2, 2, 8, 20, 1), np.float32), "2 channels, expected 3"),
])
def test_an_stgcn_array_that_is_not_skeleton_data_is_named(tmp_path, array, message):
    """An ST-GCN release's .npy that holds something else: one line, not numpy's error (or
    an unpickled object: numpy would need allow_pickle for it)."""
    npy = tmp_path / "x.npy"
    np.save(npy, array, allow_pickle=True)
    with (tmp_path / "x.pkl").open("wb") as fh:
        pickle.dump((["a", "b"], [0, 1]), fh)
    with pytest.raises(RecordingError, match=message):
        read_stgcn_arrays(npy, tmp_path / "x.pkl", layout="kinect20")
