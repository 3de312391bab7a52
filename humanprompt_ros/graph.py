"""The node graph of humanprompt_ros, described once (ROS-free).

Both ``launch/bringup.launch.py`` (ROS 2 installs: ``ros2 launch humanprompt_ros bringup.launch.py``)
and ``humanprompt-bringup`` (ROS 2 from Python wheels, which have no ``launch``) build their
processes from :func:`build_graph`, so the two cannot drift apart: same arguments, same nodes,
same parameter files, same parameters.

::

    from humanprompt_ros.graph import build_graph
    for spec in build_graph({"sim": "true", "policy": "replay"}):
        if spec.enabled:
            print(spec.name, spec.command())

Arguments are strings (``name:=value`` on a command line); :data:`GRAPH_ARGS` lists them with
their defaults. An unknown argument or a bad value raises ``ValueError`` naming the valid ones.

The default policy is the learned one, ``policy:=checkpoint`` with the shipped
``models/policy.safetensors`` (:data:`DEFAULT_CHECKPOINT`, resolved against the working directory,
then the package share directory: the source tree or the installed ``share/humanprompt_ros``). The
policy and prompt encoder nodes both get the resolved, absolute path: the encoder encodes each
prompt once and the policy node uses those tokens. Whether the file exists is checked by
:func:`checkpoint_problem` (``humanprompt-bringup``'s preflight), not here.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from humanprompt_ros.config.loader import read_yaml
from humanprompt_ros.paths import config_path, share_dir

__all__ = [
    "Arg",
    "GRAPH_ARGS",
    "DEFAULT_CHECKPOINT",
    "NodeSpec",
    "build_graph",
    "checkpoint_problem",
    "parse_args",
    "resolve_share_path",
]

PACKAGE = "humanprompt_ros"
POLICIES = ("replay", "scripted", "checkpoint")
CAMERA_SOURCES = ("device", "video", "folder", "topic")
SIM_IMAGE_TOPIC = "/humanprompt/sim/image_raw"  # humanprompt_ros.ros.topics.SIM_IMAGE (kept ROS-free here)
DEFAULT_CHECKPOINT = "models/policy.safetensors"  # the shipped policy, relative to the package share directory


@dataclass(frozen=True)
class Arg:
    default: str
    description: str
    choices: tuple[str, ...] = ()


_BOOL = ("true", "false")

GRAPH_ARGS: dict[str, Arg] = {
    "sim": Arg(
        "false", "true: the MuJoCo sim driver is the robot and the camera; false: a real hand and camera", _BOOL
    ),
    "policy": Arg(
        "checkpoint",
        "policy backend: checkpoint (the learned policy), replay (retarget the prompt's own "
        "actions, open loop), scripted (the benchmark's expert, tests)",
        POLICIES,
    ),
    "checkpoint": Arg(
        DEFAULT_CHECKPOINT,
        "checkpoint file for policy:=checkpoint (absolute, or relative to the "
        "working directory or to the package share directory)",
    ),
    "hand": Arg(
        "config/hands/allegro_right.yaml",
        "hand YAML (absolute, or relative to the working directory or to the package share directory)",
    ),
    "prompt": Arg("", "initial prompt (a demonstration episode or a video); empty: none until one is set"),
    "rviz": Arg("false", "true: start rviz2 with rviz/humanprompt.rviz", _BOOL),
    "lockstep": Arg(
        "false",
        "sim:=true only: the sim driver, policy and command nodes run in lockstep (physics "
        "advances one control period per command, one action per frame, commands clamped "
        "to the URDF limits like the benchmark's, episodes end at the task's horizon), so "
        "evaluation through ROS reproduces humanprompt-sim eval "
        "whatever the machine's speed",
        _BOOL,
    ),
    "camera_source": Arg(
        "",
        "camera node source: device, video, folder or topic (empty: topic with sim:=true, else config/camera.yaml's)",
        ("",) + CAMERA_SOURCES,
    ),
    "camera_path": Arg("", "camera device, video file or image folder (empty: config/camera.yaml's)"),
    "task": Arg("", "sim:=true: the benchmark task to load (empty: the sim driver's default)"),
    "seed": Arg("", "sim:=true: the task seed (empty: the sim driver's default)"),
    "nodes": Arg("", "comma-separated subset of the graph's nodes to start (empty: all that apply)"),
    "respawn_delay": Arg("2.0", "seconds before a crashed node is restarted"),
    "log_level": Arg("info", "log level of every node", ("debug", "info", "warn", "error", "fatal")),
}


def sim_image_size() -> int:
    """The benchmark camera's image size (``config/sim.yaml`` ``image_size``; 128 when unreadable)."""
    try:
        return int((read_yaml(config_path("sim.yaml")) or {}).get("image_size", 128))
    except Exception:  # noqa: BLE001 - a missing or odd file: the default
        return 128


