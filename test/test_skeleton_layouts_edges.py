"""Edges of the ROS-free skeleton layer that the other tests leave open: full joint orders of the
drivers' layouts, left/right symmetry of the bone graphs, documented graph centres, the tree
order, trunk joints mapped where the target sensor puts them, class names as the data README
lists them, gravity rotations on general inputs, the device ring buffer's slot bookkeeping and
bags written from several recordings."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from rosbags.rosbag2 import Writer
from test_training_util import REPO

from prgcn_ros.skeleton import labels, mapping
from prgcn_ros.skeleton.bags import (
    SKELETON_ARRAY,
    BagError,
    bag_topics,
    read_bag,
    typestore,
    write_bag,
)
from prgcn_ros.skeleton.frames import (
    convention_matrix,
    gravity_rotation,
    quaternion_matrix,
    rotate_points,
)
from prgcn_ros.skeleton.layouts import LAYOUTS, TWO_D_LAYOUTS, _layout, get_layout
from prgcn_ros.skeleton.mapping import has_mapping, map_joints
from prgcn_ros.skeleton.readers import read_msr_action3d, read_ntu_skeleton, read_recording
from prgcn_ros.skeleton.ring_buffer import DeviceRingBuffer
from prgcn_ros.skeleton.sequence import SkeletonSequence, frame_people

# --------------------------------------------------------------------------- layouts
# The drivers' own orders, as their documentation enumerates them.
OPENPOSE_BODY_25 = (  # OpenPose doc/02_output.md, "Pose Output Format (BODY_25)"
    "Nose Neck RShoulder RElbow RWrist LShoulder LElbow LWrist MidHip RHip RKnee RAnkle LHip "
    "LKnee LAnkle REye LEye REar LEar LBigToe LSmallToe LHeel RBigToe RSmallToe RHeel")
MS_COCO_17 = (  # the MS COCO keypoint annotation's "keypoints" list
    "nose left_eye right_eye left_ear right_ear left_shoulder right_shoulder left_elbow "
    "right_elbow left_wrist right_wrist left_hip right_hip left_knee right_knee left_ankle "
    "right_ankle")
K4ABT_JOINT_ID = (  # Azure Kinect Body Tracking SDK, k4abt_joint_id_t
    "PELVIS SPINE_NAVEL SPINE_CHEST NECK CLAVICLE_LEFT SHOULDER_LEFT ELBOW_LEFT WRIST_LEFT "
    "HAND_LEFT HANDTIP_LEFT THUMB_LEFT CLAVICLE_RIGHT SHOULDER_RIGHT ELBOW_RIGHT WRIST_RIGHT "
    "HAND_RIGHT HANDTIP_RIGHT THUMB_RIGHT HIP_LEFT KNEE_LEFT ANKLE_LEFT FOOT_LEFT HIP_RIGHT "
    "KNEE_RIGHT ANKLE_RIGHT FOOT_RIGHT HEAD NOSE EYE_LEFT EAR_LEFT EYE_RIGHT EAR_RIGHT")


def _openpose_name(name: str) -> str:
    side = {"L": "left_", "R": "right_"}.get(name[0]) if name[1:2].isupper() else None
    body = name[1:] if side else name
    body = re.sub(r"(?<!^)([A-Z])", r"_\1", body).lower()
    return (side or "") + body


def _k4abt_name(name: str) -> str:
    parts = name.lower().split("_")
    if parts[-1] in ("left", "right"):
        parts = [parts[-1], *parts[:-1]]
    return "_".join(parts).replace("handtip", "hand_tip")


def _readme_list(text: str, start: str) -> list[tuple[str, str]]:
    """The numbered list after ``start`` in a README bullet: [(number, name), ...]."""
    body = text.split(start, 1)[1]
    body = re.split(r"\n- |\n\n", body, maxsplit=1)[0]
    body = " ".join(body.split()).split(". ")[0].rstrip(".")
    return [tuple(item.strip().split(" ", 1)) for item in re.split(r",\s*(?=a?\d+ )", body)]


def test_driver_layouts_list_every_joint_in_the_drivers_order(data_dir):
    """A joint at the wrong index is a limb on the wrong body part: check every index, not a few."""
    assert get_layout("body25").joints == tuple(_openpose_name(n) for n in OPENPOSE_BODY_25.split())
    assert get_layout("coco17").joints == tuple(MS_COCO_17.split())
    assert get_layout("azure32").joints == tuple(_k4abt_name(n) for n in K4ABT_JOINT_ID.split())
    readme = (data_dir / "README.md").read_text()
    sbu = readme.split("## sbu_interaction/", 1)[1]
    order = _readme_list(sbu, "- Joint order:")
    assert [int(k) for k, _ in order] == list(range(1, 16))
    assert get_layout("openni15").joints == tuple(n.replace(" ", "_") for _, n in order)


def _mirror(joint: str) -> str:
    if joint.startswith("left_"):
        return "right_" + joint[5:]
    if joint.startswith("right_"):
        return "left_" + joint[6:]
    return joint


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_bones_are_left_right_symmetric(name):
    """A body's left side is drawn like its right: the bone set maps onto itself when left and
    right are exchanged, and a bone joins the two sides only between mirror joints (shoulders,
    hips), never a left hand to a right elbow."""
    layout = get_layout(name)
    assert {_mirror(j) for j in layout.joints} == set(layout.joints)
    bones = {frozenset((layout.joints[a], layout.joints[b])) for a, b in layout.bones}
    assert {frozenset(_mirror(j) for j in bone) for bone in bones} == bones
    for bone in bones:
        a, b = sorted(bone)
        if a.startswith("left_") and b.startswith("right_"):
            assert _mirror(a) == b, f"{name}: bone {a}-{b} crosses the body"


def _design_layout_table() -> dict[str, tuple[str, str]]:
    text = (REPO / "docs" / "design.md").read_text()
    rows = re.findall(r"^\| `(\w+)` \| \d+ \| [^|]+ \| ([^|]+) \| (\w+) \|$", text, re.M)
    return {name: (coords.strip(), centre) for name, coords, centre in rows}


def test_graph_centres_and_dimensions_are_the_documented_ones():
    """The centre decides the model's spatial partition (closer to / farther from it), so a
    model trained on one centre runs wrong on another; 2D layouts get (x, y, confidence)."""
    table = _design_layout_table()
    assert set(table) == set(LAYOUTS)
    for name, (_coords, centre) in table.items():
        layout = get_layout(name)
        assert layout.joints[layout.center] == centre, name
    assert TWO_D_LAYOUTS == {name for name, (coords, _) in table.items()
                             if coords.startswith("2D")}


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_tree_is_breadth_first_from_the_centre_over_every_joint(name):
    layout = get_layout(name)
    tree = layout.tree()
    children = [child for _, child in tree]
    assert sorted(children + [layout.center]) == list(range(layout.num_joints))
    depth = {layout.center: 0}
    for parent, child in tree:
        assert parent in depth, f"{name}: parent {parent} comes after its child"
        depth[child] = depth[parent] + 1
    assert [depth[c] for c in children] == sorted(depth[c] for c in children)
    bones = {frozenset(b) for b in layout.bones}
    assert all(frozenset(pair) in bones for pair in tree)


def test_a_layout_with_a_repeated_joint_name_is_refused():
    with pytest.raises(ValueError, match="repeats"):
        _layout("broken", ["head", "neck", "head"], [("head", "neck")], "neck", "")


# --------------------------------------------------------------------------- mappings
def _fraction(coords, layout, joint, low, high) -> float:
    """Median distance low -> joint over low -> high (0: at `low`, 1: as far as `high`)."""
    lay = get_layout(layout)
    j, lo, hi = (coords[:, lay.index(n)] for n in (joint, low, high))
    return float(np.median(np.linalg.norm(j - lo, axis=-1) / np.linalg.norm(hi - lo, axis=-1)))


def _ntu_frames(data_dir) -> tuple[np.ndarray, np.ndarray]:
    """Every NTU sample's first body in frames where all its joints are tracked."""
    coords, conf = [], []
    for path in sorted((data_dir / "ntu_samples").glob("*.skeleton")):
        seq = read_ntu_skeleton(path)
        keep = (seq.confidence[:, 0] == 1).all(-1)
        coords.append(seq.coords[keep, 0])
        conf.append(seq.confidence[keep, 0])
    return np.concatenate(coords), np.concatenate(conf)


