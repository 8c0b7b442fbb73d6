"""Edge cases of ingestion and recognition a mutation audit found unguarded: stamp holds and
jumps, floods of unstamped input, counters and notices, pairing after a partner leaves,
scheduling by the oldest waiting frame, smoothing after non-finite or stale scores, the
'unknown' boundary, y-down input and refined offsets in the input's units. Uses the helpers of
test/test_recognition.py."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from test_recognition import (  # pytest puts test/ (no __init__.py) on sys.path
    CLASSES,
    _shifted,
    beside,
    frame,
    pair_recognizer,
    pose,
    tiny_recognizer,
)

from prgcn_ros.recognition import TorchBackend


def test_a_lone_stray_stamp_right_after_a_confirmed_jump_back_costs_only_itself():
    """A bag played again (5 s back), confirmed by its second message; the third is stamped
    0.2 s ahead, alone. The confirming message set the source's pace, so the stray one is
    held and dropped alone; had the timeline restarted again at the confirming message (no
    pace), the stray stamp was taken and the following frames dropped as stamp_backwards."""
    rec = tiny_recognizer(track_timeout_s=1.0)
    for t in range(5):
        rec.ingest(_shifted(frame(t), 5.0))
    rec.ingest(frame(5))
    rec.ingest(frame(6))
    rec.ingest(_shifted(frame(7), 0.2))
    for t in range(8, 20):
        rec.ingest(frame(t))
    assert {k: n for k, n in rec.dropped.items() if n} == {"stamp_outlier": 1}
    assert rec.clock_resets == 1


def test_unstamped_messages_are_thinned_to_max_input_hz_by_their_send_time():
    rec = tiny_recognizer(max_input_hz=100.0)
    for i in range(200):                      # 1 kHz by send time and by arrival
        rec.ingest(dataclasses.replace(frame(0), stamp_ns=10**9 + i * 10**6, stamped=False,
                                       arrival=100.0 + i * 1e-3))
    assert rec.frames == 20 and rec.dropped["flood"] == 180
    # Sent at 30 Hz, taken in one burst (a backlog): not a flood.
    rec = tiny_recognizer(max_input_hz=100.0)
    for i in range(20):
        rec.ingest(dataclasses.replace(frame(0), stamp_ns=10**9 + i * 10**6, stamped=False,
                                       arrival=100.0 + i * 1e-4, sent_s=50.0 + i / 30))
    assert rec.frames == 20 and sum(rec.dropped.values()) == 0
    # Sent at 1 kHz, delivered 20 ms apart: a flood all the same (by send time).
    rec = tiny_recognizer(max_input_hz=100.0)
    for i in range(100):
        rec.ingest(dataclasses.replace(frame(0), stamp_ns=10**9 + i * 10**6, stamped=False,
                                       arrival=100.0 + i * 0.02, sent_s=99.0 + i * 1e-3))
    assert rec.frames == 10 and rec.dropped["flood"] == 90


def test_every_skeleton_seen_only_by_joints_the_model_lacks_is_counted():
    from test_recognition import coco18_recognizer, feet_only

    rec = coco18_recognizer()
    feet = feet_only()
    rng = np.random.default_rng(0)
    people = {k: rng.uniform(200 * k, 200 * k + 150, (25, 3)) * (1, 1, 0) for k in (1, 2, 3)}
    f = frame(0, people, layout="body25")
    f.confidence = [np.full(25, 0.7), feet, feet]
    assert rec.ingest(f) == ["no_confidence"]
    assert rec.dropped["no_confidence"] == 2 and rec.people_tracked == 1


def test_messages_exactly_the_flood_gap_apart_are_kept():
    """max_input_hz 100: the flood gap is 1/100 s less a microsecond; messages that far apart
    are not closer in time than it, so none is a flood."""
    rec = tiny_recognizer(max_input_hz=100.0)
    gap = 10**7 - 1000
    for i in range(10):
        rec.ingest(dataclasses.replace(frame(0), stamp_ns=10**9 + i * gap,
                                       arrival=100.0 + i / 100))
    assert rec.frames == 10 and sum(rec.dropped.values()) == 0


class _Rescored:
    """The network's refinement, with the scores of pass n (from 0) rewritten by
    ``scores(n, logits)``."""

    name = "rescored"

    def __init__(self, model: torch.nn.Module, scores) -> None:
        self.forward, self.scores, self.calls = TorchBackend(model), scores, 0

    def __call__(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, refined = self.forward(batch)
        logits = self.scores(self.calls, logits)
        self.calls += 1
        return logits, refined


def _nan_once(model: torch.nn.Module) -> _Rescored:
    """NaN scores for the first pass only."""
    return _Rescored(model, lambda n, logits: torch.full_like(logits, float("nan")) if n == 0
                     else logits)


def _counting(model: torch.nn.Module) -> _Rescored:
    """Scores that change every pass (pass n: logits n/2, 0, 0)."""
    def scores(n: int, logits: torch.Tensor) -> torch.Tensor:
        counted = torch.zeros_like(logits)
        counted[:, 0] = 0.5 * n
        return counted
    return _Rescored(model, scores)


def test_a_pass_with_nan_scores_does_not_poison_the_smoothed_scores_after_it():
    rec = tiny_recognizer(smoothing=3, backend=_nan_once)
    for t in range(5):
        rec.ingest(frame(t))
    assert rec.infer() is None and rec.stats()["outputs_suppressed"] == 1
    for t in range(5, 7):
        rec.ingest(frame(t))
        person = rec.infer().people[0]
        assert np.isfinite(person.probabilities).all() and np.isfinite(person.confidence)
        assert np.isfinite(person.top_scores).all()


def test_a_person_whose_output_was_suppressed_was_never_shown():
    """Their first pass came out NaN, so no /action, refined pose or marker showed them: they
    are not 'labelled' (no DELETE marker when they leave) and the latency of that pass's frames
    is not counted; their next, published pass counts only its newest frame, as a first label
    does."""
    rec = tiny_recognizer(backend=_nan_once)
    for t in range(5):
        rec.ingest(frame(t))
    assert rec.infer() is None
    assert [d.labelled for d in rec.expire_people(now=1000.0)] == [False]

    rec = tiny_recognizer(backend=_nan_once)
    for t in range(5):
        rec.ingest(frame(t))
    assert rec.infer() is None
    for t in range(5, 8):
        rec.ingest(frame(t))
    result = rec.infer()
    assert len(result.people) == 1 and len(result.arrivals) == 1
    assert [d.labelled for d in rec.expire_people(now=1000.0)] == [True]


def test_the_latency_of_a_pass_counts_only_the_people_it_published():
    """Two people, the first one's outputs non-finite: only the other's frame (a first label:
    its newest) is in the pass's latency."""
    from test_recognition import _PoisonFirstSample

    rec = tiny_recognizer(backend=lambda model: _PoisonFirstSample(model, "logits"))
    for t in range(5):
        rec.ingest(frame(t, {0: pose(seed=t), 1: pose(1.0, t)}))
    result = rec.infer()
    assert len(result.people) == 1 and len(result.arrivals) == 1


