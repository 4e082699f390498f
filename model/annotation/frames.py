"""Frames to annotate: video files (decoded with PyAV, an optional dependency) or folders of
images, sampled to a frame rate, resized, and cut into clips of a fixed number of frames."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from model.clips import IMAGE_SUFFIXES

from .colmap import import_optional

VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}


@dataclass
class Sampling:
    """How frames are taken from a source."""

    fps: float | None = None  # frames a second to keep (None: every frame)
    clip_frames: int = 48  # frames per annotated clip; a longer source is cut into consecutive clips
    size: tuple[int, int] | None = None  # (H, W) to resize frames to; the source's size if None
    folder_fps: float = 30.0  # the frame rate of a folder of images (videos carry their own)

    def __post_init__(self) -> None:
        if self.fps is not None and not self.fps > 0:
            raise ValueError(f"fps must be positive (or None for every frame), got {self.fps}")
        if self.clip_frames < 2:
            raise ValueError(f"clip_frames must be >= 2, got {self.clip_frames}")
        if self.size is not None and (len(self.size) != 2 or min(self.size) <= 0):
            raise ValueError(f"size must be (height, width) with positive entries, got {self.size}")
        if not self.folder_fps > 0:
            raise ValueError(f"folder_fps must be positive, got {self.folder_fps}")


@dataclass
class SourceClip:
    """Consecutive sampled frames of one source."""

    name: str
    source: Path
    frames: np.ndarray  # (N, H, W, 3) uint8
    timestamps_us: np.ndarray  # (N,) int64, microseconds since the source's start


def _is_frame_folder(path: Path) -> bool:
    return path.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.iterdir())


def find_sources(inputs: list[str | Path]) -> list[Path]:
    """Video files and frame folders named by ``inputs``: a video, a folder of images, or a folder
    holding videos and folders of images (one level down)."""
    found: list[Path] = []
    for item in map(Path, inputs):
        if not item.exists():
            raise FileNotFoundError(f"{item}: no such video or folder")
        if item.is_file():
            if item.suffix.lower() not in VIDEO_SUFFIXES:
                raise ValueError(f"{item}: not a video ({', '.join(sorted(VIDEO_SUFFIXES))}) or a folder of frames")
            found.append(item)
        elif _is_frame_folder(item):
            found.append(item)
        else:
            inner = [p for p in sorted(item.iterdir()) if (p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES) or _is_frame_folder(p)]
            if not inner:
                raise ValueError(f"{item}: holds no videos and no folders of images ({', '.join(sorted(IMAGE_SUFFIXES))})")
            found.extend(inner)
    names = [p.stem for p in found]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"sources share the names {repeated}; every video or frame folder needs its own name")
    return found


def _resize(frame: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    if size is None or frame.shape[:2] == tuple(size):
        return frame
    return np.asarray(Image.fromarray(frame).resize((size[1], size[0]), Image.BILINEAR))


def _video_frames(path: Path, fps: float | None) -> Iterator[tuple[float, np.ndarray]]:
    av = import_optional("av")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as e:
        raise ValueError(f"{path}: not a readable video ({e})") from e
    with container:
        if not container.streams.video:
            raise ValueError(f"{path}: has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "SLICE"  # one core: frame threading would take several
        next_time = 0.0
        for frame in container.decode(stream):
            t = float(frame.time) if frame.time is not None else next_time
            if fps is None or t >= next_time - 1e-6:
                next_time = t + (1.0 / fps if fps else 0.0)
                yield t, frame.to_ndarray(format="rgb24")


def _folder_frames(path: Path, fps: float | None, folder_fps: float) -> Iterator[tuple[float, np.ndarray]]:
    images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    step = 1 if fps is None else max(1, round(folder_fps / fps))
    for i in range(0, len(images), step):
        try:
            frame = np.asarray(Image.open(images[i]).convert("RGB"))
        except OSError as e:
            raise ValueError(f"{images[i]}: not a readable image ({e})") from e
        yield i / folder_fps, frame


def read_clips(source: Path, sampling: Sampling) -> Iterator[SourceClip]:
    """The clips of ``source`` (a video or a frame folder): ``sampling.clip_frames`` frames each, the
    last one shorter (and dropped below 2 frames)."""
    frames = _video_frames(source, sampling.fps) if source.is_file() else _folder_frames(source, sampling.fps, sampling.folder_fps)
    buffer: list[np.ndarray] = []
    stamps: list[int] = []
    k = 0
    shape = None

    def clip() -> SourceClip:
        return SourceClip(name=f"{source.stem}_{k:03d}", source=source, frames=np.stack(buffer), timestamps_us=np.array(stamps, dtype=np.int64))

    for t, frame in frames:
        frame = _resize(frame, sampling.size)
        if shape is not None and frame.shape != shape:
            raise ValueError(f"{source}: frames change size ({shape} then {frame.shape}); give a size to resize them to")
        shape = frame.shape
        buffer.append(frame)
        stamps.append(round(t * 1e6))
        if len(buffer) == sampling.clip_frames:
            yield clip()
            buffer, stamps, k = [], [], k + 1
    if len(buffer) >= 2:
        yield clip()
    elif k == 0:
        raise ValueError(f"{source}: fewer than 2 frames after sampling")
