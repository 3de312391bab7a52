"""How well can the policy's frame encoder locate the objects? Trains a frame encoder + state probe alone
(no diffusion head) to read the scene state from frames, then prints the held-out localisation error.

    python benchmarks/bench_frame_encoder.py --data data/gates/clean --per-task 80 --steps 3000 \
        --channels 32,32,64 --keypoints 32          # the shipped encoder's shape
    python benchmarks/bench_frame_encoder.py --data data/gates/clean --per-task 80 --channels 32,32,64,64,64 --keypoints 64

Held-out frames are rendered by the scripted expert at the benchmark's held-out seeds. Figures: the mean
error of the target object's xy and of the goal's xy (cm), the median target yaw error (degrees), per
seen task, on training and held-out frames. A policy needs about 1 cm at the contact (issue 40, G3).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from humanprompt_ros.models.frame_encoder import FrameEncoder, FrameEncoderConfig, StateProbe
from humanprompt_ros.progress import progress
from humanprompt_ros.sim.runner import expert_episode
from humanprompt_ros.sim.tasks import load_task, resolve_task
from humanprompt_ros.train.stage2_data import load_policy_episodes
from humanprompt_ros.video import resize_frames

TASKS = ("push_box", "pull_puck", "open_drawer", "rotate_lever", "pick_lift")


def errors(encoder: FrameEncoder, probe: StateProbe, frames: np.ndarray, state: np.ndarray) -> np.ndarray:
    """(target xy cm, goal xy cm, target yaw deg) per frame."""
    with torch.no_grad():
        pred = probe.norm.unnormalize(probe.mlp(encoder(torch.from_numpy(frames)))).numpy()
    target = np.linalg.norm(pred[:, :2] - state[:, :2], axis=1) * 100
    goal = np.linalg.norm(pred[:, 21:23] - state[:, 21:23], axis=1) * 100
    dyaw = np.arctan2(pred[:, 4], pred[:, 3]) - np.arctan2(state[:, 4], state[:, 3])
    yaw = np.degrees(np.abs((dyaw + np.pi) % (2 * np.pi) - np.pi))
    return np.stack([target, goal, yaw], axis=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="robot episodes with state.npy (humanprompt-sim generate)")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--channels", default="32,32,64")
    ap.add_argument("--keypoints", type=int, default=32)
    ap.add_argument("--shift", type=int, default=8)
    ap.add_argument("--per-task", type=int, default=None, help="only the first N episodes of each task")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--heldout", type=int, default=3, help="held-out expert episodes per task")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    cfg = FrameEncoderConfig(channels=[int(c) for c in args.channels.split(",")], keypoints=args.keypoints)
    cfg.shift = args.shift
    width = 128
    encoder, probe = FrameEncoder(cfg, width), StateProbe(cfg.keypoints, width, 24)
    episodes = load_policy_episodes(args.data, args.size, state=True, per_task=args.per_task)
    probe.norm.fit(torch.from_numpy(np.concatenate([e.state for e in episodes])))
    params = list(encoder.parameters()) + list(probe.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=1e-4)
    t0 = time.perf_counter()
    for step in progress(range(args.steps), desc="frame encoder → state"):
        idx = rng.integers(len(episodes), size=args.batch)
        ts = [int(rng.integers(len(episodes[i].state))) for i in idx]
        frames = torch.from_numpy(np.stack([episodes[i].frames[t] for i, t in zip(idx, ts)]))
        state = torch.from_numpy(np.stack([episodes[i].state[t] for i, t in zip(idx, ts)]))
        for g in opt.param_groups:
            g["lr"] = args.lr * 0.5 * (1 + np.cos(np.pi * step / args.steps))
        loss = probe.loss(encoder(frames), state)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    seconds = time.perf_counter() - t0
    encoder.eval()
    print(
        f"encoder channels {cfg.channels}, {cfg.keypoints} points, {args.size}² frames, {args.steps} steps "
        f"({seconds / args.steps * 1000:.0f} ms/step)"
    )
    print("| task | train: target cm | goal cm | yaw deg | held-out: target cm | goal cm | yaw deg |")
    print("|---|---|---|---|---|---|---|")
    for name in TASKS:
        task = load_task(resolve_task(name))
        train = [errors(encoder, probe, e.frames, e.state) for e in episodes if e.task == name][:5]
        held = []
        for s in range(args.heldout):
            rec = expert_episode(task, "robot", 1_000_000 + s)
            held.append(errors(encoder, probe, resize_frames(np.stack(rec.frames), args.size), rec.state))
        tr, he = np.concatenate(train), np.concatenate(held)
        row = [
            tr[:, 0].mean(),
            tr[:, 1].mean(),
            np.median(tr[:, 2]),
            he[:, 0].mean(),
            he[:, 1].mean(),
            np.median(he[:, 2]),
        ]
        print(f"| {name} | " + " | ".join(f"{v:.2f}" for v in row) + " |")


if __name__ == "__main__":
    main()
