"""Outlier exposure: foreign actions in the training batches, pulled to a uniform softmax."""
from __future__ import annotations

import math

import pytest
import torch
from test_training_util import msr_split, require_data, small_cfg, subset

from prgcn_ros.training.outliers import outlier_dataset, outlier_loss
from prgcn_ros.training.train import Trainer

SIT_STAND = ["sit down", "stand up"]
OUTLIERS = {"data": {"kind": "nw_ucla", "root": "nw_ucla", "train_views": [1]},
            "classes": SIT_STAND, "per_batch": 4, "weight": 1.0}


@pytest.fixture(autouse=True)
def _one_intra_op_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_outlier_loss_is_log_k_at_the_uniform_and_larger_elsewhere():
    assert float(outlier_loss(torch.zeros(3, 20))) == pytest.approx(math.log(20))
    peaked = torch.zeros(3, 20)
    peaked[:, 4] = 5.0
    assert float(outlier_loss(peaked)) > math.log(20) + 1.0


def test_outlier_set_holds_only_the_named_actions():
    require_data()
    clips = outlier_dataset(small_cfg(outliers=OUTLIERS))
    assert len(clips) > 20
    assert {clips.class_names[label] for label in clips.labels} == set(SIT_STAND)
    assert outlier_dataset(small_cfg(outliers={"per_batch": 0})) is None


def test_an_action_the_other_dataset_lacks_is_refused():
    require_data()
    with pytest.raises(ValueError, match="squat"):
        outlier_dataset(small_cfg(outliers={**OUTLIERS, "classes": ["squat"]}))


def test_training_batches_carry_outliers_labelled_minus_one():
    """Each batch: the classes' clips with their labels, then ``per_batch`` outlier clips with
    label -1 (no class for the classification loss), and the epoch reports their loss."""
    require_data()
    trainer = Trainer(small_cfg(outliers=OUTLIERS), train_set=subset(msr_split("train"), 8),
                      log=lambda m: None)
    seen = []
    step = trainer.step

    def recording_step(batch, *rest):
        seen.append(batch.labels.clone())
        return step(batch, *rest)

    trainer.step = recording_step
    stats = trainer.train_epoch(progress=False)
    assert len(seen) == 2
    for labels in seen:
        assert labels.shape == (8,)
        assert bool((labels[:4] >= 0).all()) and bool((labels[4:] == -1).all())
    assert stats["outlier"] > 0 and math.isfinite(stats["classification"])
