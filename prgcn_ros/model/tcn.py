"""Temporal convolution layer (paper Fig. 3 right): BN, (K_t x 1) conv, BN, residual, ReLU."""
from __future__ import annotations

import torch
from torch import nn


class TemporalConv(nn.Module):
    """K_t x 1 convolution along time, 'same' padding: T_out = ceil(T / stride) for any T >= 1.

    The residual is the input itself when the channel count is kept (sub-sampled by the stride,
    which gives the same length ceil(T / stride)); a layer that changes the channel count has none,
    as in the reference configuration (its parameter count has no temporal residual projection).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1,
                 kernel_size: int = 3) -> None:
        super().__init__()
        self.stride = stride
        self.bn_in = nn.BatchNorm2d(in_channels)
        self.conv = nn.Conv2d(in_channels, out_channels, (kernel_size, 1), stride=(stride, 1),
                              padding=((kernel_size - 1) // 2, 0))
        self.bn_out = nn.BatchNorm2d(out_channels)
        self.residual = in_channels == out_channels
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn_out(self.conv(self.bn_in(x)))
        if self.residual:
            y = y + (x[:, :, ::self.stride] if self.stride > 1 else x)
        return self.relu(y)
