"""Stage 1 — video generation by cross-prediction (VGCP): data pairs, training, evaluation, sampling.

Training pairs (SPEC §1): a *prompt* episode of task k by embodiment s, and a *target* episode of the
same task k by embodiment t; the model denoises a clip of the target that starts at a random frame
(the "current" frame, I_t0) and runs ``clip_frames`` frames ahead at ``clip_stride`` steps apart, given
the whole prompt resampled to ``prompt_frames`` frames (:mod:`humanprompt_ros.video`). Which (s, t)
pairs are drawn is the config's ``pairs`` mix: human→robot, robot→human, same embodiment.

The run directory holds ``stage1.safetensors`` (weights + config + format version), ``last.*`` for
resuming, ``metrics.jsonl`` and ``curves.png``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from .config import load_config, to_dict
from .models.checkpoint import (CheckpointError, load_checkpoint, load_train_state, load_weights, prefixed,
                                save_checkpoint, save_train_state, unprefixed)
from .models.video_model import CrossPredictionModel, VideoModelConfig, build_video_model
from .training import (Distributed, MetricsLog, StepBudget, TrainConfig, command_line, cosine_lr, plot_metrics,
                       progress, seed_everything)
from .video import resample_clip, resample_indices, resize_frames

KIND = "stage1"


@dataclass
class PairMix:
    """Probabilities of (prompt embodiment → target embodiment) pairs; renormalised when a task lacks one."""

    human_to_robot: float = 0.4
    robot_to_human: float = 0.2
    same: float = 0.4

    def validate(self) -> None:
        if min(self.human_to_robot, self.robot_to_human, self.same) < 0 or \
                self.human_to_robot + self.robot_to_human + self.same <= 0:
            raise ValueError("human_to_robot: pair probabilities must be >= 0 and not all zero")


@dataclass
class Stage1Train(TrainConfig):
    ae_steps: int = 1500  # the frame autoencoder trains first (backbones with their own VAE skip it)
    ae_batch_size: int = 32
    ae_lr: float = 1e-3


@dataclass
class Stage1Config:
    data: str  # dataset directory (humanprompt-sim generate --out)
    out: str = "runs/stage1"
    clip_stride: int = 6  # sim steps between predicted frames
    model: VideoModelConfig = field(default_factory=VideoModelConfig)
    pairs: PairMix = field(default_factory=PairMix)
    train: Stage1Train = field(default_factory=Stage1Train)

    def validate(self) -> None:
        if self.clip_stride < 1:
            raise ValueError("clip_stride: must be >= 1")


# -- episodes in memory --------------------------------------------------------------------------------
@dataclass
class ClipEpisode:
    """One demonstration as stage 1 sees it: frames at the model size plus labels."""

    frames: np.ndarray  # (L, S, S, 3) uint8
    task: str
    skill: str
    embodiment: str  # "human" | "robot"
    seed: int = 0
    latents: torch.Tensor | None = None  # (L, C, h, w), filled by encode_episodes


def clip_indices(length: int, start: int, frames: int, stride: int) -> np.ndarray:
    """Target frame indices after ``start``: start+stride, start+2·stride, ... clamped to the end."""
    return np.minimum(start + stride * np.arange(1, frames + 1), length - 1)


class PairSampler:
    """Draws (prompt episode, target episode, start frame) triples for cross-prediction."""

    def __init__(self, episodes: Sequence[ClipEpisode], mix: PairMix, seed: int):
        self.episodes = list(episodes)
        self.rng = np.random.default_rng(seed)
        self.by_task: dict[tuple[str, str], list[int]] = {}
        for i, ep in enumerate(self.episodes):
            self.by_task.setdefault((ep.task, ep.embodiment), []).append(i)
        self.mix = mix
        if not self.episodes:
            raise ValueError("no episodes to train on")

    def _prompt_embodiment(self, task: str, target: str) -> str:
        other = "robot" if target == "human" else "human"
        cross = self.mix.human_to_robot if target == "robot" else self.mix.robot_to_human
        weights = {other: cross if (task, other) in self.by_task else 0.0,
                   target: self.mix.same if len(self.by_task.get((task, target), [])) > 1 else 0.0}
        total = sum(weights.values())
        if total == 0:
            return target if (task, target) in self.by_task else other
        return other if self.rng.random() < weights[other] / total else target

    def sample(self) -> tuple[int, int, int]:
        t_idx = int(self.rng.integers(len(self.episodes)))
        target = self.episodes[t_idx]
        emb = self._prompt_embodiment(target.task, target.embodiment)
        pool = [i for i in self.by_task.get((target.task, emb), []) if i != t_idx] or [t_idx]
        p_idx = int(pool[self.rng.integers(len(pool))])
        start = int(self.rng.integers(max(1, len(target.frames) - 1)))
        return p_idx, t_idx, start


def encode_episodes(model: CrossPredictionModel, episodes: Sequence[ClipEpisode], batch: int = 256,
                    show: bool = True) -> None:
    """Fill ``ep.latents`` with the (frozen) autoencoder's latents of every frame."""
    model.eval()
    for ep in progress(episodes, desc="encode frames", enabled=show):
        chunks = [model.encode_frames(torch.from_numpy(ep.frames[i:i + batch]))
                  for i in range(0, len(ep.frames), batch)]
        ep.latents = torch.cat(chunks).to(torch.float16)


