"""One clip in, checked metric camera paths out: estimate poses, measure metric scale, run the
quality checks, bridge short gaps and split at long ones. Writing the results is ``output.py``'s job."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .estimator import Estimate, PoseEstimator, Reconstruction
from .quality import QualityLimits, interpolate_poses, parallax_deg, segments
from .scale import MetricDepth, ScaleError, ScaleEstimate, scale_from_camera_height, scale_from_depth


@dataclass
class Segment:
    """A run of frames ``[start, stop)`` of a clip with one camera path, accepted or not.

    ``c2w`` (stop - start, 4, 4) is relative to the segment's first frame and in metres when
    ``metric``; ``interpolated`` lists frames (segment-relative) whose pose was filled in between
    registered neighbours. ``reasons`` is empty exactly when the segment is accepted.
    """

    start: int
    stop: int
    c2w: np.ndarray | None
    intrinsics: np.ndarray
    metric: bool
    interpolated: list[int]
    reasons: list[str]
    stats: dict[str, Any]

    @property
    def accepted(self) -> bool:
        return not self.reasons


@dataclass
class ClipResult:
    """Everything learned about one clip: its segments, and why it failed as a whole if it did."""

    segments: list[Segment]
    reasons: list[str]
    estimate: Estimate
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class ScaleSources:
    """Where metric scale comes from: a depth model, a known camera height (metres), both or neither."""

    depth: MetricDepth | None = None
    camera_height_m: float | None = None

    def __post_init__(self) -> None:
        if self.camera_height_m is not None and not self.camera_height_m > 0:
            raise ValueError(f"camera_height_m must be positive (metres), got {self.camera_height_m}")
        if self.depth is not None and not isinstance(self.depth, MetricDepth):
            raise TypeError(f"depth must be a MetricDepth (a callable (frames, intrinsics) -> depth), got {type(self.depth).__name__}")


def _clip_failure(estimate: Estimate, limits: QualityLimits) -> list[str]:
    """Reasons that condemn the whole clip, from the estimator's diagnostics."""
    keypoints = estimate.diagnostics.get("keypoints_per_frame")
    if keypoints is not None and keypoints < limits.min_keypoints:
        return [f"textureless: a median of {keypoints:g} features a frame, at least {limits.min_keypoints} needed"]
    if not estimate.reconstructions:
        if estimate.diagnostics.get("degenerate_models"):
            return ["no reconstruction: every model the estimator made had a focal length that is not positive "
                    "(too little structure to calibrate from; known intrinsics may help)"]
        pairs = estimate.diagnostics.get("verified_pairs")
        found = f" among {pairs:g} matched frame pairs" if pairs is not None else ""
        return [f"no reconstruction: no pair of frames with enough parallax to start from{found} "
                "(a camera that only turns, or frames that share too little)"]
    return []


def _measure_scale(rec: Reconstruction, frames: np.ndarray, sources: ScaleSources, depth: np.ndarray | None,
                   image_size: tuple[int, int], limits: QualityLimits, stats: dict[str, Any], reasons: list[str]) -> ScaleEstimate | None:
    """The segment's scale (depth first, else camera height), with every measurement in ``stats`` and
    every failed check in ``reasons``."""
    found: dict[str, ScaleEstimate] = {}
    if depth is not None:
        try:
            found["depth"] = scale_from_depth(rec, depth, image_size, frames)
        except ScaleError as e:
            reasons.append(f"no metric scale: {e}")
    if sources.camera_height_m is not None:
        try:
            estimate, plane = scale_from_camera_height(rec, sources.camera_height_m, frames)
            found["camera_height"] = estimate
            stats["ground_plane_inliers"] = plane.inliers
        except ScaleError as e:
            reasons.append(f"no metric scale: {e}")
    stats["scales"] = {k: v.as_dict() for k, v in found.items()}
    for name, estimate in found.items():
        if estimate.spread > limits.max_scale_spread:
            reasons.append(f"scale samples disagree: {name} spread {estimate.spread:.3f} > {limits.max_scale_spread}")
    trend = found["depth"].trend if "depth" in found else None
    if trend is not None and trend > limits.max_scale_trend:
        reasons.append(f"distorted reconstruction: its depth scale changes by {trend:.0%} across the points, with depth, "
                       f"image position or time (at most {limits.max_scale_trend:.0%}); its path is not metric")
    if len(found) == 2:
        a, b = found["depth"].scale, found["camera_height"].scale
        disagreement = abs(a - b) / min(a, b)
        stats["scale_disagreement"] = disagreement
        if disagreement > limits.max_scale_disagreement:
            reasons.append(f"depth and camera-height scales disagree by {disagreement:.1%} (> {limits.max_scale_disagreement:.0%})")
    return found.get("depth") or found.get("camera_height")


