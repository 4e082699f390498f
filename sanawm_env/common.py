"""What the ground-truth and learned environments share: spaces, action checks, argument checks."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from gymnasium import spaces

RENDER_FPS = 16
# The camera's collision radius in metres; both worlds spawn it this far from geometry, so that the same
# seed starts SanaWM-v0 and SanaWM-GT-v0 at the same pose.
CAMERA_RADIUS = 0.25


def action_space() -> spaces.Box:
    """(dx, dy, dz, droll, dpitch, dyaw) in the camera frame, each in [-1, 1]."""
    return spaces.Box(-1.0, 1.0, shape=(6,), dtype=np.float32)


def observation_space(height: int, width: int) -> spaces.Box:
    return spaces.Box(0, 255, shape=(height, width, 3), dtype=np.uint8)


def check_action(action: Any) -> np.ndarray:
    """A finite (6,) action as float64, clipped to [-1, 1]; clear errors otherwise."""
    try:
        a = np.asarray(action, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise TypeError(f"action must be a float array of shape (6,), got {type(action).__name__}") from e
    if a.shape != (6,):
        raise ValueError(f"action must have shape (6,) = (dx, dy, dz, droll, dpitch, dyaw), got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"action must be finite (no NaN or inf), got {a.tolist()}")
    return np.clip(a, -1.0, 1.0)


def check_positive_int(name: str, value: Any) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def check_positive_float(name: str, value: Any) -> float:
    if not (isinstance(value, (int, float, np.floating)) and not isinstance(value, bool) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def check_fov(value: Any) -> float:
    """A horizontal field of view in degrees, in (0, 180)."""
    if not (isinstance(value, (int, float, np.floating)) and not isinstance(value, bool) and 0 < value < 180):
        raise ValueError(f"fov_deg must be in (0, 180) degrees, got {value!r}")
    return float(value)


def check_nonnegative_int(name: str, value: Any) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    return int(value)


def check_device(value: Any) -> str:
    """A torch device that exists here ('cpu', 'cuda', 'cuda:1', ...)."""
    import torch

    try:
        device = torch.device(value)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"device must be a torch device such as 'cpu' or 'cuda:0', got {value!r}") from e
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={value!r} but CUDA is not available here; use device='cpu'")
    return str(device)


def check_options(options: dict[str, Any] | None, accepted: tuple[str, ...]) -> dict[str, Any]:
    options = dict(options or {})
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"unknown reset option(s) {unknown}; accepted: {list(accepted)}")
    return options


def check_scene_seed(value: Any) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
        raise ValueError(f"options['scene_seed'] must be a non-negative int, got {value!r}")
    return int(value)


def check_pose(pose: Any) -> np.ndarray:
    """A finite rigid 4x4 camera-to-world matrix (float64)."""
    p = np.asarray(pose, dtype=np.float64)
    if p.shape != (4, 4) or not np.isfinite(p).all():
        raise ValueError(f"options['pose'] must be a finite 4x4 camera-to-world matrix, got shape {p.shape}")
    rot = p[:3, :3]
    if not (np.allclose(rot @ rot.T, np.eye(3), atol=1e-4) and np.linalg.det(rot) > 0 and np.allclose(p[3], [0, 0, 0, 1])):
        raise ValueError("options['pose'] must be a rigid transform: orthonormal rotation with det +1 and last row (0, 0, 0, 1)")
    return p


def check_pose_in_scene(pose: Any, scene: Any, radius: float = CAMERA_RADIUS) -> np.ndarray:
    """``check_pose``, and the camera (a sphere of ``radius``) must be in free space of ``scene``."""
    p = check_pose(pose)
    if not scene.is_free(p[:3, 3], radius):
        raise ValueError(f"options['pose'] puts the camera inside geometry of scene {scene.seed} at {p[:3, 3].tolist()}")
    return p
