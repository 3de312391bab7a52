"""What do PDCP's terms do to the prompt embedding z? Compare checkpoints on the same prompts.

Every human demonstration under ``--train`` and ``--heldout`` (at most ``--per-task`` per task) is
encoded as a prompt, with its own first frame as the current frame, into

- ``tokens``: the mean of the stage-1 prompt tokens (what the policy's prompt projection is given);
- ``z``: the pooled embedding PDCP shapes (``PromptPolicyModel.pooled``; with ``pdcp.pool: prompt`` a
  projection of the prompt tokens alone).

For each, on the held-out prompts: the skill named by the nearest class centroid of the training
prompts (cosine, standardised features), by a linear probe fitted on them, and, for z of a model
trained with PDCP, by its own skill prototypes; ``twin conf.``, how often the nearest centroid is the
prompt's twin task (the one confusion a shared scene cannot resolve); ``margin``, the mean cosine of a
held-out z to the others of its skill minus that to the rest; ``demo R²``, how much of what is particular
to the demonstration a ridge regression recovers from the embedding: the prompt's own wrist path (8
evenly spaced positions) minus its skill's mean path, R² on the held-out prompts (0: nothing beyond the
skill; a skill-prototype embedding scores about 0); ``robot→human``, the share of the robot demonstrations
under ``--train``, each encoded as a prompt, that the nearest centroid of the *human* training prompts
names right: whether z (or the tokens) of one task look alike whoever does it, the cross-embodiment
alignment PDCP's NT-Xent asks for. A model whose z is tighter (margin) but no
better named (centroid, linear) than without PDCP has had its metric reshaped, not its information
raised — with ``pool: prompt`` z can carry no more than the frozen ``tokens`` row.

    python benchmarks/probe_pdcp_embedding.py --checkpoint full=runs/s17/full/policy.safetensors \\
        --checkpoint no_pdcp=runs/s17/no_pdcp/policy.safetensors \\
        --train data/humanprompt-sim/shared80 --heldout data/humanprompt-sim/shared_prompts   # ~2 min

(``shared_prompts``: ``humanprompt-sim generate --out data/humanprompt-sim/shared_prompts --split heldout
--embodiment human --episodes 10 --seed 8000000``, the prompts of the eval's first ten scenes.)
Prints a table and, last, one JSON line {row: {column: value}}.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from probe_prompt_separation import print_table  # noqa: E402

from humanprompt_ros.action import WRIST_POS  # noqa: E402
from humanprompt_ros.eval.stage1 import nearest_prototype, probe_accuracy
from humanprompt_ros.models.policy_model import PromptPolicyModel, load_policy_model
from humanprompt_ros.sim.tasks import twin_tasks  # noqa: E402
from humanprompt_ros.train.stage2_data import PolicyEpisode, load_policy_episodes

COLUMNS = ("centroid", "linear", "own prototypes", "twin conf.", "margin", "demo R²", "robot→human")
PATH_POINTS = 8


@torch.no_grad()
def as_prompt(model: PromptPolicyModel, ep: PolicyEpisode) -> tuple[torch.Tensor, torch.Tensor]:
    """``ep`` as a prompt, its own first frame as the current one → (prompt tokens (1, N, D), the head's
    condition tokens (1, M, Dv))."""
    first = torch.from_numpy(ep.frames[:1])
    skill = torch.tensor([model.cfg.skills.index(ep.skill) if ep.skill in model.cfg.skills else 0])
    prompt = model.encode_prompt(ep.frames)
    return prompt, model.condition(prompt, model.video_model.encode_frames(first), skill, frames=first)


def named_checkpoints(specs: Sequence[str]) -> Iterator[tuple[str, PromptPolicyModel]]:
    """``[NAME=]PATH`` specs → (name, loaded model), one at a time; the name defaults to PATH's folder."""
    for spec in specs:
        name, _, path = spec.rpartition("=")
        yield name or Path(path).parent.name, load_policy_model(path)[0]


