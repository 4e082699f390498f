"""The training loop every stage runs in: resume, steps with a progress bar, metrics (JSONL and
TensorBoard when installed), sample videos, checkpoints, the export and a summary.

    train(TrainConfig(stage="bidirectional", world="small", data="latents/", out="runs/s1", steps=2000))

Under torchrun every process runs it; only the main process writes.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from ..threads import ThreadPolicy
from . import checkpoints
from .config import TrainConfig
from .data import StepSampler, step_loader
from .distributed import Dist, setup, teardown
from .stage import Stage


def make_stage(cfg: TrainConfig, d: Dist) -> Stage:
    from .dit_stages import BidirectionalStage, ChunkCausalStage
    from .distill_stages import ODEStage, SelfForcingStage
    from .refiner_stage import RefinerStage
    from .vae_stage import VAEStage

    stages = {s.name: s for s in (VAEStage, BidirectionalStage, ChunkCausalStage, ODEStage, SelfForcingStage, RefinerStage)}
    return stages[cfg.stage](cfg, d)


class MetricsLog:
    """metrics.jsonl (one line per logged step) and TensorBoard scalars when tensorboard is installed."""

    def __init__(self, out: Path, enabled: bool) -> None:
        self.enabled = enabled
        self.path = out / "metrics.jsonl"
        self.tb = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(out / "tensorboard"))
            except ImportError:
                pass

    def write(self, step: int, metrics: dict[str, float]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps({"step": step, **metrics}) + "\n")
        if self.tb is not None:
            for k, v in metrics.items():
                self.tb.add_scalar(k, v, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    keys = {k for r in rows for k in r}
    return {k: sum(r[k] for r in rows if k in r) / sum(1 for r in rows if k in r) for k in sorted(keys)}


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run stage ``cfg.stage``; returns the summary (also written to ``<out>/summary.json``)."""
    d = setup()
    try:
        return _train(cfg, d)
    finally:
        teardown(d)


def _train(cfg: TrainConfig, d: Dist) -> dict[str, Any]:
    out = Path(cfg.out)
    ckpt = out / "checkpoint.pt"
    if cfg.stage == "latents":
        from .vae_stage import run_latents

        return {"stage": "latents", "out": str(run_latents(cfg, d))}
    if ckpt.exists() and not cfg.resume:
        raise FileExistsError(f"{ckpt} exists: pass resume=true to continue that run, or choose another out")
    torch.manual_seed(cfg.seed)  # the same initial weights in every process (FSDP2 shards them as they are)
    stage = make_stage(cfg, d)
    torch.manual_seed(cfg.seed + d.rank)
    start = 0
    if cfg.resume:
        payload = checkpoints.load(ckpt, cfg.stage, cfg.world)
        checkpoints.restore(payload, stage.wrapped, stage.optimizers, stage.emas)
        checkpoints.set_rng_state(payload["rng"][min(d.rank, len(payload["rng"]) - 1)])
        start = payload["step"]
        if start >= cfg.steps:
            raise ValueError(f"{ckpt}: the run is at step {start} already; raise steps (now {cfg.steps}) to continue it")
    if d.main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    sampler = StepSampler(len(stage.dataset), cfg.batch_size, d.rank, d.world, cfg.seed, start, cfg.steps)
    loader = step_loader(stage.dataset, sampler, cfg.num_workers)
    log = MetricsLog(out, d.main)
    samples_dir = out / "samples"
    bar = tqdm(total=cfg.steps, initial=start, desc=f"train {cfg.stage}", unit="step", disable=not (d.main and cfg.progress))
    rows: list[dict[str, float]] = []
    threads = ThreadPolicy(cfg.threads)
    t0, started, seen = time.perf_counter(), time.perf_counter(), 0
    step = start
    for step, batch in enumerate(loader, start=start):
        with threads.scope():
            rows.append(stage.step(batch, step))
        seen += cfg.batch_size * d.world
        done = step + 1
        # Every process stops at the same step: the slowest one's clock decides.
        out_of_time = bool(cfg.max_minutes) and d.any(time.perf_counter() - started > 60 * cfg.max_minutes)
        last = done == cfg.steps or out_of_time
        if done % cfg.log_every == 0 or last:
            metrics = {k: d.mean(v) for k, v in _mean(rows).items()}
            metrics["samples_per_s"] = seen / (time.perf_counter() - t0)
            log.write(done, metrics)
            bar.set_postfix({k: f"{v:.4g}" for k, v in metrics.items() if k in ("loss", "dmd_loss", "critic_loss", "samples_per_s")})
            rows, seen, t0 = [], 0, time.perf_counter()
        if cfg.sample_every and done % cfg.sample_every == 0 and not last:
            stage.samples(samples_dir, done)
        if done % cfg.ckpt_every == 0 or last:
            _save(ckpt, cfg, d, stage, done)
        bar.update(1)
        if out_of_time:
            break
    bar.close()
    log.close()
    artefact = stage.export(out)  # first: the world is the run's product, the samples only show it
    videos = stage.samples(samples_dir, done)
    summary = {"stage": cfg.stage, "world": cfg.world, "steps": done, "resumed_from": start, "processes": d.world,
               "seconds": time.perf_counter() - started, "export": str(artefact), "samples": [str(v) for v in videos],
               "checkpoint": str(ckpt), "stopped_by_max_minutes": done < cfg.steps}
    if d.main:
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        print(json.dumps(summary, indent=2))
    return summary


def _save(path: Path, cfg: TrainConfig, d: Dist, stage: Stage, step: int) -> None:
    state = checkpoints.gather(stage.wrapped, stage.optimizers, stage.emas)
    rng = [None] * d.world
    if d.world > 1:
        torch.distributed.all_gather_object(rng, checkpoints.rng_state())
    else:
        rng = [checkpoints.rng_state()]
    if d.main:
        checkpoints.save(path, {"stage": cfg.stage, "world": cfg.world, "step": step, "config": asdict(cfg), "rng": rng, **state})
    d.barrier()
