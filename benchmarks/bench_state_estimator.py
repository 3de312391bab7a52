"""How precisely does the state estimator read the scene off a frame? Trains it on simulated episodes, then
prints the held-out error per seen task, in the units a contact cares about.

    python benchmarks/bench_state_estimator.py --data data/v2/robot --per-task 100 --steps 4000 \
        --out runs/estimator/estimator.safetensors

Held-out frames are the scripted expert's with the robot hand at the benchmark's held-out seeds (1,000,000 on),
rendered at the estimator's size: for a human-only task (trained on human frames only) the hand it has never seen
doing that task. Columns: the target's and the other object's xy error (cm, mean and 90th percentile), the
goal's xy error (cm), the target's yaw error (degrees, median; the yaw of a round object is not defined and is
left out) and its articulation error (drawer cm, lever degrees). A policy needs about 1 cm (issue 40, G3).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from humanprompt_ros.models.state_estimator import StateEstimatorConfig, estimate, save_estimator
from humanprompt_ros.sim.runner import expert_episode, sim_config
from humanprompt_ros.sim.tasks import load_task, resolve_task
from humanprompt_ros.train.estimator import EstimatorTraining, train_estimator, twin_views
from humanprompt_ros.train.stage2_data import load_policy_episodes
from humanprompt_ros.video import resize_frames

TASKS = (
    "push_box",
    "pull_puck",
    "open_drawer",
    "rotate_lever",
    "pick_lift",
    "pick_place",
    "knock_over",
    "press_button",
)
ANGULAR = {"lever"}  # articulation in radians (the others in metres)


def errors(pred: np.ndarray, true: np.ndarray, kinds: list[str]) -> dict[str, np.ndarray]:
    """Per-frame errors of estimated against true states (B, D)."""

    def xy(k: int) -> np.ndarray:
        return np.linalg.norm(pred[:, 7 * k : 7 * k + 2] - true[:, 7 * k : 7 * k + 2], axis=1) * 100

    dyaw = np.arctan2(pred[:, 4], pred[:, 3]) - np.arctan2(true[:, 4], true[:, 3])
    art = np.abs(pred[:, 5] - true[:, 5])
    return {
        "target": xy(0),
        "other": xy(1) if true[:, 13].any() else np.zeros(len(true)),
        "goal": np.linalg.norm(pred[:, -3:-1] - true[:, -3:-1], axis=1) * 100 if true[:, -1].any() else None,
        "yaw": None if kinds[0] in ("cylinder", "ball") else np.degrees(np.abs((dyaw + np.pi) % (2 * np.pi) - np.pi)),
        "art": np.degrees(art) if kinds[0] in ANGULAR else art * 100,
    }


def concat(errs: list[dict], key: str) -> np.ndarray | None:
    parts = [e[key] for e in errs if e[key] is not None]
    return np.concatenate(parts) if parts else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--data",
        required=True,
        help="episodes with state.npy (humanprompt-sim generate); several dataset roots separated by commas",
    )
    ap.add_argument(
        "--rollouts",
        default=None,
        help="also train on these episodes whatever their outcome (a policy's rollouts on training scenes, "
        "saved with humanprompt-sim eval --save-dir): the states a policy gets itself into",
    )
    ap.add_argument(
        "--twin-views",
        action="store_true",
        help="also read each episode's frames under its twin task's skill (a shared twin scene of the same seed)",
    )
    ap.add_argument("--per-task", type=int, default=None, help="only the first N episodes of each task")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--channels", default="32,32,64,64,64")
    ap.add_argument("--shift", type=int, default=4)
    ap.add_argument("--first-frame", action="store_true", help="also read the episode's first frame")
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--heldout", type=int, default=5, help="held-out expert episodes per task")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="save the trained estimator here (safetensors)")
    args = ap.parse_args()
    cam = sim_config()
    cfg = StateEstimatorConfig(
        channels=[int(c) for c in args.channels.split(",")],
        image_size=args.size,
        shift=args.shift,
        first_frame=args.first_frame,
    )
    episodes = load_policy_episodes(args.data.split(","), args.size, state=True, per_task=args.per_task)
    if args.twin_views:
        views = twin_views(episodes)
        print(f"+ {len(views)} episodes read under their twin task's skill")
        episodes += views
    if args.rollouts:
        episodes += load_policy_episodes(args.rollouts.split(","), args.size, state=True, success=None)
    t0 = time.perf_counter()
    model = train_estimator(episodes, cam, cfg, EstimatorTraining(args.steps, args.batch, args.lr, args.seed))
    seconds = time.perf_counter() - t0
    if args.out:
        save_estimator(model, args.out, {"data": str(args.data), "steps": str(args.steps)})
    print(
        f"state estimator: channels {cfg.channels}, {args.size}² frames, {len(episodes)} episodes, {args.steps} "
        f"steps of {args.batch} ({seconds / args.steps * 1000:.0f} ms/step)"
    )
    print("| task | frames | target cm (mean / p90) | other cm | goal cm | target yaw deg (median) | articulation |")
    print("|---|---|---|---|---|---|---|")
    for name in TASKS:
        task = load_task(resolve_task(name))
        if task.skill not in model.cfg.skills:
            continue
        errs: list[dict] = []
        for s in range(args.heldout):
            rec = expert_episode(task, "robot", 1_000_000 + s)
            frames = resize_frames(np.stack(rec.frames), args.size)
            kinds = [o["kind"] for o in rec.instance["objects"]]
            errs.append(errors(estimate(model, frames, task.skill, cam, frames[0]), rec.state, kinds))
        t, o, g, y, a = (concat(errs, k) for k in ("target", "other", "goal", "yaw", "art"))
        unit = "°" if task.config.objects[task.config.goal.object].kind in ANGULAR else " cm"
        print(
            f"| {name} | {len(t)} | {t.mean():.2f} / {np.percentile(t, 90):.2f} | {o.mean():.2f} | "
            f"{'–' if g is None else f'{g.mean():.2f}'} | {'–' if y is None else f'{np.median(y):.1f}'} | "
            f"{a.mean():.2f}{unit} |"
        )


if __name__ == "__main__":
    main()
