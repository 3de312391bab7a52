"""The diffusion policy head: shapes, normalisation, masked loss, and that it learns a conditional map."""

import pytest
import torch

from helpers.tiny_checkpoint import PLAIN_HEAD
from humanprompt_ros.models.diffusion_head import POSITION_DIMS, DiffusionPolicyHead, Normalizer, PolicyModelConfig

PLAIN = {k: v for k, v in PLAIN_HEAD.items() if k != "execute"}  # a plain head (each test turns on what it checks)
SMALL = PolicyModelConfig(
    horizon=4, action_dim=6, proprio_dim=6, width=32, depth=2, heads=2, train_timesteps=50, inference_steps=5, **PLAIN
)


def fit_two(
    head: DiffusionPolicyHead, cond: torch.Tensor, targets: torch.Tensor, steps: int, z: torch.Tensor | None = None
) -> None:
    """Train ``head`` (AdamW, batches of 32) to map condition i — tokens cond[i] and, when given, the
    global vector z[i] — to the chunk targets[i], for i in {0, 1}; the action normaliser is fitted first."""
    head.action_norm.fit(targets)
    opt = torch.optim.AdamW(head.parameters(), lr=3e-3)
    for _ in range(steps):
        idx = torch.randint(0, 2, (32,))
        loss = head.loss(cond[idx], torch.zeros(32, 6), targets[idx], global_cond=None if z is None else z[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_normalizer_round_trip_and_constant_dims():
    n = Normalizer(3)
    data = torch.stack([torch.randn(100) * 5 + 2, torch.randn(100), torch.full((100,), 7.0)], dim=-1)
    n.fit(data)
    assert torch.allclose(n.unnormalize(n.normalize(data)), data, atol=1e-5)
    assert float(n.std[2]) == 1.0  # constant dimension passes through


def test_a_constant_action_dimension_stays_constant_in_samples():
    """The robot's wrist rotation never changes in its demos: whatever an (here untrained) denoiser puts
    into such a dimension, the head emits exactly the constant, not noise in raw units."""
    from dataclasses import replace

    torch.manual_seed(0)
    head = DiffusionPolicyHead(replace(SMALL, min_std=0.01), cond_dim=8)
    actions = torch.randn(50, 6)
    actions[:, 3] = 1.0  # constant
    head.fit_normalizers([actions], [torch.randn(51, 6)])
    assert head.action_norm.constant.tolist() == [False, False, False, True, False, False]
    out = head.sample(torch.randn(8, 3, 8), torch.randn(8, 6))
    assert torch.equal(out[..., 3], torch.ones_like(out[..., 3]))
    assert (out[..., 0] - float(head.action_norm.mean[0])).abs().max() > 0.1  # the others are not squeezed
    assert torch.equal(head.action_norm.normalize(actions)[:, 3], torch.zeros(50))
    inputs = Normalizer(2)  # an input's constant dimension passes its deviations through unscaled
    inputs.fit(torch.tensor([[1.0, 0.0], [1.0, 2.0]]))
    assert float(inputs.std[0]) == 1.0
    assert inputs.normalize(torch.tensor([[1.5, 1.0]]))[0, 0] == pytest.approx(0.5)


def test_a_checkpoint_from_before_the_constant_mask_keeps_its_behaviour():
    """Old state dicts have no ``constant`` buffer: they load with nothing held and their stored std."""
    old = {"mean": torch.tensor([0.0, 1.0]), "std": torch.tensor([2.0, 0.01])}
    n = Normalizer(2, hold_constant=True)
    n.load_state_dict(old)
    assert not n.constant.any()
    assert torch.allclose(n.unnormalize(torch.tensor([[1.0, 1.0]])), torch.tensor([[2.0, 1.01]]))


def test_masked_dimensions_do_not_count():
    torch.manual_seed(0)
    head = DiffusionPolicyHead(SMALL, cond_dim=8)
    cond, proprio = torch.randn(4, 3, 8), torch.randn(4, 6)
    actions = torch.randn(4, 4, 6)
    mask = torch.ones(4, 6, dtype=torch.bool)
    mask[:, 5] = False
    torch.manual_seed(1)
    a = head.loss(cond, proprio, actions, mask)
    actions[:, :, 5] = 1e6  # garbage in a masked dimension changes nothing
    torch.manual_seed(1)
    b = head.loss(cond, proprio, actions, mask)
    assert torch.allclose(a, b)


def test_learns_a_conditional_action_chunk():
    torch.manual_seed(0)
    head = DiffusionPolicyHead(SMALL, cond_dim=8)
    conds = torch.randn(2, 3, 8)
    targets = torch.stack([torch.linspace(-1, 1, 4)[:, None].expand(4, 6), torch.full((4, 6), 2.0)])
    fit_two(head, conds, targets, 300)
    out = head.sample(conds, torch.zeros(2, 6), generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 4, 6)
    err_right = (out - targets).abs().mean(dim=(1, 2))
    err_swapped = (out - targets.flip(0)).abs().mean(dim=(1, 2))
    assert torch.all(err_right < 0.3) and torch.all(err_swapped > 1.0), (err_right, err_swapped)


def test_normalizer_std_floor_keeps_jitter_small():
    """min_std: a near-constant dimension (0.002 of jitter) is not scaled up to unit size."""
    data = torch.stack([torch.randn(200) * 0.002, torch.randn(200) * 0.5], dim=-1)
    loose, floored = Normalizer(2), Normalizer(2, min_std=0.01)
    loose.fit(data)
    floored.fit(data)
    assert float(loose.normalize(data)[:, 0].std()) == pytest.approx(1.0, abs=0.01)
    assert float(floored.normalize(data)[:, 0].std()) < 0.25
    assert torch.allclose(loose.normalize(data)[:, 1], floored.normalize(data)[:, 1])


def test_relative_head_anchors_the_chunk_to_the_proprio():
    """relative: positions are offsets from the current proprio — statistics are fitted on those offsets,
    and moving the hand moves the sampled chunk's positions (not its rotation) by as much."""
    torch.manual_seed(0)
    blind = [False] * 24  # the denoiser does not see the proprio: only the anchoring depends on it
    cfg = PolicyModelConfig(
        horizon=4,
        width=32,
        depth=2,
        heads=2,
        train_timesteps=50,
        inference_steps=5,
        **{**PLAIN, "prediction_type": "v_prediction", "timestep_spacing": "trailing"},
        relative=True,
        proprio_mask=blind,
    )
    head = DiffusionPolicyHead(cfg, cond_dim=8)
    proprio = torch.rand(3, 24)
    actions = proprio[:, None].expand(-1, 5, -1) + 0.25  # every action 0.25 away from the start state
    head.fit_normalizers(list(actions), list(torch.cat([proprio[:, None]] * 6, dim=1)))
    assert torch.allclose(head.action_norm.mean[POSITION_DIMS], torch.full((18,), 0.25))
    cond, shift = torch.randn(3, 2, 8), torch.zeros(3, 24)
    shift[:, POSITION_DIMS] = 0.3
    a = head.sample(cond, proprio, generator=torch.Generator().manual_seed(1))
    b = head.sample(cond, proprio + shift, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(b - a, shift[:, None].expand_as(a), atol=1e-5)
    torch.manual_seed(2)
    la = head.loss(cond, proprio, actions[:, :4])
    torch.manual_seed(2)
    lb = head.loss(cond, proprio + shift, actions[:, :4] + shift[:, None])
    assert torch.allclose(la, lb, atol=1e-6)
    with pytest.raises(ValueError, match="relative: needs the 24-D"):
        PolicyModelConfig(action_dim=6, proprio_dim=6, relative=True).validate()


def test_global_condition_alone_selects_the_chunk():
    """policy.global_cond: the condition tokens are the same for both targets and only the global vector
    says which chunk is wanted; the adaLN-Zero head learns it. Its blocks start as the identity (zero
    gates), and the head refuses to run without the vector."""
    from dataclasses import replace

    torch.manual_seed(0)
    head = DiffusionPolicyHead(replace(SMALL, global_cond=True), cond_dim=8)
    tokens, proprio = torch.randn(1, 3, 8).expand(2, -1, -1), torch.zeros(2, 6)
    z = torch.randn(2, 8)
    noisy, t = torch.randn(2, 4, 6), torch.tensor([10, 10])
    d = head.denoiser
    assert torch.allclose(d(noisy, t, tokens, proprio, z), d(noisy, t, tokens, proprio, z.flip(0)))  # identity blocks
    with pytest.raises(ValueError, match="pass global_cond"):
        head.sample(tokens, proprio)
    targets = torch.stack([torch.linspace(-1, 1, 4)[:, None].expand(4, 6), torch.full((4, 6), 2.0)])
    fit_two(head, tokens, targets, 300, z)  # the same tokens for both: only z tells them apart
    out = head.sample(tokens, proprio, generator=torch.Generator().manual_seed(0), global_cond=z)
    err_right = (out - targets).abs().mean(dim=(1, 2))
    err_swapped = (out - targets.flip(0)).abs().mean(dim=(1, 2))
    assert torch.all(err_right < 0.3) and torch.all(err_swapped > 1.0), (err_right, err_swapped)


def test_guidance_needs_a_null_condition_and_pushes_toward_the_condition():
    """global_dropout trains a null vector; guidance > 1 extrapolates from it toward the condition. A head
    trained without dropout refuses guidance (nothing to guide from)."""
    from dataclasses import replace

    with pytest.raises(ValueError, match="needs a head trained with global_dropout"):
        replace(SMALL, global_cond=True, guidance=2.0).validate()
    with pytest.raises(ValueError, match="needs global_cond"):
        replace(SMALL, global_dropout=0.1).validate()
    torch.manual_seed(0)
    cfg = replace(SMALL, global_cond=True, global_dropout=0.3)
    head = DiffusionPolicyHead(cfg, cond_dim=8)
    tokens, z = torch.randn(1, 3, 8).expand(2, -1, -1), torch.randn(2, 8)
    targets = torch.stack([torch.full((4, 6), -1.0), torch.full((4, 6), 1.0)])
    fit_two(head, tokens, targets, 400, z)
    assert head.denoiser.null_global.abs().sum() > 0  # the null vector was trained

    def mean_gap(w: float) -> float:
        head.cfg.guidance = w
        out = head.sample(tokens, torch.zeros(2, 6), generator=torch.Generator().manual_seed(0), global_cond=z)
        return float(out[1].mean() - out[0].mean())

    plain, guided = mean_gap(1.0), mean_gap(3.0)
    assert plain > 1.0 and guided > plain, (plain, guided)  # both separate; guidance pushes further apart
