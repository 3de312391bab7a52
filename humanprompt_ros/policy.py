"""The policy protocol (SPEC §4) and its simple backends.

Every backend has the same three calls::

    policy.set_prompt(prompt)      # slow, once per prompt: an Episode (humanprompt_ros.data) or a path
    policy.reset()                 # start of an episode
    chunk = policy.act(frame, proprio)   # frame uint8 (H, W, 3), proprio (24,) → (H, 24) actions

An action chunk holds H unified actions (:mod:`humanprompt_ros.action` layout) to execute in order;
whoever runs the policy executes the whole chunk, then calls :meth:`act` again (the learned
policy's temporal ensembling lives inside that backend). ``proprio`` is the measured hand state in
the unified space.

Backends, built with :func:`make_policy` from a spec string:

* ``scripted``: the benchmark's expert (needs ``env=``, a :class:`humanprompt_ros.sim.env.SimEnv`,
  for its privileged state; tests and data generation only).
* ``replay``: the prompt episode's own unified actions, open loop, chunk by chunk (the classic
  "retarget the human demonstration" baseline: the executor retargets them onto the robot). A
  prompt without actions (a bare video) is refused with a ``ValueError`` that says so.
* ``noop``: holds the current hand pose (does nothing). ``random``: a random walk (``seed=``).
* a checkpoint path: the learned policy, through the loader registered under ``"checkpoint"``
  (:func:`register_policy`); until one is registered, a clear ``ValueError``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np

from .action import ACTION_DIM, HandAction

PolicyFactory = Callable[..., "Policy"]
_REGISTRY: dict[str, PolicyFactory] = {}


@runtime_checkable
class Policy(Protocol):
    def set_prompt(self, prompt: Any) -> None:
        """Take a new prompt (an Episode or a path to an episode dir / video). May raise ValueError."""

    def reset(self) -> None:
        """Start a new episode (the prompt is kept)."""

    def act(self, frame: np.ndarray, proprio: np.ndarray) -> np.ndarray:
        """Camera frame uint8 (H, W, 3) and proprio (24,) → action chunk (H, 24)."""


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
            from . import stage2  # noqa: F401  (registers the learned policy as "checkpoint")
        if "checkpoint" not in _REGISTRY:
            raise ValueError(f"policy {spec!r}: a checkpoint path, but no checkpoint backend is registered "
                             "(register_policy('checkpoint', loader))")
        return _REGISTRY["checkpoint"](path=path, **kwargs)
    raise ValueError(f"unknown policy {spec!r}: not one of {', '.join(available_policies())} and not an existing "
                     "checkpoint path")


def _as_prompt(prompt: Any):
    from .data import Episode, load_episode, load_prompt

    if isinstance(prompt, Episode):
        return prompt
    if isinstance(prompt, (str, Path)):
        p = Path(prompt)
        # replay needs no frames: open episode dirs without decoding their video
        return load_episode(p) if (p / "meta.json").is_file() else load_prompt(p)
    raise ValueError(f"a prompt is an Episode or a path, got {type(prompt).__name__}")


class OpenLoopPlan:
    """Executes a fixed action plan (T, 24) open loop, ``chunk`` actions per :meth:`act` call; after
    the last one it holds the final action. Subclasses fill ``plan`` in :meth:`set_prompt`."""

    needs_prompt_video = False
    name = "open-loop"

    def __init__(self, chunk: int = 8, **_: Any):
        if chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {chunk}")
        self.chunk = chunk
        self.plan: np.ndarray | None = None
        self.t = 0

    def reset(self) -> None:
        self.t = 0

    def act(self, frame: np.ndarray, proprio: np.ndarray) -> np.ndarray:
        if self.plan is None:
            raise ValueError(f"the {self.name} policy has no prompt: call set_prompt() first")
        idx = np.minimum(np.arange(self.t, self.t + self.chunk), len(self.plan) - 1)
        self.t += self.chunk
        return self.plan[idx].copy()


class ReplayPolicy(OpenLoopPlan):
    """Replays the prompt's unified actions open loop (see :class:`OpenLoopPlan`)."""

    name = "replay"

    @property
    def actions(self) -> np.ndarray | None:
        """The prompt's (T, 24) unified actions being replayed (the plan), or None before a prompt."""
        return self.plan

    def set_prompt(self, prompt: Any) -> None:
        ep = _as_prompt(prompt)
        actions = np.asarray(ep.require_actions("the replay policy"), np.float64)
        if actions.ndim != 2 or actions.shape[1] != ACTION_DIM or len(actions) == 0:
            raise ValueError(f"the replay policy: prompt actions must be (T, {ACTION_DIM}) with T > 0, got {actions.shape}")
        if not np.all(np.isfinite(actions)):
            raise ValueError("the replay policy: the prompt's actions contain NaN or inf")
        self.plan = actions
        self.t = 0


