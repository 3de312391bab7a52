"""The state estimator: reads the scene state (objects and goal) off one camera frame, given the skill.

    frame (B, S, S, 3) uint8 ──▶ conv stack (FiLM by the skill) ──▶ one heat map per slot ──▶ soft-argmax
        ──▶ where each slot is in the image (B, N, 2) pixels
        ──▶ features pooled under each map ──▶ per slot: height, cos/sin yaw, articulation, present

Slots follow the simulator's state layout (:data:`humanprompt_ros.sim.env.STATE_LAYOUT`): the task's target,
the other objects, then the goal. Which object is the target, and which mark is the goal, depends on the
skill (a twin scene holds both tasks' objects and goals), hence the skill conditioning.

Why it exists: a policy given the true state does the seen skills (issue 40, G2), while an image policy
trained end to end located the objects only to 2–4 cm, where contacts need about 1 cm. Supervising image
points with where the objects project in the image (the camera is known in simulation) is far more direct
than learning them through the action loss; :func:`to_state` turns the points back into table coordinates.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from humanprompt_ros.config.loader import from_dict
from humanprompt_ros.models.checkpoint import (
    CheckpointError,
    command_line,
    load_checkpoint,
    load_weights,
    save_checkpoint,
)
from humanprompt_ros.models.frame_encoder import SpatialSoftArgmax
from humanprompt_ros.sim.scene import SimConfig, project, unproject


@dataclass
class StateEstimatorConfig:
    channels: list[int] = field(default_factory=lambda: [32, 32, 64, 64, 64])  # the first two downsample
    image_size: int = 128
    objects: int = 3  # object slots (x, y, z, cos yaw, sin yaw, articulation, present each)
    skills: list[str] = field(default_factory=list)  # the skills it was trained on, in index order
    shift: int = 4  # random shift (pixels) while training; the targets move with the image
    hidden: int = 128
    # also see the episode's first frame: what moved since (a lever's turn: its bar looks the same every 180° and
    # its post is round, so one frame cannot say how far it turned)
    first_frame: bool = False

    def validate(self) -> None:
        if len(self.channels) < 2 or any(c <= 0 for c in self.channels):
            raise ValueError(f"channels: at least two positive conv widths, got {self.channels}")
        if self.objects <= 0 or self.image_size < 16 or self.shift < 0:
            raise ValueError("objects must be > 0, image_size >= 16 and shift >= 0")

    @property
    def slots(self) -> int:
        return self.objects + 1


class FiLMConv(nn.Module):
    """Conv → GroupNorm → scale and shift by the skill → SiLU."""

    def __init__(self, c_in: int, c_out: int, stride: int, cond: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1)
        self.norm = nn.GroupNorm(8, c_out)
        self.film = nn.Linear(cond, 2 * c_out)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(cond)[:, :, None, None].chunk(2, dim=1)
        return F.silu(self.norm(self.conv(x)) * (1 + scale) + shift)


class StateEstimator(nn.Module):
    """(B, S, S, 3) uint8 frames and (B,) skill indices → per-slot image points and attributes."""

    def __init__(self, cfg: StateEstimatorConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.skill = nn.Embedding(max(1, len(cfg.skills)), cfg.hidden)
        self.convs = nn.ModuleList()
        c_in = 6 if cfg.first_frame else 3
        for i, c in enumerate(cfg.channels):
            self.convs.append(FiLMConv(c_in, c, 2 if i < 2 else 1, cfg.hidden))
            c_in = c
        self.maps = nn.Conv2d(c_in, cfg.slots, 1)
        self.argmax = SpatialSoftArgmax()
        # per slot: height, cos yaw, sin yaw, articulation, present (logit); the goal slot uses the last only
        self.attrs = nn.Sequential(nn.Linear(c_in + cfg.hidden, cfg.hidden), nn.GELU(), nn.Linear(cfg.hidden, 5))
        self.slot_id = nn.Parameter(torch.zeros(cfg.slots, cfg.hidden))

    def forward(self, frames: torch.Tensor, skill: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, S, S, 3) frames — (B, S, S, 6) with the episode's first frame after the current one when
        ``first_frame`` — → ``uv`` (B, N, 2) pixels (u right, v down), ``attrs`` (B, N, 5)."""
        expected = 6 if self.cfg.first_frame else 3
        if frames.shape[-1] != expected:
            raise ValueError(f"the state estimator takes {expected} channels per pixel, got {frames.shape[-1]}")
        x = frames.permute(0, 3, 1, 2).float() / 127.5 - 1.0
        e = self.skill(skill)
        for conv in self.convs:
            x = conv(x, e)
        maps = self.maps(x)  # (B, N, h, w)
        uv = (self.argmax(maps) + 1.0) * (0.5 * frames.shape[1])  # [-1, 1] → pixels of the input frame
        b, n, h, w = maps.shape
        weights = torch.softmax(maps.reshape(b, n, h * w) / self.argmax.log_temperature.exp(), dim=-1)
        pooled = weights @ x.reshape(b, x.shape[1], h * w).transpose(1, 2)  # (B, N, C)
        cond = e[:, None, :] + self.slot_id[None]
        return {"uv": uv, "attrs": self.attrs(torch.cat([pooled, cond], dim=-1))}

    def skill_index(self, skill: str) -> int:
        if skill not in self.cfg.skills:
            raise ValueError(f"the state estimator was trained on {', '.join(self.cfg.skills)}, not {skill!r}")
        return self.cfg.skills.index(skill)


