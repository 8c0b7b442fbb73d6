"""The shared preprocessing: round trips on real data, each setting's effect, windows."""
from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch

from prgcn_ros.skeleton.layouts import get_layout
from prgcn_ros.skeleton.preprocess import (
    TORSO_PER_SHOULDER_WIDTH,
    PreprocessConfig,
    drop_empty_frames,
    exchange_persons,
    interpolate_frames,
    preprocess,
    preprocess_sequence,
    random_sorted_indices,
    random_window,
    random_window_indices,
    resample_window,
    uniform_indices,
    uniform_positions,
)
from prgcn_ros.skeleton.readers import read_msr_action3d, read_sbu_interaction

CENTER = ("first_frame", "per_frame", "none")
SCALE = ("torso", "none")
ALIGN = ("none", "hips", "shoulders")
MISSING = ("zero", "previous")


@pytest.fixture(scope="module")
def msr_batch(data_dir):
    """Five real MSR clips (one with lost frames) resampled to 40 frames: (N, T, 1, 20, 3)."""
    names = ["a01_s01_e01", "a05_s02_e02", "a13_s06_e01", "a16_s08_e03", "a20_s02_e01"]
    seqs = [resample_window(read_msr_action3d(data_dir / "msr_action3d" /
                                              f"{n}_skeleton3D.txt"), 40) for n in names]
    coords = torch.from_numpy(np.stack([s.coords for s in seqs]))
    conf = torch.from_numpy(np.stack([s.confidence for s in seqs]))
    assert (conf == 0).all(-1).any()   # a13_s06_e01 has lost frames
    return coords, conf


def _to_optical(coords: torch.Tensor) -> torch.Tensor:
    """Kinect (x left, y up, z forward) -> camera optical frame (x right, y down, z forward)."""
    return coords * torch.tensor([-1.0, -1.0, 1.0], dtype=coords.dtype)


def _round_trip(coords, conf, layout, config) -> float:
    model, transform = preprocess(coords, conf, layout, config)
    assert model.shape == (coords.shape[0], 3, coords.shape[1], coords.shape[3], coords.shape[2])
    back = transform.inverse(model)
    assert back.shape == coords.shape
    return float((back - coords).abs()[conf > 0].max())


@pytest.mark.parametrize("axis", ["y_up", "y_down"])
def test_round_trip_real_3d(axis, msr_batch, ntu):
    sets = [(msr_batch[0], msr_batch[1], "kinect20"),
            (torch.from_numpy(ntu.coords)[None], torch.from_numpy(ntu.confidence)[None],
             "ntu25")]
    for coords, conf, layout in sets:
        if axis == "y_down":
            coords = _to_optical(coords)       # the same people seen by an optical-frame camera
        for center, scale, align, missing in itertools.product(CENTER, SCALE, ALIGN, MISSING):
            config = PreprocessConfig(center, scale, align, axis, missing)
            assert _round_trip(coords, conf, layout, config) < 1e-5, config


@pytest.mark.parametrize("axis", ["y_up", "y_down"])
def test_round_trip_real_2d(axis, kinetics):
    coords = torch.from_numpy(kinetics.coords)[None]
    conf = torch.from_numpy(kinetics.confidence)[None]
    for center, scale, missing in itertools.product(CENTER, SCALE, MISSING):
        config = PreprocessConfig(center, scale, "none", axis, missing)
        assert _round_trip(coords, conf, "coco18", config) < 1e-5, config
        model, _ = preprocess(coords, conf, "coco18", config)
        assert torch.equal(model[:, 2], conf.permute(0, 1, 3, 2))   # channel 3 = confidence


def test_y_down_input_gives_the_same_model_input(msr_batch, kinetics):
    coords, conf = msr_batch
    for center, scale, align in itertools.product(CENTER, SCALE, ALIGN):
        up, _ = preprocess(coords, conf, "kinect20", PreprocessConfig(center, scale, align))
        down, _ = preprocess(_to_optical(coords), conf, "kinect20",
                             PreprocessConfig(center, scale, align, axis="y_down"))
        assert torch.allclose(up, down, atol=1e-5)
    xy = torch.from_numpy(kinetics.coords)[None]
    model, _ = preprocess(xy, torch.from_numpy(kinetics.confidence)[None], "coco18",
                          PreprocessConfig(center="none", scale="none", axis="y_down"))
    ok = kinetics.confidence > 0
    # image y grows down; the model's y grows up: the nose is above the neck
    nose_above = (model[0, 1, :, 0] > model[0, 1, :, 1]).numpy()[ok[:, :, 0] & ok[:, :, 1]]
    assert nose_above.mean() > 0.95


