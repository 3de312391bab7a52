"""Stage 1: the cross-prediction video model — shapes, training mechanics, checkpoints, prompts."""

import json

import numpy as np
import pytest
import torch

from helpers.synthetic_clips import make_dataset
from helpers.tiny_checkpoint import TINY, tiny_config
from humanprompt_ros.config.stage1 import PairMix
from humanprompt_ros.eval.stage1 import probe_accuracy, psnr, ssim
from humanprompt_ros.eval.stats import paired_difference
from humanprompt_ros.models.checkpoint import CheckpointError, save_checkpoint
from humanprompt_ros.models.cross_prediction import LatentVideoModel, SVDUNetConfig, VideoModelConfig
from humanprompt_ros.models.video_former import VideoFormer, VideoFormerConfig
from humanprompt_ros.models.video_model import build_video_model, load_stage1, prepare_prompt
from humanprompt_ros.train.stage1 import PairSampler, clip_indices, encode_episodes, make_batch, train_stage1
from humanprompt_ros.video import write_video


def test_shapes_are_as_documented():
    torch.manual_seed(0)
    m = LatentVideoModel(TINY).eval()
    frames = torch.randint(0, 255, (2, 4, 32, 32, 3), dtype=torch.uint8)
    lat = m.encode_frames(frames)
    assert lat.shape == (2, 4, 4, 4, 4)  # (B, T, C, h, w) at 1/8 resolution
    assert m.decode_latents(lat).shape == (2, 4, 32, 32, 3)
    tokens = m.encode_prompt(lat)
    assert tokens.shape == (2, 4 * 2, 32)  # (B, Tp·P, D)
    feats = m.features(tokens, lat[:, 0])
    assert feats.shape == (2, *m.feature_tokens, m.feature_dim) == (2, 4, 4, 32)  # (B, T, N, D)
    former = VideoFormer(VideoFormerConfig(queries_per_frame=3, width=16, depth=1, heads=2), m.feature_dim, 4)
    out = former(feats)
    assert out.shape == (2, 4 * 3, 16) and VideoFormer.pool(out).shape == (2, 16)
    assert m.sample(lat, lat[:, 0]).shape == (2, 4, 4, 4, 4)


def test_features_are_deterministic_and_depend_on_prompt_and_frame():
    torch.manual_seed(0)
    m = LatentVideoModel(TINY).eval()
    # adaLN-Zero starts as the identity: perturb it so the test sees the conditioning paths.
    for p in m.denoiser.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    lat = torch.randn(2, 4, 4, 4, 4)
    tok = m.encode_prompt(lat)
    with torch.no_grad():
        a = m.features(tok[:1], lat[0, :1])
        assert torch.equal(a, m.features(tok[:1], lat[0, :1]))
        assert not torch.allclose(a, m.features(tok[1:], lat[0, :1]))
        assert not torch.allclose(a, m.features(tok[:1], lat[1, :1]))


def test_config_validation_names_the_key():
    with pytest.raises(ValueError, match="image_size"):
        VideoModelConfig(image_size=36).validate()
    with pytest.raises(ValueError, match="prediction_type"):
        VideoModelConfig(prediction_type="x0").validate()


def test_pair_sampler_mixes_embodiments_within_a_task():
    eps = make_dataset(range(3), size=16, length=8)
    sampler = PairSampler(eps, PairMix(human_to_robot=1.0, robot_to_human=0.0, same=0.0), seed=0)
    for _ in range(50):
        p, t, s = sampler.sample()
        assert eps[p].task == eps[t].task
        if eps[t].embodiment == "robot":
            assert eps[p].embodiment == "human"
        assert 0 <= s < len(eps[t].frames)
    assert list(clip_indices(10, 7, 4, 2)) == [9, 9, 9, 9]


