"""How precisely does the state estimator read the scene off a frame? Trains it on simulated episodes, then
prints the held-out error per seen task, in the units a contact cares about.

    python benchmarks/bench_state_estimator.py --data data/v2/robot --per-task 100 --steps 4000 \
        --out runs/estimator/estimator.safetensors
    python benchmarks/bench_state_estimator.py --checkpoint runs/estimator/estimator.safetensors

(the training arguments are ``humanprompt-train estimator``'s).

Held-out frames are the scripted expert's with the robot hand at the benchmark's held-out seeds (1,000,000 on),
rendered at the estimator's size: for a human-only task (trained on human frames only) the hand it has never seen
doing that task. Columns: the target's and the other object's xy error (cm, mean and 90th percentile), the
goal's xy error (cm), the target's yaw error (degrees, median; the yaw of a round object is not defined and is
left out) and its articulation error (drawer cm, lever degrees). A policy needs about 1 cm (issue 40, G3).
"""

from __future__ import annotations

import argparse

import numpy as np

from humanprompt_ros.cli.estimator import add_estimator_args, train_from_args
from humanprompt_ros.models.state_estimator import estimate, load_estimator
from humanprompt_ros.sim.runner import expert_episode, sim_config
from humanprompt_ros.sim.tasks import load_task, resolve_task
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
    add_estimator_args(ap, required=False)
    ap.add_argument("--checkpoint", default=None, help="measure this state estimator instead of training one")
    ap.add_argument("--heldout", type=int, default=5, help="held-out expert episodes per task")
    args = ap.parse_args()
    cam = sim_config()
    if args.checkpoint:
        model = load_estimator(args.checkpoint)
        print(f"state estimator {args.checkpoint}: channels {model.cfg.channels}, {model.cfg.image_size}² frames")
    elif not args.data:
        ap.error("--data (to train one) or --checkpoint (to measure one) is required")
    else:
        model, episodes, seconds = train_from_args(args)
        print(
            f"state estimator: channels {model.cfg.channels}, {args.size}² frames, {len(episodes)} episodes, "
            f"{args.steps} steps of {args.batch} ({seconds / args.steps * 1000:.0f} ms/step)"
        )
    size = model.cfg.image_size
    print("| task | frames | target cm (mean / p90) | other cm | goal cm | target yaw deg (median) | articulation |")
    print("|---|---|---|---|---|---|---|")
    for name in TASKS:
        task = load_task(resolve_task(name))
        if task.skill not in model.cfg.skills:
            continue
        errs: list[dict] = []
        for s in range(args.heldout):
            rec = expert_episode(task, "robot", 1_000_000 + s)
            frames = resize_frames(np.stack(rec.frames), size)
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