def test_centre_scale_and_alignment(msr_batch, ntu):
    coords, conf = msr_batch
    layout = get_layout("kinect20")
    hip, top = layout.index("hip_center"), layout.index("shoulder_center")
    model, tr = preprocess(coords, conf, layout, PreprocessConfig())
    for n in range(coords.shape[0]):
        first = int(torch.nonzero(conf[n, :, 0, hip] > 0)[0])
        assert torch.allclose(model[n, :, first, hip, 0], torch.zeros(3), atol=1e-6)
        both = (conf[n, :, 0, hip] > 0) & (conf[n, :, 0, top] > 0)
        torso = (model[n, :, :, top, 0] - model[n, :, :, hip, 0]).norm(dim=0)[both]
        assert torso.mean() == pytest.approx(1.0, abs=1e-5)
        assert 0.3 < float(tr.scale[n, 0]) < 0.7     # metres, an adult torso
    model, _ = preprocess(coords, conf, layout, PreprocessConfig(center="per_frame"))
    ok = conf[:, :, 0, hip] > 0
    assert model[:, :, :, hip, 0].permute(0, 2, 1)[ok].abs().max() < 1e-6

    x = torch.from_numpy(ntu.coords)[None]
    k = torch.from_numpy(ntu.confidence)[None]
    ntu_layout = get_layout("ntu25")
    for part in ("hips", "shoulders"):
        model, tr = preprocess(x, k, ntu_layout, PreprocessConfig(align_view=part))
        left = ntu_layout.index(f"left_{part[:-1]}")
        right = ntu_layout.index(f"right_{part[:-1]}")
        v = model[0, :, :, right] - model[0, :, :, left]             # (3, T, M)
        both = (k[0, :, :, left] > 0) & (k[0, :, :, right] > 0)
        direction = torch.stack((v[0], v[2]))[:, both]
        direction = direction / direction.norm(dim=0)
        mean = direction.mean(1)
        assert mean[0] > 0.9 and abs(float(mean[1])) < 1e-4        # along +x, no z
        assert torch.allclose(tr.cos**2 + tr.sin**2, torch.ones(1, 2))


def test_missing_joints(ntu):
    x = torch.from_numpy(ntu.coords)[None].clone()
    k = torch.from_numpy(ntu.confidence)[None].clone()
    k[0, 5:9, 0, 7] = 0                        # left hand lost for four frames
    x[0, 5:9, 0, 7] = 0
    model, _ = preprocess(x, k, "ntu25", PreprocessConfig(missing="zero"))
    assert not model[0, :, 5:9, 7, 0].any()
    model, _ = preprocess(x, k, "ntu25", PreprocessConfig(missing="previous"))
    for t in range(5, 9):
        assert torch.equal(model[0, :, t, 7, 0], model[0, :, 4, 7, 0])
    # a person with no confident joint at all comes out as zeros, not NaN
    k[0, :, 1] = 0
    model, tr = preprocess(x, k, "ntu25", PreprocessConfig(align_view="hips"))
    assert torch.isfinite(model).all() and not model[..., 1].any()
    assert torch.isfinite(tr.inverse(model)).all()


