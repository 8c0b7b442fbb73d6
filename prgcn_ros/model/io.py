"""Model files: weights as safetensors, metadata (with the architecture) as JSON beside them.

Loading never unpickles: the network is rebuilt from the JSON "architecture" and the weights are
read with safetensors. Every problem raises ModelFileError with one line naming the file.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from prgcn_ros import paths
from prgcn_ros.model.build import build_model, model_arch
from prgcn_ros.model.graph import layout_name
from prgcn_ros.signals import stops_held
from prgcn_ros.skeleton.preprocess import window_setting

FORMAT = "prgcn_ros-model/1"
# The calibration temperatures a model file may carry (the fit searches 0.05-20).
TEMPERATURE_RANGE = (0.01, 100.0)
# Frames a model's window may span: 5.5 min at 30 fps, far past any trained window (48-300);
# beyond it the node would allocate the window for every person before saying anything.
MAX_WINDOW_FRAMES = 10_000

# Models the package ships, by name: models/prgcn_<name>.safetensors (+ .json).
SHIPPED_MODELS: tuple[str, ...] = ("msr_action3d", "nw_ucla", "utd_mhad", "sbu_interaction")


class ModelFileError(ValueError):
    """A model file (weights or metadata) that is missing, unreadable or does not fit."""


def shipped_model_file(name: str) -> Path | None:
    """The file of shipped model ``name`` (source checkout first, then the installed share
    directory), or None when it is not there."""
    relative = Path("models") / f"prgcn_{name}.safetensors"
    candidates = [paths.share_dir() / relative]
    root = paths.source_root()
    if root is not None:
        candidates.insert(0, root / relative)
    return next((c for c in candidates if c.is_file()), None)


def _shipped_listing() -> str:
    return ", ".join(f"{name}{'' if shipped_model_file(name) else ' (not installed)'}"
                     for name in SHIPPED_MODELS)


def is_model_name(spec: str | Path) -> bool:
    """True for a bare name (no folder, no suffix) such as ``nw_ucla``: a shipped model."""
    text = str(spec).strip()
    return bool(text) and "/" not in text and "\\" not in text and Path(text).suffix == ""


def resolve_model(spec: str | Path) -> Path:
    """The model file ``spec`` means: a shipped model's name (``msr_action3d``, ``nw_ucla``,
    ``utd_mhad``, ``sbu_interaction``) or a path (absolute; relative to the working
    directory, else to the package's share directory). ModelFileError, listing the shipped
    names, when neither exists."""
    text = str(spec).strip()
    try:
        return _resolve(text)
    except (OSError, RuntimeError) as error:   # a name too long, a home it cannot tell, ...
        raise ModelFileError(f"model {text!r}: {_one_line(error)}") from None


def _resolve(text: str) -> Path:
    if is_model_name(text):
        found = shipped_model_file(text)
        if found is not None:
            return found.resolve()
        if text in SHIPPED_MODELS:
            raise ModelFileError(f"model {text!r}: a shipped model that is missing here (looked "
                                 f"for models/prgcn_{text}.safetensors in "
                                 f"{paths.source_root() or paths.share_dir()}); shipped models: "
                                 f"{_shipped_listing()}")
        if not Path(text).exists():
            raise ModelFileError(f"model {text!r}: neither a shipped model name nor a file; "
                                 f"shipped models: {_shipped_listing()}")
    path = Path(text).expanduser()
    if path.is_absolute() or path.exists():
        if not path.exists():
            raise ModelFileError(f"model {path}: file is missing (give a model file or the "
                                 f"name of a shipped model: {_shipped_listing()})")
        if path.is_dir():
            raise ModelFileError(f"model {path}: a folder, not a model file (give its "
                                 f".safetensors file or the name of a shipped model: "
                                 f"{_shipped_listing()})")
        return path.resolve()
    shared = paths.share_file(*path.parts)
    if shared.exists():
        return shared
    raise ModelFileError(f"model {path}: file is missing (looked in {Path.cwd()} and "
                         f"{paths.share_dir()}; give a model file or the name of a shipped "
                         f"model: {_shipped_listing()})")


def write_atomic(path: str | Path, write: Callable[[Path], Any], mode: int = 0o644) -> Path:
    """``write(tmp)`` to a temporary file beside ``path``, then rename it into place: a reader
    never sees half a file, two writers at once each leave a whole one, and the temporary file
    goes on any failure. A full disk is an OSError (safetensors raises its own error type).
    The data reach the disk before the rename, and the rename before the return: a power cut
    leaves the old file or the new one, never an empty one under the name."""
    return write_atomic_together([(path, write)], mode)[0]


def write_atomic_together(files: Sequence[tuple[str | Path, Callable[[Path], Any]]],
                          mode: int = 0o644) -> list[Path]:
    """:func:`write_atomic` for files that belong together (weights and their metadata): all
    are written and synced first, then renamed into place one after the other with Ctrl-C and
    SIGTERM held off, so that a stop leaves the old set or the new one, not a mix."""
    staged: list[tuple[Path, Path]] = []
    path = Path(files[0][0])
    try:
        for name, write in files:
            path = Path(name)
            fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp",
                                            dir=path.parent)
            os.close(fd)
            tmp = Path(tmp_name)
            staged.append((tmp, path))
            write(tmp)
            os.chmod(tmp, mode)      # like any installed file: a node of another user reads it
            _sync(tmp)
        with stops_held():
            for tmp, path in staged:
                os.replace(tmp, path)
    except SafetensorError as error:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise OSError(f"cannot write {path}: {_one_line(error)}") from None
    except BaseException:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    for folder in dict.fromkeys(path.parent for _, path in staged):
        _sync(folder, directory=True)
    return [path for _, path in staged]


def _sync(path: Path, directory: bool = False) -> None:
    """fsync a file, or a folder (its entries: a rename). Some file systems cannot sync a
    folder; the rename has happened there all the same."""
    try:
        fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    except OSError:
        if directory:
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not directory:
            raise
    finally:
        os.close(fd)


def metadata_path(path: str | Path) -> Path:
    """The metadata JSON that belongs to a weights file."""
    return Path(path).with_suffix(".json")


def save_model(path: str | Path, model: nn.Module, metadata: dict[str, Any]) -> None:
    """Write ``path`` (safetensors weights) and ``path.with_suffix('.json')`` (metadata).

    The metadata gets the model's "architecture" (it overrides one the caller passes), a
    "format" tag and a token of this write, "written", kept in the weights' header too (a pair
    torn by an interrupted write is refused on load; weights another tool wrote carry none and
    are not checked); everything else is the caller's (class names, preprocessing, accuracy,
    ...). Each file is written under a temporary name and renamed into place.
    """
    path = Path(path)
    if metadata_path(path) == path:
        raise ValueError(f"cannot write a model to {path}: the metadata {metadata_path(path)} "
                         f"would replace the weights (name them .safetensors)")
    meta = dict(metadata)
    meta["architecture"] = model_arch(model)
    meta["format"] = FORMAT
    json.dumps(meta)                                    # fails before anything is written
    weights = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    meta["written"] = uuid.uuid4().hex
    text = json.dumps(meta, indent=2, sort_keys=True) + "\n"
    write_atomic_together([
        (path, lambda tmp: save_file(weights, str(tmp), metadata={
            "format": FORMAT, "written": meta["written"]})),
        (metadata_path(path), lambda tmp: tmp.write_text(text))])


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata of the model at ``path`` (the weights file), checked to have an architecture."""
    path = Path(path)
    meta_file = metadata_path(path)
    if not meta_file.is_file():
        raise ModelFileError(f"model {path}: metadata file {meta_file} is missing")
    try:
        meta = json.loads(meta_file.read_text())
    # ValueError: JSON's, and an integer of thousands of digits; RecursionError: nested deep.
    except (OSError, ValueError, RecursionError) as error:
        raise ModelFileError(f"model {path}: metadata {meta_file} is not valid JSON "
                             f"({_one_line(error)})") from None
    if not isinstance(meta, dict):
        raise ModelFileError(f"model {path}: metadata {meta_file} is not a JSON object")
    if not isinstance(meta.get("architecture"), dict):
        raise ModelFileError(f"model {path}: metadata {meta_file} has no \"architecture\" object")
    problem = _metadata_value_problem(meta)
    if problem:
        raise ModelFileError(f"model {path}: metadata {meta_file}: {problem}")
    return meta


