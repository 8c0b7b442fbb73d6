"""Export parity: TorchScript and ONNX (run with onnxruntime) give eager mode's outputs."""
from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from test_model_prgcn import _one_intra_op_thread  # noqa: F401  (autouse fixture)

from prgcn_ros.model import PRGCN, STGCN
from prgcn_ros.model.export import export_model

REPO = Path(__file__).resolve().parent.parent
SHAPES = [(1, 1), (2, 2), (1, 3), (2, 5), (1, 7), (3, 30), (2, 48), (1, 64), (4, 100)]  # (N, T)


def _trained_like(model: torch.nn.Module, joints: int, persons: int = 1) -> torch.nn.Module:
    torch.manual_seed(0)
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(4, 3, 40, joints, persons))
    return model.eval()


def _with_learned_edges(model: PRGCN) -> PRGCN:
    """Learned links and per-sample link weights that are not yet zero (they start so), so
    the export carries them."""
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith((".edges", ".alpha")):
                parameter.normal_(std=0.1)
    return model


def _max_diff(expected, actual) -> float:
    return max(float(np.abs(e.detach().numpy() - a).max()) for e, a in zip(expected, actual))


@pytest.mark.parametrize("make", [lambda: PRGCN(20, "kinect20"),
                                  lambda: PRGCN(20, "kinect20", rigid_bones=True),
                                  lambda: PRGCN(20, "kinect20", bone_input=True),
                                  lambda: _with_learned_edges(
                                      PRGCN(20, "kinect20", learned_edges=True)),
                                  lambda: _with_learned_edges(
                                      PRGCN(20, "kinect20", sample_topology=True)),
                                  lambda: PRGCN(20, "kinect20", temporal_kernel=9),
                                  lambda: PRGCN(20, "kinect20", temporal_dilations=[1, 2]),
                                  lambda: PRGCN(20, "kinect20", gfm_channels=32),
                                  lambda: PRGCN(60, "coco18", refine_channels=2,
                                                fusion="sequential", use_tam=False),
                                  lambda: STGCN(20, "kinect20"),
                                  lambda: STGCN(20, "kinect20", variant="prgcn_table1")])
def test_torchscript_parity(tmp_path, make):
    model = _trained_like(make(), make().layout.num_joints)
    joints = model.layout.num_joints
    path = export_model(model, tmp_path / "m.pt", "torchscript",
                        torch.randn(1, 3, 48, joints, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.load(str(path))
    with torch.no_grad():
        for n, t in SHAPES:
            x = torch.randn(n, 3, t, joints, 1)
            expected = model(x)
            actual = scripted(x)
            if isinstance(expected, torch.Tensor):
                expected, actual = (expected,), (actual,)
            assert _max_diff(expected, [a.numpy() for a in actual]) <= 1e-4, (n, t)


@pytest.fixture(scope="module")
def onnx_export(shipped_graph, tmp_path_factory):
    """The shipped model (PR-GCN, kinect20, rigid bones) and its graph as export_model made it
    for the session (conftest.shipped_graph, which other tests use too)."""
    from prgcn_ros.model.io import load_model

    shipped = REPO / "models" / "prgcn_msr_action3d.safetensors"
    path = shipped_graph(shipped, tmp_path_factory.mktemp("onnx"))   # read: no copy needed
    model, _ = load_model(shipped)
    return model.eval(), ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.slow
def test_onnx_parity_with_dynamic_batch_frames_and_persons(onnx_export):
    model, session = onnx_export
    assert [i.name for i in session.get_inputs()] == ["skeletons"]
    assert [o.name for o in session.get_outputs()] == ["logits", "refined"]
    with torch.no_grad():
        for (n, t), m in zip(SHAPES, (1, 2, 1, 3, 2, 1, 2, 1, 3)):
            x = torch.randn(n, 3, t, 20, m)
            actual = session.run(None, {"skeletons": x.numpy()})
            assert actual[0].shape == (n, 20) and actual[1].shape == tuple(x.shape)
            assert _max_diff(model(x), actual) <= 1e-4, (n, t, m)


def test_unknown_format(tmp_path):
    with pytest.raises(ValueError, match="unknown export format"):
        export_model(PRGCN(2, "kinect20"), tmp_path / "m.x", "tflite", torch.zeros(1))


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_pair_model_exports(tmp_path, fmt, caplog):
    """A two-person model with bone and partner channels, extent_norm, learned and per-sample
    links, multi-scale temporal layers (the node feeds it M = 2 always). The export says
    nothing of torchvision, which no network here needs (a first start warned four times)."""
    model = _trained_like(_with_learned_edges(PRGCN(8, "openni15", bone_input=True,
                                                    partner_input=True, extent_norm=True,
                                                    learned_edges=True,
                                                    sample_topology=True,
                                                    temporal_dilations=[1, 2, 3])),
                            15, persons=2)
    path = export_model(model, tmp_path / f"m.{fmt}", fmt, torch.randn(1, 3, 48, 15, 2))
    assert not [r for r in caplog.records if "torchvision" in r.getMessage()]
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    assert registration.level == logging.NOTSET          # as it was: held back for the export
    if fmt == "onnx":
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        run = lambda x: session.run(None, {"skeletons": x.numpy()})  # noqa: E731
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            scripted = torch.jit.load(str(path))
        run = lambda x: [a.numpy() for a in scripted(x)]  # noqa: E731
    with torch.no_grad():
        for n, t in SHAPES:
            x = torch.randn(n, 3, t, 15, 2)
            x[0, ..., 1] = 0.0                                  # a lone person
            assert _max_diff(model(x), run(x)) <= 1e-4, (n, t)
            # One person slot (a model trained with max_persons 1): the graph was fixed to
            # two by the partner channels' branch on M, and onnxruntime failed.
            x = torch.randn(n, 3, t, 15, 1)
            assert _max_diff(model(x), run(x)) <= 1e-4, (n, t, 1)
