"""Tracker: association on real two-person data, tracks starting and ending, given ids."""
from __future__ import annotations

from collections import Counter
from itertools import permutations

import numpy as np
import pytest

from prgcn_ros.skeleton.readers import read_kinetics_json, read_ntu_skeleton
from prgcn_ros.skeleton.tracker import Tracker

FPS = 30.0


@pytest.fixture(scope="module")
def handshake(data_dir):
    seq = read_ntu_skeleton(data_dir / "ntu_samples" / "S001C003P008R002A058.skeleton")
    assert seq.num_persons == 2
    return seq


def _track_shuffled(seq, tracker: Tracker, seed: int) -> np.ndarray:
    """Feed every frame with the people in random order and no ids; (T, M) track per person."""
    rng = np.random.default_rng(seed)
    out = np.full((seq.num_frames, seq.num_persons), -2)
    for t in range(seq.num_frames):
        order = rng.permutation(seq.num_persons)
        ids = tracker.update(seq.coords[t, order], seq.confidence[t, order], t / FPS)
        out[t, order] = ids
    return out


def _frames_on_own_track(assigned: np.ndarray) -> float:
    """Share of frames in which every person carries the track that is theirs (their most
    frequent one) and no two people share a track."""
    own = [Counter(assigned[:, m]).most_common(1)[0][0] for m in range(assigned.shape[1])]
    assert len(set(own)) == assigned.shape[1]
    return float(np.mean(np.all(assigned == np.array(own)[None], axis=1)))


@pytest.mark.parametrize("seed", range(5))
def test_a058_shuffled_people_keep_their_tracks(handshake, seed):
    tracker = Tracker(gate=0.3, timeout_s=0.5)
    assigned = _track_shuffled(handshake, tracker, seed)
    assert _frames_on_own_track(assigned) >= 0.99
    assert sorted(tracker.active_ids) == sorted(set(assigned.ravel()))


def test_people_appearing_and_leaving(handshake):
    tracker = Tracker(gate=0.3, timeout_s=0.5)
    history = []
    started, ended = set(), {}
    for t in range(handshake.num_frames + 30):
        people = [m for m, (a, b) in enumerate(((0, 40), (20, 70))) if a <= t < b]
        stamp = t / FPS
        ids = tracker.update(handshake.coords[t, people], handshake.confidence[t, people],
                             stamp) if people else []
        history.append(dict(zip(people, ids)))
        started.update(ids)
        for gone in tracker.expire(stamp):
            ended[gone] = t
    first, second = history[0][0], history[20][1]
    assert first != second and started == {first, second}
    assert all(h[0] == first for h in history[:40]) and all(h[1] == second for h in history[20:70])
    # Unseen from frame 40 (person 0) and 70 (person 1): ended just after the 0.5 s timeout.
    assert ended == {first: 40 + 15, second: 70 + 15}
    assert tracker.active_ids == []
    # Coming back after being dropped starts a new track.
    again = tracker.update(handshake.coords[0, :1], handshake.confidence[0, :1], 200 / FPS)
    assert again[0] not in (first, second)


def test_given_ids_kept_and_refreshed(handshake):
    tracker = Tracker(gate=0.3, timeout_s=1.0)
    ids = handshake.person_ids
    for t in range(10):
        assert tracker.update(handshake.coords[t], handshake.confidence[t], t / FPS,
                              ids=ids) == ids
    assert sorted(tracker.active_ids) == sorted(ids)
    assert tracker.last_seen_s(ids[0]) == pytest.approx(9 / FPS)
    assert tracker.expire(9 / FPS + 0.99) == []
    assert sorted(tracker.expire(9 / FPS + 1.01)) == sorted(ids)
    # -1 means "unknown": associated like an id-less person; fresh ids avoid ids in use.
    tracker.update(handshake.coords[0, :1], handshake.confidence[0, :1], 0.0, ids=[0])
    got = tracker.update(handshake.coords[1], handshake.confidence[1], 1 / FPS, ids=[-1, -1])
    assert got[0] == 0 and got[1] not in (0, -1)


