"""Triton kernels of the frame-wise gated delta rule scan: forward, backward and the autograd Function.

Parallel over (value block, batch x head); frames run in sequence inside a program, and each frame's
tokens are processed in blocks of BS against the state of the previous frame (two passes: write,
then read; or read, then write when ``exclusive``). The forward stores the state every ``chunk``
frames; the backward walks the chunks from last to first, recomputes the chunk's states from its
checkpoint into a scratch buffer, and runs the adjoint recurrence through them, so memory grows with
T / chunk rather than T. Gradients that sum over the value dimension (keys, queries, beta, gamma)
are written per value block and summed afterwards.

The normaliser z is cheap (a D_k vector): every program recomputes it, the one of value block 0
writes it and its gradients.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

Tensor = torch.Tensor


def _pow2(n: int, at_least: int = 16) -> int:
    return max(at_least, triton.next_power_of_2(n))


@triton.jit
def _read_frame(p_qr, p_q, p_num, p_den, b_kv, b_z, tok, S, K, V, o_k, o_v, m_k, m_v,
                BS: tl.constexpr, WITH_DEN: tl.constexpr, WRITE_DEN, PREC: tl.constexpr):
    """num[tok + s, o_v] = q_rot[s] . kv[o_v]; den[tok + s] = q[s] . z, for the frame's S tokens."""
    for s0 in range(0, S, BS):
        o_s = s0 + tl.arange(0, BS)
        m_s = o_s < S
        b_qr = tl.load(p_qr + (tok + o_s)[:, None] * K + o_k[None, :], mask=m_s[:, None] & m_k[None, :], other=0.0).to(tl.float32)
        b_o = tl.dot(b_qr, tl.trans(b_kv), input_precision=PREC)
        tl.store(p_num + (tok + o_s)[:, None] * V + o_v[None, :], b_o, mask=m_s[:, None] & m_v[None, :])
        if WITH_DEN:
            if WRITE_DEN:
                b_q = tl.load(p_q + (tok + o_s)[:, None] * K + o_k[None, :], mask=m_s[:, None] & m_k[None, :], other=0.0).to(tl.float32)
                tl.store(p_den + tok + o_s, tl.sum(b_q * b_z[None, :], axis=1), mask=m_s)


@triton.jit
def _write_frame(p_k, p_kr, p_v, p_beta, b_kv, b_z, g, tok, S, K, V, o_k, o_v, m_k, m_v,
                 BS: tl.constexpr, BV: tl.constexpr, BK: tl.constexpr, WITH_DEN: tl.constexpr, PREC: tl.constexpr):
    """The state after writing the frame's S tokens (all against the same previous state)."""
    acc = tl.zeros([BV, BK], dtype=tl.float32)
    zacc = tl.zeros([BK], dtype=tl.float32)
    for s0 in range(0, S, BS):
        o_s = s0 + tl.arange(0, BS)
        m_s = o_s < S
        b_kr = tl.load(p_kr + (tok + o_s)[:, None] * K + o_k[None, :], mask=m_s[:, None] & m_k[None, :], other=0.0).to(tl.float32)
        b_v = tl.load(p_v + (tok + o_s)[:, None] * V + o_v[None, :], mask=m_s[:, None] & m_v[None, :], other=0.0).to(tl.float32)
        b_b = tl.load(p_beta + tok + o_s, mask=m_s, other=0.0).to(tl.float32)
        b_pred = tl.dot(b_kr, tl.trans(b_kv), input_precision=PREC)  # (BS, BV)
        b_u = (b_v - g * b_pred) * b_b[:, None]
        acc += tl.dot(tl.trans(b_u), b_kr, input_precision=PREC)
        if WITH_DEN:
            b_k = tl.load(p_k + (tok + o_s)[:, None] * K + o_k[None, :], mask=m_s[:, None] & m_k[None, :], other=0.0).to(tl.float32)
            b_r = tl.sum(b_k * b_z[None, :], axis=1)
            zacc += tl.sum(b_k * (b_b * (1.0 - g * b_r))[:, None], axis=0)
    return g * b_kv + acc, g * b_z + zacc


