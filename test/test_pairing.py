"""Pairing people for two-person models (prgcn_ros.pairing): the distance gate, one pair per
person, stable pairs (hysteresis). numpy only, no torch, no ROS (test_imports.py holds it)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from prgcn_ros.pairing import EXACT_GROUP, RELEASE_FACTOR, Pairing, best_pairs, mean_positions


def at(x: float, z: float = 2.0) -> np.ndarray:
    return np.array([x, 0.0, z])


def test_people_within_the_gate_pair_and_farther_ones_do_not():
    pairing = Pairing(gate=2.0)
    pairing.update({1: at(0.0), 2: at(1.5), 3: at(5.0)})
    assert pairing.pairs() == [(1, 2)]
    assert pairing.partner(1) == 2 and pairing.partner(2) == 1 and pairing.partner(3) is None


def test_each_person_is_in_one_pair_at_most_and_the_closest_pair_first():
    pairing = Pairing(gate=2.0)
    # 2 is near both 1 and 3; 2-3 is the closer pair, so 1 stays alone (no second partner).
    pairing.update({1: at(0.0), 2: at(1.0), 3: at(1.6)})
    assert pairing.pairs() == [(2, 3)] and pairing.partner(1) is None
    # Four people: two pairs, nobody twice.
    pairing = Pairing(gate=2.0)
    pairing.update({1: at(0.0), 2: at(0.5), 3: at(1.2), 4: at(1.6)})
    pairs = pairing.pairs()
    assert pairs == [(1, 2), (3, 4)]
    assert sorted(k for pair in pairs for k in pair) == [1, 2, 3, 4]


def test_two_pairs_side_by_side_pair_as_two_not_the_middle_two():
    """Partners 1 m apart, the pairs 0.5 m from each other: closest first paired the middle
    two and left the outer two alone (3 m apart, beyond the gate)."""
    pairing = Pairing(gate=2.0)
    pairing.update({1: at(0.0), 2: at(1.0), 3: at(1.5), 4: at(2.5)})
    assert pairing.pairs() == [(1, 2), (3, 4)]


def _brute_force(distance: np.ndarray, near: np.ndarray) -> tuple[int, float]:
    """(pairs, total distance) of the best pairing, over every set of disjoint pairs."""
    n = len(distance)
    edges = [(i, j) for i in range(n) for j in range(i + 1, n) if near[i, j]]
    best = (0, 0.0)
    for chosen in itertools.chain.from_iterable(
            itertools.combinations(edges, k) for k in range(1, n // 2 + 1)):
        people = [p for edge in chosen for p in edge]
        if len(set(people)) == len(people):
            score = (len(chosen), sum(distance[i, j] for i, j in chosen))
            best = min(best, score, key=lambda s: (-s[0], s[1]))
    return best


def test_the_pairs_chosen_are_the_most_and_then_the_closest():
    rng = np.random.default_rng(3)
    for _ in range(200):
        n = int(rng.integers(2, 8))
        points = rng.uniform(0.0, 4.0, (n, 2))
        distance = np.linalg.norm(points[:, None] - points[None], axis=-1)
        pairs = best_pairs(distance, distance <= 2.0)
        people = [p for pair in pairs for p in pair]
        assert len(set(people)) == len(people) and all(i < j for i, j in pairs)
        count, total = _brute_force(distance, distance <= 2.0)
        assert len(pairs) == count
        assert sum(distance[i, j] for i, j in pairs) == pytest.approx(total)


def test_a_crowd_beyond_the_exact_search_pairs_closest_first():
    """More people linked through the gate than EXACT_GROUP: still disjoint pairs, every
    one within the gate, quickly."""
    x = np.arange(EXACT_GROUP + 4) * 1.0      # (whole metres: ties broken by index alone)
    distance = np.abs(x[:, None] - x[None])
    pairs = best_pairs(distance, distance <= 2.0)
    assert pairs == [(i, i + 1) for i in range(0, EXACT_GROUP + 4, 2)]
    people = [p for pair in pairs for p in pair]
    assert len(set(people)) == len(people)


def test_a_pair_holds_until_the_margin_beyond_the_gate_then_parts():
    pairing = Pairing(gate=2.0)
    pairing.update({1: at(0.0), 2: at(1.0)})
    # Beyond the gate but within the margin: still a pair (no flicker at the edge).
    pairing.update({1: at(0.0), 2: at(2.0 * RELEASE_FACTOR - 0.01)})
    assert pairing.pairs() == [(1, 2)]
    pairing.update({1: at(0.0), 2: at(2.0 * RELEASE_FACTOR + 0.01)})
    assert pairing.pairs() == []
    # Back within the margin but not within the gate: alone until within the gate again.
    pairing.update({1: at(0.0), 2: at(2.2)})
    assert pairing.pairs() == []
    pairing.update({1: at(0.0), 2: at(1.9)})
    assert pairing.pairs() == [(1, 2)]


def test_a_closer_newcomer_does_not_steal_a_partner():
    pairing = Pairing(gate=2.0)
    pairing.update({1: at(0.0), 2: at(1.5)})
    pairing.update({3: at(0.2)})                  # closer to 1 than 2 is
    assert pairing.pairs() == [(1, 2)] and pairing.partner(3) is None


def test_when_a_person_leaves_the_partner_is_free_and_pairs_again():
    pairing = Pairing(gate=2.0)
    pairing.update({1: at(0.0), 2: at(1.5)})
    pairing.update({3: at(0.5)})
    pairing.remove(2)
    assert pairing.partner(1) is None and len(pairing) == 2
    pairing.update({1: at(0.0), 3: at(0.5)})      # the next frame pairs 1 with 3
    assert pairing.pairs() == [(1, 3)]


def test_only_people_of_the_newest_frame_form_a_pair():
    """Someone out of view keeps a last position that is old: a newcomer near it pairs with
    the person actually there, not with the one who left (until the track times out)."""
    pairing = Pairing(gate=2.0)
    pairing.update({1: at(0.0), 2: at(2.3)})      # too far apart
    assert pairing.pairs() == []
    for _ in range(5):                            # 2 out of view; 3 comes in near 2's place
        pairing.update({1: at(0.0), 3: at(1.9)})
        assert pairing.pairs() == [(1, 3)]
    pairing.update({2: at(2.3)})                  # 2 back: 1 and 3 stay a pair
    assert pairing.pairs() == [(1, 3)] and pairing.partner(2) is None


def test_people_missing_from_a_frame_keep_their_last_position_and_their_pair():
    pairing = Pairing(gate=2.0)
    pairing.update({1: at(0.0), 2: at(1.0)})
    for _ in range(5):                            # 2 not seen for a few frames (occlusion)
        pairing.update({1: at(0.1)})
    assert pairing.pairs() == [(1, 2)]


def test_pairing_is_stable_over_a_long_interaction():
    """Two people approaching and parting within the margin, and a third walking past: the
    pair never changes."""
    pairing = Pairing(gate=2.0)
    # Out to 1.1 x the gate, into the margin (below RELEASE_FACTOR x the gate): a pair that
    # parted at the gate itself would fail here.
    assert 1.1 < RELEASE_FACTOR
    for t in range(200):
        gap = 1.3 + 0.9 * np.sin(t / 20)          # 0.4 .. 2.2 m
        pairing.update({1: at(0.0), 2: at(gap), 3: at(4.0 - t * 0.03, 2.5)})
        assert pairing.partner(1) == 2, t


def test_a_person_without_a_confident_joint_is_never_paired():
    coords = np.stack([np.zeros((4, 3)) + (0, 0, 2), np.zeros((4, 3)) + (1, 0, 2)])
    confidence = np.array([[1.0, 1, 0, 0], [0.0, 0, 0, 0]])
    positions = mean_positions(coords, confidence)
    np.testing.assert_allclose(positions[0], (0, 0, 2))
    assert np.isnan(positions[1]).all()
    pairing = Pairing(gate=2.0)
    pairing.update({1: positions[0], 2: positions[1]})
    assert pairing.pairs() == []


def test_mean_positions_use_the_confident_joints_only():
    coords = np.array([[[0.0, 0, 2], [2.0, 0, 2], [100.0, 100, 100]]])
    positions = mean_positions(coords, np.array([[1.0, 0.5, 0.0]]))
    np.testing.assert_allclose(positions, [[1.0, 0.0, 2.0]])


def test_a_gate_must_be_positive():
    for gate in (0.0, -1.0, float("nan")):      # (a NaN gate would never pair anyone)
        with pytest.raises(ValueError, match="positive"):
            Pairing(gate=gate)



def test_the_release_margin_is_the_documented_one():
    """The pair_gate parameter's description states the margin; a pair 1.2 x the gate apart
    stays, 1.3 x parts (gate 2 m)."""
    from prgcn_ros.live_data import PARAMETER_SPECS

    assert f"{RELEASE_FACTOR:g} x the gate" in PARAMETER_SPECS["pair_gate"].description
    pairing = Pairing(gate=2.0)
    pairing.update({1: at(0.0), 2: at(1.0)})
    pairing.update({1: at(0.0), 2: at(2.4)})
    assert pairing.pairs() == [(1, 2)]
    pairing.update({1: at(0.0), 2: at(2.6)})
    assert pairing.pairs() == []


def test_a_pair_exactly_at_the_gate_pairs_and_a_partner_without_a_position_parts_it():
    pairing = Pairing(gate=2.0)
    pairing.update({1: at(0.0), 2: at(2.0)})                    # "within the gate"
    assert pairing.pairs() == [(1, 2)]
    pairing.update({2: np.full(3, np.nan)})
    assert pairing.pairs() == [] and pairing.partner(1) is None
