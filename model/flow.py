"""Flow matching: the noising path, training targets and timesteps, and the Euler sampler.

Path x_s = (1 - s) x0 + s eps for s in [0, 1]; the network predicts the velocity v = eps - x0 and is
fed the timestep 1000 s. Training draws s from a logit-normal distribution and shifts it towards
noise (the SD3 / SANA time shift), sampling walks a shifted grid from s = 1 to 0 with Euler steps and
optional classifier-free guidance. Frames can carry their own s: a clean conditioning frame has s = 0
and is left out of the loss.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

Tensor = torch.Tensor
TIMESTEP_SCALE = 1000.0  # the DiT's timestep for s = 1
PATTERNS = ("uniform", "per_chunk", "last_chunk")


def shift_sigma(s: Tensor, shift: float) -> Tensor:
    """Move noise levels towards 1: shift * s / (1 + (shift - 1) * s); identity for shift = 1."""
    return shift * s / (1 + (shift - 1) * s)


@dataclass
class FlowMatching:
    """Training and sampling rules of the rectified-flow objective."""

    shift: float = 3.0  # time shift for training and sampling
    logit_mean: float = 0.0  # logit-normal training distribution of s (before the shift)
    logit_std: float = 1.0

    def __post_init__(self) -> None:
        if self.shift <= 0:
            raise ValueError(f"shift must be positive, got {self.shift}")
        if self.logit_std <= 0:
            raise ValueError(f"logit_std must be positive, got {self.logit_std}")

    def sample_sigmas(self, shape: tuple[int, ...], generator: torch.Generator | None = None, device=None) -> Tensor:
        """Training noise levels of ``shape``: shift(sigmoid(N(mean, std)))."""
        u = torch.randn(shape, generator=generator, device=device) * self.logit_std + self.logit_mean
        return shift_sigma(torch.sigmoid(u), self.shift)

    def frame_sigmas(self, batch: int, chunks: list[tuple[int, int]], pattern: str,
                     generator: torch.Generator | None = None, clean_first: bool = True) -> Tensor:
        """Per-frame noise levels (batch, T) for chunked training.

        ``uniform``: one level for the whole clip; ``per_chunk``: an independent level per chunk
        (diffusion forcing); ``last_chunk``: earlier chunks clean, the last one noisy (teacher
        forcing). With ``clean_first`` frame 0 is the clean image condition (s = 0).
        """
        if pattern not in PATTERNS:
            raise ValueError(f"pattern must be one of {PATTERNS}, got {pattern!r}")
        t = chunks[-1][1]
        n = {"uniform": 1, "per_chunk": len(chunks), "last_chunk": 1}[pattern]
        levels = self.sample_sigmas((batch, n), generator)
        out = torch.zeros(batch, t)
        for i, (start, end) in enumerate(chunks):
            if pattern == "uniform":
                out[:, start:end] = levels[:, :1]
            elif pattern == "per_chunk":
                out[:, start:end] = levels[:, i : i + 1]
            elif i == len(chunks) - 1:
                out[:, start:end] = levels
        if clean_first:
            out[:, 0] = 0.0
        return out

    @staticmethod
    def noisy(x0: Tensor, noise: Tensor, sigma: Tensor) -> Tensor:
        """x_s for latents (B, C, T, H, W) and per-frame sigma (B, T)."""
        s = sigma[:, None, :, None, None].to(x0.dtype)
        return (1 - s) * x0 + s * noise

    @staticmethod
    def target(x0: Tensor, noise: Tensor) -> Tensor:
        return noise - x0

    @staticmethod
    def loss(prediction: Tensor, x0: Tensor, noise: Tensor, sigma: Tensor) -> Tensor:
        """Mean squared velocity error over the frames that carry noise (sigma > 0)."""
        weight = (sigma > 0).to(prediction.dtype)[:, None, :, None, None]
        err = (prediction - (noise - x0)).pow(2) * weight
        denom = weight.sum() * prediction.shape[1] * prediction.shape[3] * prediction.shape[4]
        return err.sum() / denom.clamp_min(1)

    def schedule(self, steps: int) -> Tensor:
        """Noise levels (steps + 1,) from 1 to 0 on the shifted grid."""
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        return shift_sigma(torch.linspace(1.0, 0.0, steps + 1), self.shift)

    def sample(
        self,
        velocity: Callable[[Tensor, Tensor], Tensor],
        noise: Tensor,
        sigmas: Tensor,
        frame_mask: Tensor | None = None,
        clean: Tensor | None = None,
        guidance: float = 1.0,
        uncond_velocity: Callable[[Tensor, Tensor], Tensor] | None = None,
    ) -> Tensor:
        """Euler integration of dx/ds = v from s = sigmas[0] to sigmas[-1].

        Args:
            velocity: ``f(x, timesteps (B, T)) -> v``, the conditional prediction.
            noise: starting latents (B, C, T, H, W).
            sigmas: decreasing noise levels, e.g. ``schedule(steps)``.
            frame_mask: (T,) bool, frames being generated; the others stay at ``clean`` with s = 0.
            clean: latents for the frames outside ``frame_mask``.
            guidance: classifier-free guidance scale; needs ``uncond_velocity`` when not 1.
        """
        b, _, t = noise.shape[:3]
        mask = torch.ones(t, dtype=torch.bool, device=noise.device) if frame_mask is None else frame_mask.to(noise.device)
        if not mask.all() and clean is None:
            raise ValueError("clean latents are needed for frames outside frame_mask")
        if guidance != 1.0 and uncond_velocity is None:
            raise ValueError("guidance != 1 needs uncond_velocity")
        m = mask[None, None, :, None, None]
        x = noise if mask.all() else torch.where(m, noise, clean)
        for s, s_next in zip(sigmas[:-1].tolist(), sigmas[1:].tolist()):
            ts = torch.where(mask, s * TIMESTEP_SCALE, 0.0).expand(b, t).to(noise.dtype)
            v = velocity(x, ts)
            if guidance != 1.0:
                v_u = uncond_velocity(x, ts)
                v = v_u + guidance * (v - v_u)
            x = torch.where(m, x + (s_next - s) * v, x)
        return x