@torch.no_grad()
def embed(model: PromptPolicyModel, episodes: Sequence[PolicyEpisode]) -> tuple[np.ndarray, np.ndarray]:
    """Each episode as a prompt (its first frame the current one) → (mean prompt tokens (E, D), z (E, Dv))."""
    tokens, zs = [], []
    for ep in episodes:
        prompt, cond = as_prompt(model, ep)
        tokens.append(prompt.mean(1)[0].float().numpy())
        zs.append(model.pooled(cond)[0].float().numpy())
    return np.stack(tokens), np.stack(zs)


def probe(x_train: np.ndarray, y_train: Sequence[str], x_test: np.ndarray, y_test: Sequence[str],
          twin_of: dict[str, str] | None = None) -> dict[str, float]:
    """Embeddings (N, D) with skill labels → {centroid, linear, twin conf., margin} on the test rows
    (``twin_of``: test label → the label its twin task carries; rows without one are not counted)."""
    out = probe_accuracy(x_train, y_train, x_test, y_test)
    result = {"centroid": out["prototype"], "linear": out["linear"]}
    nearest = nearest_prototype(x_train, y_train, x_test)
    hits = [n == twin_of[y] for y, n in zip(y_test, nearest) if twin_of and y in twin_of]
    result["twin conf."] = float(np.mean(hits)) if hits else float("nan")
    unit = x_test / np.maximum(np.linalg.norm(x_test, axis=1, keepdims=True), 1e-8)
    cos, same = unit @ unit.T, np.equal.outer(list(y_test), list(y_test))
    mates = same & ~np.eye(len(y_test), dtype=bool)
    result["margin"] = float(cos[mates].mean() - cos[~same].mean()) if mates.any() and (~same).any() else float("nan")
    return result


def cross_embodiment(x_train: np.ndarray, y_train: Sequence[str], x_robot: np.ndarray,
                     y_robot: Sequence[str]) -> float:
    """Share of robot rows whose nearest centroid of the (human) training rows is their own label; NaN
    without robot rows."""
    if not len(y_robot):
        return float("nan")
    return float(np.mean([n == y for n, y in zip(nearest_prototype(x_train, y_train, x_robot), y_robot)]))


def wrist_path(ep: PolicyEpisode, points: int = PATH_POINTS) -> np.ndarray:
    """The demonstration's wrist positions at ``points`` evenly spaced steps, flattened: (points * 3,)."""
    idx = np.linspace(0, len(ep.actions) - 1, points).round().astype(int)
    return ep.actions[idx, WRIST_POS].reshape(-1)


