"""Image metrics for judging a learned world against the procedural ground truth."""

from __future__ import annotations

import numpy as np


def psnr(frames: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Peak signal-to-noise ratio in dB of uint8 ``frames`` against ``reference`` (same shape
    (..., H, W, 3)), one value per image; identical images give ``inf``."""
    if frames.shape != reference.shape or frames.dtype != np.uint8 or reference.dtype != np.uint8:
        raise ValueError(f"frames and reference must be uint8 arrays of one shape, got {frames.dtype} {frames.shape} "
                         f"and {reference.dtype} {reference.shape}")
    err = (frames.astype(np.float64) - reference.astype(np.float64)) ** 2
    mse = err.reshape(*err.shape[:-3], -1).mean(-1)
    with np.errstate(divide="ignore"):
        return 10 * np.log10(255.0**2 / mse)