def test_training_learns_checkpoints_and_resumes(tmp_path):
    train = make_dataset(range(3), size=32, length=16)
    cfg = tiny_config(tmp_path / "run", steps=40)
    final = train_stage1(cfg, train)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    ae = [r["ae_loss"] for r in records if r.get("phase") == "ae"]
    assert ae[-1] < ae[0]  # the autoencoder learns
    assert (tmp_path / "run" / "curves.png").stat().st_size > 1000
    model, loaded_cfg, meta = load_stage1(final)
    assert loaded_cfg.model == TINY and meta["kind"] == "stage1" and meta["format_version"] == 1
    assert "command" in meta

    # Resume: ask for more steps; training continues from the saved step rather than from scratch.
    cfg2 = tiny_config(tmp_path / "run", steps=100)
    train_stage1(cfg2, train)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if r.get("phase") == "denoiser"]
    assert steps == sorted(steps) and len(steps) == len(set(steps)) and max(steps) >= 95
    # The denoiser learns: held-fixed batches and noise, trained vs freshly initialised denoiser.
    trained, _, _ = load_stage1(tmp_path / "run" / "stage1.safetensors")
    torch.manual_seed(1)
    fresh = LatentVideoModel(TINY).eval()
    fresh.autoencoder.load_state_dict(trained.autoencoder.state_dict())
    encode_episodes(trained, train, show=False)
    sampler = PairSampler(train, cfg2.pairs, seed=123)
    batch = make_batch(train, [sampler.sample() for _ in range(64)], cfg2, torch.device("cpu"))
    with torch.no_grad():
        losses = {
            name: np.mean([float(m.loss(*batch, generator=torch.Generator().manual_seed(k))) for k in range(4)])
            for name, m in (("trained", trained), ("fresh", fresh))
        }
    assert losses["trained"] < 0.9 * losses["fresh"], losses


def test_checkpoints_that_are_unsafe_corrupt_or_foreign_are_refused(tmp_path):
    pickled = tmp_path / "model.safetensors"
    torch.save({"w": torch.zeros(2)}, pickled)
    with pytest.raises(CheckpointError, match="can execute code on load"):
        load_stage1(pickled)
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(CheckpointError, match="not a readable safetensors checkpoint"):
        load_stage1(corrupt)
    other = save_checkpoint(tmp_path / "policy.safetensors", {"w": torch.zeros(1)}, "policy", {})
    with pytest.raises(CheckpointError, match="is a 'policy' checkpoint, expected 'stage1'"):
        load_stage1(other)
    with pytest.raises(CheckpointError, match="not found"):
        load_stage1(tmp_path / "missing.safetensors")


@pytest.mark.parametrize("length, size", [(2, 32), (40, 32), (9, 48), (5, 20)])
def test_prompts_of_any_length_and_size_are_resampled(length, size):
    m = LatentVideoModel(TINY).eval()
    frames = np.random.default_rng(0).integers(0, 255, (length, size, size + 8, 3), dtype=np.uint8)
    assert prepare_prompt(m, frames).shape == (1, TINY.prompt_frames, 4, 4, 4)


def test_unreadable_prompt_is_a_clear_error(tmp_path):
    from humanprompt_ros.video import read_video

    bad = tmp_path / "prompt.mp4"
    bad.write_bytes(b"not a video at all")
    with pytest.raises(ValueError, match="prompt.mp4: not a readable video"):
        read_video(bad)
    good = write_video(tmp_path / "ok.mp4", np.zeros((3, 32, 32, 3), np.uint8), fps=5)
    assert read_video(good).shape == (3, 32, 32, 3)


def test_image_metrics_and_probes():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 255, (3, 16, 16, 3), dtype=np.uint8)
    assert np.all(psnr(a, a) > 90) and np.allclose(ssim(a, a), 1.0, atol=1e-4)
    noisy = [np.clip(a + rng.normal(0, sigma, a.shape), 0, 255).astype(np.uint8) for sigma in (10, 30, 80)]
    assert np.all(psnr(noisy[1], a) < 25)
    p, s = [psnr(n, a).mean() for n in noisy], [ssim(n, a).mean() for n in noisy]
    assert p[0] > p[1] > p[2] and 1.0 > s[0] > s[1] > s[2]
    # separable classes are identified; labels carry no signal in random features
    centers = rng.normal(size=(3, 8)) * 5
    x = np.concatenate([c + rng.normal(size=(20, 8)) for c in centers])
    y = [str(i) for i in range(3) for _ in range(20)]
    acc = probe_accuracy(x[::2], y[::2], x[1::2], y[1::2])
    assert acc["prototype"] > 0.9 and acc["linear"] > 0.9 and acc["chance"] == pytest.approx(1 / 3)
    # paired same-vs-other differences: a consistent small gain has an interval above 0, noise does not
    base = rng.normal(16, 1, 48)
    gain = paired_difference(base + 0.2 + rng.normal(0, 0.05, 48), base, np.zeros(48), np.zeros(48))
    assert gain["psnr"] == pytest.approx(0.2, abs=0.03) and gain["psnr_ci95"][0] > 0 and gain["a_better"] > 0.95
    noise = paired_difference(base + rng.normal(0, 0.5, 48), base, np.zeros(48), np.zeros(48))
    assert noise["psnr_ci95"][0] < 0 < noise["psnr_ci95"][1]


