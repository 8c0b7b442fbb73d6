"""The PRM as a refiner: the driver noise model, the restore objective, the refinement
measurement, the one builder path, and the shipped model's goals (evaluated, not read)."""
from __future__ import annotations

import json

import pytest
import torch
from test_model_prgcn import _one_intra_op_thread  # noqa: F401  (autouse fixture)
from test_training_util import MSR_CONFIG, REPO, msr_split, require_data, small_cfg, subset

from prgcn_ros.model import PRGCN, build_model
from prgcn_ros.skeleton.layouts import get_layout
from prgcn_ros.training import batching
from prgcn_ros.training import evaluate as evaluate_cli
from prgcn_ros.training.config import ConfigError, load_config, model_spec, with_defaults
from prgcn_ros.training.noise import NoiseConfig, corrupt, mpjpe
from prgcn_ros.training.train import Trainer

SHIPPED = REPO / "models" / "prgcn_msr_action3d.safetensors"
# Top-1 mean of the shipped recipe's seeds 1-5 on the 273 test clips, as the README states it.
SEEDS_DOCUMENTED_MEAN = 0.9201
RECIPE_KEYS = ("objective", "corrupt_prob", "restore_weight", "restore_beta", "offset_weight",
               "prm_optimizer", "prm_lr_scale", "noise")
ONLY = {"jitter": 0.0, "drop_prob": 0.0, "spike_prob": 0.0, "swap_prob": 0.0, "bone_noise": 0.0}


@pytest.fixture(scope="module")
def clean_batch() -> batching.Batch:
    cfg = load_config(MSR_CONFIG)
    clips = subset(msr_split("test"), 12)
    return batching.build_batch([clips[i] for i in range(len(clips))], cfg, train=False)


def _noise(**levels) -> NoiseConfig:
    return NoiseConfig.from_dict({**ONLY, **levels})


def _corrupt(batch: batching.Batch, seed: int = 0, **levels):
    return corrupt(batch.x, batch.present, batch.scale, "kinect20", _noise(**levels),
                   torch.Generator().manual_seed(seed), dims=3)


# --------------------------------------------------------------------------- noise model
def test_noise_is_repeatable_and_leaves_missing_joints_alone(clean_batch):
    levels = NoiseConfig().to_dict()
    a, present_a = _corrupt(clean_batch, 3, **levels)
    b, present_b = _corrupt(clean_batch, 3, **levels)
    assert torch.equal(a, b) and torch.equal(present_a, present_b)
    c, _ = _corrupt(clean_batch, 4, **levels)
    assert not torch.equal(a, c)
    missing = ~clean_batch.present
    channels_last = (0, 2, 3, 4, 1)
    assert torch.equal(a.permute(channels_last)[missing],
                       clean_batch.x.permute(channels_last)[missing])
    assert not (present_a & missing).any()                     # nothing reappears


def test_strength_scales_each_kind_of_noise(clean_batch):
    """``strength`` multiplies every level and probability (the measurement's two strengths):
    twice the strength, twice the spikes, each twice as large, twice the dropped joints and
    twice the spread of the bone lengths."""
    def spikes(strength: float) -> tuple[int, float]:
        noisy, _ = _corrupt(clean_batch, 5, spike_prob=0.05, strength=strength)
        moved = (noisy - clean_batch.x)[:, :3].norm(dim=1)
        jumps = moved[moved > 1e-6]
        return len(jumps), float(jumps.mean())

    def dropped(strength: float) -> int:
        _, still = _corrupt(clean_batch, 5, drop_prob=0.02, strength=strength)
        return int((clean_batch.present & ~still).sum())

    def bone_spread(strength: float) -> float:
        noisy, _ = _corrupt(clean_batch, 5, bone_noise=0.03, strength=strength)
        return float((noisy - clean_batch.x)[:, :3].norm(dim=1).mean())

    (count_1, size_1), (count_2, size_2) = spikes(1.0), spikes(2.0)
    assert 1.6 < count_2 / count_1 < 2.4 and 1.7 < size_2 / size_1 < 2.3
    assert 1.6 < dropped(2.0) / dropped(1.0) < 2.4
    assert 1.7 < bone_spread(2.0) / bone_spread(1.0) < 2.3