def test_a_source_id_never_stands_for_two_people(handshake):
    """An id-less person got the tracker's id 0; then the driver names another person 0. The
    id-less person's track ends (reported) and goes on under a fresh id, the driver's person
    has id 0 alone."""
    tracker = Tracker(gate=0.3, timeout_s=1.0)
    a, b = handshake.coords[:, 0], handshake.coords[:, 1]
    ca, cb = handshake.confidence[:, 0], handshake.confidence[:, 1]
    assert tracker.update(a[:1], ca[:1], 0.0, ids=[-1]) == [0] and tracker.taken_over == []
    got = tracker.update(np.stack([b[1], a[1]]), np.stack([cb[1], ca[1]]), 1 / FPS,
                         ids=[0, -1])
    assert got[0] == 0 and got[1] not in (0, -1)
    assert tracker.taken_over == [0]
    # From now on both keep their ids, and nothing more is taken over.
    for t in range(2, 6):
        again = tracker.update(np.stack([b[t], a[t]]), np.stack([cb[t], ca[t]]), t / FPS,
                               ids=[0, -1])
        assert again == got and tracker.taken_over == []


def test_gate_and_unusable_people(handshake):
    tracker = Tracker(gate=0.3, timeout_s=1.0)
    first = tracker.update(handshake.coords[0, :1], handshake.confidence[0, :1], 0.0)
    moved = handshake.coords[1, :1] + np.array([0.5, 0.0, 0.0], np.float32)  # 0.5 m jump
    second = tracker.update(moved, handshake.confidence[1, :1], 1 / FPS)
    assert second != first and len(tracker) == 2
    blank = tracker.update(np.zeros((1, 25, 3)), np.zeros((1, 25)), 2 / FPS)
    assert blank == [-1] and len(tracker) == 2
    assert tracker.update(np.zeros((0, 25, 3)), np.zeros((0, 25)), 3 / FPS) == []
    with pytest.raises(ValueError):
        tracker.update(np.zeros((2, 25, 3)), np.zeros((2, 24)), 4 / FPS)


def test_two_d_openpose_clip_runs(data_dir):
    """On the Kinetics clip (OpenPose, people unordered, 2D in [0, 1]) the main person, present
    in 163 frames, keeps one track through almost all of them."""
    seq = read_kinetics_json(data_dir / "kinetics_skeleton" / "--33Lscn6sk.json")
    tracker = Tracker(gate=0.05, timeout_s=0.5)   # normalised image units
    seen = Counter()
    for t in range(seq.num_frames):
        present = [m for m in range(seq.num_persons) if (seq.confidence[t, m] > 0.1).any()]
        for track in tracker.update(seq.coords[t, present], seq.confidence[t, present],
                                    t / FPS):
            seen[track] += 1
        tracker.expire(t / FPS)
    assert seen.most_common(1)[0][1] >= 150


def test_a_faint_person_is_tracked_by_the_joints_it_has(handshake):
    """Every joint under min_confidence (a far person in OpenPose): still one stable track; a
    person with no joint above 0 gets none."""
    tracker = Tracker(gate=0.3, timeout_s=0.5)
    faint = np.full(handshake.confidence[0, :1].shape, 0.05, np.float32)
    ids = [tracker.update(handshake.coords[t, :1], faint, t / FPS)[0] for t in range(30)]
    assert ids[0] >= 0 and set(ids) == {ids[0]}
    assert tracker.update(handshake.coords[30, :1], 0 * faint, 1.0) == [-1]


def test_the_nearest_pairs_match_when_someone_stays_unmatched():
    """Three tracks, three people of whom one is new (beyond the gate of every track): the other
    two go to their nearest tracks, not to whichever the solver's rounding picks."""
    tracker = Tracker(gate=1.0, timeout_s=10.0)
    tracks = np.array([[[1.82, 0.10]], [[1.29, 2.06]], [[0.47, 1.16]]])
    assert tracker.update(tracks, np.ones((3, 1)), 0.0) == [0, 1, 2]
    people = np.array([[[0.06, 0.25]], [[0.65, 1.24]], [[1.39, 2.65]]])
    # Distances: person 1 is 0.20 from track 2, person 2 0.60 from track 1; person 0 is 1.00
    # from track 2 (inside the gate) but farther than person 1.
    ids = tracker.update(people, np.ones((3, 1)), 0.1)
    assert ids[1] == 2 and ids[2] == 1 and ids[0] not in (0, 1, 2)


