"""Typed parameters of the nodes, with their defaults in ``config/<node>.yaml`` (ROS-free).

Each node's parameters are one dataclass here. Every field carries its ROS parameter description
(``ParameterDescriptor``: description, read-only, range) in its metadata, written with
:func:`param`; :mod:`humanprompt_ros.ros.params` declares them on a node from the dataclass and
the YAML defaults. This module imports no rclpy, so the configs can be checked anywhere.

The YAML files are ROS 2 parameter files, usable with ``--params-file``::

    camera:                 # the node name (or /** for any node)
      ros__parameters:
        width: 96
        ...

Loaders (each returns the validated dataclass; a bad value raises ``ConfigError`` naming the file
and the key, e.g. ``config/camera.yaml: camera.ros__parameters.width: must be in [8, 4096], got 4``):

* ``config/camera.yaml`` → :func:`load_camera_config`
* ``config/command.yaml`` → :func:`load_command_config`
* ``config/prompt_encoder.yaml`` → :func:`load_prompt_encoder_config`
* ``config/policy.yaml`` → :func:`load_policy_config`
* ``config/sim_driver.yaml`` → :func:`load_sim_driver_config`
* ``config/recorder.yaml`` → :func:`load_recorder_config`

Kept as one module: the six node configs share :func:`param`, the range checks and the loaders, and
each is one dataclass that mirrors its YAML.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from humanprompt_ros.config.loader import ConfigError, from_dict, read_yaml

T = TypeVar("T")

__all__ = [
    "StartupError",
    "param",
    "load_node_config",
    "node_section",
    "check_ranges",
    "CameraConfig",
    "CommandConfig",
    "load_camera_config",
    "load_command_config",
    "PromptEncoderConfig",
    "PolicyConfig",
    "SimDriverConfig",
    "load_prompt_encoder_config",
    "load_policy_config",
    "load_sim_driver_config",
    "RecorderConfig",
    "load_recorder_config",
    "expand_dirs",
]


class StartupError(RuntimeError):
    """A node cannot start (missing device or file, unusable source or checkpoint); the message says why."""


def param(
    default: Any,
    description: str,
    *,
    read_only: bool = False,
    range: tuple[float, float] | None = None,
    default_factory: Any = None,
) -> Any:  # noqa: A002
    """A dataclass field that is also a ROS parameter (see the module docstring)."""
    meta = {"description": description, "read_only": read_only, "range": range}
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


def check_ranges(cls: type, values: dict[str, Any], source: str, prefix: str = "") -> None:
    """Raise ``ConfigError`` for a numeric value outside its field's declared range."""
    for f in dataclasses.fields(cls):
        rng = f.metadata.get("range")
        v = values.get(f.name)
        if rng is None or isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if not rng[0] <= v <= rng[1]:
            key = f"{prefix}.{f.name}" if prefix else f.name
            raise ConfigError(source, key, f"must be in [{rng[0]:g}, {rng[1]:g}], got {v!r}")


def node_section(data: dict[str, Any], node_name: str, source: str) -> tuple[dict[str, Any], str]:
    """The ``ros__parameters`` mapping for ``node_name`` (or ``/**``) in a parameter file, and its key prefix."""
    for key in (node_name, f"/{node_name}", "/**"):
        if key in data:
            section = data[key]
            if not isinstance(section, dict) or "ros__parameters" not in section:
                raise ConfigError(source, key, "expected a mapping with a 'ros__parameters' key")
            params = section["ros__parameters"] or {}
            if not isinstance(params, dict):
                raise ConfigError(source, f"{key}.ros__parameters", "expected a mapping")
            return params, f"{key}.ros__parameters"
    raise ConfigError(source, "", f"no '{node_name}:' (or '/**:') section with ros__parameters")


def load_node_config(cls: type[T], path: str | Path, node_name: str, overrides: dict[str, Any] | None = None) -> T:
    """Load the ``node_name`` section of a ROS 2 parameter file into ``cls`` (validated)."""
    source = str(path)
    params, prefix = node_section(read_yaml(path), node_name, source)
    if overrides:
        params = {**params, **overrides}
    check_ranges(cls, params, source, prefix)
    return from_dict(cls, params, source=source, prefix=prefix)


