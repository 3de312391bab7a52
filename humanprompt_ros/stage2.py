"""Stage 2 — the prompt-conditioned diffusion policy trained with PDCP (SPEC §1), and its Policy backend.

Per training sample: a demonstration episode of task k (human or robot) at time t, and a *prompt*:
another demonstration of task k (a human one when there is, as at test time). The frozen stage-1
model encodes the prompt once (prompt tokens) and, with the current frame as first frame, yields
its representation (one denoiser pass); the Video Former turns that into tokens; the diffusion
head denoises the next ``horizon`` unified actions given those tokens and the proprioception.
PDCP shapes the pooled tokens z across the batch (same task → together, across embodiments); with
``pdcp.align_weight`` it also pairs each robot frame with the human frame of the same scene and moment
and pulls their current-frame tokens together (:meth:`PromptPolicyModel.frame_parts`).

Ablations are config switches, so one code path trains every row of the paper-style table:
``condition: prompt | none | skill_oracle``, ``pdcp.enabled``, ``stage1_pretrained``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from .action import ACTION_DIM, FINGERTIPS, WRIST_POS
from .config import from_dict, load_config, to_dict
from .models.checkpoint import (CheckpointError, load_checkpoint, load_train_state, load_weights, prefixed,
                                save_checkpoint, save_train_state, unprefixed)
from .models.diffusion_policy import DiffusionPolicyHead, PolicyModelConfig
from .models.frame_encoder import FrameEncoder, FrameEncoderConfig
from .models.pdcp import PDCPConfig, PDCPLoss, paired_nt_xent
from .models.video_former import VideoFormer, VideoFormerConfig
from .models.video_model import CrossPredictionModel, build_video_model
from .stage1 import Stage1Config, load_stage1, prepare_prompt
from .training import (Distributed, MetricsLog, StepBudget, TrainConfig, command_line, cosine_lr, plot_metrics,
                       progress, seed_everything)
from .video import resize_frames

KIND = "policy"
CONDITIONS = ("prompt", "none", "skill_oracle")
PROMPT_EMBODIMENTS = ("human", "same", "any")


@dataclass
class PDCPSwitch(PDCPConfig):
    enabled: bool = True
    # true: z also pools the frame encoder's image points, so PDCP pulls them together across
    # embodiments as well (by default they stay out: where things are is not what the task is)
    image_points: bool = False
    # which tokens z pools: scene (the Video Former tokens of prompt + current frame, and the projected
    # prompt tokens) or prompt (the projected prompt tokens only). With scene, every robot frame in
    # training belongs to a robot skill, so the prototypes can name the skill from the robot hand in view
    # instead of from the prompt (docs/training.md, "Twin pairs"); prompt leaves z only the prompt to read.
    pool: str = "scene"
    # with align_weight > 0: pairs per step for the paired cross-embodiment term (the same task, scene
    # seed and moment by a human and by the robot; only data that has such twins, like HumanPrompt-Sim)
    align_pairs: int = 16

    def validate(self) -> None:
        super().validate()
        if self.pool not in ("scene", "prompt"):
            raise ValueError(f"pool: must be 'scene' or 'prompt', got {self.pool!r}")
        if self.align_pairs < 2:
            raise ValueError(f"align_pairs: at least 2 (the other pairs are the negatives), got {self.align_pairs}")


@dataclass
class Stage2Train(TrainConfig):
    weight_decay: float = 1e-4
    # With a frozen (pretrained) stage 1, its representation of every training frame is computed once
    # for this many prompts per episode and kept on disk next to the stage-1 checkpoint; 0 computes
    # it every step with a fresh random prompt (slow on a CPU: the stage-1 pass dominates a step).
    cached_prompts: int = 2


@dataclass
class Stage2Config:
    data: str
    stage1: str  # stage-1 checkpoint (its prompt encoder and video model stay frozen)
    # optional dataset of extra human demonstrations used only as prompts (never as action targets):
    # human videos are cheap, and a policy prompted by a few dozen demos per task learns those demos,
    # not the task (docs/training.md, "Twin pairs")
    prompt_data: str = ""
    # optional policy checkpoint whose weights (stage 1 and normalisers included) start this run instead of
    # ``stage1`` + random ones: fine-tuning, e.g. with stage1_trainable or other losses. Same hand, tasks and
    # architecture; the optimiser starts fresh. A resumed run continues from its own last checkpoint.
    init: str = ""
    hand: str = "allegro_right"  # the robot hand this policy is for (checked when loaded)
    out: str = "runs/stage2"
    condition: str = "prompt"  # prompt | none (behaviour cloning) | skill_oracle (true skill id)
    # which demonstrations prompt a training sample of task k: human (a human demo of k whenever there is
    # one, as at test time), same (one by the sample's own embodiment: robot frames learn from robot
    # prompts only, so a human prompt on the robot is the cross-embodiment case PDCP's NT-Xent is for) or
    # any (either embodiment)
    prompt_embodiment: str = "human"
    stage1_pretrained: bool = True  # false: the stage-1 architecture with random weights (the ablation)
    stage1_trainable: bool = False  # true: the stage-1 prompt encoder + denoiser train with the policy loss
    prompt_tokens: bool = True  # the head also attends to the stage-1 prompt tokens, not only the features
    # all: the head sees every proprio dimension; hand: only those of fingers the robot hand has; wrist:
    # only the wrist pose (fingertips differ by embodiment even where both hands have the finger). The
    # training run writes the mask into policy.proprio_mask, so the checkpoint carries it.
    proprio: str = "all"
    video_former: VideoFormerConfig = field(default_factory=VideoFormerConfig)
    # the policy's own current-frame encoder (image points for the head, see models/frame_encoder.py)
    frame_encoder: FrameEncoderConfig = field(default_factory=FrameEncoderConfig)
    policy: PolicyModelConfig = field(default_factory=PolicyModelConfig)
    pdcp: PDCPSwitch = field(default_factory=PDCPSwitch)
    train: Stage2Train = field(default_factory=Stage2Train)
    skills: list[str] = field(default_factory=list)  # filled from the data at training time
    tasks: list[str] = field(default_factory=list)

    def validate(self) -> None:
        if self.condition not in CONDITIONS:
            raise ValueError(f"condition: must be one of {', '.join(CONDITIONS)}, got {self.condition!r}")
        if self.prompt_embodiment not in PROMPT_EMBODIMENTS:
            raise ValueError(f"prompt_embodiment: must be one of {', '.join(PROMPT_EMBODIMENTS)}, "
                             f"got {self.prompt_embodiment!r}")
        if self.proprio not in ("all", "hand", "wrist"):
            raise ValueError(f"proprio: must be 'all', 'hand' or 'wrist', got {self.proprio!r}")
        if self.pdcp.pool == "prompt" and not self.prompt_tokens:
            raise ValueError("pdcp.pool: 'prompt' pools the projected prompt tokens; set prompt_tokens: true")


# -- data ----------------------------------------------------------------------------------------------
@dataclass
class PolicyEpisode:
    """A demonstration as stage 2 sees it."""

    frames: np.ndarray  # (T+1, S, S, 3) uint8 at the video model's size
    actions: np.ndarray  # (T, 24)
    proprio: np.ndarray  # (T+1, 24)
    mask: np.ndarray  # (5,) fingers this demo has
    task: str
    skill: str
    embodiment: str
    seed: int = 0


def action_dim_mask(finger_mask: np.ndarray) -> np.ndarray:
    """(5,) finger mask → (24,) mask of the unified action's dimensions."""
    m = np.ones(ACTION_DIM, bool)
    for i, ok in enumerate(finger_mask):
        m[9 + 3 * i:12 + 3 * i] = bool(ok)
    return m


