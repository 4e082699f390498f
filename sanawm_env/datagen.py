"""Training clips from the procedural worlds: each clip is a fresh scene, a camera path through it,
and the rendered frames with exact metric poses, written by ``model.clips.ClipShardWriter``.

Clip ``i`` depends only on ``(seed, i)``, so runs with the same seed write the same data.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from model.camera import intrinsics_from_fov
from model.clips import ClipShardWriter

from .render import render
from .scene import SceneConfig, generate_scene
from .trajectories import TRAJECTORIES, make_trajectory


def generate_clips(
    out: str | Path,
    clips: int,
    frames: int,
    size: tuple[int, int] = (64, 64),
    fps: float = 16.0,
    seed: int = 0,
    clips_per_shard: int = 64,
    fov_deg: float = 80.0,
    trajectories: tuple[str, ...] = tuple(TRAJECTORIES),
    depth: bool = False,
    scene_config: SceneConfig | None = None,
    progress: bool = True,
    resume: bool = False,
    workers: int = 1,
) -> Path:
    """Render ``clips`` clips of ``frames`` frames at ``size`` (H, W) into the folder ``out``.

    Each clip draws its scene seed and its path kind (one of ``trajectories``) from ``(seed, i)``,
    so ``resume`` continues an interrupted run (same arguments) after its last finished shard and
    writes what the uninterrupted run would have; ``workers`` processes render clips side by side and
    write the same data as one. Returns the folder.
    """
    if clips <= 0:
        raise ValueError(f"clips must be a positive int, got {clips}")
    if workers < 1:
        raise ValueError(f"workers must be a positive int, got {workers}")
    unknown = sorted(set(trajectories) - set(TRAJECTORIES))
    if unknown or not trajectories:
        raise ValueError(f"trajectories must be a non-empty subset of {sorted(TRAJECTORIES)}, got {list(trajectories)}")
    height, width = size
    if height <= 0 or width <= 0:
        raise ValueError(f"size must be positive (height, width), got {size}")
    scene_config = scene_config or SceneConfig()
    intrinsics = intrinsics_from_fov(fov_deg, height, width)
    metadata = {
        "generator": "sanawm_env.datagen",
        "seed": seed,
        "fov_deg": fov_deg,
        "trajectories": list(trajectories),
        "scene_config": asdict(scene_config),
    }
    writer = ClipShardWriter(out, frames, height, width, fps, clips_per_shard, metadata, resume=resume)
    start = writer.num_clips
    if start > clips:
        raise ValueError(f"{out} already holds {start} clips, more than clips={clips}")
    jobs = ((seed, i, trajectories, scene_config, frames, fps, intrinsics, height, width, depth) for i in range(start, clips))
    for rgb, poses, clip_depth, scene_seed, kind in tqdm(_rendered(jobs, workers), desc="clips", unit="clip", disable=not progress,
                                                         initial=start, total=clips):
        writer.add(rgb, poses, intrinsics.numpy(), metric_scale=1.0, depth=clip_depth, scene_seed=scene_seed, trajectory=kind)
    return writer.close()


def _rendered(jobs: Iterator[tuple], workers: int) -> Iterator[tuple]:
    """The clips of ``jobs`` in order, rendered here or by ``workers`` processes (the same arrays)."""
    if workers == 1:
        yield from map(_render_clip, jobs)
        return
    # spawn: the workers start clean of the parent's OpenMP threads, which fork can leave locked.
    with multiprocessing.get_context("spawn").Pool(workers, initializer=torch.set_num_threads, initargs=(1,)) as pool:
        yield from pool.imap(_render_clip, jobs, chunksize=4)


def _render_clip(job: tuple) -> tuple:
    """Clip i of a run: its frames, poses, depth (or None), scene seed and path kind (an index of TRAJECTORIES)."""
    seed, i, trajectories, scene_config, frames, fps, intrinsics, height, width, depth = job
    rng = np.random.default_rng([seed, i])
    scene_seed = int(rng.integers(2**31))
    kind = trajectories[int(rng.integers(len(trajectories)))]
    scene = generate_scene(scene_seed, scene_config)
    poses = make_trajectory(kind, scene, rng, frames, fps)
    rendered = render(scene, torch.from_numpy(poses), intrinsics, height, width)
    return rendered.rgb.numpy(), poses, rendered.depth.numpy() if depth else None, scene_seed, list(TRAJECTORIES).index(kind)
