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
    """Complex rotations (len(positions), pairs) for one axis of 2 * pairs channels."""
    dim = 2 * pairs
    inv = 1.0 / theta ** (torch.arange(0, dim, 2, dtype=torch.float32)[:pairs] / dim)
    return torch.polar(torch.ones(len(positions), pairs), torch.outer(positions.float(), inv))


def rope_freqs(head_dim: int, frames: Tensor | int, height: int, width: int, theta: float = 10000.0) -> Tensor:
    """Rotations (T * H * W, head_dim / 2) complex64 for a (T, H, W) grid of tokens, frame-major.

    ``frames`` is a count (positions 0..T-1) or a tensor of absolute frame indices, which is how a
    streaming generator keeps positions of later chunks.
    """
    frame_pos = torch.arange(frames) if isinstance(frames, int) else frames
    pt, ph, pw = axis_pairs(head_dim)
    ft = _axis_freqs(pt, frame_pos, theta)
    fh = _axis_freqs(ph, torch.arange(height), theta)
    fw = _axis_freqs(pw, torch.arange(width), theta)
    t, h, w = len(frame_pos), height, width
    grid = torch.cat(
        [ft[:, None, None].expand(t, h, w, pt), fh[None, :, None].expand(t, h, w, ph), fw[None, None, :].expand(t, h, w, pw)],
        dim=-1,
    )
    return grid.reshape(t * h * w, -1)


def half_head_freqs(freqs: Tensor, head_dim: int) -> Tensor:
    """The rotations for a head of size head_dim / 2 (the RoPE half of a UCPE head), taken from the
    full head's table axis by axis: the lowest-frequency pairs of each axis are dropped."""
    pt, ph, _ = axis_pairs(head_dim)
    nt, nh, nw = axis_pairs(head_dim // 2)
    return torch.cat([freqs[..., :nt], freqs[..., pt : pt + nh], freqs[..., pt + ph : pt + ph + nw]], dim=-1)


def apply_rope(x: Tensor, freqs: Tensor, inverse: bool = False) -> Tensor:
    """Rotate channel pairs of ``x`` (..., N, D) by ``freqs`` (N, D / 2); in fp32, returned in x's dtype."""
    rot = freqs.conj() if inverse else freqs
    xc = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2).contiguous())
    return torch.view_as_real(xc * rot).flatten(-2).to(x.dtype)
