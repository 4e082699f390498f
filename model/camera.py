"""Camera geometry shared by the world model and the environments.

Conventions (the same as SANA-WM's release, and used everywhere in this project):

* Camera axes are OpenCV's: x right, y down, z forward.
* Poses are camera-to-world 4x4 matrices (``c2w``), translations in metres.
* The world's y axis points down too, so the identity pose is a level camera looking along +z, the
  floor of the procedural worlds is the plane y = 0 and heights above it are negative y.
* Intrinsics are ``(fx, fy, cx, cy)`` in pixels of the image they belong to. A continuous image
  coordinate ``(u, v)`` sees the camera-frame direction ``((u - cx) / fx, (v - cy) / fy, 1)``. Pixel
  ``(row i, column j)`` sits at ``(j + pixel_offset, i + pixel_offset)``: 0.5 is the centre of the pixel
  (what the renderer uses), 0.0 is the release's convention for its Plucker maps.
* A 6-DoF action delta is ``(dx, dy, dz, droll, dpitch, dyaw)`` in the camera frame of the pose it is
  applied to: translation in metres along the camera axes, rotation in radians as one rotation vector
  (pitch about x, yaw about y, roll about z). Positive yaw turns right, positive pitch looks up,
  positive roll turns the camera clockwise as seen from behind it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from .atomic import write_text_atomic

Tensor = torch.Tensor


# --------------------------------------------------------------------------------------------------
# SO(3) / SE(3)


def _skew(v: Tensor) -> Tensor:
    """(..., 3) -> (..., 3, 3) cross-product matrices."""
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], dim=-1).reshape(*v.shape[:-1], 3, 3)


def so3_exp(rotvec: Tensor) -> Tensor:
    """Rotation vectors (..., 3) to rotation matrices (..., 3, 3) (Rodrigues' formula)."""
    theta2 = (rotvec * rotvec).sum(-1, keepdim=True)[..., None]  # (..., 1, 1)
    theta = theta2.sqrt()
    small = theta2 < 1e-8
    # Taylor series near zero keep the formula finite and accurate.
    a = torch.where(small, 1 - theta2 / 6, torch.sin(theta) / theta.clamp_min(1e-12))
    b = torch.where(small, 0.5 - theta2 / 24, (1 - torch.cos(theta)) / theta2.clamp_min(1e-12))
    k = _skew(rotvec)
    eye = torch.eye(3, dtype=rotvec.dtype, device=rotvec.device).expand_as(k)
    return eye + a * k + b * (k @ k)


def so3_log(rot: Tensor) -> Tensor:
    """Rotation matrices (..., 3, 3) to rotation vectors (..., 3), angle in [0, pi]."""
    cos = ((rot.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1, 1)
    theta = torch.acos(cos)
    w = torch.stack(
        [rot[..., 2, 1] - rot[..., 1, 2], rot[..., 0, 2] - rot[..., 2, 0], rot[..., 1, 0] - rot[..., 0, 1]],
        dim=-1,
    )
    sin = torch.sin(theta)
    small = theta < 1e-4
    scale = torch.where(small, 0.5 + theta**2 / 12, theta / (2 * sin.clamp_min(1e-12)))
    out = w * scale[..., None]
    # Near pi the antisymmetric part vanishes: read the axis from the symmetric part instead.
    near_pi = theta > math.pi - 1e-3
    if near_pi.any():
        sym = (rot + rot.transpose(-1, -2)) / 2 - cos[..., None, None] * torch.eye(3, dtype=rot.dtype, device=rot.device)
        col = sym.diagonal(dim1=-2, dim2=-1).argmax(-1)
        axis = torch.gather(sym, -1, col[..., None, None].expand(*sym.shape[:-1], 1)).squeeze(-1)
        axis = axis / axis.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        axis = axis * torch.where((axis * w).sum(-1, keepdim=True) < 0, -1.0, 1.0).to(axis)
        out = torch.where(near_pi[..., None], axis * theta[..., None], out)
    return out


def se3(rot: Tensor, trans: Tensor) -> Tensor:
    """Rotation (..., 3, 3) and translation (..., 3) to homogeneous transforms (..., 4, 4)."""
    out = torch.zeros(*rot.shape[:-2], 4, 4, dtype=rot.dtype, device=rot.device)
    out[..., :3, :3] = rot
    out[..., :3, 3] = trans
    out[..., 3, 3] = 1
    return out


def se3_inverse(pose: Tensor) -> Tensor:
    """Inverse of rigid transforms (..., 4, 4), using R^T rather than a general matrix inverse."""
    rot_t = pose[..., :3, :3].transpose(-1, -2)
    return se3(rot_t, -(rot_t @ pose[..., :3, 3:]).squeeze(-1))


def se3_compose(*poses: Tensor) -> Tensor:
    """Left-to-right product of rigid transforms: ``se3_compose(a, b)`` maps b's frame through a."""
    out = poses[0]
    for p in poses[1:]:
        out = out @ p
    return out


def camera_delta(delta: Tensor) -> Tensor:
    """6-DoF deltas (..., 6) = (dx, dy, dz, droll, dpitch, dyaw) to transforms (..., 4, 4).

    The result is ``[R | t]`` with R the rotation of the vector (dpitch, dyaw, droll) about the camera's
    (x, y, z) axes and t the translation, both in the camera frame of the pose it multiplies from the
    right: ``new_c2w = c2w @ camera_delta(delta)``.
    """
    if delta.shape[-1] != 6:
        raise ValueError(f"delta must have 6 entries (dx, dy, dz, droll, dpitch, dyaw) in its last dim, got shape {tuple(delta.shape)}")
    roll, pitch, yaw = delta[..., 3], delta[..., 4], delta[..., 5]
    # With y down and z forward, a positive rotation about +x tips z towards -y (up) and one about +y
    # tips z towards +x (right), as the release's keyboard controls do.
    rotvec = torch.stack([pitch, yaw, roll], dim=-1)
    return se3(so3_exp(rotvec), delta[..., :3])


def apply_camera_delta(c2w: Tensor, delta: Tensor) -> Tensor:
    """Move cameras (..., 4, 4) by deltas (..., 6) expressed in their own frames."""
    return c2w @ camera_delta(delta.to(c2w.dtype))


def delta_steps(delta: Tensor, num_frames: int) -> Tensor:
    """Split a delta (6,) into ``num_frames`` frame-to-frame increments (num_frames, 4, 4).

    ``c2w @ steps[0] @ ... @ steps[k - 1] == c2w @ camera_delta((k / num_frames) * delta)``: translation
    and rotation vector grow linearly over the frames, so the last frame lands exactly on the delta.
    The increments do not depend on the starting pose, so replaying them from wherever a camera is
    (after a collision, say) keeps its rotation orthonormal.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    frac = torch.arange(num_frames + 1, dtype=delta.dtype, device=delta.device) / num_frames
    cumulative = camera_delta(frac[:, None] * delta)  # (F + 1, 4, 4), the first is identity
    return se3_inverse(cumulative[:-1]) @ cumulative[1:]


def relative_to_first(c2w: Tensor) -> Tensor:
    """Poses (F, 4, 4) re-expressed in the frame of the first one (so the first becomes identity)."""
    return se3_inverse(c2w[:1]) @ c2w


def scale_translation(c2w: Tensor, scale: float | Tensor) -> Tensor:
    """Multiply the translations of poses (..., 4, 4) by ``scale`` (e.g. to metres)."""
    out = c2w.clone()
    out[..., :3, 3] = out[..., :3, 3] * scale
    return out


def look_at(eye: Tensor, target: Tensor, down: Tensor | None = None) -> Tensor:
    """Camera-to-world pose at ``eye`` (3,) whose z axis points at ``target`` (3,); world +y is down."""
    down = torch.tensor([0.0, 1.0, 0.0], dtype=eye.dtype) if down is None else down
    z = target - eye
    z = z / z.norm()
    x = torch.linalg.cross(down, z)
    x = x / x.norm()
    y = torch.linalg.cross(z, x)
    return se3(torch.stack([x, y, z], dim=-1), eye)


# --------------------------------------------------------------------------------------------------
# Intrinsics, rays, Plucker maps


def intrinsics_from_fov(fov_x_deg: float, height: int, width: int) -> Tensor:
    """Pinhole intrinsics (4,) = (fx, fy, cx, cy) with square pixels and the principal point centred."""
    if not 0 < fov_x_deg < 180:
        raise ValueError(f"fov_x_deg must be in (0, 180) degrees, got {fov_x_deg}")
    if height <= 0 or width <= 0:
        raise ValueError(f"height and width must be positive, got {height} x {width}")
    f = (width / 2) / math.tan(math.radians(fov_x_deg) / 2)
    return torch.tensor([f, f, width / 2, height / 2], dtype=torch.float64)


def rescale_intrinsics(intrinsics: Tensor, from_size: tuple[int, int], to_size: tuple[int, int]) -> Tensor:
    """Intrinsics (..., 4) of an image of ``from_size`` (H, W) for the same view sampled at ``to_size``.

    Used to put pixel intrinsics on a latent grid: the continuous image coordinate scales by
    to / from on each axis, so fx, cx scale with the widths and fy, cy with the heights.
    """
    (h0, w0), (h1, w1) = from_size, to_size
    if min(h0, w0, h1, w1) <= 0:
        raise ValueError(f"sizes must be positive, got from_size={from_size}, to_size={to_size}")
    sx, sy = w1 / w0, h1 / h0
    scale = torch.tensor([sx, sy, sx, sy], dtype=intrinsics.dtype, device=intrinsics.device)
    return intrinsics * scale


def intrinsics_matrix(intrinsics: Tensor) -> Tensor:
    """(..., 4) = (fx, fy, cx, cy) to 3x3 calibration matrices (..., 3, 3)."""
    fx, fy, cx, cy = intrinsics.unbind(-1)
    o, one = torch.zeros_like(fx), torch.ones_like(fx)
    return torch.stack([fx, o, cx, o, fy, cy, o, o, one], dim=-1).reshape(*intrinsics.shape[:-1], 3, 3)


def camera_directions(intrinsics: Tensor, height: int, width: int, pixel_offset: float = 0.5) -> Tensor:
    """Camera-frame ray directions (..., H, W, 3) with z = 1, so a ray's parameter is its z-depth."""
    dtype, device = intrinsics.dtype, intrinsics.device
    v = torch.arange(height, dtype=dtype, device=device) + pixel_offset
    u = torch.arange(width, dtype=dtype, device=device) + pixel_offset
    fx, fy, cx, cy = (c[..., None, None] for c in intrinsics.unbind(-1))
    x = (u[None, :] - cx) / fx  # (..., 1, W)
    y = (v[:, None] - cy) / fy  # (..., H, 1)
    x, y = torch.broadcast_tensors(x, y)
    return torch.stack([x, y, torch.ones_like(x)], dim=-1)


def pixel_rays(
    c2w: Tensor,
    intrinsics: Tensor,
    height: int,
    width: int,
    pixel_offset: float = 0.5,
    normalize: bool = True,
) -> tuple[Tensor, Tensor]:
    """World-frame ray origins and directions for every pixel.

    Args:
        c2w: camera-to-world poses (..., 4, 4).
        intrinsics: (..., 4) = (fx, fy, cx, cy) in pixels of a ``height`` x ``width`` image.
        pixel_offset: where in a pixel its ray passes (0.5 centre, 0.0 the release's corner).
        normalize: unit directions; otherwise camera-frame z = 1 (the ray parameter is z-depth).

    Returns:
        origins (..., H, W, 3) and directions (..., H, W, 3).
    """
    dirs_cam = camera_directions(intrinsics, height, width, pixel_offset)
    rot = c2w[..., None, None, :3, :3]
    dirs = (rot @ dirs_cam[..., None]).squeeze(-1)
    if normalize:
        dirs = dirs / dirs.norm(dim=-1, keepdim=True)
    origins = c2w[..., None, None, :3, 3].expand_as(dirs)
    return origins, dirs


def plucker_rays(
    c2w: Tensor, intrinsics: Tensor, height: int, width: int, pixel_offset: float = 0.5
) -> Tensor:
    """Plucker maps (..., 6, H, W): unit direction d, then moment m = o x d, as the release orders them."""
    origins, dirs = pixel_rays(c2w, intrinsics, height, width, pixel_offset, normalize=True)
    moment = torch.linalg.cross(origins, dirs, dim=-1)
    return torch.cat([dirs, moment], dim=-1).movedim(-1, -3)


# --------------------------------------------------------------------------------------------------
# RealEstate10K camera files
#
# One file per sequence: the first line is the video's URL, then one line per frame with
# ``timestamp_us fx fy cx cy k1 k2 p00 p01 ... p23``: intrinsics normalised by the image width
# (fx, cx) and height (fy, cy), two unused distortion terms, and the 3x4 world-to-camera matrix
# row by row.


@dataclass
class Re10kCameras:
    """The cameras of one RealEstate10K sequence."""

    url: str
    timestamps: Tensor  # (N,) int64, microseconds
    intrinsics: Tensor  # (N, 4) float64, (fx, fy, cx, cy) normalised by image width / height
    c2w: Tensor  # (N, 4, 4) float64

    def pixel_intrinsics(self, height: int, width: int) -> Tensor:
        """Intrinsics (N, 4) in pixels of a ``height`` x ``width`` image."""
        return self.intrinsics * torch.tensor([width, height, width, height], dtype=self.intrinsics.dtype)


def read_re10k_cameras(path: str | Path) -> Re10kCameras:
    """Parse a RealEstate10K camera text file."""
    path = Path(path)
    lines = [ln.strip() for ln in path.read_text().splitlines()]
    lines = [ln for ln in lines if ln]
    if not lines:
        raise ValueError(f"{path}: empty RealEstate10K camera file")
    url, rows = lines[0], lines[1:]
    if len(url.split()) == 19:
        raise ValueError(f"{path}:1: the first line must be the video's URL, got a camera line")
    if not rows:
        raise ValueError(f"{path}: no camera lines after the URL")
    stamps, values = [], []
    for n, line in enumerate(rows, start=2):
        parts = line.split()
        if len(parts) != 19:
            raise ValueError(f"{path}:{n}: expected 19 numbers (timestamp, 4 intrinsics, 2 distortion, 12 pose), got {len(parts)}")
        try:
            stamps.append(int(parts[0]))
            values.append([float(p) for p in parts[1:]])
        except ValueError as e:
            raise ValueError(f"{path}:{n}: not a number ({e})") from e
        if not all(math.isfinite(v) for v in values[-1]):
            raise ValueError(f"{path}:{n}: NaN or infinite values")
        if values[-1][0] <= 0 or values[-1][1] <= 0:
            raise ValueError(f"{path}:{n}: focal lengths fx, fy must be positive, got {values[-1][0]}, {values[-1][1]}")
    vals = torch.tensor(values, dtype=torch.float64).reshape(-1, 18)
    w2c = torch.eye(4, dtype=torch.float64).repeat(len(rows), 1, 1)
    w2c[:, :3, :] = vals[:, 6:].reshape(-1, 3, 4)
    rot = w2c[:, :3, :3]
    error = (rot @ rot.transpose(1, 2) - torch.eye(3, dtype=torch.float64)).abs().amax(dim=(1, 2))
    bad = torch.nonzero((error > 1e-3) | (torch.linalg.det(rot) <= 0)).flatten()
    if len(bad):
        raise ValueError(f"{path}:{int(bad[0]) + 2}: the pose is not rigid (rotation not orthonormal with det +1)")
    if len(set(stamps)) != len(stamps):
        raise ValueError(f"{path}: timestamps repeat; each camera line needs its own")
    return Re10kCameras(
        url=url,
        timestamps=torch.tensor(stamps, dtype=torch.int64),
        intrinsics=vals[:, :4].clone(),
        c2w=se3_inverse(w2c),
    )


def write_re10k_cameras(path: str | Path, cameras: Re10kCameras) -> None:
    """Write a RealEstate10K camera text file (floats in shortest round-trip form)."""
    w2c = se3_inverse(cameras.c2w.to(torch.float64))[:, :3, :].reshape(-1, 12)
    lines = [cameras.url]
    for ts, k, p in zip(cameras.timestamps.tolist(), cameras.intrinsics.tolist(), w2c.tolist()):
        lines.append(" ".join([str(int(ts)), *map(repr, k), "0.0", "0.0", *map(repr, p)]))
    write_text_atomic(path, "\n".join(lines) + "\n")
