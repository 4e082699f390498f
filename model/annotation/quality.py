"""The checks that decide whether an estimated camera path is good training data, as the paper's
annotation pipeline filters its clips: enough registered frames, low reprojection error, enough
parallax (a camera that only turns has no recoverable translation or scale), a consistent metric
scale; and how gaps of unregistered frames are bridged (interpolated and flagged) or split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from model.camera import so3_exp, so3_log

from .estimator import Reconstruction


@dataclass
class QualityLimits:
    """Thresholds of the checks; a segment failing any of them is rejected with the reason."""

    min_frames: int = 8  # frames a segment must have (registered or interpolated)
    max_gap: int = 2  # unregistered frames in a row that are interpolated; a longer gap splits the clip
    min_registered_fraction: float = 0.8  # of a segment's frames
    max_reprojection_px: float = 1.5  # mean reprojection error of the segment's observations
    min_parallax_deg: float = 1.0  # median triangulation angle of the sparse points
    min_keypoints: int = 50  # median features a frame; fewer reads as a textureless clip
    max_scale_spread: float = 0.25  # relative robust spread of the scale's samples
    max_scale_disagreement: float = 0.1  # between the depth and camera-height scales, when both are given

    def __post_init__(self) -> None:
        for name in ("min_frames", "min_keypoints"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_gap < 0:
            raise ValueError(f"max_gap must be >= 0, got {self.max_gap}")
        if not 0 < self.min_registered_fraction <= 1:
            raise ValueError(f"min_registered_fraction must lie in (0, 1], got {self.min_registered_fraction}")
        for name in ("max_reprojection_px", "max_scale_spread", "max_scale_disagreement"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0 <= self.min_parallax_deg < 90:
            raise ValueError(f"min_parallax_deg must lie in [0, 90) degrees, got {self.min_parallax_deg}")


def segments(registered: np.ndarray, max_gap: int) -> list[tuple[int, int]]:
    """Frame ranges [start, stop) from a registered frame to a registered frame, split where more
    than ``max_gap`` unregistered frames come in a row."""
    idx = np.flatnonzero(registered)
    if not len(idx):
        return []
    breaks = np.flatnonzero(np.diff(idx) > max_gap + 1)
    starts = np.concatenate([[idx[0]], idx[breaks + 1]])
    stops = np.concatenate([idx[breaks], [idx[-1]]]) + 1
    return [(int(a), int(b)) for a, b in zip(starts, stops)]


def interpolate_poses(c2w: np.ndarray, registered: np.ndarray) -> np.ndarray:
    """Poses (N, 4, 4) with every unregistered frame between two registered ones filled in:
    translation linear, rotation along the geodesic between its registered neighbours. The first
    and the last frame must be registered."""
    if not (registered[0] and registered[-1]):
        raise ValueError("interpolation needs the first and the last frame registered")
    out = c2w.copy()
    idx = np.flatnonzero(registered)
    for a, b in zip(idx[:-1], idx[1:]):
        if b == a + 1:
            continue
        frac = (np.arange(a + 1, b) - a) / (b - a)
        ra, rb = torch.from_numpy(c2w[a, :3, :3]), torch.from_numpy(c2w[b, :3, :3])
        w = so3_log(ra.T @ rb)
        out[a + 1 : b, :3, :3] = (ra @ so3_exp(torch.from_numpy(frac)[:, None] * w)).numpy()
        out[a + 1 : b, :3, 3] = c2w[a, :3, 3] + frac[:, None] * (c2w[b, :3, 3] - c2w[a, :3, 3])
        out[a + 1 : b, 3] = [0, 0, 0, 1]
    return out


def parallax_deg(rec: Reconstruction, frames: np.ndarray | None = None) -> float:
    """Median over sparse points of the angle between the rays from the first and the last frame
    that saw each point (within ``frames``): near zero when the camera only turns."""
    keep = np.ones(len(rec.obs_frame), dtype=bool) if frames is None else frames[rec.obs_frame]
    f, p = rec.obs_frame[keep], rec.obs_point[keep]
    if not len(f):
        return 0.0
    m = len(rec.points)
    first = np.full(m, np.iinfo(np.int64).max)
    last = np.full(m, -1)
    np.minimum.at(first, p, f)
    np.maximum.at(last, p, f)
    seen = np.flatnonzero(last > first)
    if not len(seen):
        return 0.0
    x = rec.points[seen]
    a = x - rec.c2w[first[seen], :3, 3]
    b = x - rec.c2w[last[seen], :3, 3]
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return float(np.degrees(np.median(np.arccos(np.clip(cos, -1, 1)))))
