"""The frame-wise gated delta rule in transition form: the CPU path of ``bidirectional_scan``.

A frame's write (``reference.py``) is an affine map of the state, with everything that depends on
the frame's S tokens gathered into D x D matrices:

    kv_t = gamma_t (kv - kv A_t) + B_t,    A_t = K~_t^T diag(beta_t) K~_t,   B_t = (beta_t V_t)^T K~_t
    z_t  = gamma_t (z - z Az_t) + c_t,     Az_t = K_t^T diag(beta_t) K_t,    c_t = K_t^T beta_t

So the products over tokens run for all frames at once (one batched product each for A, B, Az and
c before the scan, one for the reads after it) and only D x D products stay in the loop over frames,
where the reference runs four products over the S tokens per frame. Same results as
``bidirectional_reference`` up to fp32 rounding (``tests/test_kernels_gdn.py``); faster on the CPU at
the small world's sizes, on streamed chunks and on training batches (``benchmarks/gdn.py``, RESULTS.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .reference import restart_flags

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

    The two scans run one after the other on per-frame views of the transitions, where
    ``bidirectional_reference`` stacks them into one batch (``scan_steps``, which copies every
    transition twice). A state known to be zero (the reverse scan's start and restarts, a forward
    scan without initial state) is written without products, and the reverse scan skips the writes
    nobody reads (the frame before a restart, and frame 0).
    """
    q, k, v, q_rot, k_rot, beta, gamma = (x.float() for x in (q, k, v, q_rot, k_rot, beta, gamma))
    t = q.shape[2]
    a, bv, az, c = (None if x is None else x.unbind(2) for x in _transitions(k, k_rot, v, beta, with_denominator))
    g = gamma[..., None, None].unbind(2)  # (B, H, 1, 1) per frame

    def write(i: int, kv: Tensor | None, z: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """Frame i written into the state (kv, z); None stands for a zero state."""
        kv = bv[i] if kv is None else g[i] * (kv - kv @ a[i]) + bv[i]
        if with_denominator:
            z = c[i] if z is None else g[i][..., 0] * (z - (z[:, :, None] @ az[i])[:, :, 0]) + c[i]
        return kv, z

    kv = None if initial_kv is None else initial_kv.float()
    z = None if initial_z is None or not with_denominator else initial_z.float()
    kv_read, z_read = [], []
    for i in range(t):  # forward, inclusive: frame i reads the state after its write
        kv, z = write(i, kv, z)
        kv_read.append(kv)
        z_read.append(z)
    final = kv, z
    restart = restart_flags(resets, t)
    kv = z = None
    for j in range(t - 1, -1, -1):  # reverse, exclusive: frame j reads the frames after it
        if kv is not None:
            kv_read[j] = kv_read[j] + kv
            if with_denominator:
                z_read[j] = z_read[j] + z
        kv, z = (None, None) if j == 0 or restart[j - 1] else write(j, kv, z)
    num = q_rot @ torch.stack(kv_read, dim=2).transpose(-1, -2)  # (B, H, T, S, Dv)
    if not with_denominator:
        return num, final[0], None
    den = (q @ torch.stack(z_read, dim=2)[..., None]).squeeze(-1)  # (B, H, T, S)
    return num / (den + eps)[..., None], final[0], final[1]
