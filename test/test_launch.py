"""launch/recognizer.launch.py is a real launch_ros file whose every name exists: the package,
the executable setup.py installs, the YAML it loads, the parameters it sets. With launch_ros
importable (a ROS 2 install) the launch description is also built."""
from __future__ import annotations

import ast
import importlib
import importlib.metadata
import importlib.util
import re

import pytest
import yaml
from rosutil import REPO

from prgcn_ros.live_data import NodeParams, RecognizerParams, parameter_names

LAUNCH_FILE = REPO / "launch" / "recognizer.launch.py"


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)
            and getattr(n.func, "id", getattr(n.func, "attr", None)) == name]


def _constants(tree: ast.AST) -> dict[str, object]:
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except (ValueError, AttributeError):
                pass
    return out


def _value(node: ast.AST, constants: dict[str, object]):
    if isinstance(node, ast.Name):
        return constants[node.id]
    return ast.literal_eval(node)


@pytest.fixture(scope="module")
def launch_tree():
    return ast.parse(LAUNCH_FILE.read_text(), filename=str(LAUNCH_FILE))


def console_scripts() -> dict[str, str]:
    text = (REPO / "setup.py").read_text()
    return dict(re.findall(r'"([\w-]+) = ([\w.]+:\w+)"', text))


def test_launch_file_starts_the_installed_recognizer(launch_tree):
    constants = _constants(launch_tree)
    nodes = [{k.arg: k.value for k in n.keywords} for n in _calls(launch_tree, "Node")]
    packages = [_value(kwargs["package"], constants) for kwargs in nodes]
    assert sorted(packages) == ["prgcn_ros", "rviz2"]      # RViz only with rviz:=true
    kwargs = nodes[packages.index("prgcn_ros")]
    executable = _value(kwargs["executable"], constants)
    scripts = console_scripts()
    assert executable in scripts, f"{executable} is not a console script of setup.py"
    module, func = scripts[executable].split(":")
    assert callable(getattr(importlib.import_module(module), func))
    assert _value(kwargs["name"], constants) == "prgcn_recognizer"


def test_launch_file_loads_the_shipped_yaml_and_sets_known_parameters(launch_tree):
    constants = _constants(launch_tree)
    params_file = REPO / constants["PARAMS_FILE"]
    assert params_file.is_file()
    assert (REPO / constants["RVIZ_FILE"]).is_file()
    doc = yaml.safe_load(params_file.read_text())
    # The node name the launch file gives, or the wildcard key that matches any name.
    assert "/**" in doc           # applies to the node under any name and namespace
    # The recognizer's parameters=[params_file, {name: value}]: every name one the node has.
    recognizer = next(n for n in _calls(launch_tree, "Node")
                      if any(k.arg == "package" and _value(k.value, constants) == "prgcn_ros"
                             for k in n.keywords))
    parameters = next(k.value for k in recognizer.keywords if k.arg == "parameters")
    names = {k.value for d in parameters.elts if isinstance(d, ast.Dict) for k in d.keys if k}
    # model and device override the YAML only when given (**given), so a params_file's own
    # model and device stand when they are not.
    assert any(k is None for d in parameters.elts if isinstance(d, ast.Dict) for k in d.keys)
    assert constants["OVERRIDES"] == ("model", "device")
    assert all(constants["ARGUMENTS"][name][0] == "" for name in constants["OVERRIDES"])
    assert names | set(constants["OVERRIDES"]) <= set(parameter_names()) | {"use_sim_time"}


