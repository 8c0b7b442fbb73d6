"""Temporal aggregation module, TAM (paper Sec. III-F, Fig. 7).

Temporal average pooling, channel recalibration f * sigmoid(Conv(ReLU(Conv(Avg(f))))), and a last
graph convolution that aggregates spatial information. Global pooling and the classifier follow in
PRGCN (they are also what remains when TAM is switched off).
"""
from __future__ import annotations

import torch
from torch import nn

from prgcn_ros.model.gcn import GraphConv


class TAM(nn.Module):
    """(N, C, T, V) -> (N, out_channels, 1, V)."""

    def __init__(self, in_channels: int, adjacency: torch.Tensor, hidden: int = 256,
                 out_channels: int = 256, links: dict | None = None) -> None:
        super().__init__()
        self.squeeze = nn.Conv2d(in_channels, hidden, 1)
        self.excite = nn.Conv2d(hidden, in_channels, 1)
        self.gcn = GraphConv(in_channels, out_channels, adjacency, **(links or {}))
        self.out_channels = out_channels

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        f = f.mean(dim=2, keepdim=True)
        weights = torch.sigmoid(self.excite(torch.relu(self.squeeze(f.mean(dim=3, keepdim=True)))))
        return self.gcn(f * weights)
