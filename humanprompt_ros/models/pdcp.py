"""ProtoDiffusion Contrastive Policy (PDCP) losses on the prompt embedding z.

All three terms act on a batch of embeddings z (B, D) (pooled Video Former tokens), labelled with
their task (and skill, for the prototypes):

* :func:`nt_xent` — NT-Xent with labels: every other demonstration of the same task in the batch
  (human or robot) is a positive of the anchor, everything else a negative; temperature τ.
* :class:`PDCPLoss` prototypes — one learnable prototype per skill; z is classified against them by
  cosine similarity / τ_p with cross-entropy.
* :func:`siamese_margin` — on every pair: same task → pull together (squared cosine distance),
  different task → push apart beyond a margin. ``siamese: mlp`` instead trains a small MLP on
  |z_i − z_j| with binary cross-entropy.

Total (the policy adds its diffusion loss): λ₁·NT-Xent + λ₂·proto-CE + λ₃·Siamese.

Beyond the three PDCP terms, :func:`paired_nt_xent` (weight λ₄ ``align_weight``, 0 = off) is NT-Xent on
*paired* embeddings: a[i]'s only positive is b[i], every other b[j] a negative. Stage 2 feeds it the
same moment of the same task in the same scene seen by both embodiments, so the current-frame tokens
learn to ignore which hand is in view (``humanprompt_ros/train/batcher.py``, ``pdcp.align_pairs``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class PDCPConfig:
    nt_xent_weight: float = 0.1  # λ₁
    proto_weight: float = 0.1  # λ₂
    siamese_weight: float = 0.05  # λ₃
    nt_xent_temperature: float = 0.1
    proto_temperature: float = 0.1
    siamese: str = "cosine_margin"  # or "mlp"
    siamese_margin: float = 0.5  # cosine distance beyond which different tasks stop being pushed
    align_weight: float = 0.0  # λ₄: paired cross-embodiment NT-Xent on the current-frame tokens (0 = off)
    align_temperature: float = 0.1

    def validate(self) -> None:
        if min(self.nt_xent_weight, self.proto_weight, self.siamese_weight, self.align_weight) < 0:
            raise ValueError("nt_xent_weight: loss weights must be >= 0")
        if min(self.nt_xent_temperature, self.proto_temperature, self.align_temperature) <= 0:
            raise ValueError("nt_xent_temperature: temperatures must be > 0")
        if self.siamese not in ("cosine_margin", "mlp"):
            raise ValueError(f"siamese: must be cosine_margin or mlp, got {self.siamese!r}")


def nt_xent(z: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    """Labelled NT-Xent: z (B, D), labels (B,) → scalar. Anchors without a positive are skipped;
    0 when no anchor has one."""
    z = F.normalize(z, dim=-1, eps=1e-8)
    sim = z @ z.T / temperature
    b = z.shape[0]
    self_mask = torch.eye(b, dtype=torch.bool, device=z.device)
    pos = (labels[:, None] == labels[None, :]) & ~self_mask
    sim = sim.masked_fill(self_mask, float("-inf"))
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    n_pos = pos.sum(1)
    has = n_pos > 0
    if not has.any():
        return z.sum() * 0.0
    per_anchor = -(log_prob.masked_fill(~pos, 0.0)).sum(1)[has] / n_pos[has]
    return per_anchor.mean()


def paired_nt_xent(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent on pairs: a, b (P, D) → scalar. Row i of a and row i of b are positives, every other
    row of the other side a negative; symmetric (a→b and b→a), cosine similarity / τ. 0 for P < 2."""
    if a.shape[0] < 2:
        return (a.sum() + b.sum()) * 0.0
    logits = F.normalize(a, dim=-1, eps=1e-8) @ F.normalize(b, dim=-1, eps=1e-8).T / temperature
    target = torch.arange(a.shape[0], device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def siamese_margin(z: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    """Contrastive margin loss on cosine distance over all pairs of the batch."""
    zn = F.normalize(z, dim=-1, eps=1e-8)
    dist = 1.0 - zn @ zn.T
    same = labels[:, None] == labels[None, :]
    off = ~torch.eye(z.shape[0], dtype=torch.bool, device=z.device)
    pull = dist.pow(2)[same & off]
    push = F.relu(margin - dist).pow(2)[~same]
    terms = torch.cat([pull, push])
    return terms.mean() if terms.numel() else z.sum() * 0.0


class PDCPLoss(nn.Module):
    """The three contrastive terms with their learnable parts (skill prototypes, optional MLP head)."""

    def __init__(self, cfg: PDCPConfig, dim: int, num_skills: int):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.prototypes = nn.Parameter(F.normalize(torch.randn(num_skills, dim), dim=-1))
        self.head = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, 1)) if cfg.siamese == "mlp" else None

    def proto_logits(self, z: torch.Tensor) -> torch.Tensor:
        """(B, D) → (B, num_skills) cosine similarities / τ_p."""
        return F.normalize(z, dim=-1, eps=1e-8) @ F.normalize(self.prototypes, dim=-1).T / self.cfg.proto_temperature

    def nearest(self, z: torch.Tensor) -> tuple[int, float]:
        """One embedding z (D,) → (the index of its most similar prototype, the cosine distance 1 − cos to it)."""
        sim = F.normalize(self.prototypes, dim=-1, eps=1e-8) @ F.normalize(z, dim=-1, eps=1e-8)
        k = int(sim.argmax())
        return k, float(1.0 - sim[k])

    def siamese(self, z: torch.Tensor, tasks: torch.Tensor) -> torch.Tensor:
        if self.head is None:
            return siamese_margin(z, tasks, self.cfg.siamese_margin)
        i, j = torch.triu_indices(z.shape[0], z.shape[0], offset=1, device=z.device)
        if i.numel() == 0:
            return z.sum() * 0.0
        logits = self.head((z[i] - z[j]).abs()).squeeze(-1)
        return F.binary_cross_entropy_with_logits(logits, (tasks[i] == tasks[j]).float())

    def forward(self, z: torch.Tensor, tasks: torch.Tensor, skills: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each term and their weighted sum under ``"total"``. z (B, D); tasks, skills (B,) int."""
        terms = {
            "nt_xent": nt_xent(z, tasks, self.cfg.nt_xent_temperature),
            "proto_ce": F.cross_entropy(self.proto_logits(z), skills),
            "siamese": self.siamese(z, tasks),
        }
        terms["total"] = (
            self.cfg.nt_xent_weight * terms["nt_xent"]
            + self.cfg.proto_weight * terms["proto_ce"]
            + self.cfg.siamese_weight * terms["siamese"]
        )
        return terms