def test_a_person_whose_hips_are_never_seen_is_scaled_by_the_shoulders(msr_batch, kinetics):
    """A person close to the camera, hips out of view in every frame: the torso scale came
    out as 1, metres for 3D but pixels for image keypoints (model input in the hundreds). The
    widest the shoulders were, times TORSO_PER_SHOULDER_WIDTH, stands in; without shoulders
    either, 1."""
    coords, conf = msr_batch
    lay = get_layout("kinect20")
    config = PreprocessConfig(scale="torso")
    _, seen = preprocess(coords, conf, "kinect20", config)
    hipless = conf.clone()
    hipless[..., [lay.index(j) for j in ("hip_center", "left_hip", "right_hip")]] = 0.0
    _, cut = preprocess(coords, hipless, "kinect20", config)
    assert torch.all((cut.scale / seen.scale - 1).abs() < 0.2), (cut.scale, seen.scale)
    shoulders = [lay.index("left_shoulder"), lay.index("right_shoulder")]
    widest = (coords[..., shoulders[1], :] - coords[..., shoulders[0], :]).norm(dim=-1)
    widest = widest.masked_fill(~(conf[..., shoulders] > 0).all(-1), 0).amax(1)
    assert torch.allclose(cut.scale, TORSO_PER_SHOULDER_WIDTH * widest)
    neither = hipless.clone()
    neither[..., shoulders] = 0.0
    assert torch.equal(preprocess(coords, neither, "kinect20", config)[1].scale,
                       torch.ones_like(cut.scale))
    # Image keypoints in pixels, the hips cut off: input of the full body's size, not pixels.
    lay2 = get_layout(kinetics.layout)
    pixels = torch.from_numpy(kinetics.coords)[None] * torch.tensor([340.0, 256.0])
    score = torch.from_numpy(kinetics.confidence)[None]
    full, _ = preprocess(pixels, score, kinetics.layout, config)
    upper = score.clone()
    upper[..., [lay2.index(j) for j in ("left_hip", "right_hip")]] = 0.0
    cropped, _ = preprocess(pixels, upper, kinetics.layout, config)
    assert float(cropped[:, :2].abs().max()) < 5 * float(full[:, :2].abs().max())


@pytest.mark.parametrize("missing", MISSING)
def test_missing_joints_coordinates_do_not_matter_nan_included(ntu, missing):
    """A missing joint's coordinates mean nothing (SkeletonSequence): NaN or a sentinel there
    gives the input zeros give; it leaked NaN into the model input, and a NaN hip centre
    turned the torso scale off without a word."""
    x = torch.from_numpy(ntu.coords)[None].clone()
    k = torch.from_numpy(ntu.confidence)[None].clone()
    lay = get_layout("ntu25")
    lost = [lay.index("left_hand"), lay.index("spine_base")]
    k[0, 3:9, :, lost[0]] = 0
    k[0, :2, :, lost[1]] = 0
    x[0, 3:9, :, lost[0]] = 0
    x[0, :2, :, lost[1]] = 0
    config = PreprocessConfig(missing=missing, align_view="hips")
    expected, expected_transform = preprocess(x, k, "ntu25", config)
    for junk in (float("nan"), float("inf"), 1e30):
        x[0, 3:9, :, lost[0]] = junk
        x[0, :2, :, lost[1]] = junk
        model, transform = preprocess(x, k, "ntu25", config)
        assert torch.equal(model, expected), junk
        assert torch.equal(transform.scale, expected_transform.scale)


def test_batch_equals_one_by_one(msr_batch):
    coords, conf = msr_batch
    config = PreprocessConfig(center="per_frame", align_view="shoulders", missing="previous")
    batched, _ = preprocess(coords, conf, "kinect20", config)
    for n in range(coords.shape[0]):
        single, _ = preprocess(coords[n:n + 1], conf[n:n + 1], "kinect20", config)
        assert torch.allclose(batched[n:n + 1], single, atol=1e-6)


def test_inverse_of_selected_frames_and_offsets(ntu):
    x = torch.from_numpy(ntu.coords)[None]
    k = torch.from_numpy(ntu.confidence)[None]
    model, tr = preprocess(x, k, "ntu25", PreprocessConfig(center="per_frame",
                                                           align_view="hips", axis="y_down"))
    newest = tr.inverse(model[:, :, -1:], frames=[-1])
    assert torch.allclose(newest, tr.inverse(model)[:, -1:], atol=1e-6)
    with pytest.raises(ValueError, match="frames="):
        tr.inverse(model[:, :, -1:])
    offsets = torch.zeros_like(model)
    offsets[:, 0] = 0.1                        # +0.1 torso lengths along the model's x
    moved = tr.inverse(model + offsets) - tr.inverse(model)
    assert torch.allclose(moved, tr.inverse_offsets(offsets), atol=1e-5)
    # one torso length in model space is the person's torso length in metres
    assert torch.allclose(tr.inverse_offsets(offsets).norm(dim=-1),
                          0.1 * tr.scale[:, None, :, None].expand(-1, x.shape[1], -1, 25),
                          atol=1e-5)