def resolve_share_path(value: str, share: Path | None = None) -> Path:
    """A file argument: absolute, relative to the working directory if it exists there, else to the share dir."""
    p = Path(value).expanduser()
    if p.is_absolute() or p.exists():
        return p.resolve()
    if share is None:
        share = share_dir()
    return share / p


def checkpoint_problem(specs: list["NodeSpec"]) -> str | None:
    """Why the enabled nodes' checkpoint cannot be used (a missing file), in one line; None when fine."""
    users = [
        s for s in specs if s.enabled and s.parameters.get("policy") == "checkpoint" and "checkpoint" in s.parameters
    ]
    if not users:
        return None
    path = Path(users[0].parameters["checkpoint"])
    if path.is_file():
        return None
    names = ", ".join(s.name for s in users)
    shipped = path.name == Path(DEFAULT_CHECKPOINT).name and path.parent.name == "models"
    return (
        f"policy:=checkpoint needs the checkpoint file {path}, which does not exist (needed by {names}). "
        + ("No trained policy is installed in models/ yet: train" if shipped else "Train")
        + " one as the shipped file was made (`SHIP=1 scripts/train_prompted_state.sh`, docs/training.md; it "
        "writes runs/prompted/policy.safetensors) and pass checkpoint:=PATH or copy it to "
        "models/policy.safetensors; or run without the learned policy: policy:=replay"
    )


