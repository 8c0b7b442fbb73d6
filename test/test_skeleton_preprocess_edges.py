"""Edges of the shared preprocessing, windows, batching and augmentation (tests a mutation audit
of preprocess, batching and augment proposed for mutants the other tests let through)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from test_training_util import REPO, frame_counter, small_cfg

from prgcn_ros.skeleton.layouts import get_layout
from prgcn_ros.skeleton.preprocess import (
    PreprocessConfig,
    drop_empty_frames,
    exchange_persons,
    held_root,
    interpolate_frames,
    preprocess,
    random_sorted_indices,
    random_window,
    random_window_span,
    uniform_indices,
    uniform_positions,
    window_setting,
)
from prgcn_ros.skeleton.sequence import SkeletonSequence
from prgcn_ros.training import batching
from prgcn_ros.training.augment import augment, body_shape_factors
from prgcn_ros.training.config import load_config


def _still_person(layout: str, frames: int, dims: int = 3, seed: int = 0,
                  at=(1.0, 0.2, 3.0)) -> tuple[torch.Tensor, torch.Tensor]:
    """One person standing still away from the sensor origin: coords (1, T, 1, V, D), conf."""
    lay = get_layout(layout)
    pose = torch.randn(lay.num_joints, dims, generator=torch.Generator().manual_seed(seed)) * 0.3
    pose = pose + torch.tensor(at[:dims])
    coords = pose.expand(1, frames, 1, -1, -1).clone()
    return coords, torch.ones(coords.shape[:4])


def test_a_midpoint_root_needs_both_of_its_joints():
    """coco18's root is the midpoint of the hips: a frame with one hip lost has no root (the
    lost hip's coordinates mean nothing), so first_frame centring uses the first frame with
    both; with one hip enough, the root was half way to the image origin."""
    lay = get_layout("coco18")
    coords, conf = _still_person("coco18", 4, dims=2, at=(600.0, 300.0))
    conf[0, 0, 0, lay.index("left_hip")] = 0                 # frame 0: one hip only
    model, transform = preprocess(coords, conf, "coco18", PreprocessConfig(scale="none"))
    hips = [lay.index("left_hip"), lay.index("right_hip")]
    root = model[0, :2, :, hips, 0].mean(-1)                 # (2, T)
    torch.testing.assert_close(root[:, 1:], torch.zeros(2, 3), atol=1e-4, rtol=0)
    torch.testing.assert_close(transform.origin[0, 0, 0], coords[0, 1, 0, hips].mean(0))


def test_missing_previous_is_zero_before_the_joint_is_first_seen():
    """missing: previous holds a lost joint at its last confident place; before its first one
    it is 0 (on the root), not wherever its meaningless sensor coordinates fall."""
    lay = get_layout("kinect20")
    coords, conf = _still_person("kinect20", 6)
    hand = lay.index("left_hand")
    conf[0, :3, 0, hand] = 0                                  # seen from frame 3 on
    conf[0, 4, 0, hand] = 0                                   # and lost again in frame 4
    for center in ("first_frame", "per_frame"):
        model, _ = preprocess(coords, conf, "kinect20",
                              PreprocessConfig(center=center, missing="previous"))
        assert torch.equal(model[0, :, :3, hand, 0], torch.zeros(3, 3)), center
        assert torch.equal(model[0, :, 4, hand, 0], model[0, :, 3, hand, 0]), center
        assert model[0, :, 3, hand, 0].abs().sum() > 0.01


def test_per_frame_centring_before_the_first_root_uses_the_first_root():
    """center: per_frame; frames before the root's first confident frame are centred on that
    one (a person standing still gives the same input in every frame), not on the origin."""
    lay = get_layout("kinect20")
    coords, conf = _still_person("kinect20", 6)
    conf[0, :2, 0, lay.index("hip_center")] = 0
    conf[0, 4, 0, lay.index("hip_center")] = 0                # and a gap later: held
    model, transform = preprocess(coords, conf, "kinect20", PreprocessConfig(center="per_frame"))
    others = [j for j in range(lay.num_joints) if j != lay.index("hip_center")]
    for t in (0, 1, 4, 5):
        torch.testing.assert_close(model[0, :, t, others], model[0, :, 2, others])
    back = transform.inverse(model)
    assert float((back - coords).abs()[conf > 0].max()) < 1e-5


def test_y_down_image_points_are_flipped_upright_not_turned():
    """axis: y_down for 2D image keypoints flips y only, (x, y) -> (x, -y): the person's left
    stays on the same side of the image (turning it 180 degrees would swap left and right)."""
    coords, conf = _still_person("coco18", 3, dims=2, at=(600.0, 300.0))
    for center in ("first_frame", "none"):
        up, _ = preprocess(coords * torch.tensor([1.0, -1.0]), conf, "coco18",
                           PreprocessConfig(center=center))
        down, _ = preprocess(coords, conf, "coco18", PreprocessConfig(center=center,
                                                                      axis="y_down"))
        torch.testing.assert_close(down, up)


def test_a_person_without_a_root_is_centred_on_the_first_frame_with_joints():
    """No confident root in any frame: the centre is the mean of the confident joints in the
    first frame that has any (a frame with none is skipped), so that frame's centroid is 0."""
    lay = get_layout("kinect20")
    coords, conf = _still_person("kinect20", 4)
    conf[0, :, 0, lay.index("hip_center")] = 0
    conf[0, 0] = 0                                            # frame 0: nobody seen
    conf[0, 1, 0, :5] = 0                                     # frame 1: some joints
    model, _ = preprocess(coords, conf, "kinect20", PreprocessConfig(scale="none"))
    seen = conf[0, 1, 0] > 0
    torch.testing.assert_close(model[0, :, 1, seen, 0].mean(1), torch.zeros(3),
                               atol=1e-5, rtol=0)