def test_sequence_helper_and_dtypes(kinetics, ntu):
    out, tr = preprocess_sequence(kinetics, PreprocessConfig(axis="y_down"))
    assert out.shape == (3, 189, 18, 3) and out.dtype == np.float32
    with pytest.raises(ValueError, match="3D"):
        preprocess_sequence(kinetics, PreprocessConfig(align_view="hips"))
    x = torch.from_numpy(ntu.coords).double()[None]
    model, tr = preprocess(x, torch.from_numpy(ntu.confidence)[None], "ntu25",
                           PreprocessConfig())
    assert model.dtype == torch.float64 and tr.inverse(model).dtype == torch.float64
    with pytest.raises(ValueError, match="20 joints, got 25"):
        preprocess(x, torch.ones(x.shape[:4]), "kinect20", PreprocessConfig())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_cuda_matches_cpu(ntu):
    x = torch.from_numpy(ntu.coords)[None]
    k = torch.from_numpy(ntu.confidence)[None]
    config = PreprocessConfig(center="per_frame", align_view="hips", missing="previous")
    cpu, _ = preprocess(x, k, "ntu25", config)
    gpu, tr = preprocess(x.cuda(), k.cuda(), "ntu25", config)
    assert torch.allclose(cpu, gpu.cpu(), atol=1e-5)
    assert float((tr.inverse(gpu).cpu() - x).abs()[k > 0].max()) < 1e-5


def test_config_is_plain_data():
    config = PreprocessConfig(center="per_frame", scale="none", align_view="hips",
                              axis="y_down", missing="previous")
    stored = json.loads(json.dumps(config.to_dict()))
    assert PreprocessConfig.from_dict(stored) == config
    assert PreprocessConfig.from_dict({}) == PreprocessConfig()
    with pytest.raises(ValueError, match="center='middle'"):
        PreprocessConfig(center="middle")
    with pytest.raises(ValueError, match="unknown preprocess settings"):
        PreprocessConfig.from_dict({"centre": "none"})


def test_windows(data_dir):
    assert uniform_indices(10, 5).tolist() == [1, 3, 5, 7, 9]
    assert uniform_indices(3, 6).tolist() == [0, 0, 1, 1, 2, 2]
    assert uniform_indices(1, 4).tolist() == [0, 0, 0, 0]
    rng = np.random.default_rng(1)
    for frames in (1, 13, 39, 936):
        for _ in range(20):
            idx = random_window_indices(frames, 48, rng, min_fraction=0.5)
            assert len(idx) == 48 and idx.min() >= 0 and idx.max() < frames
            assert np.all(np.diff(idx) >= 0)
            assert idx.max() - idx.min() + 1 >= min(frames, 48) * 0.5 - 1
    paces = set()
    for frames in (1, 13, 39, 936):
        idx = random_sorted_indices(frames, 48, rng)
        assert len(idx) == 48 and idx.min() >= 0 and idx.max() < frames
        assert np.all(np.diff(idx) >= 0)
        paces.add(tuple(np.diff(idx)))
    assert len(paces) == 4                                      # the pace is drawn, not fixed
    seq = read_msr_action3d(data_dir / "msr_action3d" / "a13_s06_e01_skeleton3D.txt")
    assert resample_window(seq, 48).num_frames == 48
    assert random_window(seq, 32, rng).coords.shape == (32, 1, 20, 3)
    kept = drop_empty_frames(seq)
    assert kept.num_frames == seq.num_frames - 15 and (kept.confidence > 0).any(axis=(1, 2)).all()


