"""Skeleton source of the live benchmarks: publishes prgcn_msgs/SkeletonArray on /skeletons.

Usage: skeleton_source.py SCENARIO.json OUT.npz

The scenario (written by bench/livekit.py users) lists real recordings and phases::

    {"topic": "/skeletons", "frame_id": "bench", "recordings": [paths], "spacing_m": 1.2,
     "seed": 0,
     "phases": [{"name": "n10_r0", "persons": 10, "rate_hz": 30, "duration_s": 12,
                 "person_frames": 0, "stamps": "now", "late": "reanchor", "id_base": 1000,
                 "churn": null, "gap_after_s": 2.5}, ...]}

Each of a phase's ``persons`` slots replays one recording at its own frame rate, looped, moved
``spacing_m`` along x per slot so people stand apart; each slot's person carries id
``id_base + n`` (a driver's body id). ``stamps``: "now" stamps every message with the time it
is sent, "scheduled" with its tick (start + k / rate). ``late``: "reanchor" restarts the
schedule when a tick is more than half a period late and keeps "now" stamps at least half a
period apart (no burst of near-equal stamps, which the recognizer would rightly drop as a
flood), "catchup" sends the missed ticks at once.
``churn`` {"present_s": [a, b], "absent_s": [a, b], "unknown_id_every": k}: each slot's
person stays for a uniform time in present_s, leaves for a time in absent_s (longer than the
recognizer's track timeout, so its track ends), and a new person with a new id (every k-th
one without an id, -1: the recognizer's tracker assigns one) and the next recording appears.
A phase ends after ``duration_s`` or once ``person_frames`` skeletons were sent.

OUT.npz: per message phase, stamp_ns, pub_ns, people_ptr (CSR) and people (ids as sent; -1
is logged as the slot's own negative key -(1 + global person number), unique per person);
OUT.phases.json: the phases with what was achieved (messages, rate, late ticks).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import rclpy
from rclpy.node import Node
from std_msgs.msg import Header

from prgcn_msgs.msg import Skeleton, SkeletonArray
from prgcn_ros.nodes.conversions import ns_to_stamp, skeleton_array_msg
from prgcn_ros.skeleton.readers import read_recording


class Recording:
    """One recording's frames as ready-made keypoint lists, per x offset (built on demand)."""

    def __init__(self, path: str) -> None:
        self.seq = read_recording(path)
        self.fps = float(self.seq.fps)
        self._cache: dict[float, list] = {}

    def keypoints(self, frame: int, offset_x: float) -> list:
        frames = self._cache.get(offset_x)
        if frames is None:
            coords = self.seq.coords[:, 0].astype(np.float64).copy()
            coords[..., 0] += offset_x
            conf = self.seq.confidence[:, 0]
            frames = self._cache[offset_x] = [
                skeleton_array_msg(Header(), self.seq.layout, [0], coords[t:t + 1],
                                   conf[t:t + 1]).skeletons[0].keypoints
                for t in range(self.seq.num_frames)]
        return frames[frame % len(frames)]


class Slot:
    """One place in the scene where a person stands (and, with churn, comes and goes)."""

    def __init__(self, index: int, offset_x: float) -> None:
        self.index = index
        self.offset_x = offset_x
        self.present = True
        self.until = float("inf")
        self.since = 0.0
        self.recording: Recording | None = None
        self.sent_id = -1
        self.log_id = -1


