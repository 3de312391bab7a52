"""The Policy contract and the registry that builds a policy from its name.

Every policy has the same three calls::

    policy.set_prompt(prompt)      # slow, once per prompt: an Episode (humanprompt_ros.data) or a path
    policy.reset()                 # start of an episode
    chunk = policy.act(frame, proprio)   # frame uint8 (H, W, 3), proprio (24,) → (n, 24) actions

An action chunk holds n ≥ 1 unified actions (:mod:`humanprompt_ros.action` layout) to execute in
order; whoever runs the policy executes the whole chunk, then calls :meth:`act` again (the learned
policy's temporal ensembling lives inside that policy). ``proprio`` is the measured hand state in
the unified space. A policy that needs the prompt's video (not just its actions) says so with
``needs_prompt_video = True``.

Policies are built with :func:`make_policy` from a spec string: a registered name (``scripted``,
``replay``, ``noop``, ``random``: :mod:`.baselines`) or a checkpoint path (the learned policy,
registered as ``checkpoint``: :mod:`.learned`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np

from humanprompt_ros.data import Episode, load_episode, load_prompt

PolicyFactory = Callable[..., "Policy"]
_REGISTRY: dict[str, PolicyFactory] = {}


@runtime_checkable
class Policy(Protocol):
    def set_prompt(self, prompt: Any) -> None:
        """Take a new prompt (an Episode or a path to an episode dir / video). May raise ValueError."""

    def reset(self) -> None:
        """Start a new episode (the prompt is kept)."""

    def act(self, frame: np.ndarray, proprio: np.ndarray) -> np.ndarray:
        """Camera frame uint8 (H, W, 3) and proprio (24,) → action chunk (n, 24), n ≥ 1."""


def register_policy(name: str, factory: PolicyFactory) -> None:
    """Make ``make_policy(name, ...)`` build ``factory(**kwargs)``; ``"checkpoint"`` handles paths."""
    _REGISTRY[name] = factory


def available_policies() -> list[str]:
    return sorted(_REGISTRY)


def make_policy(spec: str, **kwargs: Any) -> Policy:
    """Build a policy from its spec: a registered name (scripted, replay, noop, random) or a
    checkpoint path (handled by the ``checkpoint`` factory, called as ``factory(path=..., **kwargs)``)."""
    if spec in _REGISTRY:
        return _REGISTRY[spec](**kwargs)
    path = Path(spec)
    if path.exists():
        if "checkpoint" not in _REGISTRY:
            raise ValueError(
                f"policy {spec!r}: a checkpoint path, but no checkpoint backend is registered "
                "(register_policy('checkpoint', loader))"
            )
        return _REGISTRY["checkpoint"](path=path, **kwargs)
    raise ValueError(
        f"unknown policy {spec!r}: not one of {', '.join(available_policies())} and not an existing checkpoint path"
    )


def as_prompt(prompt: Any) -> Episode:
    """A prompt as an :class:`~humanprompt_ros.data.Episode`: itself, an episode directory or a video file."""
    if isinstance(prompt, Episode):
        return prompt
    if isinstance(prompt, (str, Path)):
        p = Path(prompt)
        # replay needs no frames: open episode dirs without decoding their video
        return load_episode(p) if (p / "meta.json").is_file() else load_prompt(p)
    raise ValueError(f"a prompt is an Episode or a path, got {type(prompt).__name__}")
