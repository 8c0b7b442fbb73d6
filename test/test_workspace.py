"""A robot's colcon workspace, built here with colcon from PyPI and the kilted wheels of
requirements.txt standing in for /opt/ros/<distro>: a copy of the repository in src/, the one
documented extra step (a link that shows colcon and rosdep the nested prgcn_msgs), a plain
`colcon build` that builds both packages, and the installed prgcn-recognizer, started from the
workspace's setup (not the editable install), answering a SkeletonArray on /action.

The workspace lives in build/test_workspace and is built again on every run, by the same plain
`colcon build`: prgcn_ros from nothing each time (its sources are copied afresh and its build
and install removed), prgcn_msgs from nothing whenever its files, the venv standing in for the
ROS install, or the toolchain changed since the last build there, and otherwise on top of that
build, where colcon and CMake find nothing to redo (the build: 27 s -> 4 s here)."""
from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from rclpy.node import Node
from rosutil import REPO, skeleton_array, spin_until, standing, wait_for_subscribers

from prgcn_msgs.msg import ActionArray, SkeletonArray

pytestmark = [pytest.mark.slow, pytest.mark.ros]
VENV = Path(sys.prefix)
WORKSPACE = REPO / "build" / "test_workspace"
# The README's extra step, run from the workspace root.
LINK_STEP = ["ln", "-s", "prgcn_ros/prgcn_msgs", "src/prgcn_msgs"]


