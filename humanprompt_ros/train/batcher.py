"""Stage-2 batches: (episode, time, prompt episode) samples assembled into tensors, with the prompt
latents and stage-1 features cached."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from humanprompt_ros.action import action_dim_mask
from humanprompt_ros.models.policy_model import PromptPolicyModel
from humanprompt_ros.models.state_encoder import encoder_input
from humanprompt_ros.train.features import FeatureStore
from humanprompt_ros.train.stage2_data import PolicyEpisode, chunk


class Batcher:
    """Samples (episode, time, prompt episode) and assembles tensors, caching prompt tokens."""

    def __init__(
        self,
        model: PromptPolicyModel,
        episodes: Sequence[PolicyEpisode],
        seed: int,
        prompt_episodes: Sequence[PolicyEpisode] = (),
    ):
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
        train = self.episodes[: self.n_train]
        # the steps each training episode is sampled at (its final hold trimmed to train.hold_steps)
        self.steps = [sampled_steps(e.actions, cfg.train.hold_steps) for e in train]
        by_skill: dict[str, list[int]] = {}
        for i, e in enumerate(train):
            by_skill.setdefault(e.skill, []).append(i)
        self.by_skill = [by_skill[s] for s in sorted(by_skill)]
        self.task_ids = {t: i for i, t in enumerate(cfg.tasks)}
        self.skill_ids = {s: i for i, s in enumerate(cfg.skills)}
        self.store: FeatureStore | None = None
        if cfg.sees_images and cfg.stage1_features and cfg.train.cached_prompts > 0 and not model.trains_video_model:
            self.store = FeatureStore.build(
                model,
                self.episodes,
                self.prompt_pool,
                cfg.train.cached_prompts,
                seed=cfg.train.seed,
                n_train=self.n_train,
            )
        # (robot episode, human episode) of the same dataset root, task and scene seed: the paired term's twins
        # (a seed names a scene only within one dataset). Their own generator, so the main batches are the same
        # with and without the term.
        human = {(e.root, e.task, e.seed): i for i, e in enumerate(train) if e.embodiment == "human"}
        self.twins = [
            (i, human[(e.root, e.task, e.seed)])
            for i, e in enumerate(train)
            if e.embodiment == "robot" and (e.root, e.task, e.seed) in human
        ]
        self.twin_rng = np.random.default_rng([seed, 31337])
        self.visual_keys = self._visual_keys()  # what the condition reads per sample (fixed for the run)

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
            with torch.no_grad():
                self.latent_cache[idx] = self.model.frame_latents(self.episodes[idx].frames).half()
        return self.latent_cache[idx]

    def _visual(self, rows: dict[str, list], i: int, t: int, rng: np.random.Generator) -> None:
        """Append what the condition needs for frame ``t`` of episode ``i`` under a random prompt: the prompt
        latents, the frame, and its cached stage-1 features (or its latents when nothing is cached); for a
        state-conditioned policy the scene state at ``t`` instead (also with the frame encoder's state loss)."""
        cfg = self.model.cfg
        if "state" in self.visual_keys:
            ep = self.episodes[i]
            state = ep.state[t] if cfg.sees_images else encoder_input(cfg.state_encoder, ep.state, ep.proprio, t)
            rows["state"].append(torch.from_numpy(state))
        if not cfg.sees_images:
            return
        if self.store is not None:
            k = int(rng.integers(self.store.prompts.shape[1]))
            p = int(self.store.prompts[i, k])
            rows["features"].append(self.store.get(i, t, k))
        else:
            pool = self.prompt_pool(i)
            p = int(pool[rng.integers(len(pool))])
            if cfg.stage1_features:
                rows["latent"].append(self.frame_latents(i)[t].float())
        if cfg.reads_prompt_video:
            rows["prompt"].append(self.prompt_latents(p).float())
        rows["frame"].append(torch.from_numpy(self.episodes[i].frames[t]))

    def _visual_keys(self) -> tuple[str, ...]:
        cfg = self.model.cfg
        if not cfg.sees_images:
            return ("state",)
        keys = ("prompt", "frame") if cfg.reads_prompt_video else ("frame",)
        if cfg.stage1_features:
            keys += ("features",) if self.store else ("latent",)
        return keys + (("state",) if cfg.frame_encoder.state_weight > 0 else ())

    def sample(self, batch: int, device: torch.device, pairs: int = 0) -> dict[str, torch.Tensor]:
        """A training batch; with ``pairs`` (and twins in the data) also ``twin_robot`` / ``twin_human``:
        the visual inputs of that many robot frames and their human twins (same task, scene, moment)."""
        h = self.model.cfg.policy.horizon
        keys = ("proprio", "actions", "mask", "task", "skill") + self.visual_keys
        rows: dict[str, list] = {k: [] for k in keys}
        for _ in range(batch):
            i = self.draw_episode()
            ep = self.episodes[i]
            t = int(self.rng.integers(self.steps[i]))
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

    def draw_episode(self) -> int:
        """A training episode's index: uniform over episodes, or over skills first (``train.balance``)."""
        if self.model.cfg.train.balance == "skill":
            members = self.by_skill[int(self.rng.integers(len(self.by_skill)))]
            return int(members[self.rng.integers(len(members))])
        return int(self.rng.integers(self.n_train))

    def sample_twins(self, pairs: int, device: torch.device) -> tuple[dict[str, torch.Tensor], ...]:
        """``pairs`` robot frames and the human frames of the same task, scene and moment (by phase when
        the two demonstrations differ in length), each under a prompt of its own."""
        sides: tuple[dict[str, list], ...] = tuple({k: [] for k in self.visual_keys + ("skill",)} for _ in range(2))
        for _ in range(pairs):
            r, hu = self.twins[int(self.twin_rng.integers(len(self.twins)))]
            n_r, n_h = len(self.episodes[r].frames), len(self.episodes[hu].frames)
            t = int(self.twin_rng.integers(n_r))
            self._visual(sides[0], r, t, self.twin_rng)
            self._visual(sides[1], hu, int(round(t * (n_h - 1) / max(1, n_r - 1))), self.twin_rng)
            for side in sides:  # twins share the skill (the oracle's condition token)
                side["skill"].append(self.skill_ids[self.episodes[r].skill])
        return tuple(
            {k: (torch.stack(v) if k != "skill" else torch.tensor(v)).to(device) for k, v in side.items()}
            for side in sides
        )


def sampled_steps(actions: np.ndarray, hold_steps: int) -> int:
    """How many of an episode's first steps are sampled: all ``len(actions)`` with ``hold_steps`` = -1, else up
    to the last change of action plus at most ``hold_steps`` steps of the final hold (the trailing run of
    one repeated action, which an expert ends its demonstration with once the task is done)."""
    n = len(actions)
    if hold_steps < 0:
        return n
    moving = np.flatnonzero(np.any(np.abs(actions - actions[-1]) > 1e-9, axis=1))
    hold_start = int(moving[-1]) + 1 if len(moving) else 0
    return max(1, min(n, hold_start + hold_steps))