def _ros_value(value: Any) -> str:
    """A parameter value as ``-p name:=VALUE`` text (a YAML scalar: strings are quoted so '1' stays a string)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value))


@dataclass(frozen=True)
class NodeSpec:
    """One process of the graph."""

    name: str  # node name (and process label)
    executable: str  # console script in lib/<package> (what ros2 launch runs)
    module: str | None  # python -m module (what humanprompt-bringup runs); None: not a Python node
    description: str
    package: str = PACKAGE
    params_files: tuple[str, ...] = ()  # relative to the package share directory
    parameters: dict[str, Any] = field(default_factory=dict)  # from the arguments
    arguments: tuple[str, ...] = ()  # non-ROS command-line arguments; "{share}" = the package share directory
    respawn: bool = True
    condition: str = "always"  # always | sim | rviz
    enabled: bool = True

    def params_paths(self, share: Path | str | None = None) -> list[Path]:
        if share is None:
            share = share_dir()
        return [Path(share) / f for f in self.params_files]

    def cli_arguments(self, share: Path | str | None = None) -> list[str]:
        """:attr:`arguments` with ``{share}`` replaced by the package share directory."""
        if share is None and any("{share}" in a for a in self.arguments):
            share = share_dir()
        return [a.replace("{share}", str(share)) for a in self.arguments]

    def ros_args(self, share: Path | str | None = None, log_level: str | None = None) -> list[str]:
        """``--ros-args`` part of the command line: parameter files, node name, parameters, log level."""
        out = ["--ros-args", "-r", f"__node:={self.name}"]
        for p in self.params_paths(share):
            out += ["--params-file", str(p)]
        for k, v in self.parameters.items():
            out += ["-p", f"{k}:={_ros_value(v)}"]
        if log_level:
            out += ["--log-level", log_level]
        return out

    def command(
        self, python: str = sys.executable, share: Path | str | None = None, log_level: str | None = None
    ) -> list[str]:
        """The full command line humanprompt-bringup runs (``python -m module`` for Python nodes)."""
        head = [python, "-m", self.module] if self.module else [self.executable]
        return head + self.cli_arguments(share) + self.ros_args(share, log_level)


def parse_args(args: dict[str, str] | None) -> dict[str, str]:
    """Defaults merged with ``args``, validated (``ValueError`` names the bad argument and the valid ones)."""
    args = dict(args or {})
    unknown = sorted(set(args) - set(GRAPH_ARGS))
    if unknown:
        raise ValueError(f"unknown argument {unknown[0]!r}; valid arguments: {', '.join(GRAPH_ARGS)}")
    out = {name: str(args.get(name, a.default)).strip() for name, a in GRAPH_ARGS.items()}
    for name, a in GRAPH_ARGS.items():
        if name in ("sim", "rviz", "lockstep"):
            v = out[name].lower()
            v = {"1": "true", "yes": "true", "on": "true", "0": "false", "no": "false", "off": "false"}.get(v, v)
            out[name] = v
        if a.choices and out[name] not in a.choices:
            shown = [c or "''" for c in a.choices]
            raise ValueError(f"argument {name}:={out[name]!r} is not valid; choose one of {', '.join(shown)}")
    try:
        if float(out["respawn_delay"]) < 0:
            raise ValueError
    except ValueError:
        raise ValueError(f"argument respawn_delay:={out['respawn_delay']!r} must be a number >= 0") from None
    if out["lockstep"] == "true" and out["sim"] != "true":
        raise ValueError("argument lockstep:=true needs sim:=true (a real robot cannot wait for the policy)")
    if out["seed"]:
        try:
            int(out["seed"])
        except ValueError:
            raise ValueError(f"argument seed:={out['seed']!r} must be an integer") from None
    return out


def build_graph(args: dict[str, str] | None = None, share: Path | str | None = None) -> list[NodeSpec]:
    """Every node of the graph for ``args`` (see :data:`GRAPH_ARGS`), with ``enabled`` set.

    A node is enabled when its condition holds (``sim`` nodes with ``sim:=true``, rviz with
    ``rviz:=true``) and, when ``nodes:=a,b`` is given, it is listed there. ``share``: the package
    share directory a relative checkpoint is resolved against (default :func:`humanprompt_ros.paths.share_dir`).
    """
    a = parse_args(args)
    sim, rviz = a["sim"] == "true", a["rviz"] == "true"
    hand = a["hand"]

    camera_params: dict[str, Any] = {}
    source = a["camera_source"] or ("topic" if sim else "")
    if source:
        camera_params["source"] = source
    if source == "topic" and sim:
        camera_params["input_topic"] = SIM_IMAGE_TOPIC
        # relay the sim's frames at their own size (config/sim.yaml image_size, what humanprompt-sim eval
        # gives a policy), so the policy resizes exactly the pixels the benchmark's policies see
        size = sim_image_size()
        camera_params["width"] = camera_params["height"] = size
    if a["camera_path"]:
        camera_params["path"] = a["camera_path"]

    # this launch's own file: a respawned encoder re-applies the prompt, a new launch never resumes an old one
    resume = Path(tempfile.gettempdir()) / f"humanprompt-launch-{os.getpid()}" / "prompt.json"
    encoder_params: dict[str, Any] = {"hand": hand, "policy": a["policy"], "resume_file": str(resume)}
    if a["prompt"]:
        encoder_params["prompt_video"] = a["prompt"]
    policy_params: dict[str, Any] = {"policy": a["policy"], "hand": hand}
    if a["policy"] == "checkpoint":
        ckpt = str(resolve_share_path(a["checkpoint"] or DEFAULT_CHECKPOINT, Path(share) if share else None))
        policy_params["checkpoint"] = ckpt
        encoder_params["checkpoint"] = ckpt
    sim_params: dict[str, Any] = {"hand": hand}
    if a["task"]:
        sim_params["task"] = a["task"]
    if a["seed"]:
        sim_params["seed"] = int(a["seed"])
    command_params: dict[str, Any] = {"hand": hand}
    if a["lockstep"] == "true":
        sim_params.update(lockstep=True, extra_steps=0)  # an episode is the task's horizon, as in the benchmark
        policy_params["lockstep"] = command_params["lockstep"] = True
        command_params["joint_limit_margin"] = 0.0  # the benchmark's hand clamps to the URDF limits only
        camera_params["rate"] = 0.0  # relay every frame: each one is a step

    specs = [
        NodeSpec(
            "sim_driver",
            "humanprompt-sim-driver",
            "humanprompt_ros.nodes.sim_driver",
            "MuJoCo benchmark scene as the robot: camera images, /joint_states, ~/reset, task status",
            params_files=("config/sim_driver.yaml",),
            parameters=sim_params,
            condition="sim",
        ),
        NodeSpec(
            "camera",
            "humanprompt-camera",
            "humanprompt_ros.nodes.camera",
            "camera ingestion → /humanprompt/observation",
            params_files=("config/camera.yaml",),
            parameters=camera_params,
        ),
        NodeSpec(
            "prompt_encoder",
            "humanprompt-prompt-encoder",
            "humanprompt_ros.nodes.prompt_encoder",
            "prompt_video parameter, ~/clear_prompt, ~/record_prompt → /humanprompt/prompt (latched)",
            params_files=("config/prompt_encoder.yaml",),
            parameters=encoder_params,
        ),
        NodeSpec(
            "policy",
            "humanprompt-policy",
            "humanprompt_ros.nodes.policy",
            "observation + prompt + /joint_states → /humanprompt/hand_target",
            params_files=("config/policy.yaml",),
            parameters=policy_params,
        ),
        NodeSpec(
            "command",
            "humanprompt-command",
            "humanprompt_ros.nodes.command",
            "hand target → safe joint commands, wrist target, markers",
            params_files=("config/command.yaml",),
            parameters=command_params,
        ),
        NodeSpec(
            "rviz",
            "rviz2",
            None,
            "rviz2 with rviz/humanprompt.rviz",
            package="rviz2",
            arguments=("-d", "{share}/rviz/humanprompt.rviz"),
            respawn=False,
            condition="rviz",
        ),
    ]
    wanted = [n.strip() for n in a["nodes"].split(",") if n.strip()]
    names = [s.name for s in specs]
    bad = [n for n in wanted if n not in names]
    if bad:
        raise ValueError(f"argument nodes: unknown node {bad[0]!r}; graph nodes: {', '.join(names)}")
    out = []
    for s in specs:
        enabled = {"always": True, "sim": sim, "rviz": rviz}[s.condition] and (not wanted or s.name in wanted)
        out.append(NodeSpec(**{**s.__dict__, "enabled": enabled}))
    return out
