"""Prompt validation, ROS-free: is this path a prompt the configured policy can use, and what does the
operator see about it (the prompt message)? The prompt encoder node is its thin adapter.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

from humanprompt_ros.config.nodes import PromptEncoderConfig, StartupError, expand_dirs
from humanprompt_ros.data import load_prompt
from humanprompt_ros.models.checkpoint import checkpoint_identity
from humanprompt_ros.paths import resolve_checkpoint
from humanprompt_ros.policies import make_policy


class PromptError(ValueError):
    """A prompt that cannot be used; the message is the reason shown to the operator."""


class PromptValidator:
    """The ROS-free core: check and encode a prompt for the configured backend."""

    def __init__(self, cfg: PromptEncoderConfig):
        self.cfg = cfg
        self.dirs = expand_dirs(cfg.prompt_dirs)
        self.backend = None
        self.counter = 0
        self.checkpoint_id = ""  # identity of the checkpoint that encodes prompts here ("" : none)
        self.encoded: tuple | None = None  # (prompt id, tokens (1, S, D) float32, skill or None) of the last validate
        if cfg.policy == "replay":
            self.backend = make_policy("replay")
        elif cfg.policy == "checkpoint" and cfg.checkpoint:
            path = resolve_checkpoint(cfg.checkpoint)
            if not path.is_file():
                raise StartupError(
                    f"checkpoint: no such checkpoint file: {path} (train one with humanprompt-train "
                    "stage2, or set checkpoint:=PATH, or use policy:=replay)"
                )
            before = checkpoint_identity(path)
            self.backend = make_policy(str(path))
            self.checkpoint_id = before if checkpoint_identity(path) == before else ""

    def check_location(self, path: Path) -> Path:
        real = Path(os.path.realpath(path))
        if not self.dirs:
            return real
        for d in self.dirs:
            droot = Path(os.path.realpath(d))
            if real == droot or droot in real.parents:
                return real
        shown = ", ".join(str(d) for d in self.dirs)
        raise PromptError(f"prompt {path}: outside the configured prompt directories ({shown})")

    def validate(self, value: str) -> dict[str, Any]:
        """The prompt message for ``value`` (a path), or ``PromptError`` with the reason."""
        t0 = time.perf_counter()
        if not value.strip():
            raise PromptError("empty path")
        path = Path(value).expanduser()
        if not path.is_absolute():
            path = path.absolute()
        real = self.check_location(path)
        try:
            ep = load_prompt(real, min_frames=self.cfg.min_frames)
        except ValueError as exc:
            raise PromptError(str(exc)) from None
        frames = len(ep.frames())
        info: dict[str, Any] = {
            "path": str(real),
            "task": ep.task,
            "skill": ep.skill,
            "embodiment": ep.embodiment,
            "seed": ep.seed,
            "frames": frames,
            "fps": ep.fps,
            "backend": self.cfg.policy,
        }
        if self.cfg.policy == "replay":
            try:
                self.backend.set_prompt(ep)
            except ValueError as exc:
                raise PromptError(str(exc)) from None
            info["actions"] = int(len(self.backend.actions))
        elif self.cfg.policy == "scripted":
            if ep.task is None or ep.seed is None:
                raise PromptError(
                    f"prompt {real}: the scripted policy needs a benchmark episode (a meta.json naming "
                    "the task and seed)"
                )
        encoded = None
        if self.cfg.policy == "checkpoint" and self.backend is not None:  # with its prompt encoder here
            try:
                tokens, skill = self.backend.encode(ep)
            except ValueError as exc:
                raise PromptError(str(exc)) from None
            encoded = (tokens.detach().cpu().float().numpy(), None if skill is None else int(skill.reshape(-1)[0]))
            info["checkpoint"] = self.checkpoint_id
        self.counter += 1
        digest = hashlib.sha1(f"{real}:{real.stat().st_mtime_ns}".encode()).hexdigest()[:6]
        name = (
            real.name if real.is_file() else "-".join(p for p in (str(ep.task or real.name), str(ep.seed or "")) if p)
        )
        info["id"] = f"{name}-{digest}@{self.counter}"
        self.encoded = None if encoded is None else (info["id"], *encoded)
        info["encode_s"] = round(time.perf_counter() - t0, 4)
        info["set_at"] = time.time()
        return info

    def record_dir(self) -> Path:
        if self.cfg.record_dir:
            return Path(os.path.expandvars(os.path.expanduser(self.cfg.record_dir))).absolute()
        if not self.dirs:
            raise PromptError("no record_dir and no prompt_dirs configured: nowhere to write the recording")
        return self.dirs[0]