def _segment(rec: Reconstruction, start: int, stop: int, sources: ScaleSources, depth: np.ndarray | None,
             image_size: tuple[int, int], limits: QualityLimits) -> Segment:
    n = len(rec.registered)
    frames = np.zeros(n, dtype=bool)
    frames[start:stop] = True
    length = stop - start
    registered = rec.registered[start:stop]
    reasons: list[str] = []
    obs = frames[rec.obs_frame]
    errors = rec.reprojection_errors()[obs]
    stats: dict[str, Any] = {
        "frames": length,
        "registered": int(registered.sum()),
        "reprojection_px": float(errors.mean()) if len(errors) else float("nan"),
        "parallax_deg": parallax_deg(rec, frames),
        "points": int(len(np.unique(rec.obs_point[obs]))),
    }
    if length < limits.min_frames:
        reasons.append(f"too short: {length} frames, at least {limits.min_frames} needed")
    if registered.mean() < limits.min_registered_fraction:
        reasons.append(f"too few registered frames: {int(registered.sum())} of {length} "
                       f"(at least {limits.min_registered_fraction:.0%})")
    if not stats["reprojection_px"] <= limits.max_reprojection_px:
        reasons.append(f"high reprojection error: {stats['reprojection_px']:.2f} px mean (at most {limits.max_reprojection_px})")
    if stats["parallax_deg"] < limits.min_parallax_deg:
        reasons.append(f"too little parallax: {stats['parallax_deg']:.2f} degrees median (at least {limits.min_parallax_deg}); "
                       "a camera that only turns has no recoverable translation")
    scale = _measure_scale(rec, frames, sources, depth, image_size, limits, stats, reasons)
    c2w = interpolate_poses(rec.c2w[start:stop], registered)
    c2w = np.linalg.inv(c2w[0]) @ c2w
    if scale is not None:
        c2w[:, :3, 3] *= scale.scale
    return Segment(start=start, stop=stop, c2w=c2w, intrinsics=rec.intrinsics.copy(), metric=scale is not None,
                   interpolated=[int(i) for i in np.flatnonzero(~registered)], reasons=reasons, stats=stats)


def annotate_frames(frames: np.ndarray, estimator: PoseEstimator, intrinsics: np.ndarray | None = None,
                    scale: ScaleSources | None = None, limits: QualityLimits | None = None) -> ClipResult:
    """Camera paths of one clip's frames (N, H, W, 3) uint8.

    The estimator's reconstructions are taken largest first; each is cut into segments at gaps of
    more than ``limits.max_gap`` unregistered frames, frames a larger reconstruction already covers
    are left to it, and every segment is checked on its own (``QualityLimits``). ``intrinsics`` (4,)
    in pixels when known; else the estimator's are used.
    """
    scale = scale or ScaleSources()
    limits = limits or QualityLimits()
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (N, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    if intrinsics is not None:
        intrinsics = np.asarray(intrinsics, dtype=np.float64)
        if intrinsics.shape != (4,) or not (intrinsics[:2] > 0).all():
            raise ValueError(f"intrinsics must be (fx, fy, cx, cy) in pixels with fx, fy > 0, got {intrinsics}")
    estimate = estimator(frames, intrinsics)
    seconds = dict(estimate.seconds)
    reasons = _clip_failure(estimate, limits)
    if reasons:
        return ClipResult(segments=[], reasons=reasons, estimate=estimate, seconds=seconds)
    depth = None
    if scale.depth is not None:
        t = time.perf_counter()
        k = intrinsics if intrinsics is not None else estimate.reconstructions[0].intrinsics
        depth = np.asarray(scale.depth(frames, k))
        seconds["depth"] = time.perf_counter() - t
    t = time.perf_counter()
    free = np.ones(len(frames), dtype=bool)
    out: list[Segment] = []
    for rec in estimate.reconstructions:
        for start, stop in segments(rec.registered & free, limits.max_gap):
            out.append(_segment(rec, start, stop, scale, depth, frames.shape[1:3], limits))
            free[start:stop] = False
    out.sort(key=lambda s: s.start)
    seconds["checks"] = time.perf_counter() - t
    return ClipResult(segments=out, reasons=[], estimate=estimate, seconds=seconds)
