"""Helpers for tests that talk to other processes over real ROS 2 topics (no mocks)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import rclpy
from rclpy.node import Node

REPO = Path(__file__).resolve().parent.parent


def spin_until(node: Node, done: Callable[[], bool], timeout_s: float,
               step_s: float = 0.02) -> bool:
    """Spin `node` until `done()` is true or the timeout passes; returns done()."""
    deadline = time.monotonic() + timeout_s
    while not done() and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=step_s)
    return done()


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