def test_assignments_minimise_distance_over_random_scenes():
    """No other set of pairs within the gate costs less in total, each person who starts a new
    track and each track (all seen in the last update here) left without its person costing
    the gate (distances computed here, not by the tracker)."""
    rng = np.random.default_rng(0)
    for _ in range(300):
        tracker = Tracker(gate=1.0, timeout_s=10.0)
        k, p = rng.integers(1, 6, size=2)
        tracks = rng.uniform(0, 3, (k, 1, 2))
        tracker.update(tracks, np.ones((k, 1)), 0.0)
        people = rng.uniform(0, 3, (p, 1, 2))
        cost = np.linalg.norm(people[:, None, 0] - tracks[None, :, 0], axis=-1)   # (P, K)
        ids = tracker.update(people, np.ones((p, 1)), 0.1)
        matched = [(i, t) for i, t in enumerate(ids) if t < k]
        assert all(cost[i, t] <= 1.0 for i, t in matched), (ids, cost)
        best = min(sum(cost[i, t] for i, t in zip(rows, cols)) + 1.0 * (p - n) + 1.0 * (k - n)
                   for n in range(min(p, k) + 1)
                   for rows in permutations(range(p), n) for cols in permutations(range(k), n)
                   if all(cost[i, t] <= 1.0 for i, t in zip(rows, cols)))
        total = (sum(cost[i, t] for i, t in matched) + 1.0 * (p - len(matched))
                 + 1.0 * (k - len(matched)))
        assert total <= best + 1e-9, (ids, cost)


def test_two_people_walking_side_by_side_keep_their_ids():
    """0.35 m apart, both 0.3 m on per frame (1.4 m/s at 5 Hz), gate 0.5 m: the left one is
    nearer the right one's track, but each keeps their own (a first version of the rule
    above, which charged nothing for a track left without its person, swapped them)."""
    tracker = Tracker(gate=0.5, timeout_s=10.0)
    both = np.ones((2, 1))
    assert tracker.update(np.array([[[0.0, 0.0]], [[0.35, 0.0]]]), both, 0.0) == [0, 1]
    for step in range(1, 6):
        x = 0.3 * step
        assert tracker.update(np.array([[[x, 0.0]], [[x + 0.35, 0.0]]]), both,
                              0.2 * step) == [0, 1], step


def test_a_newcomer_near_a_hidden_persons_track_does_not_take_a_still_persons_id():
    """A stands still; B, 0.3 m beside, is hidden behind A for a frame; someone new appears
    0.4 m on A's other side. A keeps their id (distance 0) and the newcomer gets a new one:
    matching the most pairs gave A the hidden B's id and the newcomer A's."""
    tracker = Tracker(gate=0.5, timeout_s=10.0)
    one = np.ones((1, 1))
    assert tracker.update(np.array([[[0.0, 0.0]], [[0.3, 0.0]]]), np.ones((2, 1)), 0.0) == [0, 1]
    assert tracker.update(np.array([[[0.0, 0.0]]]), one, 0.1) == [0]
    a, newcomer = tracker.update(np.array([[[0.0, 0.0]], [[-0.4, 0.0]]]), np.ones((2, 1)), 0.2)
    assert a == 0 and newcomer not in (0, 1)


def test_two_close_people_seen_in_turn_keep_their_ids():
    """0.3 m apart, gate 0.5 m, the detector seeing one of them at a time (OpenPose flicker):
    B, back at their own track, took A's, which was seen in the update before (leaving it
    cost the gate, leaving B's own nothing), so one id carried both people in turn."""
    tracker = Tracker(gate=0.5, timeout_s=1.0)
    at = lambda *xs: np.array([[[x, 0.0]] for x in xs])     # noqa: E731
    assert tracker.update(at(0.0, 0.3), np.ones((2, 1)), 0.0) == [0, 1]
    for f in range(1, 9):
        who = 0.0 if f % 2 else 0.3
        assert tracker.update(at(who), np.ones((1, 1)), f / 30) == [0 if f % 2 else 1], f
    assert tracker.update(at(0.0, 0.3), np.ones((2, 1)), 9 / 30) == [0, 1]


