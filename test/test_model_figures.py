"""Architecture fidelity: parameters and MACs against the figures measured on the authors' code."""
from __future__ import annotations

import json

import pytest

from prgcn_ros.model import PRGCN, STGCN
from prgcn_ros.model.profile import count_macs, count_parameters, main, profile
from prgcn_ros.skeleton.layouts import get_layout

KINETICS_CLIP = (1, 3, 300, 18, 2)


def _within(value: float, reference: float, tolerance: float) -> bool:
    return abs(value - reference) <= tolerance * reference


def test_prgcn_parameters_match_the_reference():
    # The reference has one data BN (2·C·V parameters); ours has a second one inside the PRM, as
    # the offsets are predicted from normalised poses but added in input units: +108 / +150.
    # The reference's PRM refines all three channels of image keypoints, the score included.
    kinetics = count_parameters(PRGCN(400, "coco18", refine_channels=3))
    ntu = count_parameters(PRGCN(60, "ntu25"))
    assert _within(kinetics, 580_759, 0.03), kinetics
    assert _within(ntu, 501_548, 0.03), ntu
    assert kinetics - 580_759 == 2 * 3 * 18 and ntu - 501_548 == 2 * 3 * 25
    bare = count_parameters(PRGCN(400, "coco18", use_prm=False, use_tam=False))
    assert _within(bare, 0.3e6, 0.05), bare  # paper Table I: 0.3 M


def test_prgcn_macs_match_the_reference():
    macs, per_op = count_macs(PRGCN(400, "coco18"), KINETICS_CLIP)
    assert _within(macs, 1.81e9, 0.10), macs
    # The graph convolutions' matrix products are counted, not only the convolutions.
    assert per_op.get("aten.mm", 0) + per_op.get("aten.bmm", 0) > 0.05 * macs


def test_ablations_cost_less():
    full, _ = count_macs(PRGCN(400, "coco18"), KINETICS_CLIP)
    bare, _ = count_macs(PRGCN(400, "coco18", use_prm=False, use_tam=False), KINETICS_CLIP)
    sequential = PRGCN(400, "coco18", fusion="sequential")
    assert bare < full and count_parameters(sequential) < count_parameters(PRGCN(400, "coco18"))


def _stgcn_macs_by_hand(frames: int, joints: int, persons: int, k: int = 3) -> int:
    """Standard ST-GCN: 1x1 graph conv, dense graph product, 9x1 temporal conv, residual convs."""
    blocks = ((3, 64, 1), (64, 64, 1), (64, 64, 1), (64, 64, 1), (64, 128, 2), (128, 128, 1),
              (128, 128, 1), (128, 256, 2), (256, 256, 1), (256, 256, 1))
    total, t = 0, frames
    for cin, cout, stride in blocks:
        total += cin * cout * k * t * joints + k * joints * joints * cout * t  # graph conv
        t_out = (t - 1) // stride + 1
        total += cout * cout * 9 * t_out * joints  # temporal conv
        if cin != cout and cin != 3:
            total += cin * cout * t_out * joints  # residual projection
        t = t_out
    return persons * total + 256 * 400


def test_stgcn_figures():
    model = STGCN(400, "coco18")
    params = count_parameters(model)
    assert 3.1e6 <= params <= 3.5e6, params
    coco, _ = count_macs(model, KINETICS_CLIP)
    # 12.13 G: every layer is counted (plus ~0.1 M for folding BNs into weights in eval mode).
    assert coco == pytest.approx(_stgcn_macs_by_hand(300, 18, 2), rel=1e-4)
    prgcn, _ = count_macs(PRGCN(400, "coco18"), KINETICS_CLIP)
    assert coco / prgcn > 6


def test_stgcn_of_the_prgcn_paper_matches_the_reference():
    # The 16.0 GMAC reference and Table I's 3.5 M are the authors' ST-GCN with its front-end.
    model = STGCN(400, "coco18", variant="prgcn_table1")
    assert _within(count_parameters(model), 3.5e6, 0.03), count_parameters(model)
    macs, per_op = count_macs(model, KINETICS_CLIP)
    assert _within(macs, 16.0e9, 0.10), macs
    # Without the graph products, as counters that see only convolutions report: Table I 15.6 G.
    assert _within(macs - per_op["aten.baddbmm"], 15.6e9, 0.03)
    assert count_parameters(model) > count_parameters(STGCN(400, "coco18"))
    with pytest.raises(ValueError, match="variant"):
        STGCN(400, "coco18", variant="no_such_variant")


def test_profile_json(capsys):
    assert main(["--model", "prgcn", "--layout", "coco18", "--classes", "400", "--frames", "300",
                 "--persons", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert isinstance(result["params"], int) and isinstance(result["macs"], int)
    assert _within(result["params"], 580_759, 0.03) and _within(result["macs"], 1.81e9, 0.10)
    assert main(["--model", "prgcn", "--layout", "ntu25", "--classes", "60", "--json"]) == 0
    assert _within(json.loads(capsys.readouterr().out)["params"], 501_548, 0.03)
    assert main(["--model", "stgcn", "--no-prm"]) == 0  # PR-GCN switches are ignored for ST-GCN
    assert "stgcn on coco18" in capsys.readouterr().out
    assert main(["--model", "stgcn", "--stgcn-variant", "prgcn_table1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert _within(result["macs"], 16.0e9, 0.10) and result["architecture"]["variant"] == (
        "prgcn_table1")


def test_profile_counts_ablations_and_2d():
    bare = profile({"name": "prgcn", "num_classes": 400, "layout": "coco18", "use_prm": False,
                    "use_tam": False}, frames=300, persons=2)
    assert _within(bare["params"], 0.3e6, 0.05)
    twod = profile({"name": "prgcn", "num_classes": 400, "layout": "coco18",
                    "refine_channels": 2}, frames=300, persons=2)
    assert twod["params"] == count_parameters(PRGCN(400, "coco18", refine_channels=3)) - 65
    # (64 + 1 fewer offsets), which is what a 2D layout refines by default.
    assert twod["params"] == count_parameters(PRGCN(400, "coco18"))
    assert twod["input_shape"] == [1, 3, 300, get_layout("coco18").num_joints, 2]


def test_profile_rejects_bad_arguments():
    with pytest.raises(SystemExit):
        main(["--frames", "0"])
    assert main(["--layout", "no_such_layout"]) == 2
