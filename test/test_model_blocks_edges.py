"""The network's building blocks against the paper's equations and DESIGN.md, each computed
independently here: eq. (2)'s α, the graph and temporal convolution layers (BN, skip, ReLU, and
their folded eval forms), the multi-scale temporal layer, the motion of eq. (3), the GFM's flows
and fusion, the TAM, the PRM's normalised input, the network's data norm, person pooling and
extent normalisation, rigid bones' weighted lengths, and the ST-GCN baseline."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_model_prgcn import _one_intra_op_thread  # noqa: F401  (autouse fixture)
from torch import nn

from prgcn_ros.model import PRGCN, STGCN
from prgcn_ros.model.bones import RigidBones
from prgcn_ros.model.build import complete_arch
from prgcn_ros.model.gcn import GraphConv, SpatialConv
from prgcn_ros.model.gfm import GFM, FusionStep, SequentialGFM, temporal_motion
from prgcn_ros.model.graph import normalized_adjacency
from prgcn_ros.model.norm import DataNorm, FoldableBatchNorm2d
from prgcn_ros.model.prm import PRM
from prgcn_ros.model.tam import TAM
from prgcn_ros.model.tcn import MultiScaleTemporalConv, TemporalConv
from prgcn_ros.skeleton.layouts import Layout, get_layout

# a - b - c - d, centre b: a small graph whose groups are not symmetric.
STICK = Layout(name="stick4_edges", joints=("a", "b", "c", "d"), bones=((0, 1), (1, 2), (2, 3)),
               center=1)


def _adjacency(layout=STICK) -> torch.Tensor:
    return torch.from_numpy(normalized_adjacency(layout))


def _randomise_bns(module: nn.Module, seed: int = 0, small_var: bool = False) -> None:
    """Trained-like BNs: affine weights and running statistics far from their initial values."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                c = m.num_features
                m.weight.copy_(torch.rand(c, generator=g) + 0.5)
                m.bias.copy_(torch.randn(c, generator=g))
                m.running_mean.copy_(torch.randn(c, generator=g))
                low, high = (1e-4, 1e-3) if small_var else (0.3, 2.0)
                m.running_var.copy_(torch.rand(c, generator=g) * (high - low) + low)


