"""Pure-PyTorch reference of the frame-wise gated delta rule scan (and the CPU path).

One scan over T frames, in order or reversed, per batch and head:

    kv_t = gamma_t kv + ((V_t - gamma_t K~_t kv^T) * beta_t)^T K~_t     kv: (D_v, D_k)
    z_t  = gamma_t z  + K_t^T (beta_t * (1 - gamma_t K_t z))             z:  (D_k,)
    num_t = Q~_t kv^T,   den_t = Q_t z

where each frame writes all its S tokens against the same previous state. ``exclusive`` reads the
outputs before the frame's write (so frame t sees only the frames before it in scan order);
``resets[t]`` zeroes the state before frame t is processed. States and outputs are fp32.
"""

from __future__ import annotations

import torch

Tensor = torch.Tensor


def scan_reference(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    q_rot: Tensor,
    k_rot: Tensor,
    beta: Tensor,
    gamma: Tensor,
    initial_kv: Tensor | None = None,
    initial_z: Tensor | None = None,
    reverse: bool = False,
    exclusive: bool = False,
    resets: Tensor | None = None,
    with_denominator: bool = True,
) -> tuple[Tensor, Tensor | None, Tensor, Tensor | None]:
    """Shapes as ``kernels.frame_gdn.scan``. Returns (num, den, final_kv, final_z)."""
    b, h, t, s, dk = q.shape
    dv = v.shape[-1]
    q, k, v, q_rot, k_rot, beta, gamma = (x.float() for x in (q, k, v, q_rot, k_rot, beta, gamma))
    kv = torch.zeros(b, h, dv, dk, device=q.device) if initial_kv is None else initial_kv.float()
    z = None
    if with_denominator:
        z = torch.zeros(b, h, dk, device=q.device) if initial_z is None else initial_z.float()
    nums, dens = [None] * t, [None] * t
    for i in range(t - 1, -1, -1) if reverse else range(t):
        if resets is not None and bool(resets[i]):
            kv = torch.zeros_like(kv)
            z = None if z is None else torch.zeros_like(z)
        if exclusive:
            nums[i], dens[i] = _read(kv, z, q[:, :, i], q_rot[:, :, i])
        g = gamma[:, :, i, None, None]
        bt = beta[:, :, i, :, None]  # (B, H, S, 1)
        pred = k_rot[:, :, i] @ kv.transpose(-1, -2)  # (B, H, S, Dv): what the state recalls for each key
        kv = g * kv + ((v[:, :, i] - g * pred) * bt).transpose(-1, -2) @ k_rot[:, :, i]
        if z is not None:
            recall = (k[:, :, i] @ z[..., None]).squeeze(-1)  # (B, H, S)
            z = g[..., 0] * z + ((beta[:, :, i] * (1 - gamma[:, :, i, None] * recall))[..., None] * k[:, :, i]).sum(-2)
        if not exclusive:
            nums[i], dens[i] = _read(kv, z, q[:, :, i], q_rot[:, :, i])
    num = torch.stack(nums, dim=2)
    den = torch.stack(dens, dim=2) if with_denominator else None
    return num, den, kv, z


def _read(kv: Tensor, z: Tensor | None, q: Tensor, q_rot: Tensor) -> tuple[Tensor, Tensor | None]:
    num = q_rot @ kv.transpose(-1, -2)  # (B, H, S, Dv)
    den = None if z is None else (q @ z[..., None]).squeeze(-1)  # (B, H, S)
    return num, den