def make_batch(episodes: Sequence[ClipEpisode], triples: list[tuple[int, int, int]], cfg: Stage1Config,
               device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Triples → (prompt latents (B,Tp,C,h,w), first latent (B,C,h,w), target latents (B,T,C,h,w))."""
    m = cfg.model
    prompts, firsts, targets = [], [], []
    for p, t, s in triples:
        pe, te = episodes[p], episodes[t]
        prompts.append(pe.latents[resample_indices(len(pe.latents), m.prompt_frames)])
        firsts.append(te.latents[s])
        targets.append(te.latents[clip_indices(len(te.latents), s, m.clip_frames, cfg.clip_stride)])
    as_t = lambda xs: torch.stack(xs).float().to(device)  # noqa: E731
    return as_t(prompts), as_t(firsts), as_t(targets)


class _LossModule(torch.nn.Module):
    """Wraps the model's loss in forward() so DistributedDataParallel can average its gradients."""

    def __init__(self, model: CrossPredictionModel):
        super().__init__()
        self.model = model

    def forward(self, prompt: torch.Tensor, first: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.model.loss(prompt, first, target)


# -- checkpoints ---------------------------------------------------------------------------------------
def save_stage1(path: Path, model: CrossPredictionModel, cfg: Stage1Config, **meta: Any) -> Path:
    return save_checkpoint(path, prefixed("model", model.state_dict()), KIND, to_dict(cfg),
                           backbone=model.name, command=command_line(), **meta)


def load_stage1(path: str | Path, device: str | torch.device = "cpu") -> tuple[CrossPredictionModel, Stage1Config, dict]:
    """Load a stage-1 checkpoint → (model in eval mode, its config, metadata). Refuses mismatches."""
    from .config import from_dict

    tensors, meta = load_checkpoint(path, kind=KIND)
    try:
        cfg = from_dict(Stage1Config, meta["config"], source=f"{path} (embedded config)")
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"{path}: embedded config is invalid: {exc}") from None
    if meta.get("backbone") != cfg.model.backbone:
        raise CheckpointError(f"{path}: weights are for backbone {meta.get('backbone')!r} but the embedded config "
                              f"says {cfg.model.backbone!r}")
    model = build_video_model(cfg.model)
    load_weights(model, unprefixed("model", tensors), f"{path}: weights do not match the model its config describes")
    return model.to(device).eval(), cfg, meta


# -- training ------------------------------------------------------------------------------------------
def train_stage1(cfg: Stage1Config, episodes: Sequence[ClipEpisode], resume: bool = True) -> Path:
    """Train the autoencoder, then the cross-prediction denoiser; returns the final checkpoint path."""
    dist = Distributed.from_env(cfg.train.device)
    tc = cfg.train
    seed_everything(tc.seed + dist.rank)
    out = Path(cfg.out)
    log = MetricsLog(out / "metrics.jsonl", enabled=dist.is_main)
    model = build_video_model(cfg.model).to(dist.device)
    ae_opt = torch.optim.Adam(model.autoencoder.parameters(), lr=tc.ae_lr)
    params = [p for n, p in model.named_parameters() if not n.startswith("autoencoder.")]
    opt = torch.optim.AdamW(params, lr=tc.lr, weight_decay=tc.weight_decay)
    phase, step = ("ae" if model.trains_autoencoder else "denoiser"), 0

    last = out / "last.safetensors"
    if resume and last.exists():
        tensors, meta = load_checkpoint(last, kind=KIND)
        model.load_state_dict(unprefixed("model", tensors))
        phase, step = meta["phase"], int(meta["step"])
        load_train_state(out / "last.train.safetensors", ae_opt if phase == "ae" else opt, phase=phase, step=step)
        log.truncate_after(step if phase == "denoiser" else -1)
        if dist.is_main:
            print(f"[stage1] resumed from {last}: phase {phase}, step {step}")

    def checkpoint(phase_: str, step_: int, optimizer: torch.optim.Optimizer) -> None:
        if not dist.is_main:
            return
        save_stage1(last, model, cfg, phase=phase_, step=step_)
        save_train_state(out / "last.train.safetensors", optimizer, phase=phase_, step=step_)

    rng = np.random.default_rng(tc.seed + 1000 * dist.rank)
    all_frames = [(i, j) for i, ep in enumerate(episodes) for j in range(len(ep.frames))]

    # Phase 1: the frame autoencoder.
    if phase == "ae":
        ae = dist.wrap(model.autoencoder)
        bar = progress(range(step, tc.ae_steps), total=tc.ae_steps, initial=step, desc="stage1 autoencoder",
                       enabled=dist.is_main)
        for step in bar:
            pick = rng.integers(len(all_frames), size=tc.ae_batch_size)
            frames = np.stack([episodes[all_frames[k][0]].frames[all_frames[k][1]] for k in pick])
            x = torch.from_numpy(frames).to(dist.device).permute(0, 3, 1, 2).float().div(127.5).sub(1)
            loss = ae(x)
            ae_opt.zero_grad(set_to_none=True)
            loss.backward()
            ae_opt.step()
            if step % tc.log_every == 0:
                log.write(step=step, phase="ae", ae_loss=float(loss.detach()))
                bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
        pick = rng.integers(len(all_frames), size=min(1024, len(all_frames)))
        calib = torch.from_numpy(np.stack([episodes[all_frames[k][0]].frames[all_frames[k][1]] for k in pick]))
        scale = model.autoencoder.calibrate(calib.to(dist.device).permute(0, 3, 1, 2).float().div(127.5).sub(1))
        log.write(step=0, phase="ae_done", latent_scale=scale)
        phase, step = "denoiser", 0
        checkpoint(phase, step, opt)

    # Phase 2: cross-prediction on cached latents.
    model.autoencoder.requires_grad_(False)
    encode_episodes(model, episodes, show=dist.is_main)
    model.train()
    net = dist.wrap(_LossModule(model))
    sampler = PairSampler(episodes, cfg.pairs, tc.seed + 7919 * dist.rank + step)
    budget = StepBudget(tc, step, dist.world_size)
    bar = progress(total=tc.steps, initial=step, desc="stage1 cross-prediction", enabled=dist.is_main)
    while step < tc.steps:
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, tc)
        prompt, first, target = make_batch(episodes, [sampler.sample() for _ in range(tc.batch_size)], cfg,
                                           dist.device)
        loss = net(prompt, first, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(params, tc.grad_clip)
        opt.step()
        if step % tc.log_every == 0:
            log.write(step=step, phase="denoiser", loss=float(loss.detach()), grad_norm=float(gnorm), lr=cosine_lr(step, tc))
            bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
        if (step + 1) % tc.checkpoint_every == 0:
            checkpoint("denoiser", step + 1, opt)
        step += 1
        bar.update()
        budget.update(step, bar)
    bar.close()
    final = out / "stage1.safetensors"
    if dist.is_main:
        checkpoint("denoiser", tc.steps, opt)
        save_stage1(final, model, cfg, phase="done", step=tc.steps)
        plot_metrics(out / "metrics.jsonl", out / "curves.png", title=f"stage 1 ({out})")
        print(f"[stage1] wrote {final} and {out / 'curves.png'}")
    dist.barrier()
    dist.close()
    return final


def load_stage1_config(path: str | Path, overrides: list[str] | None = None) -> Stage1Config:
    return load_config(Stage1Config, path, overrides)


def load_clip_episodes(root: str | Path, image_size: int, success_only: bool = True,
                       show: bool = True) -> list[ClipEpisode]:
    """Every episode under ``root`` (the benchmark's dataset format), frames resized to the model size."""
    from .data import iter_episodes

    episodes = []
    found = iter_episodes(root, success=True if success_only else None)
    for ep in progress(found, desc=f"load {root}", enabled=show):
        episodes.append(ClipEpisode(ep.frames_at(image_size), ep.task, ep.skill, ep.embodiment,
                                    int(ep.seed or 0)))
    if not episodes:
        raise ValueError(f"{root}: no {'successful ' if success_only else ''}episodes found "
                         f"(generate some with: humanprompt-sim generate --out {root})")
    return episodes


# -- sampling and evaluation ----------------------------------------------------------------------------
def prepare_prompt(model: CrossPredictionModel, frames: np.ndarray) -> torch.Tensor:
    """Any prompt video (T, H, W, 3) uint8 → prompt latents (1, Tp, C, h, w) (resampled as documented)."""
    clip = resample_clip(frames, model.cfg.prompt_frames, model.cfg.image_size)
    return model.encode_frames(torch.from_numpy(clip))[None]


def prepare_frame(model: CrossPredictionModel, frame: np.ndarray) -> torch.Tensor:
    """One frame (H, W, 3) uint8 → latent (1, C, h, w)."""
    return model.encode_frames(torch.from_numpy(resize_frames(frame[None], model.cfg.image_size)))


@torch.no_grad()
def predict_video(model: CrossPredictionModel, prompt_frames: np.ndarray, first_frame: np.ndarray, seed: int = 0,
                  steps: int | None = None, method: str = "sample", guidance: float | None = None) -> np.ndarray:
    """Predicted video (T, S, S, 3) uint8 of what follows ``first_frame`` when doing the prompt's task.

    ``method``: ``sample`` (DDIM, ``steps`` steps: one plausible future) or ``mean`` (one denoiser
    pass at the noisiest step: the model's estimate of the expected future, see
    :meth:`CrossPredictionModel.predict_mean`). ``guidance``: classifier-free guidance scale
    (default: the model's ``guidance_scale``; > 1 needs a model trained with ``prompt_dropout``).
    """
    prompt, first = prepare_prompt(model, prompt_frames), prepare_frame(model, first_frame)
    if method == "mean":
        lat = model.predict_mean(prompt, first, guidance)
    elif method == "sample":
        lat = model.sample(prompt, first, steps, torch.Generator().manual_seed(seed), guidance)
    else:
        raise ValueError(f"method: 'sample' or 'mean', got {method!r}")
    return model.decode_latents(lat)[0].numpy()


def psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-frame PSNR (dB) of uint8 clips (T, H, W, 3)."""
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).reshape(len(a), -1).mean(axis=1)
    return 10 * np.log10(255.0 ** 2 / np.maximum(mse, 1e-10))


def ssim(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-frame SSIM (Gaussian window σ=1.5, on luminance) of uint8 clips (T, H, W, 3)."""
    import torch.nn.functional as F

    def lum(x: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(x.astype(np.float32))
        return (0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2])[:, None]

    x, y = lum(a), lum(b)
    coords = torch.arange(11, dtype=torch.float32) - 5
    g = torch.exp(-coords ** 2 / (2 * 1.5 ** 2))
    g = (g / g.sum())
    win = (g[:, None] * g[None, :])[None, None]
    blur = lambda z: F.conv2d(z, win)  # noqa: E731  (valid windows only, as in skimage)
    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx ** 2, blur(y * y) - my ** 2, blur(x * y) - mx * my
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (sxx + syy + c2))
    return s.mean(dim=(1, 2, 3)).numpy()


