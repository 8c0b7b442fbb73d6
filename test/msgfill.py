"""Build ROS messages with a distinct, non-default value in every field, by introspection."""
from __future__ import annotations

import importlib
import itertools
from typing import Any

_counter = itertools.count(1)

_INTEGER_LIMITS = {"int8": 127, "uint8": 255, "byte": 255, "char": 127, "int16": 32767,
                   "uint16": 65535, "int32": 2**31 - 1, "uint32": 2**32 - 1,
                   "int64": 2**63 - 1, "uint64": 2**64 - 1}


def message_class(type_name: str) -> type:
    """'geometry_msgs/Point' -> geometry_msgs.msg.Point."""
    package, name = type_name.split("/")
    return getattr(importlib.import_module(f"{package}.msg"), name)


def _value(type_name: str) -> Any:
    n = next(_counter)
    if type_name in ("float", "double"):
        return n + 0.25  # exactly representable in float32
    if type_name in _INTEGER_LIMITS:
        signed = type_name.startswith("int")
        # Use large magnitudes to catch truncation; alternate signs for signed types.
        big = _INTEGER_LIMITS[type_name] - n
        return -big if signed and n % 2 else big
    if type_name == "boolean":
        return True
    if type_name in ("string", "wstring"):
        return f"value-{n}-ü"
    if type_name.startswith("sequence<"):
        inner = type_name[len("sequence<"):-1]
        return [_value(inner) for _ in range(3)]
    if "[" in type_name:  # fixed-size array: type[size]
        inner, size = type_name[:-1].split("[")
        return [_value(inner) for _ in range(int(size))]
    return filled(message_class(type_name))


def filled(cls: type) -> Any:
    """An instance of message class `cls` with every field set to a non-default value."""
    msg = cls()
    for field, type_name in cls.get_fields_and_field_types().items():
        if type_name == "builtin_interfaces/Time":
            value = message_class(type_name)(sec=1_700_000_000 + next(_counter),
                                             nanosec=123_456_789)
        else:
            value = _value(type_name)
        setattr(msg, field, value)
    return msg


def assert_fields_equal(expected: Any, actual: Any, path: str = "msg") -> None:
    """Field-by-field comparison with the path of the first difference in the message."""
    if hasattr(expected, "get_fields_and_field_types"):
        assert type(expected) is type(actual), f"{path}: {type(actual)} != {type(expected)}"
        for field in expected.get_fields_and_field_types():
            assert_fields_equal(getattr(expected, field), getattr(actual, field),
                                f"{path}.{field}")
        return
    if isinstance(expected, (list, tuple)) or hasattr(expected, "tolist"):
        expected_list, actual_list = list(expected), list(actual)
        assert len(expected_list) == len(actual_list), f"{path}: length differs"
        for i, (e, a) in enumerate(zip(expected_list, actual_list)):
            assert_fields_equal(e, a, f"{path}[{i}]")
        return
    assert expected == actual, f"{path}: {actual!r} != {expected!r}"


def assert_no_default_fields(msg: Any, path: str = "msg") -> None:
    """Every leaf field differs from the class default, so a dropped field cannot pass unseen."""
    default = type(msg)()
    for field in msg.get_fields_and_field_types():
        value, default_value = getattr(msg, field), getattr(default, field)
        if hasattr(value, "get_fields_and_field_types"):
            assert_no_default_fields(value, f"{path}.{field}")
        else:
            assert list(value) if hasattr(value, "__len__") and not isinstance(value, str) \
                else value != default_value, f"{path}.{field} is left at its default"
