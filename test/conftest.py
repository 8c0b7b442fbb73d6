"""Shared fixtures: a ROS context per test that needs one, a small model, the real data
location."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

# Keep DDS traffic on loopback even when pytest is run without `make test`.
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", str(os.getpid() % 80 + 10))


@pytest.fixture
def ros_context():
    """rclpy initialised for one test, shut down after it."""
    from rosutil import rclpy_session

    with rclpy_session():
        yield


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """One small random PR-GCN model file (kinect20, rosutil.CLASSES) for the tests that only
    read it; a test that changes or caches beside its model makes its own."""
    from rosutil import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny_model") / "tiny.safetensors")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    from prgcn_ros.paths import data_dir as find_data_dir
    from prgcn_ros.paths import missing_data_message

    path = find_data_dir()
    if not path.is_dir():
        pytest.skip(missing_data_message(path))
    return path


@pytest.fixture(scope="session")
def ntu(data_dir: Path):
    """The two-person NTU sample (A058, handshaking)."""
    from prgcn_ros.skeleton.readers import read_ntu_skeleton

    return read_ntu_skeleton(data_dir / "ntu_samples" / "S001C003P008R002A058.skeleton")


@pytest.fixture(scope="session")
def kinetics(data_dir: Path):
    """The original Kinetics-skeleton clip (COCO-18, 2D, up to 3 people)."""
    from prgcn_ros.skeleton.readers import read_kinetics_json

    return read_kinetics_json(data_dir / "kinetics_skeleton" / "--33Lscn6sk.json")