def test_fresh_ids_start_again_below_the_limit_skipping_ids_in_use(handshake):
    """People turned away every frame (a crowd over max_people) use up fresh ids: they wrap at
    id_limit instead of running past the span a person id may take."""
    tracker = Tracker(gate=0.3, timeout_s=1.0, id_limit=5)
    kept = tracker.update(handshake.coords[0, :1], handshake.confidence[0, :1], 0.0)
    assert kept == [0]
    far = handshake.coords[0, :1] + np.array([3.0, 0.0, 0.0], np.float32)
    seen = []
    for t in range(1, 12):
        [fresh] = tracker.update(far, handshake.confidence[0, :1], t / FPS)
        tracker.remove(fresh)                 # what ingestion does with a person over the cap
        tracker.update(handshake.coords[0, :1], handshake.confidence[0, :1], t / FPS)
        seen.append(fresh)
    assert 0 not in seen and max(seen) < 5 and len(set(seen)) == 4


def test_someone_walking_past_and_hiding_a_still_person_keeps_their_own_id():
    """A stands at 0; B walks towards A at 0.3 m a frame (1.5 m/s at 5 Hz) and, at -0.15 m,
    hides A: B is nearer A's place than their own last one, but where B was heading, so B keeps
    their id, and A, seen again, keeps theirs. Without the constant-velocity prediction B took
    A's id and A came back under a new one."""
    tracker = Tracker(gate=0.5, timeout_s=10.0)
    both, one = np.ones((2, 1)), np.ones((1, 1))
    a_pos = [[0.0, 0.0]]
    for step, x in enumerate([-1.05, -0.75, -0.45]):
        assert tracker.update(np.array([a_pos, [[x, 0.0]]]), both, 0.2 * step) == [0, 1]
    assert tracker.update(np.array([[[-0.15, 0.0]]]), one, 0.6) == [1]       # A hidden
    assert tracker.update(np.array([a_pos, [[0.15, 0.0]]]), both, 0.8) == [0, 1]
    assert tracker.update(np.array([a_pos, [[0.45, 0.0]]]), both, 1.0) == [0, 1]


def test_a_prediction_goes_half_a_second_on_and_the_last_place_still_counts():
    """A track hidden while walking is looked for where it was heading, but no further than
    PREDICT_S of travel (not carried on into whoever stands further along), and at its last
    place too: a walker who stopped behind something keeps their id (prediction alone lost
    them)."""
    one = np.ones((1, 1))

    def walked_then_seen(x: float, at_s: float) -> list[int]:
        tracker = Tracker(gate=0.5, timeout_s=10.0)
        tracker.update(np.array([[[0.0, 0.0]]]), one, 0.0)
        tracker.update(np.array([[[0.3, 0.0]]]), one, 0.2)                 # 1.5 m/s
        return tracker.update(np.array([[[x, 0.0]]]), one, at_s)

    # Seen 3 s later, 0.4 m past where half a second takes it (all 3 s: 3.35 m off; the last
    # place: 1.15 m; both beyond the gate).
    assert walked_then_seen(0.3 + 0.75 + 0.4, 3.2) == [0]
    assert walked_then_seen(0.3, 1.0) == [0]                          # stopped where last seen
    assert walked_then_seen(0.3 + 0.75 + 0.6, 3.2) == [1]             # beyond both: someone new


def test_motion_is_measured_by_capture_time_not_by_when_frames_are_handled():
    """A person standing still (5 mm jitter) at 30 Hz, two frames handled 0.3 ms apart (a
    queue drained): by the handling clock that is 17 m/s, which put the next frame beyond the
    gate; by capture time it is a jitter, and the id stays."""
    tracker = Tracker(gate=0.3, timeout_s=1.0)
    one = np.ones((1, 1))
    places = [0.0, 0.005, 0.0, 0.005, 0.0]
    handled = [0.0, 0.0333, 0.0336, 0.0667, 0.1]
    ids = [tracker.update(np.array([[[x, 0.0]]]), one, clock, capture_s=t / 30)
           for t, (x, clock) in enumerate(zip(places, handled))]
    assert ids == [[0]] * 5
    # A burst of stamps equal to the last (a slow clock tick) moves nothing either, nor gives
    # the next real frame a velocity out of a zero interval.
    again = [tracker.update(np.array([[[x, 0.0]]]), one, 0.2, capture_s=5 / 30)
             for x in (0.0, 0.005)]
    assert again == [[0], [0]]
    assert tracker.update(np.array([[[0.0, 0.0]]]), one, 0.25, capture_s=6 / 30) == [0]