def test_linear_windows_move_smoothly(data_dir):
    """window.interpolation: linear samples the times nearest resampling rounds to frames, so a
    short clip stretched to a long window moves in even steps instead of stalls and jumps; a
    joint missing in either neighbouring frame takes the nearer frame as nearest would."""
    for frames, length in itertools.product((1, 2, 13, 25, 39, 48, 97), (16, 48)):
        pos = uniform_positions(frames, length)
        assert pos.min() >= 0 and pos.max() <= frames - 1 and np.all(np.diff(pos) >= 0)
        assert np.array_equal(np.floor(pos + 0.5).astype(int), uniform_indices(frames, length))
    seq = read_msr_action3d(data_dir / "msr_action3d" / "a13_s06_e01_skeleton3D.txt")
    seq = drop_empty_frames(seq).select_frames(slice(0, 20))
    t = np.arange(20, dtype=np.float32)[:, None, None, None]
    seq.coords = seq.coords[:1] + t * np.array([0.01, 0.02, 0.0], np.float32)   # constant pace
    linear = resample_window(seq, 48, "linear")
    nearest = resample_window(seq, 48)
    assert np.array_equal(nearest.coords, seq.select_frames(uniform_indices(20, 48)).coords)
    inner = np.diff(linear.coords[2:-2, 0, 5, 0])              # clipped ends hold still
    assert np.allclose(inner, 0.01 * 20 / 48, atol=1e-6)
    assert (np.diff(nearest.coords[:, 0, 5, 0]) == 0).sum() > 20   # stalls, then jumps
    # a missing joint is not blended with the frame beside it
    seq.confidence[10, 0, 7] = 0
    pos = np.array([9.4, 9.6, 10.4, 10.6, 11.0])
    out = interpolate_frames(seq, pos)
    expect = seq.coords[[9, 10, 10, 11, 11], 0, 7]
    assert np.allclose(out.coords[:, 0, 7], expect)
    assert out.confidence[:, 0, 7].tolist() == [1, 0, 0, 1, 1]
    assert np.allclose(out.coords[0, 0, 6], 0.6 * seq.coords[9, 0, 6] + 0.4 * seq.coords[10, 0, 6])
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    idx = random_window_indices(seq.num_frames, 32, rng_a)      # nearest: the same crop as before
    assert np.array_equal(random_window(seq, 32, rng_b).coords, seq.select_frames(idx).coords)
    with pytest.raises(ValueError, match="interpolation 'cubic'"):
        resample_window(seq, 48, "cubic")


def test_shared_persons_keep_the_pair_geometry(data_dir):
    """persons: shared (interaction models): both people of a real SBU hug in the first one's
    frame, so their distance survives preprocessing; ``each`` puts both roots on the origin."""
    seq = read_sbu_interaction(data_dir / "sbu_interaction" / "s01s02" / "06" / "001" /
                               "skeleton_pos.txt")
    coords = torch.from_numpy(seq.coords)[None]                  # (1, T, 2, 15, 3)
    conf = torch.from_numpy(seq.confidence)[None]
    hips = [get_layout("openni15").index(n) for n in ("left_hip", "right_hip")]

    def root_distance(model: torch.Tensor) -> float:              # first frame, model units
        root = model[0, :, 0][:, hips].mean(1)                    # (C, M)
        return float((root[:, 0] - root[:, 1]).norm())

    each, _ = preprocess(coords, conf, "openni15", PreprocessConfig())
    shared, transform = preprocess(coords, conf, "openni15", PreprocessConfig(persons="shared"))
    metres = float((coords[0, 0, 0, hips].mean(0) - coords[0, 0, 1, hips].mean(0)).norm())
    assert 0.3 < metres < 2.0                                     # two people, close
    assert root_distance(each) < 1e-5
    assert root_distance(shared) == pytest.approx(metres / float(transform.scale[0, 0]),
                                                  rel=1e-4)
    assert torch.equal(transform.scale[0, 0], transform.scale[0, 1])
    back = transform.inverse(shared)
    assert float((back - coords).abs()[conf > 0].max()) < 1e-5
    # A lone person (second slot empty, as live and in training): same as ``each`` for it.
    alone = conf.clone()
    alone[:, :, 1] = 0
    a, _ = preprocess(coords, alone, "openni15", PreprocessConfig(persons="shared"))
    b, _ = preprocess(coords, alone, "openni15", PreprocessConfig())
    assert torch.allclose(a, b)


