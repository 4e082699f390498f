"""Stage 1 of SANA-WM on latent shards: the ``bidirectional`` DiT and the ``chunk_causal`` teacher,
both flow matching with a velocity target. Also what the later DiT stages share with them: the
latent data, per-clip noise, the null camera, sample videos and the exported world folder."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from ..camera_conditions import null_camera
from ..checkpoint import load_model
from ..chunks import chunk_bounds
from ..dit import SanaWMDiT
from ..flow import TIMESTEP_SCALE, FlowMatching, shift_sigma
from ..generator import StreamingGenerator
from ..rollout import chunk_noise, stream_latents
from ..sizes import world_size
from ..video import to_uint8
from ..world import WorldInfo, WorldModel, save_world
from .data import clip_generator
from .latents import LatentDataset
from .stage import Stage, load_dit, load_world_checked

Tensor = torch.Tensor


def masked_clip_mse(prediction: Tensor, target: Tensor, sigma: Tensor) -> Tensor:
    """Mean squared error per clip over its noisy frames (sigma (B, T) > 0), then over clips, so every
    clip weighs the same however many of its frames are clean."""
    weight = (sigma > 0).to(prediction.dtype)[:, None, :, None, None]
    err = ((prediction - target) ** 2 * weight).sum(dim=(1, 2, 3, 4))
    count = weight.sum(dim=(1, 2, 3, 4)) * target.shape[1] * target.shape[3] * target.shape[4]
    return (err / count.clamp_min(1)).mean()


def flow_loss(velocity: Tensor, x0: Tensor, noise: Tensor, sigma: Tensor) -> Tensor:
    """The flow-matching loss: ``masked_clip_mse`` of the velocity against noise - x0."""
    return masked_clip_mse(velocity.float(), noise - x0, sigma)


def dit_velocity(dit: SanaWMDiT, xs: Tensor, sigma: Tensor, camera: Tensor, plucker: Tensor, mode: str) -> Tensor:
    return dit(xs, sigma * TIMESTEP_SCALE, camera=camera, plucker=plucker, mode=mode)


def monotone_levels(u: Tensor, n: int, anchor: int, g: torch.Generator) -> Tensor:
    """``n`` chunk levels in (0, 1) (before the shift) that never decrease along the video, with chunk
    ``anchor`` at ``u``: earlier chunks uniform below it, later ones uniform above it, each sorted."""
    below = torch.sort(torch.rand(anchor, generator=g) * u).values
    above = torch.sort(u + torch.rand(n - anchor - 1, generator=g) * (1 - u)).values
    return torch.cat([below, u.reshape(1), above])


class LatentStage(Stage):
    """A stage that trains on a latent folder: data, noise per clip, samples and the world export."""

    mode = "chunk_causal"

    def __init__(self, cfg, d) -> None:
        super().__init__(cfg, d)
        self.dataset = LatentDataset(cfg.data, cfg.latent_frames)
        self.vae = load_model(self.dataset.vae_file)
        self.flow = FlowMatching(shift=cfg.flow.shift, logit_mean=cfg.flow.logit_mean, logit_std=cfg.flow.logit_std)
        self.size = world_size(cfg.world)
        if self.vae.config != self.size.vae:
            raise ValueError(f"{self.dataset.vae_file}: the latents were made by a VAE that is not the '{cfg.world}' world's")

    def fresh_or_init_dit(self) -> SanaWMDiT:
        return load_dit(self.cfg.init, self.cfg.world) if self.cfg.init is not None else SanaWMDiT(self.size.dit)

    def batch(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        dev = self.d.device
        return batch["latents"].to(dev), batch["camera"].to(dev), batch["plucker"].to(dev)

    def draws(self, batch: dict[str, Tensor], step: int, fn) -> list:
        """``fn(generator, row)`` for each clip of the batch, with the clip's own generator."""
        return [fn(clip_generator(self.cfg.seed, step, int(i)), row) for row, i in enumerate(batch["index"])]

    def camera_dropout(self, camera: Tensor, plucker: Tensor, drop: Tensor) -> tuple[Tensor, Tensor]:
        """The null camera for the clips where ``drop`` (B,) is true."""
        null_cam, null_pl = null_camera(camera, plucker)
        m = drop.to(camera.device)
        return torch.where(m[:, None, None], null_cam, camera), torch.where(m[:, None, None, None, None], null_pl, plucker)

    # ---- samples and export --------------------------------------------------------------------

    def generate(self, dit: SanaWMDiT, first: Tensor, camera: Tensor, plucker: Tensor, g: torch.Generator) -> Tensor:
        """Latents (1, C, T, h, w) of a video from its first latent frame and cameras: the streaming
        student / teacher as the env runs it (the bidirectional stage overrides this)."""
        gen = StreamingGenerator(dit, steps=self.cfg.flow.sample_steps, flow=self.flow, window=self.cfg.distill.window)
        return stream_latents(gen, first, camera, plucker, chunk_noise([g], first, camera.shape[1]))[0]

    @torch.no_grad()
    def samples(self, folder: Path, step: int) -> list[Path]:
        dit = self.final_weights("dit")
        if not self.d.main:
            return []
        item = self.dataset[0]
        x0, camera, plucker = item["latents"][None], item["camera"][None], item["plucker"][None]
        dev = self.d.device
        latents = self.generate(dit, x0[:, :, :1].to(dev), camera.to(dev), plucker.to(dev), torch.Generator().manual_seed(self.cfg.seed))
        vae = self.vae.to(dev)
        frames = np.concatenate([to_uint8(vae.decode(latents)[0])[0], to_uint8(vae.decode(x0.to(dev))[0])[0]], axis=2)
        return [self.write_sample(folder, step, frames, self.dataset.index["fps"])]

    def export(self, out: Path) -> Path:
        dit = self.final_weights("dit")
        folder = out / "world"
        if self.d.main:
            h, w = self.dataset.index["image_size"]
            item = self.dataset[0]
            fov = math.degrees(2 * math.atan(w / 2 / float(item["intrinsics"][0, 0])))
            refiner = load_world_checked(self.cfg.init, self.cfg.world).refiner if self.cfg.init is not None else None
            info = WorldInfo(height=h, width=w, fps=self.dataset.index["fps"], fov_deg=fov, size=self.cfg.world, trained=True)
            save_world(folder, WorldModel(dit, self.vae, refiner, info))
        self.d.barrier()
        return folder