@triton.jit
def _fwd_kernel(p_q, p_k, p_v, p_qr, p_kr, p_beta, p_gamma, p_resets, p_kv0, p_z0,
                p_num, p_den, p_kv_out, p_z_out, p_ckpt_kv, p_ckpt_z,
                T, S, K, V, NC,
                CHUNK: tl.constexpr, BS: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
                REVERSE: tl.constexpr, EXCLUSIVE: tl.constexpr, HAS_INIT: tl.constexpr, WITH_DEN: tl.constexpr,
                PREC: tl.constexpr):
    i_v, i_bh = tl.program_id(0), tl.program_id(1)
    o_k = tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    m_k, m_v = o_k < K, o_v < V
    m_kv = m_v[:, None] & m_k[None, :]
    b_kv = tl.zeros([BV, BK], dtype=tl.float32)
    b_z = tl.zeros([BK], dtype=tl.float32)
    if HAS_INIT:
        b_kv = tl.load(p_kv0 + i_bh * V * K + o_v[:, None] * K + o_k[None, :], mask=m_kv, other=0.0)
        if WITH_DEN:
            b_z = tl.load(p_z0 + i_bh * K + o_k, mask=m_k, other=0.0)
    for j in range(T):
        t = j
        if REVERSE:
            t = T - 1 - j
        if j % CHUNK == 0:  # checkpoint: the state entering step j
            c = j // CHUNK
            tl.store(p_ckpt_kv + ((i_bh * NC + c) * V + o_v[:, None]) * K + o_k[None, :], b_kv, mask=m_kv)
            if WITH_DEN:
                if i_v == 0:
                    tl.store(p_ckpt_z + (i_bh * NC + c) * K + o_k, b_z, mask=m_k)
        keep = 1.0 - tl.load(p_resets + t).to(tl.float32)
        b_kv = b_kv * keep
        b_z = b_z * keep
        g = tl.load(p_gamma + i_bh * T + t).to(tl.float32)
        tok = (i_bh * T + t) * S
        if EXCLUSIVE:
            _read_frame(p_qr, p_q, p_num, p_den, b_kv, b_z, tok, S, K, V, o_k, o_v, m_k, m_v, BS, WITH_DEN, i_v == 0, PREC)
        b_kv, b_z = _write_frame(p_k, p_kr, p_v, p_beta, b_kv, b_z, g, tok, S, K, V, o_k, o_v, m_k, m_v, BS, BV, BK, WITH_DEN, PREC)
        if not EXCLUSIVE:
            _read_frame(p_qr, p_q, p_num, p_den, b_kv, b_z, tok, S, K, V, o_k, o_v, m_k, m_v, BS, WITH_DEN, i_v == 0, PREC)
    tl.store(p_kv_out + i_bh * V * K + o_v[:, None] * K + o_k[None, :], b_kv, mask=m_kv)
    if WITH_DEN:
        if i_v == 0:
            tl.store(p_z_out + i_bh * K + o_k, b_z, mask=m_k)