def field_types(cls: type) -> dict[str, Any]:
    """Resolved type hints of a config dataclass (for the ROS declaration)."""
    return typing.get_type_hints(cls)


# -- camera ----------------------------------------------------------------------------------------
CAMERA_SOURCES = ("video", "folder", "device", "topic")


@dataclass
class CameraConfig:
    """Parameters of the camera ingestion node (``humanprompt_ros.nodes.camera``)."""

    source: Literal["video", "folder", "device", "topic"] = param(
        "device",
        "where frames come from: video (a file), folder (image files, sorted by name), device "
        "(V4L2 through OpenCV) or topic (an existing sensor_msgs/Image topic)",
        read_only=True,
    )
    path: str = param(
        "/dev/video0",
        "video file, image folder, or device (/dev/videoN or its index N); relative "
        "paths are relative to the working directory",
        read_only=True,
    )
    input_topic: str = param("/humanprompt/sim/image_raw", "input Image topic when source is 'topic'", read_only=True)
    loop: bool = param(True, "video/folder: start again at the end (false: publish once, then idle)")
    rate: float = param(
        30.0,
        "publish rate in Hz; 0 = the source's own rate (video: its fps, topic: every "
        "input frame, device: as delivered; a folder needs a rate)",
        range=(0.0, 1000.0),
    )
    width: int = param(96, "output width in pixels (the model's input size)", read_only=True, range=(8, 4096))
    height: int = param(96, "output height in pixels", read_only=True, range=(8, 4096))
    crop: Literal["center", "none"] = param(
        "center", "center: crop to the output aspect ratio before resizing; none: stretch"
    )
    frame_id: str = param(
        "camera", "header.frame_id of published frames (topic source: the input's frame_id when it has one)"
    )
    device_width: int = param(640, "device: requested capture width", read_only=True, range=(0, 8192))
    device_height: int = param(480, "device: requested capture height", read_only=True, range=(0, 8192))
    stale_after: float = param(
        1.0, "diagnostics: WARN when no frame was published for this long (s)", range=(0.01, 3600.0)
    )
    diagnostics_period: float = param(1.0, "seconds between /diagnostics updates", read_only=True, range=(0.05, 60.0))

    def validate(self) -> None:
        if self.source in ("video", "folder", "device") and not self.path:
            raise ValueError(f"path: source '{self.source}' needs a path")
        if self.source == "topic" and not self.input_topic.startswith("/"):
            raise ValueError(f"input_topic: must be an absolute topic name, got {self.input_topic!r}")
        if self.source == "folder" and self.rate <= 0:
            raise ValueError("rate: an image folder has no rate of its own: set rate > 0")


def load_camera_config(path: str | Path, overrides: dict[str, Any] | None = None) -> CameraConfig:
    """``config/camera.yaml`` → :class:`CameraConfig` (validated)."""
    return load_node_config(CameraConfig, path, "camera", overrides)