def test_pair_persons_do_not_depend_on_the_slot_order(data_dir):
    """persons: pair: centred on the mean of both roots and scaled by the mean torso, so the
    two slots exchanged give the same model input with its slots exchanged; the distance between
    the people, the way back, and a lone person are as with ``shared``."""
    seq = read_sbu_interaction(data_dir / "sbu_interaction" / "s01s02" / "06" / "001" /
                               "skeleton_pos.txt")
    coords = torch.from_numpy(seq.coords)[None]                  # (1, T, 2, 15, 3)
    conf = torch.from_numpy(seq.confidence)[None]
    config = PreprocessConfig(persons="pair")
    model, transform = preprocess(coords, conf, "openni15", config)
    swapped, _ = preprocess(coords.flip(2), conf.flip(2), "openni15", config)
    torch.testing.assert_close(swapped, model.flip(-1), atol=1e-6, rtol=1e-6)
    hips = [get_layout("openni15").index(n) for n in ("left_hip", "right_hip")]
    roots = model[0, :, 0][:, hips].mean(1)                      # (C, M), first frame
    torch.testing.assert_close(roots[:, 0], -roots[:, 1], atol=1e-6, rtol=1e-6)
    shared, shared_transform = preprocess(coords, conf, "openni15",
                                          PreprocessConfig(persons="shared"))
    distance = float((roots[:, 0] - roots[:, 1]).norm()) * float(transform.scale[0, 0])
    shared_roots = shared[0, :, 0][:, hips].mean(1)
    assert distance == pytest.approx(float((shared_roots[:, 0] - shared_roots[:, 1]).norm())
                                     * float(shared_transform.scale[0, 0]), rel=1e-5)
    back = transform.inverse(model)
    assert float((back - coords).abs()[conf > 0].max()) < 1e-5
    alone = conf.clone()
    alone[:, :, 1] = 0
    a, _ = preprocess(coords, alone, "openni15", config)
    b, _ = preprocess(coords, alone, "openni15", PreprocessConfig())
    assert torch.allclose(a, b)
    with pytest.raises(ValueError, match="align_view"):
        PreprocessConfig(persons="pair", align_view="hips")


def test_exchange_persons_swaps_the_slots_of_pairs_only(data_dir):
    """A pair's two slots change places; a lone person (second slot empty) stays in slot 0."""
    seq = read_sbu_interaction(data_dir / "sbu_interaction" / "s01s02" / "06" / "001" /
                               "skeleton_pos.txt")
    coords = torch.from_numpy(seq.coords)[None].repeat(2, 1, 1, 1, 1)     # (2, T, 2, 15, 3)
    conf = torch.from_numpy(seq.confidence)[None].repeat(2, 1, 1, 1)
    conf[1, :, 1] = 0                                                     # sample 1: alone
    swapped, swapped_conf, both = exchange_persons(coords, conf)
    assert both.tolist() == [True, False]
    torch.testing.assert_close(swapped[0], coords[0].flip(1))
    torch.testing.assert_close(swapped_conf[0], conf[0].flip(1))
    torch.testing.assert_close(swapped[1], coords[1])
    torch.testing.assert_close(swapped_conf[1], conf[1])
    with pytest.raises(ValueError, match="two person slots"):
        exchange_persons(coords[:, :, :1], conf[:, :, :1])


@pytest.mark.parametrize("slot", [0, 1])
def test_a_lone_person_without_a_root_is_centred_on_themselves_in_pair_modes(slot):
    """An upper body (no hips) beside an empty padding slot: 'pair' and 'shared' centre on
    that person, as 'each' does, not on the empty slot's zeros."""
    layout = get_layout("coco18")
    coords, conf = torch.zeros(1, 4, 2, 18, 2), torch.zeros(1, 4, 2, 18)
    for name in ("nose", "neck", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow"):
        j = layout.index(name)
        coords[0, :, slot, j] = torch.tensor([600.0 + 10 * j, 300.0 + 5 * j])
        conf[0, :, slot, j] = 0.9
    each, _ = preprocess(coords, conf, "coco18", PreprocessConfig(persons="each"))
    for persons in ("pair", "shared"):
        out, _ = preprocess(coords, conf, "coco18", PreprocessConfig(persons=persons))
        torch.testing.assert_close(out[..., slot], each[..., slot])
