"""The frame-wise gated delta rule in transition form: the CPU path of ``bidirectional_scan``.

A frame's write (``reference.py``) is an affine map of the state, with everything that depends on
the frame's S tokens gathered into D x D matrices:

    kv_t = gamma_t (kv - kv A_t) + B_t,    A_t = K~_t^T diag(beta_t) K~_t,   B_t = (beta_t V_t)^T K~_t
    z_t  = gamma_t (z - z Az_t) + c_t,     Az_t = K_t^T diag(beta_t) K_t,    c_t = K_t^T beta_t

So the products over tokens run for all frames at once (one batched product each for A, B, Az and
c before the scan, one for the reads after it) and only D x D products stay in the loop over frames,
where the reference runs four products over the S tokens per frame. Same results as
``bidirectional_reference`` up to fp32 rounding (``tests/test_kernels_gdn.py``). On the CPU at the small
world's sizes it is 1.03x to 1.28x faster on streamed chunks and 0.88x to 0.97x on a training batch
(``benchmarks/gdn.py``, RESULTS.md): more arithmetic when S <= D, in fewer and larger calls.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .reference import bidirectional_loop, scan_steps

Tensor = torch.Tensor


def _transitions(k: Tensor, k_rot: Tensor, v: Tensor, beta: Tensor, with_denominator: bool):
    """Per frame A, B (and Az, c for the normaliser), all frames in one product each."""
    kr_beta = k_rot * beta[..., None]
    a = kr_beta.transpose(-1, -2) @ k_rot  # (B, H, T, Dk, Dk)
    b = (v * beta[..., None]).transpose(-1, -2) @ k_rot  # (B, H, T, Dv, Dk)
    if not with_denominator:
        return a, b, None, None
    k_beta = k * beta[..., None]
    return a, b, k_beta.transpose(-1, -2) @ k, k_beta.sum(-2)


def bidirectional_transitions(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    q_rot: Tensor,
    k_rot: Tensor,
    beta: Tensor,
    gamma: Tensor,
    initial_kv: Tensor | None = None,
    initial_z: Tensor | None = None,
    resets: Tensor | Sequence[bool] | None = None,
    with_denominator: bool = True,
    eps: float = 1e-15,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """``bidirectional_scan`` (arguments and results as there) in transition form.

    The same loop as ``bidirectional_reference`` (``bidirectional_loop``) with the write above.
    """
    q, k, v, q_rot, k_rot, beta, gamma = (x.float() for x in (q, k, v, q_rot, k_rot, beta, gamma))
    a, bv, az, c = (None if x is None else scan_steps(x) for x in _transitions(k, k_rot, v, beta, with_denominator))
    g = scan_steps(gamma[..., None, None])

    def write(i: int, kv: Tensor, z: Tensor | None) -> tuple[Tensor, Tensor | None]:
        kv = g[i] * (kv - kv @ a[i]) + bv[i]
        if z is not None:
            z = g[i][..., 0] * (z - (z[:, :, None] @ az[i])[:, :, 0]) + c[i]
        return kv, z

    return bidirectional_loop(write, q, q_rot, v, initial_kv, initial_z, resets, with_denominator, eps)