def hand_finger_mask(cfg: "Stage2Config", episodes: Sequence[PolicyEpisode]) -> np.ndarray:
    """(5,) the fingers of the robot hand ``cfg.hand``: from its robot demonstrations, else its YAML."""
    robot = {tuple(bool(x) for x in e.mask) for e in episodes if e.embodiment == "robot"}
    if len(robot) == 1:
        return np.array(robot.pop())
    from .hand import load_hand
    from .paths import config_path

    return load_hand(config_path("hands", f"{cfg.hand}.yaml")).mask


def load_policy_episodes(root: str | Path, image_size: int, show: bool = True, embodiment: str | None = None,
                         per_task: int | None = None) -> list[PolicyEpisode]:
    """Successful episodes under ``root`` with their actions and proprioception (only ``embodiment``'s,
    and the first ``per_task`` of each task and embodiment, when given)."""
    from .data import iter_episodes

    out: list[PolicyEpisode] = []
    count: dict[tuple[str, str], int] = {}
    for ep in progress(iter_episodes(root, success=True, embodiment=embodiment), desc=f"load {root}", enabled=show):
        key = (ep.task, ep.embodiment)
        if per_task is not None and count.get(key, 0) >= per_task:
            continue
        actions, proprio = ep.actions, ep.proprio
        if actions is None or proprio is None:
            continue
        count[key] = count.get(key, 0) + 1
        out.append(PolicyEpisode(ep.frames_at(image_size), actions.astype(np.float32),
                                 proprio.astype(np.float32), ep.mask, ep.task, ep.skill, ep.embodiment,
                                 int(ep.seed or 0)))
    if not out:
        raise ValueError(f"{root}: no successful episodes with actions and proprio found")
    return out


def chunk(actions: np.ndarray, t: int, horizon: int) -> np.ndarray:
    """actions[t : t+horizon], padded with the last action."""
    idx = np.minimum(np.arange(t, t + horizon), len(actions) - 1)
    return actions[idx]


