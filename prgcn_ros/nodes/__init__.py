"""The ROS 2 nodes (thin: the work is in prgcn_ros' ROS-free modules)."""
from __future__ import annotations

import sys


def program_args(argv: list[str], program: str) -> list[str]:
    """``argv`` without the program name and the ROS arguments. ROS arguments that do not
    parse (a params file that does not open, a ``-p`` without its rule) end the program with
    one line and status 2, as a bad option of its own does, not rclpy's traceback."""
    # Imported here: a node installs its signal handlers before the heavy imports, this
    # package's included.
    import rclpy.utilities

    try:
        return rclpy.utilities.remove_ros_args(argv)[1:]
    except RuntimeError as error:         # rclpy's RCLInvalidROSArgsError
        reason = str(error).split(", at ")[0]      # rcl's C source positions left out
        if "params file" in reason:
            reason += " (a relative path is from the working directory)"
        print(f"{program}: {reason}", file=sys.stderr)
        raise SystemExit(2) from None


def given_parameters(argv: list[str], node_name: str, full_name: str
                     ) -> tuple[dict[str, tuple[object, str]], list[tuple[str, list[str]]]]:
    """The last value each parameter is given by the ROS arguments of ``argv`` (``--params-file``
    sections for this node, ``-p name:=value``), with where it came from: name -> (value, where);
    and the params files none of whose sections is this node's (path, their sections).

    rcl merges a value over an earlier one of another type by keeping both and reading the
    first of bool, int, double, string: ``--params-file config.yaml -p window:=64.0`` leaves
    the file's 96, silently. Comparing with this says which value the user gave last."""
    import yaml

    given: dict[str, tuple[object, str]] = {}
    unmatched: list[tuple[str, list[str]]] = []
    in_ros_args = False
    words = iter(argv[1:])
    for word in words:
        if word == "--ros-args":
            in_ros_args = True
        elif word == "--":
            in_ros_args = False
        elif in_ros_args and word in ("-p", "--param"):
            rule = next(words, "")
            name, sep, text = rule.partition(":=")
            if sep and ":" not in name:       # (node:name rules are another node's)
                try:
                    given[name] = (yaml.safe_load(text), f"-p {rule}")
                except yaml.YAMLError:
                    given[name] = (text, f"-p {rule}")
        elif in_ros_args and word == "--params-file":
            path = next(words, "")
            try:
                with open(path) as file:
                    doc = yaml.safe_load(file) or {}
            except (OSError, yaml.YAMLError):
                continue                      # rcl has said what is wrong with it
            if not isinstance(doc, dict):
                continue
            matched = False
            for key, section in doc.items():
                values = section.get("ros__parameters") if isinstance(section, dict) else None
                if _names_node(str(key), node_name, full_name) and isinstance(values, dict):
                    matched = True
                    for name, value in _flattened(values):
                        given[name] = (value, f"--params-file {path}")
            if not matched:
                unmatched.append((path, [str(key) for key in doc]))
    return given, unmatched


def _names_node(key: str, node_name: str, full_name: str) -> bool:
    """Whether a params file's section key applies to the node: its full name, its name, or a
    pattern of them (``*`` one namespace level, ``**`` any number), as rcl matches them."""
    import re

    if not key.startswith("/"):
        return key in (node_name, full_name.lstrip("/"))
    pattern = "".join(".*" if part == "**" else "[^/]*" if part == "*" else re.escape(part)
                      for part in re.split(r"(\*\*|\*)", key))
    return re.fullmatch(pattern.replace("/.*/", "(/.*)?/"), full_name) is not None \
        or re.fullmatch(pattern, full_name) is not None


def _flattened(values: dict, prefix: str = "") -> list[tuple[str, object]]:
    """A params file's nested mappings as dotted names (rcl's reading of them)."""
    out = []
    for key, value in values.items():
        if isinstance(value, dict):
            out += _flattened(value, f"{prefix}{key}.")
        else:
            out.append((f"{prefix}{key}", value))
    return out
