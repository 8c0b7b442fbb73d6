"""Where the package's shared files and the skeleton data live (checkout or install)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

PACKAGE = "prgcn_ros"
DATA_ENV = "PRGCN_DATA"
_SOURCE_ROOT = Path(__file__).resolve().parent.parent


def source_root() -> Path | None:
    """The repository root when running from a source checkout (or an editable install)."""
    return _SOURCE_ROOT if (_SOURCE_ROOT / "package.xml").is_file() else None


def share_dir() -> Path:
    """share/prgcn_ros: the source checkout, else the installed package's share directory."""
    return source_root() or installed_share(PACKAGE)


def installed_share(package: str) -> Path:
    """share/<package> of an installed ROS package: found by the ament index
    (``AMENT_PREFIX_PATH``), else under this Python's prefix (a pip install)."""
    try:
        from ament_index_python.packages import get_package_share_directory
        return Path(get_package_share_directory(package))
    except (ImportError, LookupError, OSError, ValueError):   # OSError: no index at all
        return Path(sys.prefix) / "share" / package


def share_file(*parts: str) -> Path:
    """A file under share/prgcn_ros, e.g. share_file("config", "recognizer.yaml")."""
    return share_dir().joinpath(*parts)


def data_dir() -> Path:
    """The real skeleton data: $PRGCN_DATA, else ../shared/data next to the source checkout."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    root = source_root() or Path.cwd()
    return (root.parent / "shared" / "data").resolve()


def missing_data_message(what: Path, advice: str | None = None) -> str:
    """One message that says where the data was looked for (the absolute path, and the first
    folder on the way that is not there) and how to point at it (``advice``; by default
    ``$PRGCN_DATA``'s)."""
    what = Path(what).expanduser().absolute()
    gap = next((p for p in (*reversed(what.parents), what) if not p.exists()), what)
    where = f"{what}" + (f" ({gap} does not exist)" if gap != what else "")
    if advice is None:
        advice = (f"Put the data there or set {DATA_ENV}=/path/to/data (the folder holding "
                  f"msr_action3d/, ntu_samples/, kinetics_skeleton/, nw_ucla/, utd_mhad/, "
                  f"sbu_interaction/).")
    return f"skeleton data not found: looked for {where}. {advice}"
