"""Prompt validation, ROS-free: is this path a prompt the configured policy can use, and what does the
operator see about it (the prompt message)? The prompt encoder node is its thin adapter.

A prompt is refused, with the reason, when it breaks a size limit (``max_file_mb``, ``max_pixels``,
``max_duration_s``: checked before decoding), cannot be loaded or encoded, is an episode whose ``meta.json``
``fps`` is not a frame rate, or, with ``strict``, lies out of distribution
(:mod:`humanprompt_ros.policies.prompt_fit`).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from humanprompt_ros.config.nodes import PromptEncoderConfig, StartupError, expand_dirs
from humanprompt_ros.control.backend import checkpoint_file
from humanprompt_ros.data import PromptLimits, load_prompt
from humanprompt_ros.models.checkpoint import checkpoint_identity
from humanprompt_ros.policies import make_policy
from humanprompt_ros.policies.prompt_fit import has_prototypes, load_calibration


class PromptError(ValueError):
    """A prompt that cannot be used; the message is the reason shown to the operator."""


def _prompt_id(key: str, n: int) -> str:
    """A prompt's id: ``KEY@N``, KEY naming the file and its version (name-sha1 of path and mtime), N counting the
    prompts this encoder has set."""
    return f"{key}@{n}"


def _split_id(pid: str) -> tuple[str, int | None]:
    """``KEY@N`` → (KEY, N); N is None when ``pid`` is not such an id."""
    key, _, n = pid.rpartition("@")
    return (key, int(n)) if n.isdigit() else (pid, None)


class PromptValidator:
    """The ROS-free core: check and encode a prompt for the configured backend."""

    def __init__(self, cfg: PromptEncoderConfig):
        self.cfg = cfg
        self.dirs = expand_dirs(cfg.prompt_dirs)
        self.backend = None
        self.counter = 0
        self.checkpoint_id = ""  # identity of the checkpoint that encodes prompts here ("" : none)
        self.encoded: tuple | None = None  # (prompt id, tokens (1, S, D) float32, skill or None) of the last validate
        self.calibration, self.calibration_note = None, "no checkpoint here: no distance"
        self.has_distance = False  # whether the checkpoint here can tell how far a prompt is from its training
        if cfg.policy == "replay":
            self.backend = make_policy("replay", camera_pose=cfg.camera_pose)
        elif cfg.policy == "checkpoint" and cfg.checkpoint:
            path = checkpoint_file(cfg.checkpoint)
            before = checkpoint_identity(path)
            self.backend = make_policy(str(path))
            self.checkpoint_id = before if checkpoint_identity(path) == before else ""
            self.has_distance = has_prototypes(self.backend.model)
            self.calibration, self.calibration_note = (
                load_calibration(path) if self.has_distance else (None, "no PDCP prototypes in the checkpoint")
            )
        problem = self.strict_problem()
        if problem:
            raise StartupError(problem)

    def ood_threshold(self, cfg: PromptEncoderConfig | None = None) -> float | None:
        """The distance beyond which a prompt is out of distribution: ``ood_threshold`` (of ``cfg``, default
        the current config), else the calibration's; None when neither says."""
        cfg = cfg or self.cfg
        if cfg.ood_threshold > 0:
            return float(cfg.ood_threshold)
        return None if self.calibration is None else float(self.calibration.threshold)

    def strict_problem(self, cfg: PromptEncoderConfig | None = None) -> str:
        """Why ``strict`` (of ``cfg``, default the current config) cannot be honoured here ("" when it can,
        or is off)."""
        if not (cfg or self.cfg).strict:
            return ""
        if not self.has_distance:
            return (
                "strict: refusing out-of-distribution prompts needs policy: checkpoint with a checkpoint trained "
                f"with PDCP skill prototypes ({self.calibration_note})"
            )
        if self.ood_threshold(cfg) is None:
            return f"strict: no distance threshold: {self.calibration_note}; or set ood_threshold"
        return ""

    def limits(self) -> PromptLimits:
        return PromptLimits(self.cfg.max_duration_s, self.cfg.max_pixels, self.cfg.max_file_mb)

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
        problem = self.strict_problem()
        if problem:
            raise PromptError(problem)
        try:
            ep = load_prompt(real, min_frames=self.cfg.min_frames, limits=self.limits())
        except ValueError as exc:
            raise PromptError(str(exc)) from None
        video = ep.video_info
        fps = ep.meta.get("fps")
        if fps is not None and not (type(fps) in (int, float) and 0 < fps < float("inf")):  # not bool, nan, inf
            raise PromptError(f"prompt {real}: meta.json fps {fps!r} is not a frame rate (a positive number)")
        info: dict[str, Any] = {
            "path": str(real),
            "task": ep.task,
            "skill": ep.skill,
            "embodiment": ep.embodiment,
            "seed": ep.seed,
            "frames": video.frames,
            "fps": fps,
            "duration_s": round(video.frames / fps, 3) if fps else None,
            "size": [video.width, video.height],
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
            report: dict[str, Any] = {}
            try:
                tokens, skill = self.backend.encode(ep, report)
            except ValueError as exc:
                raise PromptError(str(exc) if str(real) in str(exc) else f"prompt {real}: {exc}") from None
            info.update(report)
            self._judge_distance(real, info)
            # a state-conditioned policy reads no tokens, only the skill: an empty (1, 0, 0) array carries it
            tokens = np.zeros((1, 0, 0), np.float32) if tokens is None else tokens.detach().cpu().float().numpy()
            encoded = (tokens, None if skill is None else int(skill.reshape(-1)[0]))
            info["checkpoint"] = self.checkpoint_id
        self.counter += 1
        digest = hashlib.sha1(f"{real}:{real.stat().st_mtime_ns}".encode()).hexdigest()[:6]
        name = (
            real.name if real.is_file() else "-".join(p for p in (str(ep.task or real.name), str(ep.seed or "")) if p)
        )
        info["id"] = _prompt_id(f"{name}-{digest}", self.counter)
        self.encoded = None if encoded is None else (info["id"], *encoded)
        info["encode_s"] = round(time.perf_counter() - t0, 4)
        info["set_at"] = time.time()
        return info

    def remember(self, info: dict[str, Any]) -> None:
        """Keep the active prompt's path and id in ``resume_file`` (``{"id": ""}`` after a clear), written
        atomically; nothing without a ``resume_file``."""
        if not self.cfg.resume_file:
            return
        path = Path(self.cfg.resume_file).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps({"id": info.get("id", ""), "path": info.get("path", "")}))
        tmp.replace(path)

    def resume(self) -> dict[str, Any] | None:
        """The prompt kept in ``resume_file`` by an earlier run of this node, validated and encoded again → its
        message under the same id (so a policy node that runs it carries on), or None when there is none.
        ``PromptError`` when it is no longer usable (moved, changed into something refused). A file changed since
        is a new prompt: it gets a new id, and the policy starts it from the beginning."""
        path = Path(self.cfg.resume_file).expanduser() if self.cfg.resume_file else None
        if path is None or not path.is_file():
            return None
        try:
            kept = json.loads(path.read_text())
            pid, video = str(kept["id"]), str(kept["path"])
        except (ValueError, KeyError, TypeError):
            raise PromptError(f"{path}: not a kept prompt (expected {{'id': ..., 'path': ...}}); ignored") from None
        if not pid:
            return None
        info = self.validate(video)
        key, count = _split_id(pid)
        if _split_id(info["id"])[0] == key and count is not None:  # the same file, unchanged
            info["id"], self.counter = pid, max(self.counter, count)
            if self.encoded is not None:
                self.encoded = (pid, *self.encoded[1:])
        return info

    def _judge_distance(self, real: Path, info: dict[str, Any]) -> None:
        """Add ``ood_threshold`` and ``ood`` to a prompt message with ``ood_distance``; with ``strict``, refuse
        an out-of-distribution prompt."""
        if "ood_distance" not in info:
            return
        threshold = self.ood_threshold()
        info["ood_threshold"] = threshold
        info["ood"] = None if threshold is None else bool(info["ood_distance"] > threshold)
        if self.cfg.strict and info["ood"]:
            raise PromptError(
                f"prompt {real}: out of distribution: its embedding lies {info['ood_distance']:.3f} (cosine "
                f"distance) from the nearest skill prototype ({info['ood_skill']}), beyond the threshold "
                f"{threshold:.3f} (strict: true)"
            )

    def record_dir(self) -> Path:
        if self.cfg.record_dir:
            return Path(os.path.expandvars(os.path.expanduser(self.cfg.record_dir))).absolute()
        if not self.dirs:
            raise PromptError("no record_dir and no prompt_dirs configured: nowhere to write the recording")
        return self.dirs[0]
