"""Every prgcn_msgs type crosses a process boundary over real DDS with every field intact."""
from __future__ import annotations

import pytest
from msgfill import assert_fields_equal, assert_no_default_fields, filled, message_class
from rclpy.node import Node
from rclpy.serialization import deserialize_message
from rosutil import REPO, process_log, start_process, stop_process, wait_for_subscribers

MESSAGE_TYPES = [f"prgcn_msgs/{name}" for name in (
    "Keypoint", "Skeleton", "SkeletonArray", "Action", "ActionArray", "RefinedSkeleton",
    "RefinedSkeletonArray")]

pytestmark = pytest.mark.ros


def test_generated_messages_have_the_designed_fields():
    fields = {name: message_class(name).get_fields_and_field_types() for name in MESSAGE_TYPES}
    assert fields["prgcn_msgs/SkeletonArray"] == {
        "header": "std_msgs/Header", "layout": "string",
        "skeletons": "sequence<prgcn_msgs/Skeleton>"}
    assert fields["prgcn_msgs/Action"]["window_start"] == "builtin_interfaces/Time"
    # Two-person models: the partner's person_id (-1: recognised alone).
    assert fields["prgcn_msgs/Action"]["partner_id"] == "int64"
    assert fields["prgcn_msgs/ActionArray"]["header"] == "std_msgs/Header"
    assert fields["prgcn_msgs/RefinedSkeleton"]["offsets"] == "sequence<geometry_msgs/Vector3>"
    # The stamp of the input frame each refined pose is (it can be older than the header's).
    assert fields["prgcn_msgs/RefinedSkeleton"]["stamp"] == "builtin_interfaces/Time"


def test_every_message_type_round_trips_across_processes(ros_context, tmp_path):
    sent = {name: filled(message_class(name)) for name in MESSAGE_TYPES}
    for name, msg in sent.items():
        assert_no_default_fields(msg, name)
    peer = start_process([str(REPO / "test" / "peers" / "record_peer.py"), str(tmp_path),
                          *MESSAGE_TYPES], tmp_path / "peer.log",
                         env={"PYTHONPATH": str(REPO / "test")})
    node = Node("roundtrip_sender")
    try:
        publishers = {name: node.create_publisher(message_class(name),
                                                  f"/roundtrip/{name.split('/')[1]}", 10)
                      for name in MESSAGE_TYPES}
        for publisher in publishers.values():
            wait_for_subscribers(node, publisher)
        for name, publisher in publishers.items():
            publisher.publish(sent[name])
        peer.wait(timeout=30)
    finally:
        node.destroy_node()
        code = stop_process(peer)
    assert code == 0, process_log(peer)
    for name, msg in sent.items():
        received = deserialize_message((tmp_path / f"{name.split('/')[1]}.bin").read_bytes(),
                                       message_class(name))
        assert_fields_equal(msg, received, name)
        assert received == msg