def test_shared_persons_share_the_view_rotation_and_keep_their_distance():
    """persons: shared with align_view: the second person is turned with the first one's
    rotation (one rigid transform of the scene), so the people keep their distance and each
    person's own pose; their own rotations differ here, the shared one must be used."""
    lay = get_layout("kinect20")
    a, _ = _still_person("kinect20", 3, seed=1, at=(0.0, 0.0, 3.0))
    b, _ = _still_person("kinect20", 3, seed=2, at=(1.0, 0.0, 4.0))
    coords = torch.cat([a, b], dim=2)                         # (1, T, 2, V, 3)
    conf = torch.ones(coords.shape[:4])
    model, transform = preprocess(coords, conf, "kinect20",
                                  PreprocessConfig(persons="shared", align_view="hips"))
    assert torch.equal(transform.cos[0, 0], transform.cos[0, 1])
    assert torch.equal(transform.sin[0, 0], transform.sin[0, 1])
    hip = lay.index("hip_center")
    metres = float((coords[0, 0, 0, hip] - coords[0, 0, 1, hip]).norm())
    dist = float((model[0, :, 0, hip, 0] - model[0, :, 0, hip, 1]).norm())
    assert dist == pytest.approx(metres / float(transform.scale[0, 0]), rel=1e-5)
    back = transform.inverse(model)
    assert float((back - coords).abs().max()) < 1e-5


def test_torso_scale_counts_only_frames_with_both_ends():
    """scale: torso averages root-to-shoulder-centre over frames where both are confident: a
    frame whose root was lost (its coordinates mean nothing) does not count."""
    lay = get_layout("kinect20")
    coords, conf = _still_person("kinect20", 4)
    hip, top = lay.index("hip_center"), lay.index("shoulder_center")
    torso = float((coords[0, 0, 0, top] - coords[0, 0, 0, hip]).norm())
    conf[0, 0, 0, hip] = 0
    _, transform = preprocess(coords, conf, "kinect20", PreprocessConfig())
    assert float(transform.scale[0, 0]) == pytest.approx(torso, rel=1e-5)


