"""The ``refiner`` stage: teach the refiner of a world to bring re-noised chunks back to clean.

``init`` names the world (or run) being improved: its DiT is the student whose chunks the refiner
will clean at inference, and its refiner (or a fresh one) is the starting point. Per step one chunk
of each clip is the target; the context is the clip's clean frame 0 (the sink) and the ``history``
chunks before the target, ground truth, written into the refiner's cache without gradient, as the
streaming refiner sees them. The source chunk is the student's rollout (with probability
``student_prob``) or the ground truth; with sigma_s the refiner's starting level it is moved to
x1 = (1 - sigma_s) src + sigma_s eps, and the path x_s = (1 - s / sigma_s) x0 + (s / sigma_s) x1
(s <= sigma_s) runs from there to the clean ground truth x0 with velocity (x1 - x0) / sigma_s, the
release's refiner objective; for src = x0 it is plain flow matching.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..chunks import chunk_bounds
from ..generator import StreamingGenerator
from ..refiner import SanaWMRefiner
from ..video import to_uint8
from ..world import save_world
from ..rollout import chunk_noise, stream_latents
from .dit_stages import LatentStage
from .stage import load_world_checked

Tensor = torch.Tensor


def refiner_velocity(refiner: SanaWMRefiner, sink: Tensor, history: Tensor, history_frames: Tensor, xs: Tensor, sigma: Tensor,
                     frames: Tensor, fps: float) -> Tensor:
    """The refiner's velocity for block ``xs`` at ``frames`` after the clean sink and history
    (their cache built without gradient, as at inference)."""
    with torch.no_grad():
        cache = refiner.capture_sink(sink, fps)
        if history.shape[2]:
            cache = refiner.commit(history, history_frames, cache, fps=fps)
    return refiner(xs, sigma, frames, fps, cache=cache)


class RefinerStage(LatentStage):
    name = "refiner"

    def __init__(self, cfg, d) -> None:
        super().__init__(cfg, d)
        if cfg.init is None:
            raise ValueError("stage=refiner needs init=<world or run folder> (the world whose refiner is trained)")
        self.world = load_world_checked(cfg.init, cfg.world)
        refiner = self.world.refiner if self.world.refiner is not None else SanaWMRefiner(self.size.refiner)
        self.student = self.world.dit.to(d.device).eval().requires_grad_(False)
        self.add("refiner", refiner, cfg.optim.lr, blocks=list(refiner.transformer_blocks))
        self.fps = float(self.dataset.index["fps"])

    def student_video(self, first: Tensor, camera: Tensor, plucker: Tensor, g: torch.Generator) -> Tensor:
        gen = StreamingGenerator(self.student, window=self.cfg.distill.window)
        return stream_latents(gen, first, camera, plucker, chunk_noise([g], first, camera.shape[1]))[0]

    def step(self, batch, step):
        x0, camera, plucker = self.batch(batch)
        rc = self.cfg.refiner
        chunks = chunk_bounds(x0.shape[2])
        if len(chunks) < 2:
            raise ValueError(f"the refiner trains on chunks after the first: latent_frames={x0.shape[2]} holds one chunk")
        pick = torch.Generator().manual_seed(self.cfg.seed * 7919 + step)
        j = int(torch.randint(1, len(chunks), (), generator=pick))
        start, end = chunks[j]
        lo = max(1, chunks[max(j - rc.history, 0)][0])
        gens = self.draws(batch, step, lambda g, row: g)
        with torch.no_grad():
            src = x0.clone()
            for row, g in enumerate(gens):
                if torch.rand((), generator=g) < rc.student_prob:
                    src[row] = self.student_video(x0[row : row + 1, :, :1], camera[row : row + 1], plucker[row : row + 1], g)[0]
        s_max = rc.sigma_max
        sigma = torch.stack([torch.rand((), generator=g) * s_max for g in gens]).clamp_min(1e-3).to(x0.device)  # (B,)
        eps = torch.stack([torch.randn(x0[0, :, start:end].shape, generator=g) for g in gens]).to(x0)
        target0, x1 = x0[:, :, start:end], (1 - s_max) * src[:, :, start:end] + s_max * eps
        r = (sigma / s_max)[:, None, None, None, None]
        xs = (1 - r) * target0 + r * x1
        frames = torch.arange(start, end)
        with self.autocast():
            v = self.run("refiner", refiner_velocity, x0[:, :, :1], x0[:, :, lo:start], torch.arange(lo, start), xs,
                         sigma[:, None].expand(-1, end - start), frames, self.fps)
        loss = ((v.float() - (x1 - target0) / s_max) ** 2).mean()
        return {"loss": loss.item(), "chunk": j, **self.update("refiner", loss, step)}

    @torch.no_grad()
    def samples(self, folder: Path, step: int) -> list[Path]:
        refiner = self.final_weights("refiner")
        if not self.d.main:
            return []
        item = self.dataset[0]
        dev = self.d.device
        x0, camera, plucker = item["latents"][None].to(dev), item["camera"][None].to(dev), item["plucker"][None].to(dev)
        g = torch.Generator().manual_seed(self.cfg.seed)
        raw = self.student_video(x0[:, :, :1], camera, plucker, g)
        refined = refiner.refine(raw, self.fps, generator=g)
        vae = self.vae.to(dev)
        videos = [to_uint8(vae.decode(z)[0])[0] for z in (refined, raw, x0)]  # refined | student | ground truth
        return [self.write_sample(folder, step, np.concatenate(videos, axis=2), self.fps)]

    def export(self, out: Path) -> Path:
        refiner = self.final_weights("refiner")
        folder = out / "world"
        if self.d.main:
            self.world.refiner = refiner
            save_world(folder, self.world)
        self.d.barrier()
        return folder
