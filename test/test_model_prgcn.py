"""PR-GCN behaviour: every window length and batch size, refined poses, gradients, switches."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from prgcn_ros.model import PRGCN, STGCN, build_model, model_arch
from prgcn_ros.model.bones import RigidBones, held_bones
from prgcn_ros.model.gcn import GraphConv, SpatialConv
from prgcn_ros.model.gfm import temporal_max_pool
from prgcn_ros.model.graph import normalized_adjacency
from prgcn_ros.model.tcn import TemporalConv
from prgcn_ros.skeleton.layouts import Layout, get_layout

FRAMES = [*range(1, 65), 150, 300]


@pytest.fixture(autouse=True, scope="module")
def _one_intra_op_thread():
    # On 2 shared cores, a second intra-op thread stalls every op whenever the other core is
    # busy (10-40x slower here); one thread keeps these tests fast and their timing stable.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _calibrate(model: torch.nn.Module, shape: tuple[int, ...]) -> torch.nn.Module:
    """Give BN realistic running statistics (as after training), then eval mode."""
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(shape))
    return model.eval()


@pytest.fixture(scope="module")
def kinect_model() -> PRGCN:
    torch.manual_seed(0)
    return _calibrate(PRGCN(20, "kinect20"), (4, 3, 40, 20, 1))


def test_every_window_length_in_eval(kinect_model):
    with torch.inference_mode():
        for t in FRAMES:
            x = torch.randn(1, 3, t, 20, 2)
            logits, refined = kinect_model(x)
            assert logits.shape == (1, 20) and refined.shape == x.shape, t
            assert torch.isfinite(logits).all() and torch.isfinite(refined).all(), t


def test_every_window_length_in_training_with_one_sample():
    torch.manual_seed(1)
    model = PRGCN(5, "ntu25").train()  # N·M = 1: BN sees one sample (the reference code crashes)
    for t in (1, 2, 3, 5, 7, 13, 31, 64):
        x = torch.randn(1, 3, t, 25, 1)
        logits, refined = model(x)
        F.cross_entropy(logits, torch.tensor([1])).backward()
        assert torch.isfinite(logits).all() and refined.shape == x.shape, t


@pytest.mark.parametrize("n,m", [(1, 1), (2, 1), (1, 3), (3, 2)])
def test_batches_and_persons(kinect_model, n, m):
    x = torch.randn(n, 3, 17, 20, m)
    with torch.inference_mode():
        logits, refined = kinect_model(x)
        assert logits.shape == (n, 20) and refined.shape == x.shape
        # Samples are independent in eval mode: batching does not change a sample's output.
        alone, _ = kinect_model(x[-1:])
    torch.testing.assert_close(logits[-1:], alone, atol=1e-4, rtol=1e-4)


def test_refined_poses_are_input_plus_offset_in_input_units():
    model = PRGCN(20, "kinect20").eval()
    offset = torch.tensor([0.25, -1.5, 3.0])
    with torch.no_grad():
        model.prm.offset.weight.zero_()
        model.prm.offset.bias.copy_(offset)
    x = 1000.0 * torch.randn(2, 3, 9, 20, 2)  # millimetres: far from the normalised range
    _, refined = model(x)
    assert torch.equal(refined, x + offset.view(1, 3, 1, 1, 1))


def test_2d_input_refines_x_y_and_passes_confidence_through():
    model = PRGCN(400, "coco18", refine_channels=2).eval()
    with torch.no_grad():
        model.prm.offset.weight.zero_()
        model.prm.offset.bias.copy_(torch.tensor([4.0, -2.0]))
    x = torch.rand(1, 3, 11, 18, 2) * torch.tensor([1920.0, 1080.0, 1.0]).view(1, 3, 1, 1, 1)
    _, refined = model(x)
    assert torch.equal(refined[:, 0], x[:, 0] + 4.0) and torch.equal(refined[:, 1], x[:, 1] - 2.0)
    assert torch.equal(refined[:, 2], x[:, 2])


def test_rigid_bones_hold_each_limb_bone_over_the_window_and_keep_its_direction():
    """A PRM with large random offsets: with rigid bones every limb bone keeps its refined
    direction and one length over the frames that hold the person; spine and neck segments,
    padding frames and an empty person slot stay as refined."""
    torch.manual_seed(3)
    free = PRGCN(20, "kinect20").eval()
    rigid = PRGCN(20, "kinect20", rigid_bones=True).eval()
    with torch.no_grad():
        free.prm.offset.weight.normal_(std=0.3)
    rigid.load_state_dict(free.state_dict())
    x = torch.randn(2, 3, 12, 20, 2)
    x[:, :, 9:] = 0.0                       # padding frames
    x[1, :, :, :, 1] = 0.0                  # sample 1 has one person
    with torch.no_grad():
        _, loose = free(x)
        _, held = rigid(x)
    layout = rigid.layout
    people = [(0, 0), (0, 1), (1, 0)]                           # (sample, slot) with a body
    for (parent, child), is_held in zip(layout.tree(), held_bones(layout)):
        bone = held[..., child, :] - held[..., parent, :]        # (N, 3, T, M)
        given = loose[..., child, :] - loose[..., parent, :]
        for n, m in people:
            b, g = bone[n, :, :9, m], given[n, :, :9, m]
            if is_held:
                length = b.norm(dim=0)
                assert float(length.std() / length.mean()) < 1e-5
                torch.testing.assert_close(b / length, g / g.norm(dim=0), atol=1e-5, rtol=1e-5)
            else:
                torch.testing.assert_close(b, g, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(held[:, :, 9:], loose[:, :, 9:])
    torch.testing.assert_close(held[1, ..., 1], loose[1, ..., 1])


def test_rigid_bones_rebuild_a_chain_from_the_centre_and_leave_unconnected_joints():
    """Each joint is rebuilt as the centre plus the held bones on its path; a joint the bones do
    not connect to the centre keeps its place."""
    layout = Layout("chain", ("hip_center", "left_knee", "left_ankle", "lost"),
                    bones=((0, 1), (1, 2)), center=0)
    coords = torch.zeros(1, 3, 2, 4)
    coords[0, :, 0] = torch.tensor([[0.0, 1, 1, 5], [0, 0, 2, 5], [0, 0, 0, 5]])
    coords[0, :, 1] = torch.tensor([[1.0, 4, 4, 7], [0, 0, 1, 7], [0, 0, 0, 7]])
    rebuilt = RigidBones(layout)(coords, torch.ones(1, 1, 2, 1))
    # Knee bone lengths 1 and 3 hold at 2, ankle bones 2 and 1 at 1.5, directions kept.
    expected = torch.tensor([[[0.0, 2, 2, 5], [0, 0, 1.5, 5], [0, 0, 0, 5]],
                             [[1.0, 3, 3, 7], [0, 0, 1.5, 7], [0, 0, 0, 7]]]).permute(1, 0, 2)
    torch.testing.assert_close(rebuilt[0], expected)


def test_spine_and_neck_segments_are_the_bones_left_free():
    def free(name: str) -> set[tuple[str, str]]:
        layout = get_layout(name)
        return {(layout.joints[a], layout.joints[b])
                for (a, b), held in zip(layout.tree(), held_bones(layout)) if not held}

    assert free("kinect20") == {("hip_center", "spine"), ("spine", "shoulder_center"),
                                ("shoulder_center", "head")}
    assert free("ntu25") == {("spine_shoulder", "spine_mid"), ("spine_mid", "spine_base"),
                             ("spine_shoulder", "neck"), ("neck", "head")}


def test_image_keypoints_refine_x_and_y_by_default():
    """A 2D layout's third channel is the detector's score: by default the PRM leaves it as it
    came (it refined it, no loss reaching it, for the classifier to read)."""
    model = PRGCN(7, "coco18").eval()
    assert model.refine_channels == 2 and model.arch["refine_channels"] == 2
    x = torch.rand(1, 3, 9, 18, 1)
    with torch.no_grad():
        assert torch.equal(model(x)[1][:, 2], x[:, 2])
    assert PRGCN(7, "kinect20").refine_channels == 3
    # A 2D model written before (refine_channels 3 in its file) is still built as it was, so
    # it loads, fine-tunes and resumes; rigid bones never take (x, y, score) for 3D.
    assert PRGCN(7, "coco18", refine_channels=3).refine_channels == 3
    with pytest.raises(ValueError, match="rigid_bones"):
        PRGCN(7, "coco18", refine_channels=3, rigid_bones=True)


def test_rigid_bones_need_3d_refinement():
    with pytest.raises(ValueError, match="rigid_bones"):
        PRGCN(400, "coco18", refine_channels=2, rigid_bones=True)
    with pytest.raises(ValueError, match="rigid_bones"):
        PRGCN(20, "kinect20", use_prm=False, rigid_bones=True)


def _gfm_input(model: PRGCN, x: torch.Tensor) -> torch.Tensor:
    """What the network's data norm (the GFM's input) receives for ``x``."""
    seen = []
    handle = model.data_norm.register_forward_pre_hook(lambda _, args: seen.append(args[0]))
    with torch.no_grad():
        model(x)
    handle.remove()
    return seen[0]


def test_bone_input_adds_each_joints_vector_from_its_parent():
    torch.manual_seed(4)
    model = PRGCN(20, "kinect20", use_prm=False, bone_input=True).eval()
    x = torch.randn(2, 3, 9, 20, 1)
    seen = _gfm_input(model, x)
    assert seen.shape == (2, 6, 9, 20)
    poses = x[..., 0]
    torch.testing.assert_close(seen[:, :3], poses)
    layout = model.layout
    children = set()
    for parent, child in layout.tree():
        torch.testing.assert_close(seen[:, 3:, :, child], poses[..., child] - poses[..., parent])
        children.add(child)
    assert children == set(range(20)) - {layout.center}
    assert torch.equal(seen[:, 3:, :, layout.center], torch.zeros(2, 3, 9))


def test_bone_input_of_image_keypoints_adds_the_refined_coordinates_bones_only():
    """2D keypoints (x, y, confidence): the PRM refines x and y, and the bones are of those two
    (no bone of the confidence): 3 + 2 channels into the GFM."""
    torch.manual_seed(4)
    model = PRGCN(20, "coco18", bone_input=True).eval()
    x = torch.randn(2, 3, 9, 18, 1)
    assert _gfm_input(model, x).shape == (2, 5, 9, 18)
    with torch.no_grad():
        assert model(x)[0].shape == (2, 20)


def test_partner_input_shows_each_person_the_other_and_a_lone_person_nobody():
    torch.manual_seed(5)
    model = PRGCN(8, "openni15", use_prm=False, partner_input=True).eval()
    x = torch.randn(3, 3, 10, 15, 2)
    x[2, ..., 1] = 0.0                                          # sample 2: one person
    seen = _gfm_input(model, x).view(3, 2, 6, 10, 15)
    for n in (0, 1):
        torch.testing.assert_close(seen[n, 0, 3:], x[n, ..., 1])
        torch.testing.assert_close(seen[n, 1, 3:], x[n, ..., 0])
    assert not seen[2, :, 3:].any()
    with torch.no_grad():
        alone = model(x[2:, ..., :1])[0]
        paired = model(x[2:])[0]
        swapped = model(x.flip(-1))[0]
        assert torch.equal(_gfm_input(model, x[2:, ..., :1])[:, 3:], torch.zeros(1, 3, 10, 15))
        torch.testing.assert_close(model(x)[0], swapped, atol=1e-5, rtol=1e-5)
    assert alone.shape == paired.shape == (1, 8)


@pytest.mark.parametrize("slots", [(0, 1), (0, 2), (1, 2)])
def test_partner_input_with_three_slots_is_the_other_present_person(slots):
    """M = 3, two people: each sees the other present one, not the next slot's (an empty one's
    for slot 0 of slots 0 and 1), and the empty slot sees nobody."""
    torch.manual_seed(7)
    model = PRGCN(8, "openni15", use_prm=False, partner_input=True).eval()
    x = torch.zeros(1, 3, 10, 15, 3)
    for slot in slots:
        x[..., slot] = torch.randn(1, 3, 10, 15)
    seen = _gfm_input(model, x).view(3, 6, 10, 15)
    a, b = slots
    torch.testing.assert_close(seen[a, 3:], x[0, ..., b])
    torch.testing.assert_close(seen[b, 3:], x[0, ..., a])
    assert not seen[3 - a - b, 3:].any()


def test_extent_norm_shows_the_gfm_each_axis_on_minus_one_to_one():
    """Per sample and axis over frames, joints and present persons; an empty slot stays empty,
    so the classifier does not see how large or where a clip is along any axis."""
    torch.manual_seed(6)
    model = PRGCN(8, "openni15", use_prm=False, extent_norm=True).eval()
    x = torch.randn(3, 3, 10, 15, 2)
    x[1, ..., 1] = 0.0                                          # sample 1: one person
    seen = _gfm_input(model, x).view(3, 2, 3, 10, 15)
    for n in (0, 2):
        torch.testing.assert_close(seen[n].amin(dim=(0, 2, 3)), -torch.ones(3))
        torch.testing.assert_close(seen[n].amax(dim=(0, 2, 3)), torch.ones(3))
    torch.testing.assert_close(seen[1, 0].amin(dim=(1, 2)), -torch.ones(3))
    assert not seen[1, 1].any()
    stretched = x * torch.tensor([2.0, 0.5, 3.0])[:, None, None, None] + torch.tensor(
        [1.0, -2.0, 0.5])[:, None, None, None]
    stretched[1, ..., 1] = 0.0
    with torch.no_grad():
        torch.testing.assert_close(model(stretched)[0], model(x)[0], atol=1e-4, rtol=1e-4)
        plain = PRGCN(8, "openni15", use_prm=False).eval()
        assert not torch.allclose(plain(stretched)[0], plain(x)[0], atol=1e-3)


def test_extent_norm_keeps_the_refined_poses_in_input_coordinates_and_trains():
    torch.manual_seed(7)
    model = PRGCN(10, "kinect20", extent_norm=True).train()
    x = (torch.randn(2, 3, 12, 20, 2) * 0.3).requires_grad_(True)
    with torch.no_grad():
        x[1, ..., 1] = 0.0
    logits, refined = model(x)
    assert refined.shape == x.shape and float((refined - x).detach().abs().mean()) < 0.2
    (logits.sum() + refined.sum()).backward()
    assert torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_learned_edges_link_joints_the_skeleton_does_not():
    """The two hands are 8 bones apart: one plain graph convolution never mixes them, one with
    a learned link from the right hand to the left does (and starts as the plain one)."""
    layout = get_layout("kinect20")
    left, right = layout.index("left_hand"), layout.index("right_hand")
    adjacency = torch.from_numpy(normalized_adjacency(layout))
    torch.manual_seed(8)
    x = torch.randn(2, 4, 5, 20)
    moved = x.clone()
    moved[:, :, :, right] += 1.0
    plain = SpatialConv(4, 6, adjacency)
    linked = SpatialConv(4, 6, adjacency, learned_edges=True)
    linked.load_state_dict(plain.state_dict(), strict=False)
    with torch.no_grad():
        torch.testing.assert_close(linked(x), plain(x))
        assert torch.equal(plain(moved)[..., left], plain(x)[..., left])
        linked.edges[0, left, right] = 0.5
        assert not torch.allclose(linked(moved)[..., left], linked(x)[..., left])


def test_sample_topology_links_each_sample_its_own_way():
    """CTR-GCN's per-sample links: they start as the plain convolution (α = 0), then join the
    two hands, differently for two samples and per output channel."""
    layout = get_layout("kinect20")
    left, right = layout.index("left_hand"), layout.index("right_hand")
    adjacency = torch.from_numpy(normalized_adjacency(layout))
    torch.manual_seed(11)
    x = torch.randn(2, 4, 5, 20)
    plain = SpatialConv(4, 6, adjacency)
    linked = SpatialConv(4, 6, adjacency, sample_topology=True)
    linked.load_state_dict(plain.state_dict(), strict=False)
    with torch.no_grad():
        torch.testing.assert_close(linked(x), plain(x))
        linked.topology.alpha.fill_(1.0)
        links = linked.topology(x)                          # (N, K, C_out, V, V)
        assert links.shape == (2, 3, 6, 20, 20)
        assert not torch.allclose(links[0, :, :, left, right], links[1, :, :, left, right])
        assert not torch.allclose(links[0, 0, 0], links[0, 0, 1])
        moved = x.clone()
        moved[:, :, :, right] += 1.0
        # The right hand reaches the left hand's output, which the plain convolution never does
        # (moving the right hand also changes the links, hence a difference, not an identity).
        assert torch.equal(plain(moved)[..., left], plain(x)[..., left])
        assert not torch.allclose(linked(moved)[..., left], linked(x)[..., left])


def test_sample_topology_is_ctr_gcns_sum():
    """SpatialConv with per-sample links against the sum written out: z_k = W_k x + b_k, then
    out[n, c, t, i] = Σ_k Σ_j (Â_k ⊙ M_k)[i, j] z_k[n, c, t, j] + α Q_k[n, c, i, j] z_k[...],
    Q_k = ξ_k(tanh(φ(x̄)_i - ψ(x̄)_j)); in training and in the folded eval layer."""
    layout = get_layout("kinect20")
    adjacency = torch.from_numpy(normalized_adjacency(layout))
    torch.manual_seed(13)
    conv = SpatialConv(5, 6, adjacency, sample_topology=True)
    with torch.no_grad():
        conv.topology.alpha.fill_(0.7)
        conv.attention.uniform_(0.5, 1.5)
        x = torch.randn(2, 5, 7, 20)
        k, v = adjacency.shape[0], 20
        z = conv.conv(x).view(2, k, 6, 7, v)                       # (N, K, C, T, V)
        top = conv.topology
        mean = x.mean(dim=2)
        relation = torch.tanh(top.source(mean)[:, :, :, None] - top.target(mean)[:, :, None, :])
        q = top.expand(relation).view(2, k, 6, v, v)               # (N, K, C, i, j)
        shared = torch.einsum("kij,nkctj->ncti", adjacency * conv.attention, z)
        own = torch.einsum("nkcij,nkctj->ncti", 0.7 * q, z)
        torch.testing.assert_close(conv(x), shared + own, atol=1e-5, rtol=1e-5)
        # The folded layer (eval BN, residual projection) on the same operation.
        layer = GraphConv(5, 6, adjacency, sample_topology=True)
        layer.gcn.load_state_dict(conv.state_dict())
        layer.train()(x)                                           # running statistics
        layer.eval()
        bn, (proj, proj_bn) = layer.bn, layer.residual
        expected = torch.relu(bn(shared + own) + proj_bn(proj(x)))
        torch.testing.assert_close(layer(x), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("option, suffix, added", [
    ("learned_edges", ".edges", 7 * 3 * 20 * 20),
    ("sample_topology", ".alpha", None)])
def test_links_sit_in_the_gfm_and_tam_and_learn(option, suffix, added):
    torch.manual_seed(9)
    model = PRGCN(10, "kinect20", **{option: True}).train()
    links = {name for name, _ in model.named_parameters() if name.endswith(suffix)}
    assert len(links) == 7 and all(not name.startswith("prm.") for name in links)
    assert any(name.startswith("tam.") for name in links)
    assert model.arch[option] is True
    base = sum(p.numel() for p in PRGCN(10, "kinect20").parameters())
    grown = sum(p.numel() for p in model.parameters()) - base
    assert grown == added if added else 0 < grown < 0.15 * base    # (60,183: 12 %)
    logits, _ = model(torch.randn(4, 3, 24, 20, 1))
    F.cross_entropy(logits, torch.tensor([0, 1, 2, 3])).backward()
    for name, parameter in model.named_parameters():
        if name in links:
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def _first_frame_reach(**options) -> tuple[int, PRGCN]:
    """How many of the GFM's 8 output steps a change in a 48-frame window's first frame
    reaches (a trained-like network without PRM, built with ``options``), and the network."""
    torch.manual_seed(10)
    model = _calibrate(PRGCN(5, "kinect20", use_prm=False, **options), (4, 3, 48, 20, 1))
    x = torch.randn(1, 3, 48, 20, 1)
    moved = x.clone()
    moved[:, :, 0] += 1.0
    with torch.no_grad():
        f, g = (model.gfm(model.data_norm(_gfm_input(model, v))) for v in (x, moved))
    assert f.shape[2] == 8
    return int(((f - g).abs().amax(dim=(0, 1, 3)) > 1e-6).sum()), model


def test_a_wider_temporal_kernel_sees_further_back():
    """A change in the window's first frame reaches more of the GFM's output steps with
    K_t = 9 than with the paper's 3 (receptive fields of 57 and 15 frames)."""
    assert _first_frame_reach(temporal_kernel=3)[0] < _first_frame_reach(temporal_kernel=9)[0]
    with pytest.raises(ValueError, match="odd"):
        PRGCN(5, "kinect20", temporal_kernel=4)


