"""Results -> messages (prgcn_ros.nodes.conversions) for issue 12's fields: partner_id and the
"unknown" label on /action, the partner in the marker's text. No torch, no ROS graph."""
from __future__ import annotations

import numpy as np

from prgcn_msgs.msg import Action, Keypoint, Skeleton, SkeletonArray
from prgcn_ros.live_data import (
    NO_PARTNER,
    UNKNOWN_CLASS_INDEX,
    UNKNOWN_LABEL,
    InferenceResult,
    PersonResult,
)
from prgcn_ros.nodes.conversions import (
    action_array_msg,
    marker_lifetime_s,
    markers_msg,
    refined_array_msg,
)


def person(pid: int, partner: int = NO_PARTNER, label: str = "hugging",
           class_index: int = 5) -> PersonResult:
    refined = np.random.default_rng(pid).normal(0, 0.3, (15, 3)) + (0, 0, 2)
    return PersonResult(person_id=pid, class_index=class_index, label=label, confidence=0.4,
                        top_labels=["hugging", "pushing"], top_scores=[0.4, 0.3],
                        window_start_ns=1_000, window_end_ns=2_000, num_frames=20,
                        refined=refined, offsets=np.zeros((15, 3)),
                        joint_confidence=np.ones(15), probabilities=np.full(8, 0.125),
                        frame_id="kinect", partner_id=partner)


def result(*people: PersonResult) -> InferenceResult:
    return InferenceResult(stamp_ns=2_000, frame_id="kinect", layout="openni15",
                           people=list(people), arrivals=[], forward_s=0.01)


def test_a_pair_carries_each_others_id_and_a_lone_person_none():
    msg = action_array_msg(result(person(3, partner=4), person(4, partner=3), person(9)))
    assert [(a.person_id, a.partner_id) for a in msg.actions] == [(3, 4), (4, 3), (9, -1)]
    assert NO_PARTNER == -1 == Action().partner_id      # the message's default: alone


def test_unknown_keeps_the_top_k_on_the_action():
    msg = action_array_msg(result(person(1, label=UNKNOWN_LABEL,
                                         class_index=UNKNOWN_CLASS_INDEX)))
    action = msg.actions[0]
    assert (action.label, action.class_index) == ("unknown", -1)
    assert list(action.top_labels) == ["hugging", "pushing"]
    np.testing.assert_allclose(action.top_scores, [0.4, 0.3], rtol=1e-6)   # float32


def test_each_refined_pose_carries_the_stamp_of_its_own_frame():
    """The array's header is the newest frame of its people; each skeleton says which frame
    it is (a result from before the field existed falls back to the window's end)."""
    older = person(4)
    older.refined_stamp_ns = 1_500
    skeletons = refined_array_msg(result(person(3), older)).skeletons
    assert [(s.stamp.sec, s.stamp.nanosec) for s in skeletons] == [(0, 2_000), (0, 1_500)]
    # Its markers too: RViz places them by the camera's pose at that stamp.
    stamps = {(m.id, m.header.stamp.nanosec) for m in markers_msg(result(person(3), older)).markers}
    assert stamps == {(3, 2_000), (4, 1_500)}


def test_the_label_marker_names_the_partner():
    texts = {m.id: m.text for m in markers_msg(result(person(3, partner=4), person(9))).markers
             if m.ns == "label"}
    assert texts == {3: "3: hugging 0.40 (with 4)", 9: "9: hugging 0.40"}


def test_markers_outlive_the_gap_to_the_next_pass():
    """Markers are renewed at each pass: at max_rate_hz 0.25 a pass comes every 4 s, so a
    lifetime of 2 x track_timeout_s (2 s) would blank a person still in view half the time."""
    assert marker_lifetime_s(1.0, 60.0) == 2.0
    assert marker_lifetime_s(1.0, 0.25) > 4.0


class CountedKeypoint(Keypoint):
    """A real Keypoint that counts the reads of its values: converting it is reading them."""

    def __init__(self, **kwargs):
        self.reads = 0
        super().__init__(**kwargs)

    def _read(self, field: property):
        self.reads += 1
        return field.fget(self)

    position = property(lambda self: self._read(Keypoint.position), Keypoint.position.fset)
    confidence = property(lambda self: self._read(Keypoint.confidence), Keypoint.confidence.fset)