def test_ntu25_trunk_lands_where_kinect_v1_puts_it(data_dir):
    """Kinect v2 skeletons mapped to kinect20 have Kinect v1's trunk: shoulder_center and
    spine at the heights (along hip centre -> head) real Kinect v1 recordings have them."""
    msr = [read_msr_action3d(p) for p in
           sorted((data_dir / "msr_action3d").glob("*_skeleton3D.txt"))[::60]]
    real = np.concatenate([s.coords[(s.confidence[:, 0] > 0).all(-1), 0] for s in msr])
    coords, conf = _ntu_frames(data_dir)
    mapped, _ = map_joints(coords, conf, "ntu25", "kinect20")
    for joint in ("shoulder_center", "spine"):
        want = _fraction(real, "kinect20", joint, "hip_center", "head")
        got = _fraction(mapped, "kinect20", joint, "hip_center", "head")
        assert abs(got - want) < 0.1, (joint, got, want)


def test_ntu25_and_azure32_reach_openni15_with_sbus_proportions(data_dir):
    """SBU's neck is the shoulders' midpoint and its torso half way from the neck to the hips;
    Kinect v2 and Azure Kinect skeletons mapped to openni15 must look the same (Azure built
    from the real NTU frames by the SDKs' correspondence of names)."""
    coords, conf = _ntu_frames(data_dir)
    ntu = get_layout("ntu25")
    alias = {"pelvis": "spine_base", "spine_navel": "spine_mid", "spine_chest": "spine_shoulder",
             "left_clavicle": "spine_shoulder", "right_clavicle": "spine_shoulder",
             "nose": "head", "left_eye": "head", "right_eye": "head", "left_ear": "head",
             "right_ear": "head"}
    index = [ntu.index(alias.get(j, j)) for j in get_layout("azure32").joints]
    azure, azure_conf = coords[:, index], conf[:, index]
    mapped = {"ntu25": map_joints(coords, conf, "ntu25", "openni15")[0],
              "azure32": map_joints(azure, azure_conf, "azure32", "openni15")[0]}
    o15 = get_layout("openni15")
    for source, xyz in mapped.items():
        j = {n: xyz[:, o15.index(n)] for n in o15.joints}
        shoulders = (j["left_shoulder"] + j["right_shoulder"]) / 2
        hips = (j["left_hip"] + j["right_hip"]) / 2
        assert np.median(np.linalg.norm(j["neck"] - shoulders, axis=-1)) < 0.02, source
        trunk = np.median(np.linalg.norm(j["torso"] - j["neck"], axis=-1)
                          / np.linalg.norm(hips - j["neck"], axis=-1))
        assert abs(trunk - 0.5) < 0.05, (source, trunk)
    # And an Azure person maps onto NTU's joints where NTU has them.
    back, _ = map_joints(azure, azure_conf, "azure32", "ntu25")
    assert np.array_equal(back, coords)


