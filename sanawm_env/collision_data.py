"""Labelled collisions from the procedural ground truth, to train the learned world's collision
predictor (``model.collision``) and to measure it on held-out scenes.

Each walk is a fresh scene and a camera walking through it as an agent would, stopped by geometry as
in ``SanaWM-GT-v0``. At each of its views the data holds the rendered frame, the direction of gravity
in the camera frame, and a few candidate motions drawn as an agent draws actions, each labelled by
the true world (``move_camera_frames``): whether it collides, and the fraction of the step's raw
frames that move before the first contact (1 where none). Motion styles:

* ``uniform``: every action dimension uniform in [-1, 1] (a random or untrained policy: it also
  rises, sinks and tilts, and so meets floors and ceilings);
* ``level``: sideways, forward and turn only, as navigation agents move (the walk leans forward).

A sharded folder (``model.shards``) of format ``sanawm-collisions`` v1 whose items are walks:
``images`` uint8 (K, H, W, 3), ``gravity`` float32 (K, 3), ``poses`` float32 (K, 4, 4),
``motion`` float32 (K, M, 6) (metres and radians, camera frame), ``collision`` bool (K, M),
``free`` float32 (K, M), ``path`` float32 (K, F, 4, 4) (the raw-frame poses of the walk's own step
from each view to the next, so a learned world can be driven along the same walk), ``scene_seed``
and ``style`` int64. Walk ``w`` depends only on
``(seed, w)``; training draws scene seeds below 2**31, held-out data from 2**31 on (as ``sanawm eval``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from model.camera import intrinsics_from_fov
from model.shards import ShardFormat, ShardWriter, open_index, read_shard

from .common import CAMERA_RADIUS
from .render import render
from .scene import generate_scene
from .trajectories import move_camera, move_camera_frames

STYLES = ("uniform", "level")
HELD_OUT = 2**31  # held-out scene seeds start here; training draws below
COLLISIONS = ShardFormat("sanawm-collisions", 1, "walks", "python -m agents.train_collision",
                         "python -m agents.train_collision", {"config": dict})
KEYS = ("images", "gravity", "poses", "motion", "collision", "free", "path", "scene_seed", "style")


@dataclass
class CollisionDataConfig:
    """How the walks are drawn; the defaults are ``SanaWM-v0``'s step and the shipped world's frames."""

    height: int = 64
    width: int = 64
    fov_deg: float = 80.0
    frames_per_step: int = 12  # raw frames of one env step: where along it the contact falls is counted in these
    max_translation: float = 0.5  # metres per step at action 1 (the envs' default)
    max_rotation: float = math.radians(30.0)  # radians per step at action 1
    views_per_walk: int = 32  # views along each walk (one scene per walk): as long as a navigation episode
    motions_per_view: int = 4  # candidate motions labelled at each view
    seed: int = 0
    held_out: bool = False  # scene seeds from 2**31 on (evaluation) instead of below (training)

    def __post_init__(self) -> None:
        for name in ("height", "width", "frames_per_step", "views_per_walk", "motions_per_view"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be a positive int, got {getattr(self, name)}")
        if self.max_translation <= 0 or self.max_rotation <= 0 or not 0 < self.fov_deg < 180:
            raise ValueError(f"need max_translation > 0, max_rotation > 0 and fov_deg in (0, 180), got "
                             f"{self.max_translation}, {self.max_rotation}, {self.fov_deg}")


def _actions(rng: np.random.Generator, style: str, n: int, forward: bool = False) -> np.ndarray:
    """``n`` actions (n, 6) in [-1, 1] of ``style``; ``forward`` leans level ones forward (a walk's own moves)."""
    if style == "uniform":
        return rng.uniform(-1.0, 1.0, (n, 6))
    actions = np.zeros((n, 6))
    actions[:, [0, 5]] = rng.uniform(-1.0, 1.0, (n, 2))
    actions[:, 2] = rng.uniform(-0.25 if forward else -1.0, 1.0, n)
    return actions


def collision_walk(config: CollisionDataConfig, w: int) -> dict[str, np.ndarray]:
    """Walk ``w`` of ``config`` (the module docstring's arrays)."""
    rng = np.random.default_rng([config.seed, w])
    scene_seed = int(rng.integers(2**31)) + (HELD_OUT if config.held_out else 0)
    style = int(rng.integers(len(STYLES)))
    scene = generate_scene(scene_seed)
    scale = np.array([config.max_translation] * 3 + [config.max_rotation] * 3)
    f, k, m = config.frames_per_step, config.views_per_walk, config.motions_per_view
    pose = scene.spawn_pose(rng, CAMERA_RADIUS).numpy()
    poses, path, motion, collision, free = [], [], np.zeros((k, m, 6)), np.zeros((k, m), bool), np.ones((k, m))
    for view in range(k):
        poses.append(pose)
        motion[view] = _actions(rng, STYLES[style], m) * scale
        for j in range(m):
            hits = move_camera_frames(scene, pose, motion[view, j], f)[1]
            if hits.any():
                collision[view, j], free[view, j] = True, int(np.argmax(hits)) / f
        path.append(move_camera(scene, pose, _actions(rng, STYLES[style], 1, forward=True)[0] * scale, f)[0])
        pose = path[-1][-1]
    poses = np.stack(poses)
    intrinsics = intrinsics_from_fov(config.fov_deg, config.height, config.width)
    images = render(scene, torch.from_numpy(poses), intrinsics, config.height, config.width).rgb.numpy()
    return {"images": images, "gravity": poses[:, 1, :3].astype(np.float32), "poses": poses.astype(np.float32),
            "motion": motion.astype(np.float32), "collision": collision, "free": free.astype(np.float32),
            "path": np.stack(path).astype(np.float32),
            "scene_seed": np.int64(scene_seed), "style": np.int64(style)}


def generate_collision_data(out: str | Path, walks: int, config: CollisionDataConfig, walks_per_shard: int = 32, resume: bool = False,
                            progress: bool = True) -> Path:
    """Write ``walks`` walks of ``config`` to the folder ``out`` (resumable, as ``sanawm data generate``); returns it."""
    if walks <= 0:
        raise ValueError(f"walks must be a positive int, got {walks}")
    writer = ShardWriter(out, COLLISIONS, {"config": asdict(config)}, walks_per_shard, resume)
    if writer.num_items > walks:
        raise ValueError(f"{out} already holds {writer.num_items} walks, more than walks={walks}")
    for w in tqdm(range(writer.num_items, walks), desc="collision walks", unit="walk", disable=not progress, initial=writer.num_items, total=walks):
        writer.add(collision_walk(config, w))
    return writer.close()


def read_collision_data(root: str | Path) -> tuple[CollisionDataConfig, dict[str, torch.Tensor]]:
    """A complete collision folder: its config and every view's arrays, walks concatenated
    (``images`` (N, H, W, 3), ``motion`` (N, M, 6), ...; ``scene_seed`` and ``style`` per view)."""
    root = Path(root)
    index = open_index(root, COLLISIONS, allow_incomplete=False)
    try:
        config = CollisionDataConfig(**index["config"])
    except (TypeError, ValueError) as e:
        raise ValueError(f"{root / 'index.json'}: bad 'config' ({e})") from e
    parts = [read_shard(root / s["file"], KEYS, lambda key, n=s["walks"]: slice(0, n)) for s in index["shards"]]
    if not parts:
        raise ValueError(f"{root / 'index.json'}: the folder holds no walks")
    k = config.views_per_walk
    data = {key: torch.cat([p[key] for p in parts]) for key in KEYS}
    return config, {key: (v.repeat_interleave(k) if key in ("scene_seed", "style") else v.flatten(0, 1)) for key, v in data.items()}