def test_refined_offsets_are_in_the_inputs_units():
    """The same motion at twice the size (and moved): preprocessing (first-frame centre, torso
    scale) shows the model the same input, so its refinement is the same in model units and
    twice as large in the sensor's."""
    people = []
    for scale, shift in ((1.0, 0.0), (2.0, 0.5)):
        rec = tiny_recognizer()
        for t in range(5):
            rec.ingest(frame(t, {0: pose(seed=t) * scale + shift}))
        people.append(rec.infer().people[0])
    small, large = people
    assert np.abs(small.offsets).max() > 1e-3          # the random PRM does refine
    np.testing.assert_allclose(large.offsets, 2.0 * small.offsets, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(large.refined, 2.0 * small.refined + 0.5, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(large.probabilities, small.probabilities, atol=1e-5)


def test_an_id_of_exactly_the_identity_span_is_tracked_as_unknown():
    """id 2**31 as given would publish person_id ID_SPAN, the id of source 1's person 0."""
    from prgcn_ros.live_data import ID_SPAN

    rec = tiny_recognizer()
    for t in range(5):
        assert rec.ingest(frame(t, {ID_SPAN: pose(seed=t)})) == (
            ["ids_out_of_range"] if t == 0 else [])
    person = rec.infer().people[0]
    assert 0 <= person.person_id < ID_SPAN


def test_a_joint_exactly_at_the_coordinate_bound_is_kept():
    """implausible_coordinates is a joint *farther* than 100 m; at 100 m it is kept."""
    from prgcn_ros.live_data import COORDINATE_BOUND_3D_M

    rec = tiny_recognizer()
    f = frame(0, {0: np.where(np.arange(20)[:, None] == 3, COORDINATE_BOUND_3D_M, pose())})
    assert rec.ingest(f) == [] and rec.frames == 1


def test_after_a_partner_leaves_the_other_pairs_with_a_newcomer():
    rec = pair_recognizer(track_timeout_s=0.5)
    for t in range(5):
        rec.ingest(frame(t, {1: beside(0.0, t), 2: beside(1.0, t + 50)}))
    rec.infer()
    for t in range(5, 40):                         # 2 leaves
        rec.ingest(frame(t, {1: beside(0.0, t)}))
        rec.expire(100.0 + t / 30)
    assert rec.people_tracked == 1
    for t in range(40, 45):                        # 3 steps up where 2 was
        rec.ingest(frame(t, {1: beside(0.0, t), 3: beside(0.8, t + 80)}))
    shown = {p.person_id: p.partner_id for p in rec.infer().people}
    assert shown == {1: 3, 3: 1}


def test_after_the_node_clock_changes_basis_a_source_starts_a_new_timeline():
    """end_all() (the node's clock changed basis, e.g. a bag looped under use_sim_time): the
    next message, stamped 5 s earlier and on a new clock, starts its source afresh: buffered
    at once, no clock change counted, nothing dropped."""
    rec = tiny_recognizer(track_timeout_s=1.0)
    for t in range(5):
        rec.ingest(_shifted(frame(t), 5.0))
    rec.ingestion.end_all()
    for t in range(5, 10):
        rec.ingest(frame(t, arrival=10.0 + t / 30))
        assert rec.frames == t + 1
    assert rec.clock_resets == 0 and sum(rec.dropped.values()) == 0


def test_tracks_expired_counts_every_person_who_left():
    rec = tiny_recognizer(track_timeout_s=0.5)
    for t in range(5):
        rec.ingest(frame(t, {0: pose(seed=t), 4: pose(1.0, t), 9: pose(2.0, t)}))
    assert sorted(rec.expire(now=1000.0)) == [0, 4, 9]
    assert rec.tracks_expired == 3 and rec.stats()["tracks_expired"] == 3


@pytest.mark.parametrize("backend", [None, _counting], ids=["network", "counting"])
def test_smoothing_turned_off_and_on_again_forgets_the_scores_from_before(backend):
    """smoothing 3, then 1 (off) for a while, then 3 again: the first pass after it averages
    only itself, not a score kept from before smoothing was turned off (scores of the network
    on a moving pose, and scores that change every pass, where a stale one cannot hide)."""
    rec, raw = (tiny_recognizer(smoothing=s, backend=backend) for s in (3, 1))
    for t in range(12):
        if t == 5:
            rec.set_smoothing(1)
        if t == 10:
            rec.set_smoothing(3)
        for r in (rec, raw):
            r.ingest(frame(t, {0: pose(0.3 * t, seed=t)}))
        if t < 3:                                   # min_frames 4
            continue
        smoothed, alone = rec.infer().people[0], raw.infer().people[0]
        if 5 <= t <= 10:
            np.testing.assert_allclose(smoothed.probabilities, alone.probabilities, atol=1e-6)


def test_a_departed_person_carries_the_stamp_of_their_last_skeleton():
    rec = tiny_recognizer(track_timeout_s=0.5)
    for t in range(5):
        rec.ingest(frame(t, {0: pose(seed=t), 9: pose(1.0, t)}))
    rec.ingest(frame(5, {0: pose(seed=5)}))
    gone = {d.person_id: d for d in rec.expire_people(now=1000.0)}
    assert gone[9].last_stamp_ns == frame(4).stamp_ns
    assert gone[0].last_stamp_ns == frame(5).stamp_ns
    assert gone[0].frame_id == "kinect" and gone[0].labelled is False


def test_a_source_with_someone_tracked_keeps_its_timeline_when_idle_sources_are_forgotten():
    """max_people 1: one camera's person tracked, then 256 other cameras whose people are
    turned away (their sources idle). Forgetting idle sources must keep the busy one, oldest
    as it is: its timeline goes on, so a late message is still stamp_backwards."""
    from prgcn_ros.ingestion import MAX_SOURCES

    rec = tiny_recognizer(max_people=1)
    for t in range(5):
        rec.ingest(frame(t))
    for i in range(MAX_SOURCES):
        rec.ingest(frame(5, frame_id=f"camera_{i}", arrival=200.0 + i / 1000))
    assert rec.dropped["too_many_people"] == MAX_SOURCES
    rec.ingest(frame(3, arrival=201.0))
    assert rec.dropped["stamp_backwards"] == 1 and rec.frames == 5


def test_an_unstamped_message_gives_the_tracker_no_capture_time():
    """Motion is measured by capture time; an unstamped message has none (its stamp is the
    node's arrival stamp), so the tracker measures it by its clock instead."""
    import math

    rec = tiny_recognizer()
    rec.ingest(dataclasses.replace(frame(0), stamped=False))
    (tracker,) = rec.ingestion._trackers.values()
    (track,) = tracker._tracks.values()
    assert math.isnan(track.last_capture_s)


def test_the_oldest_waiting_frame_goes_first_even_if_its_person_ran_more_recently():
    rec = tiny_recognizer(max_batch=1)
    for t in range(5):
        rec.ingest(frame(t, {1: pose(seed=t), 2: pose(1.0, t)}))
    assert [p.person_id for p in rec.infer(now=1.0).people] == [1]
    assert [p.person_id for p in rec.infer(now=2.0).people] == [2]
    rec.ingest(frame(5, {2: pose(1.0, 5)}))        # 2's frame waits longer than 1's
    rec.ingest(frame(6, {1: pose(seed=6)}))
    assert [p.person_id for p in rec.infer(now=3.0).people] == [2]
    assert [p.person_id for p in rec.infer(now=4.0).people] == [1]


def test_a_score_exactly_at_min_confidence_keeps_its_label():
    scores = []
    for threshold in (0.0, None):
        rec = tiny_recognizer(smoothing=1)
        if threshold is None:
            rec.set_min_confidence(scores[0])
        for t in range(5):
            rec.ingest(frame(t))
        person = rec.infer().people[0]
        scores.append(person.confidence)
        assert person.label in CLASSES and person.label == person.top_labels[0]
    assert scores[0] == scores[1]


def test_a_y_down_input_is_recognised_and_refined_as_the_same_skeleton_y_up():
    """axis y_down: the skeleton turned (-x, -y, z) is the same body; the model sees it y up, so
    the scores are the same, and its refinement comes back turned into the input's frame."""
    flip = np.array([-1.0, -1.0, 1.0])
    people = []
    for axis, turn in (("y_up", 1.0), ("y_down", flip)):
        rec = tiny_recognizer(axis=axis)
        for t in range(5):
            rec.ingest(frame(t, {0: pose(seed=t) * turn}))
        people.append(rec.infer().people[0])
    up, down = people
    assert down.axis == "y_down" and np.abs(up.offsets).max() > 1e-3
    np.testing.assert_allclose(down.probabilities, up.probabilities, atol=1e-6)
    np.testing.assert_allclose(down.offsets, up.offsets * flip, atol=1e-5)
    np.testing.assert_allclose(down.refined, up.refined * flip, atol=1e-5)


def test_a_held_step_confirmed_exactly_track_timeout_s_later_is_kept():
    """Someone gone is a message held *more* than track_timeout_s (1 s) before the next."""
    rec = tiny_recognizer(track_timeout_s=1.0)
    for t in range(5):
        rec.ingest(frame(t))
    rec.ingest(_shifted(frame(30), 0.2))       # arrival 101.0: held (0.2 s ahead)
    rec.ingest(frame(60))                      # arrival 102.0: follows it, 1 s later
    assert sum(rec.dropped.values()) == 0 and rec.frames == 7
