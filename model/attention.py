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
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from .gdn import GDNState, frame_gdn
from .norms import RMSNorm
from .rope import apply_rope
from .ucpe import match_rms, ucpe_transform

Tensor = torch.Tensor


@dataclass
class AttentionContext:
    """What every block's attention needs besides its input, computed once per forward.

    ``chunks`` are frame ranges of the input: [(0, T)] for the bidirectional model, the chunk layout
    for the chunk-causal one, and [(0, T)] for one streamed chunk (``streaming``), whose past comes
    from the block caches.
    """

    grid: tuple[int, int, int]  # token grid (T, h, w) of the input
    freqs: Tensor  # (N, D / 2, 2) RoPE rotations (cos, sin) of the main branch; (B, 1, N, D / 2, 2) per world
    chunks: list[tuple[int, int]]
    mode: str = "bidirectional"  # bidirectional | chunk_causal
    streaming: bool = False
    ray_mats: Tensor | None = None  # (B, N, 4, 4) ray<-world transforms; None: no camera branch
    ray_mats_inv: Tensor | None = None  # (B, N, 4, 4) their inverses, world<-ray
    cam_freqs: Tensor | None = None  # (N, D / 4, 2) (or per world) RoPE rotations of the camera branch


@dataclass
class AttentionCache:
    """What one attention layer carries from chunk to chunk when streaming (all fixed-size except
    the softmax K/V lists, which the caller trims to a sink and a window of chunks)."""

    gdn: GDNState | None = None  # main-branch recurrent state
    gdn_cam: GDNState | None = None  # camera-branch state (numerator only)
    conv_k: Tensor | None = None  # (B, K - 1, S, C) last pre-conv key frames
    conv_k_cam: Tensor | None = None
    keys: list[Tensor] = field(default_factory=list)  # softmax: (B, H, N_chunk, D) per cached chunk, post-RoPE
    values: list[Tensor] = field(default_factory=list)
    keys_cam: list[Tensor] = field(default_factory=list)  # camera branch, post-UCPE
    values_cam: list[Tensor] = field(default_factory=list)


def _short_conv_taps(num_frames: int, kernel_size: int, chunks: list[tuple[int, int]]):
    """The filter's taps as (weight index, output frames, input positions in ``seq``) triples: frame
    ranges of the output that read one shifted range of ``seq`` (the K - 1 past frames, then the input)."""
    k, t = kernel_size, num_frames
    taps = [(k - 1, 0, t, k - 1)]  # the centre tap: output frames [0, T) read seq[K - 1 : K - 1 + T]
    taps += [(k - 1 - d, 0, t, k - 1 - d) for d in range(1, k)]  # causal: frame i reads i - d
    for start, end in chunks:  # anti-causal, inside each chunk: frame i reads i + d
        taps += [(k - 1 - d, start, end - d, k - 1 + start + d) for d in range(1, min(k, end - start))]
    return taps


class _ShortConv(torch.autograd.Function):
    """``TemporalShortConv``'s filter with a hand-written backward: every tap is one multiply-add over
    whole frames, forward and backward, where autograd would keep a zero-filled copy of the padded
    sequence for each tap's slice."""

    @staticmethod
    def forward(ctx, seq: Tensor, weight: Tensor, taps: list) -> Tensor:
        """seq (B, K - 1 + T, S, C), weight (C, K) -> (B, T, S, C). The first tap covers every output frame."""
        (w, _, t, src), *rest = taps
        out = seq[:, src : src + t] * weight[:, w]
        for w, start, end, src in rest:
            out[:, start:end].addcmul_(seq[:, src : src + end - start], weight[:, w])
        ctx.save_for_backward(seq, weight)
        ctx.taps = taps
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        seq, weight = ctx.saved_tensors
        d_seq = torch.zeros_like(seq) if ctx.needs_input_grad[0] else None
        d_weight = torch.zeros_like(weight) if ctx.needs_input_grad[1] else None
        for w, start, end, src in ctx.taps:
            g = grad[:, start:end]
            if d_seq is not None:
                d_seq[:, src : src + end - start].addcmul_(g, weight[:, w])
            if d_weight is not None:
                d_weight[:, w] += (g * seq[:, src : src + end - start]).sum((0, 1, 2))
        return d_seq, d_weight, None