def demo_r2(x_train: np.ndarray, path_train: np.ndarray, y_train: Sequence[str], x_test: np.ndarray,
            path_test: np.ndarray, y_test: Sequence[str], lambdas: Sequence[float] = (0.1, 1, 10, 100, 1000),
            folds: int = 5) -> float:
    """R² on the test rows of a ridge regression from embeddings (N, D) to paths (N, P) minus the mean path
    of the row's skill (training means); the ridge strength is chosen by ``folds``-fold cross-validation on
    the training rows. NaN when a test skill has no training rows."""
    means = {y: path_train[[i for i, t in enumerate(y_train) if t == y]].mean(0) for y in set(y_train)}
    if any(y not in means for y in y_test):
        return float("nan")
    r_tr = path_train - np.stack([means[y] for y in y_train])
    r_te = path_test - np.stack([means[y] for y in y_test])
    mu, sd = x_train.mean(0), x_train.std(0) + 1e-6

    def design(x: np.ndarray) -> np.ndarray:  # standardised features and an intercept column
        return np.hstack([(x - mu) / sd, np.ones((len(x), 1))])

    def fit(x: np.ndarray, r: np.ndarray, lam: float) -> np.ndarray:
        d = design(x)
        reg = lam * np.eye(d.shape[1])
        reg[-1, -1] = 0.0  # the intercept is not shrunk
        return np.linalg.solve(d.T @ d + reg, d.T @ r)

    def predict(w: np.ndarray, x: np.ndarray) -> np.ndarray:
        return design(x) @ w

    fold = np.arange(len(x_train)) % folds

    def cv_error(lam: float) -> float:
        return sum(float(((predict(fit(x_train[fold != k], r_tr[fold != k], lam), x_train[fold == k])
                           - r_tr[fold == k]) ** 2).sum()) for k in range(folds))

    lam = min(lambdas, key=cv_error)
    err = float(((predict(fit(x_train, r_tr, lam), x_test) - r_te) ** 2).sum())
    return 1.0 - err / float(((r_te - r_tr.mean(0)) ** 2).sum())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True, action="append", metavar="[NAME=]PATH",
                        help="a stage-2 checkpoint; repeat to compare (e.g. full and no_pdcp)")
    parser.add_argument("--train", required=True, type=Path, help="training data (its human demos: centroids, probe fit)")
    parser.add_argument("--heldout", required=True, type=Path, help="held-out human demos")
    parser.add_argument("--per-task", type=int, default=20, help="at most this many prompts per task from each")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data: dict[int, tuple[list[PolicyEpisode], ...]] = {}
    result: dict[str, dict[str, float]] = {}
    seen_tokens: list[np.ndarray] = []
    for name, model in named_checkpoints(args.checkpoint):
        size = model.video_model.cfg.image_size
        if size not in data:
            data[size] = tuple(load_policy_episodes(d, size, show=False, embodiment=who, per_task=args.per_task)
                               for d, who in ((args.train, "human"), (args.heldout, "human"), (args.train, "robot")))
        train, test, robot = data[size]
        skill_of = {e.task: e.skill for e in (*train, *test)}
        twin_of = {skill_of[t]: skill_of[w] for t, w in twin_tasks().items() if t in skill_of and w in skill_of}
        (tok_tr, z_tr), (tok_te, z_te) = embed(model, train), embed(model, test)
        ytr, yte = [e.skill for e in train], [e.skill for e in test]
        trained = set(ytr)
        robot_in = [e for e in robot if e.skill in trained]
        tok_rob, z_rob = embed(model, robot_in) if robot_in else (np.zeros((0, 1)), np.zeros((0, 1)))
        yrob = [e.skill for e in robot_in]
        ptr, pte = np.stack([wrist_path(e) for e in train]), np.stack([wrist_path(e) for e in test])
        if not any(t.shape == tok_te.shape and np.allclose(t, tok_te, atol=1e-5) for t in seen_tokens):
            seen_tokens.append(tok_te)  # one row per distinct stage 1
            result[f"{name} tokens"] = {**probe(tok_tr, ytr, tok_te, yte, twin_of), "own prototypes": float("nan"),
                                        "demo R²": demo_r2(tok_tr, ptr, ytr, tok_te, pte, yte),
                                        "robot→human": cross_embodiment(tok_tr, ytr, tok_rob, yrob)}
        row = probe(z_tr, ytr, z_te, yte, twin_of)
        row["demo R²"] = demo_r2(z_tr, ptr, ytr, z_te, pte, yte)
        row["robot→human"] = cross_embodiment(z_tr, ytr, z_rob, yrob)
        row["own prototypes"] = float("nan")
        if model.cfg.pdcp.enabled and model.cfg.condition == "prompt":
            pred = model.pdcp.proto_logits(torch.from_numpy(z_te)).argmax(1).numpy()
            row["own prototypes"] = float(np.mean([model.cfg.skills[k] == y for k, y in zip(pred, yte)]))
        result[f"{name} z"] = row
    print_table(f"which skill does the prompt name? {len(test)} held-out human prompts against {len(train)} "
                f"training ones; chance {1 / len(set(ytr)):.2f}; nan: not applicable", "embedding", COLUMNS,
                result, digits=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