def _metadata_value_problem(meta: dict[str, Any]) -> str | None:
    """What in the values every reader of a model file uses is wrong, or None."""
    if meta.get("format", FORMAT) != FORMAT:
        return (f"format {meta['format']!r} is not {FORMAT!r}, the one this prgcn_ros reads "
                f"(a file from a newer prgcn_ros? upgrade it)")
    try:
        length = window_setting(meta.get("window"))[1]
    except (ValueError, TypeError, OverflowError):
        return f"window {meta.get('window')!r} has no whole number of frames"
    if not 1 <= length <= MAX_WINDOW_FRAMES:
        return f"window length {length} is outside 1-{MAX_WINDOW_FRAMES} frames"
    calibration = meta.get("calibration")
    if calibration is not None and not isinstance(calibration, dict):
        return "calibration is not an object"
    temperature = (calibration or {}).get("temperature")
    if temperature is not None and not (
            isinstance(temperature, (int, float)) and not isinstance(temperature, bool)
            and math.isfinite(temperature) and temperature > 0):
        return f"calibration.temperature {temperature!r} is not a positive number"
    low, high = TEMPERATURE_RANGE
    if temperature is not None and not low <= temperature <= high:
        # Far outside what a fit gives: every answer 'unknown' (huge) or NaN scores (tiny).
        return (f"calibration.temperature {temperature!r} is outside {low:g}-{high:g} (a fitted "
                f"temperature lies within 0.05-20)")
    inference = meta.get("inference")
    if inference is not None and not isinstance(inference, dict):
        return "inference is not an object"
    persons = meta.get("max_persons")
    if persons is not None and (isinstance(persons, bool) or persons not in (1, 2)):
        return f"max_persons {persons!r} is not 1 or 2"
    return None


