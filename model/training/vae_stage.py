"""The ``vae`` and ``latents`` stages: train our causal video VAE on clips, then encode a clip folder
once into latent shards for the DiT stages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..checkpoint import save_model
from ..clips import open_clips
from ..sizes import world_size
from ..vae import CausalVideoVAE
from ..video import to_uint8
from .data import Indexed, clip_generator
from .latents import encode_clips, video_tensor
from .stage import Stage, load_vae_file


def _vae(cfg) -> CausalVideoVAE:
    if cfg.init is not None:
        vae, path = load_vae_file(cfg.init)
        if vae.config != world_size(cfg.world).vae:
            raise ValueError(f"{path}: the VAE is not the '{cfg.world}' world's VAE")
        return vae
    return CausalVideoVAE(world_size(cfg.world).vae)


def vae_losses(vae: CausalVideoVAE, video: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """L1 reconstruction error of a posterior sample (reparameterised with ``noise``), the KL
    divergence of the posterior from N(0, I), both means over elements, and the reconstruction's
    PSNR in dB (frames in [-1, 1], for the log)."""
    mean, logvar, _ = vae.moments(video)
    z = mean + noise * (0.5 * logvar).exp()
    recon, _ = vae.decode(vae.normalize(z))
    l1 = (recon.float() - video).abs().mean()
    kl = 0.5 * (mean.float().pow(2) + logvar.float().exp() - 1 - logvar.float()).mean()
    with torch.no_grad():
        psnr = 10 * torch.log10(4 / (recon.float().clamp(-1, 1) - video).pow(2).mean().clamp_min(1e-10))
    return l1, kl, psnr


class VAEStage(Stage):
    """L1 reconstruction + KL to N(0, I) on clips of ``1 + s (latent_frames - 1)`` raw frames; the
    export sets the per-channel latent mean / std from the posterior means of ``stats_clips`` clips."""

    name = "vae"

    def __init__(self, cfg, d) -> None:
        super().__init__(cfg, d)
        vae = _vae(cfg)
        self.raw_frames = 1 + vae.temporal_stride * (cfg.latent_frames - 1)
        self.dataset = Indexed(open_clips(cfg.data, clip_frames=self.raw_frames))
        if len(self.dataset) == 0:
            raise ValueError(f"{cfg.data}: the folder holds no clips")
        h, w = self.dataset[0]["frames"].shape[1:3]
        if h % vae.spatial_stride or w % vae.spatial_stride:
            raise ValueError(f"{cfg.data}: frames are {h} x {w}, not divisible by the VAE's spatial stride {vae.spatial_stride}")
        self.add("vae", vae, cfg.optim.lr)

    def step(self, batch, step):
        video = video_tensor(batch["frames"]).to(self.d.device)
        noise = torch.stack([torch.randn(self._latent_shape(video), generator=clip_generator(self.cfg.seed, step, int(i)))
                             for i in batch["index"]]).to(self.d.device)
        with self.autocast():
            l1, kl, psnr = self.run("vae", vae_losses, video, noise)
        loss = l1 + self.cfg.vae_stage.kl_weight * kl
        return {"loss": loss.item(), "l1": l1.item(), "kl": kl.item(), "psnr_db": psnr.item(), **self.update("vae", loss, step)}

    def _latent_shape(self, video: torch.Tensor) -> tuple[int, ...]:
        cfg = self.plain["vae"].config
        f, h, w = video.shape[2:]
        return (cfg.latent_channels, (f - 1) // cfg.temporal_stride + 1, h // cfg.spatial_stride, w // cfg.spatial_stride)

    @torch.no_grad()
    def samples(self, folder: Path, step: int) -> list[Path]:
        vae = self.final_weights("vae")
        if not self.d.main:
            return []
        video = video_tensor(self.dataset[0]["frames"][None]).to(self.d.device)
        recon, _ = vae.decode(vae.encode(video))
        frames = np.concatenate([to_uint8(recon)[0], to_uint8(video)[0]], axis=2)  # reconstruction | ground truth
        return [self.write_sample(folder, step, frames)]

    @torch.no_grad()
    def export(self, out: Path) -> Path:
        vae = self.final_weights("vae")
        path = out / "vae.safetensors"
        if self.d.main:
            n = min(self.cfg.vae_stage.stats_clips, len(self.dataset))
            means = [vae.moments(video_tensor(self.dataset[i]["frames"][None]).to(self.d.device))[0] for i in range(n)]
            z = torch.cat([m.transpose(0, 1).reshape(m.shape[1], -1) for m in means], dim=1)  # (C, all positions)
            vae.latent_mean.copy_(z.mean(dim=1))
            vae.latent_std.copy_(z.std(dim=1).clamp_min(1e-4))
            save_model(path, vae.cpu(), metadata={"stage": "vae", "clips": len(self.dataset)})
        self.d.barrier()
        return path


def run_latents(cfg, d) -> Path:
    """The ``latents`` stage: the main process encodes ``cfg.data`` into ``cfg.out`` with the VAE
    ``cfg.vae`` (a fresh one, with a note, if none is given); the others wait."""
    out = Path(cfg.out)
    if d.main:
        if cfg.vae is not None:
            vae, vae_file = load_vae_file(cfg.vae)
        else:
            print("latents: no vae= given; encoding with a freshly initialised VAE (for tests and smoke runs)")
            vae = CausalVideoVAE(world_size(cfg.world).vae)
            vae_file = save_model(out / "fresh-vae.safetensors", vae)
        if vae.config != world_size(cfg.world).vae:
            raise ValueError(f"{vae_file}: the VAE is not the '{cfg.world}' world's VAE")
        encode_clips(cfg.data, out, vae, vae_file, device=d.device, progress=cfg.progress)
    d.barrier()
    return out
