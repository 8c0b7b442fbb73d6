"""Edges of model files, the graph cache and the backends' start-up check that the main tests
leave open: weights of other tools, boundary values, JSON booleans, a later reader, the cache
key, graphs an exporter got wrong, a full disk during an export, the export command line.

The backend tests run a stand-in network whose ONNX graph is written by hand (no export: these
tests take seconds); a graph "computing something else" simulates an exporter bug.
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from rosutil import make_tiny_model
from safetensors.torch import load_file, save_file
from test_model_io import _error
from test_model_prgcn import _one_intra_op_thread  # noqa: F401  (autouse fixture)
from torch import nn

from prgcn_ros import paths
from prgcn_ros.model import PRGCN, STGCN, ModelFileError, export, io, load_model
from prgcn_ros.model.backends import (
    CACHE_DIR_NAME,
    SHARED_CACHE_GRAPHS,
    BackendError,
    cache_file_name,
    check_window,
    export_version,
    make_backend,
    onnx_graph,
    resolve_device,
    user_cache_dir,
)
from prgcn_ros.model.export import export_model
from prgcn_ros.model.io import metadata_path, resolve_model
from prgcn_ros.training import export as export_cli
from prgcn_ros.training.export import example_input


@pytest.fixture()
def model_file(tmp_path) -> Path:
    """A small model file of this test's own (tests here change or cache beside it)."""
    return make_tiny_model(tmp_path / "m.safetensors")


def _edit_metadata(path: Path, **change) -> None:
    meta = json.loads(metadata_path(path).read_text())
    meta.update(change)
    metadata_path(path).write_text(json.dumps(meta))


# ---------------------------------------------------------------------------- model files
def test_weights_another_tool_wrote_without_a_header_load(model_file):
    """safetensors' save_file without metadata (a converter, a notebook) leaves no header
    metadata at all: the model loads, it is not a crash."""
    expected, _ = load_model(model_file)
    save_file(load_file(str(model_file)), str(model_file))
    loaded, _ = load_model(model_file)
    x = torch.randn(2, 3, 8, 20, 1)
    with torch.no_grad():
        assert torch.equal(expected(x)[0], loaded(x)[0])


def test_a_batch_norm_variance_of_exactly_zero_loads(model_file):
    """A channel that never fired in training has a running variance that decays to 0 (the
    layer's eps keeps it finite): a trained network holds it, so it is not refused."""
    weights = load_file(str(model_file))
    key = next(k for k in weights if k.endswith("running_var"))
    weights[key] = weights[key].clone()
    weights[key].view(-1)[0] = 0.0
    save_file(weights, str(model_file), metadata={"format": "prgcn_ros-model/1"})
    model, _ = load_model(model_file)
    assert float(model.state_dict()[key].view(-1)[0]) == 0.0


@pytest.mark.parametrize("change", [
    {"window": {"mode": "resample", "length": 10_000}},
    {"window": 1},
    {"calibration": {"temperature": 0.01}},
    {"calibration": {"temperature": 100}},
])
def test_the_ends_of_the_allowed_ranges_load(model_file, change):
    """The messages say 1-10000 frames and 0.01-100: both ends are inside."""
    _edit_metadata(model_file, **change)
    load_model(model_file)


def test_a_later_reader_refuses_what_this_one_writes(model_file, monkeypatch):
    """Files carry their format: a prgcn_ros that reads another one says so, instead of
    rebuilding the network from fields it reads differently."""
    monkeypatch.setattr(io, "FORMAT", "prgcn_ros-model/2")
    assert "'prgcn_ros-model/1' is not 'prgcn_ros-model/2'" in _error(model_file)


def test_an_error_is_one_line_whatever_the_file_holds(model_file):
    meta = json.loads(metadata_path(model_file).read_text())
    meta["architecture"]["an\noption"] = True
    metadata_path(model_file).write_text(json.dumps(meta))
    assert "has no option" in _error(model_file)       # one line: checked in _refused


def test_a_shipped_model_that_is_not_installed_is_named_so(tmp_path, monkeypatch):
    """An install without the model files (e.g. Git LFS pointers not fetched): the user is told
    the shipped model is missing, not that the name is unknown."""
    share = tmp_path / "share" / "prgcn_ros"
    (share / "models").mkdir(parents=True)
    monkeypatch.setattr(paths, "source_root", lambda: None)
    monkeypatch.setattr(paths, "share_dir", lambda: share)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelFileError, match="'nw_ucla': a shipped model that is missing here"):
        resolve_model("nw_ucla")


