"""The policy's current-frame encoder: soft-argmax points, random shifts, and that it learns where a thing is."""

import numpy as np
import pytest
import torch

from humanprompt_ros.models.frame_encoder import FrameEncoder, FrameEncoderConfig, SpatialSoftArgmax, random_shift


def test_soft_argmax_returns_the_peak_of_each_map():
    maps = torch.full((1, 2, 9, 9), -50.0)
    maps[0, 0, 0, 8] = 50.0  # top right → x = +1, y = -1
    maps[0, 1, 4, 4] = 50.0  # centre
    pts = SpatialSoftArgmax()(maps)
    torch.testing.assert_close(pts[0], torch.tensor([[1.0, -1.0], [0.0, 0.0]]), atol=1e-4, rtol=0)


def test_random_shift_moves_whole_images_by_at_most_pad_pixels():
    torch.manual_seed(0)
    x = torch.zeros(16, 1, 12, 12)
    x[:, :, 6, 6] = 1.0
    y = random_shift(x, 2)
    assert y.shape == x.shape
    rows, cols = (y[:, 0] == 1).nonzero()[:, 1:].T
    assert len(rows) == 16  # the dot survives, once per image
    assert ((rows - 6).abs() <= 2).all() and ((cols - 6).abs() <= 2).all()
    assert len({(int(r), int(c)) for r, c in zip(rows, cols)}) > 1  # images get different shifts


def _square_frames(n: int, rng: np.random.Generator, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Grey frames with a red 6-pixel square at a random place, and its centre in [-1, 1]."""
    frames = np.full((n, size, size, 3), 90, np.uint8)
    xy = rng.integers(3, size - 3, (n, 2))
    for f, (x, y) in zip(frames, xy):
        f[y - 3 : y + 3, x - 3 : x + 3] = (220, 30, 30)
    centre = torch.from_numpy((xy - 0.5) / (size - 1) * 2 - 1).float()
    return torch.from_numpy(frames), centre


def test_it_learns_where_an_object_is_in_frames_it_has_not_seen():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    enc = FrameEncoder(FrameEncoderConfig(enabled=True, channels=[8, 16], keypoints=4, shift=0), width=8)
    readout = torch.nn.Linear(8, 2)
    opt = torch.optim.Adam(list(enc.parameters()) + list(readout.parameters()), lr=3e-3)
    train_x, train_y = _square_frames(256, rng)
    for _ in range(300):
        i = torch.randint(0, 256, (32,))
        loss = torch.nn.functional.mse_loss(readout(enc.points(train_x[i]).flatten(1)), train_y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    test_x, test_y = _square_frames(64, rng)
    with torch.no_grad():
        err = (readout(enc.eval().points(test_x).flatten(1)) - test_y).norm(dim=-1).mean()
    chance = (test_y - test_y.mean(0)).norm(dim=-1).mean()  # always guessing the average place
    assert err < 0.3 * chance, (float(err), float(chance))


def test_config_is_checked():
    with pytest.raises(ValueError, match="keypoints"):
        FrameEncoderConfig(keypoints=0).validate()
    with pytest.raises(ValueError, match="channels"):
        FrameEncoderConfig(channels=[]).validate()
