"""Train the learned world's collision predictor on the procedural ground truth and measure it on held-out scenes.

    python -m agents.train_collision                          # outputs/collision: data, collision.safetensors, metrics.json
    python -m agents.train_collision train_walks=200 epochs=4 out=runs/collision-small

Data (``sanawm_env.collision_data``, resumable: a rerun continues an interrupted folder and reuses a
finished one): ``train_walks`` walks in scenes below 2**31, the last ``val_fraction`` of them kept to
pick the decision threshold (the one of best F1), and ``eval_walks`` walks in held-out scenes (seeds
from 2**31 on) for the numbers. The predictor (``model.collision``) reads, at every view of a walk, the
walk's first frame and the camera's pose relative to it, as ``SanaWM-v0`` gives it an episode's first
frame; it learns the collision by binary cross-entropy and, on colliding motions, the free fraction of
the step by cross-entropy against it (weighted by ``free_weight``). ``metrics.json`` holds, on the
held-out scenes: the base rate (collisions among the candidate motions), precision, recall, F1 and
accuracy of the predictor, of the trivial answers (never / always a collision) and of a frame-free
baseline (the same training and inputs without the frame: motion, gravity and pose), each overall, per
motion style, by direction (towards what the camera sees, or elsewhere) and by how far into the walk
the view lies (held-out walks are ``eval_views`` long, twice the training walks by default, to show
how far from the first frame it holds); the predictor's error in frames on where the contact falls;
and the data and training times. Because the predictor never reads an imagined frame, these numbers hold for it in ``SanaWM-v0``
as they do in the ground truth.

Install the result into a world folder (``SanaWM-v0`` then stops the camera where it foresees contact)::

    cp outputs/collision/collision.safetensors <world folder>/
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from model.checkpoint import save_model
from model.collision import CollisionConfig, CollisionPredictor, mirror, motion_features, relative_pose
from sanawm_env.collision_data import HELD_OUT, STYLES, CollisionDataConfig, generate_collision_data, read_collision_data

from .runs import compose


@dataclass
class TrainCollisionConfig:
    """Schema of ``configs/agents/train_collision.yaml`` (its notes say what each knob does)."""

    out: str = "outputs/collision"
    train_walks: int = 1200
    eval_walks: int = 200
    eval_views: int = 64
    val_fraction: float = 0.1
    data: dict[str, Any] = field(default_factory=dict)
    channels: list[int] = field(default_factory=lambda: [16, 32, 64, 64])
    hidden: int = 128
    epochs: int = 24
    batch_size: int = 64
    learning_rate: float = 2e-3
    free_weight: float = 1.0
    mirror: bool = True
    anchor_prob: float = 0.5
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("train_walks", "eval_walks", "eval_views", "epochs", "batch_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0 < self.val_fraction < 1 or self.learning_rate <= 0 or self.free_weight < 0 or not 0 <= self.anchor_prob <= 1:
            raise ValueError(f"need val_fraction in (0, 1), learning_rate > 0, free_weight >= 0, anchor_prob in [0, 1]; got "
                             f"{self.val_fraction}, {self.learning_rate}, {self.free_weight}, {self.anchor_prob}")
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


class _FrameFree(nn.Module):
    """The frame-free baseline: an MLP over the motion, gravity and pose (the predictor's call signature)."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(21, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, 2))

    def forward(self, first: torch.Tensor, pose: torch.Tensor, gravity: torch.Tensor, motion: torch.Tensor) -> torch.Tensor:
        return self.mlp(motion_features(pose, gravity, motion))


def _with_views(data: dict[str, torch.Tensor], views: int) -> dict[str, torch.Tensor]:
    """``data`` (every view of whole walks) with ``view``, each view's number along its walk."""
    return {**data, "view": torch.arange(len(data["poses"])) % views}


def _inputs(data: dict[str, torch.Tensor], rows: torch.Tensor, anchors: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
    """What the predictor reads at the views ``rows``: the frame of the view ``anchors`` (rows of the
    same walks; their first views by default, as the env gives an episode's first frame), the camera's
    pose relative to that view's, gravity and the candidate motions."""
    anchors = rows - data["view"][rows] if anchors is None else anchors
    pose = relative_pose(data["poses"][anchors].double(), data["poses"][rows].double()).float()
    return data["images"][anchors], pose, data["gravity"][rows], data["motion"][rows]


def _loss(logits: torch.Tensor, collision: torch.Tensor, free: torch.Tensor, free_weight: float) -> torch.Tensor:
    loss = F.binary_cross_entropy_with_logits(logits[..., 0], collision.float())
    if collision.any():
        loss = loss + free_weight * F.binary_cross_entropy_with_logits(logits[..., 1][collision], free[collision])
    return loss


def _fit(model: nn.Module, data: dict[str, torch.Tensor], cfg: TrainCollisionConfig, name: str) -> list[float]:
    """Adam with a one-cycle learning rate (peak ``cfg.learning_rate``) over ``cfg.epochs`` passes of
    shuffled views, half of each batch mirrored with ``cfg.mirror``, a share ``cfg.anchor_prob`` of them
    read from a random earlier view of their walk instead of its first: a walk has one first frame
    but many views, and a predictor shown only first frames learns the training scenes by heart (on
    held-out walks F1 0.57 against 0.63 with half the views re-anchored, benchmarks/RESULTS.md).
    Returns each epoch's mean loss."""
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    batches = -(-len(data["view"]) // cfg.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, cfg.learning_rate, total_steps=cfg.epochs * batches)
    generator = torch.Generator().manual_seed(cfg.seed)
    model.train()
    losses = []
    for epoch in range(cfg.epochs):
        order, total = torch.randperm(len(data["view"]), generator=generator), 0.0
        for start in range(0, len(order), cfg.batch_size):
            rows = order[start:start + cfg.batch_size]
            view = data["view"][rows]
            earlier = (torch.rand(len(rows), generator=generator) * (view + 1)).long()  # uniform in [0, view]
            reread = torch.rand(len(rows), generator=generator) < cfg.anchor_prob
            inputs = _inputs(data, rows, rows - view + torch.where(reread, earlier, 0))
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
    rows = torch.arange(len(data["view"]))
    out = torch.cat([model(*_inputs(data, rows[i:i + batch])) for i in range(0, len(rows), batch)])
    return torch.sigmoid(out[..., 0]), torch.sigmoid(out[..., 1])


def _scores(predicted: torch.Tensor, truth: torch.Tensor) -> dict[str, float | None]:
    """Precision (None without a predicted collision), recall, F1 and accuracy of boolean predictions."""
    tp = int((predicted & truth).sum())
    precision = tp / int(predicted.sum()) if predicted.any() else None
    recall = tp / max(int(truth.sum()), 1)
    f1 = 2 * tp / max(int(predicted.sum()) + int(truth.sum()), 1)
    return {"precision": precision, "recall": recall, "f1": f1, "accuracy": float((predicted == truth).float().mean())}


def _groups(data: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Masks (N, M) of the candidate motions: all, per motion style, by direction (towards what the
    camera sees: forward, within 40 degrees of the view axis; or elsewhere), and by the view's place
    along its walk (at the first frame, 1-3 steps on, 4-7, 8-15, 16-31, 32 and later)."""
    style = data["style"][:, None].expand_as(data["collision"])
    view = data["view"][:, None].expand_as(data["collision"])
    move = data["motion"][..., :3]
    ahead = (move[..., 2] > 0) & (torch.atan2(move[..., 0], move[..., 2]).abs() < math.radians(40))
    return {"all": torch.ones_like(data["collision"]), **{name: style == s for s, name in enumerate(STYLES)},
            "ahead": ahead, "elsewhere": ~ahead, "view 0": view == 0, "views 1-3": (view >= 1) & (view <= 3),
            "views 4-7": (view >= 4) & (view <= 7), "views 8-15": (view >= 8) & (view <= 15), "views 16-31": (view >= 16) & (view <= 31),
            "views 32+": view >= 32}


def _breakdown(predicted: torch.Tensor, data: dict[str, torch.Tensor]) -> dict[str, Any]:
    """``_scores`` for each group of ``_groups``, with its base rate and count."""
    truth = data["collision"]
    return {name: {"motions": int(mask.sum()), "base_rate": float(truth[mask].float().mean()), **_scores(predicted[mask], truth[mask])}
            if mask.any() else {"motions": 0} for name, mask in _groups(data).items()}


def _best_threshold(prob: torch.Tensor, truth: torch.Tensor) -> float:
    """The threshold of best F1 on a grid of 0.05 steps."""
    grid = np.arange(0.05, 0.96, 0.05)
    return float(max(grid, key=lambda t: _scores(prob >= t, truth)["f1"]))


def train(cfg: TrainCollisionConfig) -> Path:
    """Make or reuse the data, train and measure; writes ``collision.safetensors`` and ``metrics.json`` in ``cfg.out``."""
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    data_config = CollisionDataConfig(**cfg.data)
    started = time.perf_counter()
    k = data_config.views_per_walk
    train_data = _with_views(_data(out / "data" / "train", cfg.train_walks, data_config, cfg.progress), k)
    eval_config = CollisionDataConfig(**{**asdict(data_config), "seed": data_config.seed + 1, "held_out": True, "views_per_walk": cfg.eval_views})
    eval_data = _with_views(_data(out / "data" / "eval", cfg.eval_walks, eval_config, cfg.progress), cfg.eval_views)
    data_seconds = time.perf_counter() - started

    views = len(train_data["view"])
    cut = views - max(1, round(cfg.val_fraction * cfg.train_walks)) * k  # whole walks (scenes) apart
    fit, val = ({key: v[:cut] for key, v in train_data.items()}, {key: v[cut:] for key, v in train_data.items()})
    started = time.perf_counter()
    predictor = CollisionPredictor(CollisionConfig(data_config.height, data_config.width, tuple(cfg.channels), cfg.hidden))
    losses = _fit(predictor, fit, cfg, "predictor")
    threshold = _best_threshold(_predict(predictor, val)[0], val["collision"])
    predictor.config.threshold = threshold
    train_seconds = time.perf_counter() - started
    frame_free = _FrameFree(cfg.hidden)
    _fit(frame_free, fit, replace(cfg, anchor_prob=0.0), "frame-free baseline")  # its best: re-anchoring hides the spawn priors it lives on
    frame_free_threshold = _best_threshold(_predict(frame_free, val)[0], val["collision"])

    prob, free = _predict(predictor, eval_data)
    truth = eval_data["collision"]
    predicted = prob >= threshold
    hits = predicted & truth
    frames = data_config.frames_per_step
    metrics = {
        "held_out": {"walks": cfg.eval_walks, "views": len(eval_data["view"]), "scene_seeds_from": HELD_OUT},
        "predictor": {"threshold": threshold, **_breakdown(predicted, eval_data),
                      "contact_frame_error": float((free[hits] - eval_data["free"][hits]).abs().mean() * frames) if hits.any() else None},
        "never": _breakdown(torch.zeros_like(truth), eval_data),
        "always": _breakdown(torch.ones_like(truth), eval_data),
        "frame_free": {"threshold": frame_free_threshold, **_breakdown(_predict(frame_free, eval_data)[0] >= frame_free_threshold, eval_data)},
        "train": {"walks": cfg.train_walks, "fit_views": cut, "val_views": views - cut, "losses": losses,
                  "data_seconds": data_seconds, "train_seconds": train_seconds, "parameters": sum(p.numel() for p in predictor.parameters())},
        "config": asdict(cfg),
    }
    save_model(out / "collision.safetensors", predictor, metadata={"held_out": metrics["predictor"]["all"], "trained_on": asdict(data_config)})
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return out


def main(argv: list[str] | None = None) -> int:
    from sanawm.errors import run_reporting

    overrides = sys.argv[1:] if argv is None else argv
    return run_reporting("train_collision", lambda: print(train(compose("train_collision", TrainCollisionConfig, overrides))))


if __name__ == "__main__":
    sys.exit(main())