def test_a_missing_path_without_a_suffix_is_a_missing_file(tmp_path):
    gone = tmp_path / "runs" / "best"
    with pytest.raises(ModelFileError) as error:
        resolve_model(gone)
    assert "file is missing" in str(error.value) and "shipped model name" not in str(error.value)


# ---------------------------------------------------------------------------- devices, keys
def test_a_cuda_index_one_past_the_last_device_is_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match="has 1 CUDA device"):
        resolve_device("cuda:1")
    with pytest.raises(ValueError, match="auto, cpu, cuda or cuda:N, got 'cuda:'"):
        resolve_device("cuda:")


def test_auto_is_the_gpu_where_cuda_is_and_cuda_without_it_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ValueError, match="CUDA is not available here"):
        resolve_device("cuda")


def test_the_cache_key_covers_the_exporter_and_the_architecture(model_file, monkeypatch):
    """A graph another torch exported, or one of another architecture under the same weights
    (an option without weights of its own), is not served from the cache."""
    before = cache_file_name(model_file)
    version = export_version()
    monkeypatch.setattr(torch, "__version__", "0.0.1-other")
    assert export_version() != version
    monkeypatch.undo()
    meta = json.loads(metadata_path(model_file).read_text())
    meta["architecture"]["rigid_bones"] = True
    metadata_path(model_file).write_text(json.dumps(meta))
    assert cache_file_name(model_file) != before


# ---------------------------------------------------------------------------- graphs
class StandIn(nn.Module):
    """logits (N, C): the mean over T, V, M; refined: the input (as PR-GCN) or none (ST-GCN)."""

    def __init__(self, refined: bool = True) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.refined = refined

    def forward(self, x):
        logits = x.mean(dim=(2, 3, 4)) * self.scale
        return (logits, x) if self.refined else logits


def _write_graph(path: Path, scale: float = 1.0, shift: float = 0.0, refined_shift: float = 0.0,
                 refined: bool = True, fixed: bool = False) -> Path:
    """StandIn's graph, computing ``scale * mean + shift`` and ``input + refined_shift``;
    ``fixed``: its input shape fixed to one frame (valid ONNX that cannot run a window)."""
    dims = [1, 3, 1, 1, 1] if fixed else ["N", 3, "T", 20, "M"]
    const = lambda name, value: numpy_helper.from_array(np.array(value, np.float32), name)  # noqa: E731
    nodes = [helper.make_node("ReduceMean", ["skeletons"], ["mean"], axes=[2, 3, 4], keepdims=0),
             helper.make_node("Mul", ["mean", "scale"], ["scaled"]),
             helper.make_node("Add", ["scaled", "shift"], ["logits"])]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])]
    inits = [const("scale", scale), const("shift", shift)]
    if refined:
        nodes.append(helper.make_node("Add", ["skeletons", "refined_shift"], ["refined"]))
        outputs.append(helper.make_tensor_value_info("refined", TensorProto.FLOAT, dims))
        inits.append(const("refined_shift", refined_shift))
    graph = helper.make_graph(nodes, "stand_in",
                              [helper.make_tensor_value_info("skeletons", TensorProto.FLOAT, dims)],
                              outputs, inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    onnx.checker.check_model(proto)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(path))
    return path


def _exporter(monkeypatch, **graph) -> list[Path]:
    """export_model replaced by one that writes StandIn's graph (``graph``: what it gets
    wrong); returns the paths it wrote."""
    written: list[Path] = []

    def writes(model, path, fmt, example_input):
        assert fmt == "onnx"
        written.append(_write_graph(Path(path), **graph))
        return Path(path)
    monkeypatch.setattr(export, "export_model", writes)
    return written


WINDOW = check_window(3, 16, 20)


def _start(model_file: Path, model: nn.Module | None = None):
    return make_backend("onnxruntime", model or StandIn(), model_file, WINDOW)


def test_the_stand_in_graph_passes_the_start_up_check(model_file, monkeypatch):
    _exporter(monkeypatch)
    backend, info = _start(model_file)
    assert not info.reused and info.max_diff <= 1e-5
    logits, refined = backend(WINDOW)
    assert torch.allclose(logits, WINDOW.mean(dim=(2, 3, 4)), atol=1e-5)


@pytest.mark.parametrize("graph, words", [
    ({"scale": float("nan")}, "differs from the torch model by nan"),
    ({"shift": 0.01}, "differs from the torch model by 0.01"),        # CPU: float32, 1e-3
    ({"refined_shift": 0.5}, "differs from the torch model by 0.5"),  # the logits are right
    ({"fixed": True}, "cannot be run"),
])
def test_a_fresh_graph_that_is_wrong_is_error(model_file, monkeypatch, graph, words):
    """NaN outputs, a difference past the CPU's bound (within the GPU's), wrong refined poses
    under right logits, a graph onnxruntime cannot run on a window: each stops the start,
    saying which."""
    _exporter(monkeypatch, **graph)
    with pytest.raises(BackendError, match=words):
        _start(model_file)