@triton.jit
def _bwd_kernel(p_q, p_k, p_v, p_qr, p_kr, p_beta, p_gamma, p_resets, p_ckpt_kv, p_ckpt_z,
                p_dnum, p_dden, p_dkv_out, p_dz_out,
                p_dq, p_dk, p_dv, p_dqr, p_dkr, p_dbeta, p_dgamma, p_dkv0, p_dz0,
                p_scr_kv, p_scr_z,
                T, S, K, V, NC, NV, BH,
                CHUNK: tl.constexpr, BS: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
                REVERSE: tl.constexpr, EXCLUSIVE: tl.constexpr, WITH_DEN: tl.constexpr, HAS_DOUT: tl.constexpr,
                PREC: tl.constexpr):
    i_v, i_bh = tl.program_id(0), tl.program_id(1)
    o_k = tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    m_k, m_v = o_k < K, o_v < V
    m_kv = m_v[:, None] & m_k[None, :]
    is_first = i_v == 0
    # Per-value-block partial sums live at offset i_v * (size of the full tensor).
    part_k = i_v * BH * T * S * K
    part_s = i_v * BH * T * S
    part_t = i_v * BH * T
    scr = (i_v * BH + i_bh) * (2 * CHUNK)  # scratch slots: CHUNK states before, CHUNK after each step
    b_dkv = tl.zeros([BV, BK], dtype=tl.float32)
    b_dz = tl.zeros([BK], dtype=tl.float32)
    if HAS_DOUT:
        b_dkv = tl.load(p_dkv_out + i_bh * V * K + o_v[:, None] * K + o_k[None, :], mask=m_kv, other=0.0)
        if WITH_DEN:
            b_dz = tl.load(p_dz_out + i_bh * K + o_k, mask=m_k, other=0.0)
    for cc in range(NC):
        c = NC - 1 - cc
        j0 = c * CHUNK
        j1 = tl.minimum(j0 + CHUNK, T)
        # Recompute the chunk's states from its checkpoint.
        b_kv = tl.load(p_ckpt_kv + ((i_bh * NC + c) * V + o_v[:, None]) * K + o_k[None, :], mask=m_kv, other=0.0)
        b_z = tl.zeros([BK], dtype=tl.float32)
        if WITH_DEN:
            b_z = tl.load(p_ckpt_z + (i_bh * NC + c) * K + o_k, mask=m_k, other=0.0)
        for j in range(j0, j1):
            t = j
            if REVERSE:
                t = T - 1 - j
            keep = 1.0 - tl.load(p_resets + t).to(tl.float32)
            b_kv = b_kv * keep
            b_z = b_z * keep
            slot = scr + (j - j0)
            tl.store(p_scr_kv + (slot * BV + tl.arange(0, BV)[:, None]) * BK + o_k[None, :], b_kv)
            tl.store(p_scr_z + slot * BK + o_k, b_z)
            g = tl.load(p_gamma + i_bh * T + t).to(tl.float32)
            tok = (i_bh * T + t) * S
            b_kv, b_z = _write_frame(p_k, p_kr, p_v, p_beta, b_kv, b_z, g, tok, S, K, V, o_k, o_v, m_k, m_v, BS, BV, BK, WITH_DEN, PREC)
            tl.store(p_scr_kv + ((slot + CHUNK) * BV + tl.arange(0, BV)[:, None]) * BK + o_k[None, :], b_kv)
            tl.store(p_scr_z + (slot + CHUNK) * BK + o_k, b_z)
        # Adjoint recurrence through the chunk, last step first.
        for jj in range(j0, j1):
            j = j1 - 1 - (jj - j0)
            t = j
            if REVERSE:
                t = T - 1 - j
            slot = scr + (j - j0)
            kv_pre = tl.load(p_scr_kv + (slot * BV + tl.arange(0, BV)[:, None]) * BK + o_k[None, :])
            kv_post = tl.load(p_scr_kv + ((slot + CHUNK) * BV + tl.arange(0, BV)[:, None]) * BK + o_k[None, :])
            z_pre = tl.load(p_scr_z + slot * BK + o_k)
            z_post = tl.load(p_scr_z + (slot + CHUNK) * BK + o_k)
            g = tl.load(p_gamma + i_bh * T + t).to(tl.float32)
            tok = (i_bh * T + t) * S
            # Outputs read the state after the write (inclusive) or before it (exclusive).
            kv_read = kv_post
            z_read = z_post
            if EXCLUSIVE:
                kv_read = kv_pre
                z_read = z_pre
            d_read = tl.zeros([BV, BK], dtype=tl.float32)
            dz_read = tl.zeros([BK], dtype=tl.float32)
            for s0 in range(0, S, BS):
                o_s = s0 + tl.arange(0, BS)
                m_s = o_s < S
                m_sk = m_s[:, None] & m_k[None, :]
                b_do = tl.load(p_dnum + (tok + o_s)[:, None] * V + o_v[None, :], mask=m_s[:, None] & m_v[None, :], other=0.0)
                b_qr = tl.load(p_qr + (tok + o_s)[:, None] * K + o_k[None, :], mask=m_sk, other=0.0).to(tl.float32)
                d_read += tl.dot(tl.trans(b_do), b_qr, input_precision=PREC)
                b_dqr = tl.dot(b_do, kv_read, input_precision=PREC)
                tl.store(p_dqr + part_k + (tok + o_s)[:, None] * K + o_k[None, :], b_dqr, mask=m_sk)
                if WITH_DEN:
                    if is_first:
                        b_dd = tl.load(p_dden + tok + o_s, mask=m_s, other=0.0)
                        b_q = tl.load(p_q + (tok + o_s)[:, None] * K + o_k[None, :], mask=m_sk, other=0.0).to(tl.float32)
                        dz_read += tl.sum(b_q * b_dd[:, None], axis=0)
                        tl.store(p_dq + (tok + o_s)[:, None] * K + o_k[None, :], b_dd[:, None] * z_read[None, :], mask=m_sk)
            if not EXCLUSIVE:
                b_dkv += d_read
                b_dz += dz_read
            # Through the write: kv_post = g kv_pre + ((V - g K~ kv_pre^T) * beta)^T K~.
            d_prev = tl.zeros([BV, BK], dtype=tl.float32)
            dz_prev = tl.zeros([BK], dtype=tl.float32)
            dg = tl.sum(tl.sum(kv_pre * b_dkv, axis=1), axis=0)
            for s0 in range(0, S, BS):
                o_s = s0 + tl.arange(0, BS)
                m_s = o_s < S
                m_sk = m_s[:, None] & m_k[None, :]
                m_sv = m_s[:, None] & m_v[None, :]
                b_kr = tl.load(p_kr + (tok + o_s)[:, None] * K + o_k[None, :], mask=m_sk, other=0.0).to(tl.float32)
                b_vv = tl.load(p_v + (tok + o_s)[:, None] * V + o_v[None, :], mask=m_sv, other=0.0).to(tl.float32)
                b_b = tl.load(p_beta + tok + o_s, mask=m_s, other=0.0).to(tl.float32)
                b_p = tl.dot(b_kr, tl.trans(kv_pre), input_precision=PREC)  # (BS, BV)
                b_res = b_vv - g * b_p
                b_u = b_res * b_b[:, None]
                b_du = tl.dot(b_kr, tl.trans(b_dkv), input_precision=PREC)  # (BS, BV)
                tl.store(p_dv + (tok + o_s)[:, None] * V + o_v[None, :], b_du * b_b[:, None], mask=m_sv)
                b_dbeta = tl.sum(b_du * b_res, axis=1)
                b_dp = -g * b_du * b_b[:, None]
                dg += -tl.sum(tl.sum(b_p * b_du * b_b[:, None], axis=1), axis=0)
                b_dkr = tl.dot(b_u, b_dkv, input_precision=PREC) + tl.dot(b_dp, kv_pre, input_precision=PREC)
                tl.store(p_dkr + part_k + (tok + o_s)[:, None] * K + o_k[None, :], b_dkr, mask=m_sk)
                d_prev += tl.dot(tl.trans(b_dp), b_kr, input_precision=PREC)
                if WITH_DEN:
                    if is_first:  # z_post = g z_pre + K^T (beta (1 - g K z_pre))
                        b_k = tl.load(p_k + (tok + o_s)[:, None] * K + o_k[None, :], mask=m_sk, other=0.0).to(tl.float32)
                        b_r = tl.sum(b_k * z_pre[None, :], axis=1)
                        b_w = b_b * (1.0 - g * b_r)
                        b_dw = tl.sum(b_k * b_dz[None, :], axis=1)
                        b_dr = -g * b_b * b_dw
                        b_dbeta += b_dw * (1.0 - g * b_r)
                        dg += -tl.sum(b_b * b_r * b_dw, axis=0)
                        tl.store(p_dk + (tok + o_s)[:, None] * K + o_k[None, :],
                                 b_w[:, None] * b_dz[None, :] + b_dr[:, None] * z_pre[None, :], mask=m_sk)
                        dz_prev += tl.sum(b_k * b_dr[:, None], axis=0)
                tl.store(p_dbeta + part_s + tok + o_s, b_dbeta, mask=m_s)
            if WITH_DEN:
                if is_first:
                    dg += tl.sum(z_pre * b_dz, axis=0)
            tl.store(p_dgamma + part_t + i_bh * T + t, dg)
            b_dkv = g * b_dkv + d_prev
            b_dz = g * b_dz + dz_prev
            if EXCLUSIVE:
                b_dkv += d_read
                b_dz += dz_read
            keep = 1.0 - tl.load(p_resets + t).to(tl.float32)
            b_dkv = b_dkv * keep
            b_dz = b_dz * keep
    tl.store(p_dkv0 + i_bh * V * K + o_v[:, None] * K + o_k[None, :], b_dkv, mask=m_kv)
    if WITH_DEN:
        if is_first:
            tl.store(p_dz0 + i_bh * K + o_k, b_dz, mask=m_k)


