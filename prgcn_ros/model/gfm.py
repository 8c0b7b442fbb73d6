"""Gradual fusion module, GFM (paper Sec. III-E, Figs. 5 and 6), and the sequential variant.

Parallel: a motion flow (TCN s1, TCN s2, GCN, TCN s1, TCN s3) on M_t = P_t - P_{t-1} and a position
flow of five GCNs; each position GCN sees its own features concatenated with the current motion
features, after temporal max-pooling of the position features whenever the motion flow has just
been strided. Sequential (Table II): one flow on [P, M] interleaving the same temporal and graph
layers.
"""
from __future__ import annotations

import torch
from torch import nn

from prgcn_ros.model.gcn import GraphConv
from prgcn_ros.model.tcn import MultiScaleTemporalConv, TemporalConv, subsample_frames

# (motion layer, its stride) per fusion step; "gcn" is the motion flow's graph convolution.
MOTION_FLOW = (("tcn", 1), ("tcn", 2), ("gcn", 1), ("tcn", 1), ("tcn", 3))
# The position flow's channels in multiples of the GFM's width (the paper's: 64, 64, 64, 64, 128).
POSITION_WIDTHS = (1, 1, 1, 1, 2)
WIDTH = 64


def temporal_motion(p: torch.Tensor) -> torch.Tensor:
    """Eq. (3): M_t = P_t - P_{t-1} along dim 2, with M_0 = 0 (defined for any T >= 1)."""
    return torch.cat([torch.zeros_like(p[:, :, :1]), p[:, :, 1:] - p[:, :, :-1]], dim=2)


def temporal_max_pool(x: torch.Tensor, stride: int) -> torch.Tensor:
    """Max over non-overlapping windows of ``stride`` frames: T -> ceil(T / stride), the length a
    strided TCN gives, for any T >= 1 (a last, partial window repeats its last frame).

    Maxima of gathered frames rather than max_pool2d with a (stride x 1) kernel: an order of
    magnitude faster on CPU, keeps the channels-last layout, and exports for every T.
    """
    out = subsample_frames(x, stride)
    for offset in range(1, stride):
        out = torch.maximum(out, subsample_frames(x, stride, offset))
    return out


def _motion_layer(kind: str, stride: int, width: int, adjacency: torch.Tensor, links: dict,
                  temporal_kernel: int, temporal_dilations: tuple[int, ...] | None
                  ) -> nn.Module:
    if kind == "gcn":
        return GraphConv(width, width, adjacency, **links)
    if temporal_dilations:
        return MultiScaleTemporalConv(width, stride, temporal_kernel, temporal_dilations)
    return TemporalConv(width, width, stride, kernel_size=temporal_kernel)


class FusionStep(nn.Module):
    """One step of Fig. 6: advance the motion flow, pool the position flow to its length, fuse."""

    def __init__(self, motion: nn.Module, stride: int, position: nn.Module) -> None:
        super().__init__()
        self.motion = motion
        self.stride = stride
        self.position = position

    def forward(self, fp: torch.Tensor, fm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fm = self.motion(fm)
        if self.stride > 1:
            fp = temporal_max_pool(fp, self.stride)
        return self.position(torch.cat([fp, fm], dim=1)), fm


class GFM(nn.Module):
    """Parallel position/motion flows; (N, C, T, V) poses -> (N, 2 * width, ceil(ceil(T/2)/3), V).
    ``links``: GraphConv's keyword arguments for links beside the skeleton's (gcn.py:
    ``learned_edges``, ``sample_topology``), for every graph convolution;
    ``temporal_kernel``: frames each temporal convolution spans (the paper's K_t = 3);
    ``temporal_dilations``: the motion flow's temporal layers multi-scale, one branch per
    dilation (:class:`~prgcn_ros.model.tcn.MultiScaleTemporalConv`; None: the paper's);
    ``width``: the motion flow's channels (the paper's 64; the position flow ends at twice it)."""

    def __init__(self, in_channels: int, adjacency: torch.Tensor, use_motion: bool = True,
                 links: dict | None = None, temporal_kernel: int = 3,
                 temporal_dilations: tuple[int, ...] | None = None, width: int = WIDTH) -> None:
        super().__init__()
        # Table II "position only": both flows are fed P instead of P and M.
        self.use_motion = use_motion
        self.position_in = TemporalConv(in_channels, width, kernel_size=temporal_kernel)
        self.motion_in = TemporalConv(in_channels, width, kernel_size=temporal_kernel)
        links = links or {}
        steps = []
        channels = width
        for (kind, stride), factor in zip(MOTION_FLOW, POSITION_WIDTHS):
            steps.append(FusionStep(_motion_layer(kind, stride, width, adjacency, links,
                                                  temporal_kernel, temporal_dilations), stride,
                                    GraphConv(channels + width, factor * width, adjacency,
                                              **links)))
            channels = factor * width
        self.steps = nn.ModuleList(steps)
        self.out_channels = channels

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        fm = self.motion_in(temporal_motion(p) if self.use_motion else p)
        fp = self.position_in(p)
        for step in self.steps:
            fp, fm = step(fp, fm)
        return fp


class SequentialGFM(nn.Module):
    """Single-flow variant of Table II: [P, M] through the same layers, interleaved."""

    def __init__(self, in_channels: int, adjacency: torch.Tensor, use_motion: bool = True,
                 links: dict | None = None, temporal_kernel: int = 3,
                 temporal_dilations: tuple[int, ...] | None = None, width: int = WIDTH) -> None:
        super().__init__()
        links = links or {}
        self.use_motion = use_motion
        layers: list[nn.Module] = [TemporalConv(in_channels * (2 if use_motion else 1), width,
                                                kernel_size=temporal_kernel)]
        channels = width
        for (kind, stride), factor in zip(MOTION_FLOW, POSITION_WIDTHS):
            layers += [_motion_layer(kind, stride, width, adjacency, links, temporal_kernel,
                                     temporal_dilations),
                       GraphConv(channels, factor * width, adjacency, **links)]
            channels = factor * width
        self.layers = nn.Sequential(*layers)
        self.out_channels = channels

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        x = torch.cat([p, temporal_motion(p)], dim=1) if self.use_motion else p
        return self.layers(x)