# -- the model -----------------------------------------------------------------------------------------
class PromptPolicyModel(nn.Module):
    """Frozen stage-1 model + Video Former + diffusion head (+ PDCP terms for training)."""

    def __init__(self, cfg: Stage2Config, stage1_cfg: Stage1Config, video_model: CrossPredictionModel):
        super().__init__()
        self.cfg, self.stage1_cfg = cfg, stage1_cfg
        self.video_model = video_model.requires_grad_(False).eval()
        if cfg.stage1_trainable:
            # the prompt encoder and the denoiser's feature layers learn from the policy loss too (from
            # scratch with stage1_pretrained=false); the frame autoencoder stays fixed
            video_model.prompt_encoder.requires_grad_(True)
            video_model.denoiser.requires_grad_(True)
        t, _ = video_model.feature_tokens
        self.former = VideoFormer(cfg.video_former, video_model.feature_dim, t)
        self.prompt_proj = nn.Sequential(nn.LayerNorm(video_model.prompt_dim),
                                         nn.Linear(video_model.prompt_dim, cfg.video_former.width))
        self.skill_embed = nn.Embedding(max(1, len(cfg.skills)), cfg.video_former.width)
        self.head = DiffusionPolicyHead(cfg.policy, cfg.video_former.width)
        self.frame_encoder = FrameEncoder(cfg.frame_encoder, cfg.video_former.width) \
            if cfg.frame_encoder.enabled else None
        self.pdcp = PDCPLoss(cfg.pdcp, cfg.video_former.width, max(1, len(cfg.skills)))

    def train(self, mode: bool = True) -> "PromptPolicyModel":
        super().train(mode)
        self.video_model.eval()  # no dropout or norm statistics in it: eval mode even when it trains
        return self

    @property
    def trains_video_model(self) -> bool:
        """Whether the stage-1 prompt encoder and denoiser are trained here (``stage1_trainable``)."""
        return self.cfg.stage1_trainable

    def prompt_latents(self, prompt_frames: np.ndarray) -> torch.Tensor:
        """A prompt video (any length/size) → prompt latents (1, Tp, C, h, w) (resampled as documented)."""
        dev = next(self.head.parameters()).device
        return prepare_prompt(self.video_model, prompt_frames).to(dev)

    @torch.no_grad()
    def encode_prompt(self, prompt_frames: np.ndarray) -> torch.Tensor:
        """A prompt video (any length/size) → prompt tokens (1, S, D)."""
        return self.video_model.encode_prompt(self.prompt_latents(prompt_frames))

    def features(self, prompt_tokens: torch.Tensor, frame_latents: torch.Tensor) -> torch.Tensor:
        """The stage-1 representation (B, T, N, D) of (prompt, current frame); the no-prompt
        variant sees zero prompt tokens."""
        if self.cfg.condition == "none":
            prompt_tokens = torch.zeros_like(prompt_tokens)
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.trains_video_model):
            return self.video_model.features(prompt_tokens, frame_latents)

    def condition(self, prompt_tokens: torch.Tensor, frame_latents: torch.Tensor | None,
                  skills: torch.Tensor | None = None, features: torch.Tensor | None = None,
                  frames: torch.Tensor | None = None) -> torch.Tensor:
        """(B,S,D) prompt tokens, (B,C,h,w) current-frame latents (or their precomputed
        :meth:`features`), (B,S',S',3) uint8 current frames at the video model's size (used by the
        ``frame_encoder`` only) → condition tokens (B, L, Dv).

        L = T·Q Video Former tokens (+ S projected prompt tokens with ``prompt_tokens``, + 1 skill
        token for the oracle, + K image-point tokens last with the frame encoder).
        """
        if self.cfg.condition == "none":
            prompt_tokens = torch.zeros_like(prompt_tokens)
        feats = self.features(prompt_tokens, frame_latents) if features is None else features
        tokens = self.former(feats)
        if self.cfg.prompt_tokens:
            tokens = torch.cat([tokens, self.prompt_proj(prompt_tokens)], dim=1)
        if self.cfg.condition == "skill_oracle":
            tokens = torch.cat([tokens, self.skill_embed(skills)[:, None]], dim=1)
        if self.frame_encoder is not None:
            if frames is None:
                raise ValueError("this policy encodes the current frame itself: pass frames")
            tokens = torch.cat([tokens, self.frame_encoder(frames.to(tokens.device))], dim=1)
        return tokens

    def condition_on_frame(self, prompt_tokens: torch.Tensor, frame: np.ndarray,
                           skills: torch.Tensor | None = None) -> torch.Tensor:
        """One camera frame (H, W, 3) uint8, any size → condition tokens (1, L, Dv): the frame resized to
        the video model's size feeds both the stage-1 representation and the frame encoder."""
        small = torch.from_numpy(resize_frames(np.asarray(frame, np.uint8)[None], self.video_model.cfg.image_size))
        return self.condition(prompt_tokens, self.video_model.encode_frames(small), skills, frames=small)

    def pooled(self, cond: torch.Tensor) -> torch.Tensor:
        """(B, L, Dv) condition tokens → (B, Dv) the embedding z PDCP shapes: the pool of the prompt/scene
        tokens, without the frame encoder's image points (where things are is not what the task is)
        unless ``pdcp.image_points``; with ``pdcp.pool: prompt``, of the projected prompt tokens only."""
        points = self.cfg.frame_encoder.keypoints if self.frame_encoder is not None else 0
        if self.cfg.pdcp.pool == "prompt":  # the tokens after the Video Former's, before skill and points
            end = cond.shape[1] - points - (self.cfg.condition == "skill_oracle")
            return VideoFormer.pool(cond[:, self.former.num_tokens:end])
        k = 0 if self.cfg.pdcp.image_points else points
        return VideoFormer.pool(cond[:, :cond.shape[1] - k])

    def global_condition(self, cond: torch.Tensor) -> torch.Tensor | None:
        """(B, L, Dv) condition tokens → the head's global condition (B, Dv): the pooled z that PDCP shapes,
        with ``policy.global_cond``; None otherwise (the head only cross-attends to the tokens)."""
        return self.pooled(cond) if self.cfg.policy.global_cond else None

    def sample_actions(self, cond: torch.Tensor, proprio: torch.Tensor,
                       generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, L, Dv) condition tokens, (B, P) proprio → an unnormalised action chunk (B, H, A) (DDIM)."""
        return self.head.sample(cond, proprio, generator=generator, global_cond=self.global_condition(cond))

    def frame_parts(self, cond: torch.Tensor) -> list[torch.Tensor]:
        """(B, L, Dv) condition tokens → the parts that depend on the current frame, each flattened to
        (B, ·): the Video Former tokens and, with the frame encoder, its image-point tokens. The paired
        cross-embodiment term aligns these (the prompt tokens are the prompt's, not the frame's)."""
        parts = [cond[:, :self.former.num_tokens].flatten(1)]
        if self.frame_encoder is not None:
            parts.append(cond[:, cond.shape[1] - self.cfg.frame_encoder.keypoints:].flatten(1))
        return parts


def compile_for_inference(model: PromptPolicyModel) -> PromptPolicyModel:
    """``torch.compile`` the inference path's networks (stage-1 denoiser, Video Former, head denoiser) with
    ``mode="reduce-overhead"``: on CUDA the batch-1 passes replay as CUDA graphs, which removes the
    per-kernel launch cost that dominates them. The first few calls compile (tens of seconds)."""
    vm = model.video_model
    if hasattr(vm, "denoiser"):
        vm.denoiser = torch.compile(vm.denoiser, mode="reduce-overhead", dynamic=False)
    model.former = torch.compile(model.former, mode="reduce-overhead", dynamic=False)
    model.head.denoiser = torch.compile(model.head.denoiser, mode="reduce-overhead", dynamic=False)
    return model


# -- checkpoints ---------------------------------------------------------------------------------------
def save_policy(path: Path, model: PromptPolicyModel, **meta: Any) -> Path:
    tensors = {k: v for k, v in model.state_dict().items() if not k.startswith("video_model.")}
    tensors.update(prefixed("video_model", model.video_model.state_dict()))
    return save_checkpoint(path, tensors, KIND, to_dict(model.cfg), stage1_config=to_dict(model.stage1_cfg),
                           hand=model.cfg.hand, action_dim=ACTION_DIM, action_layout="humanprompt_ros.action v1",
                           command=command_line(), **meta)


def load_policy_model(path: str | Path, hand: str | None = None, action_dim: int = ACTION_DIM,
                      device: str | torch.device = "cpu") -> tuple[PromptPolicyModel, dict[str, Any]]:
    """Load a policy checkpoint; refuses one for another hand or action size, with a clear message."""
    tensors, meta = load_checkpoint(path, kind=KIND)
    if meta.get("action_dim") != action_dim:
        raise CheckpointError(f"{path}: trained for {meta.get('action_dim')}-D actions, this stack uses {action_dim}-D "
                              f"unified actions")
    if hand is not None and meta.get("hand") != hand:
        raise CheckpointError(f"{path}: trained for hand {meta.get('hand')!r}, the configured hand is {hand!r}")
    try:
        cfg = from_dict(Stage2Config, meta["config"], source=f"{path} (embedded config)")
        s1 = from_dict(Stage1Config, meta["stage1_config"], source=f"{path} (embedded stage-1 config)")
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"{path}: embedded config is invalid: {exc}") from None
    model = PromptPolicyModel(cfg, s1, build_video_model(s1.model))
    load_weights(model, tensors, f"{path}: weights do not match the model its config describes")
    return model.to(device).eval(), meta


def extract_stage1(path: str | Path, out: str | Path) -> Path:
    """Write the stage-1 video model embedded in policy checkpoint ``path`` as a stage-1 checkpoint.

    Stage-2 runs can then share the very stage 1 a shipped policy was trained with (``stage1: OUT``)
    without training it again. With ``stage1_trainable`` the result is the fine-tuned video model."""
    from .stage1 import save_stage1

    model, meta = load_policy_model(path)
    return save_stage1(Path(out), model.video_model, model.stage1_cfg, extracted_from=str(path),
                       policy_step=meta.get("step"))


# -- training ------------------------------------------------------------------------------------------
class _Batcher:
    """Samples (episode, time, prompt episode) and assembles tensors, caching prompt tokens."""

    def __init__(self, model: PromptPolicyModel, episodes: Sequence[PolicyEpisode], seed: int,
                 prompt_episodes: Sequence[PolicyEpisode] = ()):
        # training episodes first, then the prompt-only ones (only ever drawn as prompts)
        self.n_train = len(episodes)
        self.model, self.episodes = model, list(episodes) + list(prompt_episodes)
        self.rng = np.random.default_rng(seed)
        self.by_task: dict[str, list[int]] = {}  # training episodes of each task
        self.prompts_by: dict[tuple[str, str], list[int]] = {}  # (task, embodiment) -> every episode, prompt-only too
        for i, ep in enumerate(self.episodes):
            if i < self.n_train:
                self.by_task.setdefault(ep.task, []).append(i)
            self.prompts_by.setdefault((ep.task, ep.embodiment), []).append(i)
        self.prompt_cache: dict[int, torch.Tensor] = {}
        self.latent_cache: dict[int, torch.Tensor] = {}
        cfg = model.cfg
        self.task_ids = {t: i for i, t in enumerate(cfg.tasks)}
        self.skill_ids = {s: i for i, s in enumerate(cfg.skills)}
        self.store: FeatureStore | None = None
        if cfg.train.cached_prompts > 0 and not model.trains_video_model:
            self.store = FeatureStore.build(model, self.episodes, self.prompt_pool, cfg.train.cached_prompts,
                                            seed=cfg.train.seed, n_train=self.n_train)
        # (robot episode, human episode) of the same task and scene seed: the paired term's twins.
        # Their own generator, so the main batches are the same with and without the term.
        train = self.episodes[:self.n_train]
        human = {(e.task, e.seed): i for i, e in enumerate(train) if e.embodiment == "human"}
        self.twins = [(i, human[(e.task, e.seed)]) for i, e in enumerate(train)
                      if e.embodiment == "robot" and (e.task, e.seed) in human]
        self.twin_rng = np.random.default_rng([seed, 31337])

    def prompt_pool(self, i: int) -> list[int]:
        """Episodes that can prompt episode ``i`` under ``prompt_embodiment``: human demos of its task (as
        at test time), those of its own embodiment, or all of them; when that leaves none, any other demo
        of the task, else ``i`` itself."""
        ep, mode = self.episodes[i], self.model.cfg.prompt_embodiment
        if mode == "any":
            embodiments = sorted({e for (t, e) in self.prompts_by if t == ep.task})
        else:
            embodiments = ["human"] if mode == "human" else [ep.embodiment]
        pool = [j for e in embodiments for j in self.prompts_by.get((ep.task, e), []) if j != i]
        return pool or [j for j in self.by_task[ep.task] if j != i] or [i]

    def prompt_latents(self, idx: int) -> torch.Tensor:
        """(Tp, C, h, w) latents of episode ``idx`` as a prompt (the frozen autoencoder's, cached)."""
        if idx not in self.prompt_cache:
            self.prompt_cache[idx] = self.model.prompt_latents(self.episodes[idx].frames)[0].half()
        return self.prompt_cache[idx]

    def frame_latents(self, idx: int) -> torch.Tensor:
        if idx not in self.latent_cache:
            vm = self.model.video_model
            with torch.no_grad():
                self.latent_cache[idx] = vm.encode_frames(torch.from_numpy(self.episodes[idx].frames)).half()
        return self.latent_cache[idx]

    def _visual(self, rows: dict[str, list], i: int, t: int, rng: np.random.Generator) -> None:
        """Append what the condition needs for frame ``t`` of episode ``i`` under a random prompt: the prompt
        latents, the frame, and its cached stage-1 features (or its latents when nothing is cached)."""
        if self.store is not None:
            k = int(rng.integers(self.store.prompts.shape[1]))
            p = int(self.store.prompts[i, k])
            rows["features"].append(self.store.get(i, t, k))
        else:
            pool = self.prompt_pool(i)
            p = int(pool[rng.integers(len(pool))])
            rows["latent"].append(self.frame_latents(i)[t].float())
        rows["prompt"].append(self.prompt_latents(p).float())
        rows["frame"].append(torch.from_numpy(self.episodes[i].frames[t]))

    def _visual_keys(self) -> tuple[str, ...]:
        return ("prompt", "frame") + (("features",) if self.store else ("latent",))

    def sample(self, batch: int, device: torch.device, pairs: int = 0) -> dict[str, torch.Tensor]:
        """A training batch; with ``pairs`` (and twins in the data) also ``twin_robot`` / ``twin_human``:
        the visual inputs of that many robot frames and their human twins (same task, scene, moment)."""
        h = self.model.cfg.policy.horizon
        keys = ("proprio", "actions", "mask", "task", "skill") + self._visual_keys()
        rows: dict[str, list] = {k: [] for k in keys}
        for _ in range(batch):
            i = int(self.rng.integers(self.n_train))
            ep = self.episodes[i]
            t = int(self.rng.integers(len(ep.actions)))
            self._visual(rows, i, t, self.rng)
            rows["proprio"].append(torch.from_numpy(ep.proprio[t]))
            rows["actions"].append(torch.from_numpy(chunk(ep.actions, t, h)))
            rows["mask"].append(torch.from_numpy(action_dim_mask(ep.mask)))
            rows["task"].append(self.task_ids[ep.task])
            rows["skill"].append(self.skill_ids[ep.skill])
        out = {k: torch.stack(v) if k not in ("task", "skill") else torch.tensor(v) for k, v in rows.items()}
        out = {k: v.to(device) for k, v in out.items()}
        if pairs > 0 and self.twins:
            out["twin_robot"], out["twin_human"] = self.sample_twins(pairs, device)
        return out

    def sample_twins(self, pairs: int, device: torch.device) -> tuple[dict[str, torch.Tensor], ...]:
        """``pairs`` robot frames and the human frames of the same task, scene and moment (by phase when
        the two demonstrations differ in length), each under a prompt of its own."""
        sides: tuple[dict[str, list], ...] = tuple({k: [] for k in self._visual_keys() + ("skill",)} for _ in range(2))
        for _ in range(pairs):
            r, hu = self.twins[int(self.twin_rng.integers(len(self.twins)))]
            n_r, n_h = len(self.episodes[r].frames), len(self.episodes[hu].frames)
            t = int(self.twin_rng.integers(n_r))
            self._visual(sides[0], r, t, self.twin_rng)
            self._visual(sides[1], hu, int(round(t * (n_h - 1) / max(1, n_r - 1))), self.twin_rng)
            for side in sides:  # twins share the skill (the oracle's condition token)
                side["skill"].append(self.skill_ids[self.episodes[r].skill])
        return tuple({k: (torch.stack(v) if k != "skill" else torch.tensor(v)).to(device) for k, v in side.items()}
                     for side in sides)


class FeatureStore:
    """The frozen stage-1 representation of every training frame under a few fixed prompts.

    ``data``: (frames in all episodes, K, T, N, D) float16, memory-mapped from a ``.npy`` file next
    to the stage-1 checkpoint (``features/<key>.npy``; the key hashes the checkpoint, whether its
    weights are used or random, the episodes, the prompt slots and whether prompts are blanked), so
    the variants of one run share it.
    ``prompts``: (episodes, K) the prompt episode of each slot.
    """

    def __init__(self, data: np.ndarray, offsets: np.ndarray, prompts: np.ndarray):
        self.data, self.offsets, self.prompts = data, offsets, prompts

    def get(self, episode: int, t: int, k: int) -> torch.Tensor:
        return torch.from_numpy(np.asarray(self.data[self.offsets[episode] + t, k], np.float32))

    @classmethod
    def build(cls, model: "PromptPolicyModel", episodes: Sequence[PolicyEpisode], pool, k: int, seed: int,
              batch: int = 64, n_train: int | None = None) -> "FeatureStore":
        """Features of ``episodes[:n_train]`` (default: all) under prompts drawn by ``pool(i)`` (indices
        into ``episodes``, which may go on with prompt-only episodes)."""
        import hashlib
        import json

        n_train = len(episodes) if n_train is None else n_train
        rng = np.random.default_rng([seed, 4049])
        prompts = np.array([[pool(i)[int(rng.integers(len(pool(i))))] for _ in range(k)]
                            for i in range(n_train)], np.int64)
        lengths = np.array([len(e.frames) for e in episodes[:n_train]])
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        ckpt = Path(model.cfg.stage1)
        stat = ckpt.stat()
        key = hashlib.sha256(json.dumps({
            "stage1": [str(ckpt.resolve()), stat.st_size, stat.st_mtime_ns],
            "episodes": [[e.task, e.embodiment, e.seed, len(e.frames)] for e in episodes[:n_train]],
            **({"prompt_only": [[e.task, e.seed, len(e.frames)] for e in episodes[n_train:]]}
               if n_train < len(episodes) else {}),
            "prompts": prompts.tolist(), "blank": model.cfg.condition == "none",
            "pretrained": model.cfg.stage1_pretrained, "seed": seed,
        }).encode()).hexdigest()[:16]
        path = ckpt.parent / "features" / f"{key}.npy"
        if path.is_file():
            return cls(np.load(path, mmap_mode="r"), offsets, prompts)
        path.parent.mkdir(parents=True, exist_ok=True)
        vm = model.video_model
        t, n = vm.feature_tokens
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npy")
        data = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16,
                                         shape=(int(lengths.sum()), k, t, n, vm.feature_dim))
        dev = next(model.head.parameters()).device
        with torch.no_grad():
            tokens = {p: vm.encode_prompt(model.prompt_latents(episodes[p].frames)) for p in np.unique(prompts)}
            for i, ep in enumerate(progress(episodes[:n_train], desc=f"stage-1 features ({k} prompts per episode)")):
                latents = vm.encode_frames(torch.from_numpy(ep.frames).to(dev))
                for slot in range(k):
                    for a in range(0, len(latents), batch):
                        lat = latents[a:a + batch]
                        f = model.features(tokens[int(prompts[i, slot])].expand(len(lat), -1, -1), lat)
                        data[offsets[i] + a:offsets[i] + a + len(lat), slot] = f.cpu().numpy().astype(np.float16)
        data.flush()
        del data
        os.replace(tmp, path)
        return cls(np.load(path, mmap_mode="r"), offsets, prompts)