@triton.jit
def _stream_kernel(p_q, p_k, p_v, p_qr, p_kr, p_beta, p_gamma, p_kv0, p_z0, p_out, p_kv_out, p_z_out, p_den_scr,
                   T, S, K, V, eps,
                   BS: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, WITH_DEN: tl.constexpr, PREC: tl.constexpr):
    """One streamed chunk in one launch: the forward scan from the carried state (which it
    updates), the exclusive reverse scan inside the chunk, and the normalised sum of both."""
    i_v, i_bh = tl.program_id(0), tl.program_id(1)
    o_k = tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    m_k, m_v = o_k < K, o_v < V
    m_kv = m_v[:, None] & m_k[None, :]
    b_kv = tl.load(p_kv0 + i_bh * V * K + o_v[:, None] * K + o_k[None, :], mask=m_kv, other=0.0)
    b_z = tl.zeros([BK], dtype=tl.float32)
    if WITH_DEN:
        b_z = tl.load(p_z0 + i_bh * K + o_k, mask=m_k, other=0.0)
    scr = (i_v * tl.num_programs(1) + i_bh) * T * S  # this program's copy of the forward denominators
    for t in range(T):
        g = tl.load(p_gamma + i_bh * T + t).to(tl.float32)
        tok = (i_bh * T + t) * S
        b_kv, b_z = _write_frame(p_k, p_kr, p_v, p_beta, b_kv, b_z, g, tok, S, K, V, o_k, o_v, m_k, m_v, BS, BV, BK, WITH_DEN, PREC)
        _read_frame(p_qr, p_q, p_out, p_den_scr + scr - tok + t * S, b_kv, b_z, tok, S, K, V, o_k, o_v, m_k, m_v, BS, WITH_DEN, True, PREC)
    tl.store(p_kv_out + i_bh * V * K + o_v[:, None] * K + o_k[None, :], b_kv, mask=m_kv)
    if WITH_DEN:
        if i_v == 0:
            tl.store(p_z_out + i_bh * K + o_k, b_z, mask=m_k)
    b_kv = tl.zeros([BV, BK], dtype=tl.float32)
    b_z = tl.zeros([BK], dtype=tl.float32)
    for tt in range(T):
        t = T - 1 - tt
        g = tl.load(p_gamma + i_bh * T + t).to(tl.float32)
        tok = (i_bh * T + t) * S
        for s0 in range(0, S, BS):
            o_s = s0 + tl.arange(0, BS)
            m_s = o_s < S
            m_sv = m_s[:, None] & m_v[None, :]
            b_qr = tl.load(p_qr + (tok + o_s)[:, None] * K + o_k[None, :], mask=m_s[:, None] & m_k[None, :], other=0.0).to(tl.float32)
            b_o = tl.load(p_out + (tok + o_s)[:, None] * V + o_v[None, :], mask=m_sv, other=0.0)
            b_o += tl.dot(b_qr, tl.trans(b_kv), input_precision=PREC)
            if WITH_DEN:
                b_q = tl.load(p_q + (tok + o_s)[:, None] * K + o_k[None, :], mask=m_s[:, None] & m_k[None, :], other=0.0).to(tl.float32)
                b_den = tl.load(p_den_scr + scr + t * S + o_s, mask=m_s, other=0.0) + tl.sum(b_q * b_z[None, :], axis=1)
                b_o = b_o / (b_den[:, None] + eps)
            tl.store(p_out + (tok + o_s)[:, None] * V + o_v[None, :], b_o, mask=m_sv)
        b_kv, b_z = _write_frame(p_k, p_kr, p_v, p_beta, b_kv, b_z, g, tok, S, K, V, o_k, o_v, m_k, m_v, BS, BV, BK, WITH_DEN, PREC)


