"""Sizes of the SANA-WM DiT, from a test-sized model to the paper's 2.6B, in one place.

``DiTConfig`` uses the field names of the release's ``config.json`` where a field exists there, so a
folder written by the reference's ``save_pretrained`` maps onto it one to one. Presets live in
``DIT_SIZES``; ``dit_config`` hands out copies of them (``configs.register_configs`` offers them to
Hydra as the group ``model``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, fields, replace


@dataclass
class DiTConfig:
    """The hybrid frame-GDN / softmax diffusion transformer."""

    in_channels: int = 128  # VAE latent channels
    num_layers: int = 20  # transformer blocks
    hidden_size: int = 2240  # model width
    num_attention_heads: int = 20  # heads of the cross-attention to the prompt
    linear_head_dim: int = 112  # head size of self-attention (GDN and softmax); heads = hidden / this
    patch_size: tuple[int, int, int] = (1, 1, 1)  # (frames, height, width) per token; frames must be 1
    softmax_every_n: int = 4  # blocks n-1, 2n-1, ... use softmax attention, the rest frame-wise GDN
    mlp_ratio: float = 3.0  # Mix-FFN hidden width / model width
    t_kernel_size: int = 3  # temporal conv of the Mix-FFN (frames)
    conv_kernel_size: int = 4  # short conv on GDN keys (frames)
    caption_channels: int = 2304  # width of the prompt embeddings (Gemma-2: 2304)
    chunk_plucker_channels: int = 48  # 6 Plucker channels x raw frames per latent frame
    qk_norm: bool = True  # RMSNorm on self-attention queries and keys
    cross_norm: bool = True  # RMSNorm on cross-attention queries and keys
    y_norm: bool = True  # RMSNorm on the embedded prompt
    null_prompt_length: int = 1  # tokens of the learned prompt used when none is given
    rope_max_len: int = 1024  # longest frame / row / column index RoPE covers
    rope_theta: float = 10000.0

    def __post_init__(self) -> None:
        self.patch_size = tuple(self.patch_size)
        positive = ("in_channels", "num_layers", "hidden_size", "num_attention_heads", "linear_head_dim", "caption_channels",
                    "chunk_plucker_channels", "null_prompt_length", "rope_max_len")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"DiTConfig.{name} must be positive, got {getattr(self, name)}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"DiTConfig.hidden_size ({self.hidden_size}) must be divisible by num_attention_heads ({self.num_attention_heads})")
        if self.hidden_size % self.linear_head_dim:
            raise ValueError(f"DiTConfig.hidden_size ({self.hidden_size}) must be divisible by linear_head_dim ({self.linear_head_dim})")
        if self.linear_head_dim % 4:
            raise ValueError(f"DiTConfig.linear_head_dim must be divisible by 4 for the UCPE camera branch (4x4 ray transforms), got {self.linear_head_dim}")
        if self.linear_head_dim < 12:
            raise ValueError(f"DiTConfig.linear_head_dim must be >= 12 so that 3-D RoPE gets frequencies on every axis, got {self.linear_head_dim}")
        if len(self.patch_size) != 3 or self.patch_size[0] != 1 or min(self.patch_size) <= 0:
            raise ValueError(f"DiTConfig.patch_size must be (1, ph, pw) with positive ph, pw, got {self.patch_size}")
        if self.chunk_plucker_channels % 6:
            raise ValueError(f"DiTConfig.chunk_plucker_channels must be a multiple of 6 (Plucker maps per raw frame), got {self.chunk_plucker_channels}")
        if self.softmax_every_n < 0:
            raise ValueError(f"DiTConfig.softmax_every_n must be >= 0 (0: no softmax blocks), got {self.softmax_every_n}")

    @property
    def temporal_stride(self) -> int:
        """Raw frames per latent frame, as implied by the Plucker channels."""
        return self.chunk_plucker_channels // 6

    def is_softmax_block(self, index: int) -> bool:
        return self.softmax_every_n > 0 and (index + 1) % self.softmax_every_n == 0


DIT_SIZES: dict[str, DiTConfig] = {
    # Unit tests: well under 1M parameters.
    "tiny": DiTConfig(in_channels=8, num_layers=4, hidden_size=64, num_attention_heads=4, linear_head_dim=16,
                      caption_channels=32, chunk_plucker_channels=24),
    # The default shipped world: 16-channel latents of our small VAE, no text encoder needed; 11M
    # parameters, sized to generate faster than real time at 64 x 64 on a 2-core CPU (4 steps a chunk).
    "small": DiTConfig(in_channels=16, num_layers=6, hidden_size=256, num_attention_heads=4, linear_head_dim=64,
                       caption_channels=64, chunk_plucker_channels=24),
    "base": DiTConfig(in_channels=32, num_layers=12, hidden_size=768, num_attention_heads=12, linear_head_dim=64,
                      caption_channels=768, chunk_plucker_channels=48),
    # The release: 20 blocks, hidden 2240, 20 heads x 112, LTX-2 latents, Gemma-2 prompts; 2.66B parameters.
    "paper": DiTConfig(),
}


def dit_config(size: str, **overrides: object) -> DiTConfig:
    """A copy of the preset ``size`` (see ``DIT_SIZES``), with fields replaced by ``overrides``."""
    if size not in DIT_SIZES:
        raise ValueError(f"size must be one of {sorted(DIT_SIZES)}, got {size!r}")
    known = {f.name for f in fields(DiTConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown DiTConfig field(s) {unknown}")
    return replace(copy.deepcopy(DIT_SIZES[size]), **overrides)
