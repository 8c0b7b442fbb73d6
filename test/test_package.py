"""Packaging: package.xml files are valid format 3 and declare what the code imports; lint."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from catkin_pkg.package import parse_package

REPO = Path(__file__).resolve().parent.parent

# Python import name -> the package.xml dependency key that provides it.
IMPORT_TO_DEPENDENCY = {
    "rclpy": "rclpy", "builtin_interfaces": "builtin_interfaces", "std_msgs": "std_msgs",
    "geometry_msgs": "geometry_msgs", "sensor_msgs": "sensor_msgs",
    "visualization_msgs": "visualization_msgs", "diagnostic_msgs": "diagnostic_msgs",
    "rcl_interfaces": "rcl_interfaces",
    "prgcn_msgs": "prgcn_msgs", "launch": "launch", "launch_ros": "launch_ros",
    "ament_index_python": "ament_index_python", "numpy": "python3-numpy",
    "scipy": "python3-scipy", "yaml": "python3-yaml", "matplotlib": "python3-matplotlib",
    "tqdm": "python3-tqdm", "safetensors": "python3-safetensors", "psutil": "python3-psutil",
    "torch": "python3-torch", "onnx": "python3-onnx", "onnxruntime": "python3-onnxruntime",
    "onnxscript": "python3-onnxscript",
}


def runtime_imports() -> dict[str, set[str]]:
    """Top-level modules imported by the installed code (package and launch files), by file."""
    found: dict[str, set[str]] = {}
    files = [*(REPO / "prgcn_ros").rglob("*.py"), *(REPO / "launch").glob("*.py")]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "prgcn_ros":
                    found.setdefault(top, set()).add(str(path.relative_to(REPO)))
    return found


def dependency_names(package) -> set[str]:
    deps = (package.build_depends + package.exec_depends + package.build_export_depends
            + package.buildtool_depends + package.test_depends)
    return {dep.name for dep in deps}


@pytest.mark.parametrize("package_dir", [".", "prgcn_msgs"])
def test_package_xml_is_format_3(package_dir):
    package = parse_package(REPO / package_dir)
    package.validate()
    assert package.package_format == 3
    assert package.name == {"." : "prgcn_ros", "prgcn_msgs": "prgcn_msgs"}[package_dir]


def test_message_package_declares_its_generators_and_dependencies():
    package = parse_package(REPO / "prgcn_msgs")
    names = dependency_names(package)
    assert {"rosidl_default_generators", "std_msgs", "geometry_msgs",
            "builtin_interfaces", "rosidl_default_runtime"} <= names
    assert "rosidl_interface_packages" in [group.name for group in package.member_of_groups]


def test_package_xml_names_every_runtime_import():
    declared = dependency_names(parse_package(REPO))
    imports = runtime_imports()
    unknown = {name: files for name, files in imports.items() if name not in IMPORT_TO_DEPENDENCY}
    assert not unknown, f"imports with no known package.xml key (add them to the map): {unknown}"
    missing = {IMPORT_TO_DEPENDENCY[name]: sorted(files) for name, files in imports.items()
               if IMPORT_TO_DEPENDENCY[name] not in declared}
    assert not missing, f"package.xml does not declare: {missing}"


def test_setup_py_version_matches_package_xml():
    version = parse_package(REPO).version
    assert f'version="{version}"' in (REPO / "setup.py").read_text()


def test_ruff_lint_is_clean():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "prgcn_ros", "test", "bench",
                             "tools", "launch"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
