"""Does a policy's condition tell a twin pair's tasks apart from the human prompt alone?

On shared twin scenes (``twin_scenes: shared``) a task and its twin start from the same frame, so only
the prompt can say which is asked. For every human demonstration of the twin tasks under ``--data``
this encodes the demo as the prompt and fits a linear classifier per twin pair on

- the prompt tokens (mean over tokens): what stage 1 makes of the demo;
- the pooled condition z with the demo's first frame: what the policy's action head is given.

It trains on seeds below ``--train-seeds`` and scores the rest (0.5 is chance). A policy that cannot
separate the twins here cannot follow the prompt; one that separates them but still fails closed loop
does not act on the difference (models/README.md, "On shared scenes").

    python benchmarks/probe_prompt_separation.py --policy runs/s12/shared_full/policy.safetensors \\
        --data data/humanprompt-sim/shared80            # ~1 min on 2 cores

Prints a table and, last, one JSON line {pair: {representation: held-out accuracy}}.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from probe_scene_leakage import held_out_accuracy  # noqa: E402

from humanprompt_ros.data import iter_episodes  # noqa: E402
from humanprompt_ros.models.policy_model import load_policy_model
from humanprompt_ros.sim.tasks import twin_pairs  # noqa: E402

REPRESENTATIONS = ("prompt tokens", "pooled condition")


def embed(model, data: Path, task: str) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(seed, mean prompt tokens (D,), pooled condition (Dv,)) per human demo of ``task``."""
    rows = []
    with torch.no_grad():
        for ep in iter_episodes(data / task, embodiment="human"):
            tokens = model.encode_prompt(ep.frames())
            first = ep.frames_at(model.video_model.cfg.image_size)[0]
            z = model.pooled(model.condition_on_frame(tokens, first))
            rows.append((int(ep.seed or 0), tokens.mean(1)[0].float().numpy(), z[0].float().numpy()))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--policy", required=True, help="a stage-2 policy checkpoint")
    parser.add_argument("--data", default="data/humanprompt-sim/shared80", help="dataset with the twin tasks' human demos")
    parser.add_argument("--train-seeds", type=int, default=60, help="demos with seed < N train the classifier")
    args = parser.parse_args()
    torch.set_num_threads(2)
    model, _ = load_policy_model(args.policy)
    data = Path(args.data)
    pairs = twin_pairs()
    result: dict[str, dict[str, float]] = {}
    for a, b in pairs:
        rows = [(seed, label, p, z) for label, t in enumerate((a, b)) if (data / t).is_dir()
                for seed, p, z in embed(model, data, t)]
        rows.sort(key=lambda r: r[0] >= args.train_seeds)  # training rows first (stable: labels stay mixed)
        n_train = sum(r[0] < args.train_seeds for r in rows)
        if not 0 < n_train < len(rows) or len({r[1] for r in rows}) < 2:
            print(f"{a} / {b}: skipped (needs human demos of both tasks on both sides of seed {args.train_seeds})")
            continue
        y = np.array([r[1] for r in rows], float)
        result[f"{a} / {b}"] = {name: round(held_out_accuracy(np.array([r[2 + i] for r in rows]), y, n_train,
                                                              quadratic=False, l2=1e-2), 3)
                                for i, name in enumerate(REPRESENTATIONS)}
    print_table(f"telling twin tasks apart from the human prompt ({args.policy}; held-out accuracy, chance 0.5)",
                "twin pair", REPRESENTATIONS, result)
    return 0 if result else 1


def print_table(title: str, first: str, columns: Sequence[str], result: dict[str, dict[str, float]],
                digits: int = 3) -> None:
    """``title``, a markdown table (one row per key of ``result``, one column per name in ``columns``),
    and, last, ``result`` as one JSON line."""
    print(title)
    print(f"| {first} | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for row, accs in result.items():
        print(f"| {row} | " + " | ".join(f"{accs[k]:.{digits}f}" for k in columns) + " |")
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
