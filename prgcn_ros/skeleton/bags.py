"""rosbag2 recordings (sqlite3 or mcap) of skeletons, read and written without a ROS install.

Uses the `rosbags` library (pure Python). Writing turns skeleton recordings (MSR Action3D,
NTU, Kinetics-skeleton, OpenPose) into a bag of ``prgcn_msgs/msg/SkeletonArray`` messages, as
``ros2 bag record /skeletons`` would have stored them; reading yields each message's raw CDR
bytes, which a player deserializes with rclpy into the real message class and republishes.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from prgcn_ros.paths import installed_share
from prgcn_ros.skeleton.frames import as_xyz
from prgcn_ros.skeleton.sequence import SkeletonSequence

SKELETON_ARRAY = "prgcn_msgs/msg/SkeletonArray"
MARKER_ARRAY = "visualization_msgs/msg/MarkerArray"
PLAYABLE = (SKELETON_ARRAY, MARKER_ARRAY)
# The Azure Kinect ROS driver's body markers: the only MarkerArray topic played unless named
# (a bag recorded with -a also holds RViz markers, the recognizer's own among them).
AZURE_MARKER_TOPIC = "body_tracking_data"
IDS_PER_RECORDING = 100
STORAGES = ("mcap", "sqlite3")
# The message files of prgcn_msgs, in dependency order (each only uses those before it).
MSG_FILES = ("Keypoint", "Skeleton", "SkeletonArray", "Action", "ActionArray",
             "RefinedSkeleton", "RefinedSkeletonArray")


class BagError(ValueError):
    """A bag that cannot be read or written; the message names the bag and the problem."""


STORAGE_SUFFIXES = (".mcap", ".db3")


def _storage_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix in STORAGE_SUFFIXES and p.is_file())


def is_bag(path: Path) -> bool:
    """A rosbag2 directory (metadata.yaml, or storage files without it: a recording that
    did not close) or one of its storage files."""
    path = Path(path)
    try:
        if path.is_dir():   # (an OpenPose folder of *.json frames with a stray file is no bag)
            return (path / "metadata.yaml").is_file() or (
                bool(_storage_files(path)) and not any(path.glob("*.json")))
        return path.is_file() and path.suffix in STORAGE_SUFFIXES
    except OSError:     # a name the system refuses (too long): its reader says so
        return False


def msg_dir() -> Path:
    """prgcn_msgs/msg: the source checkout, else share/prgcn_msgs/msg of an install prefix."""
    candidates = [Path(__file__).resolve().parents[2] / "prgcn_msgs" / "msg",
                  installed_share("prgcn_msgs") / "msg"]
    for path in candidates:
        if (path / "SkeletonArray.msg").is_file():
            return path
    raise BagError("prgcn_msgs message definitions not found (looked in "
                   + ", ".join(str(c) for c in candidates) + ")")


def typestore() -> Any:
    """The ROS 2 standard types plus prgcn_msgs, for serializing and bag metadata."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.LATEST)
    folder = msg_dir()
    for name in MSG_FILES:
        store.register(get_types_from_msg((folder / f"{name}.msg").read_text(),
                                          f"prgcn_msgs/msg/{name}"))
    return store


def person_ids(index: int, seq: SkeletonSequence) -> list[int]:
    """Ids of recording ``index``'s person slots as the player sends them: 100 * index + slot.
    A source without ids whose slots do not follow one person (OpenPose, Kinetics-skeleton)
    sends -1: the recognizer's tracker assigns them."""
    if seq.person_ids is None and seq.num_persons > 1:
        return [-1] * seq.num_persons
    return [IDS_PER_RECORDING * index + m for m in range(seq.num_persons)]


