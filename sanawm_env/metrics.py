"""Image metrics for judging a learned world against the procedural ground truth."""

from __future__ import annotations

import numpy as np
import torch


def _check_pair(frames: np.ndarray, reference: np.ndarray) -> None:
    if frames.shape != reference.shape or frames.dtype != np.uint8 or reference.dtype != np.uint8 or frames.ndim < 3:
        raise ValueError(f"frames and reference must be uint8 arrays of one shape, got {frames.dtype} {frames.shape} "
                         f"and {reference.dtype} {reference.shape}")


def psnr(frames: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Peak signal-to-noise ratio in dB of uint8 ``frames`` against ``reference`` (same shape
    (..., H, W, 3)), one value per image; identical images give ``inf``."""
    _check_pair(frames, reference)
    err = (frames.astype(np.float64) - reference.astype(np.float64)) ** 2
    mse = err.reshape(*err.shape[:-3], -1).mean(-1)
    with np.errstate(divide="ignore"):
        return 10 * np.log10(255.0**2 / mse)


def ssim(frames: np.ndarray, reference: np.ndarray, batch: int = 256) -> np.ndarray:
    """Structural similarity of uint8 ``frames`` against ``reference`` (same shape (..., H, W, 3)),
    one value per image in [-1, 1] (1 for identical images): torchmetrics' SSIM with its defaults
    (11 x 11 Gaussian window, sigma 1.5, K = (0.01, 0.03)) over the 0..255 range, averaged over the
    channels and the pixels the window covers fully. ``batch`` images at a time bound the memory."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    _check_pair(frames, reference)
    lead = frames.shape[:-3]
    x = frames.reshape(-1, *frames.shape[-3:])
    y = reference.reshape(-1, *reference.shape[-3:])
    out = np.empty(len(x))
    for i in range(0, len(x), batch):
        a = torch.from_numpy(x[i:i + batch]).permute(0, 3, 1, 2).float()
        b = torch.from_numpy(y[i:i + batch]).permute(0, 3, 1, 2).float()
        out[i:i + batch] = structural_similarity_index_measure(a, b, data_range=255.0, reduction="none").double().numpy()
    return out.reshape(lead)
