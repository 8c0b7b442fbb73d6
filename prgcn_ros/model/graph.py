"""Skeleton graph: ST-GCN spatial partition and the normalised adjacency of the paper's eq. (2).

For a target joint i its 1-hop neighbourhood (i itself included) is split into K = 3 groups by the
neighbour's hop distance to the layout's centre: the same distance as i (i itself), closer to the
centre, farther from it. Each group's binary adjacency A_k is normalised as
Λ_k^-1/2 A_k Λ_k^-1/2 with Λ_k^ii = Σ_j A_k^ij + α, α = 0.001 (``"paper"``).

Taken literally, eq. (2) scales an edge by its source's degree *as a target* in the same group,
which is 0 for the centre in the "closer" group and for every leaf in the "farther" group: those
edges weigh α^-1/2 ≈ 31.6 against about 1 elsewhere, so the wrists, ankles and head dominate
each layer's output and its batch statistics. ``"balanced"`` takes the source's degree as a
source (the column sum, Λ_out^-1/2 A_k Λ_in^-1/2): every entry at most 1, as the paper's
"balance the contribution of each group" intends and ST-GCN's code (A D^-1) does.
"""
from __future__ import annotations

import numpy as np

from prgcn_ros.skeleton.layouts import Layout, get_layout

NUM_PARTITIONS = 3
ALPHA = 0.001
GRAPH_NORMS = ("paper", "balanced")


def hop_distances(num_joints: int, bones: tuple[tuple[int, int], ...] | list,
                  source: int) -> np.ndarray:
    """Hop distance along bones from ``source`` to every joint (inf where unreachable)."""
    neighbours: list[list[int]] = [[] for _ in range(num_joints)]
    for a, b in bones:
        neighbours[a].append(b)
        neighbours[b].append(a)
    dist = np.full(num_joints, np.inf)
    dist[source] = 0
    frontier = [source]
    while frontier:
        nxt = []
        for i in frontier:
            for j in neighbours[i]:
                if dist[j] == np.inf:
                    dist[j] = dist[i] + 1
                    nxt.append(j)
        frontier = nxt
    return dist


def spatial_partition(layout: str | Layout) -> np.ndarray:
    """Binary (K, V, V) of the spatial partition; [k, i, j] = 1: j feeds i in group k."""
    layout = get_layout(layout)
    v = layout.num_joints
    to_centre = hop_distances(v, layout.bones, layout.center)
    neighbours = np.eye(v, dtype=bool)
    for a, b in layout.bones:
        neighbours[a, b] = neighbours[b, a] = True
    groups = np.zeros((NUM_PARTITIONS, v, v))
    for i in range(v):
        for j in np.flatnonzero(neighbours[i]):
            if to_centre[j] == to_centre[i]:
                groups[0, i, j] = 1.0
            elif to_centre[j] < to_centre[i]:
                groups[1, i, j] = 1.0
            else:
                groups[2, i, j] = 1.0
    return groups


def normalized_adjacency(layout: str | Layout, alpha: float = ALPHA, norm: str = "paper"
                         ) -> np.ndarray:
    """Eq. (2) per group, float32 (K, V, V); rows are target joints. ``norm`` "paper":
    Λ_k^-1/2 A_k Λ_k^-1/2 as printed; "balanced": the source side by its column sum (above)."""
    if norm not in GRAPH_NORMS:
        raise ValueError(f"graph_norm must be one of {GRAPH_NORMS}, not {norm!r}")
    groups = spatial_partition(layout)
    degree = groups.sum(axis=2) + alpha  # (K, V): Λ_k^ii
    source = groups.sum(axis=1) + alpha if norm == "balanced" else degree
    return (degree[:, :, None] ** -0.5 * groups * source[:, None, :] ** -0.5).astype(np.float32)


def layout_spec(layout: str | Layout) -> str | dict:
    """How a model's arch dict names its layout: the registry name, or the full layout if custom."""
    layout = get_layout(layout)
    try:
        if get_layout(layout.name) == layout:
            return layout.name
    except ValueError:
        pass
    return {"name": layout.name, "joints": list(layout.joints),
            "bones": [list(bone) for bone in layout.bones], "center": layout.center}


# A custom layout's joints at most: a body model's hundreds of keypoints fit, a (joints)^2
# adjacency of a corrupt file's count would not.
MAX_JOINTS = 1000


def layout_from_spec(spec: str | dict | Layout) -> Layout:
    """Inverse of layout_spec; ValueError for a custom layout whose bones or centre are not
    among its joints, or that takes a built-in layout's name without being that layout (the
    node and the readers would use the built-in one)."""
    if not isinstance(spec, dict):
        return get_layout(spec)
    if len(spec["joints"]) > MAX_JOINTS:    # its graph would take (joints)^2 memory first
        raise ValueError(f"layout {spec['name']!r}: {len(spec['joints'])} joints, more than "
                         f"{MAX_JOINTS}")
    layout = Layout(name=str(spec["name"]), joints=tuple(str(j) for j in spec["joints"]),
                    bones=tuple((int(a), int(b)) for a, b in spec["bones"]),
                    center=int(spec["center"]))
    joints = range(layout.num_joints)
    outside = [bone for bone in layout.bones if bone[0] not in joints or bone[1] not in joints]
    if outside or layout.center not in joints:
        raise ValueError(f"layout {layout.name!r}: "
                         + (f"bone {list(outside[0])}" if outside else f"centre {layout.center}")
                         + f" is not among its {layout.num_joints} joints")
    try:
        builtin = get_layout(layout.name)
    except ValueError:
        return layout
    if (layout.joints, layout.bones, layout.center) != (builtin.joints, builtin.bones,
                                                         builtin.center):
        raise ValueError(f"layout {layout.name!r} differs from the built-in layout of that name "
                         f"(joints, bones or centre): give a custom layout a name of its own")
    return builtin


def layout_name(spec: str | dict | Layout) -> str:
    """The layout's name, whatever form the spec has."""
    if isinstance(spec, dict):
        return str(spec["name"])
    return get_layout(spec).name