def test_a_torso_of_no_length_does_not_divide_by_zero():
    """A root on top of its shoulder centre (a degenerate detection) has no torso length: the
    input is not divided by 0 (the scale falls back, it is never 0)."""
    lay = get_layout("kinect20")
    coords, conf = _still_person("kinect20", 3)
    coords[..., lay.index("shoulder_center"), :] = coords[..., lay.index("hip_center"), :]
    for persons in ("each", "pair"):
        model, transform = preprocess(coords, conf, "kinect20", PreprocessConfig(persons=persons))
        assert torch.isfinite(model).all() and bool((transform.scale > 0).all())


# --------------------------------------------------------------------------- windows, pairs
def test_window_setting_of_models_from_before_the_settings():
    """A model whose metadata lacks window keys is read as such models were made: resampled to
    48 frames by the nearest frame (live and prgcn-eval both read it this way)."""
    assert window_setting(None) == ("resample", 48, "nearest")
    assert window_setting(32) == ("resample", 32, "nearest")
    assert window_setting({"mode": "crop"}) == ("crop", 48, "nearest")
    assert window_setting({"length": 20, "interpolation": "linear"}) == ("resample", 20, "linear")
    for fractional in ({"length": 47.9}, 64.5):      # a hand-edited metadata: refused, not cut
        with pytest.raises(ValueError, match="not a whole number of frames"):
            window_setting(fractional)


def _facing_the_sensor() -> tuple[torch.Tensor, list[int]]:
    """(1, 4, 1, 25, 3): a person 3 m in front of the sensor, hips along +x, 4 frames."""
    layout = get_layout("ntu25")
    rng = np.random.default_rng(0)
    body = rng.normal(0.0, 0.2, (25, 3))
    body[:, 2] += 3.0
    for name, place in (("spine_base", [0, 0, 3]), ("left_hip", [-0.1, 0, 3]),
                        ("right_hip", [0.1, 0, 3]), ("spine_shoulder", [0, 0.5, 3])):
        body[layout.index(name)] = place
    coords = torch.tensor(np.broadcast_to(body, (1, 4, 1, 25, 3)).copy(), dtype=torch.float32)
    return coords, [layout.index("left_hip"), layout.index("right_hip")]


def test_view_alignment_votes_only_with_frames_that_see_both_hips():
    """A left hip lost in half the frames (its coordinates zero there) turned the person by
    44 degrees; one never seen collapsed x and z to 0 (cos = sin = 0). Facing the sensor
    already, the person is not turned in either case."""
    coords, (left, _) = _facing_the_sensor()
    config = PreprocessConfig(align_view="hips")
    expected, turn = preprocess(coords, torch.ones(1, 4, 1, 25), "ntu25", config)
    assert float(turn.cos[0, 0]) == pytest.approx(1.0) and abs(float(turn.sin[0, 0])) < 1e-6
    for lost in (slice(2, None), slice(None)):
        confidence = torch.ones(1, 4, 1, 25)
        confidence[0, lost, 0, left] = 0
        coords_lost = coords.clone()
        coords_lost[0, lost, 0, left] = 0
        out, turn = preprocess(coords_lost, confidence, "ntu25", config)
        assert float(turn.cos[0, 0]) == pytest.approx(1.0), lost
        assert abs(float(turn.sin[0, 0])) < 1e-6, lost
        keep = torch.ones(25, dtype=torch.bool)
        keep[left] = False
        assert torch.allclose(out[0, :, 0, keep], expected[0, :, 0, keep], atol=1e-5), lost


