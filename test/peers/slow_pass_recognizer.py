"""The recognizer (its real main()) with a forward pass that computes for PASS_S seconds: what a
first CUDA pass, a starved CPU or a huge batch looks like to shutdown. It feeds itself one
person, prints "pass started" as the pass begins and "pass ended" after it.

Usage: slow_pass_recognizer.py PASS_S MODEL   (test/ on sys.path, for rosutil)
"""
from __future__ import annotations

import sys
import threading
import time

import torch
from builtin_interfaces.msg import Time
from rosutil import PARAMS_FILE, skeleton_array, standing

from prgcn_ros.nodes import recognizer

PASS_S = float(sys.argv[1])
start_inference = recognizer.RecognizerNode._start_inference


def slow_start(node: recognizer.RecognizerNode) -> None:
    forward = node.recognizer.backend

    def slow_forward(x: torch.Tensor):
        print("pass started", flush=True)
        end = time.monotonic() + PASS_S
        while time.monotonic() < end:      # torch busy in C++ all along, as a real pass
            forward(x)
        print("pass ended", flush=True)
        return forward(x)

    node.recognizer.backend = slow_forward
    start_inference(node)

    def feed() -> None:
        for t in range(8):
            node._on_skeletons(skeleton_array(Time(sec=100, nanosec=t * 33_000_000),
                                              {7: standing(7)}))
    threading.Thread(target=feed, daemon=True).start()


recognizer.RecognizerNode._start_inference = slow_start
sys.exit(recognizer.main(["prgcn-recognizer", "--ros-args", "--params-file", str(PARAMS_FILE),
                          "-p", f"model:={sys.argv[2]}", "-p", "backend:=torch",
                          "-p", "min_frames:=4"]))
