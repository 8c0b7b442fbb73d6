"""prgcn-player: replays skeleton recordings onto /skeletons as prgcn_msgs/SkeletonArray.

Reads MSR Action3D ``.txt``, NTU ``.skeleton``, Kinetics-skeleton ``.json``, OpenPose
``--write_json`` directories, NW-UCLA ``.json``, UTD-MHAD ``.mat`` and SBU Kinect Interaction
``skeleton_pos.txt`` (two people, layout ``openni15``), and publishes them at their native
frame rate (times ``--rate``) with current stamps and the ``frame_id`` parameter. Recording
k's person slot m is person id ``100 * k + m`` (an SBU recording's two people are ``100 * k``
and ``100 * k + 1``; several people without ids, as OpenPose and Kinetics-skeleton write them,
send -1 and the recognizer's tracker assigns ids). ``--parallel K`` plays K recordings at
once, as K people in the same messages.
``--follow DIR`` publishes each OpenPose frame file as it appears (OpenPose running live).
A rosbag2 (directory, ``.mcap`` or ``.db3``) of SkeletonArray or of the Azure Kinect driver's
MarkerArray (``.../body_tracking_data``; other MarkerArray topics only with ``--bag-topic``) is
played with its own timing, read as it plays: SkeletonArray onto ``--topic``, MarkerArray onto
its recorded topic, restamped. ``--write-bag OUT`` writes the recordings into a rosbag2
instead of publishing them, with the ids, ``frame_id`` and topic playing would use.

Run: ``prgcn-player a01_s02_e01_skeleton3D.txt ... [--rate 2] [--loop]
--ros-args -p frame_id:=kinect``
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions
from std_msgs.msg import Header

from prgcn_msgs.msg import SkeletonArray
from prgcn_ros.nodes import program_args
from prgcn_ros.nodes.conversions import skeleton_array_msg
from prgcn_ros.paths import installed_share
from prgcn_ros.skeleton.bags import (
    MARKER_ARRAY,
    STORAGES,
    BagError,
    bag_topics,
    is_bag,
    person_ids,
    read_bag,
    write_bag,
)
from prgcn_ros.skeleton.playback import MIN_SPACING, FrameFolder, tick_period, ticks
from prgcn_ros.skeleton.readers import RecordingError, read_recording
from prgcn_ros.skeleton.sequence import SkeletonSequence, frame_people

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# Set by Ctrl-C or SIGTERM: playback ends after the message being sent, with status 0.
STOP = threading.Event()
_leave_at_once = True     # before the node exists: reading recordings, nothing to finish


def _on_stop_signal(signum, frame) -> None:
    STOP.set()
    if _leave_at_once:
        raise SystemExit(0)


def declare_frame_id(node: Node) -> str:
    """The player's ``frame_id`` parameter (default ``camera``)."""
    return node.declare_parameter("frame_id", "camera").value


def installed_type_hash(msgtype: str) -> str | None:
    """The RIHS01 hash of a message type as installed here (its share/<package>/msg/<Type>.json,
    ROS 2 Iron and later; found by the ament index, else in this Python's prefix); None where
    there is none (Humble)."""
    package, _, name = msgtype.split("/")
    try:
        hashes = json.loads((installed_share(package) / "msg" / f"{name}.json").read_text()
                            ).get("type_hashes")
    except (OSError, ValueError, AttributeError):
        return None
    return next((h.get("hash_string") for h in hashes or [] if h.get("type_name") == msgtype),
                None)


