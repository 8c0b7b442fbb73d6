"""make demo: live action recognition over real ROS 2 topics on held-out MSR Action3D clips.

Starts prgcn-recognizer and prgcn-player as two processes (real DDS on loopback), replays the
cross-subject test clips (subjects 2, 4, 6, 8, 10) as several people at once and faster than
real time, and prints a live table (clip, true action, recognised action, confidence,
latency). Then the live accuracy next to the offline accuracy of the same model on the same
clips through the evaluation code (prgcn-eval's path), latency p50/p99, and docs/demo.png with
refined poses and labels of a few clips.

    .venv/bin/python tools/demo.py [--clips-per-action N] [--parallel K] [--rate R] [--model M]

Exit status 0 when every clip got a label and live and offline accuracy agree within 3 points.
"""
from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

# Keep the demo's DDS traffic on this machine and off a robot's domain, unless told otherwise.
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", str(os.getpid() % 80 + 100))

import numpy as np  # noqa: E402

from prgcn_ros import paths  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
TEST_SUBJECTS = (2, 4, 6, 8, 10)
AGREEMENT_POINTS = 3.0
# high arm wave, hand catch, high throw, hand clap, bend, forward kick, tennis swing,
# pick up & throw (0-based classes).
FIGURE_ACTIONS = (0, 3, 5, 9, 12, 13, 16, 19)


@dataclass
class Clip:
    name: str
    path: Path
    label: int
    frames: int                  # frames the player publishes (frames with the person in view)
    person_id: int
    offline: int = -1            # the evaluation code's prediction
    offline_conf: float = 0.0
    live: int = -1
    live_conf: float = 0.0
    live_frames: int = 0
    latency_ms: float = float("nan")
    done: bool = False
    stamps: list[int] = field(default_factory=list)       # /skeletons stamps (ns) seen
    refined: dict[int, np.ndarray] = field(default_factory=dict)   # stamp -> (V, 3)
    inputs: dict[int, np.ndarray] = field(default_factory=dict)


def _at_least(minimum: int):
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {minimum} or more, got {value}")
        return value
    return parse


def _positive(text: str) -> float:
    value = float(text)
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a number above 0, got {text}")
    return value


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None,
                        help="model file or shipped model name (default: msr_action3d)")
    parser.add_argument("--clips-per-action", type=_at_least(0), default=0, metavar="N",
                        help="held-out clips per action (default 0: all 273)")
    parser.add_argument("--parallel", type=_at_least(1), default=4, metavar="K",
                        help="clips played at once, as K people (default 4)")
    parser.add_argument("--rate", type=_positive, default=4.0,
                        help="speed over the recordings' 15 fps (default 4)")
    parser.add_argument("--figure", type=Path, default=REPO / "docs" / "demo.png")
    parser.add_argument("--write-bag", type=Path, metavar="OUT",
                        help="write the selected clips, one after another, into a new rosbag2 "
                        "OUT (SkeletonArray on /skeletons) and stop; play it with "
                        "prgcn-player OUT")
    parser.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap",
                        help="--write-bag storage (default mcap)")
    return parser.parse_args()