def test_linear_resampling_breaks_a_tie_to_the_later_frame_as_nearest_does():
    """A joint missing in one neighbouring frame, at a position exactly half way, takes the
    later frame, the frame nearest resampling (floor(p + 0.5)) picks; 48 from 32 frames has
    such positions (0.5, 3.5, ...)."""
    seq = frame_counter(32)
    pos = uniform_positions(32, 48)
    ties = np.flatnonzero(pos - np.floor(pos) == 0.5)
    assert len(ties)
    p = float(pos[ties[0]])
    seq.confidence[int(np.ceil(p)), 0, 7] = 0                    # lost in the later frame
    out = interpolate_frames(seq, np.array([p]))
    nearest = uniform_indices(32, 48)[ties[0]]
    assert out.confidence[0, 0, 7] == seq.confidence[nearest, 0, 7] == 0
    assert np.allclose(out.coords[0, 0, 7], seq.coords[nearest, 0, 7])
    assert np.allclose(out.coords[0, 0, 6], p)                   # both seen: blended


def test_random_window_span_covers_every_start_and_length():
    """Training's random crop: every start from 0 to num_frames - keep is drawn (the newest
    frames included), every kept length in [min_fraction, 1] of the clip, never none."""
    rng = np.random.default_rng(0)
    spans = [random_window_span(10, rng, 0.5) for _ in range(3000)]
    assert {(s, k) for s, k in spans} == {(s, k) for k in range(5, 11) for s in range(11 - k)}
    assert all(random_window_span(1, rng, 0.1)[1] == 1 for _ in range(200))


def test_exchange_persons_only_where_asked():
    """``only`` limits the exchange to the samples it marks (training's swap_persons draw)."""
    coords = torch.randn(3, 4, 2, 20, 3)
    conf = torch.ones(3, 4, 2, 20)
    out, out_conf, done = exchange_persons(coords, conf, torch.tensor([False, True, False]))
    assert done.tolist() == [False, True, False]
    assert torch.equal(out[0], coords[0]) and torch.equal(out[2], coords[2])
    assert torch.equal(out[1], coords[1].flip(1))


def test_drop_empty_frames_keeps_a_clip_with_nobody_in_it():
    """A clip without any confident joint keeps its frames (an empty window, not a crash on a
    clip of no frames)."""
    seq = frame_counter(7)
    seq.confidence[:] = 0
    assert drop_empty_frames(seq).num_frames == 7
    seq.confidence[[2, 5]] = 1
    assert drop_empty_frames(seq).coords[:, 0, 0, 0].tolist() == [2.0, 5.0]


# --------------------------------------------------------------------------- batching, augment
def _walker(frames: int, persons: int = 1, seed: int = 0, layout: str = "kinect20",
            label: int | None = 0) -> SkeletonSequence:
    """A random pose per person walking along x (metres), every joint seen."""
    v = get_layout(layout).num_joints
    g = np.random.default_rng(seed)
    pose = g.normal(0, 0.3, (1, persons, v, 3)) + np.array([0.0, 0.0, 3.0])
    pose[:, :, :, 0] += np.arange(persons)[None, :, None] * 1.5
    walk = np.linspace(0, 1, frames)[:, None, None, None] * np.array([1.0, 0.0, 0.0])
    return SkeletonSequence(coords=(pose + walk).astype(np.float32),
                            confidence=np.ones((frames, persons, v), np.float32),
                            layout=layout, fps=15.0, label=label)


def test_held_root_of_a_midpoint_root_needs_both_hips():
    """held_root (path_scale's root): with openni15's hip midpoint, a frame where one hip is not
    present holds the last frame that had both (the lost hip's value means nothing)."""
    lay = get_layout("openni15")
    x = torch.randn(1, 3, 4, lay.num_joints, 1)
    present = torch.ones(1, 4, lay.num_joints, 1, dtype=torch.bool)
    left = lay.index("left_hip")
    present[0, 2, left] = False
    x[0, :, 2, left] = 0.0
    root = held_root(x, present, "openni15")
    torch.testing.assert_close(root[0, :, 2], root[0, :, 1])


