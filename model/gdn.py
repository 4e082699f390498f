"""Frame-wise Gated DeltaNet: the recurrence of SANA-WM's linear-attention blocks, in plain PyTorch.

One recurrence step per latent frame, all S tokens of the frame written at once. Per batch and head,
with K_t, V_t the frame's keys and values as (S, D) rows, beta_t (S,) and gamma_t a scalar:

    kv_t = gamma_t kv_{t-1} + ((V~_t - gamma_t K~_t kv_{t-1}^T) * beta_t)^T K~_t      (D_v, D_k)
    z_t  = gamma_t z_{t-1}  + K_t^T (beta_t * (1 - gamma_t K_t z_{t-1}))            (D_k,)
    out  = (Q~_t kv_t^T) / (Q_t z_t + eps)

which is the state update S_t = S_{t-1} W_t + U_t with W_t = gamma_t (I - K~ diag(beta) K~^T) and
U_t = V diag(beta) K~^T written as a delta rule, so no D x D transition is formed. ``~`` marks the
rotated (RoPE or UCPE) copies used in the numerator; the normaliser z uses unrotated keys and queries.

Modes:
* causal: the inclusive forward scan (frame t sees frames <= t); the streaming step.
* bidirectional: plus an exclusive reverse scan (frames > t); numerators and denominators add.
* chunk_causal: the reverse scan only inside each chunk of frames.

This is the reference the Triton kernels are tested against. States are fp32.
Layout: (B, H, T, S, D) for q, k, v; (B, H, T, S) for beta; (B, H, T) for gamma.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

Tensor = torch.Tensor

MODES = ("causal", "bidirectional", "chunk_causal")


@dataclass
class GDNState:
    """The carried state of one GDN layer: ``kv`` (B, H, D_v, D_k) and ``z`` (B, H, D_k), fp32
    (``z`` is None for the numerator-only camera branch)."""

    kv: Tensor
    z: Tensor | None

    def clone(self) -> GDNState:
        return GDNState(self.kv.clone(), None if self.z is None else self.z.clone())


def _step(state: GDNState, k: Tensor, k_rot: Tensor, v: Tensor, beta: Tensor, gamma: Tensor) -> GDNState:
    """Write one frame (k, k_rot (B, H, S, Dk), v (B, H, S, Dv), beta (B, H, S), gamma (B, H))."""
    g = gamma[..., None, None]
    b = beta[..., None]
    pred = k_rot @ state.kv.transpose(-1, -2)  # (B, H, S, Dv): what the state recalls for each key
    kv = g * state.kv + ((v - g * pred) * b).transpose(-1, -2) @ k_rot
    z = None
    if state.z is not None:
        recall = (k @ state.z[..., None]).squeeze(-1)  # (B, H, S)
        z = gamma[..., None] * state.z + ((beta * (1 - gamma[..., None] * recall))[..., None] * k).sum(-2)
    return GDNState(kv, z)


def _read(state: GDNState, q: Tensor, q_rot: Tensor) -> tuple[Tensor, Tensor | None]:
    num = q_rot @ state.kv.transpose(-1, -2)  # (B, H, S, Dv)
    den = None if state.z is None else (q @ state.z[..., None]).squeeze(-1)  # (B, H, S)
    return num, den


def empty_state(batch: int, heads: int, dk: int, dv: int, with_denominator: bool = True, device=None) -> GDNState:
    kv = torch.zeros(batch, heads, dv, dk, dtype=torch.float32, device=device)
    z = torch.zeros(batch, heads, dk, dtype=torch.float32, device=device) if with_denominator else None
    return GDNState(kv, z)


def chunk_bounds(num_frames: int, first_chunk: int, chunk: int) -> list[tuple[int, int]]:
    """(start, end) of the chunks of a sequence: the first of ``first_chunk`` frames, then ``chunk``;
    a last chunk shorter than ``chunk`` joins the one before it (the release's training split)."""
    starts = [0] + list(range(first_chunk, num_frames, chunk))
    if len(starts) > 1 and num_frames - starts[-1] < chunk:
        starts.pop()
    return list(zip(starts, starts[1:] + [num_frames]))


def frame_gdn(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    q_rot: Tensor,
    k_rot: Tensor,
    beta: Tensor,
    gamma: Tensor,
    mode: str = "bidirectional",
    state: GDNState | None = None,
    with_denominator: bool = True,
    chunks: list[tuple[int, int]] | None = None,
    eps: float = 1e-15,
) -> tuple[Tensor, GDNState]:
    """Frame-wise gated delta rule over T frames.

    Args:
        q, k, q_rot, k_rot: (B, H, T, S, Dk) queries and keys, unrotated and rotated.
        v: (B, H, T, S, Dv).
        beta: (B, H, T, S) write strength per token; gamma: (B, H, T) decay per frame.
        mode: ``causal``, ``bidirectional`` or ``chunk_causal`` (needs ``chunks``).
        state: carried forward state (causal and chunk_causal); zeros if None.
        with_denominator: False for the numerator-only camera branch (output is the numerator).
        chunks: (start, end) frame ranges for ``chunk_causal``.

    Returns:
        out (B, H, T, S, Dv) in fp32, and the forward state after the last frame.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "chunk_causal" and not chunks:
        raise ValueError("chunk_causal mode needs chunks=[(start, end), ...]")
    b, h, t, s, dk = q.shape
    dv = v.shape[-1]
    q, k, v, q_rot, k_rot, beta, gamma = (x.float() for x in (q, k, v, q_rot, k_rot, beta, gamma))
    if state is None:
        state = empty_state(b, h, dk, dv, with_denominator, q.device)
    num = torch.empty(b, h, t, s, dv, device=q.device)
    den = torch.empty(b, h, t, s, device=q.device) if with_denominator else None
    for i in range(t):  # inclusive forward scan
        state = _step(state, k[:, :, i], k_rot[:, :, i], v[:, :, i], beta[:, :, i], gamma[:, :, i])
        num[:, :, i], d = _read(state, q[:, :, i], q_rot[:, :, i])
        if den is not None:
            den[:, :, i] = d
    if mode != "causal":  # exclusive reverse scan, over everything or within each chunk
        for start, end in chunks if mode == "chunk_causal" else [(0, t)]:
            rev = empty_state(b, h, dk, dv, with_denominator, q.device)
            for i in range(end - 1, start - 1, -1):
                n, d = _read(rev, q[:, :, i], q_rot[:, :, i])
                num[:, :, i] += n
                if den is not None:
                    den[:, :, i] += d
                rev = _step(rev, k[:, :, i], k_rot[:, :, i], v[:, :, i], beta[:, :, i], gamma[:, :, i])
    out = num if den is None else num / (den[..., None] + eps)
    return out, state
