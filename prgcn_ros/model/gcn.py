"""Graph convolution (paper eq. (2) and Fig. 3 left).

SpatialConv is the bare operation f_out = Σ_k (Â_k ⊙ M_k) f_in W_k, shared with the ST-GCN baseline:
Â_k is the normalised spatial-partition adjacency (a buffer), M_k a learned attention map per layer
(initialised to ones, so training starts from the graph itself). Since M_k multiplies Â_k, joints
the skeleton does not connect never exchange features in one layer; with ``learned_edges`` a
learned B_k is added, Σ_k (Â_k ⊙ M_k + B_k) f_in W_k (2s-AGCN's B_k, initialised to zeros), so
e.g. the two hands can. With ``sample_topology`` each sample also gets its own, per-channel
links, CTR-GCN's channel-wise topology refinement (Chen et al., ICCV 2021): from the input's
mean over time, Q_k[c, i, j] = ξ_k(tanh(φ(x̄)_i - ψ(x̄)_j))_c, added to the shared links as
Σ_k (Â_k ⊙ M_k + α Q_k) f_in W_k with α learned from zero (training starts from the graph
itself). GraphConv is PR-GCN's layer: the operation, BN, a residual (identity, or
1x1 conv + BN when the channel count changes), ReLU.

In eval mode the BNs and the residual projection are folded into the operation's two matrix
products (same parameters, same result up to rounding): fewer passes over memory on the CPU.
"""
from __future__ import annotations

import torch
from torch import nn

from prgcn_ros.model.norm import FoldableBatchNorm2d


