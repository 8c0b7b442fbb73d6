"""Pose refinement module, PRM (paper Sec. III-D, Fig. 4).

Estimates an offset per joint coordinate from the normalised poses, with 1x1 convolutions, two graph
convolutions (spatial relations) and one temporal convolution (temporal consistency). The offset is
emitted in the input's units, so refined = input + offset needs no de-normalisation.
"""
from __future__ import annotations

import torch
from torch import nn

from prgcn_ros.model.gcn import GraphConv
from prgcn_ros.model.norm import DataNorm
from prgcn_ros.model.tcn import TemporalConv


class PRM(nn.Module):
    """(N, C, T, V) poses -> (N, refine_channels, T, V) offsets for the leading channels."""

    def __init__(self, in_channels: int, refine_channels: int, adjacency: torch.Tensor) -> None:
        super().__init__()
        self.norm = DataNorm(in_channels, adjacency.shape[-1])
        self.embed = nn.Conv2d(in_channels, 32, 1)
        self.gcn1 = GraphConv(32, 32, adjacency)
        self.tcn = TemporalConv(32, 64)
        self.gcn2 = GraphConv(64, 64, adjacency)
        self.offset = nn.Conv2d(64, refine_channels, 1)
        # Small, not zero: the refinement starts close to the identity while gradients of the
        # classification loss still reach every PRM layer from the first step.
        nn.init.normal_(self.offset.weight, std=1e-3)
        nn.init.zeros_(self.offset.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = torch.relu(self.embed(self.norm(x)))
        return self.offset(self.gcn2(self.tcn(self.gcn1(f))))
