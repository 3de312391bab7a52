"""Linear probe: does the stage-1 representation tell a policy where the hand should move, on scenes it
has not seen, and how does that change with the number of training scenes?

For every training frame, a ridge regression maps [the frozen stage-1 representation of (a same-task
human prompt, the frame), pooled over its predicted frames; the proprio] to the next ``horizon`` wrist
offsets of the demonstration (where the wrist goes, relative to where it is). It is scored on held-out
robot demonstrations (prompted by a held-out human demo of the same task) against two baselines: a
hand that holds its pose, and the same ridge on the proprio alone. Training uses the first N scenes
(seeds) of every task, for several N: if the representation's error keeps falling with N while the
proprio-only error does not, the policy is short of scenes, not of steps.

    python benchmarks/probe_representation.py --data data/humanprompt-sim/train \
        --heldout data/humanprompt-sim/heldout [--scenes 10,20,40] [--lam 100,1000,3000]

Prints a table of mean wrist distance over the chunk, cm (seen skills / human-only skills). The
stage-1 representation comes from the feature cache that stage-2 training uses (built if missing).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from humanprompt_ros.action import WRIST_POS  # noqa: E402
from humanprompt_ros.config.stage2 import load_stage2_config
from humanprompt_ros.eval.actions import heldout_samples
from humanprompt_ros.models.policy_model import PromptPolicyModel
from humanprompt_ros.models.video_model import load_stage1
from humanprompt_ros.sim.benchmark import load_benchmark
from humanprompt_ros.train.batcher import Batcher
from humanprompt_ros.train.stage2_data import chunk, load_policy_episodes


def offsets(ep, t: int, horizon: int) -> np.ndarray:
    """(horizon·3,) the demonstration's wrist positions t … t+H−1 relative to the wrist at t."""
    return (chunk(ep.actions, t, horizon)[:, WRIST_POS] - ep.proprio[t][WRIST_POS]).reshape(-1)


def ridge(x: np.ndarray, y: np.ndarray, lams: list[float]) -> list[np.ndarray]:
    """Weights W with x @ W ≈ y for each strength in ``lams`` (x already standardised, with a bias column)."""
    gram, xy = x.T @ x, x.T @ y
    return [np.linalg.solve(gram + lam * np.eye(x.shape[1]), xy) for lam in lams]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="config/stage2.yaml", help="stage-2 config (its stage 1 and cache settings)")
    ap.add_argument("--data", default=None, help="training episodes (default: the config's data)")
    ap.add_argument("--heldout", default="data/humanprompt-sim/heldout")
    ap.add_argument("--scenes", default="10,20,40", help="training scenes (seeds) per task to probe with")
    ap.add_argument("--lam", default="100,1000,3000", help="ridge strengths of the representation's probe")
    ap.add_argument("--times", type=int, default=4, help="evaluated steps per held-out episode")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = load_stage2_config(args.config, [f"data={args.data}"] if args.data else [])
    horizon = cfg.policy.horizon
    video_model, s1cfg, _ = load_stage1(cfg.stage1)
    episodes = load_policy_episodes(cfg.data, s1cfg.model.image_size, show=False)
    cfg.tasks, cfg.skills = sorted({e.task for e in episodes}), sorted({e.skill for e in episodes})
    model = PromptPolicyModel(cfg, s1cfg, video_model).eval()
    store = Batcher(model, episodes, cfg.train.seed).store  # the training run's feature cache
    if store is None:
        raise SystemExit("the probe reads the stage-1 feature cache: use a config with train.cached_prompts > 0")

    x, y, scene = [], [], []
    for i, ep in enumerate(episodes):
        n = len(ep.actions)
        f = np.asarray(store.data[store.offsets[i]:store.offsets[i] + n, 0], np.float32)  # (n, T, N, D)
        x.append(np.concatenate([f.mean(1).reshape(n, -1), ep.proprio[:n]], 1))
        y.append(np.stack([offsets(ep, t, horizon) for t in range(n)]))
        scene += [ep.seed] * n
    x, y, scene = np.concatenate(x), np.concatenate(y), np.array(scene)
    mu, sd = x.mean(0), x.std(0) + 1e-6

    held = load_policy_episodes(args.heldout, s1cfg.model.image_size, show=False)
    hx, hy, skills = [], [], []
    with torch.no_grad():  # the samples and prompts of eval-stage2
        for ep, prompt, _, steps in heldout_samples(held, args.times):
            latents = video_model.encode_frames(torch.from_numpy(ep.frames[steps]))
            f = model.features(model.encode_prompt(prompt.frames).expand(len(steps), -1, -1), latents).numpy()
            hx.append(np.concatenate([f.mean(1).reshape(len(f), -1), ep.proprio[steps]], 1))
            hy.append(np.stack([offsets(ep, int(t), horizon) for t in steps]))
            skills += [ep.skill] * len(steps)
    hx, hy = np.concatenate(hx), np.concatenate(hy)
    seen = np.isin(np.array(skills), load_benchmark(None).robot_skills)

    def standard(a: np.ndarray, cols: slice) -> np.ndarray:
        return np.concatenate([((a - mu) / sd)[:, cols], np.ones((len(a), 1))], 1)

    def error(pred: np.ndarray) -> str:
        d = 100 * np.linalg.norm((pred - hy).reshape(len(hy), horizon, 3), axis=-1).mean(1)
        return f"{d[seen].mean():5.2f} / {d[~seen].mean():5.2f}"

    proprio = slice(x.shape[1] - episodes[0].proprio.shape[1], None)
    lams = [float(v) for v in args.lam.split(",")]
    print(f"held-out robot demos: {seen.sum()} samples of seen skills, {(~seen).sum()} of human-only skills")
    print(f"wrist error over the {horizon}-step chunk, cm (seen / human-only); hold still: {error(0 * hy)}")
    print("| scenes per task | train samples | proprio only | " +
          " | ".join(f"representation + proprio, λ={lam:g}" for lam in lams) + " |")
    firsts = np.unique(scene)
    held_all, held_proprio = standard(hx, slice(None)), standard(hx, proprio)
    for n in map(int, args.scenes.split(",")):
        keep = np.isin(scene, firsts[:n])
        row = [str(n), str(int(keep.sum()))]
        row += [error(held_proprio @ w) for w in ridge(standard(x[keep], proprio), y[keep], [1.0])]
        row += [error(held_all @ w) for w in ridge(standard(x[keep], slice(None)), y[keep], lams)]
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