class SampleTopology(nn.Module):
    """CTR-GCN's per-sample, per-channel links (N, C, T, V) -> α Q (N, K, C_out, V, V)."""

    def __init__(self, in_channels: int, out_channels: int, groups: int) -> None:
        super().__init__()
        relation = max(8, in_channels // 8)   # CTR-GCN's reduction (8 for 3-channel input)
        self.groups = groups
        self.out_channels = out_channels
        self.source = nn.Conv1d(in_channels, relation, 1)   # φ
        self.target = nn.Conv1d(in_channels, relation, 1)   # ψ
        self.expand = nn.Conv2d(relation, groups * out_channels, 1)   # ξ, one map per group
        self.alpha = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, _, v = x.shape
        mean = x.mean(dim=2)                                          # (N, C, V)
        relation = torch.tanh(self.source(mean).unsqueeze(-1) - self.target(mean).unsqueeze(-2))
        links = self.expand(relation)                                 # (N, K·C_out, V_i, V_j)
        return self.alpha * links.view(n, self.groups, self.out_channels, v, v)


class SpatialConv(nn.Module):
    """Σ_k (Â_k ⊙ M_k [+ B_k]) X W_k over (N, C, T, V) features; W_k is a 1x1 conv
    C_in -> K·C_out."""

    def __init__(self, in_channels: int, out_channels: int, adjacency: torch.Tensor,
                 learned_edges: bool = False, sample_topology: bool = False) -> None:
        super().__init__()
        k, v, _ = adjacency.shape
        self.groups = k
        self.out_channels = out_channels
        # Not saved with the weights: rebuilt from the layout, so model files stay layout-checked.
        self.register_buffer("adjacency", adjacency.clone(), persistent=False)
        self.register_buffer("identity", torch.eye(v).unsqueeze(0), persistent=False)
        self.attention = nn.Parameter(torch.ones(k, v, v))
        self.edges = nn.Parameter(torch.zeros(k, v, v)) if learned_edges else None
        self.conv = nn.Conv2d(in_channels, out_channels * k, 1)
        self.topology = (SampleTopology(in_channels, out_channels, k) if sample_topology
                         else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fused(x, None, None, None, None)

    def fused(self, x: torch.Tensor, scale: torch.Tensor | None, shift: torch.Tensor | None,
              extra_weight: torch.Tensor | None, extra_bias: torch.Tensor | None) -> torch.Tensor:
        """scale * op(x) + shift (+ x W_e^T + b_e): the op with a per-channel affine map after it
        (an eval-mode BN) and an extra 1x1 conv of the same input (a folded residual) added."""
        n, c, t, v = x.shape
        k, out = self.groups, self.out_channels
        conv_bias = self.conv.bias
        assert conv_bias is not None
        weight = self.conv.weight.view(k, out, c)
        bias = conv_bias.view(k, out)
        adjacency = self.adjacency * self.attention  # [k, target i, source j]
        if self.edges is not None:
            adjacency = adjacency + self.edges
        if scale is not None:
            weight = weight * scale.view(1, out, 1)
            bias = bias * scale
        # The conv bias is applied before the aggregation, as in ST-GCN: after it, it is a
        # (V, C_out) term, row sums of each group times that group's bias.
        total_bias = adjacency.sum(dim=2).t().matmul(bias)
        if shift is not None:
            total_bias = total_bias + shift
        weight = weight.reshape(k * out, c)
        blocks = k
        if extra_weight is not None:
            # One more group whose adjacency is the identity carries the residual projection.
            weight = torch.cat([weight, extra_weight], dim=0)
            adjacency = torch.cat([adjacency, self.identity], dim=0)
            blocks = k + 1
            if extra_bias is not None:
                total_bias = total_bias + extra_bias
        # Channels-last layout (N, T, V, C): the 1x1 conv is one GEMM whose output rows (n, t) hold
        # (source joint j, group k, channel) in that order, so the sum over j and k is a single
        # matmul with no transpose copy: out[nt] = A' (V, V·K) @ Y[nt] (V·K, C_out) with
        # A'[i, (j, k)] = (Â_k ⊙ M_k)[i, j]. Channels-last inputs make every reshape here a view.
        rows = x.permute(0, 2, 3, 1).reshape(n * t * v, c)
        y = torch.mm(rows, weight.t()).view(n * t, v * blocks, out)
        a = adjacency.permute(1, 2, 0).reshape(v, v * blocks)
        result = torch.baddbmm(total_bias.expand(n * t, v, out), a.expand(n * t, v, v * blocks),
                               y).view(n, t, v, out)
        if self.topology is not None:
            # The per-sample links act on the same W_k x + b_k (BN scale included) as the shared.
            grouped = y.view(n, t, v, blocks, out)[:, :, :, :k] + bias.view(1, 1, 1, k, out)
            result = result + torch.einsum("nkcij,ntjkc->ntic", self.topology(x), grouped)
        return result.permute(0, 3, 1, 2)


class GraphConv(nn.Module):
    """PR-GCN graph convolution layer: SpatialConv, BN, residual, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, adjacency: torch.Tensor,
                 residual: bool = True, learned_edges: bool = False,
                 sample_topology: bool = False) -> None:
        super().__init__()
        self.gcn = SpatialConv(in_channels, out_channels, adjacency, learned_edges,
                               sample_topology)
        self.bn = FoldableBatchNorm2d(out_channels)
        self.identity_residual = residual and in_channels == out_channels
        if residual and in_channels != out_channels:
            self.residual: nn.Sequential | None = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1), FoldableBatchNorm2d(out_channels))
        else:
            self.residual = None
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            y = self.bn(self.gcn(x))
            if self.residual is not None:
                y = y + self.residual(x)
        else:
            scale, shift = self.bn.scale_shift()
            extra_weight: torch.Tensor | None = None
            extra_bias: torch.Tensor | None = None
            if self.residual is not None:
                conv, bn = self.residual[0], self.residual[1]
                res_scale, res_shift = bn.scale_shift()
                extra_weight = conv.weight.flatten(1) * res_scale.unsqueeze(1)
                extra_bias = res_shift
                res_bias = conv.bias
                if res_bias is not None:
                    extra_bias = res_bias * res_scale + res_shift
            y = self.gcn.fused(x, scale, shift, extra_weight, extra_bias)
        if self.identity_residual:
            y = y + x
        return self.relu(y)