def shift_batch(frames: torch.Tensor, uv: torch.Tensor, pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames (B, S, S, C) shifted by up to ``pad`` pixels each way (edges replicated), and their image
    points (B, N, 2) moved with them."""
    b, s, c = frames.shape[0], frames.shape[1], frames.shape[3]
    x = F.pad(frames.permute(0, 3, 1, 2).float(), (pad,) * 4, mode="replicate")
    d = torch.randint(0, 2 * pad + 1, (b, 2))  # (dx, dy): output pixel p shows input pixel p + d - pad
    rows = torch.arange(s)[None] + d[:, 1:]
    cols = torch.arange(s)[None] + d[:, :1]
    x = x.gather(2, rows[:, None, :, None].expand(-1, c, -1, x.shape[3]))
    x = x.gather(3, cols[:, None, None, :].expand(-1, c, s, -1))
    return x.permute(0, 2, 3, 1).to(frames.dtype), uv - (d[:, None, :] - pad).float()


def estimator_loss(out: dict[str, torch.Tensor], uv: torch.Tensor, attrs: torch.Tensor, objects: int) -> dict:
    """Losses against the true image points ``uv`` (B, N, 2) and attributes ``attrs`` (B, N, 5) (height m, cos,
    sin, articulation, present 0/1): point error in pixels where the slot is present, attributes where
    present, presence everywhere."""
    present = attrs[..., 4]
    px = (out["uv"] - uv).norm(dim=-1)  # (B, N)
    point = (F.smooth_l1_loss(out["uv"], uv, reduction="none").sum(-1) * present).sum() / present.sum().clamp(min=1)
    obj = present[:, :objects, None]
    scale = torch.tensor([10.0, 1.0, 1.0, 5.0], device=uv.device)  # height and articulation to ~unit size
    att = (((out["attrs"][:, :objects, :4] - attrs[:, :objects, :4]) * scale) ** 2 * obj).sum() / obj.sum().clamp(min=1)
    pres = F.binary_cross_entropy_with_logits(out["attrs"][..., 4], present)
    return {
        "loss": point + att + pres,
        "point": point.detach(),
        "attrs": att.detach(),
        "presence": pres.detach(),
        "px": (px * present).sum().detach() / present.sum().clamp(min=1),
    }


# -- the simulator's state layout and the camera ------------------------------------------------------
OBJECT_SIZE = 7  # x, y, z, cos yaw, sin yaw, articulation, present (sim.env.STATE_LAYOUT)


def targets(state: np.ndarray, cam: SimConfig, size: int, objects: int) -> tuple[np.ndarray, np.ndarray]:
    """States (B, D) → image points (B, N, 2) and attributes (B, N, 5): per object height, cos, sin,
    articulation, present; the goal slot's attributes are (0, 0, 0, 0, has_goal)."""
    b = len(state)
    obj = state[:, : objects * OBJECT_SIZE].reshape(b, objects, OBJECT_SIZE)
    goal = np.concatenate([state[:, -3:-1], np.zeros((b, 1), state.dtype)], axis=1)
    xyz = np.concatenate([obj[:, :, :3], goal[:, None]], axis=1)  # (B, N, 3)
    uv = project(cam, xyz, size)
    attrs = np.zeros((b, objects + 1, 5), np.float32)
    attrs[:, :objects] = obj[:, :, 2:7]
    attrs[:, objects, 4] = state[:, -1]
    return uv.astype(np.float32), attrs


def to_state(out: dict[str, torch.Tensor], cam: SimConfig, size: int, objects: int) -> np.ndarray:
    """The estimator's output → states (B, D) in the simulator's layout (positions on the table from the image
    points at the predicted heights; absent slots zero)."""
    uv = out["uv"].detach().cpu().numpy()
    attrs = out["attrs"].detach().cpu().numpy()
    b = len(uv)
    present = attrs[..., 4] > 0
    state = np.zeros((b, objects * OBJECT_SIZE + 3), np.float32)
    for k in range(objects):
        z = attrs[:, k, 0]
        xyz = unproject(cam, uv[:, k], z, size)
        yaw = np.arctan2(attrs[:, k, 2], attrs[:, k, 1])
        row = np.stack([xyz[:, 0], xyz[:, 1], z, np.cos(yaw), np.sin(yaw), attrs[:, k, 3], np.ones(b)], axis=1)
        state[:, k * OBJECT_SIZE : (k + 1) * OBJECT_SIZE] = row * present[:, k : k + 1]
    goal = unproject(cam, uv[:, objects], 0.0, size)
    has = present[:, objects]
    state[:, -3:] = np.stack([goal[:, 0] * has, goal[:, 1] * has, has.astype(np.float32)], axis=1)
    return state


# -- checkpoints ---------------------------------------------------------------------------------
KIND = "state_estimator"


def save_estimator(model: StateEstimator, path: str | Path, extra: dict | None = None) -> Path:
    return save_checkpoint(
        path, model.state_dict(), KIND, dataclasses.asdict(model.cfg), command=command_line(), **(extra or {})
    )


def estimator_from(tensors: dict[str, torch.Tensor], config: dict, source: str) -> StateEstimator:
    """A state estimator from its weights and config (a checkpoint's, or a bundle's part); ``CheckpointError``
    naming ``source`` when they do not describe one."""
    try:
        cfg = from_dict(StateEstimatorConfig, config, source=f"{source} (embedded config)")
        cfg.validate()
    except ValueError as exc:
        raise CheckpointError(f"{source}: embedded state estimator config is invalid: {exc}") from None
    model = StateEstimator(cfg)
    load_weights(model, tensors, f"{source}: weights do not match the state estimator its config describes")
    return model.eval()


def load_estimator(path: str | Path) -> StateEstimator:
    """Load a state estimator checkpoint; refuses other kinds, pickles and corrupt files, saying why."""
    tensors, meta = load_checkpoint(path, kind=KIND)
    return estimator_from(tensors, meta["config"], str(path))


def estimate(
    model: StateEstimator, frames: np.ndarray, skill: str, cam: SimConfig, first: np.ndarray | None = None
) -> np.ndarray:
    """(B, S, S, 3) uint8 frames of one skill (and the episode's first frame (S, S, 3), for an estimator that
    reads it) → (B, D) estimated states."""
    if model.cfg.first_frame:
        if first is None:
            raise ValueError("this state estimator also reads the episode's first frame: pass first=")
        frames = np.concatenate([frames, np.broadcast_to(first, frames.shape)], axis=-1)
    with torch.no_grad():
        out = model(
            torch.from_numpy(np.ascontiguousarray(frames)), torch.full((len(frames),), model.skill_index(skill))
        )
    return to_state(out, cam, model.cfg.image_size, model.cfg.objects)