def test_jitter_has_its_level_in_sensor_units(clean_batch):
    noisy, _ = _corrupt(clean_batch, jitter=0.02)
    diff = (noisy - clean_batch.x) * clean_batch.scale[:, None, None, None, :]   # metres
    values = diff.permute(0, 2, 3, 4, 1)[clean_batch.present]
    assert float(values.std()) == pytest.approx(0.02, rel=0.05)


def test_spikes_move_one_joint_of_one_frame_by_their_range(clean_batch):
    noisy, _ = _corrupt(clean_batch, spike_prob=0.2, spike_range=[0.2, 0.5])
    jump = ((noisy - clean_batch.x) * clean_batch.scale[:, None, None, None, :]).norm(dim=1)
    moved = jump > 1e-6                                          # (N, T, V, M)
    assert moved.any()
    assert int(moved.sum(2).max()) == 1                          # one joint per frame
    assert float(jump[moved].min()) >= 0.2 - 1e-4 and float(jump[moved].max()) <= 0.5 + 1e-4


def test_dropped_joints_are_zero_and_not_present(clean_batch):
    noisy, present = _corrupt(clean_batch, drop_prob=0.05, drop_frames=3)
    dropped = clean_batch.present & ~present
    assert 0.03 < float(dropped.sum() / clean_batch.present.sum()) < 0.3
    assert float(noisy.permute(0, 2, 3, 4, 1)[dropped].abs().max()) == 0.0


def test_bone_noise_changes_lengths_and_keeps_the_root(clean_batch):
    noisy, _ = _corrupt(clean_batch, bone_noise=0.05)
    layout = get_layout("kinect20")
    assert torch.equal(noisy[:, :, :, layout.center], clean_batch.x[:, :, :, layout.center])
    a, b = layout.index("left_elbow"), layout.index("left_wrist")
    ratio = ((noisy[:, :, :, a] - noisy[:, :, :, b]).norm(dim=1)
             / (clean_batch.x[:, :, :, a] - clean_batch.x[:, :, :, b]).norm(dim=1).clamp(min=1e-6))
    per_clip = ratio[:, :, 0].median(dim=1).values            # constant over a clip
    assert float((per_clip - 1).abs().max()) > 0.01
    assert float((ratio[:, :, 0] - per_clip[:, None]).abs().median()) < 1e-4


def test_bone_noise_moves_a_joint_below_a_missing_one_by_its_body_not_by_where_it_stands():
    # An elbow lost in one frame (a placeholder at 0): the wrist below it stretches nothing
    # from it, it moves as the shoulder does; the same person a metre and a half away gets
    # the same displacements (a bone measured from the placeholder grew with the distance).
    layout = get_layout("kinect20")
    torch.manual_seed(0)
    x = torch.randn(1, 3, 4, 20, 1) * 0.2
    present = torch.ones(1, 4, 20, 1, dtype=torch.bool)
    elbow = layout.index("left_elbow")
    present[0, 2, elbow] = False
    x[0, :, 2, elbow] = 0.0
    wrist, shoulder = layout.index("left_wrist"), layout.index("left_shoulder")
    moved = []
    for offset in (0.0, 1.5):
        given = x + torch.where(present[:, None], offset, 0.0)
        noisy, _ = corrupt(given, present, torch.ones(1, 1), "kinect20", _noise(bone_noise=0.3),
                           torch.Generator().manual_seed(1), dims=3)
        moved.append(noisy - given)
        assert torch.allclose(moved[-1][0, :, 2, wrist], moved[-1][0, :, 2, shoulder],
                              atol=1e-5)
    assert torch.allclose(moved[0], moved[1], atol=1e-5)
    assert float(moved[0][0, :, 2, wrist].abs().max()) > 0.01    # the shoulder did move