class Source:
    def __init__(self, scenario: dict) -> None:
        self.scenario = scenario
        self.node = Node("bench_skeleton_source")
        self.publisher = self.node.create_publisher(SkeletonArray,
                                                    scenario.get("topic", "/skeletons"), 10)
        self.recordings = [Recording(p) for p in scenario["recordings"]]
        self.layout = self.recordings[0].seq.layout
        self.frame_id = scenario.get("frame_id", "bench")
        self.rng = np.random.default_rng(int(scenario.get("seed", 0)))
        self.people = 0              # people started so far (new person number)
        self.next_recording = 0
        self.log_phase: list[int] = []
        self.log_stamp: list[int] = []
        self.log_pub: list[int] = []
        self.log_people: list[int] = []
        self.log_ptr: list[int] = [0]

    def wait_for_recognizer(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.publisher.get_subscription_count() < 1:
            if time.monotonic() > deadline:
                raise SystemExit("no subscriber on /skeletons: is the recognizer running?")
            rclpy.spin_once(self.node, timeout_sec=0.05)
        time.sleep(0.5)   # let the recognizer's side of the match settle too

    # ------------------------------------------------------------------ people
    def _enter(self, slot: Slot, phase: dict, now: float) -> None:
        slot.present = True
        slot.since = now
        slot.recording = self.recordings[self.next_recording % len(self.recordings)]
        self.next_recording += 1
        churn = phase.get("churn")
        every = int(churn.get("unknown_id_every", 0)) if churn else 0
        unknown = every > 0 and self.people % every == every - 1
        slot.sent_id = -1 if unknown else int(phase.get("id_base", 0)) + self.people
        slot.log_id = -(1 + self.people) if unknown else slot.sent_id
        self.people += 1
        if churn:
            slot.until = now + self.rng.uniform(*churn["present_s"])
        slot.recording.keypoints(0, slot.offset_x)   # build its messages now, not on a tick

    def _update(self, slots: list[Slot], phase: dict, now: float) -> None:
        churn = phase.get("churn")
        if not churn:
            return
        for slot in slots:
            if now < slot.until:
                continue
            if slot.present:
                slot.present = False
                slot.until = now + self.rng.uniform(*churn["absent_s"])
            else:
                self._enter(slot, phase, now)

    # ------------------------------------------------------------------ phases
    def play(self, index: int, phase: dict) -> dict:
        persons = int(phase["persons"])
        spacing = float(self.scenario.get("spacing_m", 1.2))
        slots = [Slot(i, (i - (persons - 1) / 2) * spacing) for i in range(persons)]
        period = 1.0 / float(phase["rate_hz"])
        duration = float(phase.get("duration_s") or 0)
        budget = int(phase.get("person_frames") or 0)
        now_stamps = phase.get("stamps", "now") == "now"
        reanchor = phase.get("late", "reanchor") == "reanchor"
        start = time.monotonic()
        for slot in slots:
            self._enter(slot, phase, start)
            if phase.get("churn"):   # stagger the first departures
                slot.until = start + self.rng.uniform(0, phase["churn"]["present_s"][1])
        t0, start_ns = start, time.time_ns()
        last_ns, min_gap_ns = 0, int(period * 1e9 / 2)
        k = sent = frames = late_ticks = 0
        while True:
            deadline = t0 + k * period
            now = time.monotonic()
            if deadline > now:
                time.sleep(deadline - now)
                now = time.monotonic()
            if now - deadline > period / 2:
                late_ticks += 1
                if reanchor:
                    t0 = now - k * period
            if (duration and now - start >= duration) or (budget and frames >= budget):
                break
            self._update(slots, phase, now)
            present = [s for s in slots if s.present]
            k += 1
            if not present:
                continue
            skeletons = [Skeleton(id=s.sent_id, keypoints=s.recording.keypoints(
                int((now - s.since) * s.recording.fps), s.offset_x)) for s in present]
            if now_stamps:
                stamp_ns = time.time_ns()
                if reanchor and stamp_ns - last_ns < min_gap_ns:   # never two stamps too close
                    time.sleep((min_gap_ns - (stamp_ns - last_ns)) / 1e9)
                    stamp_ns = time.time_ns()
                last_ns = stamp_ns
            else:
                stamp_ns = start_ns + int((k - 1) * period * 1e9)
            msg = SkeletonArray(header=Header(stamp=ns_to_stamp(stamp_ns),
                                              frame_id=self.frame_id),
                                layout=self.layout, skeletons=skeletons)
            pub_ns = time.time_ns()
            self.publisher.publish(msg)
            self.log_phase.append(index)
            self.log_stamp.append(stamp_ns)
            self.log_pub.append(pub_ns)
            self.log_people += [s.log_id for s in present]
            self.log_ptr.append(len(self.log_people))
            sent += 1
            frames += len(present)
        elapsed = time.monotonic() - start
        print(f"phase {phase['name']}: {sent} messages, {frames} person-frames in "
              f"{elapsed:.1f} s ({sent / elapsed:.1f} Hz), {late_ticks} late ticks", flush=True)
        time.sleep(float(phase.get("gap_after_s", 0)))
        return {**phase, "messages": sent, "person_frames_sent": frames,
                "elapsed_s": round(elapsed, 2), "achieved_hz": round(sent / elapsed, 2),
                "late_ticks": late_ticks, "people_started": self.people}

    def save(self, out: Path, phases: list[dict]) -> None:
        np.savez(out, phase=np.array(self.log_phase, np.int64),
                 stamp_ns=np.array(self.log_stamp, np.int64),
                 pub_ns=np.array(self.log_pub, np.int64),
                 people_ptr=np.array(self.log_ptr, np.int64),
                 people=np.array(self.log_people, np.int64))
        out.with_suffix(".phases.json").write_text(json.dumps(phases, indent=2))


def main() -> int:
    scenario = json.loads(Path(sys.argv[1]).read_text())
    out = Path(sys.argv[2])
    rclpy.init()
    try:
        source = Source(scenario)
        source.wait_for_recognizer()
        print("publishing", flush=True)
        done = [source.play(i, phase) for i, phase in enumerate(scenario["phases"])]
        source.save(out, done)
    finally:
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
