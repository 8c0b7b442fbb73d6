"""What prgcn-player sends and when, without ROS: recordings on one clock (--parallel), and a
folder of OpenPose frame files followed as they appear (--follow, --consume)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from prgcn_ros.skeleton.playback import (
    READ_TRIES,
    SETTLE_S,
    FrameFolder,
    tick_period,
    ticks,
)
from prgcn_ros.skeleton.sequence import SkeletonSequence


def recording(frames: int, fps: float, persons: int = 1, layout: str = "kinect20",
              joints: int = 20, ids: list[int] | None = None) -> SkeletonSequence:
    coords = np.arange(frames * persons * joints * 3, dtype=np.float32)
    return SkeletonSequence(coords.reshape(frames, persons, joints, 3),
                            np.ones((frames, persons, joints), np.float32), layout, fps,
                            person_ids=ids)


def openpose_frame(people: int, seed: int) -> dict:
    """One OpenPose ``--write_json`` frame of ``people`` BODY_25 people."""
    rng = np.random.default_rng(seed)
    return {"version": 1.3, "people": [
        {"person_id": [-1], "pose_keypoints_2d": [
            float(v) for _ in range(25) for v in (*rng.uniform(100, 500, 2), 0.8)]}
        for _ in range(people)]}


def test_recordings_share_one_clock_at_the_fastest_frame_rate():
    fast, slow = recording(4, 30.0), recording(2, 15.0)
    assert tick_period([fast, slow], rate=2.0) == pytest.approx(1 / 60)
    played = list(ticks([fast, slow], parallel=2))
    assert [[i for i, _ in t.started] for t in played] == [[0, 1], [], [], []]
    # Every tick has the 30 fps recording's next frame; the 15 fps one every other tick,
    # from the first. One layout: one group (one message) per tick.
    assert [t.frames["kinect20"][0] for t in played] == [[0, 100], [0], [0, 100], [0]]
    first = played[0].frames["kinect20"]
    np.testing.assert_array_equal(first[1], np.stack([fast.coords[0, 0], slow.coords[0, 0]]))
    assert first[2].shape == (2, 20)
    np.testing.assert_array_equal(played[3].frames["kinect20"][1][0], fast.coords[3, 0])


def test_a_recording_between_two_rates_keeps_its_own_rate():
    """20 fps beside 30 fps: two frames every three ticks (the phase carries over), not one
    every other tick (15 fps)."""
    played = list(ticks([recording(6, 30.0), recording(4, 20.0)], parallel=2))
    assert [t.frames["kinect20"][0] for t in played] == [[0, 100], [0], [0, 100], [0, 100],
                                                          [0], [0, 100]]


def test_parallel_1_plays_one_recording_after_the_other():
    played = list(ticks([recording(2, 30.0), recording(3, 30.0)], parallel=1))
    assert [[i for i, _ in t.started] for t in played] == [[0], [], [1], [], []]
    assert [t.frames["kinect20"][0] for t in played] == [[0], [0], [100], [100], [100]]


def test_each_layout_is_its_own_group_and_an_empty_slot_is_nobody():
    two = recording(2, 30.0, persons=2, ids=[4, 5])
    two.confidence[1, 0] = 0          # slot 0 has no confident joint in frame 1
    body = recording(2, 30.0, layout="body25", joints=25)
    played = list(ticks([two, body], parallel=2))
    assert {k: v[0] for k, v in played[0].frames.items()} == {"kinect20": [0, 1],
                                                              "body25": [100]}
    assert {k: v[0] for k, v in played[1].frames.items()} == {"kinect20": [1],
                                                              "body25": [100]}
    nobody = recording(1, 30.0)
    nobody.confidence[:] = 0
    assert [t.frames for t in ticks([nobody])] == [{}]      # the tick passes, no message


def write_frame(folder: Path, name: str, frame: dict | str) -> None:
    """As OpenPose leaves a file: complete when it appears."""
    partial = folder.parent / "partial.json"
    partial.write_text(frame if isinstance(frame, str) else json.dumps(frame))
    partial.rename(folder / name)


@pytest.fixture
def folder(tmp_path):
    path = tmp_path / "openpose"
    path.mkdir()
    return path


def test_a_followed_folder_gives_each_new_file_once_in_natural_order(folder):
    write_frame(folder, "old_000000000000_keypoints.json", openpose_frame(1, 0))
    follower = FrameFolder(folder, report=pytest.fail)
    assert follower.existing == 1 and list(follower.poll()) == []   # there before: skipped
    write_frame(folder, "f_10_keypoints.json", openpose_frame(1, 10))
    write_frame(folder, "f_2_keypoints.json", openpose_frame(2, 2))
    (folder / ".f_3_keypoints.json").write_text("{")      # a copy tool's hidden file
    got = list(follower.poll())
    assert [Path(s.source).name for s in got] == ["f_2_keypoints.json", "f_10_keypoints.json"]
    assert [s.num_persons for s in got] == [2, 1] and got[0].layout == "body25"
    assert list(follower.poll()) == []
    (folder / "f_2_keypoints.json").unlink()        # gone: forgotten on the next listing
    assert list(follower.poll()) == []
    assert follower.seen == {"old_000000000000_keypoints.json", "f_10_keypoints.json"}
    assert follower.skipped == 0


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_file_that_does_not_read_is_retried_then_skipped_and_its_kind_reported_once(folder):
    reports: list[str] = []
    clock = _Clock()
    follower = FrameFolder(folder, report=reports.append, clock=clock)
    write_frame(folder, "a_1_keypoints.json", '{"people": [')        # still being written
    write_frame(folder, "a_2_keypoints.json", openpose_frame(1, 2))
    for _ in range(READ_TRIES - 1):
        assert list(follower.poll()) == []          # the frames after it wait their turn
    (folder / "b_3_keypoints.json").write_text('{"people": [')
    assert list(follower.poll()) == []              # tried enough, but not SETTLE_S as it is
    clock.now += SETTLE_S
    got = list(follower.poll())
    assert [Path(s.source).name for s in got] == ["a_2_keypoints.json"]
    assert follower.skipped == 1 and len(reports) == 1 and "a_1_keypoints.json" in reports[0]
    for _ in range(READ_TRIES):
        assert list(follower.poll()) == []
    clock.now += SETTLE_S
    assert list(follower.poll()) == []
    assert follower.skipped == 2 and len(reports) == 1    # the same kind: counted, not listed
    assert sorted(p.name for p in folder.iterdir()) == [
        "a_1_keypoints.json", "a_2_keypoints.json", "b_3_keypoints.json"]   # no --consume


def test_a_file_still_being_written_is_waited_for_while_it_grows(folder):
    """A writer that pauses mid-file longer than READ_TRIES polls (a busy disk): the file is
    not skipped while it changes, nor before it has stayed as it is for SETTLE_S; complete, it
    is sent, and the frames after it follow in order."""
    clock = _Clock()
    follower = FrameFolder(folder, report=pytest.fail, clock=clock)
    text = json.dumps(openpose_frame(1, 1))
    path = folder / "a_1_keypoints.json"
    path.write_text(text[: len(text) // 2])
    write_frame(folder, "a_2_keypoints.json", openpose_frame(1, 2))
    for _ in range(3 * READ_TRIES):
        clock.now += 0.01
        assert list(follower.poll()) == []
    with path.open("a") as half:                   # grows, still not valid JSON
        half.write(text[len(text) // 2: -2])
    clock.now += SETTLE_S - 0.01                   # SETTLE_S since it first failed, not since
    assert list(follower.poll()) == []             # it last changed
    path.write_text(text)
    got = list(follower.poll())
    assert [Path(s.source).name for s in got] == ["a_1_keypoints.json", "a_2_keypoints.json"]
    assert follower.skipped == 0


def test_consume_deletes_what_was_read_or_skipped_and_says_once_what_it_cannot(folder):
    reports: list[str] = []
    clock = _Clock()
    follower = FrameFolder(folder, consume=True, report=reports.append, clock=clock)
    write_frame(folder, "a_1_keypoints.json", openpose_frame(1, 1))
    (folder / "d_2_keypoints.json").mkdir()      # named like a frame: skipped, not deletable
    (folder / "d_3_keypoints.json").mkdir()
    got = []
    for _ in range(2 * READ_TRIES):
        got += list(follower.poll())
        clock.now += SETTLE_S
    assert [Path(s.source).name for s in got] == ["a_1_keypoints.json"]
    assert sorted(p.name for p in folder.iterdir()) == ["d_2_keypoints.json",
                                                       "d_3_keypoints.json"]
    assert follower.skipped == 2
    assert sum("cannot delete" in line for line in reports) == 1, reports


def test_consume_deletes_a_frame_file_once_sent_not_before(folder):
    """A stop while a frame waits for its turn to be sent (a slow --rate): its file stays for
    the next run. It was deleted when read, before the wait, and the frame lost."""
    follower = FrameFolder(folder, consume=True)
    for k in (1, 2):
        write_frame(folder, f"a_{k}_keypoints.json", openpose_frame(k, 1))
    frames = follower.poll()
    first = Path(next(frames).source)
    assert first.name == "a_1_keypoints.json" and first.exists()
    second = Path(next(frames).source)          # asked for the next: the first was sent
    assert not first.exists() and second.exists()
    frames.close()                              # stopped before the second was sent
    assert sorted(p.name for p in folder.iterdir()) == ["a_2_keypoints.json"]


def test_a_file_that_breaks_the_reader_unexpectedly_is_skipped_and_the_stream_goes_on(
        folder, monkeypatch):
    """No file may end a live stream, whatever its reader raises."""
    from prgcn_ros.skeleton import playback

    read = playback.read_recording

    def flaky(path):
        if path.name.startswith("a_"):
            raise RuntimeError("a reader bug")
        return read(path)

    monkeypatch.setattr(playback, "read_recording", flaky)
    reports: list[str] = []
    follower = FrameFolder(folder, report=reports.append)
    write_frame(folder, "a_1_keypoints.json", openpose_frame(1, 1))
    write_frame(folder, "b_2_keypoints.json", openpose_frame(1, 2))
    assert [Path(s.source).name for s in follower.poll()] == ["b_2_keypoints.json"]
    assert follower.skipped == 1 and len(reports) == 1 and "RuntimeError: a reader bug" in \
        reports[0]


def test_two_person_recordings_played_at_once_pair_within_their_own_recording():
    """SBU films every pair at the same place: four recordings at once in one message stood
    in each other, and the recognizer paired one recording's first person with another's (the
    labels then came out 'hugging' for a kick). Each plays in a lane of its own, 5 m apart."""
    from prgcn_ros.model.io import load_model, resolve_model
    from prgcn_ros.paths import data_dir
    from prgcn_ros.recognition import InputFrame, Recognizer, RecognizerParams
    from prgcn_ros.skeleton.readers import read_sbu_interaction

    files = sorted((data_dir() / "sbu_interaction" / "s01s02").glob("*/001/skeleton_pos.txt"))
    if len(files) < 4:
        pytest.skip("SBU Kinect Interaction data missing")
    recordings = [read_sbu_interaction(f) for f in files[:4]]
    model, meta = load_model(resolve_model("sbu_interaction"))
    recognizer = Recognizer(model, meta, RecognizerParams.from_dict({}), "cpu")
    partners: set[tuple[int, int]] = set()
    for t, tick in enumerate(ticks(recordings, parallel=4)):
        for layout, (ids, coords, conf) in tick.frames.items():
            recognizer.ingest(InputFrame(stamp_ns=(t + 1) * 66_666_667, frame_id="camera",
                                         layout=layout, ids=list(ids), coords=list(coords),
                                         confidence=list(conf), arrival=100.0 + t / 15))
        tracks = recognizer.ingestion.tracks
        for key, track in tracks.items():
            other = recognizer.ingestion.partner_of(key)
            if other in tracks:
                partners.add((track.local_id, tracks[other].local_id))
    assert partners and all(a // 100 == b // 100 for a, b in partners), sorted(partners)


def test_a_file_that_changed_once_and_stays_broken_is_skipped_after_its_tries(folder):
    """The settle time counts from its last change, and only READ_TRIES tries or more skip."""
    clock = _Clock()
    reports: list[str] = []
    follower = FrameFolder(folder, report=reports.append, clock=clock)
    path = folder / "a_1_keypoints.json"
    path.write_text('{"people": [')
    assert list(follower.poll()) == []
    path.write_text('{"people": [{')                    # grew once, still broken
    for _ in range(READ_TRIES - 2):
        clock.now += SETTLE_S
        assert list(follower.poll()) == []              # fewer tries than READ_TRIES
    clock.now += SETTLE_S
    assert list(follower.poll()) == [] and follower.skipped == 1 and len(reports) == 1


def test_lanes_stay_apart_as_recordings_end_and_start_and_only_for_3d_pairs():
    """A recording that starts when another ends takes the free lane, not one in use; a
    one-person recording and a 2D one keep their x, and a missing joint stays where it is."""
    def two_people(frames: int, layout: str = "kinect20", dims: int = 3) -> SkeletonSequence:
        coords = np.ones((frames, 2, 20 if layout == "kinect20" else 18, dims), np.float32)
        conf = np.ones(coords.shape[:3], np.float32)
        coords[:, 1, 0], conf[:, 1, 0] = 0.0, 0.0       # person 2's first joint missing
        return SkeletonSequence(coords=coords, confidence=conf, layout=layout, fps=30.0,
                                person_ids=[1, 2])

    recordings = [two_people(3), two_people(6), two_people(4)]
    xs = {}
    for t, tick in enumerate(ticks(recordings, parallel=2)):
        ids, coords, _ = tick.frames["kinect20"]
        lanes = {}
        for pid, person in zip(ids, coords):
            lanes.setdefault(pid // 100, set()).add(round(float(person[1, 0]), 3))
            if pid % 100 == 1:
                assert float(person[0, 0]) == 0.0            # missing: not moved
        assert len({min(x) for x in lanes.values()}) == len(lanes), (t, lanes)
        xs.update({k: min(v) for k, v in lanes.items()})
    assert sorted(xs.values()) == [1.0, 1.0, 6.0]            # lanes 0, 1, then 0 again
    flat = [SkeletonSequence(coords=np.ones((2, 1, 20, 3), np.float32),
                             confidence=np.ones((2, 1, 20), np.float32), layout="kinect20",
                             fps=30.0) for _ in range(2)]
    image = [two_people(2, "coco18", 2) for _ in range(2)]
    for group, layout in ((flat, "kinect20"), (image, "coco18")):
        for tick in ticks(group, parallel=2):
            assert np.all(tick.frames[layout][1][..., 0] <= 1.0)   # no lane offset
