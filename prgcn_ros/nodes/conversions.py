"""ROS messages <-> numpy and the pipeline's plain data, kept apart from the nodes' wiring.

Inputs become :class:`prgcn_ros.live_data.InputFrame`; results become ActionArray,
RefinedSkeletonArray, MarkerArray and DiagnosticArray messages.
"""
from __future__ import annotations

import colorsys
from collections.abc import Iterable, Sequence

import numpy as np
from builtin_interfaces.msg import Duration, Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point, Vector3
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from prgcn_msgs.msg import (
    Action,
    ActionArray,
    Keypoint,
    RefinedSkeleton,
    RefinedSkeletonArray,
    Skeleton,
    SkeletonArray,
)
from prgcn_ros.live_data import (
    AZURE_SOURCE,
    NO_PARTNER,
    InferenceResult,
    InputFrame,
    local_id,
    source_number,
)
from prgcn_ros.skeleton.frames import as_xyz
from prgcn_ros.skeleton.layouts import LAYOUTS, get_layout

# Azure Kinect ROS driver body tracking: marker id = body_id * 100 + joint, 32 joints.
AZURE_LAYOUT = "azure32"
AZURE_ID_STRIDE = 100
AZURE_JOINTS = 32

MARKER_NAMESPACES = ("joints", "bones", "label")
MAX_LAYOUT_JOINTS = max(layout.num_joints for layout in LAYOUTS.values())


# ---------------------------------------------------------------------------- time
def stamp_to_ns(stamp: Time) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_stamp(ns: int) -> Time:
    return Time(sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))


# ---------------------------------------------------------------------------- inputs
def skeleton_array_to_frame(msg: SkeletonArray, arrival: float, source: str = "skeletons",
                            max_people: int | None = None) -> InputFrame:
    """One SkeletonArray as plain arrays; joint counts are checked later, by the pipeline.

    What the pipeline would drop whole is not converted (the conversion is the costly part of a
    huge message): more than ``max_people`` skeletons give a frame of nobody with the message
    counted ``too_many_people``; a skeleton with more keypoints than any layout has comes as
    zero joints (dropped later as ``wrong_joint_count``)."""
    ids, coords, conf = [], [], []
    dropped: dict[str, int] = {}
    skeletons = msg.skeletons
    if max_people is not None and len(skeletons) > max_people:
        skeletons, dropped = [], {"too_many_people": 1}
    for skeleton in skeletons:
        # One flat list per skeleton: attribute access is the cost here, not numpy.
        values = [] if len(skeleton.keypoints) > MAX_LAYOUT_JOINTS else [
            v for k in skeleton.keypoints
            for v in (k.position.x, k.position.y, k.position.z, k.confidence)]
        arr = np.asarray(values, dtype=np.float64).reshape(-1, 4)
        ids.append(int(skeleton.id))
        coords.append(arr[:, :3])
        conf.append(arr[:, 3])
    return InputFrame(stamp_ns=stamp_to_ns(msg.header.stamp), frame_id=msg.header.frame_id,
                      layout=msg.layout, ids=ids, coords=coords, confidence=conf,
                      source=source, arrival=arrival, dropped=dropped)


def azure_markers_to_frame(msg: MarkerArray, arrival: float, source: str = AZURE_SOURCE
                           ) -> InputFrame:
    """Azure Kinect body tracking markers (id = body_id * 100 + joint) as one frame.

    Markers whose id does not decode to a joint 0..31, or that are not spheres (the driver's
    joints are; a label or a line list on the topic is no joint), are counted as foreign;
    DELETE markers are ignored. Joints a body lacks get confidence 0. The stamp and frame_id
    are the first body marker's (the driver stamps every marker of a frame alike); a marker of
    another stamp or frame_id, or one repeating a joint, is not of this frame and counted as
    foreign too.
    """
    bodies: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    header = None
    foreign = 0
    for marker in msg.markers:
        if marker.action != Marker.ADD:
            continue
        body, joint = divmod(int(marker.id), AZURE_ID_STRIDE)
        if marker.id < 0 or joint >= AZURE_JOINTS or marker.type != Marker.SPHERE:
            foreign += 1
            continue
        if header is None:
            header = marker.header
        elif (marker.header.frame_id != header.frame_id or marker.header.stamp != header.stamp
              or (body in bodies and bodies[body][1][joint])):
            foreign += 1
            continue
        if body not in bodies:
            bodies[body] = (np.zeros((AZURE_JOINTS, 3)), np.zeros(AZURE_JOINTS))
        position = marker.pose.position
        bodies[body][0][joint] = (position.x, position.y, position.z)
        bodies[body][1][joint] = 1.0
    ids = sorted(bodies)
    return InputFrame(
        stamp_ns=stamp_to_ns(header.stamp) if header else 0,
        frame_id=header.frame_id if header else "", layout=AZURE_LAYOUT, ids=ids,
        coords=[bodies[b][0] for b in ids], confidence=[bodies[b][1] for b in ids],
        source=source, arrival=arrival,
        dropped={"foreign_marker_id": foreign} if foreign else {})