def test_launch_file_has_the_arguments_a_robot_integrator_expects(launch_tree):
    constants = _constants(launch_tree)
    assert set(constants["ARGUMENTS"]) == {
        "namespace", "params_file", "use_sim_time", "log_level", "model", "device",
        "input_topic", "azure_topic", "rviz", "fixed_frame"}
    used = {ast.literal_eval(c.args[0]) for c in _calls(launch_tree, "arg")
            if isinstance(c.args[0], ast.Constant)} | set(constants["OVERRIDES"])
    assert used == set(constants["ARGUMENTS"]), "every argument is used"
    # input_topic and azure_topic remap the node's inputs, in that direction: (INPUT_TOPIC,
    # arg input_topic), (AZURE_TOPIC, arg azure_topic), each default the node's own.
    recognizer = next(n for n in _calls(launch_tree, "Node")
                      if any(k.arg == "package" and _value(k.value, constants) == "prgcn_ros"
                             for k in n.keywords))
    remappings = next(k.value for k in recognizer.keywords if k.arg == "remappings")
    rules = {_value(source, constants): target
             for source, target in (rule.elts for rule in remappings.elts)}
    assert set(rules) == {NodeParams().skeleton_topic, NodeParams().azure_topic}
    for name, topic in (("input_topic", NodeParams().skeleton_topic),
                        ("azure_topic", NodeParams().azure_topic)):
        target = rules[topic]
        assert getattr(target.func, "id", None) == "arg"
        assert ast.literal_eval(target.args[0]) == name
        assert constants["ARGUMENTS"][name][0] == topic
    # Files are found by substitution, never looked up eagerly at import.
    text = LAUNCH_FILE.read_text()
    assert "FindPackageShare" in text and "get_package_share_directory" not in text


def test_rviz_config_shows_the_markers_topic_in_the_default_frame(launch_tree):
    constants = _constants(launch_tree)
    config = yaml.safe_load((REPO / constants["RVIZ_FILE"]).read_text())
    manager = config["Visualization Manager"]
    topics = [d["Topic"]["Value"] for d in manager["Displays"]
              if d["Class"] == "rviz_default_plugins/MarkerArray"]
    markers = NodeParams().markers_topic
    # Relative in RViz (it follows the namespace); the node's default, relative or absolute.
    assert topics == [markers.lstrip("/")]
    assert manager["Global Options"]["Fixed Frame"] == constants["ARGUMENTS"]["fixed_frame"][0]


def test_setup_installs_the_launch_and_config_files():
    text = (REPO / "setup.py").read_text()
    assert 'glob("launch/*.launch.py")' in text and 'glob("config/*.yaml")' in text
    assert "script_dir=$base/lib/prgcn_ros" in (REPO / "setup.cfg").read_text()


def test_make_setup_registers_the_package_in_the_venv_ament_index(monkeypatch):
    """What FindPackageShare and launch_ros's executable lookup need, in the venv: the same
    launch file then works from `make setup`'s venv and from a colcon install."""
    import os
    import sys
    from pathlib import Path

    from ament_index_python.packages import get_package_prefix, get_package_share_directory

    monkeypatch.setenv("AMENT_PREFIX_PATH", sys.prefix)    # what bin/activate now exports
    share = Path(get_package_share_directory("prgcn_ros"))
    assert share == Path(sys.prefix) / "share" / "prgcn_ros"
    for name in ("launch/recognizer.launch.py", "config/recognizer.yaml", "rviz/prgcn.rviz",
                 "models/prgcn_msr_action3d.safetensors", "package.xml"):
        assert (share / name).is_file(), name
    for executable in ("prgcn-recognizer", "prgcn-player"):
        path = Path(get_package_prefix("prgcn_ros")) / "lib" / "prgcn_ros" / executable
        assert path.is_file() and os.access(path, os.X_OK), path
    assert "AMENT_PREFIX_PATH" in (Path(sys.prefix) / "bin" / "activate").read_text()


def test_console_scripts_are_installed():
    installed = {ep.name for ep in importlib.metadata.entry_points(group="console_scripts")}
    assert {"prgcn-recognizer", "prgcn-player"} <= installed


# Runs launch.LaunchService in a process of its own: it wants the main thread (signals).
LAUNCH_SERVICE = """
import sys
import launch
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
arguments = dict(a.split(":=", 1) for a in sys.argv[2:])
service = launch.LaunchService()
service.include_launch_description(launch.LaunchDescription([IncludeLaunchDescription(
    PythonLaunchDescriptionSource(sys.argv[1]), launch_arguments=arguments.items())]))
sys.exit(service.run())
"""