class PlayerNode(Node):
    def __init__(self, args: argparse.Namespace, stop: threading.Event | None = None) -> None:
        super().__init__("prgcn_player")
        self.args = args
        self.stop = stop or threading.Event()
        self.frame_id = declare_frame_id(self)
        self.publisher = self.create_publisher(SkeletonArray, args.topic, 10)
        self.outputs = [self.publisher]    # what wait_for_subscribers waits on
        self.bag_publishers: dict[str, tuple[type, object]] = {}   # bag topic -> (type, pub)

    def running(self) -> bool:
        return rclpy.ok() and not self.stop.is_set()

    def pause(self, seconds: float) -> None:
        """Sleep, woken by a stop: a low --rate or a bag's long gap does not hold Ctrl-C."""
        if seconds > 0:
            self.stop.wait(seconds)

    def wait_for_subscribers(self) -> None:
        """Messages published before discovery matches a subscriber are lost: wait a little."""
        deadline = time.monotonic() + self.args.wait

        def matched() -> int:
            return max(p.get_subscription_count() for p in self.outputs)
        while (matched() < self.args.subscribers
               and time.monotonic() < deadline and self.running()):
            rclpy.spin_once(self, timeout_sec=0.05)
        # Give the subscriber's own side of the match a moment too.
        if matched():
            self.pause(0.2)

    def open_bag(self, bag: Path) -> None:
        """Make a publisher per played topic of the bag (SkeletonArray: --topic)."""
        from visualization_msgs.msg import MarkerArray

        for topic, msgtype in bag_topics(bag, self.args.bag_topic, installed_type_hash):
            if msgtype == MARKER_ARRAY:
                self.bag_publishers[topic] = (MarkerArray,
                                              self.create_publisher(MarkerArray, topic, 10))
            else:
                self.bag_publishers[topic] = (SkeletonArray, self.publisher)
        self.outputs = list({id(p): p for _, p in self.bag_publishers.values()}.values())
        if not self.args.quiet:
            print(f"playing {bag} on {', '.join(p.topic_name for p in self.outputs)}",
                  flush=True)

    def play_bag(self, bag: Path) -> None:
        """Publish a bag's messages with its own timing (divided by --rate), stamped now, each
        read and decoded just before it is due."""
        from rclpy.serialization import deserialize_message

        rate = self.args.rate
        while self.running():
            start = time.monotonic()
            first = previous = None
            sent = -float("inf")
            for topic, msgtype, stamp, raw in read_bag(bag, self.args.bag_topic):
                kind, publisher = self.bag_publishers[topic]
                try:
                    msg = deserialize_message(raw, kind)
                except Exception as error:   # rclpy's RMWError: a bag without type hashes
                    raise BagError(f"{bag}: a message on {topic} does not decode as the "
                                   f"{msgtype} installed here ({' '.join(str(error).split())[:160]}"
                                   f"): recorded with another version of it?") from None
                first = stamp if first is None else first
                due = start + (stamp - first) / 1e9 / rate
                if previous is not None:
                    due = max(due, sent + MIN_SPACING * (stamp - previous) / 1e9 / rate)
                self.pause(due - time.monotonic())
                if not self.running():
                    return
                now = self.get_clock().now().to_msg()
                if isinstance(msg, SkeletonArray):
                    msg.header.stamp = now
                else:   # MarkerArray: every marker carries its own header
                    for marker in msg.markers:
                        marker.header.stamp = now
                publisher.publish(msg)
                sent, previous = time.monotonic(), stamp
            if not self.args.loop:
                return
            self.pause(1.0 / 30.0)   # a new round does not come at once (flood check)

    def publish(self, layout: str, ids: list[int], coords: np.ndarray, conf: np.ndarray
                ) -> None:
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id=self.frame_id)
        self.publisher.publish(skeleton_array_msg(header, layout, ids, coords, conf))

    def play(self, recordings: list[SkeletonSequence]) -> None:
        """Play every recording, up to --parallel at once, on one clock: frames due on the
        same tick share a message (one per layout), as one sensor seeing several people."""
        period = tick_period(recordings, self.args.rate)
        # One clock across --loop rounds: a new round's first frame comes a tick after the
        # last one, not at once (the recognizer would drop it as a flood).
        next_tick = time.monotonic()
        while self.running():
            for tick in ticks(recordings, self.args.parallel):
                if not self.running():      # stopped while publishing: nothing starts
                    return
                for index, seq in [] if self.args.quiet else tick.started:
                    print(f"playing {Path(seq.source).name}: {seq.num_frames} frames at "
                          f"{seq.fps:g} fps as person(s) {person_ids(index, seq)}", flush=True)
                self.pause(next_tick - time.monotonic())
                if not self.running():
                    return
                for layout, (ids, coords, conf) in tick.frames.items():
                    self.publish(layout, ids, coords, conf)
                # Behind schedule (busy machine): play on late rather than in a burst.
                next_tick = max(next_tick + period, time.monotonic() + MIN_SPACING * period)
            if not self.args.loop:
                return

    def follow(self, directory: Path) -> None:
        """Publish each new OpenPose frame file as it appears (see :class:`FrameFolder`),
        stamped when sent. Files that appear together (OpenPose wrote faster than one poll, a
        burst copied in, a backlog) go out at 4/3 of the recording's frame rate times --rate:
        back to back they would be closer than any sensor sends and the recognizer would drop
        them as a flood. The folder is listed no more often than listing it takes."""
        folder = FrameFolder(directory, self.args.consume)
        next_send = time.monotonic()
        print(f"following {directory}: {folder.existing} existing frame files skipped",
              flush=True)
        try:
            while self.running():
                for seq in folder.poll():
                    ids, coords, conf = frame_people(seq, 0, [-1] * seq.num_persons)
                    if not ids:
                        continue
                    self.pause(next_send - time.monotonic())
                    if not self.running():
                        return
                    self.publish(seq.layout, ids, coords, conf)
                    next_send = time.monotonic() + MIN_SPACING / (seq.fps * self.args.rate)
                self.pause(max(self.args.poll, folder.listing_s))
        finally:
            if folder.skipped:
                print(f"{folder.skipped} frame file(s) skipped as unreadable", file=sys.stderr,
                      flush=True)


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:   # a name the system refuses (too long)
        return False


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="prgcn-player", description=__doc__.split("\n\n")[0],
        epilog="ROS parameters: frame_id (default 'camera'), e.g. --ros-args -p frame_id:=kinect")
    parser.add_argument("recordings", nargs="*", type=Path,
                        help="recording files or OpenPose JSON directories, played in order")
    parser.add_argument("--follow", type=Path, metavar="DIR",
                        help="publish OpenPose frame files as they appear in DIR")
    parser.add_argument("--consume", action="store_true",
                        help="with --follow: delete each frame file once sent or skipped "
                        "(OpenPose keeps every file: over hours the folder and its listing grow)")
    parser.add_argument("--rate", type=float, default=1.0,
                        help="speed factor over the native frame rate (default 1)")
    parser.add_argument("--loop", action="store_true", help="start again after the last one")
    parser.add_argument("--parallel", type=int, default=1, metavar="K",
                        help="play K recordings at once, as K people (default 1)")
    parser.add_argument("--topic", default="skeletons",
                        help="default skeletons (relative: in the node's namespace)")
    parser.add_argument("--wait", type=float, default=5.0, metavar="S",
                        help="wait up to S seconds for a subscriber before playing (default 5)")
    parser.add_argument("--subscribers", type=int, default=1, metavar="N",
                        help="the number of subscribers to wait for (default 1)")
    parser.add_argument("--poll", type=float, default=0.01, help=argparse.SUPPRESS)
    parser.add_argument("--quiet", action="store_true", help="no line per recording")
    parser.add_argument("--bag-topic", action="append", default=[], metavar="TOPIC",
                        help="play only this topic of a rosbag2 (repeatable; default: every "
                        "SkeletonArray topic and the Azure Kinect driver's body_tracking_data)")
    parser.add_argument("--write-bag", type=Path, metavar="OUT",
                        help="write the recordings into a new rosbag2 OUT (a directory) as "
                        "SkeletonArray on --topic (with the frame_id parameter) instead of "
                        "publishing them")
    parser.add_argument("--storage", choices=STORAGES,
                        help="--write-bag storage (default mcap)")
    args = parser.parse_args(argv)
    if not args.recordings and not args.follow:
        parser.error("give recordings to play, or --follow DIR")
    if (not (math.isfinite(args.rate) and args.rate > 0) or args.parallel < 1 or args.wait < 0
            or args.subscribers < 0):
        parser.error("--rate must be a positive, finite number, --parallel at least 1, --wait "
                     "and --subscribers not negative")
    if args.storage and not args.write_bag:
        parser.error("--storage is the format of --write-bag's bag: only with --write-bag")
    args.storage = args.storage or "mcap"
    if args.follow and not _is_dir(args.follow):
        parser.error(f"--follow {args.follow}: not a directory")
    if args.consume and not args.follow:
        parser.error("--consume deletes the frame files --follow has sent: only with --follow")
    if args.consume and _is_dir(args.follow) and not os.access(args.follow, os.W_OK | os.X_OK):
        parser.error(f"--consume: cannot delete files in {args.follow} (no write permission)")
    if args.follow and (args.recordings or args.write_bag):
        parser.error("--follow publishes a folder as OpenPose fills it: no recordings, no "
                     "--write-bag with it")
    if args.write_bag and (args.rate != 1.0 or args.parallel != 1 or args.loop):
        parser.error("--write-bag writes the recordings one after another at their own frame "
                     "rate: no --rate, --parallel or --loop with it")
    if args.follow and (args.parallel != 1 or args.loop):
        parser.error("--follow publishes each frame file once, as it appears: no --parallel "
                     "or --loop with it")
    bags = [p for p in args.recordings if is_bag(p)]
    if bags and (len(bags) > 1 or len(args.recordings) > 1 or args.follow or args.write_bag):
        parser.error("a rosbag2 is played alone: one bag, no other recordings")
    if bags and args.parallel != 1:
        parser.error("a rosbag2 plays its own people as recorded: no --parallel with it")
    if args.bag_topic and not bags:
        parser.error("--bag-topic chooses the topics of a rosbag2: only with a bag to play")
    args.bag = bags[0] if bags else None
    return args