def stream_chunk_triton(q, k, v, q_rot, k_rot, beta, gamma, kv, z, with_den: bool, eps: float):
    """Launch ``_stream_kernel``; returns (out fp32, new kv, new z)."""
    b, h, t, s, dk = q.shape
    dv = v.shape[-1]
    bs, bk, bv = _blocks(s, dk, dv, None)
    nv = triton.cdiv(dv, bv)
    dev = q.device
    out = torch.empty(b, h, t, s, dv, device=dev, dtype=torch.float32)
    kv_out = torch.empty(b, h, dv, dk, device=dev, dtype=torch.float32)
    z_out = torch.empty(b, h, dk, device=dev, dtype=torch.float32) if with_den else kv_out
    z_in = z.float().contiguous() if with_den else kv_out
    den_scr = torch.empty(nv * b * h * t * s, device=dev, dtype=torch.float32)
    _stream_kernel[(nv, b * h)](q, k, v, q_rot, k_rot, beta, gamma, kv.float().contiguous(), z_in, out, kv_out, z_out, den_scr,
                                t, s, dk, dv, eps, BS=bs, BK=bk, BV=bv, WITH_DEN=with_den, PREC=_precision(q.dtype))
    return out, kv_out, (z_out if with_den else None)


def _blocks(s: int, dk: int, dv: int, bv: int | None) -> tuple[int, int, int]:
    bk = _pow2(dk)
    bv = bv or min(_pow2(dv), 32)
    bs = min(_pow2(s), 32)
    return bs, bk, bv