def test_multi_scale_temporal_layers_see_further_back_and_keep_every_length():
    """With dilations 1 and 2 (K_t = 3) a change in the window's first frame reaches more of the
    GFM's output steps than with the paper's layers, the lengths are the paper's for any T
    (strides 2 and 3 included), and every branch learns."""
    plain, _ = _first_frame_reach()
    reached, model = _first_frame_reach(temporal_dilations=[1, 2])
    assert plain < reached, (plain, reached)
    with torch.no_grad():
        for t in FRAMES:
            assert model(torch.randn(2, 3, t, 20, 1))[0].shape == (2, 5), t
    model.train()
    model(torch.randn(4, 3, 48, 20, 1))[0].sum().backward()
    layers = [step.motion for step in model.gfm.steps if hasattr(step.motion, "branches")]
    assert len(layers) == 4
    for layer in layers:
        for branch in layer.branches:
            assert branch[0].weight.grad.abs().sum() > 0
    for bad in ([], [0, 1], [1.5], "12", [True, 2], list(range(1, 16))):
        with pytest.raises(ValueError, match="temporal_dilations"):
            PRGCN(5, "kinect20", temporal_dilations=bad)


def test_gfm_width_sets_the_channels_of_gfm_and_tam():
    """gfm_channels widens both flows (the position flow ending at twice the width) and the
    TAM's input, so parameters grow; the paper's network is the default; too narrow refused."""
    paper, wide = PRGCN(10, "kinect20"), PRGCN(10, "kinect20", gfm_channels=96)
    assert paper.gfm.out_channels == 128 and wide.gfm.out_channels == 192
    assert wide.tam.squeeze.in_channels == 192
    temporal = [step.motion for step in wide.gfm.steps if isinstance(step.motion, TemporalConv)]
    assert len(temporal) == 4 and all(layer.conv.out_channels == 96 for layer in temporal)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert 1.5 * count(paper) < count(wide)
    assert build_model(paper.arch).arch["gfm_channels"] == 64
    with torch.no_grad():
        assert wide.eval()(torch.randn(2, 3, 30, 20, 1))[0].shape == (2, 10)
    with pytest.raises(ValueError, match="gfm_channels"):
        PRGCN(10, "kinect20", gfm_channels=4)
    with pytest.raises(ValueError, match="gfm_channels"):
        build_model({**paper.arch, "gfm_channels": "96"})
    # Branches of the multi-scale layers need 4 channels each: 16 channels hold 2 dilations.
    PRGCN(10, "kinect20", gfm_channels=16, temporal_dilations=[1, 2])
    with pytest.raises(ValueError, match="1-2 positive"):
        PRGCN(10, "kinect20", gfm_channels=16, temporal_dilations=[1, 2, 3])


