"""UCPE: per-ray SE(3) frames that carry camera geometry into attention (the release's camera branch A).

Every token gets the frame of the ray through its pixel: z along the ray (world frame), x
perpendicular to it and to the camera's y axis, y completing the frame, origin at the camera centre.
``ray_frames`` returns the ray<-world transforms P (4x4). In attention, the first half of each head's
channels is treated as groups of 4-vectors and moved by P^T (queries) or P^-1 (keys, values); the
second half gets RoPE. Outputs come back through P and the inverse RoPE. A query-key product then
depends on the relative pose of the two rays (PRoPE-style), not on the world frame.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .camera import camera_directions, se3_inverse
from .norms import cpu_backward, wide
from .rope import apply_rope

Tensor = torch.Tensor


def ray_frames(camera: Tensor, grid: tuple[int, int, int], patch_size: tuple[int, int, int]) -> Tensor:
    """ray<-world transforms (B, T * h * w, 4, 4) for camera conditions ``camera`` (B, T, 20).

    ``camera`` rows are the flattened 4x4 camera-to-world pose then (fx, fy, cx, cy) on the latent
    grid; ``grid`` is the token grid (T, h, w); the intrinsics are divided by the patch size. Rays pass
    through integer token coordinates, as in the release.
    """
    # Geometry in the camera's precision: under bf16 autocast the matmuls would round the rays.
    with torch.autocast(camera.device.type, enabled=False):
        b, t = camera.shape[:2]
        _, h, w = grid
        c2w = camera[..., :16].reshape(b, t, 4, 4)
        k = camera[..., 16:20] / torch.tensor([patch_size[2], patch_size[1], patch_size[2], patch_size[1]], dtype=camera.dtype, device=camera.device)
        dirs = camera_directions(k, h, w, pixel_offset=0.0)  # (B, T, h, w, 3)
        rot = c2w[..., None, None, :3, :3]
        z = F.normalize((rot @ dirs[..., None]).squeeze(-1), dim=-1, eps=1e-6)
        cam_y = c2w[..., None, None, :3, 1].expand_as(z)
        x = F.normalize(torch.linalg.cross(cam_y, z, dim=-1), dim=-1, eps=1e-6)
        y = F.normalize(torch.linalg.cross(z, x, dim=-1), dim=-1, eps=1e-6)
        ray_to_world = torch.zeros(b, t, h, w, 4, 4, dtype=camera.dtype, device=camera.device)
        ray_to_world[..., :3, :3] = torch.stack([x, y, z], dim=-1)
        ray_to_world[..., :3, 3] = c2w[..., None, None, :3, 3]
        ray_to_world[..., 3, 3] = 1
        return se3_inverse(ray_to_world).reshape(b, t * h * w, 4, 4)


def ucpe_transform(x: Tensor, mats: Tensor, freqs: Tensor | None, inverse_rope: bool = False) -> Tensor:
    """Apply per-token 4x4 ``mats`` (B, N, 4, 4) to the first half of ``x`` (B, H, N, D) in groups of
    four channels and RoPE ``freqs`` (N, D / 4, 2) to the second half."""
    b, h, n, d = x.shape
    geo, rot = x.split(d // 2, dim=-1)
    geo = torch.einsum("bnij,bhngj->bhngi", mats.to(geo.dtype), geo.reshape(b, h, n, -1, 4)).reshape(b, h, n, d // 2)
    if freqs is not None:
        rot = apply_rope(rot, freqs, inverse=inverse_rope)
    return torch.cat([geo, rot], dim=-1)


def _rms_scale(reference: Tensor, x: Tensor, eps: float) -> tuple[Tensor, Tensor, Tensor]:
    """The two RMS over the last dim and the capped scale ref / cur <= 1, (..., 1) each."""
    ref = reference.square().mean(-1, keepdim=True).add(eps).sqrt()
    cur = x.square().mean(-1, keepdim=True).add(eps).sqrt().clamp_min(eps)
    return ref, cur, (ref / cur).clamp(max=1.0)


class _MatchRMS(torch.autograd.Function):
    """``match_rms`` with a hand-written backward (four passes over the activations, where autograd
    through the chain of small ops makes about twenty; see ``model.norms``) and the same forward."""

    @staticmethod
    def forward(ctx, reference: Tensor, x: Tensor, eps: float) -> Tensor:
        ref, cur, scale = _rms_scale(reference, x, eps)
        ctx.save_for_backward(reference, x, ref, cur, scale)
        return x * scale

    @staticmethod
    def backward(ctx, grad: Tensor):
        reference, x, ref, cur, scale = ctx.saved_tensors
        dtypes = reference.dtype, x.dtype
        reference, x, ref, cur, scale, grad = (wide(t) for t in (reference, x, ref, cur, scale, grad))
        d = x.shape[-1]
        # out = x * ref / cur where the cap does not bind (elsewhere x, which depends on nothing else):
        # d ref / d reference = reference / (D ref), d cur / d x = x / (D cur)
        dot = torch.where(scale < 1, torch.linalg.vecdot(grad, x, dim=-1)[..., None], 0.0) / (d * cur)
        d_x = (grad * scale).addcmul_(x, dot * -scale / cur)
        d_ref = (reference * (dot / ref)).to(dtypes[0]) if ctx.needs_input_grad[0] else None
        return d_ref, d_x.to(dtypes[1]), None


def match_rms(reference: Tensor, x: Tensor, eps: float = 1e-6) -> Tensor:
    """Scale ``x`` (..., D) down per row where its RMS over D exceeds the reference's: the UCPE
    translation can inflate features, and the release keeps them on the pre-transform scale."""
    if not cpu_backward(x, reference):
        return x * _rms_scale(reference, x, eps)[2]
    return _MatchRMS.apply(reference, x, eps)