def write_bag(path: Path, recordings: Sequence[SkeletonSequence], topic: str = "/skeletons",
              storage: str = "mcap", frame_id: str = "camera", start_ns: int = 0) -> int:
    """Write recordings one after another into a new rosbag2 at `path` (a directory), one
    SkeletonArray per frame at the recording's frame rate, with the ids prgcn-player sends
    (:func:`person_ids`); frames with nobody in view are left out (their time passes). Returns
    the number of messages written."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    if storage not in STORAGES:
        raise BagError(f"storage must be one of {', '.join(STORAGES)}, got {storage!r}")
    if Path(path).exists():
        raise BagError(f"{path} exists already: not overwriting it")
    for seq in recordings:     # checked before the bag is begun: no half-written bag is left
        if not (seq.fps > 0 and math.isfinite(seq.fps)):
            raise BagError(f"{seq.source or 'a recording'}: frame rate {seq.fps!r}, so no "
                           f"timing for the bag")
    store = typestore()
    types = store.types
    time_t, header_t = types["builtin_interfaces/msg/Time"], types["std_msgs/msg/Header"]
    point_t, keypoint_t = types["geometry_msgs/msg/Point"], types["prgcn_msgs/msg/Keypoint"]
    skeleton_t, array_t = types["prgcn_msgs/msg/Skeleton"], types[SKELETON_ARRAY]
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    count, stamp = 0, start_ns
    with Writer(Path(path), version=8, storage_plugin=plugin) as writer:
        connection = writer.add_connection(topic, SKELETON_ARRAY, typestore=store)
        for k, seq in enumerate(recordings):
            ids = person_ids(k, seq)
            period = int(round(1e9 / seq.fps))
            for t in range(seq.num_frames):
                stamp += period
                skeletons = []
                for m in range(seq.num_persons):
                    conf = seq.confidence[t, m]
                    if not (conf > 0).any():
                        continue       # an empty slot is nobody
                    skeletons.append(skeleton_t(id=ids[m], keypoints=[
                        keypoint_t(position=point_t(x=float(x), y=float(y), z=float(z)),
                                   confidence=float(c))
                        for (x, y, z), c in zip(as_xyz(seq.coords[t, m]), conf)]))
                if not skeletons:
                    continue           # nobody in view: the player sends nothing either
                msg = array_t(header=header_t(stamp=time_t(sec=stamp // 10**9,
                                                           nanosec=stamp % 10**9),
                                              frame_id=frame_id),
                              layout=seq.layout, skeletons=skeletons)
                writer.write(connection, stamp, store.serialize_cdr(msg, SKELETON_ARRAY))
                count += 1
    return count


def _playable(connections: Sequence, topics: Sequence[str]) -> list:
    """The connections a player plays: every SkeletonArray topic and the Azure driver's
    MarkerArray topic, or the named ``topics`` of those types."""
    return [c for c in connections if c.msgtype in PLAYABLE
            and (c.topic in topics if topics else
                 c.msgtype == SKELETON_ARRAY
                 or c.topic.rsplit("/", 1)[-1] == AZURE_MARKER_TOPIC)]


def _nothing_to_play(path: Path, connections: Sequence, topics: Sequence[str]) -> BagError:
    found = sorted({f"{c.topic} ({c.msgtype})" for c in connections})
    return BagError(f"{path}: no SkeletonArray or Azure Kinect {AZURE_MARKER_TOPIC} MarkerArray "
                    f"topic" + (f" among {', '.join(topics)}" if topics else
                                " (other MarkerArray topics play only when named)")
                    + f"; the bag has: {', '.join(found) or 'nothing'}")


@contextlib.contextmanager
def _reader(path: Path) -> Iterator[Any]:
    """A rosbags Reader; its own errors become one line naming the bag. A bag directory
    without metadata.yaml (``ros2 bag record`` writes it on closing: the robot lost power) is
    read from its one storage file."""
    from rosbags.rosbag2 import Reader

    source = Path(path)
    if source.is_dir() and not (source / "metadata.yaml").is_file():
        files = _storage_files(source)
        if len(files) != 1:
            raise BagError(f"{path}: no metadata.yaml (a recording that did not close) and "
                           f"{len(files)} storage files: `ros2 bag reindex {path}` writes it, "
                           f"or play one file")
        source = files[0]
    try:
        with Reader(source) as reader:
            yield reader
    except BagError:
        raise
    except Exception as error:   # a YAML error spans lines: its first says what is wrong
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        hint = ""
        if "end magic" in first:     # (a bad start magic: no mcap file at all)
            hint = ("; the file ends early (a recording that did not close): the mcap CLI's "
                    "`mcap recover FILE -o FIXED.mcap` writes what is complete")
        raise BagError(f"{path}: not a readable rosbag2 ({type(error).__name__}: {first}"
                       f"){hint}") from None


def bag_topics(path: Path, topics: Sequence[str] = (),
               type_hash: Callable[[str], str | None] | None = None) -> list[tuple[str, str]]:
    """(topic, message type) of each topic :func:`read_bag` plays; a bag with none, or whose
    topics hold no message, is a BagError naming what it has. ``type_hash``: the hash
    (RIHS01_...) of a message type as installed here, None unknown; a topic recorded with
    another definition (another version of its package, an older ROS) is a BagError, since
    its bytes would decode as garbage or not at all."""
    with _reader(path) as reader:
        connections = _playable(reader.connections, topics)
        if not sum(c.msgcount for c in connections):
            raise _nothing_to_play(path, reader.connections, topics)
        for c in connections if type_hash else ():
            installed = type_hash(c.msgtype)
            recorded = c.digest if str(c.digest).startswith("RIHS01_") else None
            if installed and recorded and installed != recorded:
                raise BagError(f"{path}: {c.topic} holds {c.msgtype} of another definition "
                               f"than the one installed here (recorded {recorded[:15]}..., "
                               f"here {installed[:15]}...): recorded with another version of "
                               f"{c.msgtype.split('/')[0]} or another ROS distribution")
        return sorted({(c.topic, c.msgtype) for c in connections})


def read_bag(path: Path, topics: Sequence[str] = ()
             ) -> Iterator[tuple[str, str, int, bytes]]:
    """(topic, message type, timestamp ns, CDR bytes) of every message :func:`bag_topics`
    names, in time order, read as they are asked for (a bag of hours is never held whole)."""
    with _reader(path) as reader:
        connections = _playable(reader.connections, topics)
        if not connections:
            raise _nothing_to_play(path, reader.connections, topics)
        for connection, stamp, raw in reader.messages(connections=connections):
            yield connection.topic, connection.msgtype, stamp, bytes(raw)
