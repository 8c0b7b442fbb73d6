"""Temporal convolution layer (paper Fig. 3 right): BN, (K_t x 1) conv, BN, residual, ReLU."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from prgcn_ros.model.norm import FoldableBatchNorm2d


def subsample_frames(x: torch.Tensor, stride: int, offset: int = 0) -> torch.Tensor:
    """Frames offset, offset + stride, ... of (N, C, T, V) x, clamped to the last frame; as many
    as a stride-``stride`` 'same' convolution outputs: (T - 1) // stride + 1.

    A gather instead of x[:, :, ::stride]: the same length expression as the convolution's, so
    shape-tracing exporters see equal lengths for every T, and fast for channels-last input.
    """
    t = x.shape[2]
    index = torch.arange((t - 1) // stride + 1, device=x.device) * stride + offset
    frames = x.permute(0, 2, 3, 1).index_select(1, index.clamp(max=t - 1))
    return frames.permute(0, 3, 1, 2)


def fold_bn(weight: torch.Tensor, bias: torch.Tensor | None, scale: torch.Tensor,
            shift: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights of a conv followed by an eval-mode BN (scale, shift), as one conv."""
    folded_bias = shift if bias is None else bias * scale + shift
    return weight * scale.view(-1, 1, 1, 1), folded_bias


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
        self.pad = (kernel_size - 1) // 2
        self.bn_in = nn.BatchNorm2d(in_channels)
        self.conv = nn.Conv2d(in_channels, out_channels, (kernel_size, 1), stride=(stride, 1),
                              padding=((kernel_size - 1) // 2, 0))
        self.bn_out = FoldableBatchNorm2d(out_channels)
        self.residual = in_channels == out_channels
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            y = self.bn_out(self.conv(self.bn_in(x)))
        else:
            # bn_in stays a pass of its own: folding it would change the zero padding's meaning.
            scale, shift = self.bn_out.scale_shift()
            weight, bias = fold_bn(self.conv.weight, self.conv.bias, scale, shift)
            y = F.conv2d(self.bn_in(x), weight, bias, (self.stride, 1), (self.pad, 0))
        if self.residual:
            y = y + (subsample_frames(x, self.stride) if self.stride > 1 else x)
        return self.relu(y)


class MultiScaleTemporalConv(nn.Module):
    """Multi-scale temporal convolution (MS-G3D's, as CTR-GCN uses it) in the place of a
    TemporalConv that keeps its channel count: BN, then the channels split over branches, each
    behind its own 1 x 1 bottleneck: a K_t x 1 convolution at each of ``dilations``, a 3-frame
    max and a plain 1 x 1; concatenated, BN'd per branch, residual, ReLU. Lengths as
    TemporalConv's: ceil(T / stride) for any T >= 1."""

    def __init__(self, channels: int, stride: int = 1, kernel_size: int = 3,
                 dilations: tuple[int, ...] = (1, 2)) -> None:
        super().__init__()
        self.stride = stride
        branches = len(dilations) + 2
        widths = [channels // branches + (i < channels % branches) for i in range(branches)]
        self.bn_in = nn.BatchNorm2d(channels)

        def bottleneck(width: int) -> list[nn.Module]:
            return [nn.Conv2d(channels, width, 1), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]

        layers = [nn.Sequential(*bottleneck(width),
                                nn.Conv2d(width, width, (kernel_size, 1), stride=(stride, 1),
                                          padding=((kernel_size - 1) * d // 2, 0),
                                          dilation=(d, 1)),
                                nn.BatchNorm2d(width))
                  for d, width in zip(dilations, widths)]
        layers.append(nn.Sequential(*bottleneck(widths[-2]),
                                    nn.MaxPool2d((3, 1), stride=(stride, 1), padding=(1, 0)),
                                    nn.BatchNorm2d(widths[-2])))
        layers.append(nn.Sequential(nn.Conv2d(channels, widths[-1], 1, stride=(stride, 1)),
                                    nn.BatchNorm2d(widths[-1])))
        self.branches = nn.ModuleList(layers)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn_in(x)
        y = torch.cat([branch(y) for branch in self.branches], dim=1)
        return self.relu(y + (subsample_frames(x, self.stride) if self.stride > 1 else x))
