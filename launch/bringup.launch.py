"""Bring up the humanprompt_ros node graph on a ROS 2 install (Humble, Jazzy, Kilted).

    ros2 launch humanprompt_ros bringup.launch.py sim:=true                 # learned policy, models/policy.safetensors
    ros2 launch humanprompt_ros bringup.launch.py checkpoint:=/models/x.safetensors rviz:=true
    ros2 launch humanprompt_ros bringup.launch.py sim:=true policy:=replay  # retarget the prompt's actions
    ros2 launch humanprompt_ros bringup.launch.py --show-args

The nodes, their parameter files and parameters come from ``humanprompt_ros.graph.build_graph``,
the one description of the graph that ``humanprompt-bringup`` (ROS 2 from Python wheels, no
``launch``) also reads: same ``name:=value`` arguments, same processes, so the two cannot drift.
Every node is respawned when it exits (``respawn_delay:=2.0``). With ``policy:=checkpoint`` (the
default) a missing checkpoint file stops the launch before any node starts, saying which file and
how to get one (the same check as ``humanprompt-bringup``'s preflight).
"""

from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from humanprompt_ros.graph import GRAPH_ARGS, build_graph, checkpoint_problem
from launch import LaunchDescription

PACKAGE = "humanprompt_ros"


def _nodes(context, *args, **kwargs):
    from ament_index_python.packages import get_package_share_directory

    values = {name: LaunchConfiguration(name).perform(context) for name in GRAPH_ARGS}
    share = get_package_share_directory(PACKAGE)
    respawn_delay = float(values["respawn_delay"])
    actions = []
    specs = build_graph(values, share)
    problem = checkpoint_problem(specs)
    if problem:
        raise RuntimeError(problem)
    for spec in specs:
        if not spec.enabled:
            continue
        parameters = [str(p) for p in spec.params_paths(share)]
        if spec.parameters:
            parameters.append(dict(spec.parameters))
        actions.append(
            Node(
                package=spec.package,
                executable=spec.executable,
                name=spec.name,
                parameters=parameters,
                arguments=spec.cli_arguments(share),
                ros_arguments=["--log-level", values["log_level"]],
                respawn=spec.respawn,
                respawn_delay=respawn_delay,
                output="screen",
            )
        )
    return actions


def generate_launch_description() -> LaunchDescription:
    declared = [
        DeclareLaunchArgument(name, default_value=arg.default, description=arg.description)
        for name, arg in GRAPH_ARGS.items()
    ]
    return LaunchDescription(declared + [OpaqueFunction(function=_nodes)])