def publisher_key(info: dict | None) -> bytes:
    """The publishing writer's GID from a subscription's message info, b"" when not given."""
    gid = (info or {}).get("publisher_gid")
    if not gid:
        return b""
    data = gid.get("data") if isinstance(gid, dict) else gid
    try:
        return bytes(data)
    except (TypeError, ValueError):
        return str(data).encode()


def skeleton_array_msg(header: Header, layout: str, ids: Sequence[int], coords: np.ndarray,
                       confidence: np.ndarray) -> SkeletonArray:
    """coords (P, V, 2 or 3) and confidence (P, V) as a SkeletonArray (2D: z = 0)."""
    msg = SkeletonArray(header=header, layout=layout)
    for pid, xyz, conf in zip(ids, as_xyz(coords).tolist(), np.asarray(confidence).tolist()):
        msg.skeletons.append(Skeleton(id=int(pid), keypoints=[
            Keypoint(position=Point(x=p[0], y=p[1], z=p[2]), confidence=c)
            for p, c in zip(xyz, conf)]))
    return msg


# ---------------------------------------------------------------------------- outputs
def _points(values: np.ndarray) -> list[Point]:
    return [Point(x=p[0], y=p[1], z=p[2]) for p in as_xyz(values).tolist()]


def result_header(result: InferenceResult) -> Header:
    return Header(stamp=ns_to_stamp(result.stamp_ns), frame_id=result.frame_id)


def action_array_msg(result: InferenceResult) -> ActionArray:
    msg = ActionArray(header=result_header(result))
    for person in result.people:
        msg.actions.append(Action(
            person_id=int(person.person_id), label=person.label,
            class_index=int(person.class_index), confidence=float(person.confidence),
            top_labels=list(person.top_labels), top_scores=[float(s) for s in person.top_scores],
            window_start=ns_to_stamp(person.window_start_ns),
            window_end=ns_to_stamp(person.window_end_ns), num_frames=int(person.num_frames),
            partner_id=int(person.partner_id)))
    return msg


def refined_array_msg(result: InferenceResult) -> RefinedSkeletonArray:
    msg = RefinedSkeletonArray(header=result_header(result), layout=result.layout)
    for person in result.people:
        keypoints = [Keypoint(position=p, confidence=c) for p, c in
                     zip(_points(person.refined), person.joint_confidence.tolist())]
        offsets = [Vector3(x=o[0], y=o[1], z=o[2]) for o in as_xyz(person.offsets).tolist()]
        msg.skeletons.append(RefinedSkeleton(
            person_id=int(person.person_id), keypoints=keypoints, offsets=offsets,
            stamp=ns_to_stamp(person.refined_at_ns)))
    return msg


def person_color(person_id: int) -> ColorRGBA:
    """A stable, well-spread colour per person (golden-ratio hue steps)."""
    hue = (int(person_id) * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 0.95)
    return ColorRGBA(r=r, g=g, b=b, a=1.0)


def marker_id(person_id: int) -> int:
    """Marker ids are int32: the person's id within its source (below 2**31 by the identity
    rule); the source's number goes into the namespace (:func:`marker_ns`)."""
    return local_id(person_id)


def marker_ns(kind: str, person_id: int) -> str:
    """"joints", "bones", "label" for the first source; "joints/2" etc. for source 2, so two
    sources' people never share a marker (namespace, id)."""
    number = source_number(person_id)
    return kind if number == 0 else f"{kind}/{number}"


def marker_lifetime_s(track_timeout_s: float, max_rate_hz: float) -> float:
    """How long a person's markers stay in RViz unless renewed: past the next pass that is due
    (a low max_rate_hz) and past the person's drop, whose DELETE removes them earlier."""
    return 2.0 * max(track_timeout_s, 1.0 / max_rate_hz)


