"""A two-person interaction labelled live for both people (issue 12): prgcn-player replays an
SBU Kinect Interaction recording (two people, openni15) into a recognizer process running the
shipped SBU model, in a namespace of its own, over real DDS; /action labels both person ids
with an SBU interaction, each with the other's partner_id."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosutil import (
    REPO,
    Probe,
    process_log,
    recognizer_args,
    spin_until,
    start_process,
    stop_process,
    wait_for_recognizer_input,
)

from prgcn_msgs.msg import SkeletonArray
from prgcn_ros.live_data import local_id
from prgcn_ros.skeleton.labels import SBU_INTERACTION_CLASSES

pytestmark = pytest.mark.ros

SBU_MODEL = REPO / "models" / "prgcn_sbu_interaction.safetensors"
# Shaking hands, 22 frames at 15 fps; the player's ids for recording 0 are 0 and 1.
RECORDING = Path("sbu_interaction") / "s01s02" / "07" / "001" / "skeleton_pos.txt"
NAMESPACE = "/sbu"
PLAYER_FRAME = "kinect_sbu"
# The recording's class (folder 07); pair s01s02 is in the shipped model's test fold (fold 1).
LABEL = SBU_INTERACTION_CLASSES[6]


def offline_scores(model: Path, recording: Path) -> tuple[dict[str, float], int]:
    """What prgcn-eval gives the whole clip (the model's own windowing, preprocessing and pair
    orders), calibrated with the model's temperature as the node publishes it: class name ->
    score, and the clip's frame count."""
    from prgcn_ros.model.io import load_model
    from prgcn_ros.skeleton.readers import read_sbu_interaction
    from prgcn_ros.training.calibration import scaled, temperature_of
    from prgcn_ros.training.datasets import SequenceDataset
    from prgcn_ros.training.evaluate import config_for_model, predict

    net, meta = load_model(model)
    clip = read_sbu_interaction(recording)
    cfg = config_for_model(meta["training"]["config"], meta)
    scores, _ = predict(net, SequenceDataset([lambda: clip], [0], ["clip"], meta["class_names"],
                                             "one clip"), cfg)
    scores = scaled(scores, temperature_of(meta))
    return dict(zip(meta["class_names"], scores[0].tolist())), clip.num_frames


def replay_sbu_once(model: Path, recording: Path, log_dir: Path) -> tuple[dict[int, object], int]:
    """Play ``recording`` once into a recognizer running ``model``; returns the Action per id
    within the recording (0, 1) of the pass on the player's last message, and how many messages
    the player sent. Needs an initialised rclpy."""
    # smoothing 1: the last /action is the last pass alone, not a mean with earlier windows.
    recognizer = start_process(recognizer_args(model, "diagnostics_period_s:=0.25",
                                               "smoothing:=1")
                               + ["-r", f"__ns:={NAMESPACE}"], log_dir / "recognizer.log")
    probe = player = None
    try:
        probe = Probe(ns=NAMESPACE)
        # The player's messages too: its last stamp marks the final pass (reliable, as the
        # player publishes, so that none is missed here).
        heard: list[SkeletonArray] = []
        probe.node.create_subscription(SkeletonArray, f"{NAMESPACE}/skeletons", heard.append,
                                       QoSProfile(depth=100,
                                                  reliability=ReliabilityPolicy.RELIABLE))
        wait_for_recognizer_input(probe, timeout_s=120)

        def played() -> list[SkeletonArray]:   # (the probe's own empty messages left out)
            return [m for m in heard if m.header.frame_id == PLAYER_FRAME]

        # Once, not looped: a looped window spans the recording's end and start, which the
        # model never saw; the last pass then holds the whole recording, as prgcn-eval does.
        # --subscribers 2: the recognizer and this listener, so that no frame goes unheard.
        player = start_process(["-m", "prgcn_ros.nodes.player", str(recording),
                                "--subscribers", "2", "--wait", "60",
                                "--topic", f"{NAMESPACE}/skeletons", "--ros-args", "-p",
                                f"frame_id:={PLAYER_FRAME}"], log_dir / "player.log")

        def logs() -> str:
            return (f"\nrecognizer:\n{process_log(recognizer)}\nplayer:\n"
                    f"{process_log(player)}")
        assert spin_until(probe.node, lambda: player.poll() is not None, 120), logs()
        assert player.returncode == 0, logs()
        assert played(), logs()
        last = played()[-1].header.stamp
        return {pid: probe.wait_action(pid, timeout_s=30, stamp=last)[1]
                for pid in (0, 1)}, len(played())
    finally:
        if player is not None:
            stop_process(player)
        if probe is not None:
            probe.node.destroy_node()
        code = stop_process(recognizer)
        assert code == 0, process_log(recognizer)


def test_an_sbu_interaction_replayed_by_the_player_is_labelled_for_both_people(
        ros_context, data_dir, tmp_path):
    assert SBU_MODEL.is_file(), f"the shipped model {SBU_MODEL} is missing"
    offline, frames = offline_scores(SBU_MODEL, data_dir / RECORDING)
    actions, sent = replay_sbu_once(SBU_MODEL, data_dir / RECORDING, tmp_path)
    assert sent == frames
    for pid, action in actions.items():
        assert local_id(action.person_id) == pid
        # The final pass saw every frame of the recording (nothing lost or dropped on the way).
        assert action.num_frames == frames, action
        assert action.label == LABEL and action.top_labels[0] == LABEL, action.label
    # One sample for the two: one interaction label, each naming the other as partner.
    assert actions[0].label == actions[1].label
    assert actions[0].partner_id == actions[1].person_id
    assert actions[1].partner_id == actions[0].person_id
    assert list(actions[0].top_scores) == list(actions[1].top_scores)
    # ...and the scores prgcn-eval gives the clip (the same window, pair orders, model).
    expected = [offline[name] for name in actions[0].top_labels]
    np.testing.assert_allclose(np.log(actions[0].top_scores), np.log(expected), atol=1e-3)
