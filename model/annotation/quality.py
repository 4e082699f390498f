"""The checks that decide whether an estimated camera path is good training data, as the paper's
annotation pipeline filters its clips: enough registered frames, low reprojection error, enough
parallax (a camera that only turns has no recoverable translation or scale), a consistent metric
scale and no distortion that the metric depth betrays; and how gaps of unregistered frames are
bridged (interpolated and flagged) or split."""

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
    # Largest trend of the depth scale across a segment's points (scale.scale_trend); above it the
    # reconstruction is distorted. Measured (benchmarks/annotate.py, RESULTS.md): the two walks that were
    # accepted 26% and 33% off in scale trend by 0.56 and 0.82, a 128 px walk 7.8 degrees off in
    # rotation by 0.67; walks that are right (scale within 5%, rotation within 5 degrees) and pass the
    # other checks by at most 0.14 (128 px) and 0.04 (256 px) over the benchmark's 6 walks, and by at
    # most 0.33 (128 px, 30 walks) and 0.25 (256 px, 24 walks), known or estimated intrinsics.
    max_scale_trend: float = 0.45

    def __post_init__(self) -> None:
        for name in ("min_frames", "min_keypoints"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_gap < 0:
            raise ValueError(f"max_gap must be >= 0, got {self.max_gap}")
        if not 0 < self.min_registered_fraction <= 1:
            raise ValueError(f"min_registered_fraction must lie in (0, 1], got {self.min_registered_fraction}")
        for name in ("max_reprojection_px", "max_scale_spread", "max_scale_disagreement", "max_scale_trend"):
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


def _rays(rec: Reconstruction, obs: np.ndarray) -> np.ndarray:
    """Unit camera-frame viewing rays (K, 3) of observations."""
    fx, fy, cx, cy = rec.intrinsics
    uv = rec.obs_uv[obs]
    rays = np.stack([(uv[:, 0] - cx) / fx, (uv[:, 1] - cy) / fy, np.ones(len(obs))], axis=1)
    return rays / np.linalg.norm(rays, axis=1, keepdims=True)


def parallax_deg(rec: Reconstruction, frames: np.ndarray | None = None, min_shared: int = 20) -> float:
    """How much of the image motion no rotation explains, in degrees: for each frame, the farthest
    later frame sharing ``min_shared`` points; the rotation that best maps the first frame's viewing
    rays of those points onto the second's (least squares, Kabsch); the median angle left between
    them. The median over frames is returned (0 if no pair qualifies).

    This uses the 2D observations alone, not the estimated poses or points: a camera that only turns
    leaves nothing but noise, even where the estimator triangulated points and translations anyway.
    """
    keep = np.ones(len(rec.obs_frame), dtype=bool) if frames is None else frames[rec.obs_frame]
    by_frame: dict[int, dict[int, int]] = {}
    for k in np.flatnonzero(keep):
        by_frame.setdefault(int(rec.obs_frame[k]), {})[int(rec.obs_point[k])] = int(k)
    order = sorted(by_frame)
    residuals = []
    for a, i in enumerate(order):
        for j in reversed(order[a + 1 :]):
            shared = by_frame[i].keys() & by_frame[j].keys()
            if len(shared) < min_shared:
                continue
            x = _rays(rec, np.array([by_frame[i][p] for p in shared]))
            y = _rays(rec, np.array([by_frame[j][p] for p in shared]))
            u, _, vt = np.linalg.svd(y.T @ x)
            r = u @ np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))]) @ vt  # argmin sum |R x - y|
            cos = ((x @ r.T) * y).sum(1)
            residuals.append(np.degrees(np.median(np.arccos(np.clip(cos, -1, 1)))))
            break
    return float(np.median(residuals)) if residuals else 0.0