def _write_bag(args: argparse.Namespace, recordings: list[SkeletonSequence]) -> int:
    """--write-bag: the bag holds what playing would send (ids, frame_id, topic resolved in
    the node's namespace)."""
    node = Node("prgcn_player")
    try:
        frame_id = declare_frame_id(node)
        topic = node.resolve_topic_name(args.topic)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return _write_bag_file(args, recordings, topic, frame_id)


def _write_bag_file(args: argparse.Namespace, recordings: list[SkeletonSequence], topic: str,
                    frame_id: str) -> int:
    existed = Path(args.write_bag).exists()
    try:
        count = write_bag(args.write_bag, recordings, topic, args.storage, frame_id)
    except SystemExit:   # Ctrl-C or SIGTERM while writing: no half-written bag is left
        if not existed:
            shutil.rmtree(args.write_bag, ignore_errors=True)
        print(f"prgcn-player: --write-bag {args.write_bag}: interrupted, nothing written",
              file=sys.stderr)
        return 1
    except Exception as error:   # rosbags' writer errors (e.g. OUT exists) and BagError
        print(f"prgcn-player: --write-bag {args.write_bag}: {error}", file=sys.stderr)
        return 1
    print(f"wrote {count} SkeletonArray messages on {topic} (frame_id {frame_id}) to "
          f"{args.write_bag} ({args.storage})")
    return 0


