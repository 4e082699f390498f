"""Camera accuracy (docs/metrics.md): poses re-estimated on a world's frames by ``sanawm annotate``'s
estimator (COLMAP), against the commanded path, as the SANA-WM benchmark and CamI2V score camera control."""

from __future__ import annotations

import numpy as np
from PIL import Image

from model.annotation.accuracy import camera_accuracy
from model.annotation.colmap import ColmapEstimator
from model.annotation.estimator import PoseEstimator

# COLMAP finds too few features in 64 x 64 frames; bicubic upsampling to this width gives it enough on
# true frames (a 3 s walk registers whole), so what fails to register is the world's, not the size's.
UPSAMPLE_WIDTH = 256
# Every second frame (8 of 16 per second): enough motion between neighbours for matching.
FRAME_STRIDE = 2
# Fewer registered frames than this give no pose errors (the metrics are relative to the first one).
MIN_REGISTERED = 3


def camera_scores(frames: np.ndarray, poses: np.ndarray, intrinsics: np.ndarray, fps: float, seconds: float,
                  estimator: PoseEstimator | None = None) -> dict[str, float | None]:
    """Camera accuracy of the first ``seconds`` of ``frames`` (F, H, W, 3) uint8 seen from the
    commanded ``poses`` (F, 4, 4) with pixel ``intrinsics`` (fx, fy, cx, cy): the fraction of the
    sampled frames the estimator registers (largest reconstruction), and CamI2V's rotation error
    (degrees), translation error and CamMC per registered frame (None below ``MIN_REGISTERED``)."""
    n = min(len(frames), 1 + round(seconds * fps))
    idx = np.arange(0, n, FRAME_STRIDE)
    height, width = frames.shape[1:3]
    scale = UPSAMPLE_WIDTH / width
    size = (UPSAMPLE_WIDTH, round(height * scale))
    sampled = np.stack([np.asarray(Image.fromarray(f).resize(size, Image.BICUBIC)) for f in frames[idx]])
    estimate = (estimator or ColmapEstimator())(sampled, np.asarray(intrinsics, dtype=np.float64) * scale)
    none = {"camera_registered": 0.0, "camera_rot_err_deg": None, "camera_trans_err": None, "camera_cammc": None}
    if not estimate.reconstructions:
        return none
    rec = estimate.reconstructions[0]
    registered = np.asarray(rec.registered, dtype=bool)
    if registered.sum() < MIN_REGISTERED:
        return {**none, "camera_registered": float(registered.mean())}
    acc = camera_accuracy(np.asarray(rec.c2w)[registered], poses[idx][registered].astype(np.float64))
    return {"camera_registered": float(registered.mean()), "camera_rot_err_deg": acc["rot_err_deg_per_frame"],
            "camera_trans_err": acc["trans_err_per_frame"], "camera_cammc": acc["cammc_per_frame"]}