def test_identity_mapping_is_a_copy():
    """Documented as a copy: a caller that edits the result (centring in place) must not edit
    the message's arrays it came from."""
    coords = np.ones((2, 18, 2), np.float32)
    conf = np.ones((2, 18), np.float32)
    out, out_conf = map_joints(coords, conf, "coco18", "coco18")
    out[...] = 5
    out_conf[...] = 0
    assert (coords == 1).all() and (conf == 1).all()
    t_coords, t_conf = torch.ones(18, 2), torch.ones(18)
    t_out, t_out_conf = map_joints(t_coords, t_conf, "coco18", "coco18")
    t_out += 1
    t_out_conf -= 1
    assert bool((t_coords == 1).all()) and bool((t_conf == 1).all())


def test_confidence_of_the_wrong_length_is_refused():
    with pytest.raises(ValueError, match="'kinect20' has 20 joints"):
        map_joints(np.zeros((20, 3)), np.zeros(25), "kinect20", "openni15")


def test_an_unknown_layout_has_no_mapping_even_to_itself():
    """has_mapping answers for map_joints, which refuses a layout it does not know."""
    with pytest.raises(ValueError, match="known layouts"):
        has_mapping("kinect99", "kinect99")
    with pytest.raises(ValueError, match="known layouts"):
        map_joints(np.zeros((20, 3)), np.zeros(20), "kinect99", "kinect99")