def test_a_jittery_2d_person_hidden_for_half_a_second_keeps_their_id():
    """OpenPose at 60 Hz, 8 px jitter on each of 18 joints, hidden 0.5 s standing: a one-frame
    velocity carried half a second puts the prediction beyond the 80 px gate, but the last
    place is looked at too, so the id stays (prediction alone lost it in 124 of 200 runs)."""
    rng = np.random.default_rng(3)
    body = rng.uniform(200, 400, (1, 18, 2))
    confident = np.ones((1, 18))
    kept = 0
    for _ in range(50):
        tracker = Tracker(gate=80.0, timeout_s=1.0)
        for t in range(10):
            tracker.update(body + rng.normal(0, 8, body.shape), confident, t / 60)
        kept += tracker.update(body + rng.normal(0, 8, body.shape), confident, 39 / 60) == [0]
    assert kept == 50


def test_frames_of_unknown_capture_time_are_timed_by_the_node_clock():
    """A source that sends some messages unstamped (the node stamps them on arrival, half a
    second after their capture): such a frame's capture time is unknown (NaN), and motion to
    and from it is timed by the node's clock, never by an arrival stamp minus a capture stamp
    (which made 48 m/s of a walk, or none). The walk past a person standing still keeps both
    ids when the walker's last frame before hiding them came unstamped."""
    tracker = Tracker(gate=0.5, timeout_s=10.0)
    both, one = np.ones((2, 1)), np.ones((1, 1))
    a_pos = [[0.0, 0.0]]
    captures = [100.0, 100.2, np.nan, 100.6, 100.8, 101.0]
    clocks = [5.5, 5.7, 5.9, 6.1, 6.3, 6.5]          # the node's clock, 0.5 s after capture
    scene = [[a_pos, [[-1.05, 0.0]]], [a_pos, [[-0.75, 0.0]]], [a_pos, [[-0.45, 0.0]]],
             [[[-0.15, 0.0]]], [a_pos, [[0.15, 0.0]]], [a_pos, [[0.45, 0.0]]]]
    expected = [[0, 1], [0, 1], [0, 1], [1], [0, 1], [0, 1]]
    for people, clock, capture, ids in zip(scene, clocks, captures, expected):
        conf = both if len(people) == 2 else one
        assert tracker.update(np.array(people), conf, clock, capture_s=capture) == ids


# Small scenes: one joint per person on a line (x, y), unless said.
ONE = np.ones((1, 1))


def _at(*xs: float) -> np.ndarray:
    """People (P, 1, 2) at these places on the line."""
    return np.array([[[x, 0.0]] for x in xs])


def test_an_id_less_person_never_takes_the_id_a_driver_gives_in_the_same_frame():
    tracker = Tracker(gate=0.5, timeout_s=1.0)
    assert tracker.update(_at(0.0), ONE, 0.0, ids=[7]) == [7]
    got = tracker.update(np.concatenate([_at(0.0), _at(0.1)]), np.ones((2, 1)), 0.1,
                         ids=[7, -1])
    assert got[0] == 7 and got[1] not in (7, -1), got


def test_a_person_back_after_one_hidden_frame_keeps_their_id_while_another_leaves():
    """X hidden one frame (its track, not seen last update, may go unmatched at no cost), Y
    seen then gone far away: X back within the gate of their place keeps their id."""
    tracker = Tracker(gate=0.5, timeout_s=10.0)
    assert tracker.update(np.concatenate([_at(0.0), _at(3.0)]), np.ones((2, 1)), 0.0) == [0, 1]
    assert tracker.update(_at(3.0), ONE, 0.1) == [1]            # X hidden
    assert tracker.update(_at(0.3), ONE, 0.2) == [0]            # Y gone, X back