def test_limb_swap_exchanges_left_and_right():
    x = torch.randn(1, 3, 6, 18, 1)
    x[:, 2] = 1.0                                                # 2D: x, y, confidence
    present = torch.ones(1, 6, 18, 1, dtype=torch.bool)
    noisy, _ = corrupt(x, present, torch.ones(1, 1), "coco18", _noise(swap_prob=1.0),
                       torch.Generator().manual_seed(0), dims=2)
    lay = get_layout("coco18")
    pairs = [(lay.index(f"left_{p}"), lay.index(f"right_{p}")) for p in ("elbow", "wrist", "knee")]
    swapped = [torch.equal(noisy[0, :2, t, left], x[0, :2, t, right])
               for t in range(6) for left, right in pairs]
    assert sum(swapped) >= 6                                     # one limb in every frame
    assert torch.equal(noisy[:, 2], x[:, 2])                     # confidence untouched


def test_a_limb_swap_moves_only_pairs_it_sees_and_exchanges_them_exactly():
    """Both joints of a pair seen: they exchange places (both of them); one missing: neither
    moves (a missing joint's zeros would land on the seen one)."""
    lay = get_layout("coco18")
    left, right = lay.index("left_wrist"), lay.index("right_wrist")
    x = torch.randn(1, 3, 40, 18, 1)
    x[:, 2] = 1.0
    present = torch.ones(1, 40, 18, 1, dtype=torch.bool)
    present[0, :, left] = False
    x[0, :2, :, left] = 0.0
    noisy, _ = corrupt(x, present, torch.ones(1, 1), "coco18", _noise(swap_prob=1.0),
                       torch.Generator().manual_seed(0), dims=2)
    assert torch.equal(noisy[0, :2, :, [left, right]], x[0, :2, :, [left, right]])
    elbows = lay.index("left_elbow"), lay.index("right_elbow")
    moved = [t for t in range(40) if not torch.equal(noisy[0, :2, t, elbows[0]],
                                                     x[0, :2, t, elbows[0]])]
    assert moved
    for t in moved:
        assert torch.equal(noisy[0, :2, t, elbows[0]], x[0, :2, t, elbows[1]])
        assert torch.equal(noisy[0, :2, t, elbows[1]], x[0, :2, t, elbows[0]])


def test_a_dropped_2d_joint_gets_confidence_zero_and_mpjpe_counts_seen_joints_only():
    x = torch.randn(2, 3, 10, 18, 1)
    x[:, 2] = 1.0
    present = torch.ones(2, 10, 18, 1, dtype=torch.bool)
    noisy, still = corrupt(x, present, torch.ones(2, 1), "coco18", _noise(drop_prob=0.3),
                           torch.Generator().manual_seed(0), dims=2)
    gone = present & ~still
    assert gone.any()
    assert torch.equal(noisy[:, 2][gone], torch.zeros(int(gone.sum())))
    assert torch.equal(noisy[:, 2][still], torch.ones(int(still.sum())))
    # The error over the seen joints only: a joint off by 1 beside a missing one far away.
    a, b = torch.zeros(1, 2, 1, 2, 1), torch.zeros(1, 2, 1, 2, 1)
    a[0, 0, 0, 0, 0], a[0, 0, 0, 1, 0] = 1.0, 100.0
    seen = torch.tensor([True, False]).view(1, 1, 2, 1)
    assert float(mpjpe(a, b, seen, 2)[0]) == pytest.approx(1.0)


