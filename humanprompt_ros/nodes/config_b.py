"""Typed parameters of the prompt encoder, policy and sim driver nodes (ROS-free).

Same conventions as :mod:`humanprompt_ros.nodes.config` (one dataclass per node, every field a
ROS parameter written with :func:`~humanprompt_ros.nodes.config.param`, defaults in
``config/<node>.yaml``, a ROS 2 parameter file with a ``<node>: ros__parameters:`` section).

Loaders (each returns the validated dataclass; a bad value raises ``ConfigError`` naming the file
and the key, e.g. ``config/policy.yaml: policy.ros__parameters.rate: must be in [0.1, 1000], got 0``):

* ``config/prompt_encoder.yaml`` → :func:`load_prompt_encoder_config`
* ``config/policy.yaml`` → :func:`load_policy_config`
* ``config/sim_driver.yaml`` → :func:`load_sim_driver_config`
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .config import load_node_config, param

__all__ = [
    "PromptEncoderConfig", "PolicyConfig", "SimDriverConfig",
    "load_prompt_encoder_config", "load_policy_config", "load_sim_driver_config", "expand_dirs",
]

BACKENDS = ("replay", "scripted", "checkpoint")


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

    prompt_video: str = param("", "the active prompt: a demonstration episode directory or a video file. Setting it "
                                  "validates and encodes the prompt before answering; a bad prompt is refused with "
                                  "the reason and the previous one stays active. Empty: no prompt (stop)")
    policy: Literal["replay", "scripted", "checkpoint"] = param(
        "checkpoint", "the policy backend the prompt is for (its requirements are checked: replay needs the "
                      "demonstration's actions, checkpoint a video)", read_only=True)
    checkpoint: str = param("", "policy:=checkpoint: the checkpoint whose prompt encoder encodes the prompt when it "
                                "is set; the tokens are published on /humanprompt/prompt_tokens for the policy node "
                                "(empty: validate the video only; the policy node encodes it)", read_only=True)
    hand: str = param("config/hands/allegro_right.yaml", "hand YAML (relative: to the package share directory)",
                      read_only=True)
    prompt_dirs: list[str] = param(None, "directories prompts may come from (~ and $VARS expanded; an entry whose "
                                         "variable is unset is skipped); a path outside all of them is refused. "
                                         "Empty list: any path", read_only=True, default_factory=list)
    record_dir: str = param("", "where ~/record_prompt writes its videos (empty: the first prompt directory)",
                            read_only=True)
    record_seconds: float = param(4.0, "~/record_prompt: seconds recorded from the observation topic",
                                  range=(0.5, 120.0))
    min_frames: int = param(4, "a prompt video needs at least this many frames", range=(1, 100000))
    diagnostics_period: float = param(1.0, "seconds between /diagnostics updates", read_only=True,
                                      range=(0.05, 60.0))

    def validate(self) -> None:
        if self.policy == "checkpoint" and self.checkpoint and not self.checkpoint.strip():
            raise ValueError("checkpoint: must not be blank")


def load_prompt_encoder_config(path: str | Path, overrides: dict[str, Any] | None = None) -> PromptEncoderConfig:
    """``config/prompt_encoder.yaml`` → :class:`PromptEncoderConfig` (validated)."""
    return load_node_config(PromptEncoderConfig, path, "prompt_encoder", overrides)


# -- policy -------------------------------------------------------------------------------------------
@dataclass
class PolicyConfig:
    """Parameters of the policy node (``humanprompt_ros.nodes.policy``)."""

    policy: Literal["replay", "scripted", "checkpoint"] = param(
        "checkpoint", "backend: replay (the prompt's own unified actions, open loop), scripted (the benchmark's "
                  "expert for the prompt's task and seed; tests only), checkpoint (the learned policy)",
        read_only=True)
    checkpoint: str = param("", "policy:=checkpoint: checkpoint file (absolute, or relative to the working or share "
                                "directory); empty: models/policy.safetensors", read_only=True)
    hand: str = param("config/hands/allegro_right.yaml", "hand YAML (relative: to the package share directory)",
                      read_only=True)
    rate: float = param(10.0, "control rate in Hz: one action of the chunk per period (the demonstrations' rate)",
                        read_only=True, range=(0.1, 1000.0))
    chunk: int = param(8, "replay/scripted: actions per act() call (the chunk is executed step by step)",
                       read_only=True, range=(1, 1000))
    lookahead: int = param(0, "request the next chunk (from the freshest frame and proprio, on a worker thread) when "
                              "this many actions of the current chunk are left, so control does not stall while "
                              "it is computed (cover the inference time in control periods); 0: execute the whole "
                              "chunk, then compute the next one on the control thread (the hand pauses for the "
                              "inference; the chunk starts at the observed state, as in humanprompt-sim eval). A "
                              "backend whose act() takes lag= (the learned policy: at most horizon - execute, 8 for "
                              "the shipped one, so lookahead <= 7) gets how far ahead it plans and aligns its plan",
                           range=(0, 1000))
    lockstep: bool = param(False, "evaluation with a lockstep simulator (bringup lockstep:=true): one action per "
                                  "new camera frame instead of one per 1/rate s, no stale-camera pause",
                           read_only=True)
    max_observation_age: float = param(0.25, "pause (no targets, the chunk does not advance) while the latest camera "
                                             "frame is older than this (s)", range=(0.01, 10.0))
    require_joint_states: bool = param(True, "no targets before the first /joint_states (proprio needs them)")
    wrist_pose_topic: str = param("/humanprompt/wrist_pose", "measured pose of the hand's base link (PoseStamped; "
                                  "the sim driver publishes it, a real arm's driver should); until one arrives the "
                                  "last /humanprompt/wrist_target is used", read_only=True)
    frame_id: str = param("world", "header.frame_id of the hand targets")
    warmup: bool = param(True, "run one act() on each new prompt before using it (the first real step is not slow)",
                         read_only=True)
    device: str = param("cpu", "policy:=checkpoint: torch device", read_only=True)
    threads: int = param(1, "policy:=checkpoint: torch CPU threads", read_only=True, range=(0, 64))
    guidance: float = param(0.0, "policy:=checkpoint: classifier-free guidance scale of the head; 0: the checkpoint's "
                                 "own (policy.guidance). Only a head trained with policy.global_dropout > 0 can be "
                                 "guided", read_only=True, range=(0.0, 20.0))
    prompt_tokens_timeout: float = param(
        2.0, "policy:=checkpoint: seconds the prompt worker waits for the prompt encoder's tokens of a new prompt "
             "(/humanprompt/prompt_tokens, same checkpoint) before encoding the prompt itself; 0: use them only "
             "when already there. Control never waits on this", range=(0.0, 60.0))
    diagnostics_period: float = param(1.0, "seconds between /diagnostics updates", read_only=True,
                                      range=(0.05, 60.0))


def load_policy_config(path: str | Path, overrides: dict[str, Any] | None = None) -> PolicyConfig:
    """``config/policy.yaml`` → :class:`PolicyConfig` (validated)."""
    return load_node_config(PolicyConfig, path, "policy", overrides)


# -- sim driver ---------------------------------------------------------------------------------------
@dataclass
class SimDriverConfig:
    """Parameters of the sim driver node (``humanprompt_ros.nodes.sim_driver``)."""

    task: str = param("press_button", "benchmark task: a name under config/tasks/ or a task YAML path; applied "
                                      "at the next ~/reset")
    seed: int = param(0, "task seed (object placement, sizes, colours, goal); applied at the next ~/reset",
                      range=(0, 2**31 - 1))
    hand: str = param("config/hands/allegro_right.yaml", "hand YAML; the sim's robot is the Allegro hand",
                      read_only=True)
    camera_rate: float = param(15.0, "camera images per second on /humanprompt/sim/image_raw", range=(0.5, 120.0))
    image_size: int = param(0, "camera image size in pixels (square); 0: config/sim.yaml's image_size (the "
                               "models' size)", read_only=True, range=(0, 1024))
    tick_rate: float = param(100.0, "physics is advanced in ticks of 1/tick_rate s (real time); joint commands and "
                                    "the wrist target are applied per tick", read_only=True, range=(10.0, 1000.0))
    joint_state_rate: float = param(50.0, "/joint_states and /humanprompt/wrist_pose per second",
                                    read_only=True, range=(1.0, 1000.0))
    status_rate: float = param(2.0, "/humanprompt/task_status per second (also at once on a change)",
                               range=(0.1, 100.0))
    extra_steps: int = param(20, "control steps after the task's horizon before the episode is done (slack for "
                                 "the graph's latency)", range=(0, 100000))
    frame_id: str = param("world", "frame of the camera images' poses and of the wrist pose", read_only=True)
    diagnostics_period: float = param(1.0, "seconds between /diagnostics updates", read_only=True,
                                      range=(0.05, 60.0))
    lockstep: bool = param(False, "evaluation mode: physics stands still until the command for the current step "
                                  "arrives (a joint command and the wrist target sent after it), then advances "
                                  "one control period exactly as humanprompt-sim eval does (SimEnv.step_joints) and "
                                  "publishes the new state and a camera frame; results do not depend on machine "
                                  "speed. Off: real-time physics (what a real robot does)", read_only=True)
    lockstep_timeout: float = param(2.0, "lockstep: publish the current frame again when no command came for this "
                                         "long (a dropped message must not stall the episode)", range=(0.1, 60.0))


def load_sim_driver_config(path: str | Path, overrides: dict[str, Any] | None = None) -> SimDriverConfig:
    """``config/sim_driver.yaml`` → :class:`SimDriverConfig` (validated)."""
    return load_node_config(SimDriverConfig, path, "sim_driver", overrides)