def test_without_prm_the_refined_poses_are_the_input():
    model = PRGCN(10, "ntu25", use_prm=False, use_tam=False).eval()
    x = torch.randn(2, 3, 8, 25, 1)
    _, refined = model(x)
    assert torch.equal(refined, x)


def test_classification_loss_reaches_every_prm_parameter():
    torch.manual_seed(2)
    model = PRGCN(20, "kinect20").train()
    logits, _ = model(torch.randn(4, 3, 30, 20, 1))
    F.cross_entropy(logits, torch.tensor([0, 1, 2, 3])).backward()
    for name, parameter in model.prm.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all() and parameter.grad.abs().sum() > 0, name


@pytest.mark.parametrize("kwargs", [dict(fusion="sequential"), dict(use_motion=False),
                                    dict(fusion="sequential", use_motion=False),
                                    dict(use_tam=False), dict(use_prm=False, use_tam=False),
                                    dict(temporal_kernel=9),
                                    dict(fusion="sequential", temporal_kernel=5),
                                    dict(fusion="sequential", temporal_dilations=[1, 2, 3]),
                                    dict(gfm_channels=32),
                                    dict(fusion="sequential", gfm_channels=96)])
def test_ablation_variants_run(kwargs):
    model = PRGCN(7, "coco18", **kwargs).eval()
    with torch.inference_mode():
        for t in (1, 5, 64):
            logits, refined = model(torch.randn(2, 3, t, 18, 1))
            assert logits.shape == (2, 7) and torch.isfinite(logits).all()


