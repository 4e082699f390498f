"""Video autoencoders behind one interface: our small causal VAE, and an adapter for the release's
LTX-2 VAE.

Time layout shared by both (the release's): raw frame 0 is encoded alone into latent frame 0, then
each group of ``temporal_stride`` raw frames into one latent frame, so F raw frames give
T = (F - 1) / temporal_stride + 1 latent frames and latent frame i >= 1 covers raw frames
(i - 1) * s + 1 .. i * s.

Our VAE stacks each group of raw frames along channels (frame 0 repeated to fill its group), runs a
2-D conv encoder per latent frame, and mixes latent frames only through causal temporal convs. So
decoding one latent chunk at a time with a small cache of past frames (``decode(..., cache)``) gives
exactly the frames of a full decode: what a streaming world model needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn as nn
import torch.nn.functional as F

Tensor = torch.Tensor


class VideoVAE(Protocol):
    """What the world model needs of an autoencoder. Videos are (B, 3, F, H, W) in [-1, 1]."""

    temporal_stride: int
    spatial_stride: int
    latent_channels: int

    def encode(self, video: Tensor, sample: bool = False, generator: torch.Generator | None = None) -> Tensor:
        """Normalised latents (B, C, T, H / s, W / s)."""

    def decode(self, latents: Tensor, cache: list | None = None) -> tuple[Tensor, list]:
        """Frames of the given latent frames, and the cache to decode the next ones with."""


@dataclass
class VAEConfig:
    """Our causal video autoencoder."""

    in_channels: int = 3
    latent_channels: int = 16
    temporal_stride: int = 4  # raw frames per latent frame after the first
    spatial_stride: int = 8  # pixels per latent pixel, a power of two
    base_channels: int = 32  # width at full resolution; doubles per downsampling
    max_channels: int = 128
    temporal_kernel: int = 3  # causal conv over latent frames

    def __post_init__(self) -> None:
        for name in ("in_channels", "latent_channels", "temporal_stride", "spatial_stride", "base_channels", "max_channels", "temporal_kernel"):
            if getattr(self, name) <= 0:
                raise ValueError(f"VAEConfig.{name} must be positive, got {getattr(self, name)}")
        for name in ("temporal_stride", "spatial_stride"):
            value = getattr(self, name)
            if value & (value - 1):
                raise ValueError(f"VAEConfig.{name} must be a power of two (1, 2, 4, 8, ...), got {value}")
        if self.spatial_stride < 2:
            raise ValueError(f"VAEConfig.spatial_stride must be >= 2, got {self.spatial_stride}")


VAE_SIZES: dict[str, VAEConfig] = {
    "tiny": VAEConfig(latent_channels=8, temporal_stride=4, spatial_stride=8, base_channels=8, max_channels=16),
    "small": VAEConfig(latent_channels=16, temporal_stride=4, spatial_stride=8, base_channels=32, max_channels=128),
}


def _groups(c: int) -> int:
    return math.gcd(c, 8)


class ResBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(_groups(c), c), nn.Conv2d(c, c, 3, padding=1)
        self.norm2, self.conv2 = nn.GroupNorm(_groups(c), c), nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.silu(self.norm2(self.conv1(F.silu(self.norm1(x))))))


class CausalTemporalConv(nn.Module):
    """Residual depthwise-separable conv over latent frames that sees only the past.

    Input (B, T, C, h, w); the cache holds the last ``kernel - 1`` input frames (zeros before the
    first frame), so chunk-by-chunk calls equal one call on the whole sequence.
    """

    def __init__(self, c: int, kernel: int) -> None:
        super().__init__()
        self.kernel = kernel
        self.conv = nn.Conv3d(c, c, (kernel, 1, 1))
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: Tensor, cache: Tensor | None) -> tuple[Tensor, Tensor]:
        b, t, c, h, w = x.shape
        past = x.new_zeros(b, self.kernel - 1, c, h, w) if cache is None else cache
        seq = torch.cat([past, x], dim=1)
        y = self.conv(seq.transpose(1, 2)).transpose(1, 2)  # (B, T, C, h, w)
        return x + y, seq[:, seq.shape[1] - (self.kernel - 1) :]


class _Coder(nn.Module):
    """A stack of per-frame 2-D stages around one causal temporal conv."""

    def _frames(self, x: Tensor, fn) -> Tensor:
        b, t = x.shape[:2]
        # Channels-last 2-D convs: 1.6x faster decoding on the CPU (oneDNN), and the layout cuDNN prefers.
        y = fn(x.flatten(0, 1).contiguous(memory_format=torch.channels_last))
        return y.reshape(b, t, *y.shape[1:])


class Encoder(_Coder):
    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        levels = int(math.log2(cfg.spatial_stride))
        widths = [min(cfg.base_channels * 2**i, cfg.max_channels) for i in range(levels + 1)]
        self.conv_in = nn.Conv2d(cfg.in_channels * cfg.temporal_stride, widths[0], 3, padding=1)
        self.down = nn.ModuleList(
            nn.Sequential(ResBlock(widths[i]), nn.Conv2d(widths[i], widths[i + 1], 3, stride=2, padding=1)) for i in range(levels)
        )
        self.mid = ResBlock(widths[-1])
        self.temporal = CausalTemporalConv(widths[-1], cfg.temporal_kernel)
        self.norm_out = nn.GroupNorm(_groups(widths[-1]), widths[-1])
        self.conv_out = nn.Conv2d(widths[-1], 2 * cfg.latent_channels, 3, padding=1)

    def forward(self, groups: Tensor, cache: Tensor | None) -> tuple[Tensor, Tensor]:
        """groups (B, T, 3 * s, H, W) -> moments (B, T, 2 * C, h, w)."""
        x = self._frames(groups, lambda z: self.mid(_seq(self.down, self.conv_in(z))))
        x, cache = self.temporal(x, cache)
        return self._frames(x, lambda z: self.conv_out(F.silu(self.norm_out(z)))), cache


class Decoder(_Coder):
    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        levels = int(math.log2(cfg.spatial_stride))
        widths = [min(cfg.base_channels * 2**i, cfg.max_channels) for i in range(levels + 1)][::-1]
        self.conv_in = nn.Conv2d(cfg.latent_channels, widths[0], 3, padding=1)
        self.temporal = CausalTemporalConv(widths[0], cfg.temporal_kernel)
        self.mid = ResBlock(widths[0])
        self.up = nn.ModuleList(
            nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(widths[i], widths[i + 1], 3, padding=1), ResBlock(widths[i + 1]))
            for i in range(levels)
        )
        self.norm_out = nn.GroupNorm(_groups(widths[-1]), widths[-1])
        self.conv_out = nn.Conv2d(widths[-1], cfg.in_channels * cfg.temporal_stride, 3, padding=1)

    def forward(self, latents: Tensor, cache: Tensor | None) -> tuple[Tensor, Tensor]:
        """latents (B, T, C, h, w) -> groups (B, T, 3 * s, H, W)."""
        x, cache = self.temporal(self._frames(latents, self.conv_in), cache)
        x = self._frames(x, lambda z: self.conv_out(F.silu(self.norm_out(_seq(self.up, self.mid(z))))))
        return x, cache


def _seq(stages: nn.ModuleList, x: Tensor) -> Tensor:
    for stage in stages:
        x = stage(x)
    return x


class CausalVideoVAE(nn.Module):
    """Our trainable causal video VAE (see the module docstring). ``latent_mean`` / ``latent_std``
    normalise latents for the DiT; they are set from data after training (identity before)."""

    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        self.config = cfg
        self.temporal_stride = cfg.temporal_stride
        self.spatial_stride = cfg.spatial_stride
        self.latent_channels = cfg.latent_channels
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.register_buffer("latent_mean", torch.zeros(cfg.latent_channels))
        self.register_buffer("latent_std", torch.ones(cfg.latent_channels))

    def _check_video(self, video: Tensor, first: bool) -> None:
        s, p = self.temporal_stride, self.spatial_stride
        if video.ndim != 5 or video.shape[1] != self.config.in_channels:
            raise ValueError(f"video must have shape (B, {self.config.in_channels}, F, H, W), got {tuple(video.shape)}")
        f, h, w = video.shape[2:]
        if (f - 1 if first else f) % s:
            what = "1 + a multiple" if first else "a multiple"
            raise ValueError(f"video frames must be {what} of temporal_stride={s}, got {f}")
        if h % p or w % p:
            raise ValueError(f"video height and width must be divisible by spatial_stride={p}, got {h} x {w}")

    def _group(self, video: Tensor, first: bool) -> Tensor:
        """(B, 3, F, H, W) -> (B, T, 3 * s, H, W), frame 0 repeated to fill its group."""
        s = self.temporal_stride
        if first:
            video = torch.cat([video[:, :, :1].expand(-1, -1, s - 1, -1, -1), video], dim=2)
        b, c, f, h, w = video.shape
        return video.reshape(b, c, f // s, s, h, w).permute(0, 2, 3, 1, 4, 5).reshape(b, f // s, s * c, h, w)

    def _ungroup(self, groups: Tensor, first: bool) -> Tensor:
        b, t, _, h, w = groups.shape
        s, c = self.temporal_stride, self.config.in_channels
        video = groups.reshape(b, t, s, c, h, w).permute(0, 3, 1, 2, 4, 5).reshape(b, c, t * s, h, w)
        return video[:, :, s - 1 :] if first else video

    def moments(self, video: Tensor, cache: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Posterior mean and log-variance (B, C, T, h, w) of raw latents, and the encoder cache.
        A call without cache starts a video (its first frame is encoded alone)."""
        first = cache is None
        self._check_video(video, first)
        m, cache = self.encoder(self._group(video, first), cache)
        mean, logvar = m.transpose(1, 2).chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0), cache

    def normalize(self, z: Tensor) -> Tensor:
        return (z - self.latent_mean[:, None, None, None]) / self.latent_std[:, None, None, None]

    def denormalize(self, z: Tensor) -> Tensor:
        return z * self.latent_std[:, None, None, None] + self.latent_mean[:, None, None, None]

    def encode(self, video: Tensor, sample: bool = False, generator: torch.Generator | None = None) -> Tensor:
        """Normalised latents (B, C, T, h, w) of a whole video: the posterior mean, or a sample."""
        mean, logvar, _ = self.moments(video)
        z = mean + torch.randn(mean.shape, generator=generator, device=mean.device) * (0.5 * logvar).exp() if sample else mean
        return self.normalize(z)

    def decode(self, latents: Tensor, cache: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Frames (B, 3, F, H, W) of normalised ``latents`` (B, C, T, h, w), and the decoder cache.

        Without ``cache`` the latents start a video (latent 0 gives one frame, the others
        ``temporal_stride`` each); with the cache of the previous call they continue it.
        """
        if latents.ndim != 5 or latents.shape[1] != self.latent_channels:
            raise ValueError(f"latents must have shape (B, {self.latent_channels}, T, h, w), got {tuple(latents.shape)}")
        groups, cache_out = self.decoder(self.denormalize(latents).transpose(1, 2), cache)
        return self._ungroup(groups, first=cache is None), cache_out


class LTX2VideoVAE(nn.Module):
    """The release's LTX-2 VAE (``diffusers.AutoencoderKLLTX2Video``) behind ``VideoVAE``; for the
    ``paper`` world. Latents are normalised with the VAE's ``latents_mean`` / ``latents_std`` and
    ``scaling_factor`` as the release's pipeline does.

    The LTX-2 decoder keeps no streaming state here, so ``decode`` with a cache re-decodes the
    cached context latents together with the new ones and returns the new frames; that equals a full
    decode when the context covers the decoder's temporal receptive field (``context`` latent frames).
    """

    def __init__(self, vae: nn.Module, context: int = 4) -> None:
        super().__init__()
        self.vae = vae
        self.context = context
        self.temporal_stride = int(vae.temporal_compression_ratio)
        self.spatial_stride = int(vae.spatial_compression_ratio)
        self.latent_channels = int(vae.config.latent_channels)

    @classmethod
    def from_pretrained(cls, path: str, **kwargs) -> LTX2VideoVAE:
        try:
            from diffusers import AutoencoderKLLTX2Video
        except ImportError as e:
            raise ImportError("the LTX-2 VAE needs diffusers: pip install 'sanawm[ltx2]'") from e
        return cls(AutoencoderKLLTX2Video.from_pretrained(path), **kwargs)

    def _stats(self, z: Tensor) -> tuple[Tensor, Tensor, float]:
        mean = self.vae.latents_mean.view(1, -1, 1, 1, 1).to(z)
        std = self.vae.latents_std.view(1, -1, 1, 1, 1).to(z)
        return mean, std, float(self.vae.config.scaling_factor)

    def encode(self, video: Tensor, sample: bool = False, generator: torch.Generator | None = None) -> Tensor:
        dist = self.vae.encode(video).latent_dist
        z = dist.sample(generator) if sample else dist.mode()
        mean, std, scale = self._stats(z)
        return (z - mean) * scale / std

    def decode(self, latents: Tensor, cache: Tensor | None = None) -> tuple[Tensor, Tensor]:
        seq = latents if cache is None else torch.cat([cache, latents], dim=2)
        mean, std, scale = self._stats(seq)
        video = self.vae.decode(seq / scale * std + mean, return_dict=False)[0]
        if cache is not None:  # keep the frames of the new latents only
            video = video[:, :, video.shape[2] - latents.shape[2] * self.temporal_stride :]
        return video, seq[:, :, -self.context :]
