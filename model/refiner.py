"""SanaWMRefiner: the stage-2 refiner of SANA-WM, an LTX-2 video DiT run chunk-causally.

Only the video stream of LTX-2 is built (the refiner never runs audio); its parameter names are the
release's, so ``load_reference_state_dict`` takes a released LTX-2 / SANA-WM refiner state dict,
dropping the audio and audio-video weights with a note.

Refinement (``refine``): stage-1 latents are re-noised to sigma ~0.91 block by block (a block is a
chunk, ``CHUNK_FRAMES`` latent frames) and taken to 0 in 3 Euler steps (0.909 -> 0.725 -> 0.422 -> 0).
Self-attention of a block sees the attention sink (the first ``sink_frames`` raw stage-1 latents, kept
pre-RoPE and re-rotated each window so the sink sits just before the window), the recent refined
history (post-RoPE, at most ``max_frames - sink_frames`` frames) and the block itself; RoPE uses
absolute frame positions scaled by the fps, as LTX-2 does.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .checkpoint_io import load_strict
from .chunks import CHUNK_FRAMES
from .dit import TimestepEmbedder, run_block
from .flow import euler_sample
from .norms import RMSNorm

Tensor = torch.Tensor
log = logging.getLogger(__name__)

STAGE2_SIGMAS = (0.909375, 0.725, 0.421875, 0.0)  # the release's distilled 3-step schedule
# Release weights the video-only refiner does not have (audio stream and audio-video cross-attention).
_IGNORED_PREFIXES = ("audio_", "av_cross_attn_", "cross_attn_rope", "cross_attn_audio_rope", "prompt_adaln", "audio_prompt_adaln")
_IGNORED_BLOCK_PARTS = ("audio_", "video_to_audio_", "audio_to_video_", "video_a2v_cross_attn_scale_shift_table",
                        "audio_a2v_cross_attn_scale_shift_table")


@dataclass
class RefinerConfig:
    """The LTX-2 video transformer (field names as in the release's config.json)."""

    in_channels: int = 128
    out_channels: int = 128
    num_attention_heads: int = 32
    attention_head_dim: int = 128
    cross_attention_dim: int = 4096
    caption_channels: int = 3840
    num_layers: int = 48
    vae_scale_factors: tuple[int, int, int] = (8, 32, 32)  # raw frames / pixels per latent frame / pixel
    pos_embed_max_pos: int = 20  # seconds that RoPE's temporal positions are normalised by
    base_height: int = 2048  # pixels that RoPE's spatial positions are normalised by
    base_width: int = 2048
    norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    rope_type: str = "interleaved"  # or "split"
    causal_offset: int = 1
    timestep_scale_multiplier: int = 1000

    def __post_init__(self) -> None:
        self.vae_scale_factors = tuple(self.vae_scale_factors)
        if self.rope_type not in ("interleaved", "split"):
            raise ValueError(f"RefinerConfig.rope_type must be 'interleaved' or 'split', got {self.rope_type!r}")
        for name in ("in_channels", "out_channels", "num_attention_heads", "attention_head_dim", "num_layers", "caption_channels"):
            if getattr(self, name) <= 0:
                raise ValueError(f"RefinerConfig.{name} must be positive, got {getattr(self, name)}")

    @property
    def inner_dim(self) -> int:
        return self.num_attention_heads * self.attention_head_dim


REFINER_SIZES: dict[str, RefinerConfig] = {
    "tiny": RefinerConfig(in_channels=8, out_channels=8, num_attention_heads=2, attention_head_dim=16, cross_attention_dim=32,
                          caption_channels=32, num_layers=2, vae_scale_factors=(4, 8, 8)),
    "small": RefinerConfig(in_channels=16, out_channels=16, num_attention_heads=4, attention_head_dim=32, cross_attention_dim=128,
                           caption_channels=64, num_layers=4, vae_scale_factors=(4, 8, 8)),
    "paper": RefinerConfig(),
}

# Refiner-config fields of the release's config.json that are allowed only at these values.
_FIXED = {"patch_size": 1, "patch_size_t": 1, "gated_attn": False, "cross_attn_mod": False, "qk_norm": "rms_norm_across_heads",
          "activation_fn": "gelu-approximate", "norm_elementwise_affine": False, "attention_bias": True, "attention_out_bias": True,
          "ff_bias": True, "use_prompt_embeddings": True, "perturbed_attn": False, "use_keyframes_abs_pos_embedding": False}


def refiner_config_from_reference(raw: dict) -> RefinerConfig:
    """RefinerConfig from the release's config dict; audio fields are ignored, unsupported values fail."""
    for name, value in _FIXED.items():
        if name in raw and raw[name] != value:
            raise ValueError(f"refiner config: {name}={raw[name]!r} is not supported (only {value!r})")
    names = set(RefinerConfig.__dataclass_fields__)
    return RefinerConfig(**{k: v for k, v in raw.items() if k in names})


def rope_tables(cfg: RefinerConfig, frames: Tensor, height: int, width: int, fps: float) -> tuple[Tensor, Tensor]:
    """LTX-2 video RoPE (cos, sin) for tokens at absolute latent ``frames`` (T,) on an h x w grid.

    A token's position is the midpoint of the raw-video box it covers (frames in seconds, shifted for
    the causal first frame; pixels), divided by (pos_embed_max_pos, base_height, base_width).
    Returns (N, inner_dim) tables for ``interleaved`` and (H, N, head_dim / 2) for ``split``.
    """
    st, sh, sw = cfg.vae_scale_factors
    f, h, w = torch.meshgrid(frames.double(), torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64), indexing="ij")
    t0 = ((f * st + cfg.causal_offset - st).clamp(min=0)) / fps
    t1 = (((f + 1) * st + cfg.causal_offset - st).clamp(min=0)) / fps
    pos = torch.stack([(t0 + t1) / 2 / cfg.pos_embed_max_pos, (h + 0.5) * sh / cfg.base_height, (w + 0.5) * sw / cfg.base_width], -1)
    pos = pos.reshape(-1, 3).float()  # (N, 3)
    dim = cfg.inner_dim
    per_axis = dim // 6
    ladder = (cfg.rope_theta ** torch.linspace(0.0, 1.0, per_axis, dtype=torch.float64) * math.pi / 2).float()
    angles = ((pos[..., None] * 2 - 1) * ladder).transpose(-1, -2).flatten(1)  # (N, 3 * per_axis), axis fastest
    pad = dim // 2 - angles.shape[1]
    cos, sin = angles.cos(), angles.sin()
    cos = torch.cat([torch.ones(len(pos), pad), cos], dim=-1)
    sin = torch.cat([torch.zeros(len(pos), pad), sin], dim=-1)
    if cfg.rope_type == "interleaved":
        return cos.repeat_interleave(2, dim=-1), sin.repeat_interleave(2, dim=-1)
    heads = cfg.num_attention_heads
    return cos.reshape(len(pos), heads, -1).transpose(0, 1), sin.reshape(len(pos), heads, -1).transpose(0, 1)


