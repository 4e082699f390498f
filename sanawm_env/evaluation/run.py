"""``sanawm eval``: roll a world out along the evaluation's camera paths, beside the ground truth, and
score it (docs/metrics.md)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tqdm import tqdm

from model.atomic import write_text_atomic
from model.video import to_uint8
from model.world import DEFAULT_WORLD, WorldModel, default_world, load_world

from .config import EvalConfig
from .paths import SPLITS, mirror_actions, plan_actions
from .report import format_table, plot_curves, plot_grid, write_side_by_side, write_table
from .scores import WORLDS, Rollout, revisit_pairs, score, world_frames

# Poses of the two envs along the same collision-free actions agree to float32 rounding.
POSE_TOLERANCE = 1e-4


@dataclass
class EvalResult:
    """What an evaluation wrote: the metrics (as in ``metrics.json``), the printed table, and paths."""

    metrics: dict[str, Any]
    table: str
    paths: dict[str, Path]


def _world(path: str | None) -> tuple[WorldModel, str]:
    if path is None:
        return default_world(), f"the shipped world ({DEFAULT_WORLD.relative_to(DEFAULT_WORLD.parents[2])})"
    return load_world(path), str(path)


def _episode_seeds(seed: int, split: str, scene: int) -> tuple[int, np.random.Generator]:
    """The reset seed (start pose, world noise) and the action generator of one rollout; keyed by the
    split's and the scene's names, so adding a split or a scene leaves the other rollouts as they were."""
    seq = np.random.SeedSequence([seed, SPLITS.index(split), scene])
    return int(seq.generate_state(1)[0]), np.random.default_rng(seq)


def _roll(env: gym.Env, reset_seed: int, scene: int, actions: np.ndarray, bar: tqdm) -> tuple[np.ndarray, np.ndarray, int]:
    """Frames (F, H, W, 3), poses (F, 4, 4) and the number of colliding steps of ``actions`` from the reset."""
    _, info = env.reset(seed=reset_seed, options={"scene_seed": scene})
    frames, poses, collisions = [info["frames"]], [info["poses"]], 0
    for action in actions:
        _, _, _, _, info = env.step(action)
        frames.append(info["frames"])
        poses.append(info["poses"])
        collisions += bool(info["collision"])
        bar.update()
    return np.concatenate(frames), np.concatenate(poses), collisions


@torch.inference_mode()
def autoencode(vae: torch.nn.Module, frames: np.ndarray) -> np.ndarray:
    """``frames`` (F, H, W, 3) uint8 encoded and decoded whole by ``vae`` (F = 1 + a multiple of its
    temporal stride, as every rollout is), in the precision and on the device of its weights."""
    weight = next(vae.parameters())
    video = torch.from_numpy(frames).to(weight.device).permute(3, 0, 1, 2)[None].to(weight.dtype) / 127.5 - 1  # (1, 3, F, H, W)
    decoded, _ = vae.decode(vae.encode(video))
    return to_uint8(decoded)[0]


def _mean(values: list[float | None]) -> float | None:
    return None if any(v is None for v in values) else float(np.mean(values))


@dataclass
class _Envs:
    """The two worlds of an evaluation, driven with the same actions."""

    learned: gym.Env
    truth: gym.Env
    fps: float
    frames_per_step: int


def _rollout(envs: _Envs, split: str, scene: int, steps: int, seed: int, bar: tqdm) -> tuple[Rollout, dict[str, Any]]:
    """One rollout of ``split`` in ``scene``: the frames of both worlds along the planned actions and of
    the ground truth along the mirrored path, and its record for metrics.json (without scores)."""
    reset_seed, rng = _episode_seeds(seed, split, scene)
    _, start = envs.truth.reset(seed=reset_seed, options={"scene_seed": scene})
    gt = envs.truth.unwrapped
    actions = plan_actions(split, gt.scene, start["pose"].astype(np.float64), steps, rng, envs.frames_per_step, gt.step_scale)
    truth, truth_poses, collisions = _roll(envs.truth, reset_seed, scene, actions, bar)
    mirror, _, mirror_collisions = _roll(envs.truth, reset_seed, scene, mirror_actions(actions), bar)
    frames, poses, _ = _roll(envs.learned, reset_seed, scene, actions, bar)
    if collisions or not np.allclose(poses, truth_poses, atol=POSE_TOLERANCE):
        raise RuntimeError(f"{split}, scene {scene}: the planned path hit geometry in the ground-truth world "
                           f"({collisions} step(s)), so the two worlds' cameras parted")
    record = {"scene_seed": scene, "reset_seed": reset_seed, "mirror_collisions": mirror_collisions, "actions": actions.tolist()}
    return Rollout(world=frames, truth=truth, autoencoded=autoencode(envs.learned.unwrapped.worlds.world.vae, truth), mirror=mirror,
                   poses=truth_poses, fps=envs.fps, palindrome=split == "revisit"), record


def _evaluate_split(cfg: EvalConfig, envs: _Envs, split: str, steps: int, bar: tqdm, paths: dict[str, Path]) -> dict[str, Any]:
    """Every scene of ``split``: scores, videos and the frame grid, then the split's means and curves
    (its entry of metrics.json) and its plot."""
    out = Path(cfg.out)
    episodes, curves = [], {w: {} for w in WORLDS}
    for k, scene in enumerate(cfg.scenes):
        bar.set_postfix_str(f"{split}, scene {scene}")
        rollout, record = _rollout(envs, split, scene, steps, cfg.seed, bar)
        scores = score(rollout, cfg.psnr_cap_db, cfg.early_seconds, cfg.degradation_seconds)
        if cfg.camera_seconds > 0:
            from .camera import camera_scores  # needs the annotate extra (COLMAP)

            intrinsics = envs.learned.unwrapped.worlds.intrinsics.numpy()
            for w, x in world_frames(rollout).items():
                scores[w]["scalars"].update(camera_scores(np.ascontiguousarray(x), rollout.poses, intrinsics, envs.fps, cfg.camera_seconds))
        episodes.append({**record, "worlds": {w: scores[w]["scalars"] for w in WORLDS}})
        for w in WORLDS:
            for name, values in scores[w]["curves"].items():
                curves[w].setdefault(name, []).append(values)
        tag = f"{split}_scene{scene}"
        if cfg.videos:
            paths[f"video_{tag}"] = write_side_by_side(out / "videos" / f"{tag}.mp4", rollout.world, rollout.truth, envs.fps)
        if k == 0:
            paths[f"grid_{split}"] = plot_grid(out / "plots" / f"{split}_grid.png",
                                               f"{split}, scene {scene}: ground truth (top) and generated (bottom) frames",
                                               rollout.world, rollout.truth, envs.fps, cfg.grid_frames, cfg.psnr_cap_db)
    frames = len(rollout.truth)
    mean_curves: dict[str, Any] = {"time_s": (np.arange(1, frames) / envs.fps).tolist()}
    for w in WORLDS:
        mean_curves[w] = {name: np.mean(values, axis=0).tolist() for name, values in curves[w].items()}
    if split == "revisit":
        out_idx, back_idx = revisit_pairs(frames)
        mean_curves["revisit_gap_s"] = ((back_idx - out_idx) / envs.fps).tolist()
    paths[f"plot_{split}"] = plot_curves(out / "plots" / f"{split}_metrics.png", split, mean_curves, cfg.psnr_cap_db)
    means = {w: {key: _mean([e["worlds"][w][key] for e in episodes]) for key in episodes[0]["worlds"][w]} for w in WORLDS}
    return {"seconds": steps * envs.frames_per_step / envs.fps, "steps": steps, "frames": frames, "scenes": len(cfg.scenes),
            "worlds": means, "episodes": episodes, "curves": mean_curves}


def evaluate(cfg: EvalConfig) -> EvalResult:
    """Evaluate the world of ``cfg`` on every split and scene of ``cfg``; write ``table.txt``,
    ``metrics.json``, ``plots/`` and ``videos/`` under ``cfg.out`` and return what was written."""
    start_time = time.perf_counter()
    world, world_name = _world(cfg.world)
    info = world.info
    # The world is scored along the truth's collision-free path: a collision predictor must not stop it.
    learned = gym.make("SanaWM-v0", checkpoint=world, size=info.size, height=info.height, width=info.width,
                       fov_deg=info.fov_deg, task="free", **{"collisions": False, **cfg.env_kwargs})
    frames_per_step = learned.unwrapped.frames_per_step
    truth = gym.make("SanaWM-GT-v0", height=info.height, width=info.width, frames_per_step=frames_per_step,
                     fov_deg=info.fov_deg, task="free")
    envs = _Envs(learned=learned, truth=truth, fps=info.fps, frames_per_step=frames_per_step)
    step_seconds = frames_per_step / info.fps
    steps = {split: max(1, round(seconds / step_seconds)) for split, seconds in cfg.splits.items()}
    if steps.get("revisit", 2) < 2:
        raise ValueError(f"splits.revisit: {cfg.splits['revisit']} s is {steps['revisit']} step of {step_seconds:g} s; "
                         "a revisit path needs at least 2 (out and back)")
    paths: dict[str, Path] = {}
    metrics: dict[str, Any] = {"world": world_name, "trained": info.trained, "size": info.size, "height": info.height,
                               "width": info.width, "fps": info.fps, "step_seconds": step_seconds,
                               "psnr_cap_db": cfg.psnr_cap_db, "config": asdict(cfg), "splits": {}}
    tables = [f"sanawm eval: {world_name} ({info.size}, {'trained' if info.trained else 'untrained'}), "
              f"{info.height} x {info.width} at {info.fps:g} fps, PSNR capped at {cfg.psnr_cap_db:g} dB (exact)"]
    # Three rollouts a path: the ground truth along it and along its mirror image, and the world.
    with tqdm(total=3 * sum(steps.values()) * len(cfg.scenes), desc="sanawm eval", unit="env step", disable=not cfg.progress) as bar:
        for split in (s for s in SPLITS if s in cfg.splits):
            summary = _evaluate_split(cfg, envs, split, steps[split], bar, paths)
            metrics["splits"][split] = summary
            tables.append(format_table(split, summary, cfg.psnr_cap_db, cfg.early_seconds, cfg.degradation_seconds, cfg.camera_seconds))
    learned.close()
    truth.close()
    table = "\n\n".join(tables)
    metrics["wall_seconds"] = time.perf_counter() - start_time
    out = Path(cfg.out)
    paths["table"] = write_table(out / "table.txt", table)
    paths["metrics"] = write_text_atomic(out / "metrics.json", json.dumps(metrics, indent=1, allow_nan=False))
    return EvalResult(metrics=metrics, table=table, paths=paths)
