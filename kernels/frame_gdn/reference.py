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

from collections.abc import Callable, Sequence

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
    resets: Tensor | Sequence[bool] | None = None,
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
    restart = restart_flags(resets, t)
    # Frames as separate views up front: indexing a frame inside the loop would make its backward
    # write a whole-sequence zero tensor per frame and per use (quadratic in T).
    q, k, v, q_rot, k_rot, beta, gamma = (x.unbind(2) for x in (q, k, v, q_rot, k_rot, beta, gamma))
    for i in range(t - 1, -1, -1) if reverse else range(t):
        if restart[i]:
            kv = torch.zeros_like(kv)
            z = None if z is None else torch.zeros_like(z)
        if exclusive:
            nums[i], dens[i] = _read(kv, z, q[i], q_rot[i])
        g = gamma[i][:, :, None, None]
        bt = beta[i][..., None]  # (B, H, S, 1)
        pred = k_rot[i] @ kv.transpose(-1, -2)  # (B, H, S, Dv): what the state recalls for each key
        kv = g * kv + ((v[i] - g * pred) * bt).transpose(-1, -2) @ k_rot[i]
        if z is not None:
            recall = (k[i] @ z[..., None]).squeeze(-1)  # (B, H, S)
            z = g[..., 0] * z + ((beta[i] * (1 - gamma[i][:, :, None] * recall))[..., None] * k[i]).sum(-2)
        if not exclusive:
            nums[i], dens[i] = _read(kv, z, q[i], q_rot[i])
    num = torch.stack(nums, dim=2)
    den = torch.stack(dens, dim=2) if with_denominator else None
    return num, den, kv, z


def restart_flags(resets: Tensor | Sequence[bool] | None, t: int) -> list[bool]:
    """Per frame, whether the state restarts there, as Python bools read once (a flag read from a tensor
    in the loop would sync per frame, and break a compiled graph)."""
    if resets is None:
        return [False] * t
    return [bool(r) for r in (resets.tolist() if isinstance(resets, Tensor) else resets)]


def _read(kv: Tensor, z: Tensor | None, q: Tensor, q_rot: Tensor) -> tuple[Tensor, Tensor | None]:
    num = q_rot @ kv.transpose(-1, -2)  # (B, H, S, Dv)
    den = None if z is None else (q @ z[..., None]).squeeze(-1)  # (B, H, S)
    return num, den


def scan_steps(x: Tensor) -> tuple[Tensor, ...]:
    """(B, H, T, ...) -> per step of ``bidirectional_loop``, the (2B, H, ...) slice: forward frame i beside
    reverse frame T-1-i. Separate views up front (see scan_reference)."""
    return torch.cat([x, x.flip(2)]).unbind(2)


def bidirectional_loop(
    write: Callable[[int, Tensor, Tensor | None], tuple[Tensor, Tensor | None]],
    q: Tensor,
    q_rot: Tensor,
    v: Tensor,
    initial_kv: Tensor | None,
    initial_z: Tensor | None,
    resets: Tensor | Sequence[bool] | None,
    with_denominator: bool,
    eps: float,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """A bidirectional scan's loop and reads (fp32 ``q``, ``q_rot``), whatever the form of a frame's write.

    The states kv (2B, H, Dv, Dk) and z (2B, H, Dk) hold the forward scan's state (from the initial
    one) in their first B rows and the reverse scan's (from zero) in the next B; step i writes forward
    frame i and reverse frame T-1-i (``write(i, kv, z)``), the reverse half restarting at ``resets``
    and read before its write (exclusive). Since a read is linear in the state, each frame reads once
    from the sum of its two states. Returns as ``bidirectional_scan``.
    """
    b, h, t, _, dk = q.shape
    kv = torch.zeros(2 * b, h, v.shape[-1], dk, device=q.device)
    if initial_kv is not None:
        kv[:b] = initial_kv.float()
    z = None
    if with_denominator:
        z = torch.zeros(2 * b, h, dk, device=q.device)
        if initial_z is not None:
            z[:b] = initial_z.float()
    kv_read, z_read = [None] * t, [None] * t
    restart = restart_flags(resets, t)
    for i in range(t):
        j = t - 1 - i  # the reverse scan's frame
        if restart[j]:
            kv = torch.cat([kv[:b], torch.zeros_like(kv[b:])])
            z = None if z is None else torch.cat([z[:b], torch.zeros_like(z[b:])])
        rev_kv, rev_z = kv[b:], None if z is None else z[b:]
        kv, z = write(i, kv, z)
        kv_read[i] = kv[:b] if kv_read[i] is None else kv_read[i] + kv[:b]
        kv_read[j] = rev_kv if kv_read[j] is None else kv_read[j] + rev_kv
        if z is not None:
            z_read[i] = z[:b] if z_read[i] is None else z_read[i] + z[:b]
            z_read[j] = rev_z if z_read[j] is None else z_read[j] + rev_z
    num = q_rot @ torch.stack(kv_read, dim=2).transpose(-1, -2)  # (B, H, T, S, Dv)
    if z is None:
        return num, kv[:b], None
    den = (q @ torch.stack(z_read, dim=2)[..., None]).squeeze(-1)  # (B, H, T, S)
    return num / (den + eps)[..., None], kv[:b], z[:b]


def bidirectional_reference(
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
    """``bidirectional_scan`` in PyTorch: the inclusive forward scan and the exclusive reverse scan
    (restarting at ``resets``) of ``scan_reference``, combined.

    Both scans advance together as one batch of 2B (``bidirectional_loop``): half the small ops of
    running the scans one after the other, which is what costs on the CPU.
    """
    q, k, v, q_rot, k_rot, beta, gamma = (x.float() for x in (q, k, v, q_rot, k_rot, beta, gamma))
    v2, kr2, beta2, gamma2 = (scan_steps(x) for x in (v, k_rot, beta, gamma))
    k2 = scan_steps(k) if with_denominator else None

    def write(i: int, kv: Tensor, z: Tensor | None) -> tuple[Tensor, Tensor | None]:
        g = gamma2[i][:, :, None, None]
        bt = beta2[i][..., None]
        pred = kr2[i] @ kv.transpose(-1, -2)
        kv = g * kv + ((v2[i] - g * pred) * bt).transpose(-1, -2) @ kr2[i]
        if z is not None:
            recall = k2[i] @ z[..., None]  # (2B, H, S, 1)
            z = g[..., 0] * z + ((bt * (1 - g * recall)).transpose(-1, -2) @ k2[i]).squeeze(-2)
        return kv, z

    return bidirectional_loop(write, q, q_rot, v, initial_kv, initial_z, resets, with_denominator, eps)