def _repository_files() -> list[str]:
    """The files a clone has (tracked, plus new ones not ignored): no venv, no build output."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO,
                            capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip(f"not a git checkout, cannot tell source from build output: {listed.stderr}")
    return [name for name in filter(None, listed.stdout.split("\0")) if (REPO / name).is_file()]


def _copy_repository(names: list[str], dst: Path) -> None:
    for name in names:
        (dst / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, dst / name)     # with its time stamp: make sees it unchanged


def _msgs_inputs(names: list[str]) -> str:
    """What a previous build of prgcn_msgs in the workspace was made from, besides its own
    build files: its sources, the venv's ROS packages and build tools, the compilers."""
    digest = hashlib.sha256(f"{sys.version}|{VENV}".encode())
    for name in sorted(n for n in names if n.startswith("prgcn_msgs/")):
        digest.update(name.encode() + b"\0" + (REPO / name).read_bytes())
    tools = [VENV / ".stamps" / "requirements", VENV / ".stamps" / "msgs",
             *(shutil.which(t) for t in ("cmake", "make", "cc", "c++", "gcc", "g++"))]
    for tool in filter(None, tools):
        path = Path(tool).resolve()
        if path.exists():
            stat = path.stat()
            digest.update(f"|{path}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def _clear(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


@pytest.fixture(scope="module")
def workspace_dir() -> Iterator[tuple[Path, str]]:
    """build/test_workspace, locked for this run, its sources copied afresh: everything of an
    earlier build removed but prgcn_msgs's build and install, and those too unless they were
    built from what is here now."""
    WORKSPACE.mkdir(parents=True, exist_ok=True)
    with open(WORKSPACE.parent / "test_workspace.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)      # another test run in this checkout waits here
        names = _repository_files()
        inputs = _msgs_inputs(names)
        built_from = WORKSPACE / "msgs_built_from"
        keep = {"build", "install"} if (built_from.is_file() and
                                         built_from.read_text() == inputs) else set()
        for entry in WORKSPACE.iterdir():
            if entry.name not in keep:
                _clear(entry)
        for kind in keep:       # colcon's COLCON_IGNORE too: no packages found in there
            for entry in (WORKSPACE / kind).iterdir():
                if entry.name not in ("prgcn_msgs", "COLCON_IGNORE"):
                    _clear(entry)
        _copy_repository(names, WORKSPACE / "src" / "prgcn_ros")
        yield WORKSPACE, inputs


def _environment() -> dict[str, str]:
    """What sourcing /opt/ros/<distro>/setup.bash gives a robot's shell, with the venv as the
    ROS install; the wheels' interpreter bootstrap runs again in every child."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("_ROS_WHEELS")}
    env.update(PATH=f"{VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}", VIRTUAL_ENV=str(VENV),
               AMENT_PREFIX_PATH=str(VENV), CMAKE_PREFIX_PATH=str(VENV),
               PYTHONUNBUFFERED="1")
    env.pop("PYTHONPATH", None)
    return env


def _run(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 600
         ) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def _in_workspace(ws: Path, command: str, env: dict[str, str], timeout: float = 120
                  ) -> subprocess.CompletedProcess:
    """`command` in a bash that sourced the workspace, as a user's terminal would."""
    return _run(["bash", "-c", f"source install/setup.bash && {command}"], ws, env, timeout)


@pytest.fixture(scope="module")
def workspace(workspace_dir) -> tuple[Path, dict[str, str]]:
    ws, inputs = workspace_dir
    env = _environment()
    colcon = [str(VENV / "bin" / "colcon")]
    # Why the step exists: colcon stops descending at a package, so it never sees prgcn_msgs.
    before = _run([*colcon, "list", "--names-only"], ws, env, 120)
    assert before.returncode == 0, before.stderr
    assert before.stdout.split() == ["prgcn_ros"]
    subprocess.run(LINK_STEP, cwd=ws, check=True)
    listed = _run([*colcon, "list", "--names-only"], ws, env, 120)
    assert sorted(listed.stdout.split()) == ["prgcn_msgs", "prgcn_ros"], listed.stderr
    build = _run([*colcon, "build"], ws, env)
    log = ws / "colcon_build.log"
    log.write_text(build.stdout + build.stderr)
    assert build.returncode == 0, (build.stdout + build.stderr)[-4000:]
    for package in ("prgcn_msgs", "prgcn_ros"):
        assert f"Finished <<< {package}" in build.stdout, build.stdout[-2000:]
        assert (ws / "install" / package).is_dir()
    (ws / "msgs_built_from").write_text(inputs)
    return ws, env


def test_both_packages_build_and_resolve_from_the_install(workspace):
    ws, env = workspace
    found = _in_workspace(ws, (
        "python -c 'import prgcn_ros, prgcn_msgs.msg; "
        "from ament_index_python.packages import get_package_share_directory as share; "
        "from prgcn_ros.paths import share_dir; from prgcn_ros.skeleton.bags import msg_dir; "
        "from prgcn_ros.nodes.player import installed_type_hash; "
        "print(prgcn_ros.__file__); print(prgcn_msgs.msg.__file__); "
        "print(share(\"prgcn_ros\")); print(share(\"prgcn_msgs\")); "
        "print(share_dir()); print(msg_dir()); "
        "print(installed_type_hash(\"prgcn_msgs/msg/SkeletonArray\"))'"), env)
    assert found.returncode == 0, found.stderr
    install = str(ws / "install")
    *paths, type_hash = found.stdout.split()
    assert len(paths) == 6 and all(p.startswith(install) for p in paths), paths
    share = Path(paths[2])
    # The package's own lookups find the same install (its models, message definitions and
    # type hashes for bags), not a source checkout or this Python's prefix.
    assert paths[4] == paths[2] and paths[5] == str(Path(paths[3]) / "msg"), paths
    assert type_hash.startswith("RIHS01_"), type_hash
    for name in ("launch/recognizer.launch.py", "config/recognizer.yaml", "rviz/prgcn.rviz",
                 "models/prgcn_msr_action3d.safetensors", "package.xml"):
        assert (share / name).is_file(), name
    assert (ws / "install" / "prgcn_ros" / "lib" / "prgcn_ros" / "prgcn-recognizer").is_file()


def test_installed_recognizer_answers_on_action(workspace, ros_context, tmp_path, shipped_graph):
    ws, env = workspace
    executable = ws / "install" / "prgcn_ros" / "lib" / "prgcn_ros" / "prgcn-recognizer"
    share = ws / "install" / "prgcn_ros" / "share" / "prgcn_ros"
    params = share / "config" / "recognizer.yaml"
    # backend auto is onnxruntime here: its graph as an earlier start would have left it (the
    # export and its cache are test_backends' and test_nodes_backend's).
    shipped_graph(share / "models" / "prgcn_msr_action3d.safetensors")
    # The shipped model by its relative default: found in the install's share directory.
    command = (f"exec {executable} --ros-args --params-file {params} -p device:=cpu "
               "-p skeleton_topic:=/ws_test/skeletons -p action_topic:=/ws_test/action "
               "-p smoothing:=1")
    log = open(tmp_path / "recognizer.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(["bash", "-c", f"source install/setup.bash && {command}"], cwd=ws,
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    node = Node("workspace_probe")
    actions: list[ActionArray] = []
    node.create_subscription(ActionArray, "/ws_test/action", actions.append, 10)
    publisher = node.create_publisher(SkeletonArray, "/ws_test/skeletons", 10)
    try:
        wait_for_subscribers(node, publisher, timeout_s=180.0)
        person = standing(3)

        def send_one_window() -> bool:
            for t in range(12):
                stamp = node.get_clock().now().to_msg()
                publisher.publish(skeleton_array(stamp, {7: person + 0.01 * t}))
                spin_until(node, lambda: False, 1 / 30)
            return spin_until(node, lambda: bool(actions), 30.0)

        assert send_one_window() or send_one_window(), (tmp_path / "recognizer.log").read_text()
        assert actions[0].actions[0].person_id >= 0 and actions[0].actions[0].label
    finally:
        node.destroy_node()
        proc.send_signal(2)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    text = (tmp_path / "recognizer.log").read_text()
    assert "prgcn_msr_action3d.safetensors" in text, text