def test_torch_mapping_zeroes_joints_the_source_lacks(monkeypatch):
    """The same rule on the device as in numpy: a target joint without a source is 0, conf 0."""
    monkeypatch.setitem(mapping._DIRECT, ("kinect20", "ntu25"), {})
    mapping._table.cache_clear()
    try:
        coords = torch.arange(60, dtype=torch.float32).reshape(20, 3) + 1
        xyz, conf = map_joints(coords, torch.ones(20), "kinect20", "ntu25")
        ntu = get_layout("ntu25")
        for joint in ("spine_base", "neck", "left_thumb"):
            assert conf[ntu.index(joint)] == 0 and not xyz[ntu.index(joint)].any()
        assert bool(xyz[ntu.index("head")].eq(coords[get_layout("kinect20").index("head")]).all())
    finally:
        mapping._table.cache_clear()


# --------------------------------------------------------------------------- labels
def test_class_names_are_the_data_readmes(data_dir):
    """A model names the action a person does: index k must be the dataset's class k."""
    readme = (data_dir / "README.md").read_text()
    section = {name: readme.split(f"## {name}/", 1)[1].split("\n## ", 1)[0]
               for name in ("msr_action3d", "utd_mhad", "sbu_interaction", "nw_ucla")}
    msr = _readme_list(section["msr_action3d"], "- Actions:")
    assert labels.MSR_ACTION3D_CLASSES == tuple(n for _, n in msr)
    utd = _readme_list(section["utd_mhad"], "- Actions:")
    assert labels.UTD_MHAD_CLASSES == tuple(n for _, n in utd)
    sbu = _readme_list(section["sbu_interaction"], "- Classes:")
    assert [int(k) for k, _ in sbu] == list(range(1, 9))
    assert all(readme_name.startswith(name) for name, (_, readme_name)
               in zip(labels.SBU_INTERACTION_CLASSES, sbu, strict=True))
    ucla = _readme_list(section["nw_ucla"], "- Classes (file action → label):")
    assert labels.NW_UCLA_ACTIONS == tuple(int(k[1:]) for k, _ in ucla)
    assert labels.NW_UCLA_CLASSES == tuple(n for _, n in ucla)


def test_ntu_class_names_by_the_datasets_numbers():
    """Axxx is class xxx - 1, by the NTU RGB+D authors' list (spot checks at both ends and the
    five samples' classes; the data README calls A003 "brushing hair", the authors' A004)."""
    official = {1: "drink water", 3: "brushing teeth", 4: "brushing hair", 10: "clapping",
                11: "reading", 17: "take off a shoe", 34: "rub two hands together",
                43: "falling", 50: "punching/slapping other person", 58: "handshaking",
                59: "walking towards each other", 60: "walking apart from each other"}
    for number, name in official.items():
        assert labels.ntu_class_name(number - 1) == name, number
    # Outside NTU-60 (NTU-120's classes, an unset -1): no name rather than a wrong one.
    assert labels.ntu_class_name(-1) is None and labels.ntu_class_name(60) is None


# --------------------------------------------------------------------------- frames
def _axis_angle(axis, angle_deg) -> np.ndarray:
    """Rodrigues' formula, written independently of frames.py."""
    k = np.asarray(axis, float) / np.linalg.norm(axis)
    a = math.radians(angle_deg)
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(a) * cross + (1 - math.cos(a)) * cross @ cross


def test_quaternion_matrix_is_the_rotation_about_any_axis():
    axis, angle = np.array([0.3, -0.5, 0.8]), 70.0
    half = math.radians(angle) / 2
    x, y, z = np.sin(half) * axis / np.linalg.norm(axis)
    w = math.cos(half)
    np.testing.assert_allclose(quaternion_matrix(x, y, z, w), _axis_angle(axis, angle),
                               atol=1e-12)
    # tf2 quaternions drift from unit length: the rotation is the same.
    np.testing.assert_allclose(quaternion_matrix(2 * x, 2 * y, 2 * z, 2 * w),
                               _axis_angle(axis, angle), atol=1e-12)


