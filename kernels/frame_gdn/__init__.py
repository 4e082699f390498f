"""Frame-wise gated delta rule (the recurrence of SANA-WM's GDN blocks): one dispatch point.

``scan`` (one scan) and ``bidirectional_scan`` (a forward scan from a carried state plus an exclusive
reverse scan, normalised: the bidirectional and chunk-causal modes and the streaming step) run the
Triton kernels on CUDA tensors and PyTorch elsewhere (``bidirectional_scan`` in the transition form of
``transitions.py``, tested against the reference; faster on the env's streamed chunks);
``force_triton()`` (or ``SANAWM_FORCE_TRITON=1``) sends CPU tensors to the kernels too (and
``force_triton(False)`` CUDA tensors to the reference), which with
``TRITON_INTERPRET=1`` runs the real kernel code on the CPU (how the tests check it).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence

import torch

from .reference import scan_reference
from .transitions import bidirectional_transitions

Tensor = torch.Tensor
# None: by device; True: the Triton kernels everywhere; False: the PyTorch reference everywhere.
_FORCE: dict[str, bool | None] = {"triton": True if os.environ.get("SANAWM_FORCE_TRITON", "") == "1" else None}


def _use_triton(x: Tensor) -> bool:
    return x.is_cuda if _FORCE["triton"] is None else bool(_FORCE["triton"])


@contextlib.contextmanager
def force_triton(enabled: bool = True) -> Iterator[None]:
    """Within the block, the scans use the Triton kernels (``True``) or the PyTorch reference
    (``False``) whatever the device."""
    before = _FORCE["triton"]
    _FORCE["triton"] = enabled
    try:
        yield
    finally:
        _FORCE["triton"] = before


def scan(
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
    chunk: int = 16,
) -> tuple[Tensor, Tensor | None, Tensor, Tensor | None]:
    """One frame-wise gated delta rule scan (see ``reference.py`` for the recurrence).

    Args:
        q, k, q_rot, k_rot: [B, H, T, S, K] queries and keys (unrotated for the normaliser, rotated
            for the numerator); v: [B, H, T, S, V]; beta: [B, H, T, S]; gamma: [B, H, T].
        initial_kv: [B, H, V, K] fp32 carried state; initial_z: [B, H, K]; zeros if None.
        reverse: scan frames from last to first. exclusive: a frame reads the state before its write.
        resets: [T] bool/int (a tensor or a sequence), zero the state before these frames (the reverse
            scan inside chunks).
        with_denominator: also run the normaliser stream z (the camera branch does not).
        chunk: frames between the forward's state checkpoints (the backward recomputes in between).

    Returns:
        num [B, H, T, S, V] fp32, den [B, H, T, S] fp32 (None without denominator), and the final
        state kv [B, H, V, K], z [B, H, K].

    Example:
        >>> B, H, T, S, K = 1, 2, 5, 16, 32
        >>> q, k = torch.rand(B, H, T, S, K), torch.rand(B, H, T, S, K) / (K * S) ** 0.5
        >>> num, den, kv, z = scan(q, k, torch.randn(B, H, T, S, K), q, k, torch.rand(B, H, T, S), torch.rand(B, H, T))
        >>> (num / (den[..., None] + 1e-15)).shape
        torch.Size([1, 2, 5, 16, 32])
    """
    _check(q, k, v, q_rot, k_rot, beta, gamma, initial_kv, initial_z, resets, chunk)
    if not _use_triton(q):
        return scan_reference(q, k, v, q_rot, k_rot, beta, gamma, initial_kv, initial_z, reverse, exclusive, resets, with_denominator)
    from .fused_recurrent import FrameGDNScan

    t = q.shape[2]
    resets = torch.zeros(t, dtype=torch.int32, device=q.device) if resets is None else torch.as_tensor(resets, device=q.device).to(torch.int32).contiguous()
    c = lambda x: x.contiguous()  # noqa: E731
    return FrameGDNScan.apply(c(q), c(k), c(v), c(q_rot), c(k_rot), c(beta), c(gamma), initial_kv, initial_z,
                              reverse, exclusive, resets, with_denominator, chunk, None)


def bidirectional_scan(
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
    """out = (num_fwd + num_rev) / (den_fwd + den_rev + eps) (numerators only without denominator):
    an inclusive forward scan from the carried state and an exclusive reverse scan that restarts
    at ``resets``. Returns out [B, H, T, S, V] fp32 and the forward scan's final state.

    Without gradients and with one reverse segment (``resets`` None: the bidirectional model, or
    one streamed chunk) the Triton path is a single fused launch.
    """
    _check(q, k, v, q_rot, k_rot, beta, gamma, initial_kv, initial_z, resets, 1)
    tensors = (q, k, v, q_rot, k_rot, beta, gamma, initial_kv, initial_z)
    needs_grad = torch.is_grad_enabled() and any(x is not None and x.requires_grad for x in tensors)
    if _use_triton(q) and resets is None and not needs_grad:
        from .fused_recurrent import stream_chunk_triton

        b, h, _, _, dk = q.shape
        kv = torch.zeros(b, h, v.shape[-1], dk, device=q.device) if initial_kv is None else initial_kv
        z = torch.zeros(b, h, dk, device=q.device) if initial_z is None and with_denominator else initial_z
        c = lambda x: x.contiguous()  # noqa: E731
        return stream_chunk_triton(c(q), c(k), c(v), c(q_rot), c(k_rot), c(beta), c(gamma), kv, z, with_denominator, eps)
    if not _use_triton(q):
        return bidirectional_transitions(q, k, v, q_rot, k_rot, beta, gamma, initial_kv, initial_z, resets, with_denominator, eps)
    num, den, kv, z = scan(q, k, v, q_rot, k_rot, beta, gamma, initial_kv, initial_z, with_denominator=with_denominator)
    num_r, den_r, _, _ = scan(q, k, v, q_rot, k_rot, beta, gamma, reverse=True, exclusive=True, resets=resets,
                              with_denominator=with_denominator)
    if not with_denominator:
        return num + num_r, kv, z
    return (num + num_r) / (den + den_r + eps)[..., None], kv, z


def _check(q, k, v, q_rot, k_rot, beta, gamma, initial_kv, initial_z, resets, chunk) -> None:
    if q.ndim != 5:
        raise ValueError(f"q must be [B, H, T, S, K], got shape {tuple(q.shape)}")
    b, h, t, s, dk = q.shape
    for name, x in (("k", k), ("q_rot", q_rot), ("k_rot", k_rot)):
        if x.shape != q.shape:
            raise ValueError(f"{name} must have the shape of q {tuple(q.shape)}, got {tuple(x.shape)}")
    if v.ndim != 5 or v.shape[:4] != q.shape[:4]:
        raise ValueError(f"v must be [B, H, T, S, V] = [{b}, {h}, {t}, {s}, V], got {tuple(v.shape)}")
    if beta.shape != q.shape[:4]:
        raise ValueError(f"beta must be [B, H, T, S] = {tuple(q.shape[:4])}, got {tuple(beta.shape)}")
    if gamma.shape != q.shape[:3]:
        raise ValueError(f"gamma must be [B, H, T] = {tuple(q.shape[:3])}, got {tuple(gamma.shape)}")
    if initial_kv is not None and initial_kv.shape != (b, h, v.shape[-1], dk):
        raise ValueError(f"initial_kv must be [B, H, V, K] = {(b, h, v.shape[-1], dk)}, got {tuple(initial_kv.shape)}")
    if initial_z is not None and initial_z.shape != (b, h, dk):
        raise ValueError(f"initial_z must be [B, H, K] = {(b, h, dk)}, got {tuple(initial_z.shape)}")
    shape = None if resets is None else tuple(resets.shape) if isinstance(resets, torch.Tensor) else (len(resets),)
    if shape is not None and shape != (t,):
        raise ValueError(f"resets must be [T] = ({t},), got {shape}")
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1 frames, got {chunk}")
    for name, x in (("q", q), ("k", k), ("v", v), ("q_rot", q_rot), ("k_rot", k_rot)):
        if x.dtype not in (torch.float32, torch.float16, torch.bfloat16):
            raise TypeError(f"{name} must be float32, float16 or bfloat16, got {x.dtype}")
