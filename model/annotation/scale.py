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

# The depth scale's trend (``scale_trend``). A reconstruction that is a similarity of the scene has one
# ratio of metric to reconstructed depth at every point, up to noise; a distorted one has a ratio that
# changes with depth, with the position in the image or along the path. A linear fit of the log ratio
# on those covariates over thousands of observations averages the noise away (it grows at low
# resolution, so the spread alone cannot tell) and keeps the distortion.
TREND_TRIM_SIGMAS = 3.0  # residuals beyond this many robust sigmas (depth edges, bad matches) leave the refit
TREND_FITS = 3  # fits, each on the inliers of the last
TREND_QUANTILES = (0.1, 0.9)  # the trend spans the fitted ratio between these quantiles of the points


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
    trend: float | None = None  # depth only: the systematic change of the scale across the points (``scale_trend``)

    def as_dict(self) -> dict[str, float | int | str]:
        out: dict[str, float | int | str] = {"scale": self.scale, "spread": self.spread, "samples": self.samples, "method": self.method}
        if self.trend is not None:
            out["trend"] = self.trend
        return out


def robust_scale(ratios: np.ndarray, method: str, min_samples: int) -> ScaleEstimate:
    """The median of ``ratios`` with its relative spread; fewer than ``min_samples`` is a ScaleError."""
    ratios = ratios[np.isfinite(ratios) & (ratios > 0)]
    if len(ratios) < min_samples:
        raise ScaleError(f"{method}: {len(ratios)} usable samples, at least {min_samples} needed")
    median = float(np.median(ratios))
    spread = MAD_TO_STD * float(np.median(np.abs(ratios - median))) / median
    return ScaleEstimate(scale=median, spread=spread, samples=len(ratios), method=method)


def trend_covariates(z: np.ndarray, uv: np.ndarray, frame: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """What a distortion makes the depth ratio follow, per observation (K, 5): log depth (centred on
    its median), x and y in the image (-1 to 1 from the centre), their squared radius, and time (-1 to
    1 from the first frame to the last)."""
    h, w = image_size
    log_z = np.log(z)
    x, y = uv[:, 0] / (w / 2) - 1, uv[:, 1] / (h / 2) - 1
    t = 2 * (frame - frame.min()) / max(int(frame.max() - frame.min()), 1) - 1
    return np.stack([log_z - np.median(log_z), x, y, x**2 + y**2, t], axis=1)


def scale_trend(log_ratio: np.ndarray, covariates: np.ndarray) -> float:
    """How much the scale changes systematically across the points: a linear fit of ``log_ratio`` (K,)
    on ``covariates`` (K, C), refit without outliers, and the factor between its 10th and 90th
    percentile, minus 1 (0.5: where the fit puts the scale highest it is 1.5 times where it is lowest)."""
    design = np.column_stack([np.ones(len(log_ratio)), covariates])
    inliers = np.ones(len(log_ratio), dtype=bool)
    for _ in range(TREND_FITS):
        coef = np.linalg.lstsq(design[inliers], log_ratio[inliers], rcond=None)[0]
        residual = log_ratio - design @ coef
        sigma = MAD_TO_STD * float(np.median(np.abs(residual[inliers])))
        if not sigma > 0:  # an exact fit: nothing to trim
            break
        inliers = np.abs(residual) <= TREND_TRIM_SIGMAS * sigma
    fitted = covariates @ coef[1:]
    low, high = np.quantile(fitted, TREND_QUANTILES)
    return float(np.expm1(high - low))


def scale_from_depth(rec: Reconstruction, depth: np.ndarray, image_size: tuple[int, int], frames: np.ndarray | None = None,
                     min_samples: int = 20) -> ScaleEstimate:
    """Scale from metric ``depth`` (N, H', W') of the clip's frames (``image_size`` = (H, W)): at every
    sparse observation, metric depth over the reconstruction's z-depth of the point; with the trend of
    those ratios over depth, image position and time (``scale_trend``), which a distorted
    reconstruction shows.

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
    estimate = robust_scale(ratios, "depth", min_samples)
    usable = np.isfinite(ratios) & (ratios > 0)
    estimate.trend = scale_trend(np.log(ratios[usable]), trend_covariates(z[usable], uv[usable], f[usable], image_size))
    return estimate


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
