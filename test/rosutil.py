"""Helpers for tests that talk to other processes over real ROS 2 topics (no mocks): processes,
waits on conditions, and the recognizer's test side (a model file, its arguments, the probe node
that feeds it and listens to it)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Point
from rclpy.node import Node
from std_msgs.msg import Header
from visualization_msgs.msg import Marker, MarkerArray

from prgcn_msgs.msg import ActionArray, Keypoint, RefinedSkeletonArray, Skeleton, SkeletonArray
from prgcn_ros.live_data import local_id
from prgcn_ros.skeleton.layouts import get_layout

REPO = Path(__file__).resolve().parent.parent
CLASSES = ["wave", "punch", "kick", "bow"]
PARAMS_FILE = REPO / "config" / "recognizer.yaml"
FRAME_ID = "kinect_test"
# The recognizer test_nodes and test_nodes_streams each run for their module: both inputs,
# short windows, quick expiry and diagnostics, no smoothing, room for bursts.
LIVE_SETTINGS = ("azure_kinect:=true", "min_frames:=4", "window:=16", "track_timeout_s:=0.6",
                 "diagnostics_period_s:=0.25", "smoothing:=1", "max_input_hz:=100.0")


def spin_until(node: Node, done: Callable[[], bool], timeout_s: float,
               step_s: float = 0.02) -> bool:
    """Spin `node` until `done()` is true or the timeout passes; returns done()."""
    deadline = time.monotonic() + timeout_s
    while not done() and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=step_s)
    return done()


def drain(node: Node, received: list, quiet_s: float = 0.5, timeout_s: float = 15.0) -> None:
    """Once a publisher is done: spin until ``received`` has not grown for ``quiet_s`` (what was
    sent has been taken), at most ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        count = len(received)
        if spin_until(node, lambda n=count: len(received) > n, quiet_s):
            continue
        return


def wait_for_subscribers(node: Node, publisher, count: int = 1, timeout_s: float = 20.0) -> None:
    """Wait for discovery instead of sleeping blindly: messages sent before a match are lost."""
    if not spin_until(node, lambda: publisher.get_subscription_count() >= count, timeout_s):
        raise TimeoutError(f"no subscriber matched {publisher.topic_name} within {timeout_s} s")


def wait_for_publishers(node: Node, topic: str, count: int = 1, timeout_s: float = 20.0) -> None:
    if not spin_until(node, lambda: node.count_publishers(topic) >= count, timeout_s):
        raise TimeoutError(f"no publisher on {topic} within {timeout_s} s")