# -- the pluggable backbone: diffusers' spatio-temporal UNet (SVD) behind the same interface ------------

SVD_TINY = VideoModelConfig(
    backbone="svd",
    image_size=32,
    width=16,
    heads=2,
    clip_frames=4,
    prompt_frames=4,
    prompt_tokens_per_frame=2,
    ae_channels=(8, 16, 16),
    sample_steps=2,
    svd=SVDUNetConfig(block_out_channels=(32, 32), heads=(2, 2), feature_block=1),
)


def test_svd_backbone_offers_the_same_interface():
    torch.manual_seed(0)
    m = build_video_model(SVD_TINY).eval()
    assert m.name == "svd" and m.trains_autoencoder
    lat = m.encode_frames(torch.randint(0, 255, (2, 4, 32, 32, 3), dtype=torch.uint8))
    tokens = m.encode_prompt(lat)
    assert tokens.shape == (2, 8, 16)
    with torch.no_grad():
        feats = m.features(tokens, lat[:, 0])
        assert feats.shape == (2, *m.feature_tokens, m.feature_dim)
        assert m.sample(lat, lat[:, 0]).shape == lat.shape
    loss = m.loss(lat, lat[:, 0], lat)
    loss.backward()
    assert torch.isfinite(loss)


def test_svd_backbone_trains_and_round_trips_through_a_checkpoint(tmp_path):
    cfg = tiny_config(tmp_path / "svd", steps=4, ae_steps=4)
    cfg.model = SVD_TINY
    final = train_stage1(cfg, make_dataset(range(2), size=32, length=8))
    model, loaded, meta = load_stage1(final)
    assert meta["backbone"] == "svd" and loaded.model.backbone == "svd"


