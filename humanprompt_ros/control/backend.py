"""Building the configured policy for the policy node.

``build_backend`` turns the node's :class:`~humanprompt_ros.config.nodes.PolicyConfig` into a
policy without a prompt, or a :class:`~humanprompt_ros.config.nodes.StartupError` that says why not.
"""

from __future__ import annotations

from pathlib import Path

from humanprompt_ros.config.nodes import PolicyConfig, StartupError
from humanprompt_ros.paths import resolve_checkpoint
from humanprompt_ros.policies import ScriptedFromPrompt, make_policy


def checkpoint_file(value: str) -> Path:
    """The checkpoint a node's ``checkpoint`` parameter names (empty: the shipped one); ``StartupError`` when it
    is not a file."""
    path = resolve_checkpoint(value)
    if not path.is_file():
        raise StartupError(
            f"checkpoint: no such checkpoint file: {path} (train one with humanprompt-train, or set checkpoint:=PATH)"
        )
    return path


def build_backend(cfg: PolicyConfig, hand_name: str):
    """The configured backend, without a prompt. ``StartupError`` with the reason when it cannot be built."""
    if cfg.policy == "replay":
        try:
            return make_policy("replay", chunk=cfg.chunk, camera_pose=cfg.camera_pose, rate=cfg.rate)
        except ValueError as exc:
            raise StartupError(str(exc)) from None
    if cfg.policy == "scripted":
        return ScriptedFromPrompt(chunk=cfg.chunk)
    path = checkpoint_file(cfg.checkpoint)
    try:
        policy = make_policy(
            str(path), hand=hand_name, device=cfg.device, threads=cfg.threads, guidance=cfg.guidance or None
        )
    except Exception as exc:  # noqa: BLE001 - CheckpointError, ValueError, torch errors: all say why
        raise StartupError(f"checkpoint {path}: {exc}") from None
    if getattr(policy, "needs_state", False):
        raise StartupError(
            f"checkpoint {path}: conditioned on the simulator's true scene state (condition: state), which no "
            "camera gives: bundle a state estimator into it (humanprompt-train export --estimator EST "
            "--prompt-embedding EMB), or evaluate it with humanprompt-sim eval"
        )
    return policy
