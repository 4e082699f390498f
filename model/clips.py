"""Video clips with cameras on disk: the sharded format our data generator writes, and readers
(torch Datasets) for it and for RealEstate10K-style folders.

Sharded format (a folder):

* ``index.json``: ``{"format": "sanawm-clips", "version": 1, "frames", "height", "width", "fps",
  "num_clips", "complete", "shards": [{"file", "clips"}], "metadata": {...}}``.
* ``shard-00000.safetensors`` ...: ``frames`` uint8 (N, F, H, W, 3), ``c2w`` float32 (N, F, 4, 4)
  camera-to-world in metres (OpenCV axes), ``intrinsics`` float32 (N, F, 4) (fx, fy, cx, cy) in
  pixels, ``metric_scale`` float32 (N,) (metres per pose unit), optionally ``depth`` float16
  (N, F, H, W) z-depth in metres, and any extra per-clip int64 / float32 arrays (N,).

Every file is written under a temporary name and renamed, and the index is rewritten after each
shard, so an interrupted run leaves a readable dataset of the shards it finished (``model.shards``,
the layout every sharded folder of ours shares).

Every reader returns items as dicts: ``frames`` uint8 (F, H, W, 3), ``c2w`` float32 (F, 4, 4),
``intrinsics`` float32 (F, 4), ``metric_scale`` float32 scalar, ``metric`` bool scalar (whether
poses are in metres), ``fps`` float32 scalar, and ``depth`` (F, H, W) where the data has it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from .camera import read_re10k_cameras
from .shards import ShardFormat, ShardWriter, open_index, read_shard

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
PER_FRAME = ("frames", "c2w", "intrinsics", "depth")


def _check_sizes(path: Path, index: dict[str, Any]) -> None:
    for key in ("frames", "height", "width", "fps"):
        if index[key] <= 0:
            raise ValueError(f"{path}: field {key!r} must be positive, got {index[key]!r}")


CLIPS = ShardFormat("sanawm-clips", 1, "clips", "sanawm data generate", "sanawm data generate --resume",
                    {"frames": int, "height": int, "width": int, "fps": (int, float), "metadata": dict}, _check_sizes)


CLIP_KEYS = ("frames", "c2w", "intrinsics", "metric_scale")  # what every clip shard holds (besides extras)


def read_shard_row(path: Path, row: int, required: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """Every array of row ``row`` of the safetensors shard ``path``; a damaged shard, a missing
    ``required`` array or a short one fails with the path."""
    return read_shard(path, required, lambda key: row)


class ClipShardWriter:
    """Writes clips into a sharded dataset folder (see the module docstring).

    >>> w = ClipShardWriter("data/clips", frames=17, height=64, width=64, fps=16)  # doctest: +SKIP
    >>> w.add(frames, c2w, intrinsics)  # doctest: +SKIP
    >>> w.close()  # doctest: +SKIP
    """

    def __init__(
        self,
        out_dir: str | Path,
        frames: int,
        height: int,
        width: int,
        fps: float,
        clips_per_shard: int = 64,
        metadata: dict[str, Any] | None = None,
        resume: bool = False,
    ) -> None:
        for name, value in (("frames", frames), ("height", height), ("width", width)):
            if not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps!r}")
        self.frames, self.height, self.width, self.fps = int(frames), int(height), int(width), float(fps)
        settings = {"frames": self.frames, "height": self.height, "width": self.width, "fps": self.fps, "metadata": dict(metadata or {})}
        self._writer = ShardWriter(out_dir, CLIPS, settings, clips_per_shard, resume)
        self.out_dir = self._writer.out_dir
        self._fields: set[str] | None = None

    @property
    def num_clips(self) -> int:
        """Clips written so far (a resumed dataset starts with those of its finished shards)."""
        return self._writer.num_items

    def add(
        self,
        frames: np.ndarray,
        c2w: np.ndarray,
        intrinsics: np.ndarray,
        metric_scale: float = 1.0,
        depth: np.ndarray | None = None,
        **extra: int | float,
    ) -> None:
        """Queue one clip: frames (F, H, W, 3) uint8, c2w (F, 4, 4), intrinsics (F, 4) or (4,)."""
        f, h, w = self.frames, self.height, self.width
        frames = np.asarray(frames)
        if frames.dtype != np.uint8:
            raise TypeError(f"frames must be uint8, got {frames.dtype}")
        if frames.shape != (f, h, w, 3):
            raise ValueError(f"frames must have shape (frames, height, width, 3) = {(f, h, w, 3)}, got {frames.shape}")
        c2w = np.asarray(c2w, dtype=np.float32)
        if c2w.shape != (f, 4, 4) or not np.isfinite(c2w).all():
            raise ValueError(f"c2w must be finite with shape {(f, 4, 4)}, got {c2w.shape}")
        intrinsics = np.broadcast_to(np.asarray(intrinsics, dtype=np.float32), (f, 4))
        if not (np.isfinite(intrinsics).all() and (intrinsics[:, :2] > 0).all()):
            raise ValueError("intrinsics must be finite (fx, fy, cx, cy) with fx, fy > 0")
        clip = {
            "frames": frames,
            "c2w": c2w,
            "intrinsics": np.ascontiguousarray(intrinsics),
            "metric_scale": np.float32(metric_scale),
        }
        if depth is not None:
            depth = np.asarray(depth)
            if depth.shape != (f, h, w):
                raise ValueError(f"depth must have shape {(f, h, w)}, got {depth.shape}")
            clip["depth"] = depth.astype(np.float16)
        for key, value in extra.items():
            clip[key] = np.asarray(value, dtype=np.int64 if isinstance(value, (int, np.integer)) else np.float32)
        if self._fields is not None and clip.keys() != self._fields:
            raise ValueError(f"every clip of a dataset needs the same fields; got {sorted(clip)} after {sorted(self._fields)}")
        self._fields = set(clip)
        self._writer.add(clip)

    def close(self) -> Path:
        """Write the last shard and mark the dataset complete; returns the folder."""
        return self._writer.close()

    def __enter__(self) -> ClipShardWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: Any) -> None:
        if exc_type is None:
            self.close()


def _check_window(clip_frames: int | None, frame_stride: int) -> None:
    if clip_frames is not None and clip_frames < 1:
        raise ValueError(f"clip_frames must be a positive int or None (all frames), got {clip_frames}")
    if frame_stride < 1:
        raise ValueError(f"frame_stride must be >= 1, got {frame_stride}")


def _window(num_frames: int, clip_frames: int | None, frame_stride: int, random_window: bool) -> slice:
    """Frames of a clip to read: ``clip_frames`` frames ``frame_stride`` apart (all if None)."""
    span = num_frames if clip_frames is None else (clip_frames - 1) * frame_stride + 1
    if span > num_frames:
        raise ValueError(f"clip_frames={clip_frames} with frame_stride={frame_stride} needs {span} frames, clips have {num_frames}")
    start = int(torch.randint(num_frames - span + 1, ()).item()) if random_window else 0
    return slice(start, start + span, frame_stride)


class ClipDataset(Dataset):
    """Reads a sharded clip folder written by ``ClipShardWriter`` (``sanawm data generate``).

    Args:
        root: the folder with ``index.json``.
        clip_frames: frames per item (all frames of the clip if None).
        frame_stride: take every n-th frame.
        random_window: start the window at a random frame (torch's generator) instead of frame 0.
        allow_incomplete: read an interrupted dataset (its finished shards) instead of refusing it.
    """

    def __init__(self, root: str | Path, clip_frames: int | None = None, frame_stride: int = 1, random_window: bool = False,
                 allow_incomplete: bool = False) -> None:
        self.root = Path(root)
        self.index = open_index(self.root, CLIPS, allow_incomplete)
        _check_window(clip_frames, frame_stride)
        self.fps = float(self.index["fps"]) / frame_stride
        self._window = (clip_frames, frame_stride, random_window)
        _window(self.index["frames"], clip_frames, frame_stride, False)  # fail now, not in a worker
        self._locations = [(s["file"], i) for s in self.index["shards"] for i in range(s["clips"])]

    def __len__(self) -> int:
        return len(self._locations)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"clip index {i} out of range for {len(self)} clips")
        file, row = self._locations[i]
        frames = _window(self.index["frames"], *self._window)
        path = self.root / file
        item = {k: v[frames] if k in PER_FRAME else v for k, v in read_shard_row(path, row, CLIP_KEYS).items()}
        if tuple(item["frames"].shape[1:]) != (self.index["height"], self.index["width"], 3):
            raise ValueError(f"{path}: row {row} has frames {tuple(item['frames'].shape)}, the index says "
                             f"{self.index['height']} x {self.index['width']} x 3")
        item["metric"] = torch.tensor(True)
        item["fps"] = torch.tensor(self.fps, dtype=torch.float32)
        return item


class RealEstate10KDataset(Dataset):
    """Reads RealEstate10K-style sequences: ``<name>.txt`` camera files, each with a folder of
    frames named by timestamp (``<timestamp>.png`` or ``.jpg``) or, failing that, one image per
    camera line in sorted order.

    Args:
        cameras_dir: folder searched (recursively) for ``*.txt`` camera files.
        frames_dir: where the ``<name>/`` image folders are (default: beside the camera files).
        size: (H, W) to resize frames to (intrinsics follow); native size if None.
        clip_frames, frame_stride, random_window: as in ``ClipDataset``.
        fps: the frame rate to report (RealEstate10K frames are usually subsampled video).

    RealEstate10K poses come from SLAM and are known only up to scale: items carry
    ``metric = False`` and ``metric_scale = 1``.
    """

    def __init__(
        self,
        cameras_dir: str | Path,
        frames_dir: str | Path | None = None,
        size: tuple[int, int] | None = None,
        clip_frames: int | None = None,
        frame_stride: int = 1,
        random_window: bool = False,
        fps: float = 30.0,
    ) -> None:
        self.cameras_dir = Path(cameras_dir)
        frames_root = Path(frames_dir) if frames_dir is not None else None
        if size is not None and (len(size) != 2 or min(size) <= 0):
            raise ValueError(f"size must be (height, width) with positive entries, got {size!r}")
        _check_window(clip_frames, frame_stride)
        self.size = size
        self.fps = fps / frame_stride
        self._window = (clip_frames, frame_stride, random_window)
        self.sequences: list[tuple[Path, list[Path]]] = []
        for txt in sorted(self.cameras_dir.rglob("*.txt")):
            folder = (frames_root / txt.relative_to(self.cameras_dir).with_suffix("")) if frames_root else txt.with_suffix("")
            if folder.is_dir():
                self.sequences.append((txt, sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)))
        if not self.sequences:
            raise FileNotFoundError(f"no RealEstate10K sequences (<name>.txt with a <name>/ folder of images) under {self.cameras_dir}")

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        txt, images = self.sequences[i]
        cams = read_re10k_cameras(txt)
        by_stamp = {p.stem: p for p in images}
        stamps = [str(t) for t in cams.timestamps.tolist()]
        if all(s in by_stamp for s in stamps):
            paths = [by_stamp[s] for s in stamps]
        elif len(images) == len(stamps):
            paths = images
        else:
            raise ValueError(f"{txt}: {len(stamps)} cameras but {len(images)} images, and image names are not the timestamps")
        window = _window(len(paths), *self._window)
        frames = []
        for path in paths[window]:
            img = Image.open(path).convert("RGB")
            if self.size is not None:
                img = img.resize((self.size[1], self.size[0]), Image.BILINEAR)
            frames.append(np.asarray(img))
        h, w = frames[0].shape[:2]
        return {
            "frames": torch.from_numpy(np.stack(frames)),
            "c2w": cams.c2w[window].float(),
            "intrinsics": cams.pixel_intrinsics(h, w)[window].float(),
            "metric_scale": torch.tensor(1.0),
            "metric": torch.tensor(False),
            "fps": torch.tensor(self.fps, dtype=torch.float32),
        }


def open_clips(path: str | Path, **kwargs: Any) -> Dataset:
    """The right reader for ``path``: a sharded folder (``index.json``) or RealEstate10K-style files."""
    path = Path(path)
    if (path / "index.json").exists():
        return ClipDataset(path, **kwargs)
    if path.is_dir() and any(path.rglob("*.txt")):
        return RealEstate10KDataset(path, **kwargs)
    raise FileNotFoundError(f"{path}: neither a clip folder (index.json) nor RealEstate10K-style camera files (*.txt)")
