"""Layouts: joint orders as the data README and the sources define them, sound bone graphs."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from prgcn_ros.skeleton.layouts import LAYOUTS, get_layout

# 1-based orders written out as in ../shared/data/README.md
MSR_README = ("left shoulder, right shoulder, shoulder centre, spine, left hip, right hip, "
              "hip centre, left elbow, right elbow, left wrist, right wrist, left hand, "
              "right hand, left knee, right knee, left ankle, right ankle, left foot, "
              "right foot, head")
MSR_BONES = ("7-4, 4-3, 3-20, 3-1, 3-2, 1-8, 2-9, 8-10, 9-11, 10-12, 11-13, 7-5, 7-6, 5-14, "
             "6-15, 14-16, 15-17, 16-18, 17-19")
NTU_README = ("spine base, spine mid, neck, head, left shoulder, left elbow, left wrist, "
              "left hand, right shoulder, right elbow, right wrist, right hand, left hip, "
              "left knee, left ankle, left foot, right hip, right knee, right ankle, right foot, "
              "spine shoulder, left hand tip, left thumb, right hand tip, right thumb")
COCO18_README = ("nose, neck, right shoulder, right elbow, right wrist, left shoulder, left elbow, "
                 "left wrist, right hip, right knee, right ankle, left hip, left knee, "
                 "left ankle, right eye, left eye, right ear, left ear")


def _names(text: str) -> tuple[str, ...]:
    return tuple(n.strip().replace("centre", "center").replace(" ", "_")
                 for n in text.split(","))


def test_joint_orders_match_the_data_readme():
    assert get_layout("kinect20").joints == _names(MSR_README)
    assert get_layout("ntu25").joints == _names(NTU_README)
    assert get_layout("coco18").joints == _names(COCO18_README)
    kinect = get_layout("kinect20")
    bones = {tuple(sorted((int(a) - 1, int(b) - 1)))
             for a, b in (pair.strip().split("-") for pair in MSR_BONES.split(","))}
    assert {tuple(sorted(b)) for b in kinect.bones} == bones
    assert kinect.joints[kinect.center] == "hip_center"


def test_driver_orders():
    # OpenPose BODY_25 and the Azure Kinect SDK (k4abt_joint_id_t), spot checks.
    body25 = get_layout("body25")
    assert [body25.index(n) for n in ("mid_hip", "right_hip", "left_hip", "left_big_toe",
                                      "right_heel")] == [8, 9, 12, 19, 24]
    azure = get_layout("azure32")
    assert [azure.index(n) for n in ("pelvis", "neck", "left_clavicle", "right_clavicle",
                                     "left_hip", "head", "nose", "right_ear")] == \
        [0, 3, 4, 11, 18, 26, 27, 31]
    coco17 = get_layout("coco17")
    assert [coco17.index(n) for n in ("nose", "left_eye", "left_shoulder", "right_ankle")] == \
        [0, 1, 5, 16]


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_bones_connect_every_joint(name):
    layout = get_layout(name)
    assert len(set(layout.joints)) == layout.num_joints
    assert 0 <= layout.center < layout.num_joints
    neighbours = {j: set() for j in range(layout.num_joints)}
    for a, b in layout.bones:
        assert a != b and 0 <= a < layout.num_joints and 0 <= b < layout.num_joints
        neighbours[a].add(b)
        neighbours[b].add(a)
    seen, todo = {layout.center}, [layout.center]
    while todo:
        for other in neighbours[todo.pop()] - seen:
            seen.add(other)
            todo.append(other)
    assert len(seen) == layout.num_joints, f"{name}: joints not connected to the centre"
    for joint in ("left_shoulder", "right_shoulder", "left_hip", "right_hip", "left_elbow"):
        assert layout.has(joint)


def test_unknown_layout_and_joint_errors():
    with pytest.raises(ValueError, match="known layouts"):
        get_layout("kinect99")
    with pytest.raises(KeyError, match="coco18"):
        get_layout("coco18").index("pelvis")


def test_every_layout_is_documented_where_driver_writers_look():
    """The README's layout table, the SkeletonArray message and the shipped YAML name every
    layout the recognizer accepts."""
    root = Path(__file__).resolve().parents[1]
    table = set(re.findall(r"^\| `(\w+)` \| \d+ \|", (root / "README.md").read_text(), re.M))
    message = (root / "prgcn_msgs" / "msg" / "SkeletonArray.msg").read_text()
    yaml_text = (root / "config" / "recognizer.yaml").read_text()
    for name in LAYOUTS:
        assert name in table, f"{name} missing from the README's layout table"
        assert f'"{name}"' in message, f"{name} missing from SkeletonArray.msg"
        assert name in yaml_text, f"{name} missing from config/recognizer.yaml (input_layout)"
