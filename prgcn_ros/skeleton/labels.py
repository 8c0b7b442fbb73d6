"""Class names of the datasets the readers know (0-based index = label)."""
from __future__ import annotations

# /action's label for a person the model does not know well enough (below min_confidence): no
# model may name a class so.
UNKNOWN_LABEL = "unknown"

# MSR Action3D, action aAA in the file name is class AA - 1.
MSR_ACTION3D_CLASSES: tuple[str, ...] = (
    "high arm wave", "horizontal arm wave", "hammer", "hand catch", "forward punch",
    "high throw", "draw x", "draw tick", "draw circle", "hand clap", "two hand wave",
    "side-boxing", "bend", "forward kick", "side kick", "jogging", "tennis swing",
    "tennis serve", "golf swing", "pick up & throw",
)

# NTU RGB+D 60, file part Axxx is class xxx - 1 (names as the dataset's authors list them).
NTU60_CLASSES: tuple[str, ...] = (
    "drink water", "eat meal/snack", "brushing teeth", "brushing hair", "drop", "pickup",
    "throw", "sitting down", "standing up (from sitting position)", "clapping", "reading",
    "writing", "tear up paper", "wear jacket", "take off jacket", "wear a shoe",
    "take off a shoe", "wear on glasses", "take off glasses", "put on a hat/cap",
    "take off a hat/cap", "cheer up", "hand waving", "kicking something",
    "reach into pocket", "hopping (one foot jumping)", "jump up",
    "make a phone call/answer phone", "playing with phone/tablet", "typing on a keyboard",
    "pointing to something with finger", "taking a selfie", "check time (from watch)",
    "rub two hands together", "nod head/bow", "shake head", "wipe face", "salute",
    "put the palms together", "cross hands in front (say stop)", "sneeze/cough",
    "staggering", "falling", "touch head (headache)", "touch chest (stomachache/heart pain)",
    "touch back (backache)", "touch neck (neckache)", "nausea or vomiting condition",
    "use a fan (with hand or paper)/feeling warm", "punching/slapping other person",
    "kicking other person", "pushing other person", "pat on back of other person",
    "point finger at the other person", "hugging other person",
    "giving something to other person", "touch other person's pocket", "handshaking",
    "walking towards each other", "walking apart from each other",
)

# NW-UCLA Multiview Action3D: the file names skip a07 and a10; class k is the k-th action number.
NW_UCLA_ACTIONS: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 8, 9, 11, 12)
NW_UCLA_CLASSES: tuple[str, ...] = (
    "pick up with one hand", "pick up with two hands", "drop trash", "walk around",
    "sit down", "stand up", "donning", "doffing", "throw", "carry",
)

# UTD-MHAD, action aA in the file name is class A - 1.
UTD_MHAD_CLASSES: tuple[str, ...] = (
    "right arm swipe to the left", "right arm swipe to the right", "right hand wave",
    "two hand front clap", "right arm throw", "cross arms in the chest", "basketball shoot",
    "right hand draw x", "right hand draw circle (clockwise)",
    "right hand draw circle (counter-clockwise)", "draw triangle", "bowling (right hand)",
    "front boxing", "baseball swing from right", "tennis right hand forehand swing",
    "arm curl (two arms)", "tennis serve", "two hand push", "right hand knock on door",
    "right hand catch an object", "right hand pick up and throw", "jogging in place",
    "walking in place", "sit to stand", "stand to sit", "forward lunge (left foot forward)",
    "squat (two arms stretch out)",
)

# SBU Kinect Interaction, class folder CC is class CC - 1.
SBU_INTERACTION_CLASSES: tuple[str, ...] = (
    "approaching", "departing", "kicking", "punching", "pushing", "hugging",
    "shaking hands", "exchanging",
)

assert len(MSR_ACTION3D_CLASSES) == 20 and len(NTU60_CLASSES) == 60
assert len(NW_UCLA_CLASSES) == len(NW_UCLA_ACTIONS) == 10
assert len(UTD_MHAD_CLASSES) == 27 and len(SBU_INTERACTION_CLASSES) == 8


def ntu_class_name(label: int) -> str | None:
    """Name of a 0-based NTU class; None beyond NTU-60 (NTU-120's extra names are not listed)."""
    return NTU60_CLASSES[label] if 0 <= label < len(NTU60_CLASSES) else None