def apply_rope(x: Tensor, tables: tuple[Tensor, Tensor], rope_type: str, heads: int) -> Tensor:
    """Rotate x (B, N, inner) with ``rope_tables`` output (pairs interleaved, or halves per head)."""
    cos, sin = tables
    if rope_type == "interleaved":
        pairs = x.float().unflatten(-1, (-1, 2))
        rotated = torch.stack([-pairs[..., 1], pairs[..., 0]], dim=-1).flatten(-2)
        return (x.float() * cos + rotated * sin).to(x.dtype)
    b, n, _ = x.shape
    xh = x.float().reshape(b, n, heads, 2, -1).transpose(1, 2)  # (B, H, N, 2, D / 2)
    first, second = xh[..., 0, :], xh[..., 1, :]
    out = torch.stack([first * cos - second * sin, second * cos + first * sin], dim=-2)
    return out.transpose(1, 2).reshape(b, n, -1).to(x.dtype)


class Attention(nn.Module):
    """LTX-2 attention: RMSNorm over all heads on q and k, optional RoPE, SDPA."""

    def __init__(self, dim: int, heads: int, head_dim: int, kv_dim: int, eps: float) -> None:
        super().__init__()
        inner = heads * head_dim
        self.heads = heads
        self.to_q = nn.Linear(dim, inner)
        self.to_k = nn.Linear(kv_dim, inner)
        self.to_v = nn.Linear(kv_dim, inner)
        self.norm_q = RMSNorm(inner, eps=eps)
        self.norm_k = RMSNorm(inner, eps=eps)
        self.to_out = nn.ModuleList([nn.Linear(inner, dim)])

    def project(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        context = x if context is None else context
        return self.norm_q(self.to_q(x)), self.norm_k(self.to_k(context)), self.to_v(context)

    def attend(self, q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None = None) -> Tensor:
        b, n, _ = q.shape
        split = lambda z: z.reshape(b, z.shape[1], self.heads, -1).transpose(1, 2)  # noqa: E731
        out = F.scaled_dot_product_attention(split(q), split(k), split(v), attn_mask=bias)
        return self.to_out[0](out.transpose(1, 2).reshape(b, n, -1))


class FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int = 4) -> None:
        super().__init__()
        self.net = nn.ModuleList([nn.Module(), nn.Identity(), nn.Linear(dim * mult, dim)])
        self.net[0].proj = nn.Linear(dim, dim * mult)

    def forward(self, x: Tensor) -> Tensor:
        return self.net[2](F.gelu(self.net[0].proj(x), approximate="tanh"))


