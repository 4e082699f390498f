"""Self-attention of a SANA-WM block: frame-wise GDN or softmax, each with its UCPE camera branch.

Both kinds share one parameter layout (the release's names), so one checkpoint loads into either:
``qkv``, ``proj``, ``q_norm``/``k_norm`` (RMSNorm over the full width), the GDN gates ``beta_proj``,
``gate_proj``, ``A_log``, ``dt_bias`` (present but unused in softmax blocks), ``output_gate``, the key
short conv ``conv_k`` (GDN only), and the camera branch ``q/k/v_proj_cam``, ``q/k_norm_cam``,
``out_proj_cam``, ``conv_k_cam`` (GDN only). Both branches share beta, gamma, the output gate and
``proj``:  out = proj((main + out_proj_cam(cam)) * silu(output_gate(x))).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .camera import se3_inverse
from .gdn import frame_gdn
from .rope import apply_rope
from .ucpe import match_rms, ucpe_transform

Tensor = torch.Tensor


@dataclass
class AttentionContext:
    """What every block's attention needs besides its input, computed once per forward."""

    grid: tuple[int, int, int]  # token grid (T, h, w)
    freqs: Tensor  # (N, D / 2) RoPE rotations of the main branch
    mode: str = "bidirectional"  # or "chunk_causal"
    chunks: list[tuple[int, int]] | None = None  # frame ranges in chunk_causal mode
    ray_mats: Tensor | None = None  # (B, N, 4, 4) ray<-world transforms; None: no camera branch
    cam_freqs: Tensor | None = None  # (N, D / 4) RoPE rotations of the camera branch


class TemporalShortConv(nn.Module):
    """Depthwise conv over frames on each token position, kernel ``[w_0 .. w_{K-1}]`` (K frames).

    The causal filter is y[t] = sum_j w_j x[t - K + 1 + j]. The bidirectional model runs it forwards
    and backwards and counts the shared centre tap once, giving a symmetric window of 2K - 1 frames.
    """

    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.weight = nn.Parameter(torch.zeros(channels, 1, kernel_size))

    def _causal(self, x: Tensor) -> Tensor:
        """x (B', T, C) -> (B', T, C)."""
        t = x.shape[1]
        y = F.conv1d(x.transpose(1, 2), self.weight.to(x.dtype), groups=x.shape[-1], padding=self.kernel_size - 1)
        return y[..., :t].transpose(1, 2)

    def forward(self, x: Tensor, num_frames: int, bidirectional: bool = True) -> Tensor:
        """x (B, T * S, C), frame-major tokens."""
        b, n, c = x.shape
        s = n // num_frames
        seq = x.reshape(b, num_frames, s, c).transpose(1, 2).reshape(b * s, num_frames, c)
        y = self._causal(seq)
        if bidirectional:
            y = y + self._causal(seq.flip(1)).flip(1) - seq * self.weight[:, 0, -1].to(x.dtype)
        return y.reshape(b, s, num_frames, c).transpose(1, 2).reshape(b, n, c)


def _softmax_scale(head_dim: int) -> float:
    # The release pads camera heads to a FlashAttention size (128 or 256) and lets SDPA take its
    # default scale from the padded size; trained weights expect that temperature.
    padded = head_dim if head_dim in (32, 64, 128, 256) or head_dim >= 256 else (128 if head_dim <= 128 else 256)
    return 1.0 / math.sqrt(padded)


