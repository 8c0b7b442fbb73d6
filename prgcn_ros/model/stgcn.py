"""ST-GCN baseline (Yan, Xiong, Lin, AAAI 2018): ten spatial-temporal blocks, learnable edge
importance, for speed and size comparisons with PR-GCN (same graph and graph-conv code).

Two variants:
- ``yan2018``: the standard network of the ST-GCN paper (the speed baseline).
- ``prgcn_table1``: the network behind the ST-GCN row of the PR-GCN paper's Table I (3.5 M
  parameters) and the 16.0 GMAC reference: in the authors' repository their ST-GCN class adds a
  front-end to it. A pose shift (1x1 conv C->64, ST-GCN blocks 64->128->128, 1x1 conv ->C) is
  added to the normalised input, then position and motion (M_t = P_t - P_{t-1}) go through 1x1
  convs C->64 each and are fused by a 1x1 conv 128->64 into the other nine blocks (the first
  C->64 block is left out).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from prgcn_ros.model.gcn import SpatialConv
from prgcn_ros.model.gfm import temporal_motion
from prgcn_ros.model.graph import layout_from_spec, layout_spec, normalized_adjacency
from prgcn_ros.model.norm import DataNorm, FoldableBatchNorm2d
from prgcn_ros.model.tcn import fold_bn
from prgcn_ros.skeleton.layouts import Layout

# (out channels, temporal stride) of the ten blocks; the first has no residual.
BLOCKS = ((64, 1), (64, 1), (64, 1), (64, 1), (128, 2), (128, 1), (128, 1), (256, 2), (256, 1),
          (256, 1))
TEMPORAL_KERNEL = 9
VARIANTS = ("yan2018", "prgcn_table1")


class STGCNBlock(nn.Module):
    """Graph conv, then BN, ReLU, (9 x 1) temporal conv, BN; residual; ReLU.

    Eval mode folds every BN into the layer before it, as GraphConv does for PR-GCN, so the two
    networks are timed with the same inference treatment.
    """

    def __init__(self, in_channels: int, out_channels: int, adjacency: torch.Tensor,
                 stride: int = 1, residual: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        self.gcn = SpatialConv(in_channels, out_channels, adjacency)
        self.stride = stride
        self.pad = pad = (TEMPORAL_KERNEL - 1) // 2
        self.tcn = nn.Sequential(
            FoldableBatchNorm2d(out_channels), nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, (TEMPORAL_KERNEL, 1), (stride, 1), (pad, 0)),
            FoldableBatchNorm2d(out_channels), nn.Dropout(dropout, inplace=True))
        self.identity_residual = residual and in_channels == out_channels and stride == 1
        if residual and not self.identity_residual:
            self.residual: nn.Sequential | None = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=(stride, 1)),
                FoldableBatchNorm2d(out_channels))
        else:
            self.residual = None
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            y = self.tcn(self.gcn(x))
            if self.residual is not None:
                y = y + self.residual(x)
        else:
            scale, shift = self.tcn[0].scale_shift()
            h = torch.relu(self.gcn.fused(x, scale, shift, None, None))
            scale, shift = self.tcn[3].scale_shift()
            weight, bias = fold_bn(self.tcn[2].weight, self.tcn[2].bias, scale, shift)
            y = F.conv2d(h, weight, bias, (self.stride, 1), (self.pad, 0))
            if self.residual is not None:
                scale, shift = self.residual[1].scale_shift()
                weight, bias = fold_bn(self.residual[0].weight, self.residual[0].bias, scale,
                                       shift)
                y = y + F.conv2d(x, weight, bias, (self.stride, 1))
        if self.identity_residual:
            y = y + x
        return self.relu(y)


class STGCN(nn.Module):
    """Input (N, C, T, V, M); returns logits (N, classes). Persons are averaged, as in ST-GCN."""

    def __init__(self, num_classes: int, layout: str | Layout | dict, in_channels: int = 3,
                 dropout: float = 0.0, variant: str = "yan2018") -> None:
        super().__init__()
        layout = layout_from_spec(layout)
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, not {variant!r}")
        self.arch = {"name": "stgcn", "num_classes": int(num_classes),
                     "layout": layout_spec(layout), "in_channels": int(in_channels),
                     "dropout": float(dropout), "variant": variant}
        self.layout = layout
        adjacency = torch.from_numpy(normalized_adjacency(layout))
        self.data_norm = DataNorm(in_channels, layout.num_joints)
        width = BLOCKS[0][0]
        self.front: nn.ModuleDict | None = None
        if variant == "prgcn_table1":
            self.front = nn.ModuleDict({
                "shift": nn.Sequential(nn.Conv2d(in_channels, width, 1),
                                       STGCNBlock(width, 2 * width, adjacency),
                                       STGCNBlock(2 * width, 2 * width, adjacency),
                                       nn.Conv2d(2 * width, in_channels, 1)),
                "position": nn.Conv2d(in_channels, width, 1),
                "motion": nn.Conv2d(in_channels, width, 1),
                "fuse": nn.Conv2d(2 * width, width, 1)})
        blocks = []
        channels = in_channels if self.front is None else width
        for i, (out, stride) in enumerate(BLOCKS[0 if self.front is None else 1:]):
            first = i == 0 and self.front is None
            blocks.append(STGCNBlock(channels, out, adjacency, stride, residual=not first,
                                     dropout=0.0 if first else dropout))
            channels = out
        self.blocks = nn.Sequential(*blocks)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, v, m = x.shape
        x = self.data_norm(x.permute(0, 4, 1, 2, 3).reshape(n * m, c, t, v))
        if self.front is not None:
            x = x + self.front["shift"](x)
            x = self.front["fuse"](torch.cat([self.front["position"](x),
                                              self.front["motion"](temporal_motion(x))], dim=1))
        f = self.blocks(x)
        return self.classifier(f.mean(dim=(2, 3)).view(n, m, -1).mean(dim=1))