@dataclass
class LayerCache:
    """One layer's window: the sink's pre-RoPE keys and values, the history's post-RoPE ones, (B, N, inner)."""

    sink_k: Tensor
    sink_v: Tensor
    history_k: Tensor
    history_v: Tensor


@dataclass
class RefinerCache:
    """The refiner's sliding window over a video: per-layer K/V of the sink and recent history."""

    layers: list[LayerCache]
    sink_frames: int
    history_frames: int = 0


class RefinerBlock(nn.Module):
    def __init__(self, cfg: RefinerConfig) -> None:
        super().__init__()
        dim = cfg.inner_dim
        self.eps = cfg.norm_eps
        self.attn1 = Attention(dim, cfg.num_attention_heads, cfg.attention_head_dim, dim, cfg.norm_eps)
        self.attn2 = Attention(dim, cfg.num_attention_heads, cfg.attention_head_dim, cfg.cross_attention_dim, cfg.norm_eps)
        self.ff = FeedForward(dim)
        self.scale_shift_table = nn.Parameter(torch.randn(6, dim) / dim**0.5)

    def _norm(self, x: Tensor) -> Tensor:
        return F.rms_norm(x, (x.shape[-1],), eps=self.eps)

    def forward(self, x: Tensor, y: Tensor, y_bias: Tensor | None, temb: Tensor, rope: tuple[Tensor, Tensor], rope_type: str,
                prefix: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, tuple[Tensor, Tensor, Tensor]]:
        """x (B, N, D), temb (B, N, 6D). ``prefix`` K/V (post-RoPE) are attended besides the input's.
        Returns the output and this input's (pre-RoPE k, post-RoPE k, v) for caching."""
        b, n, d = x.shape
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = (self.scale_shift_table + temb.reshape(b, n, 6, d)).unbind(2)
        h = self._norm(x) * (1 + scale_msa) + shift_msa
        q, k_pre, v = self.attn1.project(h)
        heads = self.attn1.heads
        q, k = apply_rope(q, rope, rope_type, heads), apply_rope(k_pre, rope, rope_type, heads)
        keys, values = (k, v) if prefix is None else (torch.cat([prefix[0], k], 1), torch.cat([prefix[1], v], 1))
        x = x + self.attn1.attend(q, keys, values) * gate_msa
        x = x + self.attn2.attend(*self.attn2.project(self._norm(x), y), bias=y_bias)
        x = x + self.ff(self._norm(x) * (1 + scale_mlp) + shift_mlp) * gate_mlp
        return x, (k_pre, k, v)


