"""Matplotlib drawing of skeletons (mapping figure, demo pictures)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .layouts import Layout, get_layout


def plot_skeletons(ax, coords, conf, layout: str | Layout, label: str | None = None,
                   color=None, dims: Sequence[int] = (0, 1), min_confidence: float = 1e-6,
                   joint_names: bool = False, joint_index: bool = False, size: float = 18.0):
    """Draw one skeleton on a matplotlib Axes.

    coords (V, D) (numpy or tensor), conf (V,); only joints with conf >= ``min_confidence`` and
    bones between two such joints are drawn. ``dims`` picks the two coordinates to plot (x, y by
    default: a y-up sensor draws upright; for image keypoints call ``ax.invert_yaxis()``).
    ``joint_names`` / ``joint_index`` write each drawn joint's name / index in the layout next
    to it. ``label`` is written above the topmost drawn joint (invert the y axis before drawing
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
    if joint_names or joint_index:
        for j in np.flatnonzero(ok):
            text = layout.joints[j] if joint_names else str(j)
            artists.append(ax.annotate(text, xy[j], xytext=(2, 2), textcoords="offset points",
                                       fontsize=6, alpha=0.8))
    if label and ok.any():
        top = xy[ok]
        inverted = ax.yaxis_inverted()
        y = top[:, 1].min() if inverted else top[:, 1].max()
        artists.append(ax.text(float(np.median(top[:, 0])), y, label, ha="center",
                               va="bottom", fontsize=8,
                               color=line_color))
    ax.set_aspect("equal", adjustable="datalim")
    return artists


# --------------------------------------------------------------------------- mapping figure
def _by_name(coords: np.ndarray, conf: np.ndarray, source: str, target: str,
             alias: dict[str, str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Re-express one frame in another layout by joint name (joints it lacks are missing).

    Only for building example inputs of layouts we have no recordings of (azure32, body25,
    coco17) out of real frames; the real mappings live in :mod:`.mapping`.
    """
    src, tgt = get_layout(source), get_layout(target)
    alias = alias or {}
    out = np.zeros((tgt.num_joints, coords.shape[-1]), np.float32)
    out_conf = np.zeros(tgt.num_joints, np.float32)
    for j, name in enumerate(tgt.joints):
        name = alias.get(name, name)
        if src.has(name):
            out[j], out_conf[j] = coords[src.index(name)], conf[src.index(name)]
    return out, out_conf


def mapping_examples(data_dir) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """(source, target, coords (V, D), conf (V,)) for every mapping, from real frames: NTU
    A003 (Kinect v2, frame 79) and the Kinetics clip (OpenPose COCO-18, frame 1). Source
    layouts without a recording (azure32, body25, coco17) are the same real joints renamed into
    that layout."""
    from pathlib import Path

    from .readers import read_kinetics_json, read_ntu_skeleton

    data_dir = Path(data_dir)
    ntu = read_ntu_skeleton(data_dir / "ntu_samples" / "S002C001P003R001A003.skeleton")
    kin = read_kinetics_json(data_dir / "kinetics_skeleton" / "--33Lscn6sk.json")
    n_xyz, n_conf = ntu.coords[78, 0], ntu.confidence[78, 0]
    k_xy, k_conf = kin.coords[0, 0], kin.confidence[0, 0]
    body25 = _by_name(k_xy, k_conf, "coco18", "body25")
    hips = [get_layout("body25").index(h) for h in ("left_hip", "right_hip")]
    mid = get_layout("body25").index("mid_hip")
    body25[0][mid] = body25[0][hips].mean(0)
    body25[1][mid] = body25[1][hips].min()
    azure = _by_name(n_xyz, n_conf, "ntu25", "azure32",
                     {"pelvis": "spine_base", "spine_navel": "spine_mid",
                      "spine_chest": "spine_shoulder"})
    return [("body25", "coco18", *body25),
            ("coco17", "coco18", *_by_name(k_xy, k_conf, "coco18", "coco17")),
            ("ntu25", "kinect20", n_xyz, n_conf),
            ("azure32", "ntu25", *azure),
            ("azure32", "kinect20", *azure)]


def mapping_figure(data_dir):
    """A figure with one column per mapping: the source frame on top, the mapped one below.
    Joints are numbered in their layout's order; left joints are filled dots, right joints
    hollow; missing joints are not drawn. 3D frames are drawn as the sensor sees them (x
    negated: Kinect's x points to the sensor's left)."""
    import matplotlib.pyplot as plt

    from .mapping import map_joints

    examples = mapping_examples(data_dir)
    fig, axes = plt.subplots(2, len(examples), figsize=(3.2 * len(examples), 7.4))
    for col, (source, target, coords, conf) in enumerate(examples):
        mapped, mapped_conf = map_joints(coords, conf, source, target)
        for row, (layout, xy, c, color) in enumerate(
                ((source, coords, conf, "tab:gray"), (target, mapped, mapped_conf, "tab:blue"))):
            ax = axes[row, col]
            if xy.shape[-1] == 2:
                ax.invert_yaxis()          # image keypoints: y grows downwards
            else:
                xy = xy * np.array([-1.0, 1.0, 1.0])
            plot_skeletons(ax, xy, c, layout, color=color, joint_index=True)
            shown = int((c > 0).sum())
            title = (f"{layout} ({shown}/{get_layout(layout).num_joints} joints)" if row == 0
                     else f"-> {layout} ({shown}/{get_layout(layout).num_joints})")
            ax.set_title(title, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle("Joint mappings on real frames (Kinetics clip, NTU A003); numbers = joint "
                 "index, filled = left, hollow = right", fontsize=10)
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> int:
    """``python -m prgcn_ros.skeleton.plot OUT.png``: write the mapping figure."""
    import argparse

    import matplotlib

    matplotlib.use("Agg")  # a file is all we write
    from prgcn_ros.paths import data_dir

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("out", help="PNG to write, e.g. docs/mapping.png")
    args = parser.parse_args(argv)
    fig = mapping_figure(data_dir())
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
