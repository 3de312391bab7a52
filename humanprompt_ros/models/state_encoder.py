"""The privileged-state encoder of the ``condition: state`` research variant: the true scene state as tokens.

    state (B, D) floats ──▶ normalise ──▶ split into groups (one per object, one for the goal)
                        ──▶ one linear map + a slot embedding per group ──▶ tokens (B, G, W)

Why it exists: it answers whether the rest of the recipe (action chunks, the diffusion head, execution)
can do the tasks at all when perception is perfect. The simulator records the state of every episode
(``state.npy``, laid out as :data:`humanprompt_ros.sim.env.STATE_LAYOUT`); a real robot has no such
signal, so a state policy runs in the simulator only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from humanprompt_ros.models.diffusion_head import Normalizer


@dataclass
class StateEncoderConfig:
    # sizes of the consecutive groups of the state vector, one token each: HumanPrompt-Sim's three objects
    # (x, y, z, cos yaw, sin yaw, articulation, present) and the goal (x, y, has_goal)
    groups: list[int] = field(default_factory=lambda: [7, 7, 7, 3])
    # while training, Gaussian noise of these sizes on what a state estimator gets wrong (present objects and
    # goal only): positions x, y (m), yaw (rad), articulation (its own unit: m or rad)
    position_noise: float = 0.0
    yaw_noise: float = 0.0
    articulation_noise: float = 0.0
    # > 0: one more token, the wrist's displacement over the last motion_lag steps (from the proprioception; set it
    # to the policy's execute): a hand halfway down to a button looks the same going down and coming back up
    motion_lag: int = 0

    def validate(self) -> None:
        if not self.groups or any(g <= 0 for g in self.groups):
            raise ValueError(f"groups: positive sizes of the state's parts, got {self.groups}")
        if min(self.position_noise, self.yaw_noise, self.articulation_noise) < 0:
            raise ValueError("position_noise, yaw_noise and articulation_noise must be >= 0")
        if self.motion_lag < 0:
            raise ValueError(f"motion_lag: steps (0: off), got {self.motion_lag}")

    @property
    def dim(self) -> int:
        """Size of the scene state (the simulator's ``state.npy`` rows)."""
        return sum(self.groups)

    @property
    def input_dim(self) -> int:
        """Size of what the encoder reads: the scene state, then the wrist motion with ``motion_lag``."""
        return self.dim + (MOTION if self.motion_lag else 0)


MOTION = 3  # the wrist's x, y, z displacement (m)


def wrist_motion(proprio: np.ndarray, t: np.ndarray | int, lag: int) -> np.ndarray:
    """The wrist's displacement (…, 3) from step ``t - lag`` (clamped at 0) to ``t``, off an episode's
    proprioception (T+1, 24) (the unified layout: wrist position first)."""
    t = np.asarray(t)
    return proprio[t, :MOTION] - proprio[np.maximum(t - lag, 0), :MOTION]


def encoder_input(cfg: StateEncoderConfig, state: np.ndarray, proprio: np.ndarray, t: np.ndarray | int) -> np.ndarray:
    """What the encoder reads at step(s) ``t`` of an episode: ``state[t]`` and, with ``motion_lag``, the wrist's
    motion (:func:`wrist_motion`) after it."""
    if not cfg.motion_lag:
        return state[t]
    return np.concatenate([state[t], wrist_motion(proprio, t, cfg.motion_lag).astype(state.dtype)], axis=-1)


class StateEncoder(nn.Module):
    """(B, D) privileged state (+ the wrist motion with ``motion_lag``) → (B, G, W) tokens; the normaliser is
    fitted on the training states."""

    def __init__(self, cfg: StateEncoderConfig, width: int):
        super().__init__()
        self.cfg = cfg
        self.groups = list(cfg.groups) + ([MOTION] if cfg.motion_lag else [])
        self.norm = Normalizer(cfg.input_dim, min_std=1e-3)
        self.embed = nn.ModuleList(nn.Linear(g, width) for g in self.groups)
        self.slot = nn.Parameter(torch.zeros(len(self.groups), width))
        self.out = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.GELU(), nn.Linear(width, width))

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        if state.shape[-1] != self.cfg.input_dim:
            raise ValueError(f"state of {state.shape[-1]} values, this policy reads {self.cfg.input_dim}")
        state = state.float()
        if self.training:
            state = self.perturb(state)
        parts = torch.split(self.norm.normalize(state), self.groups, dim=-1)
        tokens = torch.stack([f(p) for f, p in zip(self.embed, parts)], dim=1) + self.slot
        return tokens + self.out(tokens)

    def perturb(self, state: torch.Tensor) -> torch.Tensor:
        """(B, D) states with the configured noise on each present object (groups of 7: x, y, z, cos yaw,
        sin yaw, articulation, present) and goal (a group of 3: x, y, has_goal)."""
        cfg = self.cfg
        if not (cfg.position_noise or cfg.yaw_noise or cfg.articulation_noise):
            return state
        out, start = state.clone(), 0
        for g in cfg.groups:
            part, on = out[:, start : start + g], out[:, start + g - 1 : start + g]  # the last: present / has_goal
            part[:, :2] += cfg.position_noise * torch.randn_like(part[:, :2]) * on
            if g == 7:
                yaw = torch.atan2(part[:, 4], part[:, 3]) + cfg.yaw_noise * torch.randn_like(part[:, 3]) * on[:, 0]
                part[:, 3], part[:, 4] = torch.cos(yaw) * on[:, 0], torch.sin(yaw) * on[:, 0]
                part[:, 5] += cfg.articulation_noise * torch.randn_like(part[:, 5]) * on[:, 0]
            start += g
        return out
