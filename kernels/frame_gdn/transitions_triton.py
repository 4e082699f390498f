"""Triton kernels of the transition form (``transitions.py``): the bidirectional scan without gradients
in three phases, parallel over frames where the fused kernels (``fused_recurrent.py``) walk frames and
tokens in sequence.

1. ``_transitions_kernel``, one program per (row block, frame): the products over a frame's S tokens,
   A_t = K~^T diag(beta) K~ and B_t = (beta V)^T K~ in one launch (K~ and V stacked as one left operand
   against K~), then Az_t = K^T diag(beta) K and c_t = K^T beta for the normaliser, as D x D matrices.
2. ``_scan_kernel``, one program per (row block of the state, batch x head, direction): the forward
   scan from the carried state or the exclusive reverse scan (restarting at ``resets``),
   kv <- gamma (kv - kv A_t) + B_t, only D x D products in the loop over frames; each writes its read
   state of every frame, the forward one also its final state.
3. ``_read_kernel``, one program per (frame, token block): num = Q~ R_t^T, den = Q z_t with R_t and z_t
   the sums of the two directions' reads, out = num / den.

At the paper's sizes (S = 880, D = 112) almost all the arithmetic is in phases 1 and 3, spread over
every frame at once; the fused kernel runs one program per (value block, batch x head) through every
token of every frame, which leaves most of a GPU idle at batch 1 (24x to 34x from the floor on an H100 and
an H200, RESULTS.md). Each input is read from memory about once (a frame's row blocks run side by side,
so their repeated reads of its tokens hit the L2 cache); the D x D matrices and the two directions'
read states add a few T D^2 floats a head, small beside the T S D of the tokens.

Not yet the CUDA path of ``bidirectional_scan``: checked under the interpreter and in a GPU-only bf16
test, it waits for ``benchmarks/gdn.py`` on a GPU (its ``triton transitions`` row against ``triton``,
the fused kernels) to say at which sizes it is faster.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .fused_recurrent import _pow2, _precision

Tensor = torch.Tensor


@triton.jit
def _transitions_kernel(p_left1, p_left2, p_right, p_beta, p_out1, p_out2, p_sum, S, L1, L2, K,
                        BS: tl.constexpr, BR: tl.constexpr, BK: tl.constexpr, WITH_SUM: tl.constexpr,
                        PREC: tl.constexpr):
    """For the program's rows r of the stacked left operand [left1 | left2] (L1 + L2 columns):
    out[f, r, k] = sum_s beta[f, s] left[f, s, r] right[f, s, k], rows of left1 into out1 and of
    left2 into out2; sum[f, r] = sum_s beta[f, s] left1[f, s, r] (c_t of the normaliser)."""
    i_r, i_f = tl.program_id(0), tl.program_id(1)  # row blocks of a frame run side by side: its tokens stay in L2
    o_r = i_r * BR + tl.arange(0, BR)
    o_k = tl.arange(0, BK)
    m_1, m_2, m_k = o_r < L1, (o_r >= L1) & (o_r < L1 + L2), o_k < K
    acc = tl.zeros([BR, BK], dtype=tl.float32)
    b_sum = tl.zeros([BR], dtype=tl.float32)
    for s0 in range(0, S, BS):
        o_s = s0 + tl.arange(0, BS)
        m_s = o_s < S
        tok = i_f * S + o_s
        b_b = tl.load(p_beta + tok, mask=m_s, other=0.0).to(tl.float32)
        b_l = tl.load(p_left1 + tok[:, None] * L1 + o_r[None, :], mask=m_s[:, None] & m_1[None, :], other=0.0).to(tl.float32)
        b_l += tl.load(p_left2 + tok[:, None] * L2 + (o_r - L1)[None, :], mask=m_s[:, None] & m_2[None, :], other=0.0).to(tl.float32)
        b_l = b_l * b_b[:, None]
        b_x = tl.load(p_right + tok[:, None] * K + o_k[None, :], mask=m_s[:, None] & m_k[None, :], other=0.0).to(tl.float32)
        acc += tl.dot(tl.trans(b_l), b_x, input_precision=PREC)
        if WITH_SUM:
            b_sum += tl.sum(b_l, axis=0)
    tl.store(p_out1 + (i_f * L1 + o_r[:, None]) * K + o_k[None, :], acc, mask=m_1[:, None] & m_k[None, :])
    tl.store(p_out2 + (i_f * L2 + (o_r - L1)[:, None]) * K + o_k[None, :], acc, mask=m_2[:, None] & m_k[None, :])
    if WITH_SUM:
        tl.store(p_sum + i_f * L1 + o_r, b_sum, mask=m_1)


@triton.jit
def _scan_kernel(p_m, p_c, p_gamma, p_resets, p_init, p_read, p_final, T, L, K, F,
                 BR: tl.constexpr, BK: tl.constexpr, HAS_INIT: tl.constexpr, PREC: tl.constexpr):
    """States x (L x K, this program's rows) of x <- gamma_t (x - x M_t) + C_t, one direction per
    program: the forward scan from ``p_init`` reads each frame's state after its write and stores the
    final state; the reverse scan from zero reads it before the write and restarts at ``p_resets``.
    read[d, f] is direction d's read of frame f (the two directions run side by side: half the
    frames in sequence of one program doing both)."""
    i_r, i_bh, rev = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    o_r = i_r * BR + tl.arange(0, BR)
    o_k = tl.arange(0, BK)
    m_x = (o_r < L)[:, None] & (o_k < K)[None, :]
    m_m = (o_k < K)[:, None] & (o_k < K)[None, :]
    o_x = o_r[:, None] * K + o_k[None, :]  # a state's rows within its L x K matrix
    o_m = o_k[:, None] * K + o_k[None, :]
    m_fwd = m_x & ((tl.zeros([BR, BK], dtype=tl.int32) + rev) == 0)  # the forward program's states
    b_x = tl.zeros([BR, BK], dtype=tl.float32)
    if HAS_INIT:
        b_x = tl.load(p_init + i_bh * L * K + o_x, mask=m_fwd, other=0.0)
    p_dir = p_read + rev * F * L * K
    for j in range(T):
        t = j + rev * (T - 1 - 2 * j)  # frame j forward, T - 1 - j in reverse
        f = i_bh * T + t
        b_x = b_x * (1.0 - rev * tl.load(p_resets + t).to(tl.float32))
        before = b_x
        g = tl.load(p_gamma + f).to(tl.float32)
        b_m = tl.load(p_m + f * K * K + o_m, mask=m_m, other=0.0)
        b_c = tl.load(p_c + f * L * K + o_x, mask=m_x, other=0.0)
        b_x = g * (b_x - tl.dot(b_x, b_m, input_precision=PREC)) + b_c
        tl.store(p_dir + f * L * K + o_x, tl.where(rev == 1, before, b_x), mask=m_x)
    tl.store(p_final + i_bh * L * K + o_x, b_x, mask=m_fwd)


@triton.jit
def _read_kernel(p_qr, p_q, p_r, p_z, p_out, S, K, V, F, eps,
                 BS: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, WITH_DEN: tl.constexpr, PREC: tl.constexpr):
    """out[f, s] = (q_rot[f, s] R_f^T) / (q[f, s] . z_f + eps) for the program's tokens (numerator only
    without the normaliser), R_f and z_f the sums of the two directions' reads."""
    i_f, i_s = tl.program_id(0), tl.program_id(1)
    o_s = i_s * BS + tl.arange(0, BS)
    o_k, o_v = tl.arange(0, BK), tl.arange(0, BV)
    m_s, m_k, m_v = o_s < S, o_k < K, o_v < V
    tok = i_f * S + o_s
    b_qr = tl.load(p_qr + tok[:, None] * K + o_k[None, :], mask=m_s[:, None] & m_k[None, :], other=0.0).to(tl.float32)
    o_r = (i_f * V + o_v[:, None]) * K + o_k[None, :]
    m_r = m_v[:, None] & m_k[None, :]
    b_r = tl.load(p_r + o_r, mask=m_r, other=0.0) + tl.load(p_r + F * V * K + o_r, mask=m_r, other=0.0)
    b_o = tl.dot(b_qr, tl.trans(b_r), input_precision=PREC)  # (BS, BV)
    if WITH_DEN:
        b_q = tl.load(p_q + tok[:, None] * K + o_k[None, :], mask=m_s[:, None] & m_k[None, :], other=0.0).to(tl.float32)
        b_z = tl.load(p_z + i_f * K + o_k, mask=m_k, other=0.0) + tl.load(p_z + (F + i_f) * K + o_k, mask=m_k, other=0.0)
        b_o = b_o / (tl.sum(b_q * b_z[None, :], axis=1)[:, None] + eps)
    tl.store(p_out + tok[:, None] * V + o_v[None, :], b_o, mask=m_s[:, None] & m_v[None, :])


