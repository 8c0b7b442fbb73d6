"""Issue 12 in the live node, across processes over real DDS (no mocks): "unknown" below a
live min_confidence with the top-k still listed, and a model of two-person samples labelling
the two people of a pair together, each with the other's partner_id. One recognizer process
(a small random model with max_persons 2 and a calibration temperature) serves the module;
each test has its own frame_id and person ids. (test_nodes_sbu.py: SBU recordings replayed
into the shipped interaction model.)"""
from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType, ParameterValue
from rcl_interfaces.srv import DescribeParameters, GetParameters, SetParameters
from rosutil import (
    CLASSES,
    Probe,
    connected_probe,
    rclpy_session,
    recognizer_process,
    standing,
)
from test_nodes_streams import _call

from prgcn_ros.live_data import NO_PARTNER, UNKNOWN_CLASS_INDEX, UNKNOWN_LABEL, local_id
from prgcn_ros.model.build import build_model
from prgcn_ros.model.io import save_model

pytestmark = pytest.mark.ros

_ids = itertools.count(5000, 10)
# Flattens the random model's scores to about 1/4 each: "unknown" under the start-up threshold
# whatever the input (uncalibrated, a random network is often 0.999 sure).
TEMPERATURE = 100.0
START_THRESHOLD = 0.9


def make_pair_model(path: Path) -> Path:
    """A small random PR-GCN of two-person samples (M = 2, as SBU's), with a temperature."""
    torch.manual_seed(0)
    model = build_model({"name": "prgcn", "num_classes": len(CLASSES), "layout": "kinect20"})
    save_model(path, model, {"class_names": CLASSES, "max_persons": 2,
                             "preprocess": {"center": "first_frame", "scale": "torso"},
                             "window": {"mode": "resample", "length": 8}, "fps": 30.0,
                             "calibration": {"temperature": TEMPERATURE}})
    return path


@pytest.fixture(scope="module")
def recognizer(tmp_path_factory):
    folder = tmp_path_factory.mktemp("interactions")
    model = make_pair_model(folder / "pairs.safetensors")
    with recognizer_process(
            model, folder / "recognizer.log", "min_frames:=4", "window:=16",
            "track_timeout_s:=0.6", "smoothing:=1", "diagnostics_period_s:=0.25",
            "max_input_hz:=100.0", f"min_confidence:={START_THRESHOLD}") as proc:
        yield proc


@pytest.fixture(scope="module")
def probe(recognizer):
    with rclpy_session(), connected_probe(recognizer) as probe:
        yield probe


def _set_min_confidence(probe: Probe, value: float | int | str):
    setter = probe.node.create_client(SetParameters, "/prgcn_recognizer/set_parameters")
    if isinstance(value, str):
        given = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value)
    elif isinstance(value, int):           # as `ros2 param set ... min_confidence 0` sends it
        given = ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=value)
    else:
        given = ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value)
    param = ParameterMsg(name="min_confidence", value=given)
    return _call(probe, setter, SetParameters.Request(parameters=[param])).results[0]


def test_below_min_confidence_action_says_unknown_and_a_live_set_changes_it(probe):
    describe = probe.node.create_client(DescribeParameters,
                                        "/prgcn_recognizer/describe_parameters")
    found = _call(probe, describe, DescribeParameters.Request(names=["min_confidence"]))
    spec = found.descriptors[0]
    assert not spec.read_only and "unknown" in spec.description
    assert (spec.floating_point_range[0].from_value,
            spec.floating_point_range[0].to_value) == (0.0, 1.0)

    pid = next(_ids)
    last = probe.play({pid: standing(7)}, 5, frame_id="cam_unknown")
    _, action = probe.wait_action(pid, stamp=last)
    assert action.label == UNKNOWN_LABEL and action.class_index == UNKNOWN_CLASS_INDEX
    # The best guesses are still there, calibrated (T = 100: near 1/4 each).
    assert sorted(action.top_labels) == sorted(CLASSES)
    assert list(action.top_scores) == sorted(action.top_scores, reverse=True)
    assert action.confidence == pytest.approx(action.top_scores[0])
    assert action.confidence < START_THRESHOLD and action.top_scores[-1] > 0.1
    assert action.partner_id == NO_PARTNER

    for bad in (1.5, 2, "high"):                          # outside 0..1, not a number
        refused = _set_min_confidence(probe, bad)
        assert not refused.successful and refused.reason
    try:
        assert _set_min_confidence(probe, 0).successful   # a whole number is a float too
        # ... stored as one, and still described as one after the refused sets above.
        getter = probe.node.create_client(GetParameters, "/prgcn_recognizer/get_parameters")
        value = _call(probe, getter, GetParameters.Request(names=["min_confidence"])).values[0]
        assert (value.type, value.double_value) == (ParameterType.PARAMETER_DOUBLE, 0.0)
        found = _call(probe, describe, DescribeParameters.Request(names=["min_confidence"]))
        assert found.descriptors[0].type == ParameterType.PARAMETER_DOUBLE
        last = probe.play({pid: standing(7)}, 3, frame_id="cam_unknown")
        _, action = probe.wait_action(pid, stamp=last)
        assert action.label in CLASSES and action.label == action.top_labels[0]
        assert action.class_index == CLASSES.index(action.label)
    finally:
        assert _set_min_confidence(probe, START_THRESHOLD).successful


def test_two_people_close_together_share_one_label_with_each_others_partner_id(probe):
    first, second, far = next(_ids), next(_ids), next(_ids)
    people = {first: standing(1), second: standing(2, offset=1.0),
              far: standing(3, offset=8.0)}            # 1 m apart, and one 8 m away
    last = probe.play(people, 6, frame_id="cam_pairs")
    got = {pid: probe.wait_action(pid, stamp=last)[1] for pid in people}
    assert got[first].partner_id == got[second].person_id
    assert got[second].partner_id == got[first].person_id
    assert got[far].partner_id == NO_PARTNER
    # One sample, one result: the same label and scores for both.
    assert got[first].label == got[second].label
    assert list(got[first].top_labels) == list(got[second].top_labels)
    assert list(got[first].top_scores) == list(got[second].top_scores)
    assert {local_id(got[pid].person_id) for pid in people} == set(people)
