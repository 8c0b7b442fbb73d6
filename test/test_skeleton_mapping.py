"""Joint mappings on real frames, and the mapping figure."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from prgcn_ros.skeleton.layouts import LAYOUTS, get_layout
from prgcn_ros.skeleton.mapping import (
    available_mappings,
    describe_mapping,
    has_mapping,
    map_joints,
)
from prgcn_ros.skeleton.plot import _by_name, mapping_examples, mapping_figure


def test_ntu25_to_kinect20_keeps_hands_elbows_head(ntu):
    coords, conf = map_joints(ntu.coords, ntu.confidence, "ntu25", "kinect20")
    assert coords.shape == (*ntu.coords.shape[:2], 20, 3) and conf.shape == coords.shape[:3]
    src, tgt = get_layout("ntu25"), get_layout("kinect20")
    for joint in ("left_hand", "right_hand", "left_elbow", "right_elbow", "head",
                  "left_wrist", "right_ankle"):
        assert np.array_equal(coords[..., tgt.index(joint), :],
                              ntu.coords[..., src.index(joint), :])
        assert np.array_equal(conf[..., tgt.index(joint)], ntu.confidence[..., src.index(joint)])
    assert np.array_equal(coords[..., tgt.index("hip_center"), :],
                          ntu.coords[..., src.index("spine_base"), :])
    assert (conf > 0).mean() > 0.9   # every kinect20 joint has a source


def test_coco17_to_coco18_neck_between_shoulders(kinetics):
    frames = [(t, m) for t in range(0, kinetics.num_frames, 5)
              for m in range(kinetics.num_persons)]
    offsets = []
    for t, m in frames:
        xy, conf = kinetics.coords[t, m], kinetics.confidence[t, m]
        c17, k17 = _by_name(xy, conf, "coco18", "coco17")
        c18, k18 = map_joints(c17, k17, "coco17", "coco18")
        layout = get_layout("coco18")
        ls, rs, neck = (layout.index(j) for j in ("left_shoulder", "right_shoulder", "neck"))
        assert k18[neck] == min(k17[5], k17[6])
        if k18[neck] > 0:
            assert np.allclose(c18[neck], (xy[ls] + xy[rs]) / 2)
            # and near where OpenPose put its own neck, relative to the shoulder width
            if conf[neck] > 0.3:
                width = np.linalg.norm(xy[ls] - xy[rs])
                offsets.append(np.linalg.norm(c18[neck] - xy[neck]) / width)
        others = [j for j in range(18) if j != neck]
        assert np.array_equal(c18[others], xy[others] * (conf[others] > 0)[:, None]) or \
            np.array_equal(c18[others], xy[others])
    assert len(offsets) > 20 and np.median(offsets) < 0.1


def test_body25_to_coco18_by_name(kinetics):
    xy, conf = kinetics.coords[0, 0], kinetics.confidence[0, 0]
    b25, k25 = _by_name(xy, conf, "coco18", "body25")
    c18, k18 = map_joints(b25, k25, "body25", "coco18")
    assert np.array_equal(c18, xy) and np.array_equal(k18, conf)


def test_azure32_to_kinect20_is_the_composition(ntu):
    xyz, conf = ntu.coords[10, 0], ntu.confidence[10, 0]
    azure, k_azure = _by_name(xyz, conf, "ntu25", "azure32",
                              {"pelvis": "spine_base", "spine_navel": "spine_mid",
                               "spine_chest": "spine_shoulder"})
    via_ntu = map_joints(*map_joints(azure, k_azure, "azure32", "ntu25"), "ntu25", "kinect20")
    direct = map_joints(azure, k_azure, "azure32", "kinect20")
    assert np.array_equal(direct[0], via_ntu[0]) and np.array_equal(direct[1], via_ntu[1])
    # The real NTU frame survives the round through azure32 for every kinect20 joint.
    assert np.array_equal(direct[0], map_joints(xyz, conf, "ntu25", "kinect20")[0])
    assert describe_mapping("azure32", "kinect20")[get_layout("kinect20").index("hip_center")] \
        == "pelvis"
    assert describe_mapping("coco17", "coco18")[1] == "mid(left_shoulder, right_shoulder)"
    # azure32 -> ntu25: the hand tips and thumbs exist in both.
    assert None not in describe_mapping("azure32", "ntu25")


def test_identity_and_errors():
    xy, conf = map_joints(np.ones((4, 18, 2), np.float32), np.ones((4, 18), np.float32),
                          "coco18", "coco18")
    assert xy.shape == (4, 18, 2)
    # coco18 -> body25 is not a mapping (mid_hip, feet); the error names both layouts
    with pytest.raises(ValueError, match="'coco18'.*'body25'"):
        map_joints(xy, conf, "coco18", "body25")
    with pytest.raises(ValueError, match="'kinect20'.*'ntu25'"):
        map_joints(np.zeros((20, 3)), np.zeros(20), "kinect20", "ntu25")
    assert not has_mapping("kinect20", "ntu25") and has_mapping("azure32", "kinect20")
    assert has_mapping("body25", "body25")
    # Where a midpoint lacks one side, the joint is missing.
    c17 = np.ones((17, 2), np.float32)
    k17 = np.ones(17, np.float32)
    k17[5] = 0
    _, k18 = map_joints(c17, k17, "coco17", "coco18")
    assert k18[1] == 0


@pytest.mark.parametrize("pair", available_mappings())
def test_torch_matches_numpy(pair):
    source, target = pair
    layout = get_layout(source)
    rng = np.random.default_rng(0)
    coords = rng.normal(size=(3, 2, layout.num_joints, 3 if source in ("ntu25", "azure32")
                                                       else 2)).astype(np.float32)
    conf = rng.uniform(0, 1, size=coords.shape[:3]).astype(np.float32)
    expected = map_joints(coords, conf, source, target)
    got = map_joints(torch.from_numpy(coords), torch.from_numpy(conf), source, target)
    assert isinstance(got[0], torch.Tensor)
    assert np.allclose(got[0].numpy(), expected[0]) and np.allclose(got[1].numpy(), expected[1])
    assert expected[0].shape[-2] == get_layout(target).num_joints


def test_every_layout_known():
    assert {s for s, _ in available_mappings()} | {t for _, t in available_mappings()} <= \
        set(LAYOUTS)


def test_mapping_figure(data_dir, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from prgcn_ros.skeleton.plot import plot_skeletons

    fig = mapping_figure(data_dir)
    out = tmp_path / "mapping.png"
    fig.savefig(out, dpi=80)
    plt.close(fig)
    assert out.stat().st_size > 20_000
    # One PNG per mapping as well, drawn with the reusable helper.
    for source, target, coords, conf in mapping_examples(data_dir):
        mapped, mapped_conf = map_joints(coords, conf, source, target)
        fig, ax = plt.subplots(figsize=(3, 4))
        if coords.shape[-1] == 2:
            ax.invert_yaxis()
        plot_skeletons(ax, coords, conf, source, color="gray")
        artists = plot_skeletons(ax, mapped, mapped_conf, target, label=f"{source}->{target}")
        path = tmp_path / f"{source}_to_{target}.png"
        fig.savefig(path, dpi=60)
        plt.close(fig)
        assert path.stat().st_size > 2_000 and len(artists) > len(get_layout(target).bones) // 2


def test_target_joints_without_source_are_missing(monkeypatch):
    from prgcn_ros.skeleton import mapping

    # None of the shipped tables lacks a joint, so check the rule on a throwaway one.
    monkeypatch.setitem(mapping._DIRECT, ("kinect20", "ntu25"), {})
    mapping._table.cache_clear()
    try:
        coords = np.arange(60, dtype=np.float32).reshape(20, 3) + 1
        xyz, conf = map_joints(coords, np.ones(20, np.float32), "kinect20", "ntu25")
        ntu = get_layout("ntu25")
        for joint in ("spine_base", "neck", "left_thumb"):
            assert conf[ntu.index(joint)] == 0 and not xyz[ntu.index(joint)].any()
        assert conf[ntu.index("head")] == 1
        assert np.array_equal(xyz[ntu.index("head")], coords[get_layout("kinect20").index("head")])
    finally:
        mapping._table.cache_clear()