# -- retarget / command ----------------------------------------------------------------------------
@dataclass
class CommandConfig:
    """Parameters of the retarget/command node (``humanprompt_ros.nodes.command``), the last line of safety."""

    hand: str = param(
        "config/hands/allegro_right.yaml",
        "hand YAML; relative paths are relative to the package share directory",
        read_only=True,
    )
    retargeting: str = param(
        "", "retargeting method (fingertip_ik, vector, dexpilot, position); empty: the hand config's", read_only=True
    )
    rate: float = param(
        100.0,
        "command rate in Hz: the velocity-limited step toward the latest target",
        read_only=True,
        range=(1.0, 1000.0),
    )
    lockstep: bool = param(
        False,
        "evaluation with a lockstep simulator (bringup lockstep:=true): exactly one "
        "command per hand target, its retargeted goal (clamped to the safe limits; the "
        "simulator steps one control period per command), no command stream and no "
        "target/observation timeouts (time stands still between steps)",
        read_only=True,
    )
    target_timeout: float = param(0.15, "hold when no valid hand target arrived for this long (s)", range=(0.01, 10.0))
    observation_timeout: float = param(
        0.15, "hold when the latest camera frame is older than this (s; see frame_age_from)", range=(0.01, 10.0)
    )
    frame_age_from: Literal["stamp", "arrival"] = param(
        "stamp",
        "a camera frame's age: stamp = since its header.stamp (its capture; a frame delivered late is old), "
        "arrival = since it arrived here (for a camera whose clock is not this machine's)",
    )
    require_observation: bool = param(
        True, "watch the camera frames (false: targets only, e.g. open-loop replay without a camera)"
    )
    require_prompt: bool = param(
        True,
        "no motion without an active prompt on /humanprompt/prompt (JSON with a "
        "non-empty id); clearing the prompt holds the hand",
    )
    require_joint_states: bool = param(
        True,
        "no motion before the first /joint_states (the velocity limit "
        "needs a start position); false: start from the first target",
    )
    joint_states_timeout: float = param(
        0.5,
        "with require_joint_states: hold when no /joint_states arrived for this long (s), so that after a driver "
        "restart motion resumes only from the new driver's joint states",
        range=(0.01, 10.0),
    )
    joint_limit_margin: float = param(
        0.02, "commands stay this far inside the URDF joint limits (rad or m)", range=(0.0, 0.5)
    )
    max_joint_velocity: float = param(
        2.0,
        "per-joint speed limit (rad/s or m/s): each step moves at most max_joint_velocity * dt, dt <= 2 / rate",
        range=(0.001, 100.0),
    )
    resync_threshold: float = param(
        1.0,
        "when motion resumes after a hold and a measured joint is farther than this from the last command (rad or "
        "m: the robot moved, or its driver restarted; far above a tracking error), start again from the measured "
        "joints; 0 disables it",
        range=(0.0, 10.0),
    )
    hold_mode: Literal["silent", "republish"] = param(
        "silent",
        "on stale input: silent = publish no commands (position controllers keep the last one); "
        "republish = keep sending the last safe position at the command rate",
    )
    controller_joints: list[str] = param(
        None,
        "joint order of the ros2_control forward position controller; empty: the hand's joint order",
        read_only=True,
        default_factory=list,
    )
    publish_controller_commands: bool = param(
        True, "publish std_msgs/Float64MultiArray for a forward position controller", read_only=True
    )
    publish_trajectory: bool = param(
        False, "publish one-point trajectory_msgs/JointTrajectory commands", read_only=True
    )
    publish_wrist_target: bool = param(True, "publish the hand base pose for the arm (PoseStamped)", read_only=True)
    publish_markers: bool = param(True, "publish visualization_msgs/MarkerArray for rviz", read_only=True)
    marker_rate: float = param(10.0, "marker rate in Hz", read_only=True, range=(0.1, 100.0))
    publish_robot_description: bool = param(
        True, "publish the hand URDF on /robot_description (latched)", read_only=True
    )
    publish_tf: bool = param(
        True,
        "publish /tf (world → each hand link, from FK) where tf2_msgs is installed, for rviz's RobotModel",
        read_only=True,
    )
    frame_id: str = param(
        "world",
        "the world frame: hand targets must be in it (an empty frame_id is taken as it; another frame is "
        "rejected), and the frame of markers and wrist targets",
    )
    diagnostics_period: float = param(1.0, "seconds between /diagnostics updates", read_only=True, range=(0.05, 60.0))
    latency_window: int = param(
        1000, "samples in the latency statistics of the diagnostics", read_only=True, range=(10, 100000)
    )


def load_command_config(path: str | Path, overrides: dict[str, Any] | None = None) -> CommandConfig:
    """``config/command.yaml`` → :class:`CommandConfig` (validated)."""
    return load_node_config(CommandConfig, path, "command", overrides)


