"""The ``svd`` stage-1 backbone: diffusers' spatio-temporal UNet (Stable Video Diffusion), at GPU scale.

Same interface as the default backbone (:class:`~humanprompt_ros.models.cross_prediction.CrossPredictionModel`):
the first-frame latent is concatenated to the noisy latents on the channel axis (as SVD conditions
on its image), the prompt tokens replace SVD's CLIP image embedding as the UNet's cross-attention
context, and the representation for control is the output of ``unet.up_blocks[feature_block]``
(VPP reads an up-sampling block), reshaped to (B, T, h·w, C).

``svd.pretrained`` points at a *local* diffusers folder (``unet/``, ``vae/``); nothing is downloaded.
The pretrained UNet's input layer is widened/narrowed to 2·latent channels if needed, and training
uses this project's discrete DDPM v/ε objective: the pretrained weights are an initialisation that
stage-1 fine-tunes, not a zero-shot sampler.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from humanprompt_ros.models.autoencoder import FrameAutoencoder
from humanprompt_ros.models.cross_prediction import CrossPredictionModel, PromptEncoder, VideoModelConfig

# SVD's micro-conditioning (fps, motion bucket, noise augmentation), held constant.
_ADDED_TIME_IDS = (6.0, 127.0, 0.02)


class PretrainedVAE(nn.Module):
    """A diffusers SVD VAE behind the frame-autoencoder interface (encode/decode scaled latents)."""

    def __init__(self, vae: nn.Module):
        super().__init__()
        self.vae = vae
        self.vae.requires_grad_(False)
        self.scale = float(getattr(vae.config, "scaling_factor", 0.18215))

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        return self.vae.encode(frames).latent_dist.mode() * self.scale

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(latents / self.scale, num_frames=latents.shape[0]).sample.clamp(-1, 1)


class SVDVideoModel(CrossPredictionModel):
    name = "svd"

    def __init__(self, cfg: VideoModelConfig):
        super().__init__(cfg)
        from diffusers import AutoencoderKLTemporalDecoder, UNetSpatioTemporalConditionModel

        s = cfg.svd
        c = cfg.latent_channels
        if s.pretrained:
            try:
                self.unet = UNetSpatioTemporalConditionModel.from_pretrained(
                    s.pretrained, subfolder="unet", local_files_only=True
                )
                vae = AutoencoderKLTemporalDecoder.from_pretrained(s.pretrained, subfolder="vae", local_files_only=True)
            except (OSError, ValueError, EnvironmentError) as exc:
                raise ValueError(
                    f"svd.pretrained: cannot load a diffusers SVD model from {s.pretrained!r} "
                    f"(needs unet/ and vae/ subfolders on local disk): {exc}"
                ) from None
            if vae.config.latent_channels != c:
                raise ValueError(
                    f"latent_channels: the pretrained VAE has {vae.config.latent_channels} "
                    f"latent channels, the config says {c}"
                )
            self.autoencoder = PretrainedVAE(vae)
            self._fit_input_channels(2 * c)
        else:
            self.unet = UNetSpatioTemporalConditionModel(
                sample_size=cfg.latent_size,
                in_channels=2 * c,
                out_channels=c,
                down_block_types=("CrossAttnDownBlockSpatioTemporal",) * (len(s.block_out_channels) - 1)
                + ("DownBlockSpatioTemporal",),
                up_block_types=("UpBlockSpatioTemporal",)
                + ("CrossAttnUpBlockSpatioTemporal",) * (len(s.block_out_channels) - 1),
                block_out_channels=tuple(s.block_out_channels),
                num_attention_heads=tuple(s.heads),
                layers_per_block=s.layers_per_block,
                cross_attention_dim=cfg.width,
                addition_time_embed_dim=8,
                projection_class_embeddings_input_dim=24,
                num_frames=cfg.clip_frames,
            )
            self.autoencoder = FrameAutoencoder(c, cfg.ae_channels)
        if not 0 <= s.feature_block < len(self.unet.up_blocks):
            raise ValueError(f"svd.feature_block: must be within 0..{len(self.unet.up_blocks) - 1}")
        cross = self.unet.config.cross_attention_dim
        self.prompt_encoder = PromptEncoder(dataclasses.replace(cfg, width=cross))
        self.register_buffer(
            "added_time_ids",
            torch.tensor(_ADDED_TIME_IDS).repeat(
                1,
                self.unet.config.projection_class_embeddings_input_dim
                // (3 * self.unet.config.addition_time_embed_dim),
            ),
        )
        self._captured: torch.Tensor | None = None
        self.unet.up_blocks[s.feature_block].register_forward_hook(self._capture)
        self._feature_shape: tuple[int, int, int] | None = None

    def _fit_input_channels(self, channels: int) -> None:
        conv = self.unet.conv_in
        if conv.in_channels == channels:
            return
        new = nn.Conv2d(channels, conv.out_channels, conv.kernel_size, padding=conv.padding)
        with torch.no_grad():
            new.weight.zero_()
            k = min(channels, conv.in_channels)
            new.weight[:, :k] = conv.weight[:, :k]
            new.bias.copy_(conv.bias)
        self.unet.conv_in = new

    def _capture(self, module: nn.Module, inputs, output) -> None:
        self._captured = output[0] if isinstance(output, tuple) else output

    @property
    def trains_autoencoder(self) -> bool:
        return not self.cfg.svd.pretrained

    def denoise(self, noisy, first, t, prompt, features=False):
        b, nt = noisy.shape[:2]
        x = torch.cat([noisy, first[:, None].expand(-1, nt, -1, -1, -1)], dim=2)
        ids = self.added_time_ids.expand(b, -1)
        out = self.unet(x, t, encoder_hidden_states=prompt, added_time_ids=ids).sample
        if not features:
            return out
        feats = self._captured  # (B·T, C, h, w)
        return feats.view(b, nt, feats.shape[1], -1).transpose(2, 3)  # (B, T, h·w, C)

    def _probe_features(self) -> tuple[int, int, int]:
        if self._feature_shape is None:
            ls, c = self.cfg.latent_size, self.cfg.latent_channels
            with torch.no_grad():
                prompt = torch.zeros(1, 1, self.unet.config.cross_attention_dim, device=self.added_time_ids.device)
                f = self.denoise(
                    torch.zeros(1, self.cfg.clip_frames, c, ls, ls, device=prompt.device),
                    torch.zeros(1, c, ls, ls, device=prompt.device),
                    torch.zeros(1, dtype=torch.long, device=prompt.device),
                    prompt,
                    features=True,
                )
            self._feature_shape = tuple(f.shape[1:])
        return self._feature_shape

    @property
    def feature_dim(self) -> int:
        return self._probe_features()[2]

    @property
    def feature_tokens(self) -> tuple[int, int]:
        t, n, _ = self._probe_features()
        return t, n