def load_model(path: str | Path, device: str | torch.device = "cpu",
               expected_layout: str | None = None,
               expected_channels: int | None = None,
               expected_by: str = "the node") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the network of ``path``, load its weights; returns (model in eval mode, metadata).
    ``expected_by`` names what expects the layout and channels, in the error."""
    path = Path(path)
    try:
        found = path.is_file()
    except OSError as error:
        raise ModelFileError(f"model {path}: {_one_line(error)}") from None
    if not found:
        raise ModelFileError(f"model {path}: "
                             + ("a folder, not a model file" if path.is_dir() else
                                "file is missing"))
    meta = read_metadata(path)
    arch = meta["architecture"]
    try:
        # On the meta device first: the sizes a file claims (millions of classes, thousands of
        # channels) are compared with its weights before any memory is taken for them.
        with torch.device("meta"):
            sized = build_model(arch)
    except (ValueError, KeyError, TypeError) as error:
        raise ModelFileError(f"model {path}: architecture cannot be built: "
                             f"{_one_line(error)}") from None
    layout = layout_name(arch["layout"])
    if expected_layout is not None and layout != expected_layout:
        raise ModelFileError(f"model {path} is for layout {layout!r}, {expected_by} is "
                             f"configured for {expected_layout!r}")
    channels = int(arch.get("in_channels", 3))
    if expected_channels is not None and channels != expected_channels:
        raise ModelFileError(f"model {path} takes {channels} input channels, {expected_by} "
                             f"gives {expected_channels}")
    weights = read_weights(path)
    _check_weights(path, sized, weights)
    written = read_header(path).get("written")
    if written is not None and written != meta.get("written"):
        raise ModelFileError(f"model {path}: the weights are not the ones its metadata "
                             f"{metadata_path(path)} was written with (a write was interrupted, "
                             f"or one file of the pair replaced); write both again")
    model = build_model(arch)
    model.load_state_dict(weights, strict=True)
    return model.to(device).eval(), meta


def read_header(path: str | Path, what: str = "model") -> dict[str, str]:
    """The string metadata in a safetensors file's header, tensors not read; ModelFileError,
    one line, for a corrupt or truncated file. ``what`` names the file in the message."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except Exception as error:  # safetensors raises several types for damaged files
        raise _unreadable(what, path, error) from None


def read_weights(path: str | Path, what: str = "model") -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file (never unpickled); ModelFileError, one line, for a
    corrupt or truncated one. ``what`` names the file in the message."""
    try:
        return load_file(str(path))
    except Exception as error:  # safetensors raises several types for damaged files
        raise _unreadable(what, path, error) from None


def _unreadable(what: str, path: str | Path, error: Exception) -> ModelFileError:
    return ModelFileError(f"{what} {path}: weights cannot be read, the file is corrupt or "
                          f"truncated ({_one_line(error)})")


# The floating types a model file's weights may have (torch's checks run on each).
FLOAT_TYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _check_weights(path: Path, model: nn.Module, weights: dict[str, torch.Tensor]) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    mismatched = [f"{key} {tuple(weights[key].shape)} != {tuple(expected[key].shape)}"
                  for key in sorted(set(expected) & set(weights))
                  if weights[key].shape != expected[key].shape]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing (e.g. {missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
    if mismatched:
        problems.append(f"{len(mismatched)} with the wrong shape (e.g. {mismatched[0]}; the "
                        f"file's first)")
    # Loading casts float16/64 to the network's float32 harmlessly; integers would be truncated,
    # and float8 has too few bits for a trained network's weights.
    kinds = [f"{key} {weights[key].dtype}" for key in sorted(set(expected) & set(weights))
             if weights[key].is_floating_point() != expected[key].is_floating_point()
             or (weights[key].is_floating_point() and weights[key].dtype not in FLOAT_TYPES)]
    if kinds:
        problems.append(f"{len(kinds)} of the wrong kind of number (e.g. {kinds[0]})")
    problems += weight_value_problems(weights)
    if problems:
        raise ModelFileError(f"model {path}: weights do not match the architecture: "
                             + "; ".join(problems))


def weight_value_problems(weights: dict[str, torch.Tensor]) -> list[str]:
    """What in the values of a model file's weights no trained network holds."""
    problems = []
    # A diverged training writes such values; the model would load and never give a label.
    not_finite = [key for key, value in weights.items()
                  if value.dtype in FLOAT_TYPES and not torch.isfinite(value).all()]
    if not_finite:
        problems.append(f"{len(not_finite)} holding NaN or infinity (e.g. {not_finite[0]})")
    negative = [key for key, value in weights.items()
                if key.endswith("running_var") and value.dtype in FLOAT_TYPES
                and (value < 0).any()]
    if negative:
        problems.append(f"{len(negative)} batch-norm variances below 0 (e.g. {negative[0]})")
    return problems


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())