def test_a_cached_graph_onnxruntime_cannot_run_is_exported_again(model_file, monkeypatch):
    """A cached file onnx accepts but onnxruntime cannot run (another exporter's graph under
    this name) is replaced, not a stopped start."""
    cached = _write_graph(model_file.parent / CACHE_DIR_NAME / cache_file_name(model_file),
                          fixed=True)
    written = _exporter(monkeypatch)
    _, info = _start(model_file)
    assert len(written) == 1 and info.graph == cached
    assert not info.reused and info.max_diff <= 1e-5


def test_a_network_without_refined_poses_runs_on_onnxruntime(model_file, monkeypatch):
    """ST-GCN's graph has the logits only: its "refined" input is the input, as on torch."""
    _exporter(monkeypatch, refined=False)
    backend, info = _start(model_file, StandIn(refined=False))
    assert info.max_diff <= 1e-5
    logits, refined = backend(WINDOW)
    assert logits.shape == (2, 3) and torch.equal(refined, WINDOW)


def test_a_full_disk_during_an_export_tries_the_next_cache(model_file, monkeypatch, tmp_path):
    """The exporter writing into the model's folder fails with ENOSPC: the graph goes to the
    user's cache, as for a folder that cannot be written at all."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))

    def full_beside_the_model(model, path, fmt, example_input):
        if CACHE_DIR_NAME in Path(path).parts:
            raise OSError(28, "No space left on device")
        return _write_graph(Path(path))
    monkeypatch.setattr(export, "export_model", full_beside_the_model)
    graph = onnx_graph(StandIn(), model_file, WINDOW)
    assert not graph.reused and graph.path.parent == user_cache_dir()
    assert graph.path.is_file()


def test_a_cached_graph_that_does_not_load_is_exported_again(model_file, monkeypatch):
    cached = model_file.parent / CACHE_DIR_NAME / cache_file_name(model_file)
    data = _write_graph(cached).read_bytes()
    cached.write_bytes(data[: len(data) // 2])               # truncated, as by a full disk
    written = _exporter(monkeypatch)

    def loads(path: Path) -> bool:
        try:
            onnx.checker.check_model(str(path))
        except Exception:
            return False
        return True
    graph = onnx_graph(StandIn(), model_file, WINDOW, loads=loads)
    assert not graph.reused and len(written) == 1 and graph.path == cached
    assert cached.read_bytes() == data


def test_a_graph_reused_from_a_shared_cache_outlives_older_ones(tmp_path, monkeypatch):
    """Reusing a graph marks it used (a noatime mount does not): another model's export that
    trims the shared cache to SHARED_CACHE_GRAPHS removes the older graphs, not that one."""
    cache = tmp_path / "cache"
    reused = make_tiny_model(tmp_path / "a" / "reused.safetensors")
    graph = _write_graph(cache / cache_file_name(reused))
    os.utime(graph, (1_000, 1_000))                          # used long ago ...
    assert onnx_graph(StandIn(), reused, WINDOW, cache_dir=cache).reused   # ... and now
    for k in range(SHARED_CACHE_GRAPHS):
        old = cache / f"other{k}.{k:020d}.onnx"
        old.write_bytes(b"")
        os.utime(old, (2_000 + k, 2_000 + k))
    _exporter(monkeypatch)
    fresh = make_tiny_model(tmp_path / "b" / "fresh.safetensors")
    assert not onnx_graph(StandIn(), fresh, WINDOW, cache_dir=cache).reused
    assert graph.is_file() and not (cache / f"other0.{0:020d}.onnx").exists()


# ---------------------------------------------------------------------------- export
def test_an_example_input_that_is_not_five_dimensional_is_error():
    with pytest.raises(ValueError, match=r"must be \(N, C, T, V, M\), got \(1, 3, 48, 20\)"):
        export_model(PRGCN(2, "kinect20"), Path("unused.onnx"), "onnx", torch.zeros(1, 3, 48, 20))


def test_the_example_input_takes_the_architectures_channels():
    """The architecture is the network's own; a top-level copy that disagrees is not."""
    metadata = {"window": 16, "in_channels": 6, "layout": "coco18",
                "architecture": {"layout": "kinect20", "in_channels": 3}}
    assert example_input(metadata).shape == (1, 3, 16, 20, 1)