class _TrainStep(nn.Module):
    """forward() = the whole stage-2 loss, so DistributedDataParallel can wrap it."""

    def __init__(self, model: PromptPolicyModel):
        super().__init__()
        self.model = model

    def _condition(self, b: dict[str, torch.Tensor]) -> torch.Tensor:
        m = self.model
        with torch.set_grad_enabled(m.trains_video_model):
            tokens = m.video_model.encode_prompt(b["prompt"])
        return m.condition(tokens, b.get("latent"), b.get("skill"), features=b.get("features"), frames=b["frame"])

    def forward(self, b: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        m = self.model
        cond = self._condition(b)
        out = {"diffusion": m.head.loss(cond, b["proprio"], b["actions"], b["mask"], m.global_condition(cond))}
        total = out["diffusion"]
        if m.cfg.pdcp.enabled and m.cfg.condition == "prompt":
            terms = m.pdcp(m.pooled(cond), b["task"], b["skill"])
            out.update({k: v for k, v in terms.items() if k != "total"})
            total = total + terms["total"]
        if "twin_robot" in b:  # the paired term is about the current frame, so every condition gets it
            a, h = (self._condition(b[side]) for side in ("twin_robot", "twin_human"))
            parts = [paired_nt_xent(x, y, m.cfg.pdcp.align_temperature)
                     for x, y in zip(m.frame_parts(a), m.frame_parts(h))]
            out["align"] = torch.stack(parts).mean()
            total = total + m.cfg.pdcp.align_weight * out["align"]
        out["loss"] = total
        return out


def init_weights(model: PromptPolicyModel, path: str | Path) -> None:
    """Start ``model`` from the weights of policy checkpoint ``path`` (the ``init`` key): refuses one for another
    hand, other tasks or skills, or another architecture, naming what differs."""
    cfg = model.cfg
    loaded, _ = load_policy_model(path, cfg.hand)
    for key in ("tasks", "skills"):
        if getattr(loaded.cfg, key) != getattr(cfg, key):
            raise CheckpointError(f"init: {path} was trained on {key} {getattr(loaded.cfg, key)}, this data has "
                                  f"{getattr(cfg, key)}; start from a checkpoint of the same {key} or leave init empty")
    load_weights(model, loaded.state_dict(), f"init: {path} does not match the model this config describes",
                 "; use the architecture it was trained with (its embedded config) or leave init empty")


def train_stage2(cfg: Stage2Config, episodes: Sequence[PolicyEpisode], resume: bool = True,
                 prompt_episodes: Sequence[PolicyEpisode] = ()) -> Path:
    """Train the policy (Video Former + diffusion head + PDCP parts); returns the checkpoint path.
    ``prompt_episodes``: extra demonstrations drawn only as prompts (their human ones of training tasks)."""
    dist = Distributed.from_env(cfg.train.device)
    tc = cfg.train
    seed_everything(tc.seed + dist.rank)
    cfg.tasks = sorted({e.task for e in episodes})
    cfg.skills = sorted({e.skill for e in episodes})
    if cfg.proprio == "hand":
        cfg.policy.proprio_mask = action_dim_mask(hand_finger_mask(cfg, episodes)).tolist()
    elif cfg.proprio == "wrist":
        cfg.policy.proprio_mask = action_dim_mask(np.zeros(5, bool)).tolist()
    if cfg.stage1_pretrained:
        video_model, s1cfg, _ = load_stage1(cfg.stage1)
    else:
        _, s1cfg, _ = load_stage1(cfg.stage1)  # same architecture, random weights
        torch.manual_seed(tc.seed)
        video_model = build_video_model(s1cfg.model)
    model = PromptPolicyModel(cfg, s1cfg, video_model).to(dist.device)
    out = Path(cfg.out)
    last = out / "last.safetensors"
    resuming = resume and last.exists()  # then every weight and normaliser comes from ``last`` below
    if cfg.init and not resuming:
        init_weights(model, cfg.init)  # the init checkpoint's normalisers come with its weights
    elif not resuming:
        # Normalisation statistics from the training actions (stored in the checkpoint with the weights).
        model.head.fit_normalizers([torch.from_numpy(e.actions) for e in episodes],
                                   [torch.from_numpy(e.proprio) for e in episodes])
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=tc.lr, weight_decay=tc.weight_decay)
    log = MetricsLog(out / "metrics.jsonl", enabled=dist.is_main)
    step = 0
    if resuming:
        loaded, meta = load_policy_model(last, cfg.hand)
        model.load_state_dict(loaded.state_dict())
        step = int(meta["step"])
        load_train_state(out / "last.train.safetensors", opt, step=step)
        log.truncate_after(step)
        if dist.is_main:
            print(f"[stage2] resumed from {last} at step {step}")

    def checkpoint(step_: int) -> None:
        if dist.is_main:
            save_policy(last, model, step=step_)
            save_train_state(out / "last.train.safetensors", opt, step=step_)

    prompt_only = [e for e in prompt_episodes if e.embodiment == "human" and e.task in cfg.tasks]
    batcher = _Batcher(model, episodes, tc.seed + 7919 * dist.rank + step, prompt_only)
    pairs = cfg.pdcp.align_pairs if cfg.pdcp.enabled and cfg.pdcp.align_weight > 0 else 0
    if pairs and not batcher.twins and dist.is_main:
        print("[stage2] pdcp.align_weight > 0 but no robot episode has a human twin (same task and seed): "
              "the paired term is off for this data")
    net = dist.wrap(_TrainStep(model))
    model.train()
    budget = StepBudget(tc, step, dist.world_size)
    bar = progress(total=tc.steps, initial=step, desc=f"stage2 ({cfg.condition})", enabled=dist.is_main)
    while step < tc.steps:
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, tc)
        losses = net(batcher.sample(tc.batch_size, dist.device, pairs))
        opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        gnorm = torch.nn.utils.clip_grad_norm_(params, tc.grad_clip)
        opt.step()
        if step % tc.log_every == 0:
            log.write(step=step, grad_norm=float(gnorm), lr=cosine_lr(step, tc),
                      **{f"{k}_loss" if not k.endswith("loss") else k: float(v.detach()) for k, v in losses.items()})
            bar.set_postfix(loss=f"{float(losses['loss'].detach()):.4f}")
        if (step + 1) % tc.checkpoint_every == 0:
            checkpoint(step + 1)
        step += 1
        bar.update()
        budget.update(step, bar)
    bar.close()
    final = out / "policy.safetensors"
    if dist.is_main:
        checkpoint(tc.steps)
        save_policy(final, model, step=tc.steps)
        plot_metrics(out / "metrics.jsonl", out / "curves.png", title=f"stage 2 ({out})")
        print(f"[stage2] wrote {final}")
    dist.barrier()
    dist.close()
    return final


