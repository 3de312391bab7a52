"""Check a hand configuration (joints, limits, fingertip links, FK/retargeting round trip).

    ros2 launch humanprompt_ros hand_check.launch.py
    ros2 launch humanprompt_ros hand_check.launch.py hand:=/path/to/my_hand.yaml samples:=20

Runs ``humanprompt-hand check <hand>`` (installed in lib/humanprompt_ros, where ``ros2 run``
looks) and ends when the check ends. Where ROS 2 comes from wheels (no ``launch``), run the same
check directly: ``humanprompt-hand check config/hands/allegro_right.yaml``.
"""

from launch.actions import DeclareLaunchArgument, ExecuteProcess
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.substitutions import ExecutableInPackage, FindPackageShare

from launch import LaunchDescription

PACKAGE = "humanprompt_ros"


def generate_launch_description() -> LaunchDescription:
    hand = LaunchConfiguration("hand")
    samples = LaunchConfiguration("samples")
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "hand",
                default_value=PathJoinSubstitution(
                    [FindPackageShare(PACKAGE), "config", "hands", "allegro_right.yaml"]
                ),
                description="hand YAML (joints, fingertip links, retargeting) to check",
            ),
            DeclareLaunchArgument(
                "samples",
                default_value="100",
                description="random joint configurations in the FK -> retarget -> FK round trip",
            ),
            ExecuteProcess(
                name="hand_check",
                cmd=[
                    ExecutableInPackage(package=PACKAGE, executable="humanprompt-hand"),
                    "check",
                    hand,
                    "--samples",
                    samples,
                ],
                output="screen",
            ),
        ]
    )