def test_prgcn_export_of_a_shipped_model_by_name_for_a_given_window(tmp_path, capsys):
    """`prgcn-export --model msr_action3d --frames 30`: the shipped model's name works as in
    the node, the example input has the frames asked for, and the metadata names the outputs
    the export gives."""
    out = tmp_path / "msr.pt"
    assert export_cli.main(["--model", "msr_action3d", "--format", "torchscript",
                            "--output", str(out), "--frames", "30"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["input_shape"] == [1, 3, 30, 20, 1]
    meta = json.loads(Path(result["metadata"]).read_text())
    assert meta["export"]["source"] == "prgcn_msr_action3d.safetensors"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.load(str(out))
    with torch.no_grad():
        outputs = scripted(torch.zeros(1, 3, 30, 20, 1))
    assert list(meta["export"]["outputs"]) == ["logits", "refined"] and len(outputs) == 2


def test_prgcn_export_of_a_missing_model_is_one_line_and_status_2(tmp_path, capsys):
    assert export_cli.main(["--model", str(tmp_path / "gone.safetensors"),
                            "--format", "onnx"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("prgcn-export: error: model ") and "file is missing" in err
    assert err.count("\n") == 1


def test_a_network_in_training_mode_is_exported_for_inference(tmp_path):
    """export_model puts the network in eval mode: an export of a network fresh from training
    computes what eval mode computes (batch-norm running statistics), not batch statistics."""
    torch.manual_seed(0)
    model = STGCN(3, "kinect20").train()
    with torch.no_grad():
        model(torch.randn(4, 3, 16, 20, 1))            # running statistics off the identity
    path = export_model(model, tmp_path / "m.pt", "torchscript", torch.zeros(1, 3, 16, 20, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.load(str(path))
    x = torch.randn(2, 3, 16, 20, 1)
    with torch.no_grad():
        assert torch.allclose(scripted(x), model.eval()(x), atol=1e-5)



def _sha(path: Path) -> str:
    import hashlib
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_prgcn_export_never_overwrites_a_shipped_model_without_force(tmp_path, capsys):
    """`--output models/prgcn_msr_action3d.safetensors` wrote ONNX over the shipped weights."""
    shipped = resolve_model("msr_action3d")
    before = _sha(shipped), _sha(metadata_path(shipped))
    model = make_tiny_model(tmp_path / "tiny.safetensors")
    assert export_cli.main(["--model", str(model), "--format", "onnx",
                            "--output", str(shipped)]) == 2
    err = capsys.readouterr().err
    assert "is a shipped model" in err and "--force" in err and err.count("\n") == 1
    assert (_sha(shipped), _sha(metadata_path(shipped))) == before


def test_prgcn_export_over_a_tracked_file_needs_force(tmp_path, capsys):
    import subprocess

    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    notes = repo / "notes.pt"
    notes.write_text("mine\n")
    subprocess.run(["git", "-C", str(repo), "add", "notes.pt"], check=True)
    model = make_tiny_model(tmp_path / "tiny.safetensors")
    args = ["--model", str(model), "--format", "torchscript", "--output", str(notes)]
    assert export_cli.main(args) == 2
    assert "tracked by git" in capsys.readouterr().err and notes.read_text() == "mine\n"
    assert export_cli.main([*args, "--force"]) == 0
    assert notes.read_bytes() != b"mine\n" and (repo / "notes.pt.json").is_file()


def test_prgcn_export_output_that_is_the_model_itself_is_refused_even_with_force(tmp_path,
                                                                                   capsys):
    model = make_tiny_model(tmp_path / "tiny.safetensors")
    before = _sha(model)
    for output in (model, metadata_path(model).with_suffix("")):
        assert export_cli.main(["--model", str(model), "--format", "onnx", "--output",
                                str(output), "--force"]) == 2
        assert "would replace the model it exports" in capsys.readouterr().err
    assert _sha(model) == before


def test_prgcn_export_in_an_installed_share_writes_exports_only(tmp_path, monkeypatch, capsys):
    """Beside an installed model an export is written (and written again); an installed file
    that is not an export is not overwritten without --force."""
    share = tmp_path / "share" / "prgcn_ros"
    (share / "models").mkdir(parents=True)
    model = make_tiny_model(share / "models" / "tiny.safetensors")
    monkeypatch.setattr(paths, "source_root", lambda: None)
    monkeypatch.setattr(paths, "share_dir", lambda: share)
    for _ in range(2):
        assert export_cli.main(["--model", str(model), "--format", "onnx"]) == 0
    assert model.with_suffix(".onnx").is_file()
    config = share / "recognizer.yaml"
    config.write_text("a: 1\n")
    assert export_cli.main(["--model", str(model), "--format", "torchscript",
                            "--output", str(config)]) == 2
    assert "installed file" in capsys.readouterr().err and config.read_text() == "a: 1\n"
