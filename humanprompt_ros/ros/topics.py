"""The one table of the package's ROS topics: name, message type and QoS.

Every node, the bringup, the rviz config test and the benchmarks take topic names, types and QoS
from here, so a publisher and its subscribers cannot disagree. Importing this module needs no
rclpy: the QoS profiles are built on demand by :func:`qos_profile`.

QoS by kind of data, on purpose:

``sensor``
    Camera frames: best effort, keep last 5, volatile (``rclpy.qos.qos_profile_sensor_data``
    semantics). A late frame is worth nothing; retransmitting it would only add latency.
``command``
    Targets and commands: reliable, keep last 10, volatile. Losing one is harmless (the next
    comes within a control period), but reliable delivery keeps the command stream deterministic,
    and a reliable publisher is received by both reliable and best-effort subscribers.
``state``
    ``/joint_states``: reliable, keep last 10, volatile when published (what
    ``joint_state_broadcaster`` and ``robot_state_publisher`` use); subscribers of state use best
    effort (:func:`subscription_qos`) so they also match best-effort drivers.
``latched``
    The active prompt (and its encoded tokens), the robot description and the task status: reliable, transient local,
    keep last 1, so a node that starts late still receives the current value (the navigation2
    pattern for state that changes rarely).
``display``
    What rviz shows (markers, the preview image): reliable, keep last 5, volatile: rviz's
    displays subscribe reliably by default and would never match a best-effort publisher.
``diagnostics``
    ``/diagnostics``: reliable, keep last 10 (what ``diagnostic_aggregator`` expects).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Topic", "TOPICS", "by_name", "qos_profile", "subscription_qos", "msg_class"]

QOS_KINDS = ("sensor", "command", "state", "latched", "display", "diagnostics")


@dataclass(frozen=True)
class Topic:
    """One topic of the graph. ``type`` is the ROS interface name, e.g. ``sensor_msgs/msg/Image``."""

    name: str
    type: str
    qos: str
    description: str
    publishers: tuple[str, ...] = ()  # graph node names that publish it ("external": outside the graph)

    def __post_init__(self) -> None:
        if self.qos not in QOS_KINDS:
            raise ValueError(f"topic {self.name}: unknown QoS kind {self.qos!r} (valid: {', '.join(QOS_KINDS)})")


# -- the table -------------------------------------------------------------------------------------
OBSERVATION = Topic(
    "/humanprompt/observation",
    "sensor_msgs/msg/Image",
    "sensor",
    "camera frame at the model's size, rgb8; header.stamp = capture time of the source frame",
    ("camera",),
)
SIM_IMAGE = Topic(
    "/humanprompt/sim/image_raw",
    "sensor_msgs/msg/Image",
    "sensor",
    "the simulated camera, full size (the camera node relays it to the observation)",
    ("sim_driver",),
)
PROMPT = Topic(
    "/humanprompt/prompt",
    "std_msgs/msg/String",
    "latched",
    "the active prompt as JSON: {id, path, ...}; an empty id means no prompt (stop)",
    ("prompt_encoder",),
)
PROMPT_TOKENS = Topic(
    "/humanprompt/prompt_tokens",
    "std_msgs/msg/Float32MultiArray",
    "latched",
    "the active prompt encoded by the checkpoint's prompt encoder (policy:=checkpoint): (1, S, D) tokens, "
    "layout.dim[0].label = JSON {prompt_id, checkpoint, skill} (humanprompt_ros.ros.conversions.tokens_to_msg), "
    "so the policy node does not encode the prompt again",
    ("prompt_encoder",),
)
HAND_TARGET = Topic(
    "/humanprompt/hand_target",
    "geometry_msgs/msg/PoseArray",
    "command",
    "unified hand target (humanprompt_ros.ros.conversions): wrist pose + 5 fingertips; header.stamp = "
    "stamp of the observation it was computed from",
    ("policy",),
)
JOINT_STATES = Topic(
    "/joint_states",
    "sensor_msgs/msg/JointState",
    "state",
    "measured joint positions of the hand (robot driver or sim)",
    ("sim_driver", "external"),
)
JOINT_COMMANDS = Topic(
    "/humanprompt/joint_commands",
    "sensor_msgs/msg/JointState",
    "command",
    "safe joint position commands for the hand (clamped, velocity limited)",
    ("command",),
)
CONTROLLER_COMMANDS = Topic(
    "/humanprompt/hand_controller/commands",
    "std_msgs/msg/Float64MultiArray",
    "command",
    "the same commands for a ros2_control forward position controller (one value per controller joint)",
    ("command",),
)
JOINT_TRAJECTORY = Topic(
    "/humanprompt/joint_trajectory",
    "trajectory_msgs/msg/JointTrajectory",
    "command",
    "the same commands as one-point trajectories, for a joint trajectory controller (optional)",
    ("command",),
)
WRIST_TARGET = Topic(
    "/humanprompt/wrist_target",
    "geometry_msgs/msg/PoseStamped",
    "command",
    "pose of the hand's base link in the world frame, for the arm",
    ("command",),
)
WRIST_POSE = Topic(
    "/humanprompt/wrist_pose",
    "geometry_msgs/msg/PoseStamped",
    "state",
    "measured pose of the hand's base link in the world (the arm driver, or the sim driver)",
    ("sim_driver", "external"),
)
MARKERS = Topic(
    "/humanprompt/markers",
    "visualization_msgs/msg/MarkerArray",
    "display",
    "fingertip targets and the commanded hand drawn from FK (no tf2 needed)",
    ("command",),
)
PREVIEW = Topic(
    "/humanprompt/preview",
    "sensor_msgs/msg/Image",
    "display",
    "preview of the model's predicted robot video",
    ("prompt_encoder", "policy"),
)
TASK_STATUS = Topic(
    "/humanprompt/task_status",
    "std_msgs/msg/String",
    "latched",
    "simulated task status as JSON (task, seed, success, ...)",
    ("sim_driver",),
)
ROBOT_DESCRIPTION = Topic(
    "/robot_description",
    "std_msgs/msg/String",
    "latched",
    "URDF of the hand (for rviz's RobotModel where /tf is also available)",
    ("command",),
)
TF = Topic(
    "/tf",
    "tf2_msgs/msg/TFMessage",
    "command",
    "world → each hand link from FK (only where tf2_msgs is installed; rviz's RobotModel needs it)",
    ("command",),
)
DIAGNOSTICS = Topic(
    "/diagnostics",
    "diagnostic_msgs/msg/DiagnosticArray",
    "diagnostics",
    "one DiagnosticStatus per node, about once a second",
    ("camera", "command", "prompt_encoder", "policy", "sim_driver", "recorder"),
)

TOPICS: tuple[Topic, ...] = (
    OBSERVATION,
    SIM_IMAGE,
    PROMPT,
    PROMPT_TOKENS,
    HAND_TARGET,
    JOINT_STATES,
    JOINT_COMMANDS,
    CONTROLLER_COMMANDS,
    JOINT_TRAJECTORY,
    WRIST_TARGET,
    WRIST_POSE,
    MARKERS,
    PREVIEW,
    TASK_STATUS,
    ROBOT_DESCRIPTION,
    TF,
    DIAGNOSTICS,
)

_BY_NAME = {t.name: t for t in TOPICS}


def by_name(name: str) -> Topic:
    """The table entry for ``name``; ``KeyError`` listing the known topics otherwise."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"{name!r} is not a humanprompt_ros topic (known: {', '.join(sorted(_BY_NAME))})") from None