# -- offline evaluation ----------------------------------------------------------------------------------
def heldout_samples(heldout: Sequence[PolicyEpisode], times: int = 4, twins: dict[str, str] | None = None
                    ) -> list[tuple[PolicyEpisode, PolicyEpisode, PolicyEpisode, np.ndarray]]:
    """The open-loop evaluation samples of held-out episodes: for every robot demonstration whose task has
    human ones, (robot episode, a human demo of the same task, one of another task, the ``times`` evenly
    spaced steps evaluated). The other task is the task's twin from ``twins`` (same objects, another
    skill; on shared twin scenes the same first frame) when it has human demos, else the next task in
    name order. Prompts rotate through each task's human demos, so the selection is fixed for a given set
    of episodes."""
    robot = [e for e in heldout if e.embodiment == "robot"]
    human: dict[str, list[PolicyEpisode]] = {}
    for e in heldout:
        if e.embodiment == "human":
            human.setdefault(e.task, []).append(e)
    tasks = sorted(human)
    if not robot or len(tasks) < 2:
        raise ValueError("open-loop evaluation needs held-out robot episodes and human episodes of >= 2 tasks "
                         "(humanprompt-sim generate --split heldout --all-robot)")
    out = []
    for i, ep in enumerate(e for e in robot if e.task in human):
        other_task = (twins or {}).get(ep.task)
        if other_task not in human:
            other_task = tasks[(tasks.index(ep.task) + 1) % len(tasks)]
        out.append((ep, human[ep.task][i % len(human[ep.task])], human[other_task][i % len(human[other_task])],
                    np.linspace(0, len(ep.actions) - 1, times).round().astype(int)))
    return out


