"""A robot's colcon workspace, built here with colcon from PyPI and the kilted wheels of
requirements.txt standing in for /opt/ros/<distro>: a copy of the repository in src/, the one
documented extra step (a link that shows colcon and rosdep the nested prgcn_msgs), a plain
`colcon build` that builds both packages, and the installed prgcn-recognizer, started from the
workspace's setup (not the editable install), answering a SkeletonArray on /action."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from rclpy.node import Node
from rosutil import REPO, skeleton_array, spin_until, standing, wait_for_subscribers

from prgcn_msgs.msg import ActionArray, SkeletonArray

pytestmark = [pytest.mark.slow, pytest.mark.ros]
VENV = Path(sys.prefix)
# The README's extra step, run from the workspace root.
LINK_STEP = ["ln", "-s", "prgcn_ros/prgcn_msgs", "src/prgcn_msgs"]


def _copy_repository(dst: Path) -> None:
    """The files a clone has (tracked, plus new ones not ignored): no venv, no build output."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO,
                            capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip(f"not a git checkout, cannot tell source from build output: {listed.stderr}")
    for name in filter(None, listed.stdout.split("\0")):
        src = REPO / name
        if src.is_file():
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / name)


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
def workspace(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    ws = tmp_path_factory.mktemp("ros2_ws")
    _copy_repository(ws / "src" / "prgcn_ros")
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
    return ws, env


def test_both_packages_build_and_resolve_from_the_install(workspace):
    ws, env = workspace
    found = _in_workspace(ws, (
        "python -c 'import prgcn_ros, prgcn_msgs.msg; "
        "from ament_index_python.packages import get_package_share_directory as share; "
        "print(prgcn_ros.__file__); print(prgcn_msgs.msg.__file__); "
        "print(share(\"prgcn_ros\")); print(share(\"prgcn_msgs\"))'"), env)
    assert found.returncode == 0, found.stderr
    install = str(ws / "install")
    paths = found.stdout.split()
    assert len(paths) == 4 and all(p.startswith(install) for p in paths), paths
    share = Path(paths[2])
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