# --------------------------------------------------------------------------- one builder path
def test_model_section_is_the_architecture_dict(tmp_path):
    cfg = load_config(MSR_CONFIG)
    model = build_model(model_spec(cfg, 20))
    assert {k: model.arch[k] for k in cfg["model"]} == cfg["model"]
    cfg2 = load_config(MSR_CONFIG, {"model": {"refine_channels": 2, "use_motion": False,
                                              "rigid_bones": False}})
    arch = Trainer(cfg2, train_set=subset(msr_split("train"), 2), log=lambda m: None).model.arch
    assert arch["refine_channels"] == 2 and arch["use_motion"] is False
    with pytest.raises(ConfigError, match="not an argument"):
        load_config(MSR_CONFIG, {"model": {"depth": 3}})
    with pytest.raises(ConfigError, match="comes from the data"):
        load_config(MSR_CONFIG, {"model": {"num_classes": 3}})
    stgcn = load_config(MSR_CONFIG, {"model": {"name": "stgcn", "variant": "prgcn_table1"}})
    assert build_model(model_spec(stgcn, 20)).arch["variant"] == "prgcn_table1"


def test_ntu_configs_share_a_base():
    xsub = load_config(REPO / "config" / "train_ntu60_xsub.yaml")
    xview = load_config(REPO / "config" / "train_ntu60_xview.yaml")
    differ = {k for k in xsub if k != "_path" and xsub[k] != xview[k]}
    assert differ == {"name", "data", "output"}
    assert xview["data"]["root"] == "NTU-RGB-D/xview" and xview["layout"] == "ntu25"


def test_2d_config_refines_x_and_y_and_passes_the_confidence_through():
    cfg = load_config(REPO / "config" / "train_kinetics.yaml")
    model = build_model(model_spec(cfg, 400))
    x = torch.randn(2, 3, 12, 18, 2)
    with torch.no_grad():
        model.prm.offset.weight.normal_(std=0.5)                 # a PRM that moves things
        _, refined = model.eval()(x)
    assert torch.equal(refined[:, 2], x[:, 2])
    assert not torch.allclose(refined[:, :2], x[:, :2])


def _unfolded(model: torch.nn.Module) -> torch.nn.Module:
    """The same network computing BN and residuals as separate ops: eval-mode BNs, every other
    module on its training-mode path (no dropout in PR-GCN)."""
    for module in model.modules():
        if not isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.training = True
    return model


@pytest.mark.parametrize("rigid_bones, learned_edges, sample_topology",
                         [(False, False, False), (True, False, False), (False, True, False),
                          (False, False, True)])
def test_folded_eval_network_equals_the_unfolded_one(rigid_bones, learned_edges,
                                                      sample_topology):
    torch.manual_seed(0)
    model = PRGCN(20, "kinect20", rigid_bones=rigid_bones, learned_edges=learned_edges,
                  sample_topology=sample_topology)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith((".edges", ".alpha")):
                parameter.normal_(std=0.1)
        for _ in range(3):                                       # realistic running statistics
            model.train()(torch.randn(8, 3, 32, 20, 1))
    x = torch.randn(3, 3, 32, 20, 2)
    with torch.no_grad():
        folded = model.eval()(x)
        unfolded = _unfolded(model.eval())(x)
    for a, b in zip(folded, unfolded):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-5), float((a - b).abs().max())


# --------------------------------------------------------------------------- objective
def test_restore_objective_pulls_the_refined_window_towards_the_clean_one():
    """On one batch with the same corruption every step, the PRM's output gets closer to the
    clean window (the objective optimises restoration, measured with the noise model)."""
    cfg = small_cfg(seed=5, refine={"corrupt_prob": 1.0, "prm_lr_scale": 1.0},
                    optim={"lr": 0.002}, window={"length": 16})
    train = subset(msr_split("train"), 8)
    trainer = Trainer(cfg, train_set=train, log=lambda m: None)
    batch = batching.build_batch([train[i] for i in range(len(train))], cfg, train=False)
    noisy, _ = corrupt(batch.x, batch.present, batch.scale, "kinect20", trainer.noise,
                       torch.Generator().manual_seed(0), dims=3)

    def error() -> float:
        with torch.no_grad():
            _, refined = trainer.model.eval()(noisy)
        return float(mpjpe(refined, batch.x, batch.present, 3).mean())

    before = error()
    for _ in range(50):
        losses = trainer.step(batch, torch.Generator().manual_seed(0))
    assert set(losses) == {"classification", "restore", "offset", "loss"}
    assert error() < 0.95 * before, (error(), before)


