"""Skeleton graphs: ST-GCN spatial partition and the normalised adjacency of eq. (2)."""
from __future__ import annotations

import numpy as np
import pytest

from prgcn_ros.model.graph import (
    ALPHA,
    hop_distances,
    layout_from_spec,
    layout_name,
    layout_spec,
    normalized_adjacency,
    spatial_partition,
)
from prgcn_ros.skeleton.layouts import LAYOUTS, Layout, get_layout


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_partition_splits_each_one_hop_neighbourhood_once(name):
    layout = get_layout(name)
    groups = spatial_partition(layout)
    v = layout.num_joints
    assert groups.shape == (3, v, v)
    neighbours = np.eye(v)
    for a, b in layout.bones:
        neighbours[a, b] = neighbours[b, a] = 1
    np.testing.assert_array_equal(groups.sum(axis=0), neighbours)  # every pair in exactly one group
    np.testing.assert_array_equal(np.diag(groups[0]), np.ones(v))  # the joint itself: group 0
    # j is closer to the centre than i exactly when i is farther than j.
    np.testing.assert_array_equal(groups[1], groups[2].T)
    assert groups[1, layout.center].sum() == 0  # nothing is closer to the centre than the centre


def test_coco18_groups_follow_distance_to_neck():
    layout = get_layout("coco18")
    groups = spatial_partition(layout)
    elbow, shoulder, wrist = (layout.index(j) for j in ("right_elbow", "right_shoulder",
                                                         "right_wrist"))
    assert groups[1, elbow, shoulder] == 1  # shoulder is closer to the neck than the elbow
    assert groups[2, elbow, wrist] == 1  # wrist is farther
    dist = hop_distances(layout.num_joints, layout.bones, layout.center)
    assert dist[layout.index("neck")] == 0 and dist[wrist] == 3


@pytest.mark.parametrize("name", ["coco18", "ntu25", "kinect20"])
def test_normalisation_is_eq_2(name):
    groups = spatial_partition(name)
    adjacency = normalized_adjacency(name)
    assert adjacency.dtype == np.float32
    for k in range(3):
        degree = groups[k].sum(axis=1) + ALPHA
        expected = np.diag(degree ** -0.5) @ groups[k] @ np.diag(degree ** -0.5)
        np.testing.assert_allclose(adjacency[k], expected, rtol=1e-6)
    # Self group of an isolated-from-its-level joint: 1 / (1 + alpha).
    assert adjacency[0, 0, 0] == pytest.approx(1 / (1 + ALPHA), rel=1e-6)


def test_custom_layout_round_trips_through_spec():
    custom = Layout(name="stick3", joints=("a", "b", "c"), bones=((0, 1), (1, 2)), center=1)
    spec = layout_spec(custom)
    assert isinstance(spec, dict) and layout_name(spec) == "stick3"
    assert layout_from_spec(spec) == custom
    assert layout_spec("ntu25") == "ntu25" and layout_name("ntu25") == "ntu25"


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_balanced_normalisation_keeps_every_edge_at_most_one(name):
    """Eq. (2) as printed weighs the centre's and the leaves' edges α^-1/2 (their degree in
    the group is 0): "balanced" divides the source side by its degree as a source instead, so
    no entry exceeds 1; the self group, where both degrees are the same, is unchanged."""
    groups = spatial_partition(name)
    paper = normalized_adjacency(name)
    balanced = normalized_adjacency(name, norm="balanced")
    assert paper.max() == pytest.approx(ALPHA ** -0.5, rel=1e-3)
    assert balanced.max() <= 1.0 and ((balanced > 0) == (groups > 0)).all()
    np.testing.assert_allclose(balanced[0], paper[0], rtol=1e-6)
    for k in range(3):
        out_degree = groups[k].sum(axis=1) + ALPHA
        in_degree = groups[k].sum(axis=0) + ALPHA
        expected = np.diag(out_degree ** -0.5) @ groups[k] @ np.diag(in_degree ** -0.5)
        np.testing.assert_allclose(balanced[k], expected, rtol=1e-6)
    with pytest.raises(ValueError, match="graph_norm"):
        normalized_adjacency(name, norm="sym")
