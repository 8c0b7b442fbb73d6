"""Register the editable prgcn_ros in the venv's ament index, as a colcon install would.

An editable install (`pip install -e .`) installs no data files, so `FindPackageShare`,
`get_package_share_directory('prgcn_ros')` and launch_ros's executable lookup would not find
the package. This writes what `colcon build` installs, into the venv's prefix:

    share/ament_index/resource_index/packages/prgcn_ros   the marker
    share/prgcn_ros/{package.xml,launch,config,models,rviz}   links into the checkout
    lib/prgcn_ros/prgcn-recognizer, prgcn-player            links to the console scripts

Links, not copies: edits to the YAML or the launch file apply at once. ament_index finds
prefixes through AMENT_PREFIX_PATH only: `bin/activate` gets a line that puts the venv there.
Idempotent.

    python tools/register_ament.py .venv
"""
from __future__ import annotations

import sys
from pathlib import Path

PACKAGE = "prgcn_ros"
REPO = Path(__file__).resolve().parent.parent
SHARED = ("package.xml", "launch", "config", "models", "rviz")
EXECUTABLES = ("prgcn-recognizer", "prgcn-player")


def _link(link: Path, target: Path) -> None:
    if link.is_symlink() or link.is_file():
        if link.is_symlink() and link.readlink() == target:
            return
        link.unlink()
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)


def register(prefix: Path) -> list[Path]:
    """Write the marker and the links under `prefix`; returns what was written."""
    prefix = prefix.resolve()
    marker = prefix / "share" / "ament_index" / "resource_index" / "packages" / PACKAGE
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("")
    written = [marker]
    share = prefix / "share" / PACKAGE
    for name in SHARED:
        _link(share / name, REPO / name)
        written.append(share / name)
    for name in EXECUTABLES:
        script = prefix / "bin" / name
        if not script.exists():
            raise FileNotFoundError(f"{script}: install the package first (pip install -e .)")
        _link(prefix / "lib" / PACKAGE / name, script)
        written.append(prefix / "lib" / PACKAGE / name)
    return written


ACTIVATE_LINE = ('export AMENT_PREFIX_PATH="$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"'
                 "  # prgcn_ros: tools/register_ament.py\n")


def add_to_activate(prefix: Path) -> None:
    """`source .venv/bin/activate` then puts the venv in the ament index's search path."""
    activate = prefix / "bin" / "activate"
    if activate.is_file() and ACTIVATE_LINE not in activate.read_text():
        with activate.open("a") as out:
            out.write(ACTIVATE_LINE)


def main(argv: list[str]) -> int:
    prefix = Path(argv[1] if len(argv) > 1 else sys.prefix)
    written = register(prefix)
    add_to_activate(prefix.resolve())
    print(f"register_ament: {PACKAGE} registered in {prefix.resolve()} "
          f"({len(written)} entries)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
