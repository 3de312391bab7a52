"""How far does classifier-free guidance push each checkpoint's head, and toward what?

Guidance samples ``v_null + g·(v_z − v_null)``: it scales the difference that the pooled prompt embedding
z makes to the head's prediction. For every held-out human demonstration used as a prompt (its own first
frame and proprioception as the current ones, a stand-in for the robot's), at fixed noisy chunks shared
by all checkpoints and at each DDIM step the checkpoint samples with, this prints per checkpoint:

- ``Δv / v``: ‖v_z − v_null‖ / ‖v_null‖, the size of the guidance direction against the prediction
  (guidance g moves the prediction by (g − 1) times this);
- ``Δc / c``: the same for the head's adaLN condition (``t + global_cond(z)`` against the null's);
- ``skill share``: the part of the guidance directions' variance (over prompts, per noise and step)
  that is between skills: 1 when z only says the skill, near 0 when what it adds is particular to the
  demonstration.

Only heads trained with a null condition (``policy.global_dropout > 0``) can be guided; others are refused.

    python benchmarks/probe_guidance.py --checkpoint full=runs/s21/full160x2/policy.safetensors \\
        --checkpoint no_pdcp=runs/s21/no_pdcp160x2/policy.safetensors --heldout data/humanprompt-sim/shared_prompts

Prints a table and, last, one JSON line {checkpoint: {column: value}}.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from probe_pdcp_embedding import as_prompt, named_checkpoints  # noqa: E402
from probe_prompt_separation import print_table  # noqa: E402

from humanprompt_ros.models.policy_model import PromptPolicyModel
from humanprompt_ros.train.stage2_data import PolicyEpisode, load_policy_episodes

COLUMNS = ("Δv / v", "Δc / c", "skill share")


def skill_share(directions: np.ndarray, skills: list[str]) -> float:
    """Directions (N, D) with a skill each → between-skill variance / total variance (NaN if no variance)."""
    labels, mean = np.asarray(skills), directions.mean(0)
    total = float(((directions - mean) ** 2).sum())
    between = sum(float((labels == s).sum()) * float(((directions[labels == s].mean(0) - mean) ** 2).sum())
                  for s in set(skills))
    return between / total if total > 0 else float("nan")


@torch.no_grad()
def guidance_stats(model: PromptPolicyModel, episodes: list[PolicyEpisode], timesteps: list[int],
                   noises: int, seed: int) -> dict[str, float]:
    """The three columns for one model over ``episodes`` as prompts (see the module docstring)."""
    head = model.head
    den = head.denoiser
    if den.null_global is None:
        raise ValueError("this checkpoint's head has no null condition (trained with policy.global_dropout 0); "
                         "it cannot be guided, so there is nothing to measure")
    gen = torch.Generator().manual_seed(seed)
    noisy = torch.randn((noises, len(timesteps), head.cfg.horizon, head.cfg.action_dim), generator=gen)
    dv, dc, dirs = [], [], []
    for ep in episodes:
        _, cond = as_prompt(model, ep)
        g = torch.cat([model.global_condition(cond), den.null_global[None]])  # (2, Dv): z, then the null
        proprio = head.proprio_input(torch.from_numpy(ep.proprio[:1]))
        per_ep = []
        for i, t in enumerate(timesteps):
            tt = torch.full((2,), t, dtype=torch.long)
            c = den.t_embed(tt) + den.global_cond(g)
            dc.append(float((c[0] - c[1]).norm() / c[1].norm()))
            for k in range(noises):
                x = noisy[k, i][None].expand(2, -1, -1)
                v = den(x, tt, cond.expand(2, -1, -1), proprio.expand(2, -1), g)
                dv.append(float((v[0] - v[1]).norm() / v[1].norm()))
                per_ep.append((v[0] - v[1]).flatten())
        dirs.append(torch.stack(per_ep))  # (steps·noises, H·A)
    d = torch.stack(dirs).numpy()  # (E, steps·noises, H·A)
    skills = [e.skill for e in episodes]
    share = float(np.mean([skill_share(d[:, j], skills) for j in range(d.shape[1])]))
    return {"Δv / v": float(np.mean(dv)), "Δc / c": float(np.mean(dc)), "skill share": share}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True, action="append", metavar="[NAME=]PATH",
                        help="a stage-2 checkpoint trained with policy.global_dropout > 0; repeat to compare")
    parser.add_argument("--heldout", required=True, type=Path, help="held-out human demos (the prompts)")
    parser.add_argument("--per-task", type=int, default=10, help="at most this many prompts per task")
    parser.add_argument("--noises", type=int, default=4, help="noisy chunks per step (the same for every checkpoint)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    episodes: dict[int, list[PolicyEpisode]] = {}
    result: dict[str, dict[str, float]] = {}
    for name, model in named_checkpoints(args.checkpoint):
        size = model.video_model.cfg.image_size
        if size not in episodes:
            episodes[size] = load_policy_episodes(args.heldout, size, show=False, embodiment="human",
                                                  per_task=args.per_task)
        model.head.sample_scheduler.set_timesteps(model.head.cfg.inference_steps)
        steps = [int(t) for t in model.head.sample_scheduler.timesteps]
        try:
            result[name] = guidance_stats(model, episodes[size], steps, args.noises, args.seed)
        except ValueError as err:
            print(f"{name}: {err}", file=sys.stderr)
            return 1
    n = len(next(iter(episodes.values())))
    print_table(f"what guidance scales: {n} held-out human prompts, each DDIM step, {args.noises} noisy chunks "
                "each", "checkpoint", COLUMNS, result, digits=3)
    return 0


if __name__ == "__main__":
    sys.exit(main())
