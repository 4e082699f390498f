"""Video files: frames (T, H, W, 3) uint8 to .mp4 (H.264 through ffmpeg) or .gif, written atomically."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch


def video_suffix() -> str:
    """".mp4" where ffmpeg is installed (imageio-ffmpeg), else ".gif" (Pillow): for videos a run writes
    on its own, such as training samples on a machine whose image lacks ffmpeg."""
    return ".mp4" if importlib.util.find_spec("imageio_ffmpeg") is not None else ".gif"


def write_video(path: str | Path, frames: np.ndarray, fps: float = 16.0) -> Path:
    """Write frames (T, H, W, 3) uint8 to ``path`` (.mp4 through ffmpeg, or .gif)."""
    import imageio

    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 with shape (T, H, W, 3), got {frames.dtype} {frames.shape}")
    path = Path(path)
    if path.suffix not in (".mp4", ".gif"):
        raise ValueError(f"video path must end in .mp4 or .gif, got {path.name!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    if path.suffix == ".gif":
        imageio.mimwrite(tmp, list(frames), duration=1000 / fps, loop=0)
    else:
        # H.264 in yuv420p needs even sizes: pad by repeating the last row / column.
        frames = np.pad(frames, ((0, 0), (0, frames.shape[1] % 2), (0, frames.shape[2] % 2), (0, 0)), mode="edge")
        imageio.mimwrite(tmp, list(frames), fps=fps, codec="libx264", quality=8, macro_block_size=1)
    tmp.replace(path)
    return path


def to_uint8(video: torch.Tensor) -> np.ndarray:
    """Video (B, 3, F, H, W) in [-1, 1] -> frames (B, F, H, W, 3) uint8."""
    return ((video.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 4, 1).cpu().numpy()