def paired_difference(psnr_a: np.ndarray, psnr_b: np.ndarray, ssim_a: np.ndarray, ssim_b: np.ndarray,
                      seed: int = 0, resamples: int = 10_000) -> dict[str, float]:
    """Per-clip PSNR/SSIM of condition a minus condition b on the same clips: mean differences, the
    share of clips where a is better, and a 95% bootstrap interval of the mean PSNR difference."""
    d = np.asarray(psnr_a) - np.asarray(psnr_b)
    boot = np.random.default_rng(seed).choice(d, size=(resamples, len(d))).mean(axis=1)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return {"psnr": float(d.mean()), "psnr_ci95": [float(lo), float(hi)],
            "ssim": float(np.mean(np.asarray(ssim_a) - np.asarray(ssim_b))),
            "a_better": float(np.mean(d > 0)), "clips": int(len(d))}


@torch.no_grad()
def pooled_features(model: CrossPredictionModel, episodes: Sequence[ClipEpisode]) -> np.ndarray:
    """Each episode as a prompt, with its own first frame as the current frame → mean-pooled
    representation (E, D)."""
    out = []
    for ep in episodes:
        tokens = model.encode_prompt(prepare_prompt(model, ep.frames))
        feats = model.features(tokens, prepare_frame(model, ep.frames[0]))
        out.append(feats.mean(dim=(1, 2))[0].cpu().numpy())
    return np.stack(out)


