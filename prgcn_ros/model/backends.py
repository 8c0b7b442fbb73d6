"""The network call of the live path and of evaluation: torch eager or ONNX Runtime.

A backend takes the preprocessed batch (N, C, T, V, M) and returns (logits (N, classes),
refined input (N, C, T, V, M)); preprocessing and the inverse transform around it are shared.

The ONNX Runtime backend runs the graph the project's own :func:`export_model` makes from the
loaded model (dynamic N, T, M). Exporting takes seconds, so the graph is cached, keyed by the
model files' hash and :func:`export_version`: next to the model file (``.onnx_cache/``), or, where
that directory is read-only, in the user's cache directory. Before use the graph is checked
against the torch model on one window: a cached graph above :func:`check_bound` (max abs
difference of any output; wider on CUDA, where TF32 rounds) is exported again, a fresh one is
refused (:class:`BackendError`).

Nothing here imports rclpy; onnxruntime is imported only when that backend is chosen.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

BACKENDS = ("auto", "torch", "onnxruntime")
# Max abs difference of logits and refined poses allowed between the ONNX graph and torch on
# the start-up window: room for other kernels' float32 rounding, while a wrong graph is off by
# the outputs' own scale (0.1-10). Measured figures: docs/backends.md.
CHECK_BOUND = 1e-3
# On a GPU the graph is checked against the torch model run in float32 on the CPU, and
# onnxruntime's CUDA provider may round convolutions to TF32 (Ampere and later).
CHECK_BOUND_CUDA = 5e-2
CACHE_DIR_NAME = ".onnx_cache"
# Graphs a shared cache (the user's, or backend_cache_dir) keeps, the most recently used.
SHARED_CACHE_GRAPHS = 16
# Bump when the graph export_model makes for the same weights changes in a way the source hash
# below cannot see (e.g. an exporter option passed from elsewhere).
EXPORT_FORMAT = 1
# An exporter's temporary file or folder older than this was left by a killed export.
STALE_EXPORT_S = 3600.0

log = logging.getLogger(__name__)


class BackendError(RuntimeError):
    """A backend that cannot be used (not installed, failed its start-up check); one line."""


class ExportError(BackendError):
    """No ONNX graph of the model: the installed torch cannot export it, or no cache folder
    can hold it (backend auto then runs torch)."""


class Backend(Protocol):
    """The network call: a preprocessed batch (N, C, T, V, M) in, (logits (N, classes),
    refined input (N, C, T, V, M)) out."""

    name: str

    def __call__(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...


class TorchBackend:
    """The model's own forward pass, in inference mode on the model's device."""

    name = "torch"

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def __call__(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.inference_mode():
            out = self.model(batch)
        # ST-GCN gives logits only: its "refined" input is the input.
        return out if isinstance(out, tuple) else (out, batch)


def onnxruntime_available() -> bool:
    """onnxruntime, and onnx, which checks and writes the graphs it runs."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def device_problem(device: str) -> str | None:
    """Why ``device`` is not a device name (auto, cpu, cuda, cuda:N); None when it is one."""
    if device in ("auto", "cpu", "cuda") or re.fullmatch(r"cuda:\d+", device):
        return None
    return f"device must be auto, cpu, cuda or cuda:N, got {device!r}"


def resolve_device(device: str) -> torch.device:
    """``auto``: the GPU where CUDA is available, else the CPU; ``cpu``, ``cuda``, ``cuda:N``
    as given (ValueError for CUDA where there is none, or for anything else)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    problem = device_problem(device)
    if problem:
        raise ValueError(problem)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: CUDA is not available here (use device auto or cpu)")
    index = torch.device(device).index
    if index is not None and index >= torch.cuda.device_count():
        raise ValueError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA "
                         f"device(s), numbered from 0")
    return torch.device(device)


def resolve_backend(backend: str, device: torch.device | str) -> str:
    """``auto``: onnxruntime on a CPU when importable, torch on CUDA (and without onnxruntime)."""
    if backend not in BACKENDS:
        raise BackendError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend != "auto":
        return backend
    if torch.device(device).type == "cpu" and onnxruntime_available():
        return "onnxruntime"
    return "torch"


def export_version() -> str:
    """What the exported graph depends on besides the weights: the network's code and the
    export code (every module of prgcn_ros.model: a graph of an older network would be used
    after an upgrade), the skeleton layouts (a model names its layout; the graph holds its
    bones), this module's format number, torch's version (the exporter)."""
    digest = hashlib.sha256()
    model_dir = Path(__file__).parent
    for source in [*sorted(model_dir.glob("*.py")), model_dir.parent / "skeleton" / "layouts.py"]:
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    return f"{EXPORT_FORMAT}-{digest.hexdigest()[:12]}-torch{torch.__version__}"


def model_hash(model_path: str | Path) -> str:
    """sha256 of what the graph is made of: the weights and the architecture. The rest of the
    metadata (class names, temperature, window) is applied outside the graph, whose N, T and M
    are free: editing it needs no new export."""
    from prgcn_ros.model.io import read_metadata

    h = hashlib.sha256()
    with Path(model_path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    architecture = read_metadata(model_path)["architecture"]
    h.update(json.dumps(architecture, sort_keys=True).encode())
    return h.hexdigest()


def user_cache_dir() -> Path:
    """$XDG_CACHE_HOME/prgcn_ros/onnx, else ~/.cache/prgcn_ros/onnx."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "prgcn_ros" / "onnx"


