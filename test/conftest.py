"""Shared fixtures: a ROS context per test that needs one, a small model, the shipped model's
ONNX graph, the real data location."""
from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
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
def msr_train():
    """MSR Action3D's training split of the cross-subject protocol (skips without the data)."""
    from test_training_util import msr_split

    return msr_split("train")


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


@pytest.fixture(scope="session")
def shipped_graph(tmp_path_factory) -> Callable[..., Path]:
    """The shipped model's ONNX graph, exported once a session (9-13 s on 2 busy cores) for
    the tests that run the shipped model on onnxruntime without being about the export.
    ``place(model, cache=None)`` copies it where a first start with ``model`` (the shipped files
    or a copy) and backend_cache_dir ``cache`` would have left it; that start still checks it
    against torch."""
    from prgcn_ros.model.backends import CACHE_DIR_NAME, cache_file_name, check_window, onnx_graph
    from prgcn_ros.model.io import load_model, metadata_path

    shipped = Path(__file__).resolve().parent.parent / "models" / "prgcn_msr_action3d.safetensors"
    assert shipped.is_file(), f"the shipped model {shipped} is missing"
    model_path = tmp_path_factory.mktemp("shipped_graph") / shipped.name
    shutil.copy2(shipped, model_path)
    shutil.copy2(metadata_path(shipped), metadata_path(model_path))
    model, _ = load_model(model_path)
    example = check_window(model.arch["in_channels"], 48, model.layout.num_joints)
    # Exported here, into a folder of its own: a graph in the user's cache is not this code's.
    exported = onnx_graph(model.eval(), model_path, example, cache_dir=model_path.parent / "cache")
    assert not exported.reused
    graph = exported.path

    def place(model: Path, cache: Path | None = None) -> Path:
        assert cache_file_name(model) == graph.name, f"{model}: not the shipped model's files"
        target = (cache or Path(model).resolve().parent / CACHE_DIR_NAME) / graph.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(graph, target)
        return target
    return place