class TemporalShortConv(nn.Module):
    """Depthwise conv over frames on each token position, kernel ``[w_0 .. w_{K-1}]`` (K frames).

    Causal part: y[t] = sum_j w_j x[t - K + 1 + j] over all frames (``past`` supplies the frames
    before the input). Anti-causal part: the same kernel mirrored, y[t] += w_{K-1-d} x[t + d] for
    d >= 1, inside each chunk only (the shared centre tap counted once). With one chunk spanning the
    sequence this is the release's symmetric filter of the bidirectional model.
    """

    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.weight = nn.Parameter(torch.zeros(channels, 1, kernel_size))

    def forward(self, x: Tensor, num_frames: int, chunks: list[tuple[int, int]], past: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """x (B, T * S, C), frame-major; ``past`` (B, K - 1, S, C) the frames before the input (zeros
        if None). Returns the filtered tokens and the new past."""
        b, n, c = x.shape
        k, t = self.kernel_size, num_frames
        frames = x.reshape(b, t, n // t, c)
        before = frames.new_zeros(b, k - 1, n // t, c) if past is None else past.to(x.dtype)
        seq = torch.cat([before, frames], dim=1)  # input frame i is seq[:, i + K - 1]
        out = _ShortConv.apply(seq, self.weight[:, 0].to(x.dtype), _short_conv_taps(t, k, chunks))
        # Contiguous: the same strides after every chunk, so a compiled stream compiles once for them.
        return out.reshape(b, n, c), seq[:, t:].clone(memory_format=torch.contiguous_format)


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
        self.q_norm = RMSNorm(c, eps=norm_eps) if qk_norm else nn.Identity()
        self.k_norm = RMSNorm(c, eps=norm_eps) if qk_norm else nn.Identity()
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
        self.q_norm_cam = RMSNorm(c, eps=norm_eps) if qk_norm else nn.Identity()
        self.k_norm_cam = RMSNorm(c, eps=norm_eps) if qk_norm else nn.Identity()
        if not softmax:
            self.conv_k = TemporalShortConv(c, conv_kernel_size)
            self.conv_k_cam = TemporalShortConv(c, conv_kernel_size)

    def _heads(self, x: Tensor) -> Tensor:
        """(B, N, C) -> (B, H, N, D)."""
        b, n, _ = x.shape
        return x.reshape(b, n, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x: Tensor, ctx: AttentionContext, cache: AttentionCache | None = None) -> tuple[Tensor, AttentionCache | None]:
        """x (B, N, C) with N = T * h * w tokens, frame-major. When streaming, ``cache`` (possibly
        empty) holds the past and the returned cache includes the input chunk."""
        b, n, c = x.shape
        t = ctx.grid[0]
        new = AttentionCache() if ctx.streaming else None
        past = cache or AttentionCache()
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        if not self.softmax:
            k, conv_past = self.conv_k(k, t, ctx.chunks, past.conv_k)
        q, k, v = self._heads(self.q_norm(q)), self._heads(self.k_norm(k)), self._heads(v)

        gates = None
        if not self.softmax:
            beta = self.beta_proj(x).sigmoid().transpose(1, 2).reshape(b, self.heads, t, -1)  # (B, H, T, S)
            frame_mean = x.reshape(b, t, -1, c).mean(2)
            gamma = torch.exp(-self.A_log.float().exp() * F.softplus(self.gate_proj(frame_mean).float() + self.dt_bias.float()))
            gates = (beta, gamma.transpose(1, 2))  # gamma (B, H, T)
            q, k = F.relu(q), F.relu(k)
            k = k * (self.head_dim * (n // t)) ** -0.5
            out, state = self._scan(q, k, v, apply_rope(q, ctx.freqs), apply_rope(k, ctx.freqs), *gates, ctx, past.gdn, True)
            if new is not None:
                new.gdn, new.conv_k = state, conv_past
        else:
            k = apply_rope(k, ctx.freqs)
            out = self._sdpa(apply_rope(q, ctx.freqs), k, v, ctx, self.head_dim**-0.5, past.keys, past.values, x.dtype)
            if new is not None:
                new.keys, new.values = past.keys + [k], past.values + [v]
        out = out.transpose(1, 2).reshape(b, n, c)

        if ctx.ray_mats is not None:
            out = out + self.out_proj_cam(self._camera(x, ctx, gates, past, new).to(x.dtype))
        out = out * F.silu(self.output_gate(x).float())
        return self.proj(out.to(x.dtype)), new

    def _camera(self, x: Tensor, ctx: AttentionContext, gates, past: AttentionCache, new: AttentionCache | None) -> Tensor:
        """The UCPE branch: (B, N, C) in world space, before ``out_proj_cam``."""
        b, n, c = x.shape
        t = ctx.grid[0]
        q, k, v = self.q_proj_cam(x), self.k_proj_cam(x), self.v_proj_cam(x)
        if not self.softmax:
            k, conv_past = self.conv_k_cam(k, t, ctx.chunks, past.conv_k_cam)
        q, k, v = self._heads(self.q_norm_cam(q)), self._heads(self.k_norm_cam(k)), self._heads(v)
        if not self.softmax:
            q, k = F.relu(q), F.relu(k)
            k = k * (self.head_dim * (n // t)) ** -0.5  # scaled before the transform, as the main branch
        mats, inv = ctx.ray_mats, ctx.ray_mats_inv
        q_ray = match_rms(q, ucpe_transform(q, mats.transpose(-1, -2), ctx.cam_freqs))
        k_ray = match_rms(k, ucpe_transform(k, inv, ctx.cam_freqs))
        v_ray = match_rms(v, ucpe_transform(v, inv, ctx.cam_freqs))
        if self.softmax:
            out = self._sdpa(q_ray, k_ray, v_ray, ctx, _softmax_scale(self.head_dim), past.keys_cam, past.values_cam, x.dtype)
            if new is not None:
                new.keys_cam, new.values_cam = past.keys_cam + [k_ray], past.values_cam + [v_ray]
        else:
            beta, gamma = gates
            # The transform can still add key energy; the release discounts the write strength by it.
            inflation = (k_ray.norm(dim=-1).clamp_min(1e-6) / k.norm(dim=-1).clamp_min(1e-6)) ** 2  # (B, H, N)
            frame_inflation = inflation.reshape(b, self.heads, t, -1).mean(-1, keepdim=True)
            beta = beta / frame_inflation.clamp_min(1.0)
            out, state = self._scan(q_ray, k_ray, v_ray, q_ray, k_ray, beta, gamma, ctx, past.gdn_cam, False)
            if new is not None:
                new.gdn_cam, new.conv_k_cam = state, conv_past
        out = ucpe_transform(out, mats, ctx.cam_freqs, inverse_rope=True)  # back to world space
        return out.transpose(1, 2).reshape(b, n, c)

    def _scan(self, q, k, v, q_rot, k_rot, beta, gamma, ctx: AttentionContext, state: GDNState | None,
              with_denominator: bool) -> tuple[Tensor, GDNState]:
        """frame_gdn on (B, H, N, D) tensors; returns (B, H, N, D) fp32 and the forward state."""
        b, h, n, d = q.shape
        t = ctx.grid[0]
        frames = lambda y: y.reshape(b, h, t, n // t, y.shape[-1])  # noqa: E731
        mode = "bidirectional" if ctx.mode == "bidirectional" and not ctx.streaming else "chunk_causal"
        out, state = frame_gdn(frames(q), frames(k), frames(v), frames(q_rot), frames(k_rot), beta, gamma, mode=mode,
                               state=state, with_denominator=with_denominator, chunks=ctx.chunks, eps=self.eps)
        return out.reshape(b, h, n, -1), state

    def _sdpa(self, q: Tensor, k: Tensor, v: Tensor, ctx: AttentionContext, scale: float,
              past_k: list[Tensor], past_v: list[Tensor], dtype: torch.dtype) -> Tensor:
        """Softmax attention on (B, H, N, D) in the model's precision ``dtype``: over the cached chunks
        and the input when streaming, masked by chunk in the chunk-causal mode, full otherwise.

        A half-precision model attends in half precision, as the release does (it casts to bf16 in
        every precision), so that a GPU runs its flash kernel: in fp32 SDPA falls back to kernels
        without tensor cores, many times slower, which at the paper's size would make attention (a
        tenth of a streamed pass's FLOPs) outlast all the linear layers. An fp32 model attends in
        fp32 (exact against the reference with its bf16 rounding switched off,
        ``tests/test_dit_parity.py``)."""
        n = q.shape[2]
        mask = None
        if ctx.streaming:
            k, v = torch.cat(past_k + [k], dim=2), torch.cat(past_v + [v], dim=2)
        elif ctx.mode == "chunk_causal":
            frame_chunk = torch.empty(ctx.grid[0], dtype=torch.long)
            for i, (start, end) in enumerate(ctx.chunks):
                frame_chunk[start:end] = i
            token_chunk = frame_chunk.repeat_interleave(n // ctx.grid[0]).to(q.device)
            mask = token_chunk[:, None] >= token_chunk[None, :]
        return F.scaled_dot_product_attention(q.to(dtype), k.to(dtype), v.to(dtype), attn_mask=mask, scale=scale)