def fail(message: str, code: int = 2) -> None:
    print(f"demo: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def select_clips(root: Path, per_action: int) -> list[Clip]:
    from prgcn_ros.skeleton.preprocess import drop_empty_frames
    from prgcn_ros.skeleton.readers import read_msr_action3d
    from prgcn_ros.training.datasets import msr_file_list

    chosen = [c for c in msr_file_list(root, "files_used_in_cvpr12_paper.txt")
              if c.subject in TEST_SUBJECTS]
    if per_action:
        count: dict[int, int] = defaultdict(int)
        keep = []
        for c in sorted(chosen, key=lambda c: (c.action, c.subject, c.repetition)):
            if count[c.action] < per_action:
                count[c.action] += 1
                keep.append(c)
        chosen = keep
    # Interleave the actions so the people on stage at any time do different things.
    chosen.sort(key=lambda c: (c.subject, c.repetition, c.action))
    clips = []
    for index, c in enumerate(chosen):
        seq = drop_empty_frames(read_msr_action3d(root / c.filename))
        clips.append(Clip(c.name, root / c.filename, c.label, seq.num_frames, 100 * index))
    return clips


def offline_predictions(model_path: Path, clips: list[Clip]) -> list[str]:
    """The evaluation code's scores for the same clips (what prgcn-eval computes)."""
    import torch

    from prgcn_ros.model.io import load_model
    from prgcn_ros.skeleton.readers import read_msr_action3d
    from prgcn_ros.training.config import load_config
    from prgcn_ros.training.datasets import SequenceDataset
    from prgcn_ros.training.evaluate import config_for_model, predict

    torch.set_num_threads(1)
    model, metadata = load_model(model_path, "cpu")
    cfg = config_for_model(load_config(paths.share_file("config", "train_msr_action3d.yaml")),
                           metadata)
    dataset = SequenceDataset([lambda c=c: read_msr_action3d(c.path) for c in clips],
                              [c.label for c in clips], [c.name for c in clips],
                              metadata["class_names"], "MSR Action3D held-out clips")
    scores, _ = predict(model, dataset, cfg)
    for clip, s in zip(clips, scores):
        clip.offline, clip.offline_conf = int(s.argmax()), float(s.max())
    return list(metadata["class_names"])


def start(args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], stdout=open(log, "w"),  # noqa: SIM115
                            stderr=subprocess.STDOUT, cwd=REPO,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(2)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def tail(log: Path, lines: int = 15) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


class Stage:
    """The demo's own node: watches /skeletons, /action and /refined_poses."""

    def __init__(self, clips: list[Clip], class_names: list[str], window: int) -> None:
        from rclpy.node import Node
        from rclpy.qos import qos_profile_sensor_data

        from prgcn_msgs.msg import ActionArray, RefinedSkeletonArray, SkeletonArray

        self.clips = {c.person_id: c for c in clips}
        self.names = class_names
        self.window = window
        self.node = Node("prgcn_demo")
        self.latencies: list[float] = []
        self.recognizer_stats: dict[str, str] = {}
        self._last_end: dict[int, int] = {}
        self.figure_ids = {c.person_id for c in _figure_clips(clips)}
        self.node.create_subscription(SkeletonArray, "/skeletons", self.on_skeletons,
                                      qos_profile_sensor_data)
        self.node.create_subscription(ActionArray, "/action", self.on_action, 100)
        self.node.create_subscription(RefinedSkeletonArray, "/refined_poses", self.on_refined,
                                      100)
        from diagnostic_msgs.msg import DiagnosticArray
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self.on_diagnostics, 10)

    def on_diagnostics(self, msg) -> None:
        values = {kv.key: kv.value for kv in msg.status[0].values}
        # The node's percentiles cover its last seconds: keep the last report that had samples
        # (after the clips end the window empties).
        if float(values.get("latency_samples", 1)) > 0:
            self.recognizer_stats.update(values)

    def on_skeletons(self, msg) -> None:
        stamp = _ns(msg.header.stamp)
        for skeleton in msg.skeletons:
            clip = self.clips.get(skeleton.id)
            if clip is None:
                continue
            clip.stamps.append(stamp)
            if skeleton.id in self.figure_ids:
                clip.inputs[stamp] = _xyz(skeleton.keypoints)

    def on_refined(self, msg) -> None:
        stamp = _ns(msg.header.stamp)
        for skeleton in msg.skeletons:
            if skeleton.person_id in self.figure_ids:
                self.clips[skeleton.person_id].refined[stamp] = _xyz(skeleton.keypoints)

    def on_action(self, msg) -> None:
        now = time.time_ns()
        for action in msg.actions:
            clip = self.clips.get(action.person_id)
            if clip is None or clip.done:
                continue
            end = _ns(action.window_end)
            # Each input frame counts once: from its stamp to the first /action that used it
            # (before a person's first label only the newest frame: the rest were warm-up).
            previous = self._last_end.get(clip.person_id)
            used = [s for s in clip.stamps if (previous is None and s == end)
                    or (previous is not None and previous < s <= end)]
            self.latencies += [(now - s) / 1e6 for s in used]
            self._last_end[clip.person_id] = end
            clip.live, clip.live_conf = action.class_index, action.confidence
            clip.live_frames = action.num_frames
            clip.latency_ms = (now - end) / 1e6
            if action.num_frames >= min(clip.frames, self.window):
                self.finish(clip)

    def finish(self, clip: Clip, note: str = "") -> None:
        clip.done = True
        mark = "  " if clip.live == clip.label else "x "
        live = self.names[clip.live] if clip.live >= 0 else "(none)"
        print(f"{mark}{clip.name:<13}{self.names[clip.label]:<22}{live:<22}"
              f"{clip.live_conf:5.2f}  {self.names[clip.offline]:<22}{clip.latency_ms:7.0f}"
              f"{note}", flush=True)