class HybridAttention(nn.Module):
    """Dual-branch self-attention: frame-wise GDN (``softmax=False``) or softmax (``softmax=True``)."""

    def __init__(self, hidden_size: int, head_dim: int, conv_kernel_size: int = 4, qk_norm: bool = True,
                 softmax: bool = False, eps: float = 1e-15, norm_eps: float = 1e-5) -> None:
        super().__init__()
        self.softmax = softmax
        self.heads = hidden_size // head_dim
        self.head_dim = head_dim
        self.eps = eps
        c = hidden_size
        self.qkv = nn.Linear(c, 3 * c, bias=False)
        self.proj = nn.Linear(c, c)
        self.q_norm = nn.RMSNorm(c, eps=norm_eps) if qk_norm else nn.Identity()
        self.k_norm = nn.RMSNorm(c, eps=norm_eps) if qk_norm else nn.Identity()
        self.beta_proj = nn.Linear(c, self.heads)
        self.gate_proj = nn.Linear(c, self.heads)
        self.A_log = nn.Parameter(torch.zeros(self.heads))
        self.dt_bias = nn.Parameter(torch.zeros(self.heads))
        self.register_buffer("recall_gate", torch.zeros(1))  # unused; part of the release's checkpoints
        self.output_gate = nn.Linear(c, c)
        self.q_proj_cam = nn.Linear(c, c)
        self.k_proj_cam = nn.Linear(c, c)
        self.v_proj_cam = nn.Linear(c, c)
        self.out_proj_cam = nn.Linear(c, c)
        self.q_norm_cam = nn.RMSNorm(c, eps=norm_eps) if qk_norm else nn.Identity()
        self.k_norm_cam = nn.RMSNorm(c, eps=norm_eps) if qk_norm else nn.Identity()
        if not softmax:
            self.conv_k = TemporalShortConv(c, conv_kernel_size)
            self.conv_k_cam = TemporalShortConv(c, conv_kernel_size)

    def _heads(self, x: Tensor) -> Tensor:
        """(B, N, C) -> (B, H, N, D)."""
        b, n, _ = x.shape
        return x.reshape(b, n, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x: Tensor, ctx: AttentionContext) -> Tensor:
        """x (B, N, C) with N = T * h * w tokens, frame-major."""
        b, n, c = x.shape
        t = ctx.grid[0]
        bidirectional = ctx.mode == "bidirectional"
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        if not self.softmax:
            k = self.conv_k(k, t, bidirectional)
        q, k, v = self._heads(self.q_norm(q)), self._heads(self.k_norm(k)), self._heads(v)

        gates = None
        if not self.softmax:
            beta = self.beta_proj(x).sigmoid().transpose(1, 2).reshape(b, self.heads, t, -1)  # (B, H, T, S)
            frame_mean = x.reshape(b, t, -1, c).mean(2)
            gamma = torch.exp(-self.A_log.float().exp() * F.softplus(self.gate_proj(frame_mean).float() + self.dt_bias.float()))
            gates = (beta, gamma.transpose(1, 2))  # gamma (B, H, T)
            out = self._gdn(F.relu(q), F.relu(k), v, ctx, gates, ctx.freqs, numerator_only=False)
        else:
            out = self._sdpa(apply_rope(q, ctx.freqs), apply_rope(k, ctx.freqs), v, ctx, scale=self.head_dim**-0.5)
            out = out.transpose(1, 2).reshape(b, n, c)

        if ctx.ray_mats is not None:
            out = out + self.out_proj_cam(self._camera(x, ctx, gates))
        out = out * F.silu(self.output_gate(x).float())
        return self.proj(out.to(x.dtype))

    def _camera(self, x: Tensor, ctx: AttentionContext, gates) -> Tensor:
        """The UCPE branch: (B, N, C) in world space, before ``out_proj_cam``."""
        b, n, c = x.shape
        t = ctx.grid[0]
        q, k, v = self.q_proj_cam(x), self.k_proj_cam(x), self.v_proj_cam(x)
        if not self.softmax:
            k = self.conv_k_cam(k, t, ctx.mode == "bidirectional")
        q, k, v = self._heads(self.q_norm_cam(q)), self._heads(self.k_norm_cam(k)), self._heads(v)
        if not self.softmax:
            q, k = F.relu(q), F.relu(k)
            k = k * (self.head_dim * (n // t)) ** -0.5  # scaled before the transform, as the main branch
        mats = ctx.ray_mats
        q_ray = match_rms(q, ucpe_transform(q, mats.transpose(-1, -2), ctx.cam_freqs))
        inv = se3_inverse(mats)
        k_ray = match_rms(k, ucpe_transform(k, inv, ctx.cam_freqs))
        v_ray = match_rms(v, ucpe_transform(v, inv, ctx.cam_freqs))
        if self.softmax:
            out = self._sdpa(q_ray, k_ray, v_ray, ctx, scale=_softmax_scale(self.head_dim))
        else:
            beta, gamma = gates
            # The transform can still add key energy; the release discounts the write strength by it.
            inflation = (k_ray.norm(dim=-1).clamp_min(1e-6) / k.norm(dim=-1).clamp_min(1e-6)) ** 2  # (B, H, N)
            frame_inflation = inflation.reshape(b, self.heads, t, -1).mean(-1, keepdim=True)
            beta = beta / frame_inflation.clamp_min(1.0)
            out = self._scan(q_ray, k_ray, v_ray, q_ray, k_ray, beta, gamma, ctx, with_denominator=False)
        out = ucpe_transform(out, mats, ctx.cam_freqs, inverse_rope=True)  # back to world space
        return out.transpose(1, 2).reshape(b, n, c)

    def _gdn(self, q: Tensor, k: Tensor, v: Tensor, ctx: AttentionContext, gates, freqs: Tensor, numerator_only: bool) -> Tensor:
        b, h, n, d = q.shape
        t = ctx.grid[0]
        k = k * (d * (n // t)) ** -0.5
        out = self._scan(q, k, v, apply_rope(q, freqs), apply_rope(k, freqs), *gates, ctx, with_denominator=not numerator_only)
        return out.transpose(1, 2).reshape(b, n, h * d)

    def _scan(self, q, k, v, q_rot, k_rot, beta, gamma, ctx: AttentionContext, with_denominator: bool) -> Tensor:
        """Run frame_gdn on (B, H, N, D) tensors; returns (B, H, N, D) fp32."""
        b, h, n, d = q.shape
        t = ctx.grid[0]
        frames = lambda y: y.reshape(b, h, t, n // t, y.shape[-1])  # noqa: E731
        out, _ = frame_gdn(frames(q), frames(k), frames(v), frames(q_rot), frames(k_rot), beta, gamma,
                           mode=ctx.mode, with_denominator=with_denominator, chunks=ctx.chunks, eps=self.eps)
        return out.reshape(b, h, n, -1)

    def _sdpa(self, q: Tensor, k: Tensor, v: Tensor, ctx: AttentionContext, scale: float) -> Tensor:
        """Softmax attention on (B, H, N, D) in fp32, chunk-causal where the mode asks for it."""
        n = q.shape[2]
        mask = None
        if ctx.mode == "chunk_causal":
            frame_chunk = torch.empty(ctx.grid[0], dtype=torch.long)
            for i, (start, end) in enumerate(ctx.chunks):
                frame_chunk[start:end] = i
            token_chunk = frame_chunk.repeat_interleave(n // ctx.grid[0]).to(q.device)
            mask = token_chunk[:, None] >= token_chunk[None, :]
        return F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=mask, scale=scale)
