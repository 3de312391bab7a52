"""Evaluating stage 1 offline: is the predicted video close to what happened, does the right prompt
help, and does its representation tell the tasks apart (probes)?"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from humanprompt_ros.config.stage1 import Stage1Config
from humanprompt_ros.eval.stats import paired_difference
from humanprompt_ros.models.cross_prediction import CrossPredictionModel
from humanprompt_ros.models.video_model import build_video_model, predict_video, prepare_frame, prepare_prompt
from humanprompt_ros.train.stage1 import ClipEpisode, clip_indices
from humanprompt_ros.video import resize_frames


def psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-frame PSNR (dB) of uint8 clips (T, H, W, 3)."""
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).reshape(len(a), -1).mean(axis=1)
    return 10 * np.log10(255.0**2 / np.maximum(mse, 1e-10))


def ssim(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-frame SSIM (Gaussian window σ=1.5, on luminance) of uint8 clips (T, H, W, 3)."""

    def lum(x: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(x.astype(np.float32))
        return (0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2])[:, None]

    x, y = lum(a), lum(b)
    coords = torch.arange(11, dtype=torch.float32) - 5
    g = torch.exp(-(coords**2) / (2 * 1.5**2))
    g = g / g.sum()
    win = (g[:, None] * g[None, :])[None, None]
    blur = lambda z: F.conv2d(z, win)  # noqa: E731  (valid windows only, as in skimage)
    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))
    return s.mean(dim=(1, 2, 3)).numpy()


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
    cos = (xte / np.linalg.norm(xte, axis=1, keepdims=True)) @ (
        protos / np.linalg.norm(protos, axis=1, keepdims=True)
    ).T
    return [classes[k] for k in cos.argmax(1)]


def probe_accuracy(
    train_x: np.ndarray, train_y: Sequence[str], test_x: np.ndarray, test_y: Sequence[str], seed: int = 0
) -> dict[str, float]:
    """Task identification: nearest class prototype (cosine) and a linear probe (logistic regression)."""
    classes = sorted(set(train_y))
    ytr = np.array([classes.index(y) for y in train_y])
    yte = np.array([classes.index(y) if y in classes else -1 for y in test_y])
    mu, sd = train_x.mean(0), train_x.std(0) + 1e-6
    xtr, xte = (train_x - mu) / sd, (test_x - mu) / sd
    proto_acc = float(np.mean([p == y for p, y in zip(nearest_prototype(train_x, train_y, test_x), test_y)]))
    with torch.enable_grad():
        return {
            "prototype": proto_acc,
            "linear": _linear_probe(xtr, ytr, xte, yte, len(classes), seed),
            "chance": 1.0 / len(classes),
        }


def _linear_probe(xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, yte: np.ndarray, classes: int, seed: int) -> float:
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
def evaluate_stage1(
    model: CrossPredictionModel,
    cfg: Stage1Config,
    train_eps: Sequence[ClipEpisode],
    test_eps: Sequence[ClipEpisode],
    max_targets: int = 40,
    seed: int = 0,
    methods: Sequence[str] = ("mean", "sample"),
    twins: dict[str, str] | None = None,
    guidance: Sequence[float] = (1.0,),
) -> dict[str, Any]:
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
            preds[f"other-task prompt, {name}"] = predict_video(
                model, other_prompt, first, seed=i, method=m, guidance=g
            )
        for k, p in preds.items():
            rows[k].append(psnr(p, gt))
            ssim_rows[k].append(ssim(p, gt))
    prediction = {
        k: {
            "psnr_per_frame": np.mean(v, 0).round(2).tolist(),
            "psnr": float(np.mean(v)),
            "ssim_per_frame": np.mean(ssim_rows[k], 0).round(3).tolist(),
            "ssim": float(np.mean(ssim_rows[k])),
            "clips": len(v),
        }
        for k, v in rows.items()
        if v
    }
    # Does the right prompt help? Per-clip paired differences, same-task minus other-task prompt.
    paired = {}
    for _, _, name in variants:
        same, other = f"same-task prompt, {name}", f"other-task prompt, {name}"
        if rows[same]:
            paired[name] = paired_difference(
                np.mean(rows[same], 1),
                np.mean(rows[other], 1),
                np.mean(ssim_rows[same], 1),
                np.mean(ssim_rows[other], 1),
                seed,
            )

    human_train = [e for e in train_eps if e.embodiment == "human"]
    probes = {}
    torch.manual_seed(seed)
    fresh = build_video_model(dataclasses.replace(cfg.model)).to(model.device).eval()
    for name, m in (("trained", model), ("untrained", fresh)):
        probes[name] = probe_accuracy(
            pooled_features(m, human_train),
            [e.task for e in human_train],
            pooled_features(m, human_test),
            [e.task for e in human_test],
            seed,
        )
    return {
        "prediction": prediction,
        "same_minus_other": paired,
        "probe": probes,
        "counts": {"train_human": len(human_train), "test_human": len(human_test), "test_robot": len(robot_test)},
    }
