"""Does a policy's condition name the skill when the human prompt is one it never saw?

For every robot episode under ``--heldout`` (held-out scenes; ``--all-robot`` data has the human-only
skills' too), the policy's pooled condition z is computed at three moments (start, 1/3, 2/3) with a
human prompt of the same task, and classified against the policy's PDCP skill prototypes (nearest by
cosine, as the prototype loss does). The prompt comes from two places:

- ``held-out``: a human demo of the task at another held-out seed (what `humanprompt-sim eval` does);
- ``training``: a human demo the policy was trained with (``--train``).

A policy that names the skill from its training prompts but not from new ones has learned its prompts,
not the task (docs/training.md, "Twin pairs"; the fix there is ``prompt_data``). With ``pdcp.pool:
prompt`` z ignores the frame, so this measures the prompt alone. Needs a checkpoint trained with PDCP
(its prototypes).

    python benchmarks/probe_prompt_prototypes.py --policy runs/twins/seed0/full/policy.safetensors \\
        --heldout data/humanprompt-sim/heldout_shared --train data/humanprompt-sim/twins20   # ~1 min

Prints a table and, last, one JSON line {task: {prompt source: share of moments classified right}}.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from probe_prompt_separation import print_table  # noqa: E402

from humanprompt_ros.data import iter_episodes  # noqa: E402
from humanprompt_ros.models.policy_model import load_policy_model

SOURCES = ("held-out", "training")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--policy", required=True, help="a stage-2 policy checkpoint trained with PDCP")
    parser.add_argument("--heldout", default="data/humanprompt-sim/heldout_shared",
                        help="held-out episodes: robot ones to condition on, human ones as new prompts")
    parser.add_argument("--train", required=True, help="the policy's training data (its human demos as prompts)")
    parser.add_argument("--prompts", type=int, default=8, help="human demos per task and source")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model, _ = load_policy_model(args.policy)
    if not (model.cfg.pdcp.enabled and model.cfg.condition == "prompt"):
        print(f"{args.policy}: trained without PDCP (or without a prompt): its prototypes were never fitted")
        return 1
    heldout, train = Path(args.heldout), Path(args.train)
    result: dict[str, dict[str, float]] = {}
    with torch.no_grad():
        for task in model.cfg.tasks:
            robots = list(iter_episodes(heldout / task, embodiment="robot")) if (heldout / task).is_dir() else []
            prompts = {"held-out": list(iter_episodes(heldout / task, embodiment="human"))[:args.prompts],
                       "training": list(iter_episodes(train / task, embodiment="human"))[:args.prompts]}
            if not robots or not all(prompts.values()):
                print(f"{task}: skipped (needs held-out robot and human episodes and training human demos)")
                continue
            tokens = {s: [model.encode_prompt(p.frames()) for p in ps] for s, ps in prompts.items()}
            right = {s: [] for s in SOURCES}
            for i, ep in enumerate(robots):
                frames = ep.frames_at(model.video_model.cfg.image_size)
                skill = model.cfg.skills.index(ep.skill)
                for s in SOURCES:
                    n = len(prompts[s])
                    # a held-out prompt is the next one from another seed: never the episode's own scene
                    j = i % n if s == "training" else next(
                        ((i + d) % n for d in range(1, n + 1) if prompts[s][(i + d) % n].seed != ep.seed), None)
                    if j is None:
                        continue
                    for k in (0, len(frames) // 3, 2 * len(frames) // 3):
                        z = model.pooled(model.condition_on_frame(tokens[s][j], frames[k]))
                        right[s].append(int(model.pdcp.proto_logits(z).argmax()) == skill)
            if not all(right.values()):
                print(f"{task}: skipped (every held-out human demo is of the robot episodes' own scenes)")
                continue
            result[task] = {s: round(float(np.mean(v)), 3) for s, v in right.items()}
    print_table(f"skill named by the pooled condition on robot frames of held-out scenes, by prompt source "
                f"({args.policy}; chance {1 / len(model.cfg.skills):.2f})", "task", SOURCES, result, digits=2)
    return 0 if result else 1


if __name__ == "__main__":
    sys.exit(main())