class NoOpPolicy:
    """Does nothing: commands the current measured hand pose."""

    needs_prompt_video = False

    def __init__(self, **_: Any):
        pass

    def set_prompt(self, prompt: Any) -> None:
        pass

    def reset(self) -> None:
        pass

    def act(self, frame: np.ndarray, proprio: np.ndarray) -> np.ndarray:
        return np.asarray(proprio, np.float64).reshape(1, ACTION_DIM).copy()


class RandomPolicy:
    """A random walk of the wrist over the table and random finger poses (seeded)."""

    needs_prompt_video = False
    LOW = np.array([-0.3, -0.22, 0.03])
    HIGH = np.array([0.25, 0.22, 0.3])

    def __init__(self, seed: int = 0, step: float = 0.04, **_: Any):
        self.seed = seed
        self.step = step
        self.rng = np.random.default_rng(seed)

    def set_prompt(self, prompt: Any) -> None:
        pass

    def reset(self) -> None:
        self.rng = np.random.default_rng([self.seed, int(self.rng.integers(1 << 30))])

    def act(self, frame: np.ndarray, proprio: np.ndarray) -> np.ndarray:
        from .sim.experts import OPEN, PADDLE, pinch

        cur = HandAction.from_array(np.asarray(proprio, np.float64))
        pos = np.clip(cur.wrist_pos + self.rng.normal(0, self.step, 3), self.LOW, self.HIGH)
        yaw = float(np.arctan2(cur.wrist_rot[1, 0], cur.wrist_rot[0, 0]) + self.rng.normal(0, 0.2))
        c, s = np.cos(yaw), np.sin(yaw)
        rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])
        poses = [OPEN, PADDLE, pinch(0.025, False), pinch(0.025, True)]
        w = self.rng.dirichlet(np.ones(len(poses)))
        tips = sum(wi * p for wi, p in zip(w, poses)) + self.rng.normal(0, 0.01, (5, 3))
        return HandAction(pos, rot, tips).to_array().reshape(1, ACTION_DIM)


class ScriptedPolicy:
    """The benchmark's expert as a policy: plans from the env's privileged initial state at
    :meth:`reset` (call it after ``env.reset``) and returns one action per :meth:`act`."""

    needs_prompt_video = False

    def __init__(self, env=None, **_: Any):
        if env is None:
            raise ValueError("the scripted policy needs the simulation (make_policy('scripted', env=env)): it reads "
                             "privileged state and only exists for tests and data generation")
        self.env = env
        self.plan: np.ndarray | None = None

    def set_prompt(self, prompt: Any) -> None:
        pass  # the expert knows the task from the env

    def reset(self) -> None:
        from .sim.env import home_action
        from .sim.experts import expert_actions

        self.plan = expert_actions(self.env.instance, home_action(self.env.cfg), self.env.horizon)

    def act(self, frame: np.ndarray, proprio: np.ndarray) -> np.ndarray:
        if self.plan is None:
            self.reset()
        t = min(self.env.t, len(self.plan) - 1)
        return self.plan[t:t + 1].copy()


register_policy("replay", ReplayPolicy)
register_policy("noop", NoOpPolicy)
register_policy("random", RandomPolicy)
register_policy("scripted", ScriptedPolicy)