def test_classification_objective_is_the_papers_prm():
    cfg = small_cfg(seed=5, refine={"objective": "classification"})
    train = subset(msr_split("train"), 4)
    trainer = Trainer(cfg, train_set=train, log=lambda m: None)
    batch = batching.build_batch([train[i] for i in range(4)], cfg, train=False)
    assert set(trainer.step(batch)) == {"classification", "loss"}


# --------------------------------------------------------------------------- measurement
def test_refinement_measurement_of_an_identity_and_of_savitzky_golay(tmp_path):
    require_data()
    cfg = load_config(MSR_CONFIG)
    test = subset(msr_split("test"), 16)
    model = PRGCN(20, "kinect20", use_prm=False).eval()
    r = evaluate_cli.evaluate_refinement(model, test, cfg, strengths=[1.0], spikes_per_clip=1)
    assert r["clean"]["mean_offset"] == 0.0
    assert r["clean"]["acceleration_refined"] == pytest.approx(r["clean"]["acceleration_input"])
    row = r["corrupted"]["1"]
    assert row["mpjpe_ratio"] == pytest.approx(1.0)
    assert 0.01 < row["mpjpe_input"] < 0.2                       # metres, a few cm
    # Pure jitter: the filter a user would write removes part of it.
    jitter = load_config(MSR_CONFIG, {"refine": {"noise": {**ONLY, "jitter": 0.03}}})
    r2 = evaluate_cli.evaluate_refinement(model, test, jitter, strengths=[1.0],
                                          spikes_per_clip=1)
    assert r2["corrupted"]["1"]["savgol_ratio"] < 0.8
    # Strength 0, a clean baseline: no ratio to give, and the --json output stays JSON.
    r0 = evaluate_cli.evaluate_refinement(model, subset(test, 4), cfg, strengths=[0.0],
                                          spikes_per_clip=1)
    assert r0["corrupted"]["0"]["mpjpe_ratio"] is None
    json.loads(json.dumps(r0, allow_nan=False))
    assert "(ratio n/a)" in evaluate_cli.format_refinement(r0)


# --------------------------------------------------------------------------- the shipped model
@pytest.fixture(scope="module")
def shipped():
    require_data()
    assert SHIPPED.is_file(), f"the shipped model {SHIPPED} is missing"
    from prgcn_ros.model.io import load_model
    from prgcn_ros.training.datasets import build_dataset

    model, meta = load_model(SHIPPED, device="cpu", expected_layout="kinect20",
                             expected_channels=3)
    cfg = evaluate_cli.config_for_model(load_config(MSR_CONFIG), meta)
    return model, meta, cfg, build_dataset(cfg, "test")


@pytest.fixture(scope="module")
def shipped_result(shipped) -> dict:
    """The shipped model evaluated on the 273 test clips, once for the module."""
    model, _, cfg, test = shipped
    return evaluate_cli.evaluate_model(model, test, cfg)


@pytest.mark.slow
def test_shipped_model_top1_against_the_goal(shipped_result):
    """The issue's goal for the shipped model (seed 1 of the recipe): top-1 >= 90 %."""
    result = shipped_result
    assert result["n"] == 273 and result["top1"] >= 0.90, result["top1"]


def test_shipped_model_is_the_ablation_baseline():
    """bench's ablations start from the shipped model when it was trained with the config's
    recipe, options added since its training included (at their defaults)."""
    from prgcn_ros.training.ablations import baseline_from_model

    seed, run = baseline_from_model(MSR_CONFIG, REPO / "models" / "prgcn_msr_action3d.safetensors")
    assert seed == 1 and run["n"] == 273


