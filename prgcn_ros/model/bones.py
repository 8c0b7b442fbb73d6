"""Rigid bones: the PRM's refined poses rebuilt with each limb bone's length held over the window.

Bones of a body do not change length, but a refiner that moves every joint by its own offset
changes them from frame to frame (a 7 cm wrist-hand bone by 6-8 % for offsets of half a
centimetre, docs/refinement.md). This layer keeps every refined bone's direction and replaces
its length by the window's mean length of that refined bone, rebuilding the skeleton from the
layout's centre outwards. It is differentiable, so the PRM is trained through it.

The segments along the spine and neck are not single bones: the straight line from the hip
centre to the shoulder centre shortens when a person bends or slumps (a Kinect's spine segments
vary 7-8 % within a clip of MSR Action3D). Those segments keep their refined length frame by
frame; every other bone (limbs, shoulders, hips, head and face) is held.
"""
from __future__ import annotations

import torch
from torch import nn

from prgcn_ros.skeleton.layouts import Layout

# Joints of the spine and neck, by the names the layouts share.
AXIAL_JOINTS = frozenset({"pelvis", "hip_center", "spine_base", "spine", "spine_mid",
                          "spine_navel", "spine_chest", "spine_shoulder", "shoulder_center",
                          "torso", "neck", "head"})


def held_bones(layout: Layout) -> tuple[bool, ...]:
    """For each (parent, child) of ``layout.tree()``: whether its length is held (False for a
    segment of the spine or neck, both of whose joints are axial)."""
    return tuple(not (layout.joints[a] in AXIAL_JOINTS and layout.joints[b] in AXIAL_JOINTS)
                 for a, b in layout.tree())


class RigidBones(nn.Module):
    """(N, D, T, V) refined coordinates and (N, 1, T, 1) frame weights -> (N, D, T, V).

    The weights say which frames hold the person (1) and which are padding or an empty person
    slot (0); a held bone's length is its mean over the weighted frames. Joints not connected to
    the layout's centre keep their refined place.
    """

    def __init__(self, layout: Layout) -> None:
        super().__init__()
        tree = layout.tree()
        v, b = layout.num_joints, len(tree)
        # As matrices, so the layer is a few tensor operations rather than a Python loop over
        # the bones (a third of the operations of the whole network, and of its export time):
        # bones = coords @ to_bones; joint = its tree's root + the bones on the path to it.
        to_bones = torch.zeros(v, b)
        on_path = torch.zeros(b, v)
        from_root = torch.zeros(v, v)
        paths: dict[int, list[int]] = {layout.center: []}
        for i, (parent, child) in enumerate(tree):
            to_bones[child, i], to_bones[parent, i] = 1.0, -1.0
            paths[child] = paths[parent] + [i]       # parents come first in the tree
        for joint in range(v):
            if joint in paths:
                from_root[layout.center, joint] = 1.0
                on_path[paths[joint], joint] = 1.0
            else:                                    # not connected: keeps its refined place
                from_root[joint, joint] = 1.0
        self.register_buffer("to_bones", to_bones, persistent=False)
        self.register_buffer("on_path", on_path, persistent=False)
        self.register_buffer("from_root", from_root, persistent=False)
        self.register_buffer("held", torch.tensor(held_bones(layout)), persistent=False)

    def forward(self, coords: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        weight = weight[:, :, :, :1]                                          # (N, 1, T, 1)
        frames = weight.sum(2, keepdim=True).clamp(min=1.0)                   # (N, 1, 1, 1)
        bones = coords.matmul(self.to_bones)                                  # (N, D, T, B)
        length = torch.linalg.vector_norm(bones, dim=1, keepdim=True)         # (N, 1, T, B)
        mean = (length * weight).sum(2, keepdim=True) / frames                # (N, 1, 1, B)
        bones = torch.where(self.held, bones / length.clamp(min=1e-6) * mean, bones)
        return coords.matmul(self.from_root) + bones.matmul(self.on_path)
