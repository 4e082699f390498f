"""3-D rotary position embedding over (frame, row, column) token positions.

A head of size D rotates D/2 channel pairs (2i, 2i+1). The pairs are split between the axes as the
release does: D/6 pairs each for rows and columns, the remaining D/2 - 2 * (D/6) for frames, each
axis with its own frequency ladder 1 / theta^(2j / axis_dim).
"""

from __future__ import annotations

import torch

Tensor = torch.Tensor


def axis_pairs(head_dim: int) -> tuple[int, int, int]:
    """Channel pairs rotated by the frame, row and column positions."""
    hw = head_dim // 6
    return head_dim // 2 - 2 * hw, hw, hw


def _axis_freqs(pairs: int, positions: Tensor, theta: float) -> Tensor:
    """Rotations (len(positions), pairs, 2) as (cos, sin) for one axis of 2 * pairs channels."""
    dim = 2 * pairs
    inv = 1.0 / theta ** (torch.arange(0, dim, 2, dtype=torch.float32, device=positions.device)[:pairs] / dim)
    angles = torch.outer(positions.float(), inv)
    return torch.stack([angles.cos(), angles.sin()], dim=-1)


def rope_freqs(head_dim: int, frames: Tensor | int, height: int, width: int, theta: float = 10000.0) -> Tensor:
    """Rotations (T * H * W, head_dim / 2, 2) as (cos, sin) for a (T, H, W) grid of tokens, frame-major.

    Real, not complex: the eager rotation views them as complex numbers, and a compiled graph keeps
    them real (inductor generates no code for complex tensors).

    ``frames`` is a count (positions 0..T-1), a tensor (T,) of absolute frame indices, which is how a
    streaming generator keeps positions of later chunks, or a tensor (B, T) of each world's own indices
    (worlds at different frames in one batch), which gives rotations (B, T * H * W, head_dim / 2, 2).
    The rotations are computed on the positions' device.
    """
    frame_pos = torch.arange(frames) if isinstance(frames, int) else frames
    pt, ph, pw = axis_pairs(head_dim)
    lead, t = frame_pos.shape[:-1], frame_pos.shape[-1]  # lead: () or (B,)
    ft = _axis_freqs(pt, frame_pos.reshape(-1), theta).reshape(*lead, t, pt, 2)
    fh = _axis_freqs(ph, torch.arange(height, device=frame_pos.device), theta)
    fw = _axis_freqs(pw, torch.arange(width, device=frame_pos.device), theta)
    h, w = height, width
    grid = torch.cat(
        [ft[..., :, None, None, :, :].expand(*lead, t, h, w, pt, 2), fh[:, None].expand(*lead, t, h, w, ph, 2),
         fw[None, :].expand(*lead, t, h, w, pw, 2)],
        dim=-2,
    )
    return grid.reshape(*lead, t * h * w, -1, 2)


def half_head_freqs(freqs: Tensor, head_dim: int) -> Tensor:
    """The rotations for a head of size head_dim / 2 (the RoPE half of a UCPE head), taken from the
    full head's table axis by axis: the lowest-frequency pairs of each axis are dropped."""
    pt, ph, _ = axis_pairs(head_dim)
    nt, nh, nw = axis_pairs(head_dim // 2)
    return torch.cat([freqs[..., :nt, :], freqs[..., pt : pt + nh, :], freqs[..., pt + ph : pt + ph + nw, :]], dim=-2)


def apply_rope(x: Tensor, freqs: Tensor, inverse: bool = False) -> Tensor:
    """Rotate channel pairs of ``x`` (..., N, D) by ``freqs`` (N, D / 2, 2); in fp32, returned in x's dtype."""
    pairs = x.float().reshape(*x.shape[:-1], -1, 2)
    if torch.compiler.is_compiling():
        # Real arithmetic, which inductor fuses with its neighbours; eager, one complex product is faster.
        cos, sin = freqs.unbind(-1)
        sin = -sin if inverse else sin
        x0, x1 = pairs.unbind(-1)
        return torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1).flatten(-2).to(x.dtype)
    rot = torch.view_as_complex(freqs)
    rot = rot.conj() if inverse else rot
    return torch.view_as_real(torch.view_as_complex(pairs.contiguous()) * rot).flatten(-2).to(x.dtype)