@pytest.mark.parametrize("variant", ["yan2018", "prgcn_table1"])
def test_stgcn_runs_for_any_length(variant):
    model = STGCN(20, "kinect20", variant=variant).eval()
    with torch.inference_mode():
        for t in (1, 2, 3, 4, 9, 31, 64):
            logits = model(torch.randn(2, 3, t, 20, 2))
            assert logits.shape == (2, 20) and torch.isfinite(logits).all()
    model.train()(torch.randn(1, 3, 1, 20, 1)).sum().backward()  # N·M = T = 1 in training


def test_fusion_pooling_matches_strided_lengths():
    for t in range(1, 40):
        x = torch.randn(1, 2, t, 3)
        for stride in (2, 3):
            expected = F.max_pool2d(x, (stride, 1), (stride, 1), ceil_mode=True)
            assert torch.equal(temporal_max_pool(x, stride), expected), (t, stride)


def test_build_model_rebuilds_from_arch():
    arch = {"name": "prgcn", "num_classes": 20, "layout": "kinect20", "in_channels": 3,
            "refine_channels": 3, "use_prm": True, "use_tam": True, "fusion": "parallel"}
    model = build_model(arch)
    assert isinstance(model, PRGCN) and {**model_arch(model), **arch} == model_arch(model)
    again = build_model(model_arch(model))
    assert again.state_dict().keys() == model.state_dict().keys()
    stgcn = build_model({"name": "stgcn", "num_classes": 5, "layout": "ntu25"})
    assert isinstance(stgcn, STGCN) and build_model(model_arch(stgcn)).arch == stgcn.arch
    for bad in ({"name": "resnet"}, {"name": "prgcn", "num_classes": 2, "layout": "kinect20",
                                     "colour": 1}, {"name": "prgcn", "num_classes": 2,
                                                    "layout": "kinect20", "fusion": "serial"}):
        with pytest.raises(ValueError):
            build_model(bad)


