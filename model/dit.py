"""SanaWMDiT: the hybrid frame-GDN / softmax diffusion transformer of SANA-WM with dual-branch camera
control, under the release's parameter names (so its checkpoints load as they are).

Data path of ``forward``: latents (B, C, T, H, W) -> patch embedding -> tokens (B, N, hidden), N =
T * h * w frame-major; per-frame timesteps -> adaLN-single modulation; prompt embeddings -> caption
MLP + RMSNorm; camera (B, T, 20) -> UCPE ray frames (branch A, inside every attention);
Plucker maps -> patch embedding added after self-attention in every block (branch B); blocks;
final adaLN layer -> velocity (B, C, T, H, W).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint

from .attention import AttentionCache, AttentionContext, HybridAttention
from .camera import se3_inverse
from .chunks import chunk_bounds
from .compiled import inductor_options
from .config import DiTConfig
from .norms import RMSNorm
from .rope import half_head_freqs, rope_freqs
from .ucpe import ray_frames

Tensor = torch.Tensor

MODES = ("bidirectional", "chunk_causal")


def run_block(block: nn.Module, checkpointing: bool, *args):
    """``block(*args)``, with its activations recomputed in the backward when ``checkpointing`` and
    gradients are on (memory for compute, as the release trains)."""
    if checkpointing and torch.is_grad_enabled():
        return torch.utils.checkpoint.checkpoint(block, *args, use_reentrant=False)
    return block(*args)


def softmax_cache_chunks(window: int | None, sink: bool = True) -> int | None:
    """How many chunks' K/V a softmax block's stream cache holds once full: the first chunk (``sink``)
    and the last ``window``; None (unbounded) if ``window`` is None."""
    return None if window is None else window + sink


def timestep_embedding(t: Tensor, dim: int = 256, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding (N, dim) of timesteps (N,): cosines then sines."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class TimestepEmbedder(nn.Module):
    def __init__(self, hidden: int, freq_dim: int = 256) -> None:
        super().__init__()
        self.freq_dim = freq_dim
        self.linear_1 = nn.Linear(freq_dim, hidden)
        self.linear_2 = nn.Linear(hidden, hidden)

    def forward(self, t: Tensor) -> Tensor:
        return self.linear_2(F.silu(self.linear_1(timestep_embedding(t, self.freq_dim).to(self.linear_1.weight.dtype))))


class PatchEmbed(nn.Module):
    """(B, C, T, H, W) -> (B, T * h * w, hidden) with a strided 3-D conv."""

    def __init__(self, in_channels: int, hidden: int, patch: tuple[int, int, int]) -> None:
        super().__init__()
        self.proj = nn.Conv3d(in_channels, hidden, kernel_size=patch, stride=patch)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class CaptionEmbedder(nn.Module):
    def __init__(self, in_channels: int, hidden: int) -> None:
        super().__init__()
        self.y_proj = nn.Module()
        self.y_proj.fc1 = nn.Linear(in_channels, hidden)
        self.y_proj.fc2 = nn.Linear(hidden, hidden)

    def forward(self, y: Tensor) -> Tensor:
        return self.y_proj.fc2(F.gelu(self.y_proj.fc1(y), approximate="tanh"))


class CrossAttention(nn.Module):
    """Tokens attend to the prompt; ``mask`` (B, L) marks real prompt tokens (None: all of them)."""

    def __init__(self, hidden: int, heads: int, qk_norm: bool) -> None:
        super().__init__()
        self.heads = heads
        self.q_linear = nn.Linear(hidden, hidden)
        self.kv_linear = nn.Linear(hidden, 2 * hidden)
        self.proj = nn.Linear(hidden, hidden)
        self.q_norm = RMSNorm(hidden, eps=1e-6) if qk_norm else nn.Identity()
        self.k_norm = RMSNorm(hidden, eps=1e-6) if qk_norm else nn.Identity()

    def forward(self, x: Tensor, y: Tensor, mask: Tensor | None) -> Tensor:
        b, n, c = x.shape
        k, v = self.kv_linear(y).chunk(2, dim=-1)
        if mask is None and y.shape[1] == 1 and not torch.is_grad_enabled():
            # One key: its softmax weight is exactly 1, so every token receives its value (a world
            # without a text encoder attends to its one-token null prompt in every pass). Under autograd
            # the product runs, so the query's layers still get their (zero) gradients.
            return self.proj(v).expand(b, n, c)
        split = lambda z: z.reshape(b, -1, self.heads, c // self.heads).transpose(1, 2)  # noqa: E731
        q, k, v = split(self.q_norm(self.q_linear(x))), split(self.k_norm(k)), split(v)
        attn_mask = None if mask is None else mask.bool()[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class ConvLayer(nn.Module):
    """A 2-D conv kept under ``.conv`` (the release's parameter names)."""

    def __init__(self, cin: int, cout: int, kernel: int, groups: int = 1, bias: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, padding=kernel // 2, groups=groups, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class MixFFN(nn.Module):
    """GLUMBConv over each frame (1x1 conv -> 3x3 depthwise -> GLU -> 1x1) plus a residual conv over
    frames (``t_conv``, kernel t_kernel x 1, zero at initialisation).

    The frame conv works chunk by chunk, as the release's chunk-causal FFN: a frame sees its
    neighbours inside its chunk and the last frames before the chunk, never a later chunk (zeros
    there). With one chunk spanning the video it is the bidirectional model's plain conv.
    """

    def __init__(self, hidden: int, ratio: float, t_kernel: int) -> None:
        super().__init__()
        inner = int(hidden * ratio)
        self.reach = t_kernel // 2
        self.inverted_conv = ConvLayer(hidden, 2 * inner, 1)
        self.depth_conv = ConvLayer(2 * inner, 2 * inner, 3, groups=2 * inner)
        self.point_conv = ConvLayer(inner, hidden, 1, bias=False)
        self.t_conv = nn.Conv2d(hidden, hidden, kernel_size=(t_kernel, 1), padding=(t_kernel // 2, 0), bias=False)
        # depth_conv kept out of compiled graphs under autograd (SanaWMDiT.compile_blocks sets it), or None:
        # inductor runs its backward in another memory layout, 2.5x slower than eager on the CPU.
        self.depth_conv_eager: Callable | None = None

    def forward(self, x: Tensor, grid: tuple[int, int, int], chunks: list[tuple[int, int]],
                past: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """x (B, N, C). ``past`` (B, reach, h * w, C): the frames before the input (zeros if None).
        Returns the output and the new past."""
        b, n, c = x.shape
        t, h, w = grid
        r = self.reach
        # The 1x1 convs run as matmuls on the tokens (the same weights; much faster on small grids).
        inv, point = self.inverted_conv.conv, self.point_conv.conv
        # In place only without autograd: under it, torch keeps a copy of the input for the backward anyway.
        y = F.silu(F.linear(x, inv.weight[:, :, 0, 0], inv.bias), inplace=not torch.is_grad_enabled())  # (B, N, 2I)
        y = y.reshape(b * t, h, w, -1).permute(0, 3, 1, 2)
        y = self.depth_conv_eager(y) if self.depth_conv_eager is not None and torch.is_grad_enabled() else self.depth_conv(y)
        value, gate = y.permute(0, 2, 3, 1).reshape(b, n, -1).chunk(2, dim=-1)
        y = F.linear(value * F.silu(gate), point.weight[:, :, 0, 0]).reshape(b, t, h * w, c)
        before = y.new_zeros(b, r, h * w, c) if past is None else past.to(y.dtype)
        seq = torch.cat([before, y], dim=1)  # frame j of the input is seq[:, j + r]
        # The frame taps as one matmul, each channel's K taps side by side: (O, C, K, 1) is then (O, C * K) as stored.
        taps_weight = self.t_conv.weight.reshape(c, -1)
        out = []
        for start, end in chunks:
            window = torch.cat([seq[:, start : end + r], y.new_zeros(b, r, h * w, c)], dim=1)
            taps = torch.stack([window[:, j : j + end - start] for j in range(2 * r + 1)], dim=-1).flatten(-2)
            out.append(y[:, start:end] + F.linear(taps, taps_weight))
        y = torch.cat(out, dim=1) if len(out) > 1 else out[0]
        # Contiguous: the same strides after every chunk, so a compiled stream compiles once for them.
        return y.reshape(b, n, c), seq[:, t:].clone(memory_format=torch.contiguous_format)


@dataclass
class BlockCache:
    """A block's streaming memory: its attention cache and the FFN's last frames before t_conv."""

    attn: AttentionCache
    t_conv: Tensor


class Block(nn.Module):
    """adaLN-single block: self-attention (GDN or softmax, with the UCPE branch) -> Plucker residual
    -> cross-attention to the prompt -> Mix-FFN."""

    def __init__(self, cfg: DiTConfig, softmax: bool) -> None:
        super().__init__()
        c = cfg.hidden_size
        self.norm1 = nn.LayerNorm(c, elementwise_affine=False, eps=1e-6)
        self.attn = HybridAttention(c, cfg.linear_head_dim, cfg.conv_kernel_size, cfg.qk_norm, softmax=softmax)
        self.plucker_proj = nn.Linear(c, c)
        self.cross_attn = CrossAttention(c, cfg.num_attention_heads, cfg.cross_norm)
        self.norm2 = nn.LayerNorm(c, elementwise_affine=False, eps=1e-6)
        self.mlp = MixFFN(c, cfg.mlp_ratio, cfg.t_kernel_size)
        self.scale_shift_table = nn.Parameter(torch.randn(6, c) / c**0.5)
        # self.attn.forward and self.mlp.forward compiled (SanaWMDiT.compile_blocks), or None
        self.compiled_attn: Callable | None = None
        self.compiled_mlp: Callable | None = None

    def forward(self, x: Tensor, y: Tensor, y_mask: Tensor | None, mod: Tensor, ctx: AttentionContext, plucker: Tensor | None,
                cache: BlockCache | None = None) -> tuple[Tensor, BlockCache | None]:
        """x (B, N, C); mod (B, T, 6, C) per-frame modulation; plucker (B, N, C) or None. When
        streaming, ``cache`` holds the past and the returned cache includes this chunk."""
        b, n, c = x.shape
        t = ctx.grid[0]
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = (self.scale_shift_table + mod).unbind(2)
        per_frame = lambda z: z.reshape(b, t, -1, c)  # noqa: E731
        h = per_frame(self.norm1(x)) * (1 + scale_msa[:, :, None]) + shift_msa[:, :, None]
        compiled = self.compiled_attn is not None and torch.is_grad_enabled() and not ctx.streaming
        attend, ffn = (self.compiled_attn, self.compiled_mlp) if compiled else (self.attn, self.mlp)
        attn, attn_cache = attend(h.reshape(b, n, c), ctx, cache.attn if cache else None)
        x = x + (gate_msa[:, :, None] * per_frame(attn)).reshape(b, n, c)
        if plucker is not None:
            x = x + self.plucker_proj(plucker)
        x = x + self.cross_attn(x, y, y_mask)
        h = per_frame(self.norm2(x)) * (1 + scale_mlp[:, :, None]) + shift_mlp[:, :, None]
        mlp, tail = ffn(h.reshape(b, n, c), ctx.grid, ctx.chunks, cache.t_conv if cache else None)
        x = x + (gate_mlp[:, :, None] * per_frame(mlp)).reshape(b, n, c)
        return x, (BlockCache(attn_cache, tail) if ctx.streaming else None)


class FinalLayer(nn.Module):
    def __init__(self, hidden: int, patch: tuple[int, int, int], out_channels: int) -> None:
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden, math.prod(patch) * out_channels)
        self.scale_shift_table = nn.Parameter(torch.randn(2, hidden) / hidden**0.5)

    def forward(self, x: Tensor, t_emb: Tensor) -> Tensor:
        """x (B, N, C); t_emb (B, T, C)."""
        b, n, c = x.shape
        shift, scale = (self.scale_shift_table + t_emb[:, :, None]).unbind(2)
        h = self.norm_final(x).reshape(b, t_emb.shape[1], -1, c) * (1 + scale[:, :, None]) + shift[:, :, None]
        return self.linear(h.reshape(b, n, c))


@dataclass
class StreamState:
    """The DiT's memory of a video so far: the number of latent frames written and each block's
    cache (GDN states, conv tails, softmax K/V of the sink chunk and the recent window).

    ``frames`` is an int, or a CPU tensor (B,) when the batch's worlds are at different frames: they
    then stream at their own RoPE positions, and everything else in the state has the same shapes."""

    frames: int | Tensor
    blocks: list[BlockCache | None]

    def clone(self) -> StreamState:
        return StreamState(self.frames, _map_tensors(self.blocks, lambda t: t.clone()))

    def to(self, device: torch.device | str) -> StreamState:
        return StreamState(self.frames, _map_tensors(self.blocks, lambda t: t.to(device)))

    @property
    def empty(self) -> bool:
        """Nothing written yet (the state before a video's first chunk)."""
        return all(block is None for block in self.blocks)

    def shapes(self) -> tuple[tuple[int, ...], ...]:
        """Each tensor's shape past the batch dim: states whose shapes agree can be batched (``cat``)."""
        return tuple(tuple(t.shape[1:]) for t in _tensors(self.blocks))

    def select(self, index: Tensor | list[int]) -> StreamState:
        """The state of some of the batch's worlds (every tensor's leading dim is per world)."""
        index = torch.as_tensor(index, dtype=torch.long)
        frames = self.frames if isinstance(self.frames, int) else _frame_counts(self.frames[index])
        return StreamState(frames, _map_tensors(self.blocks, lambda t: t[index]))

    @staticmethod
    def cat(states: list[StreamState]) -> StreamState:
        """One state for the worlds of several states whose tensors have the same shapes (worlds past the
        same chunks, or all past the softmax window), at the same frame or not."""
        if len({s.shapes() for s in states}) != 1:
            raise ValueError(f"states must have the same shapes to batch them (worlds at frames {[s.frames for s in states]})")
        if all(isinstance(s.frames, int) for s in states) and len({s.frames for s in states}) == 1:
            frames = states[0].frames
        else:
            worlds = [_tensors(s.blocks)[0].shape[0] for s in states]
            frames = _frame_counts(torch.cat([torch.as_tensor(s.frames).expand(n) for s, n in zip(states, worlds)]))
        return StreamState(frames, _zip_tensors([s.blocks for s in states], lambda ts: torch.cat(ts)))

    def positions(self, frames: int, batch: int, device: torch.device | str | None = None) -> Tensor:
        """RoPE frame positions (B, T) of each world's next ``frames`` latent frames, on ``device``.
        Per world even where the worlds agree, so that a compiled pass has one graph for both."""
        start = torch.full((batch,), self.frames, device=device) if isinstance(self.frames, int) else self.frames.to(device)
        return start[:, None] + torch.arange(frames, device=device)

    def nbytes(self) -> int:
        """Bytes held by the state's tensors."""
        return sum(t.numel() * t.element_size() for t in _tensors(self.blocks))


def _frame_counts(frames: Tensor) -> int | Tensor:
    """Per-world frame counts (B,) as one int where they agree."""
    return int(frames[0]) if bool((frames == frames[0]).all()) else frames


def _tensors(obj) -> list[Tensor]:
    """Every tensor inside nested dataclasses / lists, in the order ``_map_tensors`` visits them."""
    if isinstance(obj, Tensor):
        return [obj]
    if isinstance(obj, list):
        return [t for o in obj for t in _tensors(o)]
    if obj is None or not hasattr(obj, "__dataclass_fields__"):
        return []
    return [t for name in obj.__dataclass_fields__ for t in _tensors(getattr(obj, name))]


def _map_tensors(obj, fn):
    """Apply ``fn`` to every tensor inside nested dataclasses / lists, building new containers."""
    if isinstance(obj, Tensor):
        return fn(obj)
    if isinstance(obj, list):
        return [_map_tensors(o, fn) for o in obj]
    if obj is None or not hasattr(obj, "__dataclass_fields__"):
        return obj
    return type(obj)(**{name: _map_tensors(getattr(obj, name), fn) for name in obj.__dataclass_fields__})


def _zip_tensors(objs: list, fn):
    """Combine parallel structures of tensors (as ``_map_tensors``) with ``fn(list of tensors)``."""
    first = objs[0]
    if isinstance(first, Tensor):
        return fn(objs)
    if isinstance(first, list):
        return [_zip_tensors(list(parts), fn) for parts in zip(*objs)]
    if first is None or not hasattr(first, "__dataclass_fields__"):
        return first
    return type(first)(**{name: _zip_tensors([getattr(o, name) for o in objs], fn) for name in first.__dataclass_fields__})


class SanaWMDiT(nn.Module):
    """The SANA-WM world-model DiT at any size (see ``model.config.DIT_SIZES``)."""

    def __init__(self, cfg: DiTConfig) -> None:
        super().__init__()
        self.config = cfg
        c, p = cfg.hidden_size, cfg.patch_size
        self.t_embedder = TimestepEmbedder(c)
        self.t_block = nn.Sequential(nn.SiLU(), nn.Linear(c, 6 * c))
        if cfg.y_norm:
            self.attention_y_norm = RMSNorm(c, eps=1e-5)
        self.x_embedder = PatchEmbed(cfg.in_channels, c, p)
        self.y_embedder = CaptionEmbedder(cfg.caption_channels, c)
        self.plucker_embedder = PatchEmbed(cfg.chunk_plucker_channels, c, p)
        # Unused by the forward (the release conditions through UCPE and Plucker maps instead); kept so
        # released checkpoints load strictly.
        self.raymap_embedder = PatchEmbed(3, c, p)
        self.blocks = nn.ModuleList([Block(cfg, cfg.is_softmax_block(i)) for i in range(cfg.num_layers)])
        self.final_layer = FinalLayer(c, p, cfg.in_channels)
        # Ours, not the release's: the prompt used when none is given (a model without a text encoder).
        self.null_prompt = nn.Parameter(torch.randn(1, cfg.null_prompt_length, cfg.caption_channels) * 0.02)
        self.gradient_checkpointing = False  # recompute each block in the backward (training on GPU)
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """From-scratch initialisation: camera branches and new residuals inert (the camera output
        projection and the Plucker embedding zero, their partners not, so gradients reach them), GDN
        starting as plain linear attention (write strength ~1, decay ~1), output layer zero (DiT)."""

        def basic(m: nn.Module) -> None:
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

        self.apply(basic)
        for emb in (self.x_embedder, self.raymap_embedder):
            w = emb.proj.weight
            nn.init.xavier_uniform_(w.view(w.shape[0], -1))
            nn.init.zeros_(emb.proj.bias)
        nn.init.normal_(self.t_embedder.linear_1.weight, std=0.02)
        nn.init.normal_(self.t_embedder.linear_2.weight, std=0.02)
        nn.init.normal_(self.t_block[1].weight, std=0.02)
        nn.init.zeros_(self.plucker_embedder.proj.weight)
        nn.init.zeros_(self.plucker_embedder.proj.bias)
        for block in self.blocks:
            a = block.attn
            nn.init.zeros_(a.out_proj_cam.weight)
            nn.init.zeros_(a.out_proj_cam.bias)
            with torch.no_grad():  # the camera branch starts as a copy of the main projections
                for i, cam in enumerate((a.q_proj_cam, a.k_proj_cam, a.v_proj_cam)):
                    cam.weight.copy_(a.qkv.weight[i * a.qkv.out_features // 3 : (i + 1) * a.qkv.out_features // 3])
                nn.init.zeros_(a.beta_proj.weight)
                nn.init.constant_(a.beta_proj.bias, 4.0)  # sigmoid(4) ~ 0.98
                nn.init.zeros_(a.gate_proj.weight)
                nn.init.zeros_(a.gate_proj.bias)
                a.A_log.zero_()
                a.dt_bias.fill_(-6.0)  # decay exp(-softplus(-6)) ~ 0.998 per frame
            if hasattr(a, "conv_k"):
                nn.init.zeros_(a.conv_k.weight)
                nn.init.zeros_(a.conv_k_cam.weight)
                with torch.no_grad():  # identity filter: the current frame only
                    a.conv_k.weight[:, 0, -1] = 1.0
                    a.conv_k_cam.weight[:, 0, -1] = 1.0
            nn.init.zeros_(block.mlp.t_conv.weight)
        nn.init.zeros_(self.final_layer.linear.weight)
        nn.init.zeros_(self.final_layer.linear.bias)

    def compile_blocks(self) -> None:
        """Train faster: each block's self-attention and Mix-FFN run through ``torch.compile`` in the
        forward with gradients over whole clips (``forward``, the training stages but self-forcing).

        Those hold a training step's small elementwise ops (GDN gates and scans, the UCPE branch,
        norms, the FFN's gates); inductor fuses them, forward and backward. Streaming and passes
        without gradients stay eager, so sampling and the env do not compile a graph per chunk shape.
        The first step compiles (1.5 minutes for ``small`` on a 2-core CPU; inductor's on-disk cache
        makes later runs start faster); the GDN blocks share their graphs and the softmax block has its own.
        """
        # On the CPU a C++ wrapper calls the graph's kernels instead of Python (3-4% of a step here).
        device = next(self.parameters()).device
        options = inductor_options(device) | ({"cpp_wrapper": True} if device.type == "cpu" else {})
        for block in self.blocks:
            block.mlp.depth_conv_eager = torch.compiler.disable(block.mlp.depth_conv.forward)
            block.compiled_attn = torch.compile(block.attn.forward, options=options)
            block.compiled_mlp = torch.compile(block.mlp.forward, options=options)

    # ---- forward -------------------------------------------------------------------------------

    def forward(
        self,
        latents: Tensor,
        timesteps: Tensor,
        prompt_embeds: Tensor | None = None,
        prompt_mask: Tensor | None = None,
        camera: Tensor | None = None,
        plucker: Tensor | None = None,
        mode: str = "bidirectional",
    ) -> Tensor:
        """Predict the flow-matching velocity.

        Args:
            latents: (B, C, T, H, W).
            timesteps: (B, T) per-frame diffusion time on the 0..1000 scale (0 = clean).
            prompt_embeds: (B, L, caption_channels); the learned null prompt if None.
            prompt_mask: (B, L), nonzero for real prompt tokens; all ones if None.
            camera: (B, T, 20) pose relative to the first frame (flattened 4x4) and (fx, fy, cx, cy)
                on the latent grid; no camera branch A if None.
            plucker: (B, 6 * temporal_stride, T, H, W) raw-frame Plucker maps; no branch B if None.
            mode: ``bidirectional`` or ``chunk_causal`` (chunks as ``model.chunks.chunk_bounds`` cuts them).

        Returns:
            velocity (B, C, T, H, W).
        """
        self._check_inputs(latents, timesteps, prompt_embeds, prompt_mask, camera, plucker, mode)
        x, grid, plucker_tokens, t_emb, mod, y, prompt_mask = self._embed(latents, timesteps, prompt_embeds, prompt_mask, plucker)
        ctx = self.attention_context(grid, camera, mode, latents.device)
        for block in self.blocks:
            x, _ = run_block(block, self.gradient_checkpointing, x, y, prompt_mask, mod, ctx, plucker_tokens)
        return self.unpatchify(self.final_layer(x, t_emb), grid)

    def _embed(self, latents, timesteps, prompt_embeds, prompt_mask, plucker):
        """Tokens (B, N, C), token grid, Plucker tokens, per-frame time embedding (B, T, C) and
        modulation (B, T, 6, C), embedded prompt and its mask (None: every prompt token counts)."""
        cfg = self.config
        b, _, t, hh, ww = latents.shape
        grid = (t, hh // cfg.patch_size[1], ww // cfg.patch_size[2])
        x = self.x_embedder(latents)
        plucker_tokens = None if plucker is None else self.plucker_embedder(plucker.to(x.dtype))
        t_emb = self.t_embedder(timesteps.reshape(-1)).reshape(b, t, -1)
        mod = self.t_block(t_emb).reshape(b, t, 6, -1)
        if prompt_embeds is None:
            prompt_embeds = self.null_prompt.expand(b, -1, -1)
        y = self.y_embedder(prompt_embeds.to(x.dtype))
        if cfg.y_norm:
            y = self.attention_y_norm(y)
        return x, grid, plucker_tokens, t_emb, mod, y, prompt_mask

    def empty_stream(self) -> StreamState:
        """The state before the first chunk of a video."""
        return StreamState(frames=0, blocks=[None] * len(self.blocks))

    def stream(
        self,
        latents: Tensor,
        timesteps: Tensor,
        state: StreamState,
        prompt_embeds: Tensor | None = None,
        prompt_mask: Tensor | None = None,
        camera: Tensor | None = None,
        plucker: Tensor | None = None,
        window: int | None = 1,
        sink: bool = True,
        stream_at: Callable | None = None,
    ) -> tuple[Tensor, StreamState]:
        """Velocity of the next chunk of a video given ``state``, and the state with this chunk
        written. ``state`` itself is not modified: denoising steps reuse it read-only and only the
        final (clean, timestep 0) pass's state is kept, which is how a streaming generator commits.

        Inputs are as in ``forward`` for the chunk's T_c latent frames; ``camera`` poses stay
        relative to the video's first frame. Softmax blocks keep the K/V of the first chunk (``sink``)
        and of the last ``window`` chunks (all of them if None), so the state stays fixed-size.
        Running all chunks this way with ``window=None`` equals ``forward(mode="chunk_causal")``.
        ``stream_at`` runs the pass (``self.stream_at`` if None; ``model.compiled`` gives a compiled one).
        """
        b, _, t, _, _ = self._check_inputs(latents, timesteps, prompt_embeds, prompt_mask, camera, plucker, "chunk_causal")
        if window is not None and window < 0:
            raise ValueError(f"window must be >= 0 chunks or None (unbounded), got {window}")
        velocity, caches = (stream_at or self.stream_at)(latents, timesteps, state.positions(t, b, latents.device), state.blocks,
                                                         prompt_embeds, prompt_mask, camera, plucker, window, sink)
        return velocity, StreamState(frames=state.frames + t, blocks=caches)

    def stream_at(self, latents: Tensor, timesteps: Tensor, positions: Tensor, caches: list[BlockCache | None],
                  prompt_embeds: Tensor | None, prompt_mask: Tensor | None, camera: Tensor | None, plucker: Tensor | None,
                  window: int | None, sink: bool) -> tuple[Tensor, list[BlockCache]]:
        """``stream``'s pass (which checks the inputs) on the blocks' caches, with each world's RoPE frame
        positions (B, T) as a tensor: a graph compiled from it serves the chunks at every frame (an int
        frame count would be baked into the graph, or become a symbol that a CUDA graph re-records for
        each value)."""
        x, grid, plucker_tokens, t_emb, mod, y, prompt_mask = self._embed(latents, timesteps, prompt_embeds, prompt_mask, plucker)
        ctx = self.attention_context(grid, camera, "chunk_causal", latents.device, frames=positions)
        new_caches, full = [], softmax_cache_chunks(window, sink)
        for block, cache in zip(self.blocks, caches):
            x, new = run_block(block, self.gradient_checkpointing, x, y, prompt_mask, mod, ctx, plucker_tokens, cache)
            a = new.attn
            for name in ("keys", "values", "keys_cam", "values_cam"):
                kept = getattr(a, name)
                if full is not None and len(kept) > full:
                    kept = (kept[:1] if sink else []) + (kept[len(kept) - window :] if window else [])
                setattr(a, name, kept)
            new_caches.append(new)
        return self.unpatchify(self.final_layer(x, t_emb), grid), new_caches

    def attention_context(self, grid: tuple[int, int, int], camera: Tensor | None, mode: str, device=None,
                          frames: Tensor | None = None) -> AttentionContext:
        """RoPE tables, ray frames and chunking shared by all blocks of one forward. ``frames``
        (absolute frame indices (T,), or (B, T) per world, for RoPE) marks a streamed chunk; 0..T-1 and the
        full layout if None."""
        cfg = self.config
        t, h, w = grid
        freqs = rope_freqs(cfg.linear_head_dim, t if frames is None else frames, h, w, cfg.rope_theta).to(device)
        if freqs.ndim == 4:  # per world: (B, 1, N, D / 2, 2), against (B, H, N, D / 2) head pairs
            freqs = freqs[:, None]
        chunks = chunk_bounds(t) if mode == "chunk_causal" and frames is None else [(0, t)]
        mats = inv = cam_freqs = None
        if camera is not None:
            mats = ray_frames(camera.float(), grid, cfg.patch_size)
            inv = se3_inverse(mats)
            cam_freqs = half_head_freqs(freqs, cfg.linear_head_dim)
        return AttentionContext(grid=grid, freqs=freqs, chunks=chunks, mode=mode, streaming=frames is not None,
                                ray_mats=mats, ray_mats_inv=inv, cam_freqs=cam_freqs)

    def unpatchify(self, x: Tensor, grid: tuple[int, int, int]) -> Tensor:
        """(B, N, pt * ph * pw * C) -> (B, C, T, H, W)."""
        b = x.shape[0]
        t, h, w = grid
        pt, ph, pw = self.config.patch_size
        c = self.config.in_channels
        x = x.reshape(b, t, h, w, pt, ph, pw, c).permute(0, 7, 1, 4, 2, 5, 3, 6)
        return x.reshape(b, c, t * pt, h * ph, w * pw)

    def _check_inputs(self, latents, timesteps, prompt_embeds, prompt_mask, camera, plucker, mode) -> tuple[int, ...]:
        cfg = self.config
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if latents.ndim != 5 or latents.shape[1] != cfg.in_channels:
            raise ValueError(f"latents must have shape (B, {cfg.in_channels}, T, H, W), got {tuple(latents.shape)}")
        b, _, t, h, w = latents.shape
        _, ph, pw = cfg.patch_size
        if h % ph or w % pw:
            raise ValueError(f"latent height and width must be divisible by the patch size {cfg.patch_size[1:]}, got {h} x {w}")
        if tuple(timesteps.shape) != (b, t):
            raise ValueError(f"timesteps must have shape (B, T) = {(b, t)}, got {tuple(timesteps.shape)}")
        if prompt_embeds is not None and (prompt_embeds.ndim != 3 or prompt_embeds.shape[0] != b or prompt_embeds.shape[2] != cfg.caption_channels):
            raise ValueError(f"prompt_embeds must have shape (B, L, {cfg.caption_channels}), got {tuple(prompt_embeds.shape)}")
        if prompt_mask is not None and (prompt_embeds is None or tuple(prompt_mask.shape) != tuple(prompt_embeds.shape[:2])):
            raise ValueError("prompt_mask must have shape (B, L) of prompt_embeds (and needs prompt_embeds)")
        if camera is not None and tuple(camera.shape) != (b, t, 20):
            raise ValueError(f"camera must have shape (B, T, 20) = {(b, t, 20)}, got {tuple(camera.shape)}")
        if plucker is not None and tuple(plucker.shape) != (b, cfg.chunk_plucker_channels, t, h, w):
            raise ValueError(f"plucker must have shape (B, {cfg.chunk_plucker_channels}, T, H, W) = {(b, cfg.chunk_plucker_channels, t, h, w)}, got {tuple(plucker.shape)}")
        return b, cfg.in_channels, t, h, w

    # ---- loading -------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, path: str | Path, config: DiTConfig | None = None) -> SanaWMDiT:
        """Load weights strictly from a folder written by the reference's ``save_pretrained``
        (``config.json`` + safetensors, possibly sharded) or from an official ``.pth`` /
        ``.safetensors`` state dict (then ``config`` gives the size; ``paper`` if None)."""
        from .checkpoint_io import load_state_dict, reference_config

        path = Path(path)
        if path.is_dir():
            config = config or reference_config(path / "config.json")
        model = cls(config or DiTConfig())
        model.load_reference_state_dict(load_state_dict(path), source=str(path))
        return model

    def load_reference_state_dict(self, state: dict[str, Tensor], source: str = "release state dict") -> None:
        """Load a release state dict strictly: any missing or unexpected key is an error that lists
        them. The release's ``pos_embed`` buffer is dropped, and ``null_prompt`` (ours) may be absent."""
        from .checkpoint_io import load_strict

        load_strict(self, {k: v for k, v in state.items() if k != "pos_embed"}, allow_missing={"null_prompt"}, source=source)
