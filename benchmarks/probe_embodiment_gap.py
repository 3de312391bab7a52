"""Twin retrieval: do a policy's current-frame tokens tell *which moment of which scene* it sees, whatever
hand is in view?

HumanPrompt-Sim's held-out split (``generate --split heldout --all-robot``) has, for every task, a human
and a robot demonstration of the same scene seed; both follow the same wrist plan, so frame t of one is
frame t of the other with the other hand in view ("twins"). For each robot frame this probe ranks all
human frames of the same task by the cosine similarity of the policy's current-frame tokens
(``PromptPolicyModel.frame_parts``: the Video Former tokens and the image points, each frame under a
held-out human prompt of its task) and reports how often the twin comes first, and the mean similarity
to the twin and to the other frames. Human-only skills are the interesting rows: the policy never saw a
robot do them, so there the gap is what it has to bridge at test time.

    python benchmarks/probe_embodiment_gap.py --policy shipped=models/policy.safetensors \
        --policy align=runs/s8/align/policy.safetensors [--heldout data/humanprompt-sim/heldout]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from humanprompt_ros.models.policy_model import load_policy_model
from humanprompt_ros.sim.benchmark import load_benchmark
from humanprompt_ros.train.stage2_data import load_policy_episodes


def frame_embeddings(model, episodes, stride: int) -> dict[tuple[str, str, int], np.ndarray]:
    """(task, embodiment, seed) → (frames/stride, D) normalised current-frame tokens of that episode, each
    frame under the human demo of the next seed of its task as prompt (never its own)."""
    humans = {}
    for ep in episodes:
        if ep.embodiment == "human":
            humans.setdefault(ep.task, []).append(ep)
    out = {}
    with torch.no_grad():
        for ep in episodes:
            pool = [h for h in humans[ep.task] if h.seed != ep.seed]
            prompt = model.encode_prompt(pool[0].frames)
            rows = []
            for t in range(0, len(ep.frames), stride):
                cond = model.condition_on_frame(prompt, ep.frames[t])
                parts = [torch.nn.functional.normalize(p, dim=-1) for p in model.frame_parts(cond)]
                rows.append(torch.cat(parts, dim=-1)[0].numpy() / np.sqrt(len(parts)))
            out[(ep.task, ep.embodiment, ep.seed)] = np.stack(rows)
    return out


def retrieval(emb: dict, task: str) -> tuple[float, float, float, int]:
    """(top-1 twin accuracy, mean cos to the twin, mean cos to the other human frames, candidates)."""
    seeds = sorted(s for (t, e, s) in emb if t == task and e == "robot" and (t, "human", s) in emb)
    human = np.concatenate([emb[(task, "human", s)] for s in seeds])
    hits, twin, other = [], [], []
    offset = 0
    for s in seeds:
        robot = emb[(task, "robot", s)]
        n = len(emb[(task, "human", s)])
        sim = robot @ human.T  # (frames, all human frames)
        for t in range(min(len(robot), n)):
            j = offset + t
            hits.append(int(np.argmax(sim[t]) == j))
            twin.append(sim[t, j])
            other.append((sim[t].sum() - sim[t, j]) / (len(human) - 1))
        offset += n
    return float(np.mean(hits)), float(np.mean(twin)), float(np.mean(other)), len(human)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--policy", action="append", required=True, help="NAME=CHECKPOINT (repeatable)")
    ap.add_argument("--heldout", default="data/humanprompt-sim/heldout")
    ap.add_argument("--stride", type=int, default=5, help="every stride-th frame of each episode")
    args = ap.parse_args()
    torch.set_num_threads(1)
    bench = load_benchmark()
    human_only = set(bench.human_only_skills)
    rows = []
    for spec in args.policy:
        name, _, path = spec.partition("=")
        model, _ = load_policy_model(path)
        episodes = load_policy_episodes(args.heldout, model.video_model.cfg.image_size, show=False)
        emb = frame_embeddings(model, episodes, args.stride)
        tasks = sorted({t for (t, e, _) in emb if e == "robot"})
        for task in tasks:
            skill = next(ep.skill for ep in episodes if ep.task == task)
            rows.append((name, task, "human-only" if skill in human_only else "seen", *retrieval(emb, task)))
    print("| policy | task | split | twin first | cos twin | cos others | candidates |")
    print("|---|---|---|---|---|---|---|")
    for name, task, split, acc, twin, other, n in rows:
        print(f"| {name} | {task} | {split} | {acc:.2f} | {twin:.3f} | {other:.3f} | {n} |")
    for name in dict.fromkeys(r[0] for r in rows):
        for split in ("seen", "human-only"):
            sel = [r for r in rows if r[0] == name and r[2] == split]
            if sel:
                print(f"{name} {split}: twin first {np.mean([r[3] for r in sel]):.2f}, "
                      f"cos twin {np.mean([r[4] for r in sel]):.3f}, others {np.mean([r[5] for r in sel]):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
