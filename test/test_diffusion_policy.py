"""The diffusion policy head: shapes, normalisation, masked loss, and that it learns a conditional map."""

import torch

from humanprompt_ros.models.diffusion_policy import DiffusionPolicyHead, Normalizer, PolicyModelConfig

SMALL = PolicyModelConfig(horizon=4, action_dim=6, proprio_dim=6, width=32, depth=2, heads=2,
                          train_timesteps=50, inference_steps=5)


def test_normalizer_round_trip_and_constant_dims():
    n = Normalizer(3)
    data = torch.stack([torch.randn(100) * 5 + 2, torch.randn(100), torch.full((100,), 7.0)], dim=-1)
    n.fit(data)
    assert torch.allclose(n.unnormalize(n.normalize(data)), data, atol=1e-5)
    assert float(n.std[2]) == 1.0  # constant dimension passes through


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
    head.action_norm.fit(targets)
    opt = torch.optim.AdamW(head.parameters(), lr=3e-3)
    for _ in range(300):
        idx = torch.randint(0, 2, (32,))
        loss = head.loss(conds[idx], torch.zeros(32, 6), targets[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    out = head.sample(conds, torch.zeros(2, 6), generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 4, 6)
    err_right = (out - targets).abs().mean(dim=(1, 2))
    err_swapped = (out - targets.flip(0)).abs().mean(dim=(1, 2))
    assert torch.all(err_right < 0.3) and torch.all(err_swapped > 1.0), (err_right, err_swapped)