def cache_file_name(model_path: str | Path, version: str | None = None) -> str:
    key = hashlib.sha256(f"{model_hash(model_path)}|{version or export_version()}".encode())
    return f"{Path(model_path).stem}.{key.hexdigest()[:20]}.onnx"


CACHED_NAME = re.compile(r"(.+)\.[0-9a-f]{20}\.onnx")   # what cache_file_name makes


def cache_candidates(model_path: str | Path, cache_dir: str | Path | None = None) -> list[Path]:
    """Directories to cache in, in order: ``cache_dir`` when given, else next to the model,
    then the user's cache directory (where this user has one: a service account may have no
    home)."""
    if cache_dir:
        return [Path(cache_dir).expanduser()]
    candidates = [Path(model_path).resolve().parent / CACHE_DIR_NAME]
    with contextlib.suppress(RuntimeError, KeyError):   # Path.home() without HOME or passwd
        candidates.append(user_cache_dir())
    return candidates


@dataclass
class CachedGraph:
    path: Path
    reused: bool          # False: exported at this start


def _write_in(directory: Path, name: str, write: Callable[[Path], Any]) -> Path:
    """:func:`~prgcn_ros.model.io.write_atomic` into ``directory``, made where missing: every
    folder made is 0755 like the graph in it, whatever the umask, so that a node of another
    user finds it too."""
    from prgcn_ros.model.io import write_atomic

    missing = [d for d in (directory, *directory.parents) if not d.exists()]
    directory.mkdir(parents=True, exist_ok=True)
    for made in missing:
        with contextlib.suppress(OSError):
            os.chmod(made, 0o755)
    return write_atomic(directory / name, write)


def _remove_stale(directory: Path, stem: str, keep: str) -> None:
    # Graphs of older weights or export code of the same model are never used again.
    for old in directory.glob("*.onnx"):
        named = CACHED_NAME.fullmatch(old.name)
        if old.name != keep and named and named.group(1) == stem:
            old.unlink(missing_ok=True)


def _remove_left_by_killed_exports(directory: Path) -> None:
    # Temporary files and export folders of an export that was killed (old enough that no
    # export running now owns them).
    before = time.time() - STALE_EXPORT_S
    for left in [*directory.glob(".*.onnx.*.tmp"), *directory.glob(".export.*")]:
        with contextlib.suppress(OSError):
            if left.stat().st_mtime < before:
                if left.is_dir():
                    shutil.rmtree(left, ignore_errors=True)
                else:
                    left.unlink()


def _keep_newest(directory: Path, count: int) -> None:
    # A shared cache may hold same-named models: its least recently used graphs go instead.
    # Only graphs this cache named (<stem>.<key>.onnx): a user's own .onnx files stay.
    graphs = [p for p in directory.glob("*.onnx") if CACHED_NAME.fullmatch(p.name)]
    graphs.sort(key=lambda p: p.stat().st_atime, reverse=True)
    for old in graphs[count:]:
        old.unlink(missing_ok=True)


