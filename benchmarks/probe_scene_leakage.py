"""Does a twin scene's layout give its task away? (docs/benchmark.md, "Twin scenes")

Each human-only skill shares its objects with a robot-skill twin, so that only the prompt says which
of the two tasks is asked. That holds only if the two tasks' scenes are drawn from the same
distribution. This probe fits a classifier per twin pair to tell the two tasks apart from what a first
frame shows: each object's position and size (objects ordered by kind, then size, so the order never
names the target) and the green disc's position. Trained on seeds 0..N-1 of both tasks, scored on
the next ``--test`` seeds: 0.5 is chance (the layout hides the task), 1.0 means the scene alone says
which task to do, and a policy needs no prompt to pick it.

    python benchmarks/probe_scene_leakage.py                        # about half a minute, no rendering
    python benchmarks/probe_scene_leakage.py --twin-scenes shared   # the shared layouts: chance by design

Prints a table and, last, one JSON line {pair: {features: held-out accuracy}}.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from humanprompt_ros.paths import config_path  # noqa: E402
from humanprompt_ros.sim.tasks import load_task, sample_instance, twin_pairs  # noqa: E402

FEATURES = {
    "positions": ("pos",),
    "sizes": ("size",),
    "positions + sizes": ("pos", "size"),
    "positions + sizes + disc": ("pos", "size", "disc"),
}


def layout(task, seed: int, parts: tuple[str, ...], twin=None) -> list[float]:
    """What the first frame shows of ``task``'s scene at ``seed`` (shared with ``twin`` when given), in an
    order that does not name the target."""
    inst = sample_instance(task, seed, twin=twin)
    out: list[float] = []
    for o in sorted(inst.objects, key=lambda o: (o.kind, float(np.max(o.size)))):
        if "pos" in parts:
            out += [float(v) for v in o.pos[:2]]
        if "size" in parts:
            out += [float(v) for v in np.ravel(o.size)]
    if "disc" in parts:  # every green disc the frame shows (a shared scene shows both twins')
        discs = inst.extra.get("discs", [] if inst.goal_xy is None else [(inst.goal_xy, 0.0)])
        out += [float(v) for xy, _ in discs for v in xy] or [0.0, 0.0]
    return out


def held_out_accuracy(x: np.ndarray, y: np.ndarray, n_train: int, steps: int = 600,
                      quadratic: bool = True, l2: float = 1e-3) -> float:
    """Logistic regression on the first ``n_train`` rows, accuracy on the rest: on the features and
    their pairwise products (a quadratic boundary), or on the features alone (``quadratic=False``, for
    wide features such as embeddings)."""
    torch.manual_seed(0)
    x_t = torch.tensor(x, dtype=torch.float32)
    q = torch.cat([x_t, (x_t[:, :, None] * x_t[:, None, :]).flatten(1)], 1) if quadratic else x_t
    q = (q - q[:n_train].mean(0)) / (q[:n_train].std(0) + 1e-6)
    y_t = torch.tensor(y, dtype=torch.float32)
    w = torch.zeros(q.shape[1], requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=0.05)
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(q[:n_train] @ w + b, y_t[:n_train])
        (loss + l2 * w.square().sum()).backward()
        opt.step()
    with torch.no_grad():
        return float(((q[n_train:] @ w + b > 0).float() == y_t[n_train:]).float().mean())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=int, default=1000, help="training seeds per task (0..N-1)")
    parser.add_argument("--test", type=int, default=400, help="held-out seeds per task (N..N+test-1)")
    parser.add_argument("--twin-scenes", choices=("own", "shared"), default="own",
                        help="own: each task's own layouts (config/sim.yaml's default); shared: one layout per seed")
    args = parser.parse_args()

    pairs = twin_pairs()
    seeds = range(args.train + args.test)
    result: dict[str, dict[str, float]] = {}
    for a, b in pairs:
        tasks = [load_task(config_path("tasks", f"{n}.yaml")) for n in (a, b)]
        result[f"{a} / {b}"] = {}
        for label, parts in FEATURES.items():
            # seed-major order, so the first 2 * train rows are the training seeds of both tasks
            twin = {0: tasks[1], 1: tasks[0]} if args.twin_scenes == "shared" else {0: None, 1: None}
            x = np.array([layout(t, s, parts, twin[i]) for s in seeds for i, t in enumerate(tasks)])
            y = np.array([i for _ in seeds for i in (0, 1)])
            result[f"{a} / {b}"][label] = round(held_out_accuracy(x, y, 2 * args.train), 3)
    print(f"telling a twin pair's tasks apart from the scene layout, twin scenes {args.twin_scenes} (held-out "
          f"accuracy; chance 0.5; {args.train} training and {args.test} held-out seeds per task)")
    print("| twin pair | " + " | ".join(FEATURES) + " |")
    print("|---" * (len(FEATURES) + 1) + "|")
    for pair, accs in result.items():
        print(f"| {pair} | " + " | ".join(f"{accs[k]:.3f}" for k in FEATURES) + " |")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