@pytest.mark.ros
@pytest.mark.slow
def test_launch_service_starts_the_recognizer_with_the_launch_arguments(tmp_path, ros_context):
    pytest.importorskip("launch_ros", reason="launch_ros is not installable from PyPI wheels "
                        "(../shared/ros2-wheels.md); this test runs on machines with a ROS 2 "
                        "install, where `ros2 launch` is what users type")
    from rcl_interfaces.srv import GetParameters
    from rclpy.node import Node
    from rosutil import make_tiny_model, process_log, spin_until, start_process, stop_process

    model = make_tiny_model(tmp_path / "model.safetensors")
    namespace, topic = "prgcn_launch_test", "/prgcn_launch_test_input/skeletons"
    proc = start_process(["-c", LAUNCH_SERVICE, str(LAUNCH_FILE), f"namespace:={namespace}",
                          f"model:={model}", "device:=cpu", f"input_topic:={topic}",
                          "log_level:=debug", "use_sim_time:=true"], tmp_path / "launch.log")
    node = Node("launch_probe")
    try:
        def subscribed() -> bool:
            return any(i.node_name == "prgcn_recognizer" and i.node_namespace == f"/{namespace}"
                       for i in node.get_subscriptions_info_by_topic(topic))
        assert spin_until(node, subscribed, 120.0), process_log(proc)
        client = node.create_client(GetParameters,
                                    f"/{namespace}/prgcn_recognizer/get_parameters")
        assert client.wait_for_service(timeout_sec=30.0)
        future = client.call_async(GetParameters.Request(
            names=["device", "model", "use_sim_time"]))
        assert spin_until(node, future.done, 30.0)
        device, model_value, sim_time = future.result().values
        assert device.string_value == "cpu"
        assert model_value.string_value == str(model)
        assert sim_time.bool_value is True
        assert "[DEBUG]" in process_log(proc)          # log_level reached the node
    finally:
        node.destroy_node()
        stop_process(proc, timeout_s=30.0)


@pytest.mark.ros
def test_the_launch_files_input_remapping_moves_the_recognizers_input(tmp_path, ros_context):
    """input_topic:=X becomes the ROS argument `-r skeletons:=X`: the rule the launch file
    passes, applied by rcl to the node as the console script starts it."""
    from rclpy.node import Node
    from rosutil import (
        make_tiny_model,
        process_log,
        recognizer_args,
        spin_until,
        start_process,
        stop_process,
    )

    constants = _constants(ast.parse(LAUNCH_FILE.read_text()))
    topic = "/remapped_input/skeletons"
    model = make_tiny_model(tmp_path / "model.safetensors")
    proc = start_process([*recognizer_args(model), "-r",
                          f"{constants['INPUT_TOPIC']}:={topic}"], tmp_path / "log.txt")
    node = Node("remap_probe")
    try:
        def subscribed() -> bool:
            return any(i.node_name == "prgcn_recognizer"
                       for i in node.get_subscriptions_info_by_topic(topic))
        assert spin_until(node, subscribed, 120.0), process_log(proc)
        assert not node.get_subscriptions_info_by_topic("/skeletons")
    finally:
        node.destroy_node()
        stop_process(proc)


def test_the_shipped_yaml_states_the_codes_defaults():
    """One default per parameter: the YAML a user edits says what the node does without it."""
    doc = yaml.safe_load((REPO / "config" / "recognizer.yaml").read_text())
    node_key = "/**" if "/**" in doc else "prgcn_recognizer"
    values = doc[node_key]["ros__parameters"]
    drift = {}
    for defaults in (RecognizerParams(), NodeParams()):
        drift.update({name: (value, getattr(defaults, name)) for name, value in values.items()
                      if hasattr(defaults, name) and getattr(defaults, name) != value})
    assert not drift, f"YAML value vs code default: {drift}"
    assert set(values) == set(parameter_names()), "the YAML lists every parameter"
