"""Matplotlib drawing of skeletons (mapping figure, demo pictures)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .layouts import Layout, get_layout


def plot_skeletons(ax, coords, conf, layout: str | Layout, label: str | None = None,
                   color=None, dims: Sequence[int] = (0, 1), min_confidence: float = 1e-6,
                   joint_names: bool = False, size: float = 18.0):
    """Draw one skeleton on a matplotlib Axes.

    coords (V, D) (numpy or tensor), conf (V,); only joints with conf >= ``min_confidence`` and
    bones between two such joints are drawn. ``dims`` picks the two coordinates to plot (x, y by
    default: a y-up sensor draws upright; for image keypoints call ``ax.invert_yaxis()``).
    ``label`` is written above the topmost drawn joint (invert the y axis before drawing
    image keypoints so "top" is known). Returns the list of artists.
    """
    layout = get_layout(layout)
    xy = np.asarray(coords, dtype=np.float64)[:, list(dims)]
    ok = np.asarray(conf, dtype=np.float64) >= min_confidence
    if len(xy) != layout.num_joints:
        raise ValueError(f"layout {layout.name!r} has {layout.num_joints} joints, got {len(xy)}")
    artists = []
    line_color = color if color is not None else "tab:blue"
    for a, b in layout.bones:
        if ok[a] and ok[b]:
            artists += ax.plot(xy[[a, b], 0], xy[[a, b], 1], "-", color=line_color, lw=2,
                               solid_capstyle="round")
    left = np.array(["left" in j for j in layout.joints])
    right = np.array(["right" in j for j in layout.joints])
    # Left joints filled, right joints hollow: mirrored mappings show up at a glance.
    for mask, face in ((ok & left, line_color), (ok & right, "white"), (ok & ~left & ~right,
                                                                          "black")):
        if mask.any():
            artists.append(ax.scatter(xy[mask, 0], xy[mask, 1], s=size, c=face,
                                      edgecolors=line_color, zorder=3))
    if joint_names:
        for j in np.flatnonzero(ok):
            artists.append(ax.annotate(layout.joints[j], xy[j], fontsize=5, alpha=0.7))
    if label and ok.any():
        top = xy[ok]
        inverted = ax.yaxis_inverted()
        y = top[:, 1].min() if inverted else top[:, 1].max()
        artists.append(ax.text(float(np.median(top[:, 0])), y, label, ha="center",
                               va="bottom", fontsize=8,
                               color=line_color))
    ax.set_aspect("equal", adjustable="datalim")
    return artists
