"""Layering the design promises: model/, skeleton/ and training/ import no rclpy (nor the
messages), and the live path's plain data and the message conversions import no torch."""
from __future__ import annotations

import subprocess
import sys

import pytest
from rosutil import REPO

CHECK = """
import importlib, pkgutil, sys
import prgcn_ros.{package} as package
for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
    importlib.import_module(module.name)
print(sorted(name for name in sys.modules
             if name.split(".")[0] in ({forbidden})))
"""


def imported(package: str, forbidden: tuple[str, ...]) -> str:
    code = CHECK.format(package=package, forbidden=", ".join(map(repr, forbidden)) + ",")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.slow
def test_model_skeleton_and_training_import_no_rclpy():
    for package in ("model", "skeleton", "training"):
        assert imported(package, ("rclpy", "prgcn_msgs")) == "[]", package


def test_the_live_data_the_pairing_and_the_conversions_import_no_torch():
    code = ("import sys, prgcn_ros.live_data, prgcn_ros.pairing, prgcn_ros.nodes.conversions; "
            "print('torch' in sys.modules, 'rclpy' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False"]
