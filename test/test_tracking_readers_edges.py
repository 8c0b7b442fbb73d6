"""Edges of the tracker, the pairing and the readers that the main tests leave open: motion timed
by capture stamps, velocity from the joints of the last two sightings, min_confidence, the
release distance, ties, and readers on real files edited where the format allows a doubt."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy.io import loadmat, savemat
from test_skeleton_tracker import ONE, _at

from prgcn_ros.pairing import RELEASE_FACTOR, Pairing
from prgcn_ros.skeleton.playback import FrameFolder
from prgcn_ros.skeleton.readers import (
    RecordingError,
    natural_key,
    read_kinetics_json,
    read_msr_action3d,
    read_ntu_skeleton,
    read_recording,
    read_sbu_interaction,
    read_utd_mhad,
    sbu_to_metres,
)
from prgcn_ros.skeleton.tracker import Tracker

KINETICS_CLIP = "--33Lscn6sk.json"
NTU_ONE = "S001C001P001R001A011.skeleton"


# --------------------------------------------------------------------------- tracker
def test_a_walker_whose_frames_arrive_in_a_burst_is_predicted_by_capture_time():
    """B walks towards A standing (0.3 m per 0.2 s of capture); the third frame is handled
    late and the fourth right after it (0.3 ms later), when B hides A. By capture time B is
    where they were heading and keeps their id; timed by the handling clock B barely moved,
    is nearer A's place, and took A's id."""
    tracker = Tracker(gate=0.5, timeout_s=10.0)
    both = np.ones((2, 1))
    clocks, captures = [0.0, 0.2, 0.5], [0.0, 0.2, 0.4]
    for x, clock, capture in zip([-1.05, -0.75, -0.45], clocks, captures):
        assert tracker.update(np.concatenate([_at(0.0), _at(x)]), both, clock,
                              capture_s=capture) == [0, 1]
    assert tracker.update(_at(-0.15), ONE, 0.5003, capture_s=0.6) == [1]      # A hidden
    assert tracker.update(np.concatenate([_at(0.0), _at(0.15)]), both, 0.7,
                          capture_s=0.8) == [0, 1]


def _body(x: float) -> np.ndarray:
    """Three joints one above the other at x: (1, 3, 2)."""
    return np.array([[[x, 0.0], [x, 1.0], [x, -1.0]]])


def test_velocity_is_the_mean_step_of_the_joints_seen_in_both_last_sightings():
    """A walker at 1.5 m/s whose middle joint is hidden for two frames: when it comes back,
    its stale place does not count as motion (nor is the step summed over joints). Hidden for
    3 s, the walker is found half a second further on (1.5 m from the last place: only the
    prediction finds them)."""
    tracker = Tracker(gate=0.5, timeout_s=10.0)
    visible = np.ones((1, 3))
    middle_hidden = np.array([[1.0, 0.0, 1.0]])
    for t, (x, conf) in enumerate([(0.0, visible), (0.3, middle_hidden),
                                   (0.6, middle_hidden), (0.9, visible)]):
        assert tracker.update(_body(x), conf, 0.2 * t) == [0], t
    # Predicted: 0.9 + 1.5 m/s x 0.5 s = 1.65; seen at 1.5 (last place 0.9: 0.6 off).
    assert tracker.update(_body(1.5), visible, 3.6) == [0]


def test_a_person_whose_visible_joints_switch_entirely_keeps_their_id():
    """Upper body only, then legs only (no joint in both sightings: no velocity), then the
    whole body: one person, one id throughout."""
    tracker = Tracker(gate=0.5, timeout_s=1.0)
    body = np.array([[[0.0, 0.0], [0.0, 1.0], [0.2, -1.0], [-0.2, -1.0]]])
    confs = [np.ones((1, 4)), np.array([[1.0, 1.0, 0.0, 0.0]]), np.array([[0.0, 0.0, 1.0, 1.0]]),
             np.ones((1, 4)), np.ones((1, 4))]
    ids = [tracker.update(body + [0.02 * t, 0.0], conf, 0.1 * t)
           for t, conf in enumerate(confs)]
    assert ids == [[0]] * len(confs)


def test_min_confidence_is_inclusive_and_joints_under_it_do_not_count():
    """A joint exactly at min_confidence associates; a wild joint under it (OpenPose's far
    guess at 0.05) does not pull the person off their track."""
    tracker = Tracker(gate=0.5, timeout_s=10.0, min_confidence=0.1)
    two = np.array([[[0.0, 0.0], [0.0, 1.0]]])
    assert tracker.update(two, np.array([[0.0, 1.0]]), 0.0) == [0]     # only joint 1 seen
    # Joint 1 (the only one the track knows) now at exactly 0.1.
    assert tracker.update(two + [0.1, 0.0], np.array([[1.0, 0.1]]), 0.1) == [0]

    tracker = Tracker(gate=0.5, timeout_s=10.0, min_confidence=0.1)
    assert tracker.update(two, np.ones((1, 2)), 0.0) == [0]
    wild = np.array([[[0.1, 0.0], [5.0, 5.0]]])
    assert tracker.update(wild, np.array([[1.0, 0.05]]), 0.1) == [0]


def test_mismatched_ids_and_shapes_are_refused():
    tracker = Tracker(gate=0.5, timeout_s=1.0)
    with pytest.raises(ValueError, match="2 ids for 1 people"):
        tracker.update(_at(0.0), ONE, 0.0, ids=[1, 2])
    with pytest.raises(ValueError, match=r"\(P, V, D\)"):
        tracker.update(np.zeros((1, 25)), np.ones((1, 25)), 0.0)       # no coordinate axis
    assert len(tracker) == 0


# --------------------------------------------------------------------------- pairing
def test_a_pair_exactly_at_the_release_distance_stays():
    """It parts only when *more than* RELEASE_FACTOR x the gate apart."""
    pairing = Pairing(gate=2.0)
    pairing.update({1: np.array([0.0, 0.0, 2.0]), 2: np.array([1.0, 0.0, 2.0])})
    pairing.update({1: np.array([0.0, 0.0, 2.0]),
                    2: np.array([2.0 * RELEASE_FACTOR, 0.0, 2.0])})
    assert pairing.pairs() == [(1, 2)]


def test_equally_close_pairs_form_in_key_order():
    """2 is exactly as near 1 as 3: the lower keys pair, whatever the order they came in."""
    pairing = Pairing(gate=2.0)
    pairing.update({3: np.array([2.0, 0.0, 2.0]), 2: np.array([1.0, 0.0, 2.0]),
                    1: np.array([0.0, 0.0, 2.0])})
    assert pairing.pairs() == [(1, 2)] and pairing.partner(3) is None


# --------------------------------------------------------------------------- MSR Action3D
def test_msr_joint_with_one_coordinate_exactly_zero_is_present(data_dir):
    """Real rows where one axis is exactly 0 (x of the right shoulder, y of a hip): the joint
    has coordinates, so it is present ("missing" is all three zero)."""
    for name, frame, joint in (("a10_s01_e01_skeleton3D.txt", 3, 1),
                               ("a17_s01_e03_skeleton3D.txt", 10, 5)):
        path = data_dir / "msr_action3d" / name
        rows = path.read_text().split("\n")
        x, y, z, _ = (float(v) for v in rows[frame * 20 + joint].split())
        seq = read_msr_action3d(path)
        assert 0.0 in (x, y) and seq.confidence[frame, 0, joint] == 1.0
        np.testing.assert_allclose(seq.coords[frame, 0, joint], [x, y, z], rtol=1e-6)


def test_msr_rows_with_a_wrong_number_of_columns_are_named(data_dir, tmp_path):
    source = sorted((data_dir / "msr_action3d").glob("*_skeleton3D.txt"))[0]
    rows = source.read_text().splitlines()
    extra = tmp_path / source.name
    extra.write_text("".join(f"{row} 0.5\n" for row in rows))       # every row 5 numbers
    with pytest.raises(RecordingError, match="line 1: expected 4 numbers"):
        read_msr_action3d(extra)


def test_a_non_ascii_byte_is_placed_on_its_line(data_dir, tmp_path):
    source = sorted((data_dir / "msr_action3d").glob("*_skeleton3D.txt"))[0]
    rows = source.read_bytes().split(b"\n")
    rows[2] = rows[2].replace(b" ", b"\xb5", 1)
    bad = tmp_path / source.name
    bad.write_bytes(b"\n".join(rows))
    with pytest.raises(RecordingError, match=r"\(line 3\): not a text file"):
        read_msr_action3d(bad)


# --------------------------------------------------------------------------- NTU RGB+D
def test_ntu_inferred_joints_get_half_confidence(data_dir):
    """Kinect v2 tracking state per joint line (last value): tracked 1.0, inferred 0.5."""
    path = data_dir / "ntu_samples" / "S001C003P008R002A058.skeleton"
    states = [line.split()[11] for line in path.read_text().splitlines()
              if len(line.split()) == 12]
    seq = read_ntu_skeleton(path)
    assert states.count("1") > 100
    assert int((seq.confidence == 0.5).sum()) == states.count("1")
    assert int((seq.confidence == 1.0).sum()) == states.count("2")


def test_ntu_frames_without_any_body_keep_one_empty_person_slot(data_dir, tmp_path):
    """NTU has clips whose every frame has no body: one empty slot (as person_ids [-1] says),
    not an array with no person at all."""
    frames = int((data_dir / "ntu_samples" / NTU_ONE).read_text().split("\n", 1)[0])
    empty = tmp_path / NTU_ONE
    empty.write_text(f"{frames}\r\n" + "0\r\n" * frames)
    seq = read_ntu_skeleton(empty)
    assert seq.coords.shape == (frames, 1, 25, 3) and seq.person_ids == [-1]
    assert not seq.confidence.any()


def test_ntu_malformed_header_values_are_named(data_dir, tmp_path):
    lines = (data_dir / "ntu_samples" / NTU_ONE).read_text().splitlines(keepends=True)
    assert len(lines[2].split()) == 10 and len(lines[4].split()) == 12
    cases = {
        "state": ([*lines[:4], lines[4].rsplit(" ", 1)[0] + " 1.5\n", *lines[5:]],
                  r"line 5 .*tracking state 1\.5"),
        "info": ([*lines[:2], lines[2].rsplit(" ", 1)[0] + "\n", *lines[3:]],
                 r"line 3 .*expected 10 body values, found 9"),
        "frames": (["0\n"], r"line 1 \(frame count\): 0 is outside"),
    }
    for name, (text, message) in cases.items():
        path = tmp_path / f"{name}.skeleton"
        path.write_text("".join(text))
        with pytest.raises(RecordingError, match=message):
            read_ntu_skeleton(path)


# --------------------------------------------------------------------------- Kinetics / OpenPose
def test_kinetics_label_index_zero_is_the_first_class(data_dir, tmp_path):
    clip = json.loads((data_dir / "kinetics_skeleton" / KINETICS_CLIP).read_text())
    clip["label_index"], clip["label"] = 0, "abseiling"
    path = tmp_path / "first_class.json"
    path.write_text(json.dumps(clip))
    seq = read_kinetics_json(path)
    assert seq.label == 0 and seq.label_name == "abseiling"


def test_kinetics_scores_not_one_per_joint_are_named(data_dir, tmp_path):
    clip = json.loads((data_dir / "kinetics_skeleton" / KINETICS_CLIP).read_text())
    person = clip["data"][3]["skeleton"][0]
    person["score"] = person["score"][:-1]
    path = tmp_path / "short_scores.json"
    path.write_text(json.dumps(clip))
    with pytest.raises(RecordingError, match=r"data\[3\].*\(17,\) scores for 18 joints"):
        read_kinetics_json(path)


def test_openpose_frames_with_nobody_and_unknown_keypoint_models(tmp_path):
    """A frame with nobody in view (as --follow reads one per file) is one empty person slot;
    a model of neither 25 nor 18 keypoints (MPI's 15) is named, not a KeyError."""
    nobody = tmp_path / "v_000000000000_keypoints.json"
    nobody.write_text(json.dumps({"version": 1.3, "people": []}))
    seq = read_recording(nobody)
    assert seq.coords.shape == (1, 1, 25, 2) and not seq.confidence.any()
    folder = tmp_path / "empty_scene"
    folder.mkdir()
    for t in range(3):
        shutil.copy(nobody, folder / f"v_{t:012d}_keypoints.json")
    assert read_recording(folder).coords.shape == (3, 1, 25, 2)
    mpi = tmp_path / "mpi_000000000000_keypoints.json"
    mpi.write_text(json.dumps({"people": [{"pose_keypoints_2d": [100.0, 200.0, 0.9] * 15}]}))
    with pytest.raises(RecordingError, match="15 keypoints per person"):
        read_recording(mpi)


# --------------------------------------------------------------------------- UTD-MHAD
def test_utd_single_frame_as_matlab_saves_it_and_no_frame(data_dir, tmp_path):
    """MATLAB drops a trailing singleton dimension: a one-frame d_skel is 20 x 3."""
    source = data_dir / "utd_mhad" / "a1_s1_t1_skeleton.mat"
    whole = read_utd_mhad(source)
    one = tmp_path / "a1_s1_t1_skeleton.mat"
    savemat(one, {"d_skel": loadmat(str(source))["d_skel"][:, :, 0]})
    seq = read_utd_mhad(one)
    assert seq.num_frames == 1 and seq.label == 0
    np.testing.assert_array_equal(seq.coords[0], whole.coords[0])
    none = tmp_path / "a1_s1_t2_skeleton.mat"
    savemat(none, {"d_skel": np.zeros((20, 3, 0))})
    with pytest.raises(RecordingError, match=r"d_skel: shape \(20, 3, 0\)"):
        read_utd_mhad(none)


# --------------------------------------------------------------------------- SBU
@pytest.fixture
def sbu_file(data_dir) -> Path:
    path = data_dir / "sbu_interaction" / "s01s02" / "07" / "001" / "skeleton_pos.txt"
    if not path.is_file():
        pytest.skip("no SBU data")
    return path


def test_sbu_people_keep_their_slots_and_a_missing_joint_is_zero(sbu_file, tmp_path):
    rows = sbu_file.read_text().splitlines()
    first = np.array([float(v) for v in rows[0].split(",")])
    seq = read_sbu_interaction(sbu_file)
    for m in range(2):      # person 1: columns 2-46, person 2: 47-91
        expected = sbu_to_metres(first[1 + 45 * m: 46 + 45 * m].reshape(15, 3))
        np.testing.assert_allclose(seq.coords[0, m], expected, rtol=1e-5, atol=1e-6)
    values = rows[0].split(",")
    values[46:49] = ["0", "0", "0"]                       # person 2's head: the missing mark
    edited = tmp_path / "s01s02" / "07" / "001" / "skeleton_pos.txt"
    edited.parent.mkdir(parents=True)
    edited.write_text("\n".join([",".join(values), *rows[1:]]) + "\n")
    got = read_sbu_interaction(edited)
    assert got.confidence[0, 1, 0] == 0 and not got.coords[0, 1, 0].any()
    assert got.confidence[0, 0, 0] == 1 and got.label == seq.label


def test_sbu_text_is_recognised_by_its_commas_or_by_its_name(sbu_file, tmp_path):
    renamed = tmp_path / "s01s02_07_001.txt"
    shutil.copy(sbu_file, renamed)
    seq = read_recording(renamed)
    assert seq.layout == "openni15" and seq.num_persons == 2
    text = sbu_file.read_text()
    first, rest = text.split("\n", 1)
    spaced = tmp_path / "spaced" / "skeleton_pos.txt"
    spaced.parent.mkdir()
    spaced.write_text(first.replace(",", " ") + "\n" + rest)    # no comma in the first row
    assert read_recording(spaced).layout == "openni15"          # the dataset's name says SBU


def test_a_frame_file_with_a_superscript_digit_in_its_name_does_not_end_a_followed_folder(
        tmp_path):
    """'²' is a digit to str.isdigit() but no number to int(): a followed folder holding such a
    name still yields its frames in natural order."""
    frame = {"people": [{"pose_keypoints_2d": [100.0, 200.0, 0.9] * 25}]}
    folder = FrameFolder(tmp_path)
    for name in ("v_10_keypoints.json", "v_9_keypoints.json", "v_1²2_keypoints.json"):
        (tmp_path / name).write_text(json.dumps(frame))
    assert len(list(folder.poll())) == 3
    assert natural_key("v_9_keypoints.json") < natural_key("v_10_keypoints.json")
