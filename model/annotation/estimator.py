"""What a pose estimator hands back, and the protocol one implements.

An estimator sees the frames of one clip (and their intrinsics when known) and returns one or more
reconstructions: COLMAP splits a clip it cannot bridge into several models, each on its own scale,
while a feed-forward estimator (Pi3, VGGT and the like, weights on the user's disk) returns one. A
reconstruction covers the clip's frames with a ``registered`` mask and carries the sparse 3D points
it saw, with their 2D observations, so that metric scale and quality checks work the same way for
every estimator.

Conventions are ``model.camera``'s: OpenCV camera axes, camera-to-world poses, pixel intrinsics
``(fx, fy, cx, cy)`` where pixel ``(row i, column j)`` has its centre at ``(j + 0.5, i + 0.5)``
(COLMAP's convention too).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass
class Reconstruction:
    """One consistent reconstruction of (some of) a clip's N frames, up to an unknown scale."""

    c2w: np.ndarray  # (N, 4, 4) float64 camera-to-world; NaN where a frame is not registered
    registered: np.ndarray  # (N,) bool
    intrinsics: np.ndarray  # (4,) float64 (fx, fy, cx, cy) in pixels of the clip's frames
    points: np.ndarray  # (M, 3) float64 sparse 3D points in the reconstruction's frame
    obs_frame: np.ndarray  # (K,) int64: frame of each observation
    obs_point: np.ndarray  # (K,) int64: its point (row of ``points``)
    obs_uv: np.ndarray  # (K, 2) float64: where the frame saw it (pixels, centre convention above)

    def __post_init__(self) -> None:
        n = len(self.registered)
        if self.c2w.shape != (n, 4, 4):
            raise ValueError(f"c2w must have shape ({n}, 4, 4) for {n} frames, got {self.c2w.shape}")
        if self.intrinsics.shape != (4,) or not (self.intrinsics[:2] > 0).all():
            raise ValueError(f"intrinsics must be (fx, fy, cx, cy) with fx, fy > 0, got {self.intrinsics}")
        if not np.isfinite(self.c2w[self.registered]).all():
            raise ValueError("c2w must be finite at every registered frame")
        k = len(self.obs_frame)
        if self.obs_point.shape != (k,) or self.obs_uv.shape != (k, 2) or self.points.ndim != 2 or self.points.shape[1] != 3:
            raise ValueError(f"observations must be (K,), (K,), (K, 2) with points (M, 3); got {self.obs_frame.shape}, "
                             f"{self.obs_point.shape}, {self.obs_uv.shape}, {self.points.shape}")
        if k and not self.registered[self.obs_frame].all():
            raise ValueError("every observation must lie in a registered frame")

    @property
    def num_registered(self) -> int:
        return int(self.registered.sum())

    def camera_points(self) -> np.ndarray:
        """Each observation's point in its frame's camera coordinates (K, 3)."""
        w2c = np.linalg.inv(self.c2w[self.obs_frame])
        p = self.points[self.obs_point]
        return np.einsum("kij,kj->ki", w2c[:, :3, :3], p) + w2c[:, :3, 3]

    def reprojection_errors(self) -> np.ndarray:
        """Pixel distance (K,) between each observation and its point projected into its frame."""
        x = self.camera_points()
        fx, fy, cx, cy = self.intrinsics
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = np.stack([fx * x[:, 0] / x[:, 2] + cx, fy * x[:, 1] / x[:, 2] + cy], axis=1)
        return np.linalg.norm(uv - self.obs_uv, axis=1)


@dataclass
class Estimate:
    """An estimator's answer for one clip: its reconstructions, largest first (none when it failed),
    diagnostics that say why one failed (``keypoints_per_frame``: the median count of features a
    frame, ``verified_pairs``: frame pairs with geometrically verified matches, ``degenerate_models``:
    models dropped because their camera came out impossible), notes, and seconds spent per stage."""

    reconstructions: list[Reconstruction]
    diagnostics: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


@runtime_checkable
class PoseEstimator(Protocol):
    """Camera poses of a clip's frames.

    ``frames`` is (N, H, W, 3) uint8; ``intrinsics`` the pixel intrinsics (4,) when known, else None
    (the estimator finds them and reports them in each reconstruction). Implementations must not
    download anything: a learned estimator loads weights the user installed.
    """

    def __call__(self, frames: np.ndarray, intrinsics: np.ndarray | None) -> Estimate: ...