def expand_dirs(entries: list[str]) -> list[Path]:
    """Prompt directory entries → absolute paths: ``~`` and ``$VARS`` expanded; an entry whose
    variable is unset (still holding ``$`` after expansion) or that is empty is skipped."""
    out = []
    for e in entries:
        v = os.path.expandvars(os.path.expanduser(str(e).strip()))
        if not v or "$" in v:
            continue
        out.append(Path(v).absolute())
    return out


# -- prompt encoder ---------------------------------------------------------------------------------
@dataclass
class PromptEncoderConfig:
    """Parameters of the prompt encoder node (``humanprompt_ros.nodes.prompt_encoder``)."""

    prompt_video: str = param(
        "",
        "the active prompt: a demonstration episode directory or a video file. Setting it "
        "validates and encodes the prompt before answering; a bad prompt is refused with "
        "the reason and the previous one stays active. Empty: no prompt (stop)",
    )
    policy: Literal["replay", "scripted", "checkpoint"] = param(
        "checkpoint",
        "the policy backend the prompt is for (its requirements are checked: replay needs the "
        "demonstration's actions, checkpoint a video)",
        read_only=True,
    )
    camera_pose: list[float] = param(
        None,
        "policy:=replay: the filming camera's pose in the world frame, [x, y, z, roll, pitch, yaw] (m, rad), as "
        "the policy node's camera_pose (set both alike). Set, a prompt that is only a video is accepted: its "
        "hand pose is extracted here to check it (needs the human extra). Empty: such a prompt is refused",
        read_only=True,
        default_factory=list,
    )
    checkpoint: str = param(
        "",
        "policy:=checkpoint: the checkpoint whose prompt encoder encodes the prompt when it "
        "is set; the tokens are published on /humanprompt/prompt_tokens for the policy node "
        "(empty: validate the video only; the policy node encodes it)",
        read_only=True,
    )
    hand: str = param(
        "config/hands/allegro_right.yaml", "hand YAML (relative: to the package share directory)", read_only=True
    )
    prompt_dirs: list[str] = param(
        None,
        "directories prompts may come from (~ and $VARS expanded; an entry whose "
        "variable is unset is skipped); a path outside all of them is refused. "
        "Empty list: any path",
        read_only=True,
        default_factory=lambda: ["$HUMANPROMPT_PROMPT_DIR", "~/humanprompt/prompts", "/data/demos"],
    )
    record_dir: str = param(
        "", "where ~/record_prompt writes its videos (empty: the first prompt directory)", read_only=True
    )
    record_seconds: float = param(
        4.0, "~/record_prompt: seconds recorded from the observation topic", range=(0.5, 120.0)
    )
    min_frames: int = param(4, "a prompt video needs at least this many frames", range=(1, 100000))
    max_duration_s: float = param(
        120.0, "a longer prompt video (frames / its frame rate) is refused; 0: no limit", range=(0.0, 86400.0)
    )
    max_pixels: int = param(
        8294400,
        "a prompt video with larger frames (width x height) is refused; 0: no limit (default: 4K UHD)",
        range=(0, 1000000000),
    )
    max_file_mb: float = param(500.0, "a larger prompt file (MB) is refused; 0: no limit", range=(0.0, 1000000.0))
    ood_threshold: float = param(
        0.0,
        "cosine distance from the nearest PDCP skill prototype beyond which a prompt is out of distribution; "
        "0: the checkpoint's calibration (<checkpoint stem>.prompt_ood.json, humanprompt-prompt calibrate)",
        range=(0.0, 2.0),
    )
    strict: bool = param(
        False,
        "refuse out-of-distribution prompts (farther than the threshold from every skill prototype); the "
        "previous prompt stays. Needs a checkpoint with PDCP prototypes and a threshold",
    )
    diagnostics_period: float = param(1.0, "seconds between /diagnostics updates", read_only=True, range=(0.05, 60.0))
    resume_file: str = param(
        "",
        "where the active prompt is kept (a small JSON file), so that this node, restarted, re-applies it under the "
        "same id and the robot carries on; bringup gives each launch its own file, so a new launch never resumes an "
        "old prompt. Empty: not kept (a restarted node starts without a prompt)",
        read_only=True,
    )

    def validate(self) -> None:
        if self.policy == "checkpoint" and self.checkpoint and not self.checkpoint.strip():
            raise ValueError("checkpoint: must not be blank")
        if self.camera_pose and len(self.camera_pose) != 6:
            raise ValueError(
                f"camera_pose: [x, y, z, roll, pitch, yaw] (6 numbers) or empty, got {len(self.camera_pose)} numbers"
            )


