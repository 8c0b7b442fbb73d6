"""Point the ROS 2 wheels' exported CMake files at this venv's Python and numpy headers.

Some `*Export.cmake` files in the wheels name the include directories of the machine the wheels
were built on; rosidl's Python generator then fails with "non-existent path". Idempotent.
"""
from __future__ import annotations

import sys
import sysconfig
from pathlib import Path

import numpy

BUILD_PYTHON = "/opt/python/cp311-cp311"


def main(venv: Path) -> int:
    replacements = {
        f"{BUILD_PYTHON}/lib/python3.11/site-packages/numpy/_core/include": numpy.get_include(),
        f"{BUILD_PYTHON}/include/python3.11": sysconfig.get_paths()["include"],
    }
    fixed = 0
    for path in (venv / "share").rglob("*.cmake"):
        text = path.read_text()
        if BUILD_PYTHON not in text:
            continue
        new = text
        for old, real in replacements.items():
            new = new.replace(old, real)
        if new != text:
            path.write_text(new)
            fixed += 1
    print(f"fix_ros_wheel_paths: rewrote include paths in {fixed} CMake files")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else sys.prefix)))
