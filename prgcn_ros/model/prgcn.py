"""PR-GCN (Li, Yi, Abu Farha, Gall, RA-L 2021): PRM -> GFM -> TAM -> classifier (paper Fig. 1)."""
from __future__ import annotations

import torch
from torch import nn

from prgcn_ros.model.bones import RigidBones
from prgcn_ros.model.gfm import GFM, WIDTH, SequentialGFM
from prgcn_ros.model.graph import layout_from_spec, layout_spec, normalized_adjacency
from prgcn_ros.model.norm import DataNorm
from prgcn_ros.model.prm import PRM
from prgcn_ros.model.tam import TAM
from prgcn_ros.skeleton.layouts import TWO_D_LAYOUTS, Layout

FUSIONS = ("parallel", "sequential")


class PRGCN(nn.Module):
    """Input (N, C, T, V, M); returns (logits (N, classes), refined poses (N, C, T, V, M)).

    The refined poses are in the input's coordinates: refined = x + offset on the first
    ``refine_channels`` channels (the rest, e.g. 2D confidence, pass through; by default 2 for
    image-keypoint layouts, else every channel). The network then
    normalises the refined poses itself (data BN over C·V, persons folded into the batch).
    With ``rigid_bones`` (3D poses) the refined skeleton is rebuilt with every bone's length held
    over the window (:class:`~prgcn_ros.model.bones.RigidBones`).

    Beside the paper's input, the GFM can also be fed, per person, channels computed from the
    refined poses (so the node's input stays (N, C, T, V, M)): ``bone_input``, each joint's
    bone vector from its parent (towards the layout's centre; zero at the centre), and
    ``partner_input``, for two-person samples, the other person's joints (zero for a lone
    person) — each person's flow then sees whom it acts on, not only its own body.

    ``extent_norm`` rescales, for the GFM only, each sample's refined coordinates per axis to
    [-1, 1] over its window (frames, joints and present persons together): CTR-GCN's NW-UCLA
    normalisation, which evens out how far a clip extends along each axis whatever the view.
    The refined poses returned stay in the input's coordinates.

    ``learned_edges`` lets every graph convolution of the GFM and TAM learn links beside the
    skeleton's (:mod:`~prgcn_ros.model.gcn`), so distant joints such as the two hands meet
    before the final pooling; ``sample_topology`` gives them, besides, links of each sample's
    own per channel (CTR-GCN's channel-wise topology refinement). The PRM keeps the skeleton's
    links. ``temporal_kernel`` is the span of the GFM's temporal convolutions (the paper's
    K_t = 3; odd); ``temporal_dilations`` makes the motion flow's temporal layers multi-scale
    (MS-G3D's, as in CTR-GCN: one branch per dilation, a max and a 1 x 1; None: the paper's).
    ``gfm_channels`` is the GFM's width: the paper's 64, its last position layer and the TAM's
    input twice that (parameters grow about with its square). ``graph_norm`` is how every graph
    convolution's adjacency is normalised (:func:`~prgcn_ros.model.graph.normalized_adjacency`:
    "paper", eq. (2) as printed, or "balanced").
    """

    def __init__(self, num_classes: int, layout: str | Layout | dict, in_channels: int = 3,
                 refine_channels: int | None = None, use_prm: bool = True, use_tam: bool = True,
                 fusion: str = "parallel", use_motion: bool = True,
                 rigid_bones: bool = False, bone_input: bool = False,
                 partner_input: bool = False, extent_norm: bool = False,
                 learned_edges: bool = False, temporal_kernel: int = 3,
                 sample_topology: bool = False,
                 temporal_dilations: list[int] | None = None,
                 gfm_channels: int = WIDTH, graph_norm: str = "paper") -> None:
        super().__init__()
        layout = layout_from_spec(layout)
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, not {fusion!r}")
        # Image keypoints come as (x, y, score): the PRM moves x and y, the score passes on
        # (no loss reaches a refined score, and the classifier would read whatever it became).
        default = 2 if layout.name in TWO_D_LAYOUTS else in_channels
        refine = default if refine_channels is None else int(refine_channels)
        if not 1 <= refine <= in_channels:
            raise ValueError(f"refine_channels must be in 1..{in_channels}, not {refine}")
        temporal_kernel = int(temporal_kernel)
        if temporal_kernel < 1 or temporal_kernel % 2 == 0:
            raise ValueError(f"temporal_kernel must be odd and positive, not {temporal_kernel}")
        gfm_channels = int(gfm_channels)
        if gfm_channels < 8:
            raise ValueError(f"gfm_channels must be at least 8, not {gfm_channels}")
        if temporal_dilations is not None:
            dilations = list(temporal_dilations) if isinstance(
                temporal_dilations, (list, tuple)) else None
            # Each branch needs channels of its own: the dilations, a max and a 1 x 1 share the
            # GFM's width, at least 4 each.
            most = gfm_channels // 4 - 2
            if not dilations or len(dilations) > most or not all(
                    isinstance(d, int) and not isinstance(d, bool) and d >= 1
                    for d in dilations):
                raise ValueError(f"temporal_dilations must be a list of 1-{most} positive "
                                 f"integers or null, not {temporal_dilations!r}")
            temporal_dilations = dilations
        if rigid_bones and (refine != 3 or not use_prm or layout.name in TWO_D_LAYOUTS):
            raise ValueError("rigid_bones needs a PRM that refines 3D coordinates (use_prm "
                             f"true and refine_channels 3 of a 3D layout; here {bool(use_prm)}, "
                             f"{refine}, {layout.name}): turn rigid_bones off")
        self.arch = {"name": "prgcn", "num_classes": int(num_classes),
                     "layout": layout_spec(layout), "in_channels": int(in_channels),
                     "refine_channels": refine, "use_prm": bool(use_prm),
                     "use_tam": bool(use_tam), "fusion": fusion, "use_motion": bool(use_motion),
                     "rigid_bones": bool(rigid_bones), "bone_input": bool(bone_input),
                     "partner_input": bool(partner_input), "extent_norm": bool(extent_norm),
                     "learned_edges": bool(learned_edges),
                     "temporal_kernel": temporal_kernel,
                     "sample_topology": bool(sample_topology),
                     "temporal_dilations": temporal_dilations,
                     "gfm_channels": gfm_channels, "graph_norm": str(graph_norm)}
        self.layout = layout
        self.refine_channels = refine
        adjacency = torch.from_numpy(normalized_adjacency(layout, norm=graph_norm))
        self.prm = PRM(in_channels, refine, adjacency) if use_prm else None
        self.rigid = RigidBones(layout) if rigid_bones else None
        parents = torch.arange(layout.num_joints)
        for parent, child in layout.tree():
            parents[child] = parent
        self.register_buffer("bone_parents", parents if bone_input else None, persistent=False)
        self.partner_input = bool(partner_input)
        self.extent_norm = bool(extent_norm)
        features = (in_channels + (refine if bone_input else 0)
                    + (in_channels if partner_input else 0))
        self.data_norm = DataNorm(features, layout.num_joints)
        gfm = GFM if fusion == "parallel" else SequentialGFM
        links = {"learned_edges": bool(learned_edges), "sample_topology": bool(sample_topology)}
        self.gfm = gfm(features, adjacency, use_motion, links, temporal_kernel,
                       tuple(temporal_dilations) if temporal_dilations else None, gfm_channels)
        self.tam = TAM(self.gfm.out_channels, adjacency, links=links) if use_tam else None
        features = self.tam.out_channels if self.tam is not None else self.gfm.out_channels
        self.classifier = nn.Linear(features, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, c, t, v, m = x.shape
        given = x.permute(0, 4, 1, 2, 3).reshape(n * m, c, t, v)
        poses, refined = given, x
        if self.prm is not None:
            offset = self.prm(poses)
            if self.refine_channels < c:
                poses = torch.cat([poses[:, :self.refine_channels] + offset,
                                   poses[:, self.refine_channels:]], dim=1)
            else:
                poses = poses + offset
            if self.rigid is not None:
                poses = self._hold_bones(given, poses)
            refined = poses.reshape(n, m, c, t, v).permute(0, 2, 3, 4, 1)
        f = self.gfm(self.data_norm(self._features(given, poses, n, m)))
        if self.tam is not None:
            f = self.tam(f)
        # Global average pooling, then the most active person: (N·M, F, T', V) -> (N, F).
        f = f.mean(dim=(2, 3)).view(n, m, -1).amax(dim=1)
        return self.classifier(f), refined

    def _features(self, given: torch.Tensor, poses: torch.Tensor, n: int, m: int
                  ) -> torch.Tensor:
        """(N·M, C, T, V) refined poses -> the GFM's input: the poses, then bone vectors and
        the partner's poses where the architecture asks for them. ``given``: the input poses;
        a partner is given only where both slots hold a person (a lone person is seen alone)."""
        present = (given != 0).flatten(1).any(dim=1).view(n, m)   # slots that hold a person
        if self.extent_norm:
            poses = self._to_extent(present, poses)
        parts = [poses]
        if self.bone_parents is not None:
            coords = poses[:, :self.refine_channels]
            parts.append(coords - coords.index_select(3, self.bone_parents))
        if self.partner_input:
            # The other present slot's person, where exactly two slots hold a person; none for
            # a lone person. A product with 0 / 1 weights: exactly the partner's values, for
            # any M (the next slot was an empty one's with M = 3), and no branch on M, so an
            # exported graph takes any M.
            c, t, v = poses.shape[1:]
            others = present.to(poses.dtype)[:, None, :] * (
                1 - torch.eye(m, dtype=poses.dtype, device=poses.device))   # (N, M, M)
            partner = torch.matmul(others, poses.reshape(n, m, c * t * v)).reshape(n * m, c, t, v)
            paired = present & (present.sum(dim=1, keepdim=True) == 2)
            parts.append(partner * paired.reshape(n * m).to(poses.dtype)[:, None, None, None])
        return torch.cat(parts, dim=1) if len(parts) > 1 else poses

    def _to_extent(self, present: torch.Tensor, poses: torch.Tensor) -> torch.Tensor:
        """(N·M, C, T, V) poses with each sample's coordinates mapped per axis onto [-1, 1]
        over its frames, joints and present persons (``present`` (N, M): the slots that hold a
        person; an empty slot stays zero); the channels after the coordinates pass through."""
        (n, m), (c, t, v) = present.shape, poses.shape[1:]
        k = self.refine_channels
        coords = poses[:, :k].reshape(n, m, k, t * v)
        present = present.view(n, m, 1, 1)
        low = torch.where(present, coords, torch.full_like(coords, float("inf")))
        high = torch.where(present, coords, torch.full_like(coords, float("-inf")))
        anyone = present.any(dim=1, keepdim=True)   # finite bounds for an empty sample too
        low = torch.where(anyone, low.amin(dim=(1, 3), keepdim=True), 0.0)
        high = torch.where(anyone, high.amax(dim=(1, 3), keepdim=True), 0.0)
        span = (high - low).clamp(min=1e-6)
        scaled = torch.where(present, (coords - low) / span * 2 - 1, torch.zeros_like(coords))
        scaled = scaled.reshape(n * m, k, t, v)
        return torch.cat([scaled, poses[:, k:]], dim=1) if k < c else scaled

    def _hold_bones(self, given: torch.Tensor, poses: torch.Tensor) -> torch.Tensor:
        """Refined (N·M, C, T, V) poses with rigid bones in the frames that hold the person (any
        given input coordinate non-zero); padding frames and empty person slots keep their
        values. ``given``: the input, (N·M, C, T, V) too."""
        held = (given[:, :3] != 0).any(dim=1, keepdim=True).any(dim=3, keepdim=True)  # (N·M,1,T,1)
        coords = self.rigid(poses[:, :3], held.to(poses.dtype))
        coords = torch.where(held, coords, poses[:, :3])
        return torch.cat([coords, poses[:, 3:]], dim=1) if poses.shape[1] > 3 else coords
