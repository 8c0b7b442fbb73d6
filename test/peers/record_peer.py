"""Peer process for the round-trip test: receives one message of each type and writes its bytes.

Usage: record_peer.py OUT_DIR TYPE [TYPE ...]   (TYPE like prgcn_msgs/SkeletonArray)
Each message arrives on /roundtrip/<Name>; its serialized form is written to OUT_DIR/<Name>.bin.
The process exits 0 once every type has been received.
"""
from __future__ import annotations

import sys
from pathlib import Path

import rclpy
from msgfill import message_class
from rclpy.node import Node
from rclpy.serialization import serialize_message


def main() -> int:
    out_dir, types = Path(sys.argv[1]), sys.argv[2:]
    rclpy.init()
    node = Node("roundtrip_recorder")
    pending = set(types)

    def make_callback(type_name: str):
        def on_message(msg) -> None:
            name = type_name.split("/")[1]
            (out_dir / f"{name}.bin").write_bytes(serialize_message(msg))
            pending.discard(type_name)
        return on_message

    for type_name in types:
        node.create_subscription(message_class(type_name),
                                 f"/roundtrip/{type_name.split('/')[1]}",
                                 make_callback(type_name), 10)
    print("recorder ready", flush=True)
    while pending and rclpy.ok():
        rclpy.spin_once(node, timeout_sec=0.1)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