def test_crop_window_pads_a_clip_one_frame_short_and_draws_every_start():
    """window mode crop: a clip shorter than the window by any number of frames is padded with
    empty frames at its end; in training every start is drawn, the newest frames included;
    without rng the newest frames are taken (what the live node has)."""
    for frames in (31, 20, 1):
        out = batching.crop_window(frame_counter(frames), 32, None)
        assert out.num_frames == 32 and not out.confidence[frames:].any()
        assert out.confidence[:frames].all()
    rng = np.random.default_rng(0)
    starts = {int(batching.crop_window(frame_counter(40), 32, rng).coords[0, 0, 0, 0])
              for _ in range(300)}
    assert starts == set(range(9))
    assert batching.crop_window(frame_counter(40), 32, None).coords[0, 0, 0, 0] == 8
    cfg = small_cfg(window={"mode": "crop", "length": 32})
    drawn = {int(batching.window(frame_counter(40), cfg, rng).coords[0, 0, 0, 0])
             for _ in range(50)}
    assert len(drawn) > 1


def test_train_frame_step_from_one_thins_some_clips():
    """window.train_frame_step [1, 3]: the step is drawn in [1, 3], so most clips are thinned
    (only [1, 1] means no thinning)."""
    rng = np.random.default_rng(0)
    kept = [batching.thin_frames(frame_counter(60), (1.0, 3.0), rng).num_frames for _ in range(20)]
    assert min(kept) < 40 and max(kept) <= 60


def test_a_clip_without_a_label_is_labelled_minus_one():
    cfg = small_cfg()
    batch = batching.build_batch([_walker(30, label=None), _walker(30, label=3)], cfg,
                                 train=False)
    assert batch.labels.tolist() == [-1, 3]


@pytest.mark.parametrize("setting", [{"drop_limb": 1.0}, {"path_scale": [0.5, 0.5]},
                                     {"mirror": 1.0}, {"body_shape": 0.2},
                                     {"scale": [1.0, 1.2]}, {"scale": [0.8, 1.0]}])
def test_an_augmentation_set_alone_is_applied(setting):
    """Any one augmentation setting alone makes training augment (not only rotate/scale)."""
    still = {"rotate_deg": 0.0, "scale": [1.0, 1.0], "translate": 0.0, "mirror": 0.0}
    clips = [_walker(30, seed=i) for i in range(4)]
    plain = batching.build_batch(clips, small_cfg(augment=still,
                                                  window={"train_min_fraction": 1.0}),
                                 train=True, generator=torch.Generator().manual_seed(0))
    cfg = small_cfg(augment={**still, **setting}, window={"train_min_fraction": 1.0})
    batch = batching.build_batch(clips, cfg, train=True,
                                 generator=torch.Generator().manual_seed(0))
    assert not torch.equal(batch.x, plain.x)


def test_an_evaluation_batch_is_the_same_whatever_the_generator():
    """Evaluation takes the newest window of each clip, unaugmented: no random window, thinning
    or augmentation, whatever generator is passed."""
    clips = [_walker(60, seed=i) for i in range(3)]
    for window in ({"mode": "crop", "length": 32}, {"train_min_fraction": 0.5,
                                                      "train_frame_step": [1, 3]}):
        cfg = small_cfg(window=window, augment={"rotate_deg": 30.0, "mirror": 0.5})
        one, two = (batching.build_batch(clips, cfg, train=False,
                                         generator=torch.Generator().manual_seed(seed))
                    for seed in (0, 1))
        assert torch.equal(one.x, two.x) and torch.equal(one.present, two.present)
        trained = batching.build_batch(clips, cfg, train=True,
                                       generator=torch.Generator().manual_seed(0))
        assert not torch.equal(trained.x, one.x)


