"""The learned policy: a stage-2 checkpoint behind the Policy contract (registered as ``checkpoint``)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from humanprompt_ros.action import ACTION_DIM
from humanprompt_ros.models.bundle import bundled_parts
from humanprompt_ros.models.policy_model import load_policy_model
from humanprompt_ros.models.prompt_embedding import load_prompt_embedding
from humanprompt_ros.models.state_encoder import MOTION
from humanprompt_ros.models.state_estimator import estimate, load_estimator
from humanprompt_ros.policies.base import as_prompt, register_policy
from humanprompt_ros.policies.prompt_fit import has_prototypes, prototype_distance, training_fps
from humanprompt_ros.sim.scene import load_sim_config
from humanprompt_ros.video import ClipPlan, resize_frames


def blank_clip(video_model_cfg: Any) -> np.ndarray:
    """A uniform grey prompt clip (Tp, S, S, 3) uint8 for a stage-1 model: no demonstration at all."""
    size = video_model_cfg.image_size
    return np.full((video_model_cfg.prompt_frames, size, size, 3), 128, np.uint8)


class LearnedPolicy:
    """The learned checkpoint behind the Policy protocol.

    ``set_prompt`` encodes the prompt video once; ``act`` runs the representation pass, the Video
    Former and DDIM, and returns the next ``execute`` actions (default: the checkpoint's
    ``policy.execute``) of a temporally ensembled plan: each new chunk is blended with what earlier
    chunks predicted for the same steps (exponential weights, newest first), as in ACT-style temporal
    ensembling. With ``execute`` = horizon no plans overlap and each chunk runs whole. ``guidance``
    overrides the checkpoint's classifier-free guidance scale (``policy.guidance``; a head trained with
    ``policy.global_dropout`` > 0 only). A prompt video is resampled in time to :attr:`prompt_fps`, the rate
    the checkpoint was trained at (:func:`~humanprompt_ros.policies.prompt_fit.training_fps`), before the
    model's clip length.

    A bundle (:mod:`~humanprompt_ros.models.bundle`) brings its own state estimator and prompt embedding;
    ``estimator`` and ``prompt_embedding`` replace them.

    ``estimator``: a state estimator checkpoint (:mod:`~humanprompt_ros.models.state_estimator`) for a
    state-conditioned checkpoint (``condition: state``): the policy then reads the scene state off each
    camera frame instead of being given the simulator's, and sees images only.

    ``execute_by_skill``: actions per chunk for some skills (default: the checkpoint's
    ``policy.execute_by_skill``), for a checkpoint that takes a skill; ``execute`` overrides both.

    ``blank_prompt``: the no-prompt ablation of a checkpoint that reads prompt videos: every prompt is replaced
    by a uniform grey clip, so the policy acts on what its perception gives it with no demonstration.

    ``prompt_embedding``: a prompt embedding checkpoint (:mod:`~humanprompt_ros.models.prompt_embedding`) for a
    checkpoint that takes a skill (``condition: state`` or ``skill_oracle``): the skill is then the one the
    prompt video shows (its nearest PDCP prototype), never the prompt episode's label.
    """

    def __init__(
        self,
        path: str | Path,
        hand: str | None = None,
        execute: int | None = None,
        ensemble_decay: float = 0.5,
        device: str = "cpu",
        threads: int = 1,
        seed: int = 0,
        guidance: float | None = None,
        estimator: str | Path | None = None,
        prompt_embedding: str | Path | None = None,
        blank_prompt: bool = False,
        execute_by_skill: dict[str, int] | None = None,
        **_: Any,
    ):
        if threads > 0:
            torch.set_num_threads(threads)
        self.model, self.meta = load_policy_model(path, hand, device=device)
        self.prompt_fps, self.prompt_fps_source = training_fps(self.meta)
        if guidance is not None:
            pc = replace(self.model.cfg.policy, guidance=float(guidance))
            pc.validate()  # a head without a null condition cannot be guided: a clear ValueError
            self.model.cfg.policy = self.model.head.cfg = pc
        pc = self.model.cfg.policy
        self.execute_by_skill = dict(pc.execute_by_skill if execute_by_skill is None else execute_by_skill)
        unknown = sorted(set(self.execute_by_skill) - set(self.model.cfg.skills))
        if unknown:
            raise ValueError(f"execute_by_skill: {path} knows the skills {self.model.cfg.skills}, not {unknown}")
        self.fixed_execute = execute  # given: every skill's chunk
        self.execute = min(execute or pc.execute, pc.horizon)
        self.decay = ensemble_decay
        self.seed = seed
        self.tokens: torch.Tensor | None = None
        self.skill: torch.Tensor | None = None
        sees_images = self.model.cfg.sees_images
        wanted = [
            name for name, given in (("estimator", estimator), ("prompt_embedding", prompt_embedding)) if not given
        ]
        own_estimator, own_embedding = bundled_parts(path, self.meta, self.model.video_model, wanted)
        self.estimator = own_estimator
        if estimator is not None:
            if sees_images:
                raise ValueError(
                    f"estimator: {path} reads images itself; a state estimator goes with a state-conditioned "
                    "checkpoint (condition: state)"
                )
            self.estimator = load_estimator(estimator)
        self.camera = load_sim_config() if self.estimator is not None else None
        self.embedding = own_embedding
        if prompt_embedding is not None:
            if self.model.cfg.condition not in ("state", "skill_oracle"):
                raise ValueError(
                    f"prompt_embedding: {path} encodes prompts itself; a prompt embedding goes with a checkpoint "
                    "that takes a skill (condition: state or skill_oracle)"
                )
            self.embedding = load_prompt_embedding(prompt_embedding)
        self.needs_prompt_video = sees_images or self.embedding is not None
        if blank_prompt and not self.needs_prompt_video:
            raise ValueError(f"blank_prompt: {path} reads no prompt video (it takes the prompt's skill label)")
        self.blank_prompt = blank_prompt
        self.needs_frames = sees_images or self.estimator is not None
        self.needs_state = not self.needs_frames
        self.reset()

    def prompt_clip(self, prompt: Any) -> tuple[np.ndarray, ClipPlan]:
        """The prompt video as this checkpoint's prompt encoder takes it, (Tp, S, S, 3) uint8, and how it was
        sampled: read at its own rate, resampled to :attr:`prompt_fps`, then to the clip length; only the
        frames kept are decoded (:meth:`humanprompt_ros.data.Episode.prompt_clip`)."""
        vm = self.model.video_model.cfg
        return as_prompt(prompt).prompt_clip(vm.prompt_frames, vm.image_size, self.prompt_fps)

    def encode(self, prompt: Any, report: dict[str, Any] | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The slow part of :meth:`set_prompt` (call it off the control thread): prompt → tokens.

        ``report``, when given, receives how the video was read (``prompt_fps``, ``prompt_fps_source``,
        ``frames_used``: frames at that rate, ``clip_indices``: the source frames of the clip) and, for a
        checkpoint with PDCP prototypes, how far the prompt lies from them (``ood_distance``, ``ood_skill``:
        :func:`~humanprompt_ros.policies.prompt_fit.prototype_distance`).
        """
        ep = None if self.blank_prompt else as_prompt(prompt)
        cfg, skill, tokens = self.model.cfg, None, None
        if cfg.condition in ("skill_oracle", "state"):
            if self.embedding is not None:
                clip = blank_clip(self.embedding.video_model.cfg) if ep is None else self.embedding.clip(ep)
                name, distance = self.embedding.recognize(clip)
                if report is not None:
                    report.update(recognized_skill=name, prototype_distance=round(distance, 4))
            else:
                name = ep.skill
            if name not in cfg.skills:
                raise ValueError(f"{cfg.condition} policy: the prompt's skill {name!r} is not one it was trained on")
            skill = torch.tensor([cfg.skills.index(name)])
        if cfg.sees_images:
            clip, plan = (blank_clip(self.model.video_model.cfg), None) if ep is None else self.prompt_clip(ep)
            tokens = self.model.encode_prompt(clip)
            if report is not None and plan is not None:
                report.update(
                    prompt_fps=plan.fps,
                    prompt_fps_source=self.prompt_fps_source if plan.fps else "not resampled (source rate unknown)",
                    frames_used=plan.frames_used,
                    clip_indices=list(plan.indices),
                )
                if has_prototypes(self.model):
                    distance, nearest = prototype_distance(self.model, tokens, clip[0])
                    report.update(ood_distance=round(distance, 4), ood_skill=nearest)
        return tokens, skill

    def set_prompt(self, prompt: Any) -> None:
        self.tokens, self.skill = self.encode(prompt)
        self.reset()

    def set_encoded(self, tokens: Any, skill: Any = None) -> None:
        """Install prompt tokens that :meth:`encode` computed elsewhere (e.g. the prompt encoder node, sent
        over ROS) and :meth:`reset`: :meth:`set_prompt` without the encoding.

        ``tokens``: (1, S, D) floats (tensor or array) shaped like this checkpoint's prompt tokens, all
        finite (a state-conditioned checkpoint reads none: None or an empty array); ``skill``: the prompt's
        skill index (``skill_oracle`` and ``state`` policies only, ignored otherwise).
        Anything else raises ``ValueError`` saying why, and the previous prompt stays.
        """
        if not self.model.cfg.sees_images:
            if tokens is not None and np.size(tokens.cpu() if isinstance(tokens, torch.Tensor) else tokens):
                raise ValueError("a state-conditioned policy takes a skill index, not prompt tokens")
            self.tokens, self.skill = None, self._skill_index(skill)
            self.reset()
            return
        vm = self.model.video_model
        try:
            t = (
                tokens.detach().cpu().float()
                if isinstance(tokens, torch.Tensor)
                else torch.from_numpy(np.array(tokens, dtype=np.float32))
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(f"prompt tokens: not an array of numbers ({exc})") from None
        pe = getattr(getattr(vm, "prompt_encoder", None), "cfg", None)
        length = pe.prompt_frames * pe.prompt_tokens_per_frame if pe is not None else None
        if t.ndim != 3 or t.shape[0] != 1 or t.shape[2] != vm.prompt_dim or length not in (None, t.shape[1]):
            raise ValueError(
                f"prompt tokens of shape {tuple(t.shape)} do not fit this checkpoint, which encodes a "
                f"prompt as (1, {length or 'S'}, {vm.prompt_dim})"
            )
        if not bool(torch.isfinite(t).all()):
            raise ValueError("prompt tokens contain NaN or inf")
        idx = self._skill_index(skill) if self.model.cfg.condition == "skill_oracle" else None
        ref = next(self.model.head.parameters())
        self.tokens, self.skill = t.to(ref.device, ref.dtype), idx
        self.reset()

    def _skill_index(self, skill: Any) -> torch.Tensor:
        """A prompt's skill index as sent with its encoding → (1,) tensor; ``ValueError`` unless in range."""
        n = len(self.model.cfg.skills)
        try:
            k = int(np.asarray(skill.cpu() if isinstance(skill, torch.Tensor) else skill).reshape(-1)[0])
        except (TypeError, ValueError, IndexError):
            k = -1
        if not 0 <= k < n:
            raise ValueError(
                f"{self.model.cfg.condition} policy: an encoded prompt needs the prompt's skill index in [0, {n}), "
                f"got {skill!r}"
            )
        return torch.tensor([k])

    def reset(self) -> None:
        cfg = self.model.cfg
        if self.skill is not None and not self.fixed_execute:  # the prompt's skill may run its own chunk length
            name = cfg.skills[int(self.skill.reshape(-1)[0])]
            self.execute = min(self.execute_by_skill.get(name, cfg.policy.execute), cfg.policy.horizon)
        self.t = 0
        self.plans: list[tuple[int, np.ndarray]] = []  # (start step, chunk)
        self.first_frame: np.ndarray | None = None  # the episode's first camera frame (a state estimator's)
        self.wrists: dict[int, np.ndarray] = {}  # step → wrist position seen then (state_encoder.motion_lag)
        self.generator = torch.Generator().manual_seed(self.seed)

    @torch.no_grad()
    def act(
        self, frame: np.ndarray | None, proprio: np.ndarray, lag: int = 0, state: np.ndarray | None = None
    ) -> np.ndarray:
        """The next ``execute`` actions (steps t … t+execute−1 of the episode).

        ``state``: the scene state now (``SimEnv.scene_state()``), for a state-conditioned policy only.

        ``lag``: the observation is from ``lag`` steps before step t (a runner that computes the next
        chunk while the current one still runs), so the new plan starts at step t − lag and its first
        ``lag`` actions, already in the past, are skipped (0 ≤ lag < horizon). When fewer than
        ``execute`` of its actions are left (lag > horizon − execute), only those are returned.
        """
        h = self.model.cfg.policy.horizon
        if not 0 <= lag < h:
            raise ValueError(
                f"lag: must be within [0, {h - 1}] (a plan covers {h} steps from its observation), "
                f"got {lag}: lower the runner's lookahead"
            )
        m = self.model
        if (self.skill if not m.cfg.sees_images else self.tokens) is None:
            raise ValueError("the learned policy has no prompt: call set_prompt() first")
        if self.estimator is not None:
            size = self.estimator.cfg.image_size
            f = np.asarray(frame)[None]
            f = f if f.shape[1] == size else resize_frames(f, size)
            if self.first_frame is None:
                self.first_frame = f[0]
            skill = m.cfg.skills[int(self.skill.reshape(-1)[0])]
            state = estimate(self.estimator, f, skill, self.camera, self.first_frame)[0]
        if not m.cfg.sees_images:
            if state is None:
                raise ValueError(
                    "this checkpoint is conditioned on the simulator's true scene state (condition: state): "
                    "it runs in HumanPrompt-Sim only, with act(..., state=env.scene_state())"
                )
            state = np.asarray(state, np.float32)
            motion_lag = m.cfg.state_encoder.motion_lag
            if motion_lag:  # the wrist then, from the proprioception this policy was given then (or the oldest it has)
                self.wrists[self.t] = np.asarray(proprio, np.float32)[:MOTION]
                then = max((k for k in self.wrists if k <= self.t - motion_lag), default=min(self.wrists))
                state = np.concatenate([state, self.wrists[self.t] - self.wrists[then]])
            s = torch.as_tensor(state)[None]
            cond = m.condition(None, None, self.skill, states=s.to(next(m.head.parameters()).device))
        else:
            cond = m.condition_on_frame(self.tokens, frame, self.skill)
        p = torch.as_tensor(np.asarray(proprio, np.float32))[None]
        plan = m.sample_actions(cond, p, self.generator)[0].numpy().astype(np.float64)
        self.plans = [(s, c) for s, c in self.plans if s + len(c) > self.t][-4:] + [(self.t - lag, plan)]
        out = np.zeros((min(self.execute, h - lag), ACTION_DIM))
        for k in range(len(out)):
            step, num, den = self.t + k, np.zeros(ACTION_DIM), 0.0
            for age, (s, c) in enumerate(reversed(self.plans)):
                if s <= step < s + len(c):
                    w = self.decay**age
                    num += w * c[step - s]
                    den += w
            out[k] = num / den
        self.t += len(out)
        return out


register_policy("checkpoint", lambda path, **kw: LearnedPolicy(path, **kw))