class SanaWMRefiner(nn.Module):
    """The video stream of the LTX-2 DiT with a sliding-window K/V cache (see the module docstring)."""

    def __init__(self, cfg: RefinerConfig) -> None:
        super().__init__()
        self.config = cfg
        dim = cfg.inner_dim
        self.proj_in = nn.Linear(cfg.in_channels, dim)
        self.caption_projection = nn.Module()
        self.caption_projection.linear_1 = nn.Linear(cfg.caption_channels, dim)
        self.caption_projection.linear_2 = nn.Linear(dim, dim)
        self.time_embed = nn.Module()
        self.time_embed.emb = nn.Module()
        self.time_embed.emb.timestep_embedder = TimestepEmbedder(dim)  # linear_1 (256 -> dim), linear_2, as LTX-2 names them
        self.time_embed.linear = nn.Linear(dim, 6 * dim)
        self.scale_shift_table = nn.Parameter(torch.randn(2, dim) / dim**0.5)
        self.transformer_blocks = nn.ModuleList(RefinerBlock(cfg) for _ in range(cfg.num_layers))
        self.norm_out = nn.LayerNorm(dim, eps=1e-6, elementwise_affine=False)
        self.proj_out = nn.Linear(dim, cfg.out_channels)
        # Ours, not the release's: the prompt used when none is given.
        self.null_prompt = nn.Parameter(torch.randn(1, 1, cfg.caption_channels) * 0.02)
        self.gradient_checkpointing = False  # recompute each block in the backward (training on GPU)

    # ---- pieces --------------------------------------------------------------------------------

    def _embed_time(self, t: Tensor) -> tuple[Tensor, Tensor]:
        emb = self.time_embed.emb.timestep_embedder(t.reshape(-1))
        return self.time_embed.linear(F.silu(emb)), emb

    def _prompt(self, b: int, prompt_embeds: Tensor | None, prompt_mask: Tensor | None) -> tuple[Tensor, Tensor | None]:
        if prompt_embeds is None:
            prompt_embeds = self.null_prompt.expand(b, -1, -1)
        cp = self.caption_projection
        y = cp.linear_2(F.gelu(cp.linear_1(prompt_embeds), approximate="tanh"))
        bias = None
        if prompt_mask is not None:  # LTX-2's additive mask
            bias = ((1 - prompt_mask.to(y.dtype)) * -10000.0)[:, None, None, :]
        return y, bias

    def _run(self, latents: Tensor, sigma: Tensor, frames: Tensor, fps: float, prompt_embeds, prompt_mask,
             cache: RefinerCache | None) -> tuple[Tensor, list[tuple[Tensor, Tensor, Tensor]]]:
        cfg = self.config
        b, c, t, h, w = latents.shape
        if c != cfg.in_channels:
            raise ValueError(f"latents must have shape (B, {cfg.in_channels}, T, H, W), got {tuple(latents.shape)}")
        if tuple(sigma.shape) != (b, t):
            raise ValueError(f"sigma must have shape (B, T) = {(b, t)}, got {tuple(sigma.shape)}")
        dev = latents.device  # levels, frames and RoPE tables may come from the CPU
        x = self.proj_in(latents.permute(0, 2, 3, 4, 1).reshape(b, t * h * w, c))
        token_t = (sigma.to(dev) * cfg.timestep_scale_multiplier).repeat_interleave(h * w, dim=1)  # (B, N)
        temb, emb = self._embed_time(token_t)
        temb, emb = temb.reshape(b, t * h * w, -1), emb.reshape(b, t * h * w, -1)
        y, bias = self._prompt(b, prompt_embeds, prompt_mask)
        rope = tuple(r.to(dev) for r in rope_tables(cfg, frames.cpu(), h, w, fps))
        sink_rope = None
        if cache is not None:
            offset = int(frames[0]) - cache.history_frames - cache.sink_frames
            sink_rope = tuple(r.to(dev) for r in rope_tables(cfg, torch.arange(offset, offset + cache.sink_frames), h, w, fps))
        captured = []
        for i, block in enumerate(self.transformer_blocks):
            prefix = None
            if cache is not None:
                layer = cache.layers[i]
                sink_k = apply_rope(layer.sink_k, sink_rope, cfg.rope_type, cfg.num_attention_heads)
                prefix = (torch.cat([sink_k, layer.history_k], 1), torch.cat([layer.sink_v, layer.history_v], 1))
            x, kv = run_block(block, self.gradient_checkpointing, x, y, bias, temb, rope, cfg.rope_type, prefix)
            captured.append(kv)
        shift, scale = (self.scale_shift_table + emb[:, :, None]).unbind(2)
        out = self.proj_out(self.norm_out(x) * (1 + scale) + shift)
        return out.reshape(b, t, h, w, -1).permute(0, 4, 1, 2, 3), captured

    # ---- public --------------------------------------------------------------------------------

    def forward(self, latents: Tensor, sigma: Tensor, frames: Tensor | None = None, fps: float = 16.0,
                prompt_embeds: Tensor | None = None, prompt_mask: Tensor | None = None,
                cache: RefinerCache | None = None) -> Tensor:
        """Velocity (B, C, T, H, W) for latents (B, C, T, H, W) at noise levels ``sigma`` (B, T).

        ``frames``: absolute latent-frame indices (T,) (0..T-1 if None). With ``cache`` the tokens also
        attend to the cached sink and history (the refiner's denoising steps); without, to themselves.
        """
        frames = torch.arange(latents.shape[2]) if frames is None else frames
        return self._run(latents, sigma, frames, fps, prompt_embeds, prompt_mask, cache)[0]

    def capture_sink(self, sink_latents: Tensor, fps: float = 16.0, prompt_embeds: Tensor | None = None,
                     prompt_mask: Tensor | None = None) -> RefinerCache:
        """A cache whose sink is the pre-RoPE K/V of clean ``sink_latents`` (B, C, S, H, W) (frames 0..S-1)."""
        b, _, s, h, w = sink_latents.shape
        _, kv = self._run(sink_latents, torch.zeros(b, s), torch.arange(s), fps, prompt_embeds, prompt_mask, None)
        empty = sink_latents.new_zeros(b, 0, self.config.inner_dim)
        layers = [LayerCache(k_pre, v, empty, empty) for k_pre, _, v in kv]
        return RefinerCache(layers=layers, sink_frames=s)

    def commit(self, clean: Tensor, frames: Tensor, cache: RefinerCache, max_frames: int = 11, fps: float = 16.0,
               prompt_embeds: Tensor | None = None, prompt_mask: Tensor | None = None) -> RefinerCache:
        """A new cache with the refined block ``clean`` (B, C, T, H, W) at ``frames`` added to the
        history (one clean pass, post-RoPE K/V), keeping at most ``max_frames - sink`` history frames."""
        b, _, t, h, w = clean.shape
        _, kv = self._run(clean, torch.zeros(b, t), frames, fps, prompt_embeds, prompt_mask, cache)
        history = cache.history_frames + t
        if max_frames - cache.sink_frames > 0:
            history = min(history, max_frames - cache.sink_frames)
        keep = history * h * w
        layers = []
        for layer, (_, k, v) in zip(cache.layers, kv):
            hk, hv = torch.cat([layer.history_k, k], 1), torch.cat([layer.history_v, v], 1)
            layers.append(LayerCache(layer.sink_k, layer.sink_v, hk[:, hk.shape[1] - keep :], hv[:, hv.shape[1] - keep :]))
        return RefinerCache(layers=layers, sink_frames=cache.sink_frames, history_frames=history)

    def refine_block(self, clean: Tensor, frames: Tensor, cache: RefinerCache, fps: float = 16.0,
                     sigmas: tuple[float, ...] = STAGE2_SIGMAS, generator: torch.Generator | None = None,
                     prompt_embeds: Tensor | None = None, prompt_mask: Tensor | None = None) -> Tensor:
        """Re-noise one block of stage-1 latents (B, C, T, H, W) at ``frames`` to sigmas[0] and take
        it back to 0 with Euler steps, attending to ``cache``. Gradients follow the caller's grad mode."""
        b, _, t = clean.shape[:3]
        noise = torch.randn(clean.shape, generator=generator, dtype=clean.dtype).to(clean.device)  # CPU generator
        x = (1 - sigmas[0]) * clean + sigmas[0] * noise

        def velocity(x: Tensor, s: float) -> Tensor:
            return self(x, torch.full((b, t), s, device=clean.device), frames, fps, prompt_embeds, prompt_mask, cache)

        return euler_sample(velocity, x, sigmas)

    @torch.no_grad()
    def refine(self, latents: Tensor, fps: float = 16.0, sigmas: tuple[float, ...] = STAGE2_SIGMAS, block_size: int = CHUNK_FRAMES,
               sink_frames: int = 1, max_frames: int = 11, generator: torch.Generator | None = None,
               prompt_embeds: Tensor | None = None, prompt_mask: Tensor | None = None) -> Tensor:
        """Refine stage-1 ``latents`` (B, C, T, H, W): the first ``sink_frames`` stay as they are,
        later blocks of ``block_size`` frames are re-noised to sigmas[0] and integrated to 0."""
        t = latents.shape[2]
        if t <= sink_frames:
            raise ValueError(f"latents have {t} frames, need more than sink_frames={sink_frames}")
        out = latents.clone()
        cache = self.capture_sink(latents[:, :, :sink_frames], fps, prompt_embeds, prompt_mask)
        for start in range(sink_frames, t, block_size):
            end = min(start + block_size, t)
            frames = torch.arange(start, end)
            x = self.refine_block(latents[:, :, start:end], frames, cache, fps, sigmas, generator, prompt_embeds, prompt_mask)
            cache = self.commit(x, frames, cache, max_frames, fps, prompt_embeds, prompt_mask)
            out[:, :, start:end] = x
        return out

    def load_reference_state_dict(self, state: dict[str, Tensor]) -> None:
        """Load a released refiner / LTX-2 transformer state dict strictly for the video stream; the
        audio and audio-video weights are dropped (this refiner never runs them)."""
        def ignored(key: str) -> bool:
            if key.startswith(_IGNORED_PREFIXES):
                return True
            parts = key.split(".")
            return parts[0] == "transformer_blocks" and parts[2].startswith(_IGNORED_BLOCK_PARTS)

        dropped = [k for k in state if ignored(k)]
        state = {k: v for k, v in state.items() if not ignored(k)}
        if dropped:
            log.info("refiner: ignoring %d audio / audio-video weights of the release (video stream only)", len(dropped))
        load_strict(self, state, allow_missing={"null_prompt"}, source="release refiner state dict")