def _bn(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Eval-mode batch norm written out."""
    shape = (1, -1) + (1,) * (x.dim() - 2)
    return ((x - m.running_mean.view(shape)) / torch.sqrt(m.running_var.view(shape) + m.eps)
            * m.weight.view(shape) + m.bias.view(shape))


def _graph_op(conv: SpatialConv, x: torch.Tensor) -> torch.Tensor:
    """Eq. (2): Σ_k (Â_k ⊙ M_k) (W_k x + b_k), rows of Â the target joints."""
    k, v = conv.adjacency.shape[:2]
    n, _, t, _ = x.shape
    z = F.conv2d(x, conv.conv.weight, conv.conv.bias).view(n, k, -1, t, v)
    return torch.einsum("kij,nkctj->ncti", conv.adjacency * conv.attention, z)


# ----------------------------------------------------------------------------------- graph
def test_eq_2_uses_alpha_0_001_of_the_paper():
    """Λ_k^ii = Σ_j A_k^ij + α with α = 0.001 (paper, below eq. (2)), worked out by hand for the
    chain a - b - c - d with centre b."""
    a = 0.001
    paper, balanced = normalized_adjacency(STICK), normalized_adjacency(STICK, norm="balanced")
    # group 0 (same distance as the target: itself): 1 / (1 + α) on the diagonal
    np.testing.assert_allclose(np.diag(paper[0]), np.full(4, 1 / (1 + a)), rtol=1e-6)
    # group 1 (closer to the centre): a <- b, c <- b, d <- c. Row degrees a 1, b 0, c 1, d 1.
    np.testing.assert_allclose(paper[1, 0, 1], (1 + a) ** -0.5 * a ** -0.5, rtol=1e-6)
    np.testing.assert_allclose(paper[1, 3, 2], (1 + a) ** -0.5 * (1 + a) ** -0.5, rtol=1e-6)
    # group 2 (farther): b <- a, b <- c, c <- d. Row degrees b 2, c 1; a and d 0.
    np.testing.assert_allclose(paper[2, 1, 0], (2 + a) ** -0.5 * a ** -0.5, rtol=1e-6)
    np.testing.assert_allclose(paper[2, 2, 3], (1 + a) ** -0.5 * a ** -0.5, rtol=1e-6)
    # balanced: the source by its column sum (b feeds a and c in group 1: 2)
    np.testing.assert_allclose(balanced[1, 0, 1], (1 + a) ** -0.5 * (2 + a) ** -0.5, rtol=1e-6)
    np.testing.assert_allclose(balanced[2, 1, 0], (2 + a) ** -0.5 * (1 + a) ** -0.5, rtol=1e-6)


# ---------------------------------------------------------------- graph convolution layer
@pytest.mark.parametrize("channels", [(4, 4), (4, 6)])
def test_graph_conv_layer_is_op_bn_skip_relu_also_folded(channels):
    """Fig. 3 left: ReLU(BN(eq. (2)) + skip); the skip is the input itself when the channel
    count is kept, else a 1x1 conv + BN. In training (batch statistics) and in the folded eval
    form with trained-like BN affines and statistics."""
    cin, cout = channels
    torch.manual_seed(21)
    layer = GraphConv(cin, cout, _adjacency())
    with torch.no_grad():
        layer.gcn.attention.uniform_(0.5, 1.5)
    x = torch.randn(3, cin, 5, 4)
    with torch.no_grad():
        op = _graph_op(layer.gcn, x)
        # training: batch statistics, biased variance
        mean, var = op.mean(dim=(0, 2, 3), keepdim=True), op.var(dim=(0, 2, 3), unbiased=False,
                                                                keepdim=True)
        normed = (op - mean) / torch.sqrt(var + layer.bn.eps)
        normed = normed * layer.bn.weight.view(1, -1, 1, 1) + layer.bn.bias.view(1, -1, 1, 1)
        if cin == cout:
            skip = x
        else:
            r = F.conv2d(x, layer.residual[0].weight, layer.residual[0].bias)
            skip = (r - r.mean(dim=(0, 2, 3), keepdim=True)) / torch.sqrt(
                r.var(dim=(0, 2, 3), unbiased=False, keepdim=True) + layer.residual[1].eps)
        torch.testing.assert_close(layer.train()(x), torch.relu(normed + skip),
                                   atol=1e-5, rtol=1e-5)
        _randomise_bns(layer, seed=22)
        skip = x if cin == cout else _bn(layer.residual[1], F.conv2d(
            x, layer.residual[0].weight, layer.residual[0].bias))
        expected = torch.relu(_bn(layer.bn, op) + skip)
        torch.testing.assert_close(layer.eval()(x), expected, atol=1e-5, rtol=1e-5)


def test_a_fresh_graph_convolution_is_the_graph_itself():
    """M_k starts at ones, learned links B_k and the per-sample links' α at zero: before
    training the operation is eq. (2) on the skeleton's Â_k alone."""
    torch.manual_seed(45)
    adjacency = _adjacency()
    conv = SpatialConv(3, 5, adjacency, learned_edges=True, sample_topology=True)
    x = torch.randn(2, 3, 4, 4)
    with torch.no_grad():
        z = F.conv2d(x, conv.conv.weight, conv.conv.bias).view(2, 3, 5, 4, 4)
        expected = torch.einsum("kij,nkctj->ncti", adjacency, z)
        torch.testing.assert_close(conv(x), expected, atol=1e-5, rtol=1e-5)


def test_scale_shift_is_the_eval_batch_norm():
    """The per-channel affine map every fold uses equals the eval BN, with trained affine
    parameters and small running variances (where ε matters)."""
    bn = FoldableBatchNorm2d(5)
    _randomise_bns(bn, seed=23, small_var=True)
    x = torch.randn(2, 5, 3, 4)
    scale, shift = bn.scale_shift()
    with torch.no_grad():
        torch.testing.assert_close(scale.view(1, -1, 1, 1) * x + shift.view(1, -1, 1, 1),
                                   _bn(bn, x), atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------- temporal convolution layers
@pytest.mark.parametrize("cin, cout, stride, t", [(4, 4, 1, 7), (4, 4, 2, 7), (4, 4, 3, 8),
                                                  (3, 4, 1, 6)])
def test_temporal_conv_layer_is_bn_conv_bn_skip_relu(cin, cout, stride, t):
    """Fig. 3 right: ReLU(BN(conv_{3x1}(BN(x))) + x), the skip sub-sampled to the strided
    output's frames 0, s, 2s, ... (the frames the 'same' convolution is centred on); no skip
    where the channel count changes."""
    torch.manual_seed(24)
    layer = TemporalConv(cin, cout, stride)
    _randomise_bns(layer, seed=25)
    x = torch.randn(2, cin, t, 3)
    with torch.no_grad():
        y = F.conv2d(_bn(layer.bn_in, x), layer.conv.weight, layer.conv.bias, (stride, 1),
                     (1, 0))
        y = _bn(layer.bn_out, y)
        if cin == cout:
            y = y + x[:, :, ::stride]
        torch.testing.assert_close(layer.eval()(x), torch.relu(y), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("stride", [1, 2])
def test_multi_scale_temporal_layer_is_ms_g3ds(stride):
    """BN, then per branch a 1x1 bottleneck (conv, BN, ReLU) and a dilated 3x1 conv + BN, a
    3-frame max + BN, or a strided 1x1 conv + BN; concatenated, plus the input, ReLU."""
    torch.manual_seed(26)
    layer = MultiScaleTemporalConv(16, stride, 3, (1, 2))
    _randomise_bns(layer, seed=27)
    x = torch.randn(2, 16, 9, 3)
    with torch.no_grad():
        y = _bn(layer.bn_in, x)
        outs = []
        for d, branch in zip((1, 2), layer.branches[:2]):
            h = torch.relu(_bn(branch[1], F.conv2d(y, branch[0].weight, branch[0].bias)))
            h = F.conv2d(h, branch[3].weight, branch[3].bias, (stride, 1), (d, 0), (d, 1))
            outs.append(_bn(branch[4], h))
        branch = layer.branches[2]
        h = torch.relu(_bn(branch[1], F.conv2d(y, branch[0].weight, branch[0].bias)))
        outs.append(_bn(branch[4], F.max_pool2d(h, (3, 1), (stride, 1), (1, 0))))
        branch = layer.branches[3]
        outs.append(_bn(branch[1], F.conv2d(y, branch[0].weight, branch[0].bias, (stride, 1))))
        expected = torch.relu(torch.cat(outs, dim=1) + x[:, :, ::stride])
        torch.testing.assert_close(layer.eval()(x), expected, atol=1e-5, rtol=1e-5)


# --------------------------------------------------------------------------------- GFM
def test_motion_is_eq_3():
    """M_t = P_t - P_{t-1} per joint along time, M_0 = 0."""
    p = torch.randn(2, 3, 5, 4)
    m = temporal_motion(p)
    assert m.shape == p.shape and not m[:, :, 0].any()
    for t in range(1, 5):
        torch.testing.assert_close(m[:, :, t], p[:, :, t] - p[:, :, t - 1])


class _Stride(nn.Module):
    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, ::self.stride] + 100.0


def test_fusion_step_max_pools_the_position_features_to_the_strided_motion():
    """Fig. 6: after a strided motion layer the position features are max-pooled over time to
    its length, then concatenated with the motion features."""
    for stride, t in ((2, 7), (3, 7), (1, 4)):
        step = FusionStep(_Stride(stride), stride, nn.Identity())
        fp, fm = torch.randn(1, 2, t, 3), torch.randn(1, 5, t, 3)
        fused, motion = step(fp, fm)
        torch.testing.assert_close(motion, fm[:, :, ::stride] + 100.0)
        pooled = F.max_pool2d(fp, (stride, 1), (stride, 1), ceil_mode=True)
        parts = (fused[:, :2], fused[:, 2:]) if torch.equal(fused[:, 2:], motion) else (
            fused[:, 5:], fused[:, :5])
        torch.testing.assert_close(parts[0], pooled)
        torch.testing.assert_close(parts[1], motion)


def _inputs_of(module: nn.Module, run) -> list[torch.Tensor]:
    seen: list[torch.Tensor] = []
    handle = module.register_forward_pre_hook(lambda _, args: seen.append(args[0].clone()))
    with torch.no_grad():
        run()
    handle.remove()
    return seen


@pytest.mark.parametrize("use_motion", [True, False])
def test_gfm_feeds_positions_to_the_position_flow_and_motion_to_the_motion_flow(use_motion):
    """Fig. 5: the position flow starts from P, the motion flow from M (eq. (3)); Table II's
    'position only' feeds P to both."""
    torch.manual_seed(28)
    gfm = GFM(3, _adjacency(), use_motion=use_motion, width=8).eval()
    p = torch.randn(2, 3, 12, 4)
    position = _inputs_of(gfm.position_in, lambda: gfm(p))
    motion = _inputs_of(gfm.motion_in, lambda: gfm(p))
    torch.testing.assert_close(position[0], p)
    torch.testing.assert_close(motion[0], temporal_motion(p) if use_motion else p)


def test_motion_flow_is_tcn_tcn2_gcn_tcn_tcn3():
    """DESIGN.md: the motion flow is TCN (stride 1), TCN (stride 2), GCN, TCN (stride 1),
    TCN (stride 3): for 12 frames its lengths are 12, 6, 6, 6, 2."""
    torch.manual_seed(29)
    gfm = GFM(3, _adjacency(), width=8).eval()
    kinds = [type(step.motion) for step in gfm.steps]
    assert kinds == [TemporalConv, TemporalConv, GraphConv, TemporalConv, TemporalConv]
    lengths: list[int] = []
    handles = [step.motion.register_forward_hook(lambda _, __, out: lengths.append(out.shape[2]))
               for step in gfm.steps]
    with torch.no_grad():
        out = gfm(torch.randn(1, 3, 12, 4))
    for handle in handles:
        handle.remove()
    assert lengths == [12, 6, 6, 6, 2] and out.shape == (1, 16, 2, 4)


@pytest.mark.parametrize("use_motion", [True, False])
def test_sequential_gfm_takes_positions_and_motion_together(use_motion):
    """Table II's sequential architecture: P concatenated with M (or P alone) in one flow."""
    torch.manual_seed(30)
    gfm = SequentialGFM(3, _adjacency(), use_motion=use_motion, width=8).eval()
    p = torch.randn(2, 3, 12, 4)
    seen = _inputs_of(gfm.layers[0], lambda: gfm(p))[0]
    expected = torch.cat([p, temporal_motion(p)], dim=1) if use_motion else p
    torch.testing.assert_close(seen, expected)


# --------------------------------------------------------------------------------- TAM
def test_tam_is_average_pooling_channel_recalibration_and_a_gcn():
    """Fig. 7: f̄ = Avg_T(f); f̄ · σ(Conv2(ReLU(Conv1(Avg(f̄))))) per channel (one scalar per
    channel and sample, averaged over the joints too), then the graph convolution."""
    torch.manual_seed(31)
    tam = TAM(6, _adjacency(), hidden=5, out_channels=7)
    _randomise_bns(tam, seed=32)
    tam.eval()
    f = torch.randn(2, 6, 5, 4)
    with torch.no_grad():
        pooled = f.mean(dim=2, keepdim=True)
        squeezed = pooled.mean(dim=(2, 3))                                 # (N, C)
        hidden = torch.relu(squeezed @ tam.squeeze.weight.flatten(1).t() + tam.squeeze.bias)
        weights = torch.sigmoid(hidden @ tam.excite.weight.flatten(1).t() + tam.excite.bias)
        expected = tam.gcn(pooled * weights[:, :, None, None])
        torch.testing.assert_close(tam(f), expected, atol=1e-5, rtol=1e-5)


# --------------------------------------------------------------------------------- PRM
def test_prm_predicts_offsets_from_batch_normalised_poses():
    """The offsets are estimated from normalised poses (data BN over C·V): in training mode a
    per-channel affine change of the input's units (mm instead of m, another origin) gives
    the same offsets."""
    torch.manual_seed(33)
    prm = PRM(3, 3, _adjacency()).train()
    with torch.no_grad():
        prm.offset.weight.normal_(std=0.5)
        x = torch.randn(4, 3, 6, 4)
        moved = x * torch.tensor([1000.0, 1000.0, 500.0]).view(1, 3, 1, 1) + torch.tensor(
            [3.0, -200.0, 40.0]).view(1, 3, 1, 1)
        torch.testing.assert_close(prm(moved), prm(x), atol=1e-4, rtol=1e-4)


# --------------------------------------------------------------------------- data norm
@pytest.mark.parametrize("nm, t", [(3, 5), (1, 6)])
def test_data_norm_normalises_each_joint_coordinate_over_samples_and_frames(nm, t):
    """BatchNorm over C·V: in training each (channel, joint) has mean 0 and variance 1 over the
    samples and frames — also for one sample with several frames (running statistics only where
    there is a single value per channel)."""
    torch.manual_seed(34)
    norm = DataNorm(3, 4).train()
    offsets = torch.arange(12.0).view(1, 3, 1, 4) * 10.0
    x = torch.randn(nm, 3, t, 4) * (1 + torch.arange(12.0).view(1, 3, 1, 4)) + offsets
    with torch.no_grad():
        y = norm(x)
    expected = (x - x.mean(dim=(0, 2), keepdim=True)) / torch.sqrt(
        x.var(dim=(0, 2), unbiased=False, keepdim=True) + norm.bn.eps)
    torch.testing.assert_close(y, expected, atol=1e-4, rtol=1e-4)


def test_the_gfm_sees_batch_normalised_features():
    """The network normalises the refined poses before the GFM (data BN over C·V)."""
    torch.manual_seed(35)
    model = PRGCN(5, "openni15", use_prm=False).train()
    x = torch.randn(3, 3, 8, 15, 1) * 50.0 + 7.0
    seen = _inputs_of(model.gfm, lambda: model(x))[0]
    torch.testing.assert_close(seen.mean(dim=(0, 2)), torch.zeros(3, 15), atol=1e-4, rtol=0)
    torch.testing.assert_close(seen.var(dim=(0, 2), unbiased=False), torch.ones(3, 15),
                               atol=1e-3, rtol=0)


# ------------------------------------------------------------------------- PRGCN options
def test_global_pooling_then_the_most_active_person():
    """DESIGN.md: global average pooling, max over persons, then the classifier."""
    torch.manual_seed(36)
    model = PRGCN(5, "openni15").eval()
    x = torch.randn(2, 3, 8, 15, 2)
    seen = _inputs_of(model.classifier, lambda: model(x))[0]
    features: list[torch.Tensor] = []
    handle = model.tam.register_forward_hook(lambda _, __, out: features.append(out))
    with torch.no_grad():
        model(x)
    handle.remove()
    expected = features[0].mean(dim=(2, 3)).view(2, 2, -1).amax(dim=1)
    torch.testing.assert_close(seen, expected)


def test_extent_norm_spans_the_present_persons_together():
    """One range per sample and axis over frames, joints and both persons: the smaller
    person stays smaller, inside [-1, 1], where the two stand relative to each other kept."""
    torch.manual_seed(37)
    model = PRGCN(8, "openni15", use_prm=False, extent_norm=True).eval()
    x = torch.randn(1, 3, 6, 15, 2)
    x[..., 1] = 0.1 * x[..., 1] + 0.05
    seen = _inputs_of(model.data_norm, lambda: model(x))[0].view(2, 3, 6, 15)
    low = x.amin(dim=(0, 2, 3, 4)).view(3, 1, 1)
    high = x.amax(dim=(0, 2, 3, 4)).view(3, 1, 1)
    for m in (0, 1):
        torch.testing.assert_close(seen[m], (x[0, ..., m] - low) / (high - low) * 2 - 1)


def test_extent_norm_leaves_a_2d_confidence_alone():
    """Only the coordinates are rescaled; an image keypoint's score passes through."""
    torch.manual_seed(38)
    model = PRGCN(8, "coco18", use_prm=False, extent_norm=True).eval()
    x = torch.rand(2, 3, 6, 18, 1) * torch.tensor([640.0, 480.0, 1.0]).view(1, 3, 1, 1, 1)
    seen = _inputs_of(model.data_norm, lambda: model(x))[0]
    torch.testing.assert_close(seen[:, 2], x[..., 0][:, 2])
    assert float(seen[:, :2].amin()) == pytest.approx(-1.0) and float(
        seen[:, :2].amax()) == pytest.approx(1.0)


def test_extent_norm_of_a_flat_axis_stays_finite():
    """A clip with no extent along an axis (all z = 0: a planar recording) maps it to a
    constant, not to 0 / 0."""
    torch.manual_seed(46)
    model = PRGCN(8, "openni15", use_prm=False, extent_norm=True).eval()
    x = torch.randn(1, 3, 6, 15, 1)
    x[:, 2] = 0.0
    seen = _inputs_of(model.data_norm, lambda: model(x))[0]
    assert torch.isfinite(seen).all()
    torch.testing.assert_close(seen[:, :2].amin(dim=(0, 2, 3)), -torch.ones(2))


def test_a_lone_person_sees_no_partner_whatever_the_prm_does():
    """Whether a slot holds a person is read from the input: a PRM that moves the empty
    slot's zeros does not make it a partner."""
    torch.manual_seed(39)
    model = PRGCN(8, "openni15", partner_input=True).eval()
    with torch.no_grad():
        model.prm.offset.bias.fill_(0.3)
    x = torch.zeros(1, 3, 6, 15, 2)
    x[..., 0] = torch.randn(1, 3, 6, 15)
    seen = _inputs_of(model.data_norm, lambda: model(x))[0]
    assert seen.shape == (2, 6, 6, 15) and not seen[:, 3:].any()


def test_partner_input_only_where_exactly_two_slots_hold_a_person():
    """Three people in three slots: no one is 'the other', so nobody is shown a partner."""
    torch.manual_seed(44)
    model = PRGCN(8, "openni15", use_prm=False, partner_input=True).eval()
    x = torch.randn(1, 3, 6, 15, 3)
    seen = _inputs_of(model.data_norm, lambda: model(x))[0]
    assert seen.shape == (3, 6, 6, 15) and not seen[:, 3:].any()


# ------------------------------------------------------------------------------- build
def test_complete_arch_fills_only_what_a_file_leaves_out():
    """An older file's arch is completed with the defaults; what it states stays."""
    arch = {"name": "prgcn", "num_classes": 3, "layout": "kinect20", "in_channels": 2,
            "use_tam": False}
    full = complete_arch(arch)
    assert full["in_channels"] == 2 and full["use_tam"] is False and full["num_classes"] == 3
    assert full["graph_norm"] == "paper" and full["fusion"] == "parallel"


# ------------------------------------------------------------------------------- bones
def test_rigid_bone_lengths_are_means_over_the_weighted_frames_only():
    """A bone's held length is its mean over the frames that hold the person (weight 1);
    a window of padding only stays finite."""
    layout = Layout("chain_edges", ("hip_center", "left_knee"), bones=((0, 1),), center=0)
    coords = torch.zeros(1, 3, 3, 2)
    coords[0, 0, :, 1] = torch.tensor([1.0, 3.0, 11.0])   # knee bone lengths 1, 3, 11
    rigid = RigidBones(layout)
    rebuilt = rigid(coords, torch.tensor([1.0, 1.0, 0.0]).view(1, 1, 3, 1))
    torch.testing.assert_close(rebuilt[0, 0, :, 1], torch.full((3,), 2.0))
    assert torch.isfinite(rigid(coords, torch.zeros(1, 1, 3, 1))).all()


def test_a_bone_of_zero_length_in_a_frame_keeps_the_joints_beyond_it_finite():
    """A child joint at its parent's place in one frame (a driver's collapsed joint): its
    direction is 0/0; the joints beyond it stay finite."""
    layout = get_layout("kinect20")
    rigid = RigidBones(layout)
    parent, child = next(bone for bone, held in zip(layout.tree(), rigid.held.tolist()) if held)
    torch.manual_seed(0)
    coords = torch.randn(1, 3, 6, 20)
    coords[0, :, 2, child] = coords[0, :, 2, parent]
    assert torch.isfinite(rigid(coords, torch.ones(1, 1, 6, 1))).all()


def test_rigid_bones_train_with_an_empty_person_slot():
    """A lone person in a two-slot batch: the empty slot's weights are all zero, and the
    gradients stay finite."""
    torch.manual_seed(40)
    model = PRGCN(5, "kinect20", rigid_bones=True).train()
    x = torch.randn(2, 3, 6, 20, 2)
    x[..., 1] = 0.0
    logits, refined = model(x)
    (logits.sum() + refined.sum()).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.prm.parameters() if p.grad is not None)


# ------------------------------------------------------------------------------ ST-GCN
@pytest.mark.parametrize("variant", ["yan2018", "prgcn_table1"])
def test_stgcn_folded_eval_equals_the_unfolded_blocks(variant):
    """ST-GCN's eval fold (BNs and the residual projection folded) gives what the blocks
    compute op by op: GCN, BN, ReLU, 9x1 conv, BN, + residual, ReLU."""
    torch.manual_seed(41)
    model = STGCN(5, "openni15", variant=variant)
    _randomise_bns(model, seed=42)
    x = torch.randn(2, 3, 10, 15, 2)
    with torch.no_grad():
        folded = model.eval()(x)
        for module in model.modules():
            if not isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.training = True
        unfolded = model(x)
    torch.testing.assert_close(folded, unfolded, atol=1e-4, rtol=1e-4)


def test_stgcn_front_end_and_person_average():
    """The prgcn_table1 variant: a pose shift added to the normalised input, position and motion
    embedded and fused; ST-GCN averages the persons' pooled features."""
    torch.manual_seed(43)
    model = STGCN(5, "openni15", variant="prgcn_table1").eval()
    x = torch.randn(2, 3, 10, 15, 2)
    with torch.no_grad():
        normed = model.data_norm(x.permute(0, 4, 1, 2, 3).reshape(4, 3, 10, 15))
        front = model.front
        shifted = normed + front["shift"](normed)
        fused = front["fuse"](torch.cat([front["position"](shifted),
                                         front["motion"](temporal_motion(shifted))], dim=1))
        f = model.blocks(fused).mean(dim=(2, 3)).view(2, 2, -1).mean(dim=1)
        torch.testing.assert_close(model(x), model.classifier(f), atol=1e-5, rtol=1e-5)
