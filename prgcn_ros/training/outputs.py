"""Where training and evaluation write, so that they never overwrite what the package ships.

A run writes under its run directory (``output.dir``) by default. A destination that is a
file tracked by git (a shipped model, a figure under ``docs/``), a shipped model file, or a file
in the installed share directory is *protected*: without ``--force`` the run writes the same
file name under its run directory instead and says so.
"""
from __future__ import annotations

import copy
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from prgcn_ros import paths

# what prgcn-export writes: the graph, its external weights, and the metadata beside them
EXPORT_SUFFIXES = (".onnx", ".onnx.data", ".onnx.json", ".pt", ".pt.json")


def _existing_parent(path: Path) -> Path:
    for parent in path.parents:
        if parent.is_dir():
            return parent
    return Path("/")


def is_git_tracked(path: str | Path) -> bool:
    """True when ``path`` is a file tracked by the git checkout that holds it."""
    path = Path(path).expanduser().absolute()
    try:
        done = subprocess.run(["git", "-C", str(_existing_parent(path)), "ls-files",
                               "--error-unmatch", "--", str(path)],
                              capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def _file_protection(file: Path, exempt_in_share: Callable[[Path], bool] | None = None
                     ) -> str | None:
    """Why writing exactly ``file`` would overwrite something the package ships, or None.
    ``exempt_in_share``: files in the installed share directory that may be written."""
    from prgcn_ros.model.io import SHIPPED_MODELS, metadata_path, shipped_model_file

    resolved = file.resolve()
    for shipped in {shipped_model_file(name) for name in SHIPPED_MODELS} - {None}:
        if resolved in (shipped.resolve(), metadata_path(shipped).resolve()):
            return f"{file} is a shipped model"
    share = paths.share_dir().resolve()
    if (paths.source_root() is None and share in resolved.parents
            and not (exempt_in_share and exempt_in_share(file))):
        return f"{file} is an installed file of the package"
    if file.exists() and is_git_tracked(file):
        return f"{file} is a file tracked by git"
    return None


def protection(path: str | Path) -> str | None:
    """Why writing ``path`` (or the metadata JSON beside it) would overwrite something the
    package ships, or None when it is free to write."""
    from prgcn_ros.model.io import metadata_path

    path = Path(path).expanduser().absolute()
    return next(filter(None, (_file_protection(file)
                              for file in (path, metadata_path(path)))), None)


def export_protection(*files: str | Path) -> str | None:
    """Why writing an export's ``files`` would overwrite something the package ships: a
    shipped model, a tracked file, or an installed file that is not itself an export (a new file
    or an earlier export in the share directory may be written)."""
    def export_or_new(file: Path) -> bool:
        return not file.exists() or file.name.endswith(EXPORT_SUFFIXES)

    return next(filter(None, (_file_protection(Path(file).expanduser().absolute(), export_or_new)
                              for file in files)), None)


def default_model_path(cfg: dict) -> Path:
    """``<output.dir>/<name>.safetensors``: where a run's model goes when nothing else is said."""
    return Path(cfg["output"]["dir"]) / f"{cfg['name']}.safetensors"


def safe_destination(path: str | Path | None, fallback_dir: str | Path, force: bool,
                     what: str, log: Callable[[str], None]) -> Path:
    """``path`` when it is free to write (or ``force``); else the same name under
    ``fallback_dir``, with one line saying so."""
    fallback_dir = Path(fallback_dir)
    if path is None:
        raise ValueError("no destination")
    path = Path(path).expanduser()
    reason = None if force else protection(path)
    if reason is None:
        return path
    moved = fallback_dir / path.name
    if protection(moved):
        raise ValueError(f"{what}: {reason}, and so is {moved}; pass --force or choose another "
                         f"path")
    log(f"{what}: {reason}; writing {moved} instead (--force overwrites it)")
    return moved


def resolve_outputs(cfg: dict, force: bool = False,
                    log: Callable[[str], None] = print, figure: bool = True) -> dict:
    """The config with ``output.model`` and (``figure``) ``eval.confusion_png`` made safe to
    write: null means the run directory; a protected file moves to the run directory unless
    ``force``. Training writes no figure: it says nothing about one (``figure`` False)."""
    cfg = copy.deepcopy(cfg)
    out_dir = Path(cfg["output"]["dir"]).expanduser()
    model = cfg["output"].get("model") or default_model_path(cfg)
    if Path(model).suffix == ".json":    # the metadata's own name: it would replace the weights
        raise ValueError(f"output.model {model}: the metadata goes beside the weights as "
                         f"<name>.json; give the weights another name, e.g. "
                         f"{Path(model).with_suffix('.safetensors')}")
    cfg["output"]["model"] = str(safe_destination(model, out_dir, force, "output.model", log))
    png = (cfg.get("eval") or {}).get("confusion_png")
    if png and figure:
        cfg["eval"]["confusion_png"] = str(safe_destination(png, out_dir, force,
                                                            "eval.confusion_png", log))
    return cfg


def check_writable(*files: str | Path) -> None:
    """Make each file's folder now, so a path that cannot be written fails before a run of
    hours rather than after it (OSError naming the folder)."""
    for file in files:
        folder = Path(file).expanduser().parent
        blocking = next((p for p in (folder, *folder.parents) if p.exists()), None)
        if blocking is not None and not blocking.is_dir():
            raise OSError(f"cannot write {file}: {blocking} is a file, not a folder")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise OSError(f"cannot create the folder {folder} for {file} ({error.strerror})"
                          ) from None
        if not os.access(folder, os.W_OK):
            raise OSError(f"cannot write to {folder} (for {file})")