def _precision(dtype: torch.dtype) -> str:
    # fp32 inputs get exact fp32 products; half inputs are already rounded, so TF32 costs nothing.
    return "ieee" if dtype == torch.float32 else "tf32"


class FrameGDNScan(torch.autograd.Function):
    """Autograd wrapper of the Triton scan. Saves the inputs and the chunk checkpoints; the flags
    and sizes stay on the context."""

    @staticmethod
    def forward(ctx, q, k, v, q_rot, k_rot, beta, gamma, initial_kv, initial_z, reverse, exclusive, resets, with_den, chunk, bv):
        b, h, t, s, dk = q.shape
        dv = v.shape[-1]
        bs, bk, bv = _blocks(s, dk, dv, bv)
        nv, nc = triton.cdiv(dv, bv), triton.cdiv(t, chunk)
        dev = q.device
        num = torch.empty(b, h, t, s, dv, device=dev, dtype=torch.float32)
        den = torch.empty(b, h, t, s, device=dev, dtype=torch.float32) if with_den else num.new_empty(1)
        kv_out = torch.empty(b, h, dv, dk, device=dev, dtype=torch.float32)
        z_out = torch.empty(b, h, dk, device=dev, dtype=torch.float32) if with_den else num.new_empty(1)
        ckpt_kv = torch.empty(b * h, nc, dv, dk, device=dev, dtype=torch.float32)
        ckpt_z = torch.empty(b * h, nc, dk, device=dev, dtype=torch.float32) if with_den else num.new_empty(1)
        has_init = initial_kv is not None
        kv0 = initial_kv.float().contiguous() if has_init else kv_out
        z0 = initial_z.float().contiguous() if (has_init and with_den and initial_z is not None) else z_out
        if has_init and with_den and initial_z is None:
            z0 = torch.zeros(b, h, dk, device=dev)
        _fwd_kernel[(nv, b * h)](
            q, k, v, q_rot, k_rot, beta, gamma, resets, kv0, z0, num, den, kv_out, z_out, ckpt_kv, ckpt_z,
            t, s, dk, dv, nc, CHUNK=chunk, BS=bs, BK=bk, BV=bv, REVERSE=reverse, EXCLUSIVE=exclusive,
            HAS_INIT=has_init, WITH_DEN=with_den, PREC=_precision(q.dtype),
        )
        ctx.save_for_backward(q, k, v, q_rot, k_rot, beta, gamma, resets, ckpt_kv, ckpt_z)
        ctx.flags = (reverse, exclusive, with_den, chunk, bs, bk, bv, has_init, initial_z is not None)
        return num, (den if with_den else None), kv_out, (z_out if with_den else None)

    @staticmethod
    def backward(ctx, dnum, dden, dkv_out, dz_out):
        q, k, v, q_rot, k_rot, beta, gamma, resets, ckpt_kv, ckpt_z = ctx.saved_tensors
        reverse, exclusive, with_den, chunk, bs, bk, bv, has_init, has_init_z = ctx.flags
        b, h, t, s, dk = q.shape
        dv = v.shape[-1]
        nv, nc = triton.cdiv(dv, bv), triton.cdiv(t, chunk)
        dev, f32 = q.device, torch.float32
        dnum = torch.zeros(b, h, t, s, dv, device=dev, dtype=f32) if dnum is None else dnum.float().contiguous()
        dden = torch.zeros(b, h, t, s, device=dev, dtype=f32) if (dden is None and with_den) else (dden.float().contiguous() if with_den else dnum)
        has_dout = dkv_out is not None or dz_out is not None
        dkv_out = torch.zeros(b, h, dv, dk, device=dev, dtype=f32) if dkv_out is None else dkv_out.float().contiguous()
        dz_out = (torch.zeros(b, h, dk, device=dev, dtype=f32) if dz_out is None else dz_out.float().contiguous()) if with_den else dkv_out
        dq = torch.zeros(b, h, t, s, dk, device=dev, dtype=f32)
        dk_ = torch.zeros_like(dq)
        dv_ = torch.empty(b, h, t, s, dv, device=dev, dtype=f32)
        dqr = torch.empty(nv, b, h, t, s, dk, device=dev, dtype=f32)
        dkr = torch.empty_like(dqr)
        dbeta = torch.zeros(nv, b, h, t, s, device=dev, dtype=f32)
        dgamma = torch.empty(nv, b, h, t, device=dev, dtype=f32)
        dkv0 = torch.empty(b, h, dv, dk, device=dev, dtype=f32)
        dz0 = torch.zeros(b, h, dk, device=dev, dtype=f32)
        scr_kv = torch.empty(nv * b * h * 2 * chunk, bv, bk, device=dev, dtype=f32)
        scr_z = torch.empty(nv * b * h * 2 * chunk, bk, device=dev, dtype=f32)
        _bwd_kernel[(nv, b * h)](
            q, k, v, q_rot, k_rot, beta, gamma, resets, ckpt_kv, ckpt_z, dnum, dden, dkv_out, dz_out,
            dq, dk_, dv_, dqr, dkr, dbeta, dgamma, dkv0, dz0, scr_kv, scr_z,
            t, s, dk, dv, nc, nv, b * h, CHUNK=chunk, BS=bs, BK=bk, BV=bv, REVERSE=reverse, EXCLUSIVE=exclusive,
            WITH_DEN=with_den, HAS_DOUT=has_dout, PREC=_precision(q.dtype),
        )
        grads = (
            dq.to(q.dtype) if with_den else None,
            dk_.to(k.dtype) if with_den else None,
            dv_.to(v.dtype),
            dqr.sum(0).to(q_rot.dtype),
            dkr.sum(0).to(k_rot.dtype),
            dbeta.sum(0).to(beta.dtype),
            dgamma.sum(0).to(gamma.dtype),
            dkv0 if has_init else None,
            dz0 if (has_init_z and with_den) else None,
        )
        return (*grads, None, None, None, None, None, None)
