"""``humanprompt-train estimator``: train the state estimator (:mod:`humanprompt_ros.train.estimator`) from the
command line; ``benchmarks/bench_state_estimator.py`` takes the same arguments and measures the result."""

from __future__ import annotations

import argparse
import time
from typing import Any


def add_estimator_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    """The state estimator's training arguments (``humanprompt-train estimator``, ``bench_state_estimator.py``)."""
    p.add_argument(
        "--data",
        required=required,
        help="episodes with state.npy (humanprompt-sim generate); several dataset roots separated by commas",
    )
    p.add_argument(
        "--rollouts",
        default=None,
        help="also train on these episodes whatever their outcome (a policy's rollouts on training scenes, "
        "saved with humanprompt-sim eval --save-dir): the states a policy gets itself into",
    )
    p.add_argument(
        "--twin-views",
        action="store_true",
        help="also read each episode's frames under its twin task's skill (a shared twin scene of the same seed)",
    )
    p.add_argument("--per-task", type=int, default=None, help="only the first N episodes of each task")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--channels", default="32,32,64,64,64")
    p.add_argument("--shift", type=int, default=4)
    p.add_argument("--first-frame", action="store_true", help="also read the episode's first frame")
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, required=required, help="save the trained estimator here (safetensors)")


def train_from_args(args: argparse.Namespace) -> tuple[Any, list, float]:
    """Train a state estimator as :func:`add_estimator_args`' arguments say (and save it to ``--out``, if
    given) → (model, its training episodes, seconds spent training)."""
    from humanprompt_ros.models.state_estimator import StateEstimatorConfig, save_estimator
    from humanprompt_ros.sim.runner import sim_config
    from humanprompt_ros.train.estimator import EstimatorTraining, estimator_episodes, train_estimator

    cfg = StateEstimatorConfig(
        channels=[int(c) for c in args.channels.split(",")],
        image_size=args.size,
        shift=args.shift,
        first_frame=args.first_frame,
    )
    rollouts = args.rollouts.split(",") if args.rollouts else None
    episodes, views = estimator_episodes(args.data.split(","), args.size, args.per_task, args.twin_views, rollouts)
    print(f"[estimator] {len(episodes)} episodes ({views} of them twin views)")
    t0 = time.perf_counter()
    model = train_estimator(episodes, sim_config(), cfg, EstimatorTraining(args.steps, args.batch, args.lr, args.seed))
    seconds = time.perf_counter() - t0
    if args.out:
        save_estimator(
            model, args.out, {"data": args.data, "rollouts": args.rollouts, "steps": args.steps, "seed": args.seed}
        )
    return model, episodes, seconds


def cmd_estimator(args: argparse.Namespace) -> int:
    """A bad dataset or setting raises ``ValueError``: ``humanprompt-train``'s main prints it (exit code 2)."""
    _, episodes, seconds = train_from_args(args)
    print(
        f"wrote {args.out} ({args.steps} steps in {seconds / 60:.1f} min); its held-out error: "
        f"python benchmarks/bench_state_estimator.py --checkpoint {args.out}"
    )
    return 0