def load_prompt_encoder_config(path: str | Path, overrides: dict[str, Any] | None = None) -> PromptEncoderConfig:
    """``config/prompt_encoder.yaml`` → :class:`PromptEncoderConfig` (validated)."""
    return load_node_config(PromptEncoderConfig, path, "prompt_encoder", overrides)


# -- policy -------------------------------------------------------------------------------------------
@dataclass
class PolicyConfig:
    """Parameters of the policy node (``humanprompt_ros.nodes.policy``)."""

    policy: Literal["replay", "scripted", "checkpoint"] = param(
        "checkpoint",
        "backend: replay (the prompt's own unified actions, open loop), scripted (the benchmark's "
        "expert for the prompt's task and seed; tests only), checkpoint (the learned policy)",
        read_only=True,
    )
    checkpoint: str = param(
        "",
        "policy:=checkpoint: checkpoint file (absolute, or relative to the working or share "
        "directory); empty: models/policy.safetensors",
        read_only=True,
    )
    hand: str = param(
        "config/hands/allegro_right.yaml", "hand YAML (relative: to the package share directory)", read_only=True
    )
    rate: float = param(
        10.0,
        "control rate in Hz: one action of the chunk per period (the demonstrations' rate)",
        read_only=True,
        range=(0.1, 1000.0),
    )
    chunk: int = param(
        8,
        "replay/scripted: actions per act() call (the chunk is executed step by step)",
        read_only=True,
        range=(1, 1000),
    )
    camera_pose: list[float] = param(
        None,
        "policy:=replay with a prompt that is only a video: the pose of the camera that filmed it in the world "
        "frame (its extrinsic calibration), [x, y, z, roll, pitch, yaw] in m and rad (URDF convention: "
        "R = Rz(yaw) Ry(pitch) Rx(roll)); the hand pose extracted from the video (camera frame, needs the human "
        "extra) is moved into the world frame with it. Empty: such a prompt is refused. A prompt with actions "
        "ignores it",
        read_only=True,
        default_factory=list,
    )
    lookahead: int = param(
        0,
        "request the next chunk (from the freshest frame and proprio, on a worker thread) when "
        "this many actions of the current chunk are left, so control does not stall while "
        "it is computed (cover the inference time in control periods); 0: execute the whole "
        "chunk, then compute the next one on the control thread (the hand pauses for the "
        "inference; the chunk starts at the observed state, as in humanprompt-sim eval). A "
        "backend whose act() takes lag= (the learned policy: at most horizon - execute, 8 for "
        "the shipped one, so lookahead <= 7) gets how far ahead it plans and aligns its plan",
        range=(0, 1000),
    )
    lockstep: bool = param(
        False,
        "evaluation with a lockstep simulator (bringup lockstep:=true): one action per "
        "new camera frame instead of one per 1/rate s, no stale-camera pause",
        read_only=True,
    )
    max_observation_age: float = param(
        0.25,
        "pause (no targets, the chunk does not advance) while the latest camera frame is older than this "
        "(s; see frame_age_from)",
        range=(0.01, 10.0),
    )
    frame_age_from: Literal["stamp", "arrival"] = param(
        "stamp",
        "a camera frame's age: stamp = since its header.stamp (its capture; a frame delivered late is old), "
        "arrival = since it arrived here (for a camera whose clock is not this machine's)",
    )
    require_joint_states: bool = param(True, "no targets before the first /joint_states (proprio needs them)")
    wrist_pose_topic: str = param(
        "/humanprompt/wrist_pose",
        "measured pose of the hand's base link (PoseStamped; "
        "the sim driver publishes it, a real arm's driver should); until one arrives the "
        "last /humanprompt/wrist_target is used",
        read_only=True,
    )
    frame_id: str = param("world", "header.frame_id of the hand targets")
    warmup: bool = param(
        True, "run one act() on each new prompt before using it (the first real step is not slow)", read_only=True
    )
    device: str = param("cpu", "policy:=checkpoint: torch device", read_only=True)
    threads: int = param(1, "policy:=checkpoint: torch CPU threads", read_only=True, range=(0, 64))
    guidance: float = param(
        0.0,
        "policy:=checkpoint: classifier-free guidance scale of the head; 0: the checkpoint's "
        "own (policy.guidance). Only a head trained with policy.global_dropout > 0 can be "
        "guided",
        read_only=True,
        range=(0.0, 20.0),
    )
    prompt_tokens_timeout: float = param(
        2.0,
        "policy:=checkpoint: seconds the prompt worker waits for the prompt encoder's tokens of a new prompt "
        "(/humanprompt/prompt_tokens, same checkpoint) before encoding the prompt itself; 0: use them only "
        "when already there. Control never waits on this",
        range=(0.0, 60.0),
    )
    diagnostics_period: float = param(1.0, "seconds between /diagnostics updates", read_only=True, range=(0.05, 60.0))

    def validate(self) -> None:
        if self.camera_pose and len(self.camera_pose) != 6:
            raise ValueError(
                f"camera_pose: [x, y, z, roll, pitch, yaw] (6 numbers) or empty, got {len(self.camera_pose)} numbers"
            )