def _ns(stamp) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def _xyz(keypoints) -> np.ndarray:
    return np.array([[k.position.x, k.position.y, k.position.z, k.confidence]
                     for k in keypoints])


def _figure_clips(clips: list[Clip]) -> list[Clip]:
    """The first clip of each of a few actions that look different."""
    first: dict[int, Clip] = {}
    for clip in clips:
        first.setdefault(clip.label, clip)
    return [first[label] for label in FIGURE_ACTIONS if label in first]


def draw_figure(path: Path, clips: list[Clip], names: list[str]) -> None:
    """Per clip, at its last labelled frame: the input (grey) and the refined pose (green when
    recognised correctly, red otherwise) side by side, with the labels."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from prgcn_ros.skeleton.plot import plot_skeletons

    shown = [c for c in _figure_clips(clips) if set(c.refined) & set(c.inputs)]
    cols = 4
    rows = max(1, (len(shown) + cols - 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 3.4 * rows), dpi=110)
    for ax in np.ravel(axes):
        ax.axis("off")
    for ax, clip in zip(np.ravel(axes), shown):
        stamp = max(set(clip.refined) & set(clip.inputs))
        raw, refined = clip.inputs[stamp], clip.refined[stamp]
        seen = raw[:, 3] > 0
        width = np.ptp(np.concatenate([raw[seen, 0], refined[seen, 0]]))
        shift = np.array([1.2 * width + 0.3, 0.0, 0.0])
        plot_skeletons(ax, raw[:, :3], raw[:, 3], "kinect20", color="0.6", size=8)
        ok = clip.live == clip.label
        plot_skeletons(ax, refined[:, :3] + shift, refined[:, 3], "kinect20",
                       color="tab:green" if ok else "tab:red", size=8)
        moved = np.linalg.norm(refined[seen, :3] - raw[seen, :3], axis=1).mean()
        ax.set_title(f"{clip.name}: true {names[clip.label]}\nlive: {names[clip.live]} "
                     f"({clip.live_conf:.2f}); mean PRM offset {100 * moved:.0f} cm",
                     fontsize=8)
    fig.suptitle("Live PR-GCN on held-out MSR Action3D clips, last labelled frame: input "
                 "(grey) and refined pose (green: recognised correctly, red: not)", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main() -> int:
    args = parse_args()
    begin = time.monotonic()
    root = paths.data_dir() / "msr_action3d"
    if not (root / "files_used_in_cvpr12_paper.txt").is_file():
        fail(paths.missing_data_message(root / "files_used_in_cvpr12_paper.txt"))
    from prgcn_ros.model.io import ModelFileError, resolve_model
    from prgcn_ros.recognition import RecognizerParams

    try:
        model = resolve_model(args.model) if args.model else RecognizerParams().model_path()
    except ModelFileError as error:
        fail(f"{error}: the shipped model comes with the repository (models/), or train one "
             f"with prgcn-train --config config/train_msr_action3d.yaml and pass --model")
    from prgcn_ros.model.io import read_metadata
    from prgcn_ros.skeleton.labels import MSR_ACTION3D_CLASSES

    try:
        meta = read_metadata(model)
    except ModelFileError as error:
        fail(str(error))
    if list(meta.get("class_names") or []) != list(MSR_ACTION3D_CLASSES):
        fail(f"model {model}: the demo replays MSR Action3D clips and scores them against their "
             f"20 classes; this model has other classes ({len(meta.get('class_names') or [])}: "
             f"{', '.join(list(meta.get('class_names') or [])[:3])}, ...). Evaluate it with "
             f"prgcn-eval --model {args.model} --json")

    from prgcn_ros.skeleton.readers import RecordingError, read_msr_action3d

    try:
        clips = select_clips(root, args.clips_per_action)
    except (RecordingError, OSError) as error:     # a clip the file list names, damaged
        fail(f"{error} (MSR Action3D in {root})")
    if not clips:
        fail(f"no held-out clip (subjects {', '.join(map(str, TEST_SUBJECTS))}) in {root}'s "
             f"files_used_in_cvpr12_paper.txt")
    if args.write_bag:
        from prgcn_ros.skeleton.bags import BagError, write_bag

        existed = Path(args.write_bag).exists()
        try:
            count = write_bag(args.write_bag, [read_msr_action3d(c.path) for c in clips],
                              storage=args.storage)
        except (BagError, OSError) as error:
            fail(f"--write-bag {args.write_bag}: {error}")
        except KeyboardInterrupt:     # no half-written bag is left
            if not existed:
                shutil.rmtree(args.write_bag, ignore_errors=True)
            raise
        print(f"demo: wrote {len(clips)} clips ({count} SkeletonArray messages on /skeletons) "
              f"to {args.write_bag} ({args.storage}); play: prgcn-player {args.write_bag}")
        return 0
    names = offline_predictions(model, clips)
    window = RecognizerParams().window
    frames = sum(c.frames for c in clips)
    print(f"demo: {len(clips)} held-out MSR Action3D clips (subjects "
          f"{', '.join(map(str, TEST_SUBJECTS))}), {frames} frames, played {args.parallel} at "
          f"once at {args.rate:g}x real time; model {model.name}", flush=True)

    import rclpy
    from rclpy.executors import ExternalShutdownException

    logs = Path(tempfile.mkdtemp(prefix="prgcn_demo_"))
    rclpy.init()
    stage = Stage(clips, names, window)
    recognizer = start(["-m", "prgcn_ros.nodes.recognizer", "--ros-args", "--params-file",
                        str(paths.share_file("config", "recognizer.yaml")), "-p",
                        # Each clip's label from its own last window, as offline.
                        f"model:={model}", "-p", "smoothing:=1"], logs / "recognizer.log")
    player = None
    code = 0
    interrupted = False
    try:
        # The recognizer is up once it subscribes to /skeletons. Its first start with a model
        # exports the ONNX graph (backend auto on a CPU): tens of seconds on a small busy CPU.
        deadline = time.monotonic() + 240
        while not any(i.node_name == "prgcn_recognizer"
                      for i in stage.node.get_subscriptions_info_by_topic("/skeletons")):
            if recognizer.poll() is not None or time.monotonic() > deadline:
                fail(f"the recognizer did not start:\n{tail(logs / 'recognizer.log')}", 1)
            rclpy.spin_once(stage.node, timeout_sec=0.1)
        print(f"\n  {'clip':<13}{'true action':<22}{'recognised live':<22}{'conf':>5}  "
              f"{'offline (eval)':<22}{'latency ms':>10}", flush=True)
        player = start(["-m", "prgcn_ros.nodes.player", *[str(c.path) for c in clips],
                        "--parallel", str(args.parallel), "--rate", str(args.rate), "--quiet",
                        "--wait", "20", "--subscribers", "2",   # the recognizer and us
                        "--ros-args", "-p", "frame_id:=kinect"],
                       logs / "player.log")
        while player.poll() is None:
            rclpy.spin_once(stage.node, timeout_sec=0.05)
            if recognizer.poll() is not None:
                fail(f"the recognizer stopped:\n{tail(logs / 'recognizer.log')}", 1)
        if player.returncode != 0:
            fail(f"the player failed:\n{tail(logs / 'player.log')}", 1)
        # The last clips' labels follow within a forward pass or two.
        deadline = time.monotonic() + 10
        while not all(c.done for c in clips) and time.monotonic() < deadline:
            rclpy.spin_once(stage.node, timeout_sec=0.05)
        for clip in clips:
            if not clip.done:   # frames lost on the way: its last label, marked
                stage.finish(clip, f"  (label from {clip.live_frames} of {clip.frames} frames)")
        stats_deadline = time.monotonic() + 1.5
        while time.monotonic() < stats_deadline:
            rclpy.spin_once(stage.node, timeout_sec=0.05)
    except (KeyboardInterrupt, ExternalShutdownException):
        interrupted = True
    except Exception:
        if rclpy.ok():
            raise
        interrupted = True     # SIGTERM: rclpy's handler shut the context down mid-call
    finally:
        for proc in (player, recognizer):
            if proc is not None:
                stop(proc)
        stage.node.destroy_node()
        rclpy.try_shutdown()
    if interrupted:
        print("demo: interrupted", file=sys.stderr, flush=True)
        return 130

    labelled = [c for c in clips if c.live >= 0]
    live = 100.0 * np.mean([c.live == c.label for c in clips])
    offline = 100.0 * np.mean([c.offline == c.label for c in clips])
    agree = sum(c.live == c.offline for c in clips)
    lat = np.array(stage.latencies)
    s = stage.recognizer_stats
    print(f"\nlive accuracy     {live:5.1f} %  ({sum(c.live == c.label for c in clips)} of "
          f"{len(clips)} clips)")
    print(f"offline accuracy  {offline:5.1f} %  (same model, same clips, the evaluation code)")
    print(f"live == offline   {agree} of {len(clips)} clips; difference "
          f"{abs(live - offline):.1f} points (allowed {AGREEMENT_POINTS:g})")
    if len(lat):
        print(f"latency           p50 {np.percentile(lat, 50):.0f} ms, p99 "
              f"{np.percentile(lat, 99):.0f} ms  (skeleton message stamp -> its first /action "
              f"received here, {len(lat)} messages, {args.parallel} people at "
              f"{15 * args.rate:g} Hz)")
    if s:
        print(f"recognizer says   latency p50 {float(s['latency_p50_ms']):.0f} ms, p99 "
              f"{float(s['latency_p99_ms']):.0f} ms (arrival -> publication), forward pass "
              f"p50 {float(s['inference_p50_ms']):.0f} ms, dropped {s['dropped_total']}")
    draw_figure(args.figure, clips, names)
    print(f"figure            {args.figure}")
    print(f"took              {time.monotonic() - begin:.0f} s; logs in {logs}")
    if len(labelled) < len(clips):
        print(f"demo: {len(clips) - len(labelled)} clips got no label", file=sys.stderr)
        code = 1
    if abs(live - offline) > AGREEMENT_POINTS:
        print("demo: live and offline accuracy differ by more than "
              f"{AGREEMENT_POINTS:g} points", file=sys.stderr)
        code = 1
    return code


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:    # Ctrl-C before the processes start (reading, evaluating)
        print("demo: interrupted", file=sys.stderr, flush=True)
        sys.exit(130)
