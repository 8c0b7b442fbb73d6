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

from prgcn_ros.nodes.recognizer import parameter_names

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
    nodes = _calls(launch_tree, "Node")
    assert len(nodes) == 1
    kwargs = {k.arg: k.value for k in nodes[0].keywords}
    assert _value(kwargs["package"], constants) == "prgcn_ros"
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
    doc = yaml.safe_load(params_file.read_text())
    assert "/**" in doc           # applies to the node under any name and namespace
    overrides = [d for d in ast.walk(launch_tree) if isinstance(d, ast.Dict)]
    names = {k.value for d in overrides for k in d.keys if isinstance(k, ast.Constant)}
    assert names and names <= set(parameter_names())
    arguments = {ast.literal_eval(c.args[0]) for c in _calls(launch_tree, "DeclareLaunchArgument")}
    assert arguments == {"model", "device", "input_topic"}
    used = {ast.literal_eval(c.args[0]) for c in _calls(launch_tree, "LaunchConfiguration")}
    assert used == arguments


def test_setup_installs_the_launch_and_config_files():
    text = (REPO / "setup.py").read_text()
    assert 'glob("launch/*.launch.py")' in text and 'glob("config/*.yaml")' in text
    assert "script_dir=$base/lib/prgcn_ros" in (REPO / "setup.cfg").read_text()


def test_console_scripts_are_installed():
    installed = {ep.name for ep in importlib.metadata.entry_points(group="console_scripts")}
    assert {"prgcn-recognizer", "prgcn-player"} <= installed


def test_launch_description_builds_with_launch_ros():
    pytest.importorskip("launch_ros", reason="launch_ros is not installable from PyPI wheels; "
                        "this part runs on machines with a ROS 2 install")
    spec = importlib.util.spec_from_file_location("recognizer_launch", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    assert len(description.entities) == 4