def test_custom_layout_model():
    stick = Layout(name="stick4", joints=("a", "b", "c", "d"), bones=((0, 1), (1, 2), (2, 3)),
                   center=1)
    model = PRGCN(3, stick)
    rebuilt = build_model(model.arch)
    assert rebuilt.layout == stick
    logits, _ = rebuilt.eval()(torch.randn(1, 3, 6, 4, 1))
    assert logits.shape == (1, 3)


def test_device_agnostic_on_meta_device():
    # Nothing is created on a fixed device: the whole forward runs on "meta" tensors.
    for model in (PRGCN(20, "ntu25"), STGCN(20, "ntu25")):
        model = model.to("meta").eval()
        out = model(torch.zeros(2, 3, 33, 25, 2, device="meta"))
        logits = out[0] if isinstance(out, tuple) else out
        assert logits.device.type == "meta" and logits.shape == (2, 20)


def test_graph_norm_is_part_of_the_architecture_and_older_files_read_as_the_paper():
    """graph_norm builds every graph convolution on that adjacency (PRM, GFM and TAM share
    it), goes into the arch dict a model file stores, and an arch dict without it (every model
    file written before it existed) builds the paper's eq. (2) as printed."""
    balanced = PRGCN(10, "kinect20", graph_norm="balanced")
    assert balanced.arch["graph_norm"] == "balanced"
    expected = torch.from_numpy(normalized_adjacency("kinect20", norm="balanced"))
    buffers = [b for name, b in balanced.named_buffers() if b.shape == expected.shape]
    assert buffers and all(torch.equal(b, expected) for b in buffers)
    older = {k: v for k, v in PRGCN(10, "kinect20").arch.items() if k != "graph_norm"}
    rebuilt = build_model(older)
    assert rebuilt.arch["graph_norm"] == "paper"
    paper = torch.from_numpy(normalized_adjacency("kinect20"))
    assert all(torch.equal(b, paper) for _, b in rebuilt.named_buffers() if b.shape == paper.shape)
    with pytest.raises(ValueError, match="graph_norm"):
        PRGCN(10, "kinect20", graph_norm="symmetric")
