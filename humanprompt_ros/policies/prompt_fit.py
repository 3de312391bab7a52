"""How a prompt fits a checkpoint: the frame rate a prompt video is resampled to, and how far the prompt's
embedding lies from what the checkpoint was trained on.

**Frame rate.** A prompt video is read at its own rate and resampled in time to the rate the checkpoint was
trained at (:func:`training_fps`), then to the model's clip length (:func:`humanprompt_ros.video.plan_clip`).
Checkpoints do not record a rate today, so the first of these is used:

1. ``fps`` in the checkpoint's metadata (a training run that records it);
2. ``fps`` in ``meta.json`` of the first episode of the checkpoint's training data (its config's ``data``: a
   directory, a glob or a list), when it exists here (relative to the working directory);
3. ``video_fps`` of ``config/sim.yaml``, the rate HumanPrompt-Sim writes every dataset at (10 Hz; also
   ``humanprompt-data import-bag``'s default), i.e. what every shipped checkpoint was trained on.

**Distance.** z is the embedding the PDCP terms shaped in training (``PromptPolicyModel.pooled``), for the
prompt's tokens with the prompt's first frame as the current frame (with ``pdcp.pool: prompt``, the shipped
recipe, z does not depend on that frame); the distance is 1 − the largest cosine similarity between z and the
skill prototypes, with the nearest prototype's skill. Only a checkpoint trained with PDCP on prompts
(``pdcp.enabled``, ``proto_weight`` > 0, ``condition: prompt``) has trained prototypes.

**Calibration.** A checkpoint carries no distances of its training prompts, so ``humanprompt-prompt
calibrate`` runs held-out prompts of the trained skills through the same path and writes
``<checkpoint stem>.prompt_ood.json`` next to the checkpoint: the threshold is a high quantile (default 0.99)
of their distances. The file names its checkpoint by a fingerprint of its bytes, so it stays valid when both
files are copied, and is ignored for any other checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

CALIBRATION_SUFFIX = ".prompt_ood.json"


def training_fps(meta: dict[str, Any]) -> tuple[float, str]:
    """(the frame rate the checkpoint with metadata ``meta`` was trained at, where that figure comes from)."""
    fps = meta.get("fps")
    if isinstance(fps, (int, float)) and fps > 0:
        return float(fps), "checkpoint"
    data = (meta.get("config") or {}).get("data")
    if data and isinstance(data, (str, list)):
        from humanprompt_ros.data import iter_episodes

        try:  # training refuses a mix of rates, so the first episode's is every episode's
            for ep in iter_episodes(data):
                if isinstance(ep.meta.get("fps"), (int, float)):
                    return float(ep.meta["fps"]), f"dataset {ep.root}"
                break
        except ValueError:  # the data is not here (or not all of it)
            pass
    from humanprompt_ros.sim.scene import load_sim_config

    return float(load_sim_config().video_fps), "config/sim.yaml video_fps (the dataset rate)"


def has_prototypes(model: Any) -> bool:
    """Whether ``model`` (a ``PromptPolicyModel``) was trained with PDCP skill prototypes on prompts."""
    cfg = model.cfg
    return bool(
        cfg.sees_images and cfg.condition == "prompt" and cfg.pdcp.enabled and cfg.pdcp.proto_weight > 0 and cfg.skills
    )


@torch.no_grad()
def prototype_distance(model: Any, tokens: torch.Tensor, frame: np.ndarray) -> tuple[float, str]:
    """(cosine distance of the prompt embedding z to the nearest skill prototype, that prototype's skill)
    for prompt ``tokens`` (1, S, D) with ``frame`` (H, W, 3) uint8 as the current frame (see the module
    docstring). ``ValueError`` for a checkpoint without trained prototypes."""
    if not has_prototypes(model):
        raise ValueError("this checkpoint was not trained with PDCP skill prototypes on prompts: no distance")
    z = model.pooled(model.condition_on_frame(tokens, frame))[0]
    k, distance = model.pdcp.nearest(z)
    return distance, str(model.cfg.skills[k])


def calibration_path(checkpoint: str | Path) -> Path:
    """Where the calibration of ``checkpoint`` lives: ``<stem>.prompt_ood.json`` beside it."""
    p = Path(checkpoint)
    return p.with_name(p.stem + CALIBRATION_SUFFIX)


def checkpoint_fingerprint(checkpoint: str | Path) -> str:
    """16 hex digits: sha1 of the checkpoint file's bytes (not its name or time: a copy keeps it, any other
    weights do not)."""
    digest = hashlib.sha1()
    with open(checkpoint, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()[:16]


@dataclass
class Calibration:
    """The distance threshold of a checkpoint, from held-out prompts (``humanprompt-prompt calibrate``)."""

    fingerprint: str
    threshold: float  # distances above it are out of distribution
    quantile: float
    prompts: int
    mean: float
    max: float
    prompt_fps: float
    sources: list[str]
    created: str = ""

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(asdict(self), indent=1) + "\n")
        return path


def calibrate(
    distances: Sequence[float], checkpoint: str | Path, quantile: float, prompt_fps: float, sources: Sequence[str]
) -> Calibration:
    """The calibration of ``checkpoint`` from the distances of held-out prompts: threshold = their
    ``quantile`` (an observed distance, rounded up)."""
    d = np.asarray(distances, float)
    if d.size == 0:
        raise ValueError("no prompts to calibrate with")
    if not 0.0 < quantile <= 1.0:
        raise ValueError(f"quantile: must be in (0, 1], got {quantile}")
    return Calibration(
        fingerprint=checkpoint_fingerprint(checkpoint),
        threshold=float(np.quantile(d, quantile, method="higher")),
        quantile=float(quantile),
        prompts=int(d.size),
        mean=float(d.mean()),
        max=float(d.max()),
        prompt_fps=float(prompt_fps),
        sources=[str(s) for s in sources],
        created=time.strftime("%Y-%m-%dT%H:%M:%S"),
    )


def load_calibration(checkpoint: str | Path) -> tuple[Calibration | None, str]:
    """(the calibration beside ``checkpoint`` or None, a line saying which file or why none)."""
    path = calibration_path(checkpoint)
    if not path.is_file():
        return None, f"no calibration ({path.name} not found: humanprompt-prompt calibrate writes it)"
    try:
        cal = Calibration(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError) as exc:
        return None, f"{path}: not a calibration file ({exc})"
    if cal.fingerprint != checkpoint_fingerprint(checkpoint):
        return None, f"{path}: calibrated for another checkpoint (fingerprint {cal.fingerprint}); ignored"
    return cal, str(path)