def load_policy_config(path: str | Path, overrides: dict[str, Any] | None = None) -> PolicyConfig:
    """``config/policy.yaml`` → :class:`PolicyConfig` (validated)."""
    return load_node_config(PolicyConfig, path, "policy", overrides)


# -- sim driver ---------------------------------------------------------------------------------------
@dataclass
class SimDriverConfig:
    """Parameters of the sim driver node (``humanprompt_ros.nodes.sim_driver``)."""

    task: str = param(
        "press_button", "benchmark task: a name under config/tasks/ or a task YAML path; applied at the next ~/reset"
    )
    seed: int = param(
        0, "task seed (object placement, sizes, colours, goal); applied at the next ~/reset", range=(0, 2**31 - 1)
    )
    hand: str = param(
        "config/hands/allegro_right.yaml", "hand YAML; the sim's robot is the Allegro hand", read_only=True
    )
    camera_rate: float = param(15.0, "camera images per second on /humanprompt/sim/image_raw", range=(0.5, 120.0))
    image_size: int = param(
        0,
        "camera image size in pixels (square); 0: config/sim.yaml's image_size (the models' size)",
        read_only=True,
        range=(0, 1024),
    )
    tick_rate: float = param(
        100.0,
        "physics is advanced in ticks of 1/tick_rate s (real time); joint commands and "
        "the wrist target are applied per tick",
        read_only=True,
        range=(10.0, 1000.0),
    )
    joint_state_rate: float = param(
        50.0, "/joint_states and /humanprompt/wrist_pose per second", read_only=True, range=(1.0, 1000.0)
    )
    status_rate: float = param(
        2.0, "/humanprompt/task_status per second (also at once on a change)", range=(0.1, 100.0)
    )
    extra_steps: int = param(
        20,
        "control steps after the task's horizon before the episode is done (slack for the graph's latency)",
        range=(0, 100000),
    )
    frame_id: str = param("world", "frame of the camera images' poses and of the wrist pose", read_only=True)
    diagnostics_period: float = param(1.0, "seconds between /diagnostics updates", read_only=True, range=(0.05, 60.0))
    lockstep: bool = param(
        False,
        "evaluation mode: physics stands still until the command for the current step "
        "arrives (a joint command and the wrist target sent after it), then advances "
        "one control period exactly as humanprompt-sim eval does (SimEnv.step_joints) and "
        "publishes the new state and a camera frame; results do not depend on machine "
        "speed. Off: real-time physics (what a real robot does)",
        read_only=True,
    )
    lockstep_timeout: float = param(
        2.0,
        "lockstep: publish the current frame again when no command came for this "
        "long (a dropped message must not stall the episode)",
        range=(0.1, 60.0),
    )


