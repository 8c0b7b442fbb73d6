"""prgcn-player replays NW-UCLA, UTD-MHAD and SBU Kinect Interaction recordings over DDS; an
SBU recording arrives as two people with their own ids in every message."""
from __future__ import annotations

import numpy as np
import pytest
from rclpy.node import Node
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from rosutil import play_to_end

from prgcn_msgs.msg import SkeletonArray
from prgcn_ros.skeleton.readers import read_recording

pytestmark = [pytest.mark.slow, pytest.mark.ros]


def test_player_replays_the_new_datasets(ros_context, data_dir, tmp_path):
    recordings = [data_dir / "sbu_interaction" / "s01s02" / "07" / "001" / "skeleton_pos.txt",
                  data_dir / "utd_mhad" / "a24_s1_t1_skeleton.mat",
                  data_dir / "nw_ucla" / "a05_s01_e00_v01.json"]
    for path in recordings:
        if not path.is_file():
            pytest.skip(f"{path} missing")
    node = Node("player_datasets_listener")
    received: list[SkeletonArray] = []
    qos = QoSProfile(depth=1000, reliability=qos_profile_sensor_data.reliability,
                     durability=qos_profile_sensor_data.durability)
    node.create_subscription(SkeletonArray, "/player_datasets", received.append, qos)
    try:
        play_to_end(node, received, ["-m", "prgcn_ros.nodes.player", *map(str, recordings),
                                     "--topic", "/player_datasets", "--parallel", "3",
                                     "--rate", "2"], tmp_path / "player.log", 90)
    finally:
        node.destroy_node()
    sbu = [m for m in received if m.layout == "openni15"]
    kinect = [m for m in received if m.layout == "kinect20"]
    assert sbu and kinect
    # The two people of the interaction: ids 0 and 1 (recording 0), both in each message.
    assert {tuple(sorted(s.id for s in m.skeletons)) for m in sbu} == {(0, 1)}
    assert {len(s.keypoints) for m in sbu for s in m.skeletons} == {15}
    assert {s.id for m in kinect for s in m.skeletons} == {100, 200}
    # Coordinates as the reader gives them (metres): the first SBU frame that arrived matches
    # one of the recording's frames exactly.
    seq = read_recording(recordings[0])
    first = sbu[0]
    got = np.array([[[k.position.x, k.position.y, k.position.z] for k in s.keypoints]
                    for s in sorted(first.skeletons, key=lambda s: s.id)], np.float32)
    assert min(np.abs(seq.coords[t] - got).max() for t in range(seq.num_frames)) < 1e-5
    # Best effort over loopback: nearly every frame of the SBU clip arrives.
    assert len(sbu) >= 0.8 * seq.num_frames