def onnx_graph(model: nn.Module, model_path: str | Path, example: torch.Tensor,
               cache_dir: str | Path | None = None, version: str | None = None,
               loads: Callable[[Path], bool] | None = None,
               announce: Callable[[str], None] | None = None) -> CachedGraph:
    """The cached ONNX graph of ``model`` (loaded from ``model_path``), exported when missing.

    A cached file that ``loads`` rejects (unreadable, truncated) is exported again, not used.
    Directories that cannot be written are skipped for the next candidate. ``announce`` is
    told, before an export, what is about to take a while.
    """
    from prgcn_ros.model.export import export_model

    name = cache_file_name(model_path, version)
    candidates = cache_candidates(model_path, cache_dir)
    for directory in candidates:
        path = directory / name
        try:
            found = path.is_file()
        except OSError:        # a folder this user may not read: as if it held nothing
            found = False
        if found:
            # Used now (its access time, which a shared cache keeps the newest of), before the
            # check: another node trimming that cache meanwhile passes it over.
            with contextlib.suppress(OSError):
                os.utime(path, ns=(time.time_ns(), path.stat().st_mtime_ns))
            if loads is None or loads(path):
                return CachedGraph(path, reused=True)
            log.warning("cached ONNX graph %s cannot be loaded; exporting it again", path)
    problems = []
    if announce is not None:
        announce(f"exporting model {Path(model_path).name} to an ONNX graph for onnxruntime: "
                 f"once for this model and package version, tens of seconds on a small CPU")

    def export(tmp: Path) -> None:
        # The exporter may keep the weights in a side file named after its output; one
        # self-contained file is what can be renamed into place atomically.
        with tempfile.TemporaryDirectory(dir=tmp.parent, prefix=".export.") as work:
            try:
                graph = export_model(model, Path(work) / "graph.onnx", "onnx", example)
            except OSError:
                raise
            except Exception as error:   # an older torch's exporter, an operator it lacks
                raise ExportError(f"backend onnxruntime: torch {torch.__version__} cannot "
                                   f"export the model to ONNX ({type(error).__name__}: "
                                   f"{error})") from None
            import onnx
            onnx.save_model(onnx.load(str(graph)), str(tmp), save_as_external_data=False)

    for directory in candidates:
        try:
            path = _write_in(directory, name, export)
        except OSError as error:   # read-only or full: try the next place
            problems.append(f"{directory}: {error.strerror or error}")
            continue
        with contextlib.suppress(OSError):
            if directory == Path(model_path).resolve().parent / CACHE_DIR_NAME:
                _remove_stale(directory, Path(model_path).stem, name)
            else:
                _keep_newest(directory, SHARED_CACHE_GRAPHS)
            _remove_left_by_killed_exports(directory)
        return CachedGraph(path, reused=False)
    raise ExportError("backend onnxruntime: cannot write the ONNX graph anywhere ("
                      + "; ".join(problems) + "): give backend_cache_dir a folder this user "
                      "can write")