def load_sim_driver_config(path: str | Path, overrides: dict[str, Any] | None = None) -> SimDriverConfig:
    """``config/sim_driver.yaml`` → :class:`SimDriverConfig` (validated)."""
    return load_node_config(SimDriverConfig, path, "sim_driver", overrides)


# -- recorder ---------------------------------------------------------------------------------------
@dataclass
class RecorderConfig:
    """Parameters of the recorder node (``humanprompt_ros.nodes.recorder``); the episode settings (root, task,
    embodiment, fps, the human-hand ones) apply at the next ``~/start``."""

    root: str = param(
        "~/humanprompt/recordings",
        "dataset root: episodes go to <root>/<task>/<embodiment>/<number:07d>/ (~ and $VARS expanded; "
        "relative: to the working directory); episodes are staged in <root>/.recording/",
    )
    task: str = param("", "task name of the next episode (required: ~/start refuses an empty one)")
    embodiment: Literal["robot", "human"] = param(
        "robot",
        "robot: camera + joint states + wrist pose (+ hand target) → frames, joints, FK proprio and unified "
        "actions; human: camera → a video, then the hand pose (humanprompt-hand extract) when mediapipe is installed",
    )
    fps: float = param(10.0, "the episode's rate: frames and states resampled every 1/fps s", range=(0.1, 1000.0))
    hand: str = param(
        "config/hands/allegro_right.yaml",
        "robot hand YAML: joint names (read by name) and FK (relative: to the package share directory)",
        read_only=True,
    )
    image_topic: str = param("/humanprompt/observation", "camera frames (sensor_msgs/Image)", read_only=True)
    joint_topic: str = param("/joint_states", "robot: measured joints (sensor_msgs/JointState)", read_only=True)
    wrist_topic: str = param(
        "/humanprompt/wrist_pose",
        "robot: measured pose of the hand's base link (geometry_msgs/PoseStamped)",
        read_only=True,
    )
    action_topic: str = param(
        "/humanprompt/hand_target",
        "robot: commanded unified action (geometry_msgs/PoseArray hand target); an episode without one "
        "takes the next measured state as the action; empty: never subscribe",
        read_only=True,
    )
    handedness: Literal["right", "left"] = param("right", "human: the hand to follow")
    intrinsics: str = param(
        "", "human: camera intrinsics YAML for the hand pose (empty: a 60 degree horizontal field of view)"
    )
    extract_hand_pose: bool = param(
        True,
        "human: extract the hand pose at ~/stop when mediapipe is installed (false: save the video with "
        "the extraction pending, to run humanprompt-hand extract later)",
    )
    max_duration: float = param(
        600.0,
        "seconds an episode records at most (the states are held in memory, the frames spooled to disk); "
        "then recording pauses until ~/stop saves it",
        range=(1.0, 86400.0),
    )
    log_period: float = param(
        5.0, "seconds between log lines with the live counts while recording", read_only=True, range=(0.5, 3600.0)
    )
    diagnostics_period: float = param(1.0, "seconds between /diagnostics updates", read_only=True, range=(0.05, 60.0))

    def validate(self) -> None:
        for name in ("image_topic", "joint_topic", "wrist_topic"):
            if not getattr(self, name).startswith("/"):
                raise ValueError(f"{name}: must be an absolute topic name, got {getattr(self, name)!r}")
        if self.action_topic and not self.action_topic.startswith("/"):
            raise ValueError(f"action_topic: must be an absolute topic name or empty, got {self.action_topic!r}")
        if not self.root.strip():
            raise ValueError("root: must not be empty")


def load_recorder_config(path: str | Path, overrides: dict[str, Any] | None = None) -> RecorderConfig:
    """``config/recorder.yaml`` → :class:`RecorderConfig` (validated)."""
    return load_node_config(RecorderConfig, path, "recorder", overrides)
