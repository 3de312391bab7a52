"""PDCP losses on constructed embeddings: each term falls as same-task embeddings gather and
different-task embeddings separate; gradients stay finite."""

import numpy as np
import pytest
import torch

from humanprompt_ros.models.pdcp import PDCPConfig, PDCPLoss, nt_xent, paired_nt_xent, siamese_margin


def clustered(spread: float, separation: float, seed: int = 0, tasks: int = 4, per_task: int = 6, dim: int = 16):
    """Embeddings around per-task centres: ``spread`` = within-task noise, ``separation`` = centre scale."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.nn.functional.normalize(torch.randn(tasks, dim, generator=g), dim=-1) * separation
    base = torch.ones(dim) * 1.0  # a common offset, so low separation means all embeddings look alike
    z = torch.cat([base + c + spread * torch.randn(per_task, dim, generator=g) for c in centres])
    labels = torch.arange(tasks).repeat_interleave(per_task)
    return z, labels


@pytest.mark.parametrize("term", ["nt_xent", "proto_ce", "siamese"])
def test_each_term_falls_as_tasks_cluster(term):
    torch.manual_seed(0)
    loss = PDCPLoss(PDCPConfig(), dim=16, num_skills=4)
    # Prototypes at the task centres (what training drives them to), so proto-CE is measurable.
    with torch.no_grad():
        z_ref, labels = clustered(0.0, 3.0, seed=1)
        loss.prototypes.copy_(torch.stack([z_ref[labels == k].mean(0) for k in range(4)]))
    values = []
    for spread, sep in [(2.0, 0.5), (1.0, 1.5), (0.3, 3.0), (0.05, 5.0)]:
        z, labels = clustered(spread, sep, seed=1)
        with torch.no_grad():
            values.append(float(loss(z, labels, labels)[term]))
    assert all(a > b for a, b in zip(values, values[1:])), values


def test_mlp_siamese_head_trains_and_total_combines_terms():
    torch.manual_seed(0)
    cfg = PDCPConfig(siamese="mlp")
    loss = PDCPLoss(cfg, dim=16, num_skills=4)
    z, labels = clustered(0.3, 3.0)
    opt = torch.optim.Adam(loss.parameters(), lr=1e-2)
    first = None
    for _ in range(100):
        out = loss(z, labels, labels)
        opt.zero_grad()
        out["siamese"].backward()
        opt.step()
        first = first if first is not None else float(out["siamese"].detach())
    assert float(loss(z, labels, labels)["siamese"].detach()) < 0.5 * first
    out = loss(z, labels, labels)
    expected = (
        cfg.nt_xent_weight * out["nt_xent"] + cfg.proto_weight * out["proto_ce"] + cfg.siamese_weight * out["siamese"]
    )
    assert torch.allclose(out["total"], expected)


def test_gradients_are_finite_even_for_degenerate_batches():
    loss = PDCPLoss(PDCPConfig(), dim=8, num_skills=3)
    for z, labels in [
        (torch.zeros(4, 8, requires_grad=True), torch.tensor([0, 0, 1, 1])),  # all-zero embeddings
        (torch.randn(4, 8, requires_grad=True), torch.tensor([0, 1, 2, 0])),
        (torch.randn(3, 8, requires_grad=True), torch.tensor([0, 1, 2])),  # no positives at all
        (torch.randn(1, 8, requires_grad=True), torch.tensor([2])),  # a single sample
    ]:
        out = loss(z, labels, labels)
        out["total"].backward()
        assert torch.isfinite(out["total"]) and torch.all(torch.isfinite(z.grad))
        assert all(torch.all(torch.isfinite(p.grad)) for p in loss.parameters() if p.grad is not None)


def test_nt_xent_and_margin_reference_values():
    # two perfectly separated orthogonal pairs: the margin loss is zero, NT-Xent is log(1 + 2e^{0}/e^{1/τ})
    z = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    labels = torch.tensor([0, 0, 1, 1])
    assert float(siamese_margin(z, labels, margin=0.5)) == pytest.approx(0.0)
    tau = 0.5
    expected = -np.log(np.exp(1 / tau) / (np.exp(1 / tau) + 2 * np.exp(0)))
    assert float(nt_xent(z, labels, tau)) == pytest.approx(expected, rel=1e-5)


def test_paired_term_falls_as_twins_meet_and_others_part():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(8, 16, generator=g)
    noise = torch.randn(8, 16, generator=g)
    values = [float(paired_nt_xent(a, a + s * noise, 0.1)) for s in (3.0, 1.0, 0.3, 0.0)]
    assert all(x > y for x, y in zip(values, values[1:])), values
    # twins that are also alike across pairs score worse than twins that stand apart from the others
    alike = torch.ones(8, 16) + 0.05 * a
    assert float(paired_nt_xent(alike, alike, 0.1)) > float(paired_nt_xent(a, a, 0.1))
    # swapping the twins between rows makes it much worse: the pairing, not the set, is what counts
    assert float(paired_nt_xent(a, a.roll(1, 0), 0.1)) > 5 * values[-1]


def test_paired_term_gradients_are_finite_and_it_needs_two_pairs():
    for a, b in [
        (torch.zeros(4, 8, requires_grad=True), torch.zeros(4, 8, requires_grad=True)),
        (torch.randn(4, 8, requires_grad=True), torch.randn(4, 8, requires_grad=True)),
    ]:
        loss = paired_nt_xent(a, b, 0.1)
        loss.backward()
        assert torch.isfinite(loss) and torch.all(torch.isfinite(a.grad)) and torch.all(torch.isfinite(b.grad))
    one = torch.randn(1, 8, requires_grad=True)
    assert float(paired_nt_xent(one, one, 0.1).detach()) == 0.0


def test_bad_pdcp_config():
    with pytest.raises(ValueError, match="siamese"):
        PDCPConfig(siamese="triplet").validate()
    with pytest.raises(ValueError, match="temperature"):
        PDCPConfig(proto_temperature=0).validate()
    with pytest.raises(ValueError, match="temperature"):
        PDCPConfig(align_temperature=-1).validate()
    with pytest.raises(ValueError, match="weights"):
        PDCPConfig(align_weight=-0.1).validate()