def msg_class(topic: Topic | str):
    """The Python message class of a topic (or of an interface name such as ``std_msgs/msg/String``)."""
    import importlib

    type_name = topic.type if isinstance(topic, Topic) else topic
    package, kind, name = type_name.split("/")
    return getattr(importlib.import_module(f"{package}.{kind}"), name)


def qos_profile(topic: Topic | str):
    """The publisher QoS (``rclpy.qos.QoSProfile``) of a topic: see the module docstring."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    kind = (by_name(topic) if isinstance(topic, str) else topic).qos
    if kind == "sensor":
        return QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=5,
            reliability=ReliabilityPolicy.BEST_EFFORT,
            durability=DurabilityPolicy.VOLATILE,
        )
    if kind == "latched":
        return QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=1,
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL,
        )
    depth = 5 if kind == "display" else 10
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.VOLATILE,
    )


def subscription_qos(topic: Topic | str):
    """The QoS a subscriber should use: the publisher's, except best effort for ``state`` topics."""
    from rclpy.qos import ReliabilityPolicy

    t = by_name(topic) if isinstance(topic, str) else topic
    profile = qos_profile(t)
    if t.qos == "state":
        profile.reliability = ReliabilityPolicy.BEST_EFFORT
    return profile


def subscribe(node, topic: Topic, callback, callback_group=None, name: str | None = None, **kwargs):
    """``node.create_subscription`` for a topic of the table, with its message type and subscription QoS;
    ``name`` subscribes to another name with the same type and QoS (e.g. a configurable input)."""
    return node.create_subscription(
        msg_class(topic), name or topic.name, callback, subscription_qos(topic), callback_group=callback_group, **kwargs
    )


def publisher(node, topic: Topic):
    """``node.create_publisher`` for a topic of the table, with its message type and QoS."""
    return node.create_publisher(msg_class(topic), topic.name, qos_profile(topic))
