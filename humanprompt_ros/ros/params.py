"""Declare a node's parameters from its config dataclass, with defaults from ``config/<node>.yaml``.

::

    cfg = declare_config(node, CameraConfig, config_path("camera.yaml"), "camera")

1. the defaults are read from the YAML file (a ROS 2 parameter file) and validated through the
   dataclass (:mod:`humanprompt_ros.config.nodes`): a bad default names the file and key;
2. every field is declared as a ROS parameter with a ``ParameterDescriptor`` (description, type,
   read-only, range) built from the field's metadata, so ``ros2 param describe`` explains it;
   overrides given with ``--params-file`` / ``-p`` apply as usual;
3. the effective values are validated through the dataclass again: a bad override raises
   :class:`~humanprompt_ros.config.ConfigError` naming ``ROS parameters of /node`` and the key.

Floating-point parameters are declared with dynamic typing so that ``-p rate:=30`` (an integer
in YAML) is accepted; their type is enforced by the dataclass (a string is refused).

:func:`watch_config` validates later ``set_parameters`` calls the same way and answers
``successful: false`` with the reason instead of applying a bad value.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, Callable, TypeVar

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType, SetParametersResult
from rclpy.exceptions import ParameterUninitializedException
from rclpy.parameter import Parameter

from humanprompt_ros.config.loader import ConfigError, from_dict, read_yaml
from humanprompt_ros.config.nodes import check_ranges, field_types, node_section

T = TypeVar("T")

__all__ = ["declare_config", "watch_config", "yaml_defaults"]


def _ros_type(tp: Any) -> tuple[int, bool]:
    """(ParameterType, dynamic_typing) for a dataclass field type."""
    origin = typing.get_origin(tp)
    if tp is bool:
        return ParameterType.PARAMETER_BOOL, False
    if tp is int:
        return ParameterType.PARAMETER_INTEGER, False
    if tp is float:
        return ParameterType.PARAMETER_DOUBLE, True
    if tp is str or origin is typing.Literal:
        return ParameterType.PARAMETER_STRING, False
    if origin in (list, tuple):
        inner = typing.get_args(tp)[0] if typing.get_args(tp) else str
        return {
            str: ParameterType.PARAMETER_STRING_ARRAY,
            float: ParameterType.PARAMETER_DOUBLE_ARRAY,
            int: ParameterType.PARAMETER_INTEGER_ARRAY,
            bool: ParameterType.PARAMETER_BOOL_ARRAY,
        }[inner], False
    raise TypeError(f"no ROS parameter type for {tp!r}")


_UNINIT = {
    ParameterType.PARAMETER_STRING_ARRAY: Parameter.Type.STRING_ARRAY,
    ParameterType.PARAMETER_DOUBLE_ARRAY: Parameter.Type.DOUBLE_ARRAY,
    ParameterType.PARAMETER_INTEGER_ARRAY: Parameter.Type.INTEGER_ARRAY,
    ParameterType.PARAMETER_BOOL_ARRAY: Parameter.Type.BOOL_ARRAY,
}


def descriptor(f: dataclasses.Field, tp: Any) -> ParameterDescriptor:
    """The ``ParameterDescriptor`` of a config field."""
    ptype, dynamic = _ros_type(tp)
    desc = ParameterDescriptor(
        description=f.metadata.get("description", ""), read_only=bool(f.metadata.get("read_only"))
    )
    if typing.get_origin(tp) is typing.Literal:
        desc.additional_constraints = "one of: " + ", ".join(map(str, typing.get_args(tp)))
    rng = f.metadata.get("range")
    if dynamic:
        desc.dynamic_typing = True
        if rng is not None:
            desc.additional_constraints = f"a number in [{rng[0]:g}, {rng[1]:g}]"
    else:
        desc.type = ptype
        if rng is not None and ptype == ParameterType.PARAMETER_INTEGER:
            desc.integer_range = [IntegerRange(from_value=int(rng[0]), to_value=int(rng[1]), step=0)]
        elif rng is not None and ptype == ParameterType.PARAMETER_DOUBLE:
            desc.floating_point_range = [FloatingPointRange(from_value=float(rng[0]), to_value=float(rng[1]), step=0.0)]
    return desc


def yaml_defaults(cls: type[T], path: str | Path, node_name: str) -> tuple[T, dict[str, Any]]:
    """The validated defaults of ``node_name`` in the parameter file at ``path``: (config, raw values)."""
    source = str(path)
    params, prefix = node_section(read_yaml(path), node_name, source)
    check_ranges(cls, params, source, prefix)
    return from_dict(cls, params, source=source, prefix=prefix), params


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)) or hasattr(value, "tolist"):
        return list(value.tolist() if hasattr(value, "tolist") else value)
    return value


def declare_config(node, cls: type[T], defaults_path: str | Path, section: str) -> T:
    """Declare every field of ``cls`` on ``node`` (see the module docstring) and return the effective config."""
    defaults, _ = yaml_defaults(cls, defaults_path, section)
    hints = field_types(cls)
    where = f"ROS parameters of {node.get_fully_qualified_name()}"
    for f in dataclasses.fields(cls):
        desc = descriptor(f, hints[f.name])
        value = _plain(getattr(defaults, f.name))
        if isinstance(value, list) and not value:
            value = _UNINIT.get(desc.type, Parameter.Type.STRING_ARRAY)  # rclpy cannot infer a type from []
        try:
            node.declare_parameter(f.name, value, desc)
        except Exception as exc:  # InvalidParameterTypeException / InvalidParameterValueException
            raise ConfigError(where, f.name, f"{type(exc).__name__}: {exc}") from None
    values = current_values(node, cls)
    check_ranges(cls, values, where)
    return from_dict(cls, values, source=where)


def current_values(node, cls: type) -> dict[str, Any]:
    """The node's current parameter values for the fields of ``cls`` (uninitialised arrays → the field default)."""
    out = {}
    for f in dataclasses.fields(cls):
        try:
            out[f.name] = _plain(node.get_parameter(f.name).value)
        except ParameterUninitializedException:
            out[f.name] = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    return out


def watch_config(node, cls: type[T], apply: Callable[[T], None]) -> None:
    """Validate parameter changes through ``cls``; on success call ``apply(new_config)`` after the change."""
    names = {f.name for f in dataclasses.fields(cls)}
    where = f"ROS parameters of {node.get_fully_qualified_name()}"

    def on_set(params: list[Parameter]) -> SetParametersResult:
        values = current_values(node, cls)
        for p in params:
            if p.name in names:
                values[p.name] = _plain(p.value)
        try:
            check_ranges(cls, values, where)
            new = from_dict(cls, values, source=where)
        except ValueError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        apply(new)
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(on_set)