def main(argv: list[str] | None = None) -> int:
    global _leave_at_once
    argv = sys.argv if argv is None else argv
    args = parse_args(program_args(argv, "prgcn-player"))
    for stop in STOP_SIGNALS:
        signal.signal(stop, _on_stop_signal)
    recordings = []
    for path in [] if args.bag else args.recordings:
        try:
            recordings.append(read_recording(path))
        except (RecordingError, OSError) as error:
            print(f"prgcn-player: {error}", file=sys.stderr)
            return 1
        except SystemExit:   # a stop signal: playing would stop anyway, a bag was asked for
            if not args.write_bag:
                raise
            print(f"prgcn-player: --write-bag {args.write_bag}: interrupted, nothing written",
                  file=sys.stderr)
            return 1
    if args.write_bag:
        rclpy.init(args=argv)
        return _write_bag(args, recordings)
    # From here a stop signal ends playback between messages (ours alone: rclpy's handler
    # would shut the context down under a publish, a traceback and status 1).
    _leave_at_once = False
    rclpy.init(args=argv, signal_handler_options=SignalHandlerOptions.NO)
    node = None
    try:
        node = PlayerNode(args, STOP)
        if args.bag:
            node.open_bag(args.bag)
        node.wait_for_subscribers()
        if args.bag:
            node.play_bag(args.bag)
            node.pause(1.0)
        elif args.follow:
            node.follow(args.follow)
        else:
            node.play(recordings)
            # Let the last messages leave before the process goes (a busy machine is slow).
            node.pause(1.0)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (BagError, OSError) as error:   # the bag (or the followed folder) broke or went
        print(f"prgcn-player: {error}", file=sys.stderr)
        return 1
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