def session_options(threads: int) -> Any:
    """``threads`` intra-op threads, no spinning: a spinning worker held the core the next
    torch call (preprocessing) and the ingestion thread needed (2.2x slower on 2 cores)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, int(threads))
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.log_severity_level = 3
    return options


def providers_for(device: torch.device | str) -> list[str]:
    """CUDA when the model runs on one and onnxruntime has the provider (onnxruntime-gpu)."""
    import onnxruntime as ort

    if torch.device(device).type == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise BackendError("backend onnxruntime on CUDA needs onnxruntime-gpu (this "
                               "onnxruntime has no CUDAExecutionProvider); use backend torch")
        index = torch.device(device).index or 0
        return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxBackend:
    """An ONNX Runtime session on the exported graph; torch tensors in and out."""

    name = "onnxruntime"

    def __init__(self, path: str | Path, threads: int = 1,
                 device: torch.device | str = "cpu") -> None:
        import onnxruntime as ort

        self.path = Path(path)
        self.device = torch.device(device)
        self.session = ort.InferenceSession(str(self.path), session_options(threads),
                                            providers=providers_for(self.device))
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]

    def __call__(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = np.ascontiguousarray(batch.detach().to("cpu", torch.float32).numpy())
        outs = self.session.run(self.output_names, {self.input_name: x})
        logits = torch.from_numpy(outs[0]).to(batch.device)
        refined = torch.from_numpy(outs[1]).to(batch.device) if len(outs) > 1 else batch
        return logits, refined


def check_window(channels: int, length: int, joints: int, persons: int = 1,
                 people: int = 2) -> torch.Tensor:
    """The start-up check's input: a fixed pseudo-random window of the model's shape (values
    of a preprocessed skeleton's scale; the same every start). What the node feeds besides
    full windows is in it too: the last sample's last quarter of frames is padding (zeros)
    and, with two or more person slots, its second slot is empty (a lone person)."""
    g = torch.Generator().manual_seed(15)
    window = 0.5 * torch.randn(people, channels, length, joints, persons, generator=g)
    if people >= 2:
        window[-1, :, length - length // 4:] = 0
        window[-1, ..., 1:] = 0
    return window


def max_difference(reference: nn.Module, backend: Backend, window: torch.Tensor) -> float:
    """Max abs difference over every output of ``backend`` on ``window`` and the torch model
    ``reference`` on the same window on the reference's device."""
    expected = TorchBackend(reference)(window.to(next(reference.parameters()).device))
    actual = backend(window)
    return max(float((e.float().cpu() - a.float().cpu()).abs().max())
               for e, a in zip(expected, actual))


def check_bound(device: torch.device | str) -> float:
    """The start-up check's bound on ``device``: float32 kernels on a CPU, TF32 on CUDA."""
    return CHECK_BOUND_CUDA if torch.device(device).type == "cuda" else CHECK_BOUND


def _loads(path: Path) -> bool:
    import onnx

    try:
        onnx.checker.check_model(str(path))
    except Exception:  # onnx raises several types for damaged files
        return False
    return True


@dataclass
class BackendInfo:
    """What start-up did, for the log line."""

    name: str
    graph: Path | None = None
    reused: bool = False
    max_diff: float | None = None
    fallback: str | None = None    # why backend auto runs torch instead of onnxruntime


def make_backend(kind: str, model: nn.Module, model_path: str | Path | None,
                 window: torch.Tensor, threads: int = 1,
                 device: torch.device | str = "cpu", cache_dir: str | Path | None = None,
                 version: str | None = None, bound: float | None = None,
                 announce: Callable[[str], None] | None = None
                 ) -> tuple[Backend, BackendInfo]:
    """The backend ``kind`` (torch or onnxruntime; resolve ``auto`` first) for ``model``.

    onnxruntime: the cached graph (exported when missing or damaged), checked on ``window``
    (N, C, T, V, M) against the torch model; BackendError when the difference is above
    ``bound`` (default :func:`check_bound` of ``device``) or onnxruntime cannot be used.
    ``announce`` is told before an export (see :func:`onnx_graph`).
    """
    if bound is None:
        bound = check_bound(device)
    if kind == "torch":
        return TorchBackend(model), BackendInfo("torch")
    if kind != "onnxruntime":
        raise BackendError(f"unknown backend {kind!r}")
    if not onnxruntime_available():
        raise BackendError("backend onnxruntime: the onnxruntime and onnx packages are not "
                           "both installed (pip install onnxruntime onnx, or use backend torch)")
    if model_path is None:
        raise BackendError("backend onnxruntime needs the model file (the graph cache's key)")
    providers_for(device)    # onnxruntime-gpu missing: said before a needless export
    # Export on the CPU: the graph is device-independent and the CPU trace is deterministic.
    cpu_model = model
    if next(model.parameters()).device.type != "cpu":
        import copy
        cpu_model = copy.deepcopy(model).to("cpu")
    graph = onnx_graph(cpu_model.eval(), model_path, window.to("cpu"), cache_dir, version,
                       loads=_loads, announce=announce)
    while True:
        try:
            backend, diff = _checked_session(graph.path, cpu_model, window, threads, device)
        except BackendError as error:
            if not graph.reused:
                raise
            backend, diff, why = None, float("nan"), str(error)
        else:
            why = f"it differs from the torch model by {diff:.3g}"
        if not graph.reused or diff <= bound:
            break
        # A graph cached by other code (a copied cache, a change the key cannot see): removed
        # and looked for again (the next cache may hold one of the same name, as bad), until
        # one passes or this model's own export replaces them, rather than stopping the start.
        log.warning("cached ONNX graph %s: %s; exporting it again", graph.path, why)
        try:
            graph.path.unlink(missing_ok=True)
        except OSError as error:
            raise BackendError(f"backend onnxruntime: the cached ONNX graph {graph.path} fails "
                               f"its start-up check and cannot be replaced "
                               f"({error.strerror or error}): delete it, or give "
                               f"backend_cache_dir a folder this user can write") from None
        graph = onnx_graph(cpu_model.eval(), model_path, window.to("cpu"), cache_dir, version,
                           loads=_loads, announce=announce)
    info = BackendInfo("onnxruntime", graph.path, graph.reused, diff)
    if not diff <= bound:   # NaN fails too
        raise BackendError(f"backend onnxruntime: the ONNX graph {graph.path} differs from the "
                           f"torch model by {diff:.3g} on the start-up window (bound "
                           f"{bound:g}); use backend torch")
    return backend, info


def _checked_session(path: Path, model: nn.Module, window: torch.Tensor, threads: int,
                     device: torch.device | str) -> tuple[OnnxBackend, float]:
    """A session on the graph at ``path`` and its max difference from ``model`` (on the CPU:
    float32, whatever the session's device rounds to) on ``window``; BackendError when
    onnxruntime cannot load or run it."""
    try:
        backend = OnnxBackend(path, threads, device)
        diff = max_difference(model, backend, window.to(device))
    except BackendError:
        raise
    except Exception as error:  # a file onnx accepts but onnxruntime cannot load or run
        raise BackendError(f"backend onnxruntime: {path} cannot be run "
                           f"({' '.join(str(error).split())[:300]})") from None
    return backend, diff