def nearest_prototype(train_x: np.ndarray, train_y: Sequence[str], test_x: np.ndarray) -> list[str]:
    """The label of each test row's nearest class prototype: the mean of that class's training rows,
    by cosine, on features standardised with the training rows' mean and std."""
    classes = sorted(set(train_y))
    ytr = np.array([classes.index(y) for y in train_y])
    mu, sd = train_x.mean(0), train_x.std(0) + 1e-6
    xtr, xte = (train_x - mu) / sd, (test_x - mu) / sd
    protos = np.stack([xtr[ytr == c].mean(0) for c in range(len(classes))])
    cos = (xte / np.linalg.norm(xte, axis=1, keepdims=True)) @ (protos / np.linalg.norm(protos, axis=1, keepdims=True)).T
    return [classes[k] for k in cos.argmax(1)]


def probe_accuracy(train_x: np.ndarray, train_y: Sequence[str], test_x: np.ndarray, test_y: Sequence[str],
                   seed: int = 0) -> dict[str, float]:
    """Task identification: nearest class prototype (cosine) and a linear probe (logistic regression)."""
    classes = sorted(set(train_y))
    ytr = np.array([classes.index(y) for y in train_y])
    yte = np.array([classes.index(y) if y in classes else -1 for y in test_y])
    mu, sd = train_x.mean(0), train_x.std(0) + 1e-6
    xtr, xte = (train_x - mu) / sd, (test_x - mu) / sd
    proto_acc = float(np.mean([p == y for p, y in zip(nearest_prototype(train_x, train_y, test_x), test_y)]))
    with torch.enable_grad():
        return {"prototype": proto_acc, "linear": _linear_probe(xtr, ytr, xte, yte, len(classes), seed),
                "chance": 1.0 / len(classes)}


