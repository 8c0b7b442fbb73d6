"""Joint layouts: the one place that knows each skeleton's joints, bones and centre.

Joint names are shared across layouts (``left_shoulder`` means the same body part in every
layout that has one), so mappings between layouts can be written by name.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Layout:
    """A skeleton layout: ordered joint names, bones (0-based index pairs) and the graph centre."""

    name: str
    joints: tuple[str, ...]
    bones: tuple[tuple[int, int], ...]
    center: int
    description: str = ""

    @property
    def num_joints(self) -> int:
        return len(self.joints)

    def index(self, joint: str) -> int:
        """Index of a joint by name; raises KeyError naming the layout when it has no such joint."""
        try:
            return self.joints.index(joint)
        except ValueError:
            raise KeyError(f"layout {self.name!r} has no joint {joint!r}") from None

    def has(self, joint: str) -> bool:
        return joint in self.joints

    def tree(self) -> tuple[tuple[int, int], ...]:
        """The bones as (parent, child) pairs in breadth-first order from the centre, so every
        parent comes before its children (joints not connected to the centre are left out)."""
        neighbours: dict[int, list[int]] = {i: [] for i in range(self.num_joints)}
        for a, b in self.bones:
            neighbours[a].append(b)
            neighbours[b].append(a)
        order, seen, queue = [], {self.center}, [self.center]
        while queue:
            parent = queue.pop(0)
            for child in neighbours[parent]:
                if child not in seen:
                    seen.add(child)
                    order.append((parent, child))
                    queue.append(child)
        return tuple(order)


def _layout(name: str, joints: list[str], bones: list[tuple[str, str]], center: str,
            description: str) -> Layout:
    index = {joint: i for i, joint in enumerate(joints)}
    if len(index) != len(joints):
        raise ValueError(f"layout {name!r} repeats a joint name")
    return Layout(name=name, joints=tuple(joints),
                  bones=tuple((index[a], index[b]) for a, b in bones),
                  center=index[center], description=description)


_FACE_COCO = [("nose", "right_eye"), ("nose", "left_eye"),
              ("right_eye", "right_ear"), ("left_eye", "left_ear")]
_ARMS = [("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"),
         ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist")]
_LEGS = [("right_hip", "right_knee"), ("right_knee", "right_ankle"),
         ("left_hip", "left_knee"), ("left_knee", "left_ankle")]

COCO18 = _layout(
    "coco18",
    ["nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder",
     "left_elbow", "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip",
     "left_knee", "left_ankle", "right_eye", "left_eye", "right_ear", "left_ear"],
    [("neck", "nose"), ("neck", "right_shoulder"), ("neck", "left_shoulder"),
     ("neck", "right_hip"), ("neck", "left_hip"), *_ARMS, *_LEGS, *_FACE_COCO],
    center="neck",
    description="OpenPose COCO-18 (Kinetics-skeleton), 2D")

BODY25 = _layout(
    "body25",
    ["nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder",
     "left_elbow", "left_wrist", "mid_hip", "right_hip", "right_knee", "right_ankle",
     "left_hip", "left_knee", "left_ankle", "right_eye", "left_eye", "right_ear", "left_ear",
     "left_big_toe", "left_small_toe", "left_heel", "right_big_toe", "right_small_toe",
     "right_heel"],
    [("neck", "nose"), ("neck", "right_shoulder"), ("neck", "left_shoulder"),
     ("neck", "mid_hip"), ("mid_hip", "right_hip"), ("mid_hip", "left_hip"), *_ARMS, *_LEGS,
     *_FACE_COCO, ("left_ankle", "left_big_toe"), ("left_big_toe", "left_small_toe"),
     ("left_ankle", "left_heel"), ("right_ankle", "right_big_toe"),
     ("right_big_toe", "right_small_toe"), ("right_ankle", "right_heel")],
    center="neck",
    description="OpenPose BODY_25, 2D")

COCO17 = _layout(
    "coco17",
    ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
     "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip",
     "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle"],
    [*_FACE_COCO, ("nose", "left_shoulder"), ("nose", "right_shoulder"),
     ("left_shoulder", "right_shoulder"), ("left_shoulder", "left_hip"),
     ("right_shoulder", "right_hip"), ("left_hip", "right_hip"), *_ARMS, *_LEGS],
    center="nose",
    description="COCO-17 keypoints (MS COCO, many 2D pose estimators), 2D")

NTU25 = _layout(
    "ntu25",
    ["spine_base", "spine_mid", "neck", "head", "left_shoulder", "left_elbow", "left_wrist",
     "left_hand", "right_shoulder", "right_elbow", "right_wrist", "right_hand", "left_hip",
     "left_knee", "left_ankle", "left_foot", "right_hip", "right_knee", "right_ankle",
     "right_foot", "spine_shoulder", "left_hand_tip", "left_thumb", "right_hand_tip",
     "right_thumb"],
    [("spine_base", "spine_mid"), ("spine_mid", "spine_shoulder"), ("spine_shoulder", "neck"),
     ("neck", "head"), ("spine_shoulder", "left_shoulder"), ("left_shoulder", "left_elbow"),
     ("left_elbow", "left_wrist"), ("left_wrist", "left_hand"), ("left_hand", "left_hand_tip"),
     ("left_hand", "left_thumb"), ("spine_shoulder", "right_shoulder"),
     ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"),
     ("right_wrist", "right_hand"), ("right_hand", "right_hand_tip"),
     ("right_hand", "right_thumb"), ("spine_base", "left_hip"), ("left_hip", "left_knee"),
     ("left_knee", "left_ankle"), ("left_ankle", "left_foot"), ("spine_base", "right_hip"),
     ("right_hip", "right_knee"), ("right_knee", "right_ankle"), ("right_ankle", "right_foot")],
    center="spine_shoulder",
    description="Kinect v2 / NTU RGB+D, 3D, metres")

KINECT20 = _layout(
    "kinect20",
    ["left_shoulder", "right_shoulder", "shoulder_center", "spine", "left_hip", "right_hip",
     "hip_center", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hand",
     "right_hand", "left_knee", "right_knee", "left_ankle", "right_ankle", "left_foot",
     "right_foot", "head"],
    [("hip_center", "spine"), ("spine", "shoulder_center"), ("shoulder_center", "head"),
     ("shoulder_center", "left_shoulder"), ("shoulder_center", "right_shoulder"),
     ("left_shoulder", "left_elbow"), ("right_shoulder", "right_elbow"),
     ("left_elbow", "left_wrist"), ("right_elbow", "right_wrist"),
     ("left_wrist", "left_hand"), ("right_wrist", "right_hand"),
     ("hip_center", "left_hip"), ("hip_center", "right_hip"), ("left_hip", "left_knee"),
     ("right_hip", "right_knee"), ("left_knee", "left_ankle"), ("right_knee", "right_ankle"),
     ("left_ankle", "left_foot"), ("right_ankle", "right_foot")],
    center="hip_center",
    description="Kinect v1 / MSR Action3D joint order, 3D, metres")

AZURE32 = _layout(
    "azure32",
    ["pelvis", "spine_navel", "spine_chest", "neck", "left_clavicle", "left_shoulder",
     "left_elbow", "left_wrist", "left_hand", "left_hand_tip", "left_thumb", "right_clavicle",
     "right_shoulder", "right_elbow", "right_wrist", "right_hand", "right_hand_tip",
     "right_thumb", "left_hip", "left_knee", "left_ankle", "left_foot", "right_hip",
     "right_knee", "right_ankle", "right_foot", "head", "nose", "left_eye", "left_ear",
     "right_eye", "right_ear"],
    [("pelvis", "spine_navel"), ("spine_navel", "spine_chest"), ("spine_chest", "neck"),
     ("neck", "head"), ("spine_chest", "left_clavicle"), ("left_clavicle", "left_shoulder"),
     ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"), ("left_wrist", "left_hand"),
     ("left_hand", "left_hand_tip"), ("left_wrist", "left_thumb"),
     ("spine_chest", "right_clavicle"), ("right_clavicle", "right_shoulder"),
     ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"),
     ("right_wrist", "right_hand"), ("right_hand", "right_hand_tip"),
     ("right_wrist", "right_thumb"), ("pelvis", "left_hip"), ("left_hip", "left_knee"),
     ("left_knee", "left_ankle"), ("left_ankle", "left_foot"), ("pelvis", "right_hip"),
     ("right_hip", "right_knee"), ("right_knee", "right_ankle"), ("right_ankle", "right_foot"),
     ("head", "nose"), ("head", "left_eye"), ("head", "left_ear"), ("head", "right_eye"),
     ("head", "right_ear")],
    center="spine_chest",
    description="Azure Kinect Body Tracking SDK, 3D "
                "(the SDK reports millimetres; the ROS driver metres)")

# OpenNI / NiTE user tracker (SBU Kinect Interaction). Its "neck" is the midpoint of the
# shoulders, its "torso" midway between the neck and the hips; no wrists or ankles: SBU's
# knee -> foot is 0.96 thigh lengths, like Kinect v1's knee -> foot (0.93), not its
# knee -> ankle (0.80).
OPENNI15 = _layout(
    "openni15",
    ["head", "neck", "torso", "left_shoulder", "left_elbow", "left_hand", "right_shoulder",
     "right_elbow", "right_hand", "left_hip", "left_knee", "left_foot", "right_hip",
     "right_knee", "right_foot"],
    [("head", "neck"), ("neck", "torso"), ("neck", "left_shoulder"),
     ("left_shoulder", "left_elbow"), ("left_elbow", "left_hand"), ("neck", "right_shoulder"),
     ("right_shoulder", "right_elbow"), ("right_elbow", "right_hand"), ("torso", "left_hip"),
     ("left_hip", "left_knee"), ("left_knee", "left_foot"), ("torso", "right_hip"),
     ("right_hip", "right_knee"), ("right_knee", "right_foot")],
    center="torso",
    description="OpenNI / NiTE 15 joints (SBU Kinect Interaction), 3D, metres")

LAYOUTS: dict[str, Layout] = {layout.name: layout for layout in
                              (COCO18, BODY25, COCO17, NTU25, KINECT20, AZURE32, OPENNI15)}

# Layouts whose coordinates are image keypoints (x, y); the others are 3D sensor joints.
TWO_D_LAYOUTS = frozenset({"coco18", "coco17", "body25"})


def get_layout(name: str | Layout) -> Layout:
    """The layout called ``name``; a clear error listing the known layouts otherwise."""
    if isinstance(name, Layout):
        return name
    try:
        return LAYOUTS[name]
    except KeyError:
        raise ValueError(f"unknown skeleton layout {name!r}; known layouts: "
                         f"{', '.join(sorted(LAYOUTS))}") from None
