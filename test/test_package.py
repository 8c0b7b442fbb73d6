"""Packaging: package.xml files are valid format 3, declare what the code imports with rosdep
keys that exist, leave the rest to pip; Python 3.10 (Humble) is accepted; lint."""
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
    "tqdm": "python3-tqdm", "psutil": "python3-psutil",
    "tf2_ros": "tf2_ros_py",      # the Python module's package (tf2_ros is the C++ one)
    # No rosdep key on Humble or Jazzy: pip installs them on a robot (requirements-robot.txt).
    "torch": None, "safetensors": None, "onnxruntime": None, "rosbags": None,
    # The onnxruntime backend exports the model's graph at the first start.
    "onnx": None, "onnxscript": None,
}
# rosdep keys of package.xml that are not ROS packages: each is in rosdistro's
# rosdep/python.yaml for Ubuntu (jammy and noble; checked 2026-12-02). Keys that do not
# exist there make `rosdep install` abort for the whole workspace.
PYTHON_ROSDEP_KEYS = {"python3-numpy", "python3-scipy", "python3-yaml", "python3-matplotlib",
                      "python3-tqdm", "python3-psutil", "python3-pytest"}
# ROS packages released for Humble, Jazzy and Kilted (or built in this workspace).
ROS_PACKAGES = {"rclpy", "builtin_interfaces", "std_msgs", "geometry_msgs", "sensor_msgs",
                "visualization_msgs", "diagnostic_msgs", "launch", "launch_ros",
                "ament_index_python", "tf2_ros_py", "rcl_interfaces", "prgcn_msgs", "ament_cmake",
                "rosidl_default_generators", "rosidl_default_runtime",
                "rosidl_interface_packages"}


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
    unknown = {name: files for name, files in imports.items()
               if name not in IMPORT_TO_DEPENDENCY}
    assert not unknown, f"imports with no known package.xml key (add them to the map): {unknown}"
    missing = {IMPORT_TO_DEPENDENCY[name]: sorted(files) for name, files in imports.items()
               if IMPORT_TO_DEPENDENCY[name] and IMPORT_TO_DEPENDENCY[name] not in declared}
    assert not missing, f"package.xml does not declare: {missing}"


def test_package_xml_declares_nothing_the_code_does_not_use():
    """An unused key costs every robot a rosdep install; the launch file's rviz2 is optional."""
    declared = {dep.name for dep in parse_package(REPO).exec_depends}
    used = {IMPORT_TO_DEPENDENCY.get(name) for name in runtime_imports()}
    assert declared - used == set(), f"declared but never imported: {declared - used}"


@pytest.mark.parametrize("package_dir", [".", "prgcn_msgs"])
def test_every_rosdep_key_exists(package_dir):
    declared = dependency_names(parse_package(REPO / package_dir))
    unknown = declared - PYTHON_ROSDEP_KEYS - ROS_PACKAGES
    assert not unknown, f"{package_dir}/package.xml: no rosdep key on Humble/Jazzy: {unknown}"


def test_pip_only_imports_are_in_the_robot_requirements():
    text = (REPO / "requirements-robot.txt").read_text()
    listed = {line.split(">")[0].split("=")[0].strip() for line in text.splitlines()
              if line.strip() and not line.startswith("#")}
    runtime = {name for name in runtime_imports() if IMPORT_TO_DEPENDENCY.get(name, "") is None}
    assert runtime <= listed


def test_python_3_10_is_accepted_and_lint_checks_for_it(tmp_path):
    # Humble runs Python 3.10: the lint target makes ruff flag syntax newer than that.
    assert 'python_requires=">=3.10"' in (REPO / "setup.py").read_text()
    assert 'target-version = "py310"' in (REPO / "ruff.toml").read_text()
    bad = tmp_path / "py311_only.py"
    bad.write_text("try:\n    pass\nexcept* ValueError:\n    pass\n")
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--config",
                             str(REPO / "ruff.toml"), str(bad)], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode != 0 and "3.11" in result.stdout + result.stderr


def test_setup_py_version_matches_package_xml():
    version = parse_package(REPO).version
    assert f'version="{version}"' in (REPO / "setup.py").read_text()


def test_ruff_lint_is_clean():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "prgcn_ros", "test", "bench",
                             "tools", "launch"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
