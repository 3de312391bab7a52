"""Node parameters declared from the config dataclasses (humanprompt_ros.ros.params) and the YAML loaders."""

from __future__ import annotations

import pytest

from helpers.ros import require_rclpy
from humanprompt_ros.config.loader import ConfigError
from humanprompt_ros.config.nodes import CameraConfig, CommandConfig, load_camera_config, load_command_config
from humanprompt_ros.paths import config_path


@pytest.fixture
def private_dds(ros_domain_id, monkeypatch):
    """Nodes made here are DDS participants: keep them on a private domain, on this host."""
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    monkeypatch.delenv("ROS_LOCALHOST_ONLY", raising=False)
    return ros_domain_id


def test_shipped_node_configs_load():
    assert load_camera_config(config_path("camera.yaml")).width == 96
    cmd = load_command_config(config_path("command.yaml"))
    assert cmd.target_timeout == pytest.approx(0.15) and cmd.hold_mode == "silent"


@pytest.mark.parametrize(
    "yaml_text, key, problem",
    [
        ("camera:\n  ros__parameters:\n    width: 4\n", "camera.ros__parameters.width", "must be in [8, 4096], got 4"),
        ("camera:\n  ros__parameters:\n    source: webcam\n", "camera.ros__parameters.source", "must be one of"),
        ("camera:\n  ros__parameters:\n    rate: fast\n", "camera.ros__parameters.rate", "expected a number"),
        ("camera:\n  ros__parameters:\n    fps: 3\n", "camera.ros__parameters.fps", "unknown key"),
        (
            "camera:\n  ros__parameters:\n    source: folder\n    path: /x\n    rate: 0\n",
            "camera.ros__parameters.rate",
            "an image folder has no rate",
        ),
        ("cam:\n  ros__parameters: {}\n", "", "no 'camera:' (or '/**:') section"),
    ],
)
def test_bad_values_name_the_file_and_key(tmp_path, yaml_text, key, problem):
    p = tmp_path / "camera.yaml"
    p.write_text(yaml_text)
    with pytest.raises(ConfigError) as err:
        load_camera_config(p)
    assert str(p) in str(err.value) and key in str(err.value) and problem in str(err.value)


def test_command_loader_checks_types(tmp_path):
    p = tmp_path / "command.yaml"
    p.write_text("/**:\n  ros__parameters:\n    hold_mode: freeze\n")
    with pytest.raises(ConfigError, match="hold_mode: must be one of"):
        load_command_config(p)


@require_rclpy()
def test_declare_config_descriptors_overrides_and_runtime_validation(private_dds):
    import rclpy
    from rcl_interfaces.msg import ParameterType
    from rclpy.context import Context
    from rclpy.parameter import Parameter

    from humanprompt_ros.ros.params import declare_config, watch_config

    ctx = Context()
    rclpy.init(context=ctx, domain_id=private_dds, args=["--ros-args", "-p", "rate:=15", "-p", "loop:=false"])
    try:
        node = rclpy.create_node("camera", context=ctx, start_parameter_services=False)
        cfg = declare_config(node, CameraConfig, config_path("camera.yaml"), "camera")
        assert cfg.rate == 15.0 and cfg.loop is False  # an integer override of a float parameter is fine
        d = node.describe_parameter("width")
        assert d.read_only and d.type == ParameterType.PARAMETER_INTEGER and d.integer_range[0].from_value == 8
        assert "model's input size" in d.description
        assert node.describe_parameter("rate").dynamic_typing
        applied = []
        watch_config(node, CameraConfig, applied.append)
        res = node.set_parameters([Parameter("rate", value=-1.0)])[0]
        assert not res.successful and "rate: must be in [0, 1000], got -1.0" in res.reason
        res = node.set_parameters([Parameter("rate", value="fast")])[0]
        assert not res.successful and "expected a number" in res.reason
        res = node.set_parameters([Parameter("width", value=64)])[0]
        assert not res.successful  # read-only
        res = node.set_parameters([Parameter("rate", value=10.0)])[0]
        assert res.successful and applied[-1].rate == 10.0
        node.destroy_node()

        node = rclpy.create_node("command", context=ctx, start_parameter_services=False)
        cmd = declare_config(node, CommandConfig, config_path("command.yaml"), "command")
        assert cmd.controller_joints == [] and cmd.rate == 15.0  # -p applies to every node of the process
        node.destroy_node()
    finally:
        ctx.try_shutdown()


@require_rclpy()
def test_declare_config_rejects_a_bad_override(private_dds):
    import rclpy
    from rclpy.context import Context

    from humanprompt_ros.ros.params import declare_config

    ctx = Context()
    rclpy.init(context=ctx, domain_id=private_dds, args=["--ros-args", "-p", "crop:=diagonal"])
    try:
        node = rclpy.create_node("camera", context=ctx, start_parameter_services=False)
        with pytest.raises(ConfigError, match=r"ROS parameters of /camera: crop: must be one of \['center', 'none'\]"):
            declare_config(node, CameraConfig, config_path("camera.yaml"), "camera")
        node.destroy_node()
    finally:
        ctx.try_shutdown()


@require_rclpy()
def test_a_value_of_the_wrong_type_is_refused(private_dds):
    """At startup a ``-p`` of the wrong type stops the node naming the key; at run time the set is refused
    (a number: by the dataclass, with the reason; a bool, integer or string parameter: by rclpy, whose
    reason gives the types as ParameterType codes) and the old value stays."""
    import rclpy
    from rclpy.context import Context
    from rclpy.parameter import Parameter

    from humanprompt_ros.ros.params import declare_config, watch_config

    for arg, why in (("width:=abc", "width: InvalidParameterTypeException"), ("rate:=fast", "rate: expected a number")):
        ctx = Context()
        rclpy.init(context=ctx, domain_id=private_dds, args=["--ros-args", "-p", arg])
        try:
            node = rclpy.create_node("camera", context=ctx, start_parameter_services=False)
            with pytest.raises(ConfigError, match=f"ROS parameters of /camera: {why}"):
                declare_config(node, CameraConfig, config_path("camera.yaml"), "camera")
            node.destroy_node()
        finally:
            ctx.try_shutdown()
    ctx = Context()
    rclpy.init(context=ctx, domain_id=private_dds, args=[])
    try:
        node = rclpy.create_node("camera", context=ctx, start_parameter_services=False)
        declare_config(node, CameraConfig, config_path("camera.yaml"), "camera")
        watch_config(node, CameraConfig, lambda _cfg: None)
        for name, value, why in (
            ("stale_after", True, "stale_after: expected a number, got bool: True"),
            ("stale_after", 0.0, "stale_after: must be in [0.01, 3600], got 0.0"),
            ("loop", "yes", "Wrong parameter type, expected '1' got '4'"),  # 1: bool, 4: string
            ("crop", 3, "Wrong parameter type, expected '4' got '2'"),  # 4: string, 2: integer
        ):
            old = node.get_parameter(name).value
            res = node.set_parameters([Parameter(name, value=value)])[0]
            assert not res.successful and why in res.reason, res.reason
            assert node.get_parameter(name).value == old
        node.destroy_node()
    finally:
        ctx.try_shutdown()
