"""Input normalisation: batch norm over channels x joints, persons folded into the batch."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DataNorm(nn.Module):
    """BatchNorm1d over C·V of a (N·M, C, T, V) tensor (one mean and variance per joint coordinate).

    In training mode a batch holding a single value per channel (N·M = 1 and T = 1) has no batch
    statistics; such a batch is normalised with the running statistics instead of raising.
    """

    def __init__(self, channels: int, joints: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(channels * joints)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nm, c, t, v = x.shape
        y = x.permute(0, 1, 3, 2).reshape(nm, c * v, t)
        if self.training and nm * t == 1:
            y = F.batch_norm(y, self.bn.running_mean, self.bn.running_var, self.bn.weight,
                             self.bn.bias, False, 0.0, self.bn.eps)
        else:
            y = self.bn(y)
        # Channels-last from here on: the layout the graph convolutions work in without copies.
        y = y.reshape(nm, c, v, t).permute(0, 1, 3, 2)
        return y.contiguous(memory_format=torch.channels_last)


class FoldableBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d that can hand its eval-mode transform to the layer before it for folding."""

    def scale_shift(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Eval-mode BN as y = scale * x + shift, per channel."""
        mean, var = self.running_mean, self.running_var
        weight, bias = self.weight, self.bias
        assert mean is not None and var is not None
        scale = torch.rsqrt(var + self.eps)
        if weight is not None:
            scale = scale * weight
        shift = -mean * scale
        if bias is not None:
            shift = shift + bias
        return scale, shift
