"""``sanawm annotate``: sources in, a RealEstate10K-style folder out, which ``model.clips.open_clips``
(and so ``sanawm train stage=vae|latents data=...``) reads as it is.

Layout of the output folder:

* ``<clip>.txt``: RealEstate10K cameras (first line the source, then per frame the timestamp,
  intrinsics normalised by the image size and the world-to-camera pose; poses relative to the
  clip's first frame, in metres when a scale source was given), written last, so a camera file
  always has its frames;
* ``<clip>/<timestamp>.png``: the frames;
* ``<clip>.json``: the clip's report (pixel intrinsics, scale and its spread, registered and
  interpolated frames, reprojection error, parallax), also for rejected clips, with the reasons;
* ``annotation.json``: every source's clips and segments, accepted or not, and seconds per stage.

A source is cut into clips of ``clip_frames``; a clip whose reconstruction splits or has long gaps
becomes several segments ``<clip>_s<k>``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from model.atomic import write_text_atomic
from model.camera import Re10kCameras, write_re10k_cameras

from .colmap import ColmapEstimator
from .estimator import PoseEstimator
from .frames import Sampling, SourceClip, find_sources, read_clips
from .pipeline import ClipResult, ScaleSources, Segment, annotate_frames
from .quality import QualityLimits


@dataclass
class AnnotateConfig:
    """Settings of ``sanawm annotate`` (see ``Sampling`` and ``QualityLimits`` for their fields)."""

    sampling: Sampling = field(default_factory=Sampling)
    limits: QualityLimits = field(default_factory=QualityLimits)
    intrinsics: tuple[float, float, float, float] | None = None  # pixels of the (resized) frames; estimated if None
    camera_height_m: float | None = None  # a known camera height over the ground, for metric scale
    progress: bool = True

    def __post_init__(self) -> None:
        if self.intrinsics is not None and (len(self.intrinsics) != 4 or not min(self.intrinsics[:2]) > 0):
            raise ValueError(f"intrinsics must be (fx, fy, cx, cy) in pixels with fx, fy > 0, got {self.intrinsics}")
        if self.camera_height_m is not None and not self.camera_height_m > 0:
            raise ValueError(f"camera_height_m must be positive (metres), got {self.camera_height_m}")


def _json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return _json_ready(value.tolist())
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def _segment_names(clip: SourceClip, result: ClipResult) -> list[str]:
    if len(result.segments) == 1:
        return [clip.name]
    return [f"{clip.name}_s{k}" for k in range(len(result.segments))]


def write_segment(out: Path, name: str, clip: SourceClip, segment: Segment) -> None:
    """The frames folder, then the camera file of one accepted segment."""
    frames = clip.frames[segment.start : segment.stop]
    stamps = clip.timestamps_us[segment.start : segment.stop]
    tmp = out / f".{name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    for stamp, frame in zip(stamps, frames):
        Image.fromarray(frame).save(tmp / f"{int(stamp)}.png")
    os.replace(tmp, out / name)
    h, w = frames.shape[1:3]
    normalised = segment.intrinsics / np.array([w, h, w, h])
    cameras = Re10kCameras(url=str(clip.source), timestamps=torch.from_numpy(stamps.astype(np.int64)),
                           intrinsics=torch.from_numpy(np.tile(normalised, (len(frames), 1))),
                           c2w=torch.from_numpy(segment.c2w))
    write_re10k_cameras(out / f"{name}.txt", cameras)


def _report(name: str, clip: SourceClip, segment: Segment) -> dict[str, Any]:
    return {
        "name": name,
        "accepted": segment.accepted,
        "reasons": segment.reasons,
        "frame_range": [segment.start, segment.stop],
        "timestamps_us": [int(clip.timestamps_us[segment.start]), int(clip.timestamps_us[segment.stop - 1])],
        "intrinsics_px": segment.intrinsics,
        "image_size": list(clip.frames.shape[1:3]),
        "metric": segment.metric,
        "interpolated_frames": segment.interpolated,
        **segment.stats,
    }


def annotate(inputs: list[str | Path], out: str | Path, config: AnnotateConfig | None = None,
             estimator: PoseEstimator | None = None, depth: Any = None) -> dict[str, Any]:
    """Annotate every video or frame folder of ``inputs`` into the folder ``out`` (new or empty).

    ``estimator`` defaults to ``ColmapEstimator``; ``depth`` is an optional ``MetricDepth`` model.
    Returns the summary written to ``out/annotation.json``.
    """
    config = config or AnnotateConfig()
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} is not an empty folder; choose a new or empty --out, nothing in it is overwritten")
    sources = find_sources(list(inputs))
    estimator = estimator or ColmapEstimator()
    scale = ScaleSources(depth=depth, camera_height_m=config.camera_height_m)
    intrinsics = None if config.intrinsics is None else np.asarray(config.intrinsics, dtype=np.float64)
    out.mkdir(parents=True, exist_ok=True)
    clips: list[dict[str, Any]] = []
    seconds: dict[str, float] = {}
    frames_done = 0
    with tqdm(sources, desc="annotate", unit="source", disable=not config.progress) as bar:
        for source in bar:
            t = time.perf_counter()
            for clip in read_clips(source, config.sampling):
                seconds["decode"] = seconds.get("decode", 0.0) + time.perf_counter() - t
                bar.set_postfix_str(clip.name)
                result = annotate_frames(clip.frames, estimator, intrinsics, scale, config.limits)
                t = time.perf_counter()
                reports = []
                for name, segment in zip(_segment_names(clip, result), result.segments):
                    if segment.accepted:
                        write_segment(out, name, clip, segment)
                    reports.append(_json_ready(_report(name, clip, segment)))
                    write_text_atomic(out / f"{name}.json", json.dumps(reports[-1], indent=1))
                record = _json_ready({"clip": clip.name, "source": str(source), "frames": len(clip.frames), "reasons": result.reasons,
                                      "notes": result.estimate.notes, "diagnostics": result.estimate.diagnostics, "segments": reports})
                if result.reasons:
                    write_text_atomic(out / f"{clip.name}.json", json.dumps(record, indent=1))
                clips.append(record)
                for stage, s in result.seconds.items():
                    seconds[stage] = seconds.get(stage, 0.0) + s
                frames_done += len(clip.frames)
                seconds["write"] = seconds.get("write", 0.0) + time.perf_counter() - t
                t = time.perf_counter()
    accepted = [s["name"] for c in clips for s in c["segments"] if s["accepted"]]
    summary = {
        "sources": [str(s) for s in sources],
        "config": _json_ready(asdict(config)),
        "estimator": type(estimator).__name__,
        "depth": None if depth is None else type(depth).__name__,
        "frames": frames_done,
        "accepted": accepted,
        "rejected": sum(1 for c in clips for s in c["segments"] if not s["accepted"]) + sum(1 for c in clips if c["reasons"]),
        "seconds": seconds,
        "frames_per_second": {k: frames_done / v for k, v in seconds.items() if v > 0},
        "clips": clips,
    }
    write_text_atomic(out / "annotation.json", json.dumps(summary, indent=1))
    return summary