@torch.no_grad()
def evaluate_actions(model: PromptPolicyModel, heldout: Sequence[PolicyEpisode], times: int = 4,
                     seed: int = 0, groups: dict[str, Sequence[str]] | None = None,
                     show: bool = True, twins: dict[str, str] | None = None) -> dict[str, Any]:
    """Open-loop action error on held-out robot demonstrations, prompted by a held-out human demo of
    the same task and of another task (its twin from ``twins`` when it has one, else the next one in
    name order), with the same sampling noise.

    Per robot episode, ``times`` evenly spaced steps t: the policy's chunk from (frame t, proprio t)
    against the expert's actions t … t+H−1; errors are the mean wrist-position and fingertip distance
    (cm, fingers of the robot hand). A policy that reads its prompt is closer with the same-task prompt,
    also on skills with no robot training data. ``*_hold`` is the error of a hand that holds its current
    pose for the whole chunk: a policy that has learned where to move beats it. Returns {"skills": {skill:
    {wrist_same, wrist_other, tips_same, tips_other, wrist_hold, tips_hold, same_better, samples}}, and
    the same means over each of ``groups`` (e.g. the benchmark's seen and unseen skills)};
    ``same_better`` is the share of samples whose wrist error is smaller with the same-task prompt.
    """
    samples = heldout_samples(heldout, times, twins)
    tokens: dict[int, torch.Tensor] = {}

    def prompt_tokens(ep: PolicyEpisode) -> torch.Tensor:
        if id(ep) not in tokens:
            tokens[id(ep)] = model.encode_prompt(ep.frames)
        return tokens[id(ep)]

    h = model.cfg.policy.horizon

    def errors(pred: np.ndarray, truth: np.ndarray, tips: np.ndarray) -> tuple[float, float]:
        """(H, 24) chunk vs the truth → (wrist, fingertip) distance in cm; ``tips``: the hand's fingers."""
        return (100 * np.linalg.norm(pred[:, WRIST_POS] - truth[:, WRIST_POS], axis=-1).mean(),
                100 * np.linalg.norm((pred[:, FINGERTIPS] - truth[:, FINGERTIPS]).reshape(h, 5, 3),
                                     axis=-1)[:, tips].mean())

    rows: dict[str, dict[str, list[float]]] = {}
    for i, (ep, same, other, steps) in enumerate(progress(samples, desc="action error", enabled=show)):
        skills = {name: torch.tensor([model.cfg.skills.index(e.skill)]) if e.skill in model.cfg.skills else None
                  for name, e in (("same", same), ("other", other))}  # the oracle's token: the prompt's skill
        if model.cfg.condition == "skill_oracle" and None in skills.values():
            continue
        tips = action_dim_mask(ep.mask)[9:].reshape(5, 3).all(1)
        frames = torch.from_numpy(ep.frames[steps])
        latents = model.video_model.encode_frames(frames)  # only the frames used
        r = rows.setdefault(ep.skill, {k: [] for k in ("wrist_same", "wrist_other", "tips_same", "tips_other",
                                                        "wrist_hold", "tips_hold")})
        for k, t in enumerate(steps):
            truth = chunk(ep.actions, int(t), h)
            preds = {"hold": np.broadcast_to(ep.proprio[t], truth.shape)}  # the baseline that does not move
            for name, prompt in (("same", same), ("other", other)):
                gen = torch.Generator().manual_seed(seed + 1000 * i + int(t))
                cond = model.condition(prompt_tokens(prompt), latents[k:k + 1], skills[name], frames=frames[k:k + 1])
                preds[name] = model.sample_actions(cond, torch.from_numpy(ep.proprio[t])[None], gen)[0].numpy()
            for name, pred in preds.items():
                wrist, tip = errors(pred, truth, tips)
                r[f"wrist_{name}"].append(wrist)
                r[f"tips_{name}"].append(tip)

    def summary(vals: dict[str, list[float]]) -> dict[str, float]:
        out = {k: round(float(np.mean(v)), 3) for k, v in vals.items()}
        diff = np.array(vals["wrist_other"]) - np.array(vals["wrist_same"])
        out["same_better"] = round(float(np.mean(diff > 0)), 3)  # share of samples
        out["samples"] = len(diff)
        return out

    result: dict[str, Any] = {"skills": {k: summary(v) for k, v in sorted(rows.items())}}
    for name, members in (groups or {}).items():
        vals = [rows[k] for k in members if k in rows]
        if vals:
            result[name] = summary({key: [x for v in vals for x in v[key]] for key in vals[0]})
    return result