@pytest.mark.slow
def test_five_seeds_mean_against_the_goal(shipped, shipped_result):
    """Seeds 2-5 of the shipped recipe (models/msr_seeds/) evaluated beside the shipped seed 1;
    the mean is the figure the README states."""
    _, _, cfg, test = shipped
    from prgcn_ros.model.io import load_model

    top1 = {1: shipped_result["top1"]}
    for path in sorted((REPO / "models" / "msr_seeds").glob("*.safetensors")):
        seed_model, meta = load_model(path, device="cpu", expected_layout="kinect20",
                                      expected_channels=3)
        recipe = with_defaults(meta["training"]["config"])
        assert all(recipe["refine"][k] == cfg["refine"][k] for k in RECIPE_KEYS), path
        assert recipe["optim"] == cfg["optim"] and recipe["augment"] == cfg["augment"], path
        assert recipe["model"] == cfg["model"] and recipe["outliers"] == cfg["outliers"], path
        top1[meta["training"]["seed"]] = evaluate_cli.evaluate_model(seed_model, test, cfg)["top1"]
    assert sorted(top1) == [1, 2, 3, 4, 5], top1
    mean = sum(top1.values()) / 5
    assert mean == pytest.approx(SEEDS_DOCUMENTED_MEAN, abs=5e-4), top1
    if mean < 0.90:
        pytest.xfail(f"5-seed mean {mean:.4f} < 0.90 (docs/refinement.md)")


@pytest.mark.slow
def test_shipped_model_refines_and_meets_the_refinement_goals(shipped):
    model, meta, cfg, test = shipped
    assert meta["training"]["refine"]["objective"] == "restore"
    # The measurement bench/refinement.py and `prgcn-eval --refinement` make, with its own noise
    # draws (docs/refinement.md gives the ratio under other draws too).
    r = evaluate_cli.evaluate_refinement(model, test, cfg)
    clean = r["clean"]
    assert clean["mean_offset"] <= 0.02, clean                   # metres
    assert clean["acceleration_refined"] <= clean["acceleration_input"], clean
    row = r["corrupted"]["1"]
    assert row["mpjpe_ratio"] <= 0.6, row
    assert row["mpjpe_ratio"] < row["savgol_ratio"], row
    assert r["label_change_one_spike"] <= 0.10, r["label_change_one_spike"]
    # The paper's claim, on corrupted input: refinement helps.
    no_prm = REPO / "models" / "ablations" / "prgcn_msr_action3d_no_prm.safetensors"
    from prgcn_ros.model.io import load_model

    # Top-1 on the same corrupted windows (one strength, no spikes: the same noise draws).
    def corrupted_top1(network: torch.nn.Module) -> float:
        r = evaluate_cli.evaluate_refinement(network, test, cfg, strengths=[1.0],
                                             spikes_per_clip=0)
        return r["corrupted"]["1"]["top1"]

    assert corrupted_top1(model) >= corrupted_top1(load_model(no_prm, device="cpu")[0]) + 0.02
    json.dumps(r)                                                # serialisable for bench/
    # Bone lengths vary over time no more than the input's (rigid limb bones, model/bones.py).
    assert clean["bone_cv_refined"] <= clean["bone_cv_input"], clean


def test_an_ablation_file_of_another_recipe_is_not_added_to(tmp_path):
    """Means over runs of two recipes would be no figure of either."""
    from prgcn_ros.training.ablations import run_study

    out = tmp_path / "ablations.json"
    out.write_text(json.dumps({"variants": {}, "recipe": {"optim": {"lr": 0.5}}}))
    with pytest.raises(ValueError, match="another recipe"):
        run_study(MSR_CONFIG, ["without PRM"], [1], out, tmp_path / "work")