def _products(left1: Tensor, left2: Tensor | None, right: Tensor, beta: Tensor, with_sum: bool,
              prec: str) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """Per frame (left * beta)^T right over the S tokens, for left = left1 and left2 in one launch (both
    against the same right operand, read once): [F, L1, K] and [F, L2, K] fp32, and the column sums of
    left1 [F, L1] when ``with_sum``."""
    f, s, l1 = left1.shape
    l2, k = (0 if left2 is None else left2.shape[-1]), right.shape[-1]
    out1 = torch.empty(f, l1, k, device=left1.device, dtype=torch.float32)
    out2 = out1 if left2 is None else torch.empty(f, l2, k, device=left1.device, dtype=torch.float32)
    sums = torch.empty(f, l1, device=left1.device, dtype=torch.float32) if with_sum else out1
    br = min(_pow2(l1 + l2), 64)
    _transitions_kernel[(triton.cdiv(l1 + l2, br), f)](left1, left1 if left2 is None else left2, right, beta, out1, out2, sums,
                                                       s, l1, l2, k, BS=min(_pow2(s), 32), BR=br, BK=_pow2(k), WITH_SUM=with_sum,
                                                       PREC=prec)
    return out1, (None if left2 is None else out2), (sums if with_sum else None)


def _scan(m: Tensor, c: Tensor, gamma: Tensor, resets: Tensor, init: Tensor | None, bh: int, prec: str) -> tuple[Tensor, Tensor]:
    """Both scans of x <- gamma (x - x M_t) + C_t; ``c`` [BH*T, L, K]. Returns (each direction's read
    states [2, BH*T, L, K], the final forward state [BH, L, K])."""
    t, width, k = c.shape[0] // bh, c.shape[1], c.shape[2]
    read = torch.empty(2, *c.shape, device=c.device, dtype=torch.float32)
    final = torch.empty(bh, width, k, device=c.device, dtype=torch.float32)
    br = min(_pow2(width), 32)
    _scan_kernel[(triton.cdiv(width, br), bh, 2)](m, c, gamma, resets, final if init is None else init, read, final, t, width, k,
                                                  c.shape[0], BR=br, BK=_pow2(k), HAS_INIT=init is not None, PREC=prec,
                                                  num_stages=2)  # each stage prefetches a D x D matrix (64 KB at D = 128)
    return read, final


