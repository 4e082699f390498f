"""Metric scale of a reconstruction: from a metric depth model, or from a known camera height over
the ground plane. Either way the scale is the median of many ratios, reported with their spread.

``MetricDepth`` is the protocol a user's installed depth model implements (nothing downloads); the
tests use the procedural renderer's exact depth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from .estimator import Reconstruction

# 1.4826 x MAD is the standard deviation of a normal sample; as a fraction of the median it compares
# spreads across scales.
MAD_TO_STD = 1.4826


class ScaleError(ValueError):
    """No scale could be measured (no usable depth, no ground plane); the message says why."""


@runtime_checkable
class MetricDepth(Protocol):
    """Metric z-depth (N, H', W') in metres of frames (N, H, W, 3) uint8 with pixel intrinsics (4,).

    Any resolution works (it is sampled proportionally); values that are not finite or not positive
    (sky, unknown) are ignored.
    """

    def __call__(self, frames: np.ndarray, intrinsics: np.ndarray) -> np.ndarray: ...


@dataclass
class ScaleEstimate:
    """Metres per reconstruction unit, measured ``samples`` times; ``spread`` is the relative robust
    spread of the samples (1.4826 MAD / median), so 0.05 means the samples scatter by about 5%."""

    scale: float
    spread: float
    samples: int
    method: str  # "depth" or "camera_height"

    def as_dict(self) -> dict[str, float | int | str]:
        return {"scale": self.scale, "spread": self.spread, "samples": self.samples, "method": self.method}


def robust_scale(ratios: np.ndarray, method: str, min_samples: int) -> ScaleEstimate:
    """The median of ``ratios`` with its relative spread; fewer than ``min_samples`` is a ScaleError."""
    ratios = ratios[np.isfinite(ratios) & (ratios > 0)]
    if len(ratios) < min_samples:
        raise ScaleError(f"{method}: {len(ratios)} usable samples, at least {min_samples} needed")
    median = float(np.median(ratios))
    spread = MAD_TO_STD * float(np.median(np.abs(ratios - median))) / median
    return ScaleEstimate(scale=median, spread=spread, samples=len(ratios), method=method)


def scale_from_depth(rec: Reconstruction, depth: np.ndarray, image_size: tuple[int, int], frames: np.ndarray | None = None,
                     min_samples: int = 20) -> ScaleEstimate:
    """Scale from metric ``depth`` (N, H', W') of the clip's frames (``image_size`` = (H, W)): at every
    sparse observation, metric depth over the reconstruction's z-depth of the point.

    ``frames`` (bool (N,)) limits the observations to some frames (a segment of the clip).
    """
    n = len(rec.registered)
    if depth.ndim != 3 or len(depth) != n:
        raise ValueError(f"depth must be (N, H, W) for the clip's {n} frames, got {depth.shape}")
    keep = np.ones(len(rec.obs_frame), dtype=bool) if frames is None else frames[rec.obs_frame]
    z = rec.camera_points()[keep, 2]
    uv, f = rec.obs_uv[keep], rec.obs_frame[keep]
    h, w = image_size
    rows = np.clip((uv[:, 1] * depth.shape[1] / h).astype(np.int64), 0, depth.shape[1] - 1)
    cols = np.clip((uv[:, 0] * depth.shape[2] / w).astype(np.int64), 0, depth.shape[2] - 1)
    metric = depth[f, rows, cols].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(z > 0, metric / z, np.nan)
    return robust_scale(ratios, "depth", min_samples)


@dataclass
class GroundPlane:
    """The plane ``normal . x = offset`` (``normal`` pointing down, away from the cameras) and the
    number of sparse points within the inlier distance of it."""

    normal: np.ndarray
    offset: float
    inliers: int


def ground_plane(rec: Reconstruction, frames: np.ndarray | None = None, max_tilt_deg: float = 25.0, iterations: int = 400,
                 inlier_fraction: float = 0.01, min_inliers: int = 20, seed: int = 0) -> GroundPlane:
    """RANSAC for the ground below the cameras: the plane with the most sparse points within
    ``inlier_fraction`` of the median camera-to-point distance, among planes within ``max_tilt_deg``
    of perpendicular to the cameras' mean down axis and below every camera; refit to its inliers."""
    sel = rec.registered if frames is None else rec.registered & frames
    centres = rec.c2w[sel, :3, 3]
    down = rec.c2w[sel, :3, 1].mean(0)
    down /= np.linalg.norm(down)
    seen = np.unique(rec.obs_point[sel[rec.obs_frame]])
    pts = rec.points[seen]
    below = pts[(pts - centres.mean(0)) @ down > 0]
    if len(below) < max(3, min_inliers):
        raise ScaleError(f"camera height: {len(below)} sparse points below the cameras, at least {max(3, min_inliers)} needed for a ground plane")
    tol = inlier_fraction * float(np.median(np.linalg.norm(pts - centres.mean(0), axis=1)))
    cos_tilt = np.cos(np.radians(max_tilt_deg))
    rng = np.random.default_rng(seed)
    best: tuple[int, np.ndarray] = (0, np.zeros(len(below), dtype=bool))
    for _ in range(iterations):
        a, b, c = below[rng.choice(len(below), 3, replace=False)]
        normal = np.cross(b - a, c - a)
        norm = np.linalg.norm(normal)
        if norm < 1e-12:
            continue
        normal /= norm
        normal *= np.sign(normal @ down) or 1.0
        if normal @ down < cos_tilt or (normal @ a - centres @ normal).min() <= 0:
            continue
        inliers = np.abs(below @ normal - normal @ a) < tol
        if inliers.sum() > best[0]:
            best = (int(inliers.sum()), inliers)
    if best[0] < min_inliers:
        raise ScaleError(f"camera height: no ground plane with {min_inliers} points found (best had {best[0]})")
    fit = below[best[1]]
    centroid = fit.mean(0)
    normal = np.linalg.svd(fit - centroid)[2][-1]
    normal *= np.sign(normal @ down) or 1.0
    return GroundPlane(normal=normal, offset=float(normal @ centroid), inliers=best[0])


def scale_from_camera_height(rec: Reconstruction, height_m: float, frames: np.ndarray | None = None, min_inliers: int = 20,
                             seed: int = 0) -> tuple[ScaleEstimate, GroundPlane]:
    """Scale from a camera held ``height_m`` metres above the ground: per registered frame, the
    height over the RANSAC ground plane (``ground_plane``), ``height_m`` over it; the median of those."""
    if not height_m > 0:
        raise ValueError(f"camera height must be positive (metres), got {height_m}")
    plane = ground_plane(rec, frames, min_inliers=min_inliers, seed=seed)
    sel = rec.registered if frames is None else rec.registered & frames
    heights = plane.offset - rec.c2w[sel, :3, 3] @ plane.normal
    with np.errstate(divide="ignore"):
        return robust_scale(height_m / heights, "camera_height", 1), plane