def test_swap_persons_at_one_half_exchanges_about_half_of_the_pairs():
    """augment.swap_persons is a probability per clip, not on/off."""
    sbu = REPO / "config" / "train_sbu_interaction.yaml"
    still = {"rotate_deg": 0, "scale": [1.0, 1.0], "translate": 0.0}
    window = {"train_min_fraction": 1.0}
    clips = [_walker(20, persons=2, seed=i, layout="openni15") for i in range(40)]
    half = load_config(sbu, {"augment": {**still, "swap_persons": 0.5}, "window": window})
    keep = load_config(sbu, {"augment": {**still, "swap_persons": 0.0}, "window": window})
    mixed = batching.build_batch(clips, half, train=True,
                                 generator=torch.Generator().manual_seed(0)).x
    plain = batching.build_batch(clips, keep, train=True).x
    other = batching.build_batch(clips, keep, train=False, persons_exchanged=True).x
    same = [torch.equal(mixed[i], plain[i]) for i in range(40)]
    swapped = [torch.equal(mixed[i], other[i]) for i in range(40)]
    assert all(a != b for a, b in zip(same, swapped))
    assert 10 < sum(swapped) < 30


def _bodies(n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(n, 3, 4, 20, 1, generator=torch.Generator().manual_seed(0))
    return x, torch.ones(n, 4, 20, 1, dtype=torch.bool)


def test_augment_tilt_turns_about_the_horizontal_axes():
    """tilt_deg alone changes heights (a turn about x or z), within tilt_deg."""
    x, present = _bodies()
    out, _ = augment(x, present, 3, {"tilt_deg": 10}, torch.Generator().manual_seed(0))
    assert not torch.allclose(out[:, 1], x[:, 1], atol=1e-3)
    torch.testing.assert_close(out.norm(dim=1), x.norm(dim=1))


def test_augment_scale_and_translation_draw_both_ways():
    """scale [0.5, 2] gives clips shrunk and grown; translate gives offsets of both signs on
    every axis, within the bound."""
    x, present = _bodies()
    out, _ = augment(x, present, 3, {"scale": [0.5, 2.0]}, torch.Generator().manual_seed(0))
    ratio = out.norm(dim=1).mean((1, 2, 3)) / x.norm(dim=1).mean((1, 2, 3))
    assert ratio.min() < 0.8 and ratio.max() > 1.5 and ratio.min() >= 0.5 - 1e-5
    out, _ = augment(x, present, 3, {"translate": 0.2}, torch.Generator().manual_seed(0))
    shift = (out - x)[:, :, 0, 0, 0]                            # (N, 3), one per clip
    assert (shift > 0.05).any(0).all() and (shift < -0.05).any(0).all()
    assert shift.abs().max() <= 0.2 + 1e-6


def test_augment_mirror_probability_is_a_probability():
    """mirror 0.5 mirrors about half of the clips (not all)."""
    x, present = _bodies(200)
    out, _ = augment(x, present, 3, {"mirror": 0.5}, torch.Generator().manual_seed(0),
                     layout="kinect20")
    flipped = (out[:, 0, 0, 0, 0] != x[:, 0, 0, 0, 0]).float().mean()
    assert 0.35 < float(flipped) < 0.65


def test_body_shape_factors_stay_within_half_and_one_and_a_half():
    """Even a large body_shape never shrinks a bone below half or past 1.5x (nor turns it)."""
    factor = body_shape_factors(50, 2, 1.0, "kinect20", torch.Generator().manual_seed(0))
    assert factor.min() >= 0.5 and factor.max() <= 1.5


def test_augment_defaults_to_y_as_the_vertical_axis():
    """Without vertical_axis the turn is about y (the model's vertical), as the config says."""
    x, present = _bodies()
    out, _ = augment(x, present, 3, {"rotate_deg": 30}, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out[:, 1], x[:, 1])


@pytest.mark.parametrize("persons", ["each", "shared", "pair"])
def test_a_sample_with_nobody_in_it_is_zeros_not_nan(persons):
    """Two empty slots (a clip whose every joint was lost): the input is zeros in every persons
    mode, never NaN (0 / 0 in pair's mean of the persons' roots)."""
    coords, conf = torch.randn(2, 4, 2, 20, 3), torch.zeros(2, 4, 2, 20)
    conf[1] = 1.0                                             # and a full sample beside it
    model, transform = preprocess(coords, conf, "kinect20", PreprocessConfig(persons=persons))
    assert torch.isfinite(model).all() and not model[0].any()
    assert torch.isfinite(transform.origin).all()


def test_first_frame_centring_skips_frames_without_the_root():
    """center: first_frame is the root of the first frame where it is confident: a window
    opening on a frame whose root was lost is still centred on the person."""
    lay = get_layout("kinect20")
    coords, conf = _still_person("kinect20", 4)
    hip = lay.index("hip_center")
    conf[0, 0, 0, hip] = 0
    model, _ = preprocess(coords, conf, "kinect20", PreprocessConfig())
    torch.testing.assert_close(model[0, :, 1:, hip, 0], torch.zeros(3, 3), atol=1e-6, rtol=0)


@pytest.mark.parametrize("interpolation", ["nearest", "linear"])
def test_random_windows_start_anywhere_in_the_clip(interpolation):
    """Training's random window (train_min_fraction < 1) is a crop at a random start for either
    interpolation, so later parts of a clip open windows too, and the window lies in the crop."""
    rng = np.random.default_rng(0)
    firsts, lasts = set(), set()
    for _ in range(100):
        out = random_window(frame_counter(40), 48, rng, min_fraction=0.5,
                            interpolation=interpolation)
        firsts.add(round(float(out.coords[0, 0, 0, 0])))
        lasts.add(round(float(out.coords[-1, 0, 0, 0])))
    assert max(firsts) >= 10 and min(lasts) <= 30 and max(lasts) == 39


def test_sorted_random_draws_the_last_frame_too():
    rng = np.random.default_rng(0)
    drawn = np.concatenate([random_sorted_indices(5, 8, rng) for _ in range(50)])
    assert set(drawn.tolist()) == {0, 1, 2, 3, 4}


def test_augment_2d_rotation_keeps_lengths_and_turns_within_the_bound():
    """2D input: rotate_deg is an in-plane rotation, lengths kept, at most rotate_deg."""
    x = torch.randn(32, 3, 4, 18, 1, generator=torch.Generator().manual_seed(0))
    present = torch.ones(32, 4, 18, 1, dtype=torch.bool)
    out, _ = augment(x, present, 2, {"rotate_deg": 30}, torch.Generator().manual_seed(1))
    torch.testing.assert_close(out[:, :2].norm(dim=1), x[:, :2].norm(dim=1))
    cos = (out[:, :2] * x[:, :2]).sum(1) / x[:, :2].norm(dim=1).square()
    assert cos.min() >= np.cos(np.radians(30)) - 1e-4 and cos.min() < 0.999


def test_path_scale_leaves_the_first_frame_where_preprocessing_centred_it():
    """path_scale shifts each frame by (factor - 1) x the root's displacement since its first
    frame: the first frame is not moved (its root stays on the origin, as live input has it)."""
    lay = get_layout("kinect20")
    root = lay.index("hip_center")
    batch = batching.build_batch([_walker(30, seed=i) for i in range(3)], small_cfg(),
                                 train=False)
    out, _ = augment(batch.x, batch.present, 3, {"path_scale": [0.5, 0.5]},
                     torch.Generator(), layout="kinect20")
    torch.testing.assert_close(out[:, :, 0], batch.x[:, :, 0])
    assert out[:, 0, -1, root].abs().max() < batch.x[:, 0, -1, root].abs().max()


def test_tilt_is_about_the_two_axes_other_than_the_vertical_one():
    """vertical_axis 2 (z up): tilt turns about x and y, so a point on the x axis gains height
    (a turn about y); it must not turn about the vertical z instead."""
    x = torch.zeros(64, 3, 1, 20, 1)
    x[:, 0] = 1.0                                               # every joint at (1, 0, 0)
    present = torch.ones(64, 1, 20, 1, dtype=torch.bool)
    out, _ = augment(x, present, 3, {"tilt_deg": 10, "vertical_axis": 2},
                     torch.Generator().manual_seed(0))
    assert out[:, 2].abs().max() > 0.05
    assert out[:, 2].abs().max() <= np.sin(np.radians(10)) + 1e-5