def start_process(args: list[str], log_path: Path, env: dict[str, str] | None = None
                  ) -> subprocess.Popen:
    """Start a Python process of this venv (the ROS wheels set themselves up per interpreter)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    full_env.setdefault("PYTHONUNBUFFERED", "1")
    # A crash (SIGSEGV, SIGABRT) then leaves every thread's Python stack in the log.
    full_env.setdefault("PYTHONFAULTHANDLER", "1")
    log = open(log_path, "w")  # noqa: SIM115 - closed by stop_process
    proc = subprocess.Popen([sys.executable, *args], stdout=log, stderr=subprocess.STDOUT,
                            env=full_env, cwd=REPO)
    proc.log_file = log  # type: ignore[attr-defined]
    proc.log_path = log_path  # type: ignore[attr-defined]
    return proc


def stop_process(proc: subprocess.Popen, timeout_s: float = 10.0) -> int:
    """SIGINT first (what Ctrl-C does), then kill; returns the exit code."""
    if proc.poll() is None:
        proc.send_signal(2)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    proc.log_file.close()  # type: ignore[attr-defined]
    return proc.returncode


def process_log(proc: subprocess.Popen) -> str:
    """What the process wrote so far (also once stop_process closed our end of its log)."""
    return Path(proc.log_path).read_text()  # type: ignore[attr-defined]


def make_tiny_model(path: Path, layout: str = "kinect20", window: int = 8,
                    classes: list[str] | None = None) -> Path:
    """A small random PR-GCN model file, so tests do not depend on the shipped model."""
    import torch

    from prgcn_ros.model.build import build_model
    from prgcn_ros.model.io import save_model

    torch.manual_seed(0)
    classes = classes or CLASSES
    model = build_model({"name": "prgcn", "num_classes": len(classes), "layout": layout})
    save_model(path, model, {"class_names": classes,
                             "preprocess": {"center": "first_frame", "scale": "torso"},
                             "window": {"mode": "resample", "length": window}, "fps": 30.0})
    return path


def recognizer_args(model: Path, *overrides: str) -> list[str]:
    # backend torch unless an override says otherwise: the onnxruntime backend exports a graph
    # at a new model's first start (30-40 s on the loaded 2-core test machine), and these tests
    # are about the node, not the network call. test_nodes_backend.py runs the node on
    # onnxruntime; the demo test runs the shipped default (auto).
    args = ["-m", "prgcn_ros.nodes.recognizer", "--ros-args", "--params-file", str(PARAMS_FILE),
            "-p", f"model:={model}", "-p", "backend:=torch"]
    for override in overrides:
        args += ["-p", override]
    return args


def standing(seed: int, layout: str = "kinect20", offset: float = 0.0) -> np.ndarray:
    """A person-sized random skeleton (metres) around 2 m in front of the sensor."""
    rng = np.random.default_rng(seed)
    v = get_layout(layout).num_joints
    return rng.normal(0, 0.25, (v, 3)) + (offset, 0.0, 2.0)


def skeleton_array(stamp: Time, people: dict[int, np.ndarray], layout: str = "kinect20",
                   confidence: float = 1.0, frame_id: str = FRAME_ID) -> SkeletonArray:
    msg = SkeletonArray(header=Header(stamp=stamp, frame_id=frame_id), layout=layout)
    for pid, xyz in people.items():
        msg.skeletons.append(Skeleton(id=pid, keypoints=[
            Keypoint(position=Point(x=float(x), y=float(y), z=float(z)), confidence=confidence)
            for x, y, z in xyz]))
    return msg


def azure_markers(stamp: Time, bodies: dict[int, np.ndarray], extra_ids=()) -> MarkerArray:
    """What the Azure Kinect ROS driver publishes: one sphere per joint, id = body*100+joint."""
    out = MarkerArray()
    for body, xyz in bodies.items():
        for joint, (x, y, z) in enumerate(xyz):
            marker = Marker(header=Header(stamp=stamp, frame_id="depth_camera_link"),
                            id=body * 100 + joint, type=Marker.SPHERE, action=Marker.ADD)
            marker.pose.position = Point(x=float(x), y=float(y), z=float(z))
            out.markers.append(marker)
    for marker_id in extra_ids:
        out.markers.append(Marker(header=Header(stamp=stamp, frame_id="depth_camera_link"),
                                  id=marker_id, type=Marker.SPHERE, action=Marker.ADD))
    return out


class Probe:
    """The test's side of the graph: input publishers and output subscribers of the recognizer
    in namespace ``ns`` (its diagnostics told apart by the status name, the node's full name).
    Each diagnostics entry holds the values plus "level" and "message"."""

    def __init__(self, ns: str = "", skeleton_qos=10) -> None:
        self.node = Node("recognizer_probe")
        self.status_name = f"{ns}/prgcn_recognizer: recognition"
        self.skeletons = self.node.create_publisher(SkeletonArray, f"{ns}/skeletons",
                                                    skeleton_qos)
        self.azure = self.node.create_publisher(MarkerArray, f"{ns}/body_tracking_data", 10)
        self.actions: list[ActionArray] = []
        self.refined: list[RefinedSkeletonArray] = []
        self.markers: list[MarkerArray] = []
        self.diagnostics: list[dict[str, str]] = []
        self.node.create_subscription(ActionArray, f"{ns}/action", self.actions.append, 100)
        self.node.create_subscription(RefinedSkeletonArray, f"{ns}/refined_poses",
                                      self.refined.append, 100)
        self.node.create_subscription(MarkerArray, f"{ns}/refined_poses/markers",
                                      self.markers.append, 100)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 50)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name == self.status_name:
                values = {kv.key: kv.value for kv in status.values}
                values.update(level=int.from_bytes(status.level, "little")
                              if isinstance(status.level, bytes) else int(status.level),
                              message=status.message)
                self.diagnostics.append(values)

    def now(self) -> Time:
        return self.node.get_clock().now().to_msg()

    def spin(self, seconds: float) -> None:
        spin_until(self.node, lambda: False, seconds)

    def play(self, people: dict[int, np.ndarray], frames: int, layout: str = "kinect20",
             hz: float = 30.0, frame_id: str = FRAME_ID) -> Time:
        """Publish `frames` frames of moving people; returns the last stamp."""
        stamp = None
        for t in range(frames):
            stamp = self.now()
            moved = {pid: xyz + 0.01 * t for pid, xyz in people.items()}
            self.skeletons.publish(skeleton_array(stamp, moved, layout, frame_id=frame_id))
            self.spin(1.0 / hz)   # pacing at the sensor's rate, not a wait for anything
        return stamp

    def actions_for(self, pid: int, frame_id: str | None = None
                    ) -> list[tuple[ActionArray, object]]:
        """Actions of the person whose id within its source is pid (the published id adds
        the source's number, see the identity rule), optionally of one frame_id only."""
        return [(m, a) for m in self.actions for a in m.actions
                if local_id(a.person_id) == pid
                and (frame_id is None or m.header.frame_id == frame_id)]

    def wait_action(self, pid: int, timeout_s: float = 15.0, stamp: Time | None = None):
        """The first /action for person pid (with window_end == stamp when given)."""
        def found():
            return [(m, a) for m, a in self.actions_for(pid)
                    if stamp is None or a.window_end == stamp]
        assert spin_until(self.node, lambda: bool(found()), timeout_s), \
            f"no /action for person {pid}" + (f" ending at {stamp}" if stamp else "")
        return found()[-1]

    def wait_diagnostics(self, done, timeout_s: float = 10.0) -> dict[str, str]:
        start = len(self.diagnostics)
        assert spin_until(self.node, lambda: any(done(d) for d in self.diagnostics[start:]),
                          timeout_s), f"diagnostics never matched; last: {self.diagnostics[-1:]}"
        return next(d for d in self.diagnostics[start:] if done(d))

    def settled(self, timeout_s: float = 30.0) -> dict[str, str]:
        """The diagnostics once the recognizer has taken every message sent so far: three in
        a row with the same messages_received (a loaded machine may lag behind)."""
        start = len(self.diagnostics)

        def steady() -> bool:
            got = [d["messages_received"] for d in self.diagnostics[start:]]
            return len(got) >= 3 and got[-1] == got[-2] == got[-3]
        assert spin_until(self.node, steady, timeout_s), "the recognizer never settled"
        return self.diagnostics[-1]

    def counter(self, key: str) -> int:
        """The latest value of a diagnostics counter (waits for one message)."""
        return int(self.wait_diagnostics(lambda d: key in d)[key])


def wait_for_recognizer_input(probe: Probe, timeout_s: float = 60.0) -> None:
    """Publish empty messages until the recognizer counts one (its side of the match is up)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        probe.skeletons.publish(skeleton_array(probe.now(), {}))
        if spin_until(probe.node, lambda: any(int(d.get("messages_received", 0)) > 0
                                              for d in probe.diagnostics), 1.0):
            return
    raise TimeoutError("the recognizer never received a message")


# ---------------------------------------------------------------------------- fixtures' parts
@contextmanager
def rclpy_session() -> Iterator[None]:
    """rclpy initialised for the block (a test or a module), shut down after it."""
    rclpy.init()
    try:
        yield
    finally:
        rclpy.try_shutdown()


@contextmanager
def running(args: list[str], log_path: Path, env: dict[str, str] | None = None
            ) -> Iterator[subprocess.Popen]:
    """A process of this venv for the block; stopped after it, and it must then exit 0 (an
    error inside the block stops it too, and is what is reported)."""
    proc = start_process(args, log_path, env)
    try:
        yield proc
    except BaseException:
        stop_process(proc)
        raise
    code = stop_process(proc)
    assert code == 0, f"{args[:2]} exited with {code} when stopped:\n{process_log(proc)}"


def play_to_end(node: Node, received: list, args: list[str], log_path: Path,
                timeout_s: float = 60.0) -> subprocess.Popen:
    """A player process (``args`` after the interpreter) run until it exits by itself, with
    what ``node`` receives drained into ``received``; it must exit 0."""
    with running(args, log_path) as proc:
        assert spin_until(node, lambda: proc.poll() is not None, timeout_s), process_log(proc)
        drain(node, received)
    return proc


@contextmanager
def recognizer_process(model: Path, log_path: Path, *overrides: str,
                       ros_args: tuple[str, ...] = ()) -> Iterator[subprocess.Popen]:
    """prgcn-recognizer on ``model`` with the shipped YAML, ``-p`` overrides and further ROS
    arguments (``-r __ns:=/x``); must exit 0 when stopped."""
    with running([*recognizer_args(model, *overrides), *ros_args], log_path) as proc:
        yield proc


@contextmanager
def connected_probe(recognizer: subprocess.Popen, ns: str = "", azure: bool = False,
                    skeleton_qos=10, timeout_s: float = 60.0) -> Iterator[Probe]:
    """A Probe (rclpy initialised already) matched with the recognizer in namespace ``ns`` both
    ways: our publishers see its subscriptions, and it has counted a message of ours."""
    probe = Probe(ns, skeleton_qos)
    try:
        wait_for_subscribers(probe.node, probe.skeletons, timeout_s=timeout_s)
        if azure:
            wait_for_subscribers(probe.node, probe.azure, timeout_s=10)
        # Our side has matched; wait for the recognizer's side too (first frames count): an
        # empty message is dropped before any source or person exists, and counted.
        wait_for_recognizer_input(probe, timeout_s)
        assert recognizer.poll() is None, process_log(recognizer)
        yield probe
    finally:
        probe.node.destroy_node()


def wait_for_exit(proc: subprocess.Popen, timeout_s: float = 120.0) -> tuple[int | None, str]:
    """Wait for a process that should stop by itself; returns (its exit code, or None when it
    still ran after ``timeout_s`` and was stopped, its log)."""
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        pass
    running_still = proc.poll() is None
    log = process_log(proc)
    code = stop_process(proc)
    return (None if running_still else code), log


def wait_for_log(proc: subprocess.Popen, text: str, timeout_s: float = 120.0) -> str:
    """The process's log once it holds ``text`` (AssertionError with the log when it never
    does, or the process ends first)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        log = process_log(proc)
        if text in log:
            return log
        time.sleep(0.05)
    log = process_log(proc)
    if text in log:
        return log
    raise AssertionError(f"{text!r} never logged:\n{log}")