def test_rotate_points_applies_the_rotation_to_each_point():
    r = _axis_angle([0, 0, 1], 90)           # x -> y
    pts = np.array([[[1.0, 0.0, 0.0], [0.0, 0.0, 2.0]]], np.float32)
    np.testing.assert_allclose(rotate_points(pts, r), [[[0, 1, 0], [0, 0, 2]]], atol=1e-6)


def test_a_tilted_optical_camera_is_turned_upright():
    """An optical frame (y down) of a camera pitched down by a: up and the horizontal view
    direction, written out by hand, come out as model up and forward."""
    a = math.radians(20.0)
    up_optical = [0.0, -math.cos(a), -math.sin(a)]
    forward_optical = [0.0, -math.sin(a), math.cos(a)]
    r = gravity_rotation("y_down", tilt_deg=20.0)
    np.testing.assert_allclose(r @ up_optical, [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(r @ forward_optical, [0, 0, 1], atol=1e-12)


def test_frame_rotation_is_applied_before_the_convention():
    """A sensor yawed 90 degrees left on a z-up robot: its x axis points to the robot's left,
    which is the model's +x (Kinect: x to the sensor's left)."""
    yawed = quaternion_matrix(0.0, 0.0, math.sin(math.pi / 4), math.cos(math.pi / 4))
    r = gravity_rotation("z_up", frame_rotation=yawed)
    np.testing.assert_allclose(r @ [1, 0, 0], [1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(r @ [0, 0, 1], [0, 1, 0], atol=1e-12)


def test_convention_matrices_cannot_be_changed_through_a_result():
    convention_matrix("y_up")[0, 0] = -1.0
    assert convention_matrix("y_up")[0, 0] == 1.0


# --------------------------------------------------------------------------- bags
CLIP = "a03_s02_e01_skeleton3D.txt"


def _clip(data_dir, name: str = CLIP):
    return read_recording(data_dir / "msr_action3d" / name)


def test_write_bag_refuses_what_it_cannot_write_as_bag_errors(data_dir, tmp_path):
    """The player reports a BagError in one line: an existing folder, an unknown storage or a
    frame rate that gives no timing are refused before anything is written."""
    seq = _clip(data_dir)
    there = tmp_path / "there"
    there.mkdir()
    with pytest.raises(BagError, match="exists"):
        write_bag(there, [seq])
    assert not any(there.iterdir())
    with pytest.raises(BagError, match="storage"):
        write_bag(tmp_path / "zip_bag", [seq], storage="zip")
    assert not (tmp_path / "zip_bag").exists()
    for fps in (math.inf, math.nan):
        seq.fps = fps
        with pytest.raises(BagError, match="frame rate"):
            write_bag(tmp_path / "fast_bag", [seq])
        assert not (tmp_path / "fast_bag").exists()


def test_recordings_in_one_bag_play_one_after_the_other(data_dir, tmp_path):
    """Two recordings: the second starts after the first ends (not on top of it), each with
    its own person id, as prgcn-player would send them."""
    first, second = _clip(data_dir), _clip(data_dir, "a01_s01_e01_skeleton3D.txt")
    count = write_bag(tmp_path / "two", [first, second])
    store = typestore()
    entries = [(stamp, store.deserialize_cdr(raw, SKELETON_ARRAY))
               for _, _, stamp, raw in read_bag(tmp_path / "two")]
    assert len(entries) == count
    ids = [[s.id for s in msg.skeletons] for _, msg in entries]
    n_first = sum(1 for t in range(first.num_frames) if (first.confidence[t] > 0).any())
    assert ids == [[0]] * n_first + [[100]] * (count - n_first)
    stamps = [stamp for stamp, _ in entries]
    assert all(b > a for a, b in zip(stamps, stamps[1:]))
    assert all(msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec == stamp
               for stamp, msg in entries)


def _humble_bag(path, data_dir) -> None:
    """A bag as ROS 2 Humble records it: metadata version 5, no type hashes."""
    write_bag(path, [_clip(data_dir)], storage="sqlite3")
    meta = path / "metadata.yaml"
    text = re.sub(r" *type_description_hash: *\n? *RIHS01_\w+\n", "", meta.read_text())
    meta.write_text(text.replace("version: 8", "version: 5"))


def test_a_bag_without_type_hashes_is_not_refused_as_another_definition(data_dir, tmp_path):
    """Humble and older record no type hash: nothing to compare, so the bag plays."""
    _humble_bag(tmp_path / "humble", data_dir)
    installed = "RIHS01_" + "ab" * 32
    assert bag_topics(tmp_path / "humble", type_hash=lambda msgtype: installed) == \
        [("/skeletons", SKELETON_ARRAY)]
    assert sum(1 for _ in read_bag(tmp_path / "humble")) > 0


def test_a_named_topic_of_another_type_is_not_played(tmp_path):
    """--bag-topic /chatter on a String topic: a BagError naming what the bag has, from
    bag_topics and from read_bag, not bytes a SkeletonArray publisher cannot take."""
    store = typestore()
    bag = tmp_path / "chatter"
    with Writer(bag, version=8) as writer:
        connection = writer.add_connection("/chatter", "std_msgs/msg/String", typestore=store)
        msg = store.types["std_msgs/msg/String"](data="hello")
        writer.write(connection, 10**9, store.serialize_cdr(msg, "std_msgs/msg/String"))
    with pytest.raises(BagError, match=r"/chatter \(std_msgs/msg/String\)"):
        bag_topics(bag, ["/chatter"])
    with pytest.raises(BagError, match=r"/chatter \(std_msgs/msg/String\)"):
        list(read_bag(bag, ["/chatter"]))


# --------------------------------------------------------------------------- ring buffer
def test_ring_buffer_refuses_an_empty_window_and_an_empty_gather():
    """A window of 0 frames holds nothing (its ring arithmetic divides by it); a gather of 0
    frames gives the model nothing to classify: both refused up front."""
    with pytest.raises(ValueError, match=">= 1"):
        DeviceRingBuffer(0, 25, 3)
    buf = DeviceRingBuffer(4, 25, 3)
    buf.append(1, np.zeros((25, 3), np.float32), 1)
    with pytest.raises(ValueError, match="length 0"):
        buf.gather(length=0)


# --------------------------------------------------------------------------- sequence
def test_a_sequence_that_does_not_fit_its_layout_is_refused():
    """Every consumer trusts (T, M, V, D) with V the layout's and D 2 or 3: a reader's mistake
    stops where the sequence is made, not in a model's matmul."""
    ok = dict(coords=np.zeros((5, 2, 20, 3)), confidence=np.ones((5, 2, 20)),
              layout="kinect20", fps=15.0)
    SkeletonSequence(**ok)
    bad = {"coords (x, y, z, w)": dict(coords=np.zeros((5, 2, 20, 4))),
           "confidence per frame only": dict(confidence=np.ones((5, 2))),
           "25 joints for kinect20": dict(coords=np.zeros((5, 2, 25, 3)),
                                          confidence=np.ones((5, 2, 25))),
           "one id for two people": dict(person_ids=[7])}
    for what, change in bad.items():
        with pytest.raises(ValueError):
            SkeletonSequence(**{**ok, **change})
            pytest.fail(what)


def test_a_person_with_a_hidden_joint_is_still_in_the_frame():
    """A driver marks an occluded joint with confidence 0; the person is still there and is
    played (only a slot with no confident joint at all is nobody)."""
    conf = np.ones((1, 3, 20), np.float32)
    conf[0, 0, 7] = 0.0               # person 0: one hand hidden
    conf[0, 2] = 0.0                  # slot 2: nobody
    seq = SkeletonSequence(np.zeros((1, 3, 20, 3)), conf, "kinect20", 15.0)
    ids, coords, confidence = frame_people(seq, 0, [10, 11, 12])
    assert ids == [10, 11] and coords.shape == (2, 20, 3) and confidence[0, 7] == 0


def test_selected_frames_are_a_copy():
    """Windows cut from a recording are augmented in place during training: the recording
    they came from must stay as read."""
    seq = SkeletonSequence(np.zeros((6, 1, 20, 3)), np.ones((6, 1, 20)), "kinect20", 15.0)
    window = seq.select_frames(slice(1, 4))
    window.coords += 1.0
    window.confidence[:] = 0.0
    assert not seq.coords.any() and seq.confidence.all()
