"""Frame-wise Gated DeltaNet: the recurrence of SANA-WM's linear-attention blocks and its modes.

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

The scans run through ``kernels.frame_gdn``: the Triton kernels on CUDA, the PyTorch reference on the
CPU. States are fp32. Layout: (B, H, T, S, D) for q, k, v; (B, H, T, S) for beta; (B, H, T)
for gamma.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from kernels.frame_gdn import bidirectional_scan, scan

Tensor = torch.Tensor

MODES = ("causal", "bidirectional", "chunk_causal")


@dataclass
class GDNState:
    """The carried state of one GDN layer: ``kv`` (B, H, D_v, D_k) and ``z`` (B, H, D_k), fp32
    (``z`` is None for the numerator-only camera branch)."""

    kv: Tensor
    z: Tensor | None


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
    init_kv, init_z = (None, None) if state is None else (state.kv, state.z)
    if mode == "causal":
        num, den, kv, z = scan(q, k, v, q_rot, k_rot, beta, gamma, init_kv, init_z, with_denominator=with_denominator)
        return (num if den is None else num / (den[..., None] + eps)), GDNState(kv, z)
    resets = None  # the reverse scan restarts at the end of every chunk but the last
    if mode == "chunk_causal" and len(chunks) > 1:
        # Python bools, not a tensor: reading a tensor's flags frame by frame would break a compiled graph.
        ends = {end - 1 for _, end in chunks[:-1]}
        resets = [t in ends for t in range(q.shape[2])]
    out, kv, z = bidirectional_scan(q, k, v, q_rot, k_rot, beta, gamma, init_kv, init_z, resets, with_denominator, eps)
    return out, GDNState(kv, z)
