"""A policy checkpoint with the perception it runs on inside: one file to ship.

    policy checkpoint (condition: state) ─┐
    state estimator checkpoint ───────────┼──▶ bundle: kind ``policy``, tensors ``bundle.estimator.*`` and
    prompt embedding checkpoint ──────────┘    ``bundle.prompt_embedding.*``, metadata ``bundle`` (each part's config)

A state-conditioned policy needs a state estimator to run from camera frames, and a prompt embedding to read
the skill off a prompt video; as three files they can be mismatched or lost on the way to a robot. The bundle
is still a ``policy`` checkpoint: :func:`~humanprompt_ros.models.policy_model.load_policy_model` loads its
policy and skips the parts, and :class:`~humanprompt_ros.policies.learned.LearnedPolicy` uses the parts unless
it is given others. The prompt embedding's frozen stage-1 model is stored once when it is the policy's own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Collection

import torch

from humanprompt_ros.models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint, unprefixed
from humanprompt_ros.models.policy_model import BUNDLE_PREFIX
from humanprompt_ros.models.policy_model import KIND as POLICY_KIND
from humanprompt_ros.models.prompt_embedding import KIND as EMBEDDING_KIND
from humanprompt_ros.models.prompt_embedding import PromptEmbedding, prompt_embedding_from
from humanprompt_ros.models.state_estimator import KIND as ESTIMATOR_KIND
from humanprompt_ros.models.state_estimator import StateEstimator, estimator_from
from humanprompt_ros.models.video_model import CrossPredictionModel

PARTS = {"estimator": ESTIMATOR_KIND, "prompt_embedding": EMBEDDING_KIND}
PART_META = ("config", "stage1_config", "command", "data", "steps", "step")  # what each part keeps of its metadata


def bundle_policy(
    policy: str | Path, out: str | Path, estimator: str | Path | None = None, prompt_embedding: str | Path | None = None
) -> Path:
    """Write ``policy`` with the given parts inside it to ``out`` (float32 as stored; ``export`` halves it).

    ``CheckpointError`` when a file is not the kind its argument names, or the policy does not take what a part
    gives (a state estimator for a ``condition: state`` policy, a prompt embedding for a policy that takes a skill).
    """
    tensors, meta = load_checkpoint(policy, kind=POLICY_KIND)
    if meta.get("bundle"):
        raise CheckpointError(f"{policy} is already a bundle; bundle the policy checkpoint it was made from")
    condition = meta["config"].get("condition")
    given = {"estimator": estimator, "prompt_embedding": prompt_embedding}
    if not any(given.values()):
        raise ValueError("nothing to bundle: give a state estimator, a prompt embedding or both")
    if estimator is not None and condition != "state":
        raise CheckpointError(f"{policy}: a state estimator goes with a condition: state policy, not {condition!r}")
    if prompt_embedding is not None and condition not in ("state", "skill_oracle"):
        raise CheckpointError(f"{policy}: a prompt embedding goes with a policy that takes a skill, not {condition!r}")
    skills = list(meta["config"].get("skills") or [])
    parts: dict[str, Any] = {}
    out_tensors = dict(tensors)
    for name, path in given.items():
        if path is None:
            continue
        part, part_meta = load_checkpoint(path, kind=PARTS[name])
        missing = [s for s in skills if s not in (part_meta["config"].get("skills") or [])]
        if missing:
            raise CheckpointError(f"{path}: this {name} does not know the policy's skills {missing}")
        shares = name == "prompt_embedding" and _same_stage1(part, tensors)
        if shares:
            part = {k: v for k, v in part.items() if not k.startswith("video_model.")}
        out_tensors.update({f"{BUNDLE_PREFIX}{name}.{k}": v for k, v in part.items()})
        parts[name] = {k: part_meta[k] for k in PART_META if k in part_meta} | {"source": str(path)}
        parts[name]["shares_policy_stage1"] = shares
    extras = {k: v for k, v in meta.items() if k not in ("format", "format_version", "kind", "config")}
    return save_checkpoint(out, out_tensors, POLICY_KIND, meta["config"], **extras, bundle=parts)


def _same_stage1(part: dict[str, torch.Tensor], policy: dict[str, torch.Tensor]) -> bool:
    mine = unprefixed("video_model", part)
    theirs = unprefixed("video_model", policy)
    return mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k].to(mine[k].dtype)) for k in mine)


def bundled_parts(
    path: str | Path, meta: dict[str, Any], video_model: CrossPredictionModel, wanted: Collection[str] = tuple(PARTS)
) -> tuple[StateEstimator | None, PromptEmbedding | None]:
    """The state estimator and prompt embedding inside bundle ``path`` (None for a part it lacks or that is not
    ``wanted``); only their tensors are read. ``video_model``: the policy's stage-1 model, for a prompt embedding
    that shares it."""
    parts = {k: v for k, v in (meta.get("bundle") or {}).items() if k in wanted}
    if not parts:
        return None, None
    tensors, _ = load_checkpoint(path, kind=POLICY_KIND, keys=lambda k: k.startswith(BUNDLE_PREFIX))
    estimator = embedding = None
    if "estimator" in parts:
        own = unprefixed(f"{BUNDLE_PREFIX}estimator", tensors)
        estimator = estimator_from(own, parts["estimator"]["config"], f"{path} (bundled estimator)")
    if "prompt_embedding" in parts:
        p = parts["prompt_embedding"]
        own = unprefixed(f"{BUNDLE_PREFIX}prompt_embedding", tensors)
        shared = video_model if p.get("shares_policy_stage1") else None
        embedding = prompt_embedding_from(own, p, f"{path} (bundled prompt embedding)", shared)
    return estimator, embedding