def test_joints_seen_earlier_still_associate_a_person_whose_visible_joints_changed():
    """Legs hidden, then the whole body, then only the legs: one person, one id."""
    tracker = Tracker(gate=0.5, timeout_s=1.0)
    body = np.array([[[0.0, 0.0], [0.0, 1.0], [0.2, -1.0], [-0.2, -1.0]]])
    assert tracker.update(body, np.array([[1.0, 1.0, 0.0, 0.0]]), 0.0) == [0]
    assert tracker.update(body, np.ones((1, 4)), 0.1) == [0]
    assert tracker.update(body, np.array([[0.0, 0.0, 1.0, 1.0]]), 0.2) == [0]


def test_a_frame_with_an_earlier_clock_does_not_move_last_seen_back():
    tracker = Tracker(gate=0.5, timeout_s=1.0)
    tracker.update(_at(0.0), ONE, 1.0)
    tracker.update(_at(0.0), ONE, 0.5)
    assert tracker.last_seen_s(0) == 1.0
    assert tracker.expire(1.9) == []


def test_a_person_exactly_at_the_gate_keeps_their_track_and_bad_settings_are_refused():
    tracker = Tracker(gate=0.5, timeout_s=1.0)
    assert tracker.update(_at(0.0), ONE, 0.0) == [0]
    assert tracker.update(_at(0.5), ONE, 0.1) == [0]            # "farther than gate": not
    for kwargs in ({"gate": 0.0, "timeout_s": 1.0}, {"gate": 0.5, "timeout_s": 0.0},
                   {"gate": 0.5, "timeout_s": 1.0, "id_limit": 0}):
        with pytest.raises(ValueError, match="positive"):
            Tracker(**kwargs)


def test_two_people_equally_near_a_hidden_persons_track_get_two_ids():
    """A hidden for a frame, then two people 0.1 m either side of A's place: one of them may
    be A again, never both."""
    tracker = Tracker(gate=0.5, timeout_s=1.0)
    assert tracker.update(_at(0.0, 5.0), np.ones((2, 1)), 0.0) == [0, 1]
    assert tracker.update(_at(5.0), ONE, 0.1) == [1]
    ids = tracker.update(_at(-0.1, 0.1, 5.0), np.ones((3, 1)), 0.2)
    assert len(set(ids)) == 3 and ids[2] == 1 and 0 in ids


def test_a_returning_person_keeps_their_id_beside_a_newcomer_while_another_hides():
    """A (0) and S (0.4); A hidden, then S hidden while A is back 0.1 m off their place and
    someone new stands 0.2 m on A's other side: A's id goes to A (each the other's nearest),
    not S's to A and A's to the newcomer."""
    tracker = Tracker(gate=0.5, timeout_s=10.0)
    assert tracker.update(_at(0.0, 0.4), np.ones((2, 1)), 0.0) == [0, 1]
    assert tracker.update(_at(0.4), ONE, 0.1) == [1]
    a, newcomer = tracker.update(_at(0.1, -0.2), np.ones((2, 1)), 0.2)
    assert a == 0 and newcomer not in (0, 1)


def test_a_person_without_a_confident_joint_does_not_disturb_the_others():
    """A driver's all-zero entry in every frame (no joint shared with any track): the two close
    people seen in turn still keep their ids."""
    tracker = Tracker(gate=0.5, timeout_s=1.0)
    ghost = _at(5.0)
    ids = tracker.update(np.concatenate([_at(0.0, 0.3), ghost]),
                         np.array([[1.0], [1.0], [0.0]]), 0.0)
    assert ids[:2] == [0, 1]
    for f in range(1, 7):
        who = 0.0 if f % 2 else 0.3
        ids = tracker.update(np.concatenate([_at(who), ghost]), np.array([[1.0], [0.0]]), f / 30)
        assert ids[0] == (0 if f % 2 else 1), f


def test_a_capture_clock_that_steps_back_predicts_no_motion_backwards():
    """A walks at 1 m/s; the capture clock steps back 10 s (a bag played again) and someone
    appears 10 m behind A: A's track is not carried 10 m back to them."""
    tracker = Tracker(gate=0.5, timeout_s=5.0)
    for k in range(11):
        assert tracker.update(_at(-1.0 + k / 10), ONE, k / 10) == [0]
    assert tracker.update(_at(-10.0), ONE, stamp_s=1.1, capture_s=-9.0) != [0]
