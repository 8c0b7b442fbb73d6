"""Graph convolution (paper eq. (2) and Fig. 3 left).

SpatialConv is the bare operation f_out = Σ_k (Â_k ⊙ M_k) f_in W_k, shared with the ST-GCN baseline:
Â_k is the normalised spatial-partition adjacency (a buffer), M_k a learned attention map per layer
(initialised to ones, so training starts from the graph itself). GraphConv is PR-GCN's layer: the
operation, BN, a residual (identity, or 1x1 conv + BN when the channel count changes), ReLU.
"""
from __future__ import annotations

import torch
from torch import nn


class SpatialConv(nn.Module):
    """Σ_k (Â_k ⊙ M_k) X W_k over (N, C, T, V) features; W_k is a 1x1 conv C_in -> K·C_out."""

    def __init__(self, in_channels: int, out_channels: int, adjacency: torch.Tensor) -> None:
        super().__init__()
        k, v, _ = adjacency.shape
        self.groups = k
        self.out_channels = out_channels
        # Not saved with the weights: rebuilt from the layout, so model files stay layout-checked.
        self.register_buffer("adjacency", adjacency.clone(), persistent=False)
        self.attention = nn.Parameter(torch.ones(k, v, v))
        self.conv = nn.Conv2d(in_channels, out_channels * k, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, t, v = x.shape
        y = self.conv(x)  # (N, K·C_out, T, V)
        # One matmul over (group, source joint): (N, C_out·T, K·V) @ (K·V, V).
        y = y.view(n, self.groups, self.out_channels, t, v).permute(0, 2, 3, 1, 4)
        y = y.reshape(n, self.out_channels * t, self.groups * v)
        weights = (self.adjacency * self.attention).permute(0, 2, 1).reshape(self.groups * v, v)
        return torch.matmul(y, weights).view(n, self.out_channels, t, v)


class GraphConv(nn.Module):
    """PR-GCN graph convolution layer: SpatialConv, BN, residual, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, adjacency: torch.Tensor,
                 residual: bool = True) -> None:
        super().__init__()
        self.gcn = SpatialConv(in_channels, out_channels, adjacency)
        self.bn = nn.BatchNorm2d(out_channels)
        if not residual:
            self.residual: nn.Module | None = None
        elif in_channels == out_channels:
            self.residual = nn.Identity()
        else:
            self.residual = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1),
                                          nn.BatchNorm2d(out_channels))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(self.gcn(x))
        if self.residual is not None:
            y = y + self.residual(x)
        return self.relu(y)
