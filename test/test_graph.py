"""The ROS-free description of the node graph (humanprompt_ros.graph) that both bringups read."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from humanprompt_ros.graph import DEFAULT_CHECKPOINT, GRAPH_ARGS, build_graph, checkpoint_problem, parse_args
from humanprompt_ros.paths import share_dir

REPO = Path(__file__).resolve().parent.parent


def by_name(specs):
    return {s.name: s for s in specs}


def test_default_graph_is_the_real_robot_without_rviz():
    specs = by_name(build_graph({}))
    assert set(specs) == {"sim_driver", "camera", "prompt_encoder", "policy", "command", "rviz"}
    enabled = {n for n, s in specs.items() if s.enabled}
    assert enabled == {"camera", "prompt_encoder", "policy", "command"}
    # the learned policy with the shipped checkpoint, for the policy node and the prompt encoder alike
    shipped = str(share_dir() / DEFAULT_CHECKPOINT)
    assert DEFAULT_CHECKPOINT == "models/policy.safetensors"
    for name in ("policy", "prompt_encoder"):
        assert specs[name].parameters["policy"] == "checkpoint"
        assert specs[name].parameters["checkpoint"] == shipped
    assert specs["command"].parameters["hand"] == GRAPH_ARGS["hand"].default
    assert "source" not in specs["camera"].parameters  # config/camera.yaml's device
    for name, module, exe in [
        ("camera", "humanprompt_ros.nodes.camera", "humanprompt-camera"),
        ("command", "humanprompt_ros.nodes.command", "humanprompt-command"),
        ("prompt_encoder", "humanprompt_ros.nodes.prompt_encoder", "humanprompt-prompt-encoder"),
        ("policy", "humanprompt_ros.nodes.policy", "humanprompt-policy"),
        ("sim_driver", "humanprompt_ros.nodes.sim_driver", "humanprompt-sim-driver"),
    ]:
        assert (specs[name].module, specs[name].executable) == (module, exe)
        assert specs[name].respawn
        assert specs[name].params_files == (f"config/{name}.yaml",)


def test_sim_rviz_policy_and_prompt_arguments():
    specs = by_name(
        build_graph(
            {
                "sim": "true",
                "rviz": "1",
                "policy": "checkpoint",
                "checkpoint": "/m/c.safetensors",
                "prompt": "/data/pour",
                "task": "pour",
                "seed": "3",
            }
        )
    )
    assert all(s.enabled for s in specs.values())
    # the sim's frames are relayed at their own size (config/sim.yaml: 128), as humanprompt-sim eval sees them
    assert specs["camera"].parameters == {
        "source": "topic",
        "input_topic": "/humanprompt/sim/image_raw",
        "width": 128,
        "height": 128,
    }
    assert specs["policy"].parameters == {
        "policy": "checkpoint",
        "hand": GRAPH_ARGS["hand"].default,
        "checkpoint": "/m/c.safetensors",
    }
    assert specs["prompt_encoder"].parameters["prompt_video"] == "/data/pour"
    assert specs["sim_driver"].parameters == {"hand": GRAPH_ARGS["hand"].default, "task": "pour", "seed": 3}
    rviz = specs["rviz"]
    assert rviz.module is None and rviz.package == "rviz2" and not rviz.respawn
    assert rviz.cli_arguments("/share") == ["-d", "/share/rviz/humanprompt.rviz"]


def test_checkpoint_resolution_and_replay_without_one(tmp_path, monkeypatch):
    # relative: to the working directory when it exists there, else to the share directory
    specs = by_name(build_graph({"checkpoint": "models/x.safetensors"}, share="/opt/share/humanprompt_ros"))
    assert specs["policy"].parameters["checkpoint"] == "/opt/share/humanprompt_ros/models/x.safetensors"
    (tmp_path / "mine.safetensors").write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    specs = by_name(build_graph({"checkpoint": "mine.safetensors"}, share="/opt/share/humanprompt_ros"))
    assert specs["policy"].parameters["checkpoint"] == str(tmp_path / "mine.safetensors")
    assert checkpoint_problem(list(specs.values())) is None
    specs = by_name(build_graph({"policy": "replay"}))
    assert "checkpoint" not in specs["policy"].parameters and "checkpoint" not in specs["prompt_encoder"].parameters
    assert checkpoint_problem(list(specs.values())) is None


def test_a_missing_checkpoint_is_named_with_how_to_get_one(tmp_path):
    missing = tmp_path / "models" / "policy.safetensors"
    problem = checkpoint_problem(build_graph({"checkpoint": str(missing)}))
    assert str(missing) in problem and "does not exist" in problem
    assert "scripts/train_prompted_state.sh" in problem and "policy:=replay" in problem
    assert "No trained policy is installed in models/ yet" in problem
    # only the enabled nodes that load it count
    assert checkpoint_problem(build_graph({"checkpoint": str(missing), "nodes": "camera,command"})) is None
    assert "(needed by policy)" in checkpoint_problem(build_graph({"checkpoint": str(missing), "nodes": "policy"}))


def test_the_sim_image_topic_is_the_table_one():
    pytest.importorskip("rclpy")
    from humanprompt_ros.graph import SIM_IMAGE_TOPIC
    from humanprompt_ros.ros.topics import SIM_IMAGE

    assert SIM_IMAGE_TOPIC == SIM_IMAGE.name


def test_nodes_filter():
    specs = by_name(build_graph({"nodes": "camera, command"}))
    assert {n for n, s in specs.items() if s.enabled} == {"camera", "command"}
    # a sim-only node stays off without sim:=true even when listed
    specs = by_name(build_graph({"nodes": "sim_driver"}))
    assert not specs["sim_driver"].enabled


@pytest.mark.parametrize(
    "args, message",
    [
        ({"simulation": "true"}, "unknown argument 'simulation'; valid arguments: sim, policy"),
        ({"policy": "magic"}, "choose one of replay, scripted, checkpoint"),
        ({"sim": "maybe"}, "argument sim:='maybe'"),
        ({"nodes": "camera,planner"}, "unknown node 'planner'; graph nodes: sim_driver, camera"),
        ({"respawn_delay": "soon"}, "respawn_delay"),
        ({"seed": "x"}, "seed"),
    ],
)
def test_bad_arguments_are_named(args, message):
    with pytest.raises(ValueError, match=None) as err:
        build_graph(args)
    assert message in str(err.value)


def test_lockstep_sets_the_simulator_policy_command_and_camera_together():
    specs = {s.name: s for s in build_graph({"sim": "true", "lockstep": "on", "policy": "replay"})}
    assert specs["sim_driver"].parameters["lockstep"] is True and specs["sim_driver"].parameters["extra_steps"] == 0
    assert specs["policy"].parameters["lockstep"] is True and specs["command"].parameters["lockstep"] is True
    assert specs["command"].parameters["joint_limit_margin"] == 0.0  # the benchmark's hand: URDF limits only
    assert specs["camera"].parameters["rate"] == 0.0  # relays every frame: each is a step
    plain = {s.name: s for s in build_graph({"sim": "true", "policy": "replay"})}
    assert "lockstep" not in plain["sim_driver"].parameters and "lockstep" not in plain["command"].parameters
    with pytest.raises(ValueError, match="lockstep:=true needs sim:=true"):
        build_graph({"lockstep": "true"})


def test_boolean_spellings():
    assert parse_args({"sim": "True"})["sim"] == "true"
    assert parse_args({"rviz": "0"})["rviz"] == "false"


def test_commands_carry_params_files_node_name_and_typed_parameters():
    spec = by_name(build_graph({"camera_source": "video", "camera_path": "123"}))["camera"]
    cmd = spec.command("/py", "/share", "warn")
    assert cmd[:3] == ["/py", "-m", "humanprompt_ros.nodes.camera"]
    assert cmd[3:6] == ["--ros-args", "-r", "__node:=camera"]
    assert ["--params-file", "/share/config/camera.yaml"] == cmd[6:8]
    assert 'path:="123"' in cmd, "strings are quoted so that '123' stays a string"
    assert cmd[-2:] == ["--log-level", "warn"]
    spec = by_name(build_graph({"sim": "true", "seed": "4"}))["sim_driver"]
    assert "seed:=4" in spec.command("/py", "/share")


def test_params_files_of_existing_nodes_ship():
    share = share_dir()
    for spec in build_graph({"sim": "true"}):
        if spec.module and spec.name in ("camera", "command"):
            for p in spec.params_paths(share):
                assert p.is_file(), p


def test_graph_module_is_ros_free():
    tree = ast.parse((REPO / "humanprompt_ros" / "graph.py").read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not imported & {"rclpy", "launch", "launch_ros", "sensor_msgs"}, imported
