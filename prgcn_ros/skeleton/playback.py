"""What prgcn-player sends, and when: recordings on one clock, and a folder of OpenPose frame
files as they appear. No ROS here: the player node publishes what these give it.
"""
from __future__ import annotations

import json
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .bags import person_ids
from .layouts import TWO_D_LAYOUTS
from .readers import RecordingError, natural_key, openpose_frame_files, read_recording
from .sequence import SkeletonSequence, frame_people

# Messages are never sent closer than this share of their recorded spacing: a player behind
# schedule (a busy machine) catches up at 4/3 speed instead of in a burst the recognizer would
# drop as a flood.
MIN_SPACING = 0.75

# A frame file that does not read is tried again on this many polls (OpenPose may still be
# writing it), then skipped once it has not changed for SETTLE_S either: a writer that pauses
# mid-file (a busy disk, a network file system) is waited for, a broken file holds the stream
# up once, for SETTLE_S.
READ_TRIES = 5
SETTLE_S = 0.5

People = tuple[list[int], np.ndarray, np.ndarray]   # ids, coords (P, J, C), confidences (P, J)


@dataclass
class Tick:
    """One tick of the player's clock: the recordings that start on it (index in the argument
    list, recording) and the frames due on it, one group of people per layout (one message
    each, as one sensor seeing several people)."""
    started: list[tuple[int, SkeletonSequence]] = field(default_factory=list)
    frames: dict[str, People] = field(default_factory=dict)


# Recordings of several people played at once stand this far apart along x (metres), lane by
# lane: two-person datasets film every pair at the same place, and one camera's people within
# the recognizer's pair gate (2 m; parted beyond 2.5) would pair across recordings.
LANE_SPACING_M = 5.0


@dataclass
class _Playing:
    index: int                 # place in the argument list (for bags.person_ids)
    seq: SkeletonSequence
    step: float                # frames of this recording per tick of the clock
    lane: int = 0              # its place among the recordings playing at once
    phase: float = 0.0
    next_frame: int = 0

    @property
    def offset_x(self) -> float:
        """Where its people stand along x: recordings of several people in 3D by lane."""
        several = self.seq.num_persons >= 2 and self.seq.layout not in TWO_D_LAYOUTS
        return self.lane * LANE_SPACING_M if several else 0.0


def tick_period(recordings: list[SkeletonSequence], rate: float) -> float:
    """Seconds between ticks: the fastest recording's frame period, divided by ``rate``."""
    return 1.0 / (max(seq.fps for seq in recordings) * rate)


def ticks(recordings: list[SkeletonSequence], parallel: int = 1) -> Iterator[Tick]:
    """One round through ``recordings``, up to ``parallel`` at once, on one clock ticking at
    the fastest one's frame rate: a slower recording's frames fall on fewer ticks. People
    have the ids :func:`.bags.person_ids` gives recording k (its place in the list); a 3D
    recording of several people stands LANE_SPACING_M along x per lane it plays in."""
    tick_hz = max(seq.fps for seq in recordings)
    queue = deque(enumerate(recordings))
    playing: list[_Playing] = []
    while queue or playing:
        tick = Tick()
        while queue and len(playing) < parallel:
            index, seq = queue.popleft()
            step = seq.fps / tick_hz
            lane = min(set(range(parallel)) - {p.lane for p in playing})
            playing.append(_Playing(index, seq, step, lane, phase=1.0 - step))
            tick.started.append((index, seq))
        groups: dict[str, tuple[list, list, list]] = {}
        for p in playing:
            p.phase += p.step
            if p.phase < 1.0 - 1e-9:
                continue
            p.phase -= 1.0
            ids, coords, conf = frame_people(p.seq, p.next_frame, person_ids(p.index, p.seq))
            if ids and p.offset_x:
                coords = coords.copy()
                coords[..., 0] += np.where(conf > 0, p.offset_x, 0.0)   # missing joints stay
            if ids:
                group = groups.setdefault(p.seq.layout, ([], [], []))
                group[0].extend(ids)
                group[1].append(coords)
                group[2].append(conf)
            p.next_frame += 1
        tick.frames = {layout: (ids, np.concatenate(coords), np.concatenate(conf))
                       for layout, (ids, coords, conf) in groups.items()}
        playing = [p for p in playing if p.next_frame < p.seq.num_frames]
        yield tick


class FrameFolder:
    """New OpenPose frame files in a folder (``--write_json``), each read once, in order.

    Files there at the start are skipped. A file that does not read yet is tried again on
    the next polls, then skipped once it stays as it is (READ_TRIES, SETTLE_S); each kind of
    error is reported once (``report``), then counted. OpenPose never deletes its files:
    with ``consume`` each file is deleted once read or skipped, so that the folder, its
    listing and the names remembered stay small over hours. A folder of many thousand frames
    is listed by name only."""

    def __init__(self, directory: Path, consume: bool = False,
                 report: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.directory = Path(directory)
        self.clock = clock
        self.consume = consume
        self.report = report or (lambda line: print(line, file=sys.stderr, flush=True))
        self.seen = openpose_frame_files(self.directory)
        self.existing = len(self.seen)
        self.skipped = 0               # files skipped as unreadable
        self.listing_s = 0.0           # how long the last listing took
        # A file that did not read: tries, and its (size, mtime) and since when it has them.
        self._retries: dict[str, tuple[int, tuple[int, int] | None, float]] = {}
        self._reported: set[str] = set()

    def poll(self) -> Iterator[SkeletonSequence]:
        """The frames of the files that appeared since the last poll, in natural order; it
        stops at a file that does not read yet (its turn comes again on the next poll)."""
        listed = time.monotonic()
        names = openpose_frame_files(self.directory)
        self.listing_s = time.monotonic() - listed
        self.seen &= names               # files removed from the folder are forgotten
        self._retries = {name: n for name, n in self._retries.items() if name in names}
        for name in sorted(names - self.seen, key=natural_key):
            path = self.directory / name
            try:
                seq = read_recording(path)
                problem = None
            except (RecordingError, json.JSONDecodeError, OSError) as error:
                if not self._settled(name, path):
                    return
                seq, problem = None, (type(error).__name__, str(error))
            except Exception as error:   # no file may end a live stream
                seq, problem = None, (type(error).__name__,
                                      f"{type(error).__name__}: {error}")
            self.seen.add(name)
            self._retries.pop(name, None)
            if problem is not None:
                self.skipped += 1
                if problem[0] not in self._reported:
                    self._reported.add(problem[0])
                    self.report(f"skipping {name}: {problem[1]} (files skipped for a "
                                f"{problem[0]} from now on are counted, not listed)")
            if seq is not None:
                yield seq        # deleted only when the next one is asked for: once sent
            if self.consume:
                self._delete(path)

    def _settled(self, name: str, path: Path) -> bool:
        """Whether a file that did not read has been tried enough and stayed as it is."""
        try:
            info = path.stat()
            state = (info.st_size, info.st_mtime_ns)
        except OSError:
            state = None
        now = self.clock()
        tries, last, since = self._retries.get(name, (0, state, now))
        if state != last:
            since = now          # still being written
        self._retries[name] = (tries + 1, state, since)
        return tries + 1 >= READ_TRIES and now - since >= SETTLE_S

    def _delete(self, path: Path) -> None:
        try:
            path.unlink(missing_ok=True)
        except OSError as error:   # not ours to delete: the stream goes on
            if "unlink" not in self._reported:
                self._reported.add("unlink")
                self.report(f"--consume: cannot delete {path.name}: {error} (further such "
                            f"files are left in place)")