def _skeleton_array(joint_counts: list[int]) -> SkeletonArray:
    """One skeleton (id = its position) per entry, of that many counted keypoints."""
    msg = SkeletonArray(layout="kinect20")
    msg.header.frame_id = "kinect"
    msg.skeletons = [Skeleton(id=i, keypoints=[CountedKeypoint(confidence=1.0)
                                               for _ in range(joints)])
                     for i, joints in enumerate(joint_counts)]
    return msg


def keypoint_reads(skeleton: Skeleton) -> int:
    return sum(keypoint.reads for keypoint in skeleton.keypoints)


def test_what_the_pipeline_drops_whole_is_not_converted():
    """A crowd over max_people is one too_many_people drop without a skeleton converted; a
    skeleton of more keypoints than any layout has comes as no joints (wrong_joint_count),
    its keypoints unread. Converting them to throw them away cost the executor 0.2-0.4 s on a
    huge message, so the reads are counted, not only the result."""
    from prgcn_ros.nodes.conversions import skeleton_array_to_frame

    crowd_msg = _skeleton_array([20] * 60)
    crowd = skeleton_array_to_frame(crowd_msg, 0.0, max_people=50)
    assert crowd.ids == [] and crowd.dropped == {"too_many_people": 1}
    assert [keypoint_reads(s) for s in crowd_msg.skeletons] == [0] * 60
    fine_msg = _skeleton_array([20] * 50)
    fine = skeleton_array_to_frame(fine_msg, 0.0, max_people=50)
    assert fine.ids == list(range(50)) and fine.dropped == {}
    assert fine.coords[0].shape == (20, 3)
    assert all(keypoint_reads(s) > 0 for s in fine_msg.skeletons)   # the count sees a conversion
    huge_msg = _skeleton_array([5000, 20])
    huge = skeleton_array_to_frame(huge_msg, 0.0, max_people=50)
    assert huge.ids == [0, 1] and [c.shape for c in huge.coords] == [(0, 3), (20, 3)]
    assert [keypoint_reads(s) > 0 for s in huge_msg.skeletons] == [False, True]


def test_azure_markers_of_another_frame_or_repeating_a_joint_are_foreign():
    from builtin_interfaces.msg import Time
    from visualization_msgs.msg import Marker, MarkerArray

    from prgcn_ros.nodes.conversions import azure_markers_to_frame

    def marker(mid: int, x: float, frame_id: str = "depth_camera_link", sec: int = 5) -> Marker:
        m = Marker(id=mid, type=Marker.SPHERE, action=Marker.ADD)   # as the driver sends
        m.header.frame_id, m.header.stamp = frame_id, Time(sec=sec)
        m.pose.position.x = x
        return m

    body = [marker(j, 0.1 * j) for j in range(32)]
    extra = [marker(5, 50.0, frame_id="other_cam", sec=9), marker(6, 60.0, sec=9),
             marker(7, 70.0)]                       # another frame, another stamp, a repeat
    frame = azure_markers_to_frame(MarkerArray(markers=body + extra), 0.0)
    assert frame.ids == [0] and frame.dropped == {"foreign_marker_id": 3}
    assert (frame.frame_id, frame.stamp_ns) == ("depth_camera_link", 5 * 10**9)
    np.testing.assert_allclose(frame.coords[0][5:8, 0], [0.5, 0.6, 0.7])
    # Another node's label (a text marker, id 0) and bones (a line list, id 305) on the topic
    # are no joints: they made two phantom people.
    label, bones = marker(0, 9.0), marker(305, 9.0)
    label.type, bones.type = Marker.TEXT_VIEW_FACING, Marker.LINE_LIST
    frame = azure_markers_to_frame(MarkerArray(markers=[label, *body[1:], bones]), 0.0)
    assert frame.ids == [0] and frame.dropped == {"foreign_marker_id": 2}
    assert frame.confidence[0][0] == 0.0 and frame.confidence[0][1:].all()