def test_svd_backbone_loads_pretrained_weights_from_a_local_folder(tmp_path):
    """The pretrained path, exercised with a tiny diffusers SVD saved to disk (nothing downloaded)."""
    from diffusers import AutoencoderKLTemporalDecoder, UNetSpatioTemporalConditionModel

    torch.manual_seed(0)
    unet = UNetSpatioTemporalConditionModel(
        sample_size=4,
        in_channels=8,
        out_channels=4,
        block_out_channels=(32, 32),
        num_attention_heads=(2, 2),
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
        layers_per_block=1,
        cross_attention_dim=24,
        addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=24,
    )
    vae = AutoencoderKLTemporalDecoder(
        block_out_channels=(32, 32, 32, 32),
        down_block_types=("DownEncoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=1,
    )
    unet.save_pretrained(tmp_path / "svd" / "unet")
    vae.save_pretrained(tmp_path / "svd" / "vae")
    cfg = VideoModelConfig(
        backbone="svd",
        image_size=32,
        heads=2,
        clip_frames=4,
        prompt_frames=4,
        prompt_tokens_per_frame=2,
        svd=SVDUNetConfig(pretrained=str(tmp_path / "svd"), feature_block=1),
    )
    m = build_video_model(cfg).eval()
    assert not m.trains_autoencoder
    assert torch.equal(m.unet.conv_in.weight, unet.conv_in.weight)
    lat = m.encode_frames(torch.randint(0, 255, (1, 4, 32, 32, 3), dtype=torch.uint8))
    assert lat.shape == (1, 4, 4, 4, 4)
    with torch.no_grad():
        assert m.features(m.encode_prompt(lat), lat[:, 0]).shape[-1] == m.feature_dim
    bad = VideoModelConfig(backbone="svd", svd=SVDUNetConfig(pretrained=str(tmp_path / "nowhere")))
    with pytest.raises(ValueError, match="svd.pretrained: cannot load"):
        build_video_model(bad)


def test_a_safetensors_header_that_looks_like_pickle_magic_still_loads(tmp_path):
    """The header length is the file's first 8 bytes; a low byte of 0x80 is not a pickle."""
    from humanprompt_ros.models.checkpoint import load_checkpoint

    for pad in range(300):
        path = save_checkpoint(tmp_path / "c.safetensors", {"w": torch.ones(2)}, "stage1", {}, pad="x" * pad)
        if path.read_bytes()[0] == 0x80:
            break
    else:
        pytest.fail("no padding produced a 0x80 first byte")
    tensors, meta = load_checkpoint(path, kind="stage1")
    assert torch.equal(tensors["w"], torch.ones(2)) and meta["pad"] == "x" * pad


def test_mean_prediction_is_one_deterministic_pass_and_untrained_means_nothing_moves():
    torch.manual_seed(0)
    m = LatentVideoModel(TINY).eval()
    prompt = m.encode_frames(torch.randint(0, 255, (2, TINY.prompt_frames, 32, 32, 3), dtype=torch.uint8))
    first = m.encode_frames(torch.randint(0, 255, (2, 32, 32, 3), dtype=torch.uint8))
    a, b = m.predict_mean(prompt, first), m.predict_mean(prompt, first)
    assert a.shape == (2, TINY.clip_frames, *first.shape[1:]) and torch.equal(a, b)
    # the denoiser's output layer starts at zero: the expected change from the first frame is ~0
    torch.testing.assert_close(a, first[:, None].expand_as(a), atol=1e-3, rtol=0)
    with torch.no_grad():
        for p in m.denoiser.final.parameters():
            p.normal_(0, 0.5)
    assert not torch.allclose(m.predict_mean(prompt, first), a)  # a trained head moves it


def test_classifier_free_guidance_drops_prompts_in_training_and_extrapolates_when_sampling():
    import dataclasses

    torch.manual_seed(0)
    assert not LatentVideoModel(TINY).has_null_prompt  # format-1 checkpoints: no extra weights
    with pytest.raises(ValueError, match="prompt_dropout"):
        LatentVideoModel(TINY).null_prompt(1)
    cfg = dataclasses.replace(TINY, prompt_dropout=0.5)
    m = LatentVideoModel(cfg).eval()
    for p in m.denoiser.parameters():  # adaLN-Zero starts as the identity: make the prompt matter
        p.data.add_(0.05 * torch.randn_like(p))
    lat = torch.randn(64, 4, 4, 4, 4)
    tokens = m.encode_prompt(lat)
    dropped = m.drop_prompts(tokens, torch.Generator().manual_seed(0))
    is_null = torch.isclose(dropped, m.null_prompt(64)).all(dim=(1, 2))
    assert 16 < int(is_null.sum()) < 48  # about half, the rest untouched
    torch.testing.assert_close(dropped[~is_null], tokens[~is_null])
    # guidance 1 = the plain conditional prediction; 0 = unconditional; 3 extrapolates away from it
    first = lat[:2, 0]
    cond, uncond = m.predict_mean(lat[:2], first, 1.0), m.predict_mean(lat[:2], first, 0.0)
    assert not torch.allclose(cond, uncond)
    torch.testing.assert_close(
        m.predict_mean(lat[:2], first, 3.0), uncond + 3.0 * (cond - uncond), atol=1e-4, rtol=1e-4
    )  # x0 is linear in the denoiser's output
    assert m.sample(lat[:2], first, steps=2, guidance=2.0).shape == (2, 4, 4, 4, 4)
    with pytest.raises(ValueError, match="guidance"):
        dataclasses.replace(TINY, guidance_scale=2.0).validate()


def test_the_shipped_stage1_checkpoint_loads_and_guides():
    """models/stage1.safetensors (float16 weights, prompt dropout): loads as float32, has the null prompt."""
    from humanprompt_ros.paths import share_dir

    path = share_dir() / "models" / "stage1.safetensors"
    model, cfg, meta = load_stage1(path)
    assert meta["stored_dtype"] == "float16" and next(model.parameters()).dtype == torch.float32
    assert cfg.model.prompt_dropout > 0 and model.has_null_prompt
    frames = np.random.default_rng(0).integers(0, 255, (12, 80, 80, 3), dtype=np.uint8)
    prompt = prepare_prompt(model, frames)
    first = prompt[:, 0]
    a, b = model.predict_mean(prompt, first, 1.0), model.predict_mean(prompt, first, 3.0)
    assert a.shape == (1, cfg.model.clip_frames, *first.shape[1:]) and not torch.allclose(a, b)