def _linear_probe(xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, yte: np.ndarray, classes: int,
                  seed: int) -> float:
    torch.manual_seed(seed)
    lin = torch.nn.Linear(xtr.shape[1], classes)
    opt = torch.optim.Adam(lin.parameters(), lr=1e-2, weight_decay=1e-3)
    xt, yt = torch.tensor(xtr, dtype=torch.float32), torch.tensor(ytr)
    for _ in range(300):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(lin(xt), yt).backward()
        opt.step()
    with torch.no_grad():
        return float((lin(torch.tensor(xte, dtype=torch.float32)).argmax(1).numpy() == yte).mean())


@torch.no_grad()
def evaluate_stage1(model: CrossPredictionModel, cfg: Stage1Config, train_eps: Sequence[ClipEpisode],
                    test_eps: Sequence[ClipEpisode], max_targets: int = 40, seed: int = 0,
                    methods: Sequence[str] = ("mean", "sample"), twins: dict[str, str] | None = None,
                    guidance: Sequence[float] = (1.0,)) -> dict[str, Any]:
    """The acceptance tables: prediction quality vs baselines, and task probes vs an untrained model.

    Prediction: each held-out robot episode's first frame + a held-out human prompt of the same task
    (and, as the control, of a different task: the task's twin from ``twins`` — same objects in the
    scene, another skill — when it has one, else a random other task) → predicted clip vs the
    ground-truth clip. Each method is reported at each classifier-free ``guidance`` scale (rows named
    ``..., mean, guidance 3`` when it is not 1).
    """
    rng = np.random.default_rng(seed)
    human_test = [e for e in test_eps if e.embodiment == "human"]
    robot_test = [e for e in test_eps if e.embodiment == "robot"]
    rows: dict[str, list[np.ndarray]] = {"copy first frame": []}
    variants = [(m, g, m if g == 1.0 else f"{m}, guidance {g:g}") for m in methods for g in guidance]
    for _, _, name in variants:
        rows.update({f"same-task prompt, {name}": [], f"other-task prompt, {name}": []})
    ssim_rows: dict[str, list[np.ndarray]] = {k: [] for k in rows}
    for i, target in enumerate(robot_test[:max_targets]):
        same = [e for e in human_test if e.task == target.task]
        other = [e for e in human_test if e.task != target.task]
        twin = [e for e in other if twins and e.task == twins.get(target.task)]
        other = twin or other
        if not same or not other:
            continue
        gt = target.frames[clip_indices(len(target.frames), 0, cfg.model.clip_frames, cfg.clip_stride)]
        gt = resize_frames(gt, cfg.model.image_size)
        first = target.frames[0]
        same_prompt, other_prompt = same[rng.integers(len(same))].frames, other[rng.integers(len(other))].frames
        preds = {"copy first frame": np.repeat(resize_frames(first[None], cfg.model.image_size), len(gt), axis=0)}
        for m, g, name in variants:
            preds[f"same-task prompt, {name}"] = predict_video(model, same_prompt, first, seed=i, method=m, guidance=g)
            preds[f"other-task prompt, {name}"] = predict_video(model, other_prompt, first, seed=i, method=m,
                                                                guidance=g)
        for k, p in preds.items():
            rows[k].append(psnr(p, gt))
            ssim_rows[k].append(ssim(p, gt))
    prediction = {k: {"psnr_per_frame": np.mean(v, 0).round(2).tolist(), "psnr": float(np.mean(v)),
                      "ssim_per_frame": np.mean(ssim_rows[k], 0).round(3).tolist(), "ssim": float(np.mean(ssim_rows[k])),
                      "clips": len(v)} for k, v in rows.items() if v}
    # Does the right prompt help? Per-clip paired differences, same-task minus other-task prompt.
    paired = {}
    for _, _, name in variants:
        same, other = f"same-task prompt, {name}", f"other-task prompt, {name}"
        if rows[same]:
            paired[name] = paired_difference(np.mean(rows[same], 1), np.mean(rows[other], 1),
                                             np.mean(ssim_rows[same], 1), np.mean(ssim_rows[other], 1), seed)

    human_train = [e for e in train_eps if e.embodiment == "human"]
    probes = {}
    torch.manual_seed(seed)
    fresh = build_video_model(dataclasses.replace(cfg.model)).to(model.device).eval()
    for name, m in (("trained", model), ("untrained", fresh)):
        probes[name] = probe_accuracy(pooled_features(m, human_train), [e.task for e in human_train],
                                      pooled_features(m, human_test), [e.task for e in human_test], seed)
    return {"prediction": prediction, "same_minus_other": paired, "probe": probes,
            "counts": {"train_human": len(human_train), "test_human": len(human_test), "test_robot": len(robot_test)}}
