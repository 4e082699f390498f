"""The DiT's camera inputs, built from raw per-frame cameras, and the release's keyboard trajectories.

``camera_conditions`` gives, per latent frame i (at raw frame i * s for a VAE of temporal stride s):
the 4x4 pose relative to the first raw frame, flattened, then (fx, fy, cx, cy) on the latent grid
(branch A, UCPE); and the Plucker maps (direction, moment) of the s raw frames from max(0, i*s - s + 1)
on, stacked along channels (branch B), a window cut short by the end of the video repeating its
last frame. Rays pass through integer latent-pixel coordinates, as in the release.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .camera import plucker_rays, relative_to_first, rescale_intrinsics, se3_inverse, so3_exp

Tensor = torch.Tensor

ACTION_KEYS = frozenset("wasdijkl")


def camera_conditions(
    c2w: Tensor | np.ndarray,
    intrinsics: Tensor | np.ndarray,
    image_size: tuple[int, int],
    vae_stride: tuple[int, int, int],
    first_c2w: Tensor | np.ndarray | None = None,
    start_frame: int = 0,
) -> tuple[Tensor, Tensor]:
    """Camera inputs of the DiT for a video, or for the raw frames of one streamed chunk.

    Args:
        c2w: (F, 4, 4) camera-to-world poses of consecutive raw frames (metres).
        intrinsics: (F, 4) (fx, fy, cx, cy) in pixels of ``image_size``.
        image_size: (H, W) of the raw frames.
        vae_stride: (temporal, spatial, spatial) compression of the VAE.
        first_c2w: the pose of the video's raw frame 0, when ``c2w`` starts later (streaming).
        start_frame: raw index of ``c2w[0]`` in the video.

    Returns:
        camera (T, 20) and plucker (6 * temporal, T, h, w), float32, for the latent frames i whose raw
        frame i * temporal lies in the given frames (all of them for a whole video: T = (F - 1) // s + 1).
    """
    c2w = torch.as_tensor(c2w, dtype=torch.float32)
    intrinsics = torch.as_tensor(intrinsics, dtype=torch.float32)
    frames = c2w.shape[0]
    if c2w.ndim != 3 or c2w.shape[1:] != (4, 4):
        raise ValueError(f"c2w must have shape (F, 4, 4), got {tuple(c2w.shape)}")
    if tuple(intrinsics.shape) != (frames, 4):
        raise ValueError(f"intrinsics must have shape (F, 4) = {(frames, 4)}, got {tuple(intrinsics.shape)}")
    ts, sh, sw = vae_stride
    height, width = image_size
    if min(ts, sh, sw) <= 0 or height % sh or width % sw:
        raise ValueError(f"image_size {image_size} must be divisible by the spatial strides of vae_stride={vae_stride}")
    if (first_c2w is None) != (start_frame == 0):
        raise ValueError("first_c2w is needed exactly when start_frame > 0")
    h, w = height // sh, width // sw
    if first_c2w is None:
        poses = relative_to_first(c2w)
        poses[0] = torch.eye(4)
    else:
        poses = se3_inverse(torch.as_tensor(first_c2w, dtype=torch.float32)) @ c2w
    k = rescale_intrinsics(intrinsics, (height, width), (h, w))
    first_latent = -(-start_frame // ts)  # the first latent frame whose raw frame is in range
    index = torch.arange(first_latent, (start_frame + frames - 1) // ts + 1) * ts - start_frame  # local raw frames
    camera = torch.cat([poses[index].reshape(len(index), 16), k[index]], dim=-1)
    windows = (index + start_frame - (ts - 1)).clamp_min(0) - start_frame
    windows = (windows[:, None] + torch.arange(ts)).clamp_max(frames - 1)  # (T, ts) local raw frames
    if (windows < 0).any():
        raise ValueError(f"the Plucker windows of these latent frames start before start_frame={start_frame}; pass earlier raw frames")
    plucker = plucker_rays(poses[windows], k[windows], h, w, pixel_offset=0.0)  # (T, ts, 6, h, w)
    return camera, plucker.reshape(len(index), 6 * ts, h, w).transpose(0, 1).contiguous()


def parse_action_string(action: str) -> list[frozenset[str]]:
    """Keys held in each raw frame: ``"w-30,jl-12,none-8"`` is 30 frames of w, 12 of j and l, 8 idle.

    w/s move forward/back and a/d left/right on the ground plane; i/k look up/down; j/l turn left/right.
    """
    cleaned = "".join(action.replace("，", ",").split())
    if not cleaned:
        raise ValueError("action string is empty; expected segments like 'w-30,jl-12,none-8'")
    frames: list[frozenset[str]] = []
    for segment in cleaned.split(","):
        keys, sep, count = segment.rpartition("-")
        if not sep or not keys:
            raise ValueError(f"action segment {segment!r} must be '<keys>-<frames>', e.g. 'w-30' or 'none-8'")
        if not count.isdigit() or int(count) <= 0:
            raise ValueError(f"action segment {segment!r}: frame count must be a positive integer, got {count!r}")
        keys = keys.lower()
        held = frozenset() if keys == "none" else frozenset(keys)
        bad = sorted(held - ACTION_KEYS)
        if bad:
            raise ValueError(f"action segment {segment!r}: unknown keys {bad}; allowed: {''.join(sorted(ACTION_KEYS))} or 'none'")
        frames.extend([held] * int(count))
    return frames


def action_string_to_c2w(
    action: str,
    translation_speed: float = 0.05,
    rotation_speed_deg: float = 1.2,
    pitch_limit_deg: float = 85.0,
) -> np.ndarray:
    """Camera-to-world poses (N + 1, 4, 4) float32 of the release's keyboard trajectory language,
    starting at the identity: per held frame, turns of ``rotation_speed_deg`` (yaw about the world's
    vertical axis, pitch about the camera's x axis, pitch kept within the limit) and steps of
    ``translation_speed`` metres along the heading projected on the ground plane."""
    step = math.radians(rotation_speed_deg)
    limit = math.radians(pitch_limit_deg)
    pose = np.eye(4)
    poses = [pose.copy()]
    pitch = 0.0
    for held in parse_action_string(action):
        d_pitch = (step if "i" in held else 0.0) - (step if "k" in held else 0.0)
        if abs(pitch + d_pitch) <= limit:
            pitch += d_pitch
        else:
            d_pitch = 0.0
        d_yaw = (step if "l" in held else 0.0) - (step if "j" in held else 0.0)
        yaw_rot = so3_exp(torch.tensor([0.0, d_yaw, 0.0], dtype=torch.float64)).numpy()
        pitch_rot = so3_exp(torch.tensor([d_pitch, 0.0, 0.0], dtype=torch.float64)).numpy()
        rot = yaw_rot @ pose[:3, :3] @ pitch_rot
        forward, right = rot[:, 2].copy(), rot[:, 0].copy()
        forward[1] = right[1] = 0.0
        forward /= max(np.linalg.norm(forward), 1e-12)
        right /= max(np.linalg.norm(right), 1e-12)
        move = translation_speed * (("w" in held) * forward - ("s" in held) * forward + ("d" in held) * right - ("a" in held) * right)
        pose = np.eye(4)
        pose[:3, :3] = rot
        pose[:3, 3] = poses[-1][:3, 3] + move
        poses.append(pose.copy())
    return np.stack(poses).astype(np.float32)


def null_camera(camera: Tensor, plucker: Tensor) -> tuple[Tensor, Tensor]:
    """The "no camera" condition for classifier-free guidance and camera dropout: every frame at the
    first frame's pose (identity relative poses, intrinsics kept, so the UCPE ray frames stay
    invertible; zeroed poses are singular and turn training to NaN) and zero Plucker maps, which no
    real camera produces (ray directions are unit vectors)."""
    null = camera.clone()
    null[..., :16] = torch.eye(4, dtype=camera.dtype, device=camera.device).reshape(16)
    return null, torch.zeros_like(plucker)
