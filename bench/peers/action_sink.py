"""Action sink of the live benchmarks: logs every /action and /diagnostics message.

Usage: action_sink.py OUT_PREFIX

Prints "sink ready" once the recognizer's /action and /diagnostics publishers are matched,
then records until SIGINT or SIGTERM and writes
- OUT_PREFIX.npz: one row per action: recv_ns (time.time_ns() in the callback), msg (index of
  the ActionArray), stamp_ns (its header stamp), person, start_ns, end_ns (window),
  num_frames, class_index;
- OUT_PREFIX.diagnostics.json: [{"recv_ns": ..., "values": {key: number}}, ...].
"""
from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from prgcn_msgs.msg import ActionArray
from prgcn_ros.nodes.conversions import stamp_to_ns


def _number(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


class Sink:
    def __init__(self) -> None:
        self.node = Node("bench_action_sink")
        self.rows: list[tuple[int, ...]] = []
        self.messages = 0
        self.diagnostics: list[dict] = []
        self.node.create_subscription(ActionArray, "/action", self.on_action, 1000)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self.on_diagnostics, 100)

    def on_action(self, msg: ActionArray) -> None:
        recv = time.time_ns()
        stamp = stamp_to_ns(msg.header.stamp)
        index = self.messages
        self.messages += 1
        for a in msg.actions:
            self.rows.append((recv, index, stamp, a.person_id, stamp_to_ns(a.window_start),
                              stamp_to_ns(a.window_end), a.num_frames, a.class_index))

    def on_diagnostics(self, msg: DiagnosticArray) -> None:
        recv = time.time_ns()
        for status in msg.status:
            if status.hardware_id == "prgcn_recognizer":
                self.diagnostics.append({"recv_ns": recv, "values": {
                    kv.key: _number(kv.value) for kv in status.values}})

    def save(self, prefix: Path) -> None:
        rows = np.array(self.rows, np.int64).reshape(-1, 8)
        names = ("recv_ns", "msg", "stamp_ns", "person", "start_ns", "end_ns", "num_frames",
                 "class_index")
        np.savez(prefix.with_suffix(".npz"), **{n: rows[:, i] for i, n in enumerate(names)})
        prefix.with_suffix(".diagnostics.json").write_text(json.dumps(self.diagnostics))


def main() -> int:
    prefix = Path(sys.argv[1])
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    stop = []
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    sink = Sink()
    ready = False
    while not stop:
        rclpy.spin_once(sink.node, timeout_sec=0.05)
        if not ready and all(sink.node.count_publishers(t) for t in ("/action", "/diagnostics")):
            ready = True
            print("sink ready", flush=True)
    sink.save(prefix)
    print(f"sink: {sink.messages} /action messages, {len(sink.rows)} actions, "
          f"{len(sink.diagnostics)} diagnostics", flush=True)
    sink.node.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