def markers_msg(result: InferenceResult, lifetime_s: float = 0.0) -> MarkerArray:
    """Joints (sphere list), bones (line list) and the label above the head, per person
    ("id: label confidence", and "(with partner id)" for a pair of a two-person model).

    Sizes follow the skeleton's own extent, so metres and pixels both look right; "up" is +y
    for y-up inputs and -y for optical frames and images (the person's axis convention), or
    the model's up in the input frame where the input was rotated (``person.up``).
    """
    layout = get_layout(result.layout)
    lifetime = Duration(sec=int(lifetime_s), nanosec=int((lifetime_s % 1.0) * 1e9))
    out = MarkerArray()
    for person in result.people:
        xyz = as_xyz(person.refined)
        seen = np.asarray(person.joint_confidence) > 0
        if not seen.any():
            continue
        extent = float(np.ptp(xyz[seen], axis=0).max()) or 1.0
        color = person_color(person.person_id)
        up = np.array([0.0, -1.0 if person.axis == "y_down" else 1.0, 0.0]) \
            if person.up is None else np.asarray(person.up, np.float64)
        mid = marker_id(person.person_id)
        pid = person.person_id
        # Stamped with the frame the pose is: RViz looks up a moving camera's pose at it.
        header = Header(stamp=ns_to_stamp(person.refined_at_ns), frame_id=result.frame_id)

        joints = Marker(header=header, ns=marker_ns("joints", pid), id=mid,
                        type=Marker.SPHERE_LIST, action=Marker.ADD, color=color, lifetime=lifetime)
        joints.pose.orientation.w = 1.0
        joints.scale = Vector3(x=extent * 0.04, y=extent * 0.04, z=extent * 0.04)
        joints.points = _points(xyz[seen])

        bones = Marker(header=header, ns=marker_ns("bones", pid), id=mid,
                       type=Marker.LINE_LIST, action=Marker.ADD, color=color, lifetime=lifetime)
        bones.pose.orientation.w = 1.0
        bones.scale.x = extent * 0.015
        bones.points = _points(np.array([xyz[j] for a, b in layout.bones
                                         if seen[a] and seen[b] for j in (a, b)]).reshape(-1, 3))

        # Above the head: the highest seen joint along the up axis, plus a margin.
        top = xyz[seen][int(np.argmax(xyz[seen] @ up))] + up * extent * 0.15
        label = Marker(header=header, ns=marker_ns("label", pid), id=mid,
                       type=Marker.TEXT_VIEW_FACING, action=Marker.ADD, color=color,
                       lifetime=lifetime,
                       text=f"{person.person_id}: {person.label} {person.confidence:.2f}"
                       + ("" if person.partner_id == NO_PARTNER
                          else f" (with {person.partner_id})"))
        label.pose.position = Point(x=top[0], y=top[1], z=top[2])
        label.pose.orientation.w = 1.0
        label.scale.z = extent * 0.08
        out.markers += [joints, bones, label]
    return out


def delete_markers_msg(people: Iterable[tuple[int, str, int]]) -> MarkerArray:
    """DELETE every marker of the people who left, (person_id, frame_id, stamp in ns) each:
    every DELETE carries the departed person's own frame and the stamp of their last skeleton
    (input time, like every other output)."""
    return MarkerArray(markers=[
        Marker(header=Header(stamp=ns_to_stamp(stamp_ns), frame_id=frame_id),
               ns=marker_ns(ns, pid), id=marker_id(pid), action=Marker.DELETE)
        for pid, frame_id, stamp_ns in people for ns in MARKER_NAMESPACES])


def diagnostics_msg(stamp: Time, name: str, stats: dict, warn: Sequence[str] = (),
                    hardware_id: str = "prgcn_recognizer") -> DiagnosticArray:
    """One DiagnosticStatus with every figure as a key/value; WARN while inputs are dropped."""
    level = DiagnosticStatus.WARN if warn else DiagnosticStatus.OK
    message = "; ".join(warn) if warn else "ok"
    values = [KeyValue(key=str(k), value=_format(v)) for k, v in stats.items()]
    status = DiagnosticStatus(level=level, name=name, message=message,
                              hardware_id=hardware_id, values=values)
    return DiagnosticArray(header=Header(stamp=stamp), status=[status])


def _format(value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)
