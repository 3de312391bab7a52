"""A disk cache of the frozen stage-1 representation of every training frame, so stage-2 steps on a CPU
skip the stage-1 pass (which would dominate them)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from humanprompt_ros.models.policy_model import PromptPolicyModel
from humanprompt_ros.progress import progress
from humanprompt_ros.train.stage2_data import PolicyEpisode


class FeatureStore:
    """The frozen stage-1 representation of every training frame under a few fixed prompts.

    ``data``: (frames in all episodes, K, T, N, D) float16, memory-mapped from a ``.npy`` file next
    to the stage-1 checkpoint (``features/<key>.npy``; the key hashes the checkpoint, whether its
    weights are used or random, the episodes (and their dataset roots when there are several), the
    prompt slots and whether prompts are blanked), so the variants of one run share it.
    ``prompts``: (episodes, K) the prompt episode of each slot.
    """

    def __init__(self, data: np.ndarray, offsets: np.ndarray, prompts: np.ndarray):
        self.data, self.offsets, self.prompts = data, offsets, prompts

    def get(self, episode: int, t: int, k: int) -> torch.Tensor:
        return torch.from_numpy(np.asarray(self.data[self.offsets[episode] + t, k], np.float32))

    @classmethod
    def build(
        cls,
        model: "PromptPolicyModel",
        episodes: Sequence[PolicyEpisode],
        pool,
        k: int,
        seed: int,
        batch: int = 64,
        n_train: int | None = None,
    ) -> "FeatureStore":
        """Features of ``episodes[:n_train]`` (default: all) under prompts drawn by ``pool(i)`` (indices
        into ``episodes``, which may go on with prompt-only episodes)."""
        n_train = len(episodes) if n_train is None else n_train
        rng = np.random.default_rng([seed, 4049])
        prompts = np.array(
            [[pool(i)[int(rng.integers(len(pool(i))))] for _ in range(k)] for i in range(n_train)], np.int64
        )
        lengths = np.array([len(e.frames) for e in episodes[:n_train]])
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        ckpt = Path(model.cfg.stage1)
        stat = ckpt.stat()
        key = hashlib.sha256(
            json.dumps(
                {
                    "stage1": [str(ckpt.resolve()), stat.st_size, stat.st_mtime_ns],
                    "episodes": [[e.task, e.embodiment, e.seed, len(e.frames)] for e in episodes[:n_train]],
                    **(
                        {"prompt_only": [[e.task, e.seed, len(e.frames)] for e in episodes[n_train:]]}
                        if n_train < len(episodes)
                        else {}
                    ),
                    # the dataset roots, when the episodes come from several (a seed names a scene only within
                    # one); a single root's key stays what it was, so existing caches stay valid
                    **{
                        part: [e.root for e in eps]
                        for part, eps in (("roots", episodes[:n_train]), ("prompt_roots", episodes[n_train:]))
                        if len({e.root for e in eps}) > 1
                    },
                    "prompts": prompts.tolist(),
                    "blank": model.cfg.condition == "none",
                    "pretrained": model.cfg.stage1_pretrained,
                    "seed": seed,
                }
            ).encode()
        ).hexdigest()[:16]
        path = ckpt.parent / "features" / f"{key}.npy"
        if path.is_file():
            return cls(np.load(path, mmap_mode="r"), offsets, prompts)
        path.parent.mkdir(parents=True, exist_ok=True)
        vm = model.video_model
        t, n = vm.feature_tokens
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npy")
        data = np.lib.format.open_memmap(
            tmp, mode="w+", dtype=np.float16, shape=(int(lengths.sum()), k, t, n, vm.feature_dim)
        )
        with torch.no_grad():
            tokens = {p: vm.encode_prompt(model.prompt_latents(episodes[p].frames)) for p in np.unique(prompts)}
            for i, ep in enumerate(progress(episodes[:n_train], desc=f"stage-1 features ({k} prompts per episode)")):
                latents = model.frame_latents(ep.frames)
                for slot in range(k):
                    for a in range(0, len(latents), batch):
                        lat = latents[a : a + batch]
                        f = model.features(tokens[int(prompts[i, slot])].expand(len(lat), -1, -1), lat)
                        data[offsets[i] + a : offsets[i] + a + len(lat), slot] = f.cpu().numpy().astype(np.float16)
        data.flush()
        del data
        os.replace(tmp, path)
        return cls(np.load(path, mmap_mode="r"), offsets, prompts)