class BidirectionalStage(LatentStage):
    """Stage 1, bidirectional: one noise level per clip; frame 0 clean (and out of the loss) with
    probability ``first_clean_prob``; the null camera with probability ``camera_dropout``."""

    name = "bidirectional"
    mode = "bidirectional"

    def __init__(self, cfg, d) -> None:
        super().__init__(cfg, d)
        dit = self.fresh_or_init_dit()
        self.add("dit", dit, cfg.optim.lr, blocks=list(dit.blocks))

    def levels(self, g: torch.Generator, t: int) -> Tensor:
        """Noise levels (T,) of one clip before the first-frame rule."""
        return self.flow.sample_sigmas((1,), g).expand(t).clone()

    def step(self, batch, step):
        x0, camera, plucker = self.batch(batch)
        b, c, t, h, w = x0.shape
        fc = self.cfg.flow

        def draw(g: torch.Generator, row: int):
            sigma = self.levels(g, t)
            if torch.rand((), generator=g) < fc.first_clean_prob:
                sigma[0] = 0.0
            return sigma, torch.randn(c, t, h, w, generator=g), bool(torch.rand((), generator=g) < fc.camera_dropout)

        sigma, noise, drop = zip(*self.draws(batch, step, draw))
        sigma, noise = torch.stack(sigma).to(x0.device), torch.stack(noise).to(x0.device)
        camera, plucker = self.camera_dropout(camera, plucker, torch.tensor(drop))
        xs = self.flow.noisy(x0, noise, sigma)
        with self.autocast():
            v = self.run("dit", dit_velocity, xs, sigma, camera, plucker, self.mode)
        loss = flow_loss(v, x0, noise, sigma)
        return {"loss": loss.item(), **self.update("dit", loss, step)}

    def generate(self, dit, first, camera, plucker, g):
        t = camera.shape[1]
        noise = torch.randn(first.shape[0], first.shape[1], t, *first.shape[3:], generator=g).to(first)
        clean = torch.cat([first, torch.zeros_like(noise[:, :, 1:])], dim=2)
        mask = torch.ones(t, dtype=torch.bool)
        mask[0] = False
        null_cam, null_pl = null_camera(camera, plucker)
        fc = self.cfg.flow
        return self.flow.sample(lambda x, ts: dit(x, ts, camera=camera, plucker=plucker), noise, self.flow.schedule(fc.sample_steps),
                                frame_mask=mask, clean=clean, guidance=fc.guidance,
                                uncond_velocity=lambda x, ts: dit(x, ts, camera=null_cam, plucker=null_pl))


class ChunkCausalStage(BidirectionalStage):
    """Stage 1, chunk-causal (the teacher): chunks of 3 latent frames (the first of 4), per-chunk
    levels from the release's mixture of patterns (``mixture``): the same level everywhere; levels
    that never decrease along the video around an anchor chunk; the last chunk as the anchor; or
    that with a clean prefix of 1 .. n-1 chunks (teacher forcing, the streaming case)."""

    name = "chunk_causal"
    mode = "chunk_causal"

    def levels(self, g: torch.Generator, t: int) -> Tensor:
        chunks = chunk_bounds(t)
        n = len(chunks)
        m = self.cfg.mixture
        weights = torch.tensor([m.same, m.increasing, m.last_anchor, m.clean_prefix])
        pattern = int(torch.multinomial(weights, 1, generator=g))
        u = torch.sigmoid(torch.randn((), generator=g) * self.cfg.flow.logit_std + self.cfg.flow.logit_mean)
        if pattern == 0 or n == 1:
            per_chunk = u.expand(n)
        elif pattern == 1:
            per_chunk = monotone_levels(u, n, int(torch.randint(n, (), generator=g)), g)
        else:
            per_chunk = monotone_levels(u, n, n - 1, g)
            if pattern == 3:
                per_chunk[: int(torch.randint(1, n, (), generator=g))] = 0.0
        sigma = torch.empty(t)
        for (start, end), level in zip(chunks, per_chunk.tolist()):
            sigma[start:end] = level
        return shift_sigma(sigma, self.cfg.flow.shift)

    generate = LatentStage.generate  # the teacher streams, as the student will