def bidirectional_transitions_triton(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    q_rot: Tensor,
    k_rot: Tensor,
    beta: Tensor,
    gamma: Tensor,
    initial_kv: Tensor | None,
    initial_z: Tensor | None,
    resets: Tensor | None,
    with_denominator: bool,
    eps: float,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """``bidirectional_scan`` without gradients (arguments as there, inputs contiguous, ``resets`` an
    int32 [T] tensor or None) in the three phases above. Returns out [B, H, T, S, V] fp32 and the
    forward scan's final kv [B, H, V, K] and z [B, H, K]."""
    b, h, t, s, dk = q.shape
    dv = v.shape[-1]
    bh, prec = b * h, _precision(q.dtype)
    frames = lambda x: x.reshape(bh * t, s, -1)  # noqa: E731
    resets = torch.zeros(t, dtype=torch.int32, device=q.device) if resets is None else resets
    beta = beta.reshape(bh * t, s)
    a, bv, _ = _products(frames(k_rot), frames(v), frames(k_rot), beta, False, prec)  # (BHT, K, K), (BHT, V, K)
    init_kv = None if initial_kv is None else initial_kv.float().reshape(bh, dv, dk).contiguous()
    kv_read, kv = _scan(a, bv, gamma, resets, init_kv, bh, prec)
    z_read = z = None
    if with_denominator:
        az, _, c = _products(frames(k), None, frames(k), beta, True, prec)
        init_z = None if initial_z is None else initial_z.float().reshape(bh, 1, dk).contiguous()
        z_read, z = _scan(az, c.reshape(bh * t, 1, dk), gamma, resets, init_z, bh, prec)
    out = torch.empty(b, h, t, s, dv, device=q.device, dtype=torch.float32)
    bs = min(_pow2(s), 64)
    _read_kernel[(bh * t, triton.cdiv(s, bs))](q_rot, q, kv_read, kv_read if z_read is None else z_read, out, s, dk, dv, bh * t, eps,
                                              BS=bs, BK=_pow2(dk), BV=_pow2(dv), WITH_DEN=with_denominator, PREC=prec)
    return out, kv.reshape(b, h, dv, dk), None if z is None else z.reshape(b, h, dk)