def load_stage2_config(path: str | Path, overrides: list[str] | None = None) -> Stage2Config:
    return load_config(Stage2Config, path, overrides)


# -- the Policy backend --------------------------------------------------------------------------------
class LearnedPolicy:
    """The learned checkpoint behind the Policy protocol (SPEC §4).

    ``set_prompt`` encodes the prompt video once; ``act`` runs the representation pass, the Video
    Former and DDIM, and returns the next ``execute`` actions (default: the checkpoint's
    ``policy.execute``) of a temporally ensembled plan: each new chunk is blended with what earlier
    chunks predicted for the same steps (exponential weights, newest first), as in ACT-style temporal
    ensembling. With ``execute`` = horizon no plans overlap and each chunk runs whole. ``guidance``
    overrides the checkpoint's classifier-free guidance scale (``policy.guidance``; a head trained with
    ``policy.global_dropout`` > 0 only).
    """

    needs_prompt_video = True

    def __init__(self, path: str | Path, hand: str | None = None, execute: int | None = None,
                 ensemble_decay: float = 0.5, device: str = "cpu", threads: int = 1, seed: int = 0,
                 guidance: float | None = None, **_: Any):
        if threads > 0:
            torch.set_num_threads(threads)
        self.model, self.meta = load_policy_model(path, hand, device=device)
        if guidance is not None:
            from dataclasses import replace

            pc = replace(self.model.cfg.policy, guidance=float(guidance))
            pc.validate()  # a head without a null condition cannot be guided: a clear ValueError
            self.model.cfg.policy = self.model.head.cfg = pc
        self.execute = min(execute or self.model.cfg.policy.execute, self.model.cfg.policy.horizon)
        self.decay = ensemble_decay
        self.seed = seed
        self.tokens: torch.Tensor | None = None
        self.skill: torch.Tensor | None = None
        self.reset()

    def encode(self, prompt: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The slow part of :meth:`set_prompt` (call it off the control thread): prompt → tokens."""
        from .policy import _as_prompt

        ep = _as_prompt(prompt)
        frames = ep.frames()
        skill = None
        if self.model.cfg.condition == "skill_oracle":
            if ep.skill not in self.model.cfg.skills:
                raise ValueError(f"skill_oracle policy: the prompt's skill {ep.skill!r} is not one it was trained on")
            skill = torch.tensor([self.model.cfg.skills.index(ep.skill)])
        return self.model.encode_prompt(frames), skill

    def set_prompt(self, prompt: Any) -> None:
        self.tokens, self.skill = self.encode(prompt)
        self.reset()

    def set_encoded(self, tokens: Any, skill: Any = None) -> None:
        """Install prompt tokens that :meth:`encode` computed elsewhere (e.g. the prompt encoder node, sent
        over ROS) and :meth:`reset`: :meth:`set_prompt` without the encoding.

        ``tokens``: (1, S, D) floats (tensor or array) shaped like this checkpoint's prompt tokens, all
        finite; ``skill``: the prompt's skill index (``skill_oracle`` policies only, ignored otherwise).
        Anything else raises ``ValueError`` saying why, and the previous prompt stays.
        """
        vm = self.model.video_model
        try:
            t = tokens.detach().cpu().float() if isinstance(tokens, torch.Tensor) else \
                torch.from_numpy(np.array(tokens, dtype=np.float32))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"prompt tokens: not an array of numbers ({exc})") from None
        pe = getattr(getattr(vm, "prompt_encoder", None), "cfg", None)
        length = pe.prompt_frames * pe.prompt_tokens_per_frame if pe is not None else None
        if t.ndim != 3 or t.shape[0] != 1 or t.shape[2] != vm.prompt_dim or length not in (None, t.shape[1]):
            raise ValueError(f"prompt tokens of shape {tuple(t.shape)} do not fit this checkpoint, which encodes a "
                             f"prompt as (1, {length or 'S'}, {vm.prompt_dim})")
        if not bool(torch.isfinite(t).all()):
            raise ValueError("prompt tokens contain NaN or inf")
        idx = None
        if self.model.cfg.condition == "skill_oracle":
            n = len(self.model.cfg.skills)
            try:
                k = int(np.asarray(skill.cpu() if isinstance(skill, torch.Tensor) else skill).reshape(-1)[0])
            except (TypeError, ValueError, IndexError):
                k = -1
            if not 0 <= k < n:
                raise ValueError(f"skill_oracle policy: prompt tokens need the prompt's skill index in [0, {n}), "
                                 f"got {skill!r}")
            idx = torch.tensor([k])
        ref = next(self.model.head.parameters())
        self.tokens, self.skill = t.to(ref.device, ref.dtype), idx
        self.reset()

    def reset(self) -> None:
        self.t = 0
        self.plans: list[tuple[int, np.ndarray]] = []  # (start step, chunk)
        self.generator = torch.Generator().manual_seed(self.seed)

    @torch.no_grad()
    def act(self, frame: np.ndarray, proprio: np.ndarray, lag: int = 0) -> np.ndarray:
        """The next ``execute`` actions (steps t … t+execute−1 of the episode).

        ``lag``: the observation is from ``lag`` steps before step t (a runner that computes the next
        chunk while the current one still runs), so the new plan starts at step t − lag and its first
        ``lag`` actions, already in the past, are skipped (0 ≤ lag < horizon). When fewer than
        ``execute`` of its actions are left (lag > horizon − execute), only those are returned.
        """
        h = self.model.cfg.policy.horizon
        if not 0 <= lag < h:
            raise ValueError(f"lag: must be within [0, {h - 1}] (a plan covers {h} steps from its observation), "
                             f"got {lag}: lower the runner's lookahead")
        if self.tokens is None:
            raise ValueError("the learned policy has no prompt: call set_prompt() first")
        m = self.model
        cond = m.condition_on_frame(self.tokens, frame, self.skill)
        p = torch.as_tensor(np.asarray(proprio, np.float32))[None]
        plan = m.sample_actions(cond, p, self.generator)[0].numpy().astype(np.float64)
        self.plans = [(s, c) for s, c in self.plans if s + len(c) > self.t][-4:] + [(self.t - lag, plan)]
        out = np.zeros((min(self.execute, h - lag), ACTION_DIM))
        for k in range(len(out)):
            step, num, den = self.t + k, np.zeros(ACTION_DIM), 0.0
            for age, (s, c) in enumerate(reversed(self.plans)):
                if s <= step < s + len(c):
                    w = self.decay ** age
                    num += w * c[step - s]
                    den += w
            out[k] = num / den
        self.t += len(out)
        return out


def _register() -> None:
    from .policy import register_policy

    register_policy("checkpoint", lambda path, **kw: LearnedPolicy(path, **kw))


_register()
