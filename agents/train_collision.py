"""Train the learned world's collision predictor on the procedural ground truth and measure it on held-out scenes.

    python -m agents.train_collision                          # outputs/collision: data, collision.safetensors, metrics.json
    python -m agents.train_collision train_walks=200 epochs=4 out=runs/collision-small

Data (``sanawm_env.collision_data``, resumable: a rerun continues an interrupted folder and reuses a
finished one): ``train_walks`` walks in scenes below 2**31, the last ``val_fraction`` of them kept to
pick the decision threshold (the one of best F1), and ``eval_walks`` walks in held-out scenes (seeds
from 2**31 on) for the numbers. The predictor (``model.collision``) learns the collision by binary
cross-entropy and, on colliding motions, the free fraction of the step by cross-entropy against it
(weighted by ``free_weight``). ``metrics.json`` holds, on the held-out scenes: the base rate
(collisions among the candidate motions), precision, recall, F1 and accuracy of the predictor, of the
trivial answers (never / always a collision) and of a depth-free baseline (the same training, an MLP
over the motion and gravity alone, no frame), each overall, per motion style and by direction (towards
what the frame shows, or elsewhere), and the predictor's
error in frames on where the contact falls; plus the data and training times. With
``imagined_walks``, the first that many held-out walks are also driven through a learned world
(``world``; the shipped one by default) along their true paths, and the predictor is scored on the
frames the world imagines there (from each walk's second view on; its first is the true frame the
world starts from) against the true world's labels.

Install the result into a world folder (``SanaWM-v0`` then stops the camera where it foresees contact)::

    cp outputs/collision/collision.safetensors <world folder>/
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from model.checkpoint import save_model
from model.collision import CollisionConfig, CollisionPredictor, mirror
from sanawm_env.collision_data import HELD_OUT, STYLES, CollisionDataConfig, generate_collision_data, read_collision_data

from .runs import compose


@dataclass
class TrainCollisionConfig:
    """Schema of ``configs/agents/train_collision.yaml`` (its notes say what each knob does)."""

    out: str = "outputs/collision"
    train_walks: int = 1200
    eval_walks: int = 200
    val_fraction: float = 0.1
    data: dict[str, Any] = field(default_factory=dict)
    channels: list[int] = field(default_factory=lambda: [16, 32, 64, 64])
    hidden: int = 128
    epochs: int = 24
    batch_size: int = 64
    learning_rate: float = 2e-3
    free_weight: float = 1.0
    mirror: bool = True
    world: str | None = None
    imagined_walks: int = 32
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("train_walks", "eval_walks", "epochs", "batch_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0 <= self.imagined_walks <= self.eval_walks:
            raise ValueError(f"imagined_walks must be in [0, eval_walks={self.eval_walks}], got {self.imagined_walks}")
        if not 0 < self.val_fraction < 1 or self.learning_rate <= 0 or self.free_weight < 0:
            raise ValueError(f"need val_fraction in (0, 1), learning_rate > 0, free_weight >= 0; got {self.val_fraction}, "
                             f"{self.learning_rate}, {self.free_weight}")
        CollisionDataConfig(**self.data)  # unknown or bad data fields fail now


def _data(folder: Path, walks: int, config: CollisionDataConfig, progress: bool) -> dict[str, torch.Tensor]:
    """The walks of ``config`` in ``folder``: generated (or resumed) unless a finished folder of the same config is there."""
    index = folder / "index.json"
    done = index.exists() and json.loads(index.read_text()).get("complete")
    if not done:
        generate_collision_data(folder, walks, config, resume=True, progress=progress)
    found, data = read_collision_data(folder)
    if found != config or len(data["style"]) != walks * config.views_per_walk:
        raise ValueError(f"{folder}: holds {len(data['style']) // found.views_per_walk} walks of {asdict(found)}, this run wants "
                         f"{walks} of {asdict(config)}; choose another out")
    return data


class _Blind(nn.Module):
    """The depth-free baseline: an MLP over the motion and gravity, no frame (the predictor's call signature)."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(9, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, 2))

    def forward(self, images: torch.Tensor, gravity: torch.Tensor, motion: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat([motion, gravity[:, None].expand(-1, motion.shape[1], -1)], -1))


def _loss(logits: torch.Tensor, collision: torch.Tensor, free: torch.Tensor, free_weight: float) -> torch.Tensor:
    loss = F.binary_cross_entropy_with_logits(logits[..., 0], collision.float())
    if collision.any():
        loss = loss + free_weight * F.binary_cross_entropy_with_logits(logits[..., 1][collision], free[collision])
    return loss


def _fit(model: nn.Module, data: dict[str, torch.Tensor], cfg: TrainCollisionConfig, name: str) -> list[float]:
    """Adam with a one-cycle learning rate (peak ``cfg.learning_rate``) over ``cfg.epochs`` passes of
    shuffled views, half of each batch mirrored with ``cfg.mirror``; returns each epoch's mean loss."""
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    batches = -(-len(data["images"]) // cfg.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, cfg.learning_rate, total_steps=cfg.epochs * batches)
    generator = torch.Generator().manual_seed(cfg.seed)
    model.train()
    losses = []
    for epoch in range(cfg.epochs):
        order, total = torch.randperm(len(data["images"]), generator=generator), 0.0
        for start in range(0, len(order), cfg.batch_size):
            rows = order[start:start + cfg.batch_size]
            inputs = data["images"][rows], data["gravity"][rows], data["motion"][rows]
            if cfg.mirror:
                flip = torch.rand(len(rows), generator=generator) < 0.5
                mirrored = mirror(*inputs)
                inputs = tuple(torch.where(flip.view(-1, *[1] * (a.dim() - 1)), b, a) for a, b in zip(inputs, mirrored))
            loss = _loss(model(*inputs), data["collision"][rows], data["free"][rows], cfg.free_weight)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach()) * len(rows)
        losses.append(total / len(order))
        if cfg.progress:
            print(f"{name} epoch {epoch + 1}/{cfg.epochs}: loss {losses[-1]:.4f}", flush=True)
    model.eval()
    return losses


@torch.no_grad()
def _predict(model: nn.Module, data: dict[str, torch.Tensor], batch: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Collision probability and free fraction (N, M) of every candidate motion."""
    out = torch.cat([model(data["images"][i:i + batch], data["gravity"][i:i + batch], data["motion"][i:i + batch])
                     for i in range(0, len(data["images"]), batch)])
    return torch.sigmoid(out[..., 0]), torch.sigmoid(out[..., 1])


def _scores(predicted: torch.Tensor, truth: torch.Tensor) -> dict[str, float | None]:
    """Precision (None without a predicted collision), recall, F1 and accuracy of boolean predictions."""
    tp = int((predicted & truth).sum())
    precision = tp / int(predicted.sum()) if predicted.any() else None
    recall = tp / max(int(truth.sum()), 1)
    f1 = 2 * tp / max(int(predicted.sum()) + int(truth.sum()), 1)
    return {"precision": precision, "recall": recall, "f1": f1, "accuracy": float((predicted == truth).float().mean())}


def _groups(data: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Masks (N, M) of the candidate motions: all, per motion style, and by direction: towards what
    the frame shows (forward, within 40 degrees of the view axis; a wall there is in sight) or not."""
    style = data["style"][:, None].expand_as(data["collision"])
    move = data["motion"][..., :3]
    ahead = (move[..., 2] > 0) & (torch.atan2(move[..., 0], move[..., 2]).abs() < math.radians(40))
    return {"all": torch.ones_like(data["collision"]), **{name: style == s for s, name in enumerate(STYLES)},
            "ahead": ahead, "elsewhere": ~ahead}


def _breakdown(predicted: torch.Tensor, data: dict[str, torch.Tensor]) -> dict[str, Any]:
    """``_scores`` for each group of ``_groups``, with its base rate and count."""
    truth = data["collision"]
    return {name: {"motions": int(mask.sum()), "base_rate": float(truth[mask].float().mean()), **_scores(predicted[mask], truth[mask])}
            if mask.any() else {"motions": 0} for name, mask in _groups(data).items()}


def _best_threshold(prob: torch.Tensor, truth: torch.Tensor) -> float:
    """The threshold of best F1 on a grid of 0.05 steps."""
    grid = np.arange(0.05, 0.96, 0.05)
    return float(max(grid, key=lambda t: _scores(prob >= t, truth)["f1"]))


@torch.no_grad()
def _imagined(world_path: str | None, data: dict[str, torch.Tensor], walks: int, views: int,
              seed: int) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The views 1 on of the first ``walks`` walks of ``data``: with the frames a learned world
    imagines when driven along the walks' true raw-frame paths (all walks in one batched rollout), and
    as they are (true frames). View 0 of each walk, the true frame the world starts from, is left out."""
    from model.camera import intrinsics_from_fov
    from model.rollout import WorldRollout
    from model.world import DEFAULT_WORLD, load_world

    folder = Path(world_path) if world_path else DEFAULT_WORLD
    world = load_world(folder)
    size, frames = tuple(data["images"].shape[1:3]), data["path"].shape[1]
    rollout = WorldRollout(world, walks, intrinsics_from_fov(world.info.fov_deg, *size).float())
    if (world.info.height, world.info.width) != size or rollout.frames_per_chunk != frames:
        raise ValueError(f"{folder}: makes {world.info.height} x {world.info.width} frames, {rollout.frames_per_chunk} a step; "
                         f"the collision data has {size[0]} x {size[1]}, {frames} a step")
    first = torch.arange(walks) * views
    images = data["images"][: walks * views].clone()
    for i, row in enumerate(first.tolist()):
        rollout.start(i, images[row].numpy(), data["poses"][row].double().numpy(), np.random.default_rng([seed, i]))
    for k in range(views - 1):
        out = rollout.step(list(range(walks)), data["path"][first + k].double().numpy())
        images[first + k + 1] = torch.from_numpy(out.frames[:, -1])
    keep = torch.arange(walks * views) % views != 0
    true = {key: v[: walks * views][keep] for key, v in data.items()}
    return {**true, "images": images[keep]}, true


def train(cfg: TrainCollisionConfig) -> Path:
    """Make or reuse the data, train and measure; writes ``collision.safetensors`` and ``metrics.json`` in ``cfg.out``."""
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    data_config = CollisionDataConfig(**cfg.data)
    started = time.perf_counter()
    train_data = _data(out / "data" / "train", cfg.train_walks, data_config, cfg.progress)
    eval_config = CollisionDataConfig(**{**asdict(data_config), "seed": data_config.seed + 1, "held_out": True})
    eval_data = _data(out / "data" / "eval", cfg.eval_walks, eval_config, cfg.progress)
    data_seconds = time.perf_counter() - started

    views = len(train_data["images"])
    cut = views - max(1, round(cfg.val_fraction * cfg.train_walks)) * data_config.views_per_walk  # whole walks (scenes) apart
    fit, val = ({k: v[:cut] for k, v in train_data.items()}, {k: v[cut:] for k, v in train_data.items()})
    started = time.perf_counter()
    predictor = CollisionPredictor(CollisionConfig(data_config.height, data_config.width, tuple(cfg.channels), cfg.hidden))
    losses = _fit(predictor, fit, cfg, "predictor")
    threshold = _best_threshold(_predict(predictor, val)[0], val["collision"])
    predictor.config.threshold = threshold
    train_seconds = time.perf_counter() - started
    blind = _Blind(cfg.hidden)
    _fit(blind, fit, cfg, "depth-free baseline")
    blind_threshold = _best_threshold(_predict(blind, val)[0], val["collision"])

    prob, free = _predict(predictor, eval_data)
    truth = eval_data["collision"]
    predicted = prob >= threshold
    hits = predicted & truth
    frames = data_config.frames_per_step
    metrics = {
        "held_out": {"walks": cfg.eval_walks, "views": len(eval_data["images"]), "scene_seeds_from": HELD_OUT},
        "predictor": {"threshold": threshold, **_breakdown(predicted, eval_data),
                      "contact_frame_error": float((free[hits] - eval_data["free"][hits]).abs().mean() * frames) if hits.any() else None},
        "never": _breakdown(torch.zeros_like(truth), eval_data),
        "always": _breakdown(torch.ones_like(truth), eval_data),
        "depth_free": {"threshold": blind_threshold, **_breakdown(_predict(blind, eval_data)[0] >= blind_threshold, eval_data)},
        "train": {"walks": cfg.train_walks, "fit_views": cut, "val_views": views - cut, "losses": losses,
                  "data_seconds": data_seconds, "train_seconds": train_seconds, "parameters": sum(p.numel() for p in predictor.parameters())},
        "config": asdict(cfg),
    }
    if cfg.imagined_walks:
        started = time.perf_counter()
        dreamed, true = _imagined(cfg.world, eval_data, cfg.imagined_walks, data_config.views_per_walk, cfg.seed)
        metrics["imagined"] = {"world": cfg.world or "shipped", "walks": cfg.imagined_walks, "seconds": time.perf_counter() - started,
                               "imagined_frames": _breakdown(_predict(predictor, dreamed)[0] >= threshold, dreamed),
                               "true_frames": _breakdown(_predict(predictor, true)[0] >= threshold, true)}
    save_model(out / "collision.safetensors", predictor, metadata={"held_out": metrics["predictor"]["all"], "trained_on": asdict(data_config)})
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return out


def main(argv: list[str] | None = None) -> int:
    from sanawm.errors import run_reporting

    overrides = sys.argv[1:] if argv is None else argv
    return run_reporting("train_collision", lambda: print(train(compose("train_collision", TrainCollisionConfig, overrides))))


if __name__ == "__main__":
    sys.exit(main())
