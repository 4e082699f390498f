"""Flow matching: the noising path, training targets and timesteps, and the one Euler sampler
(``euler_sample``) that every sampling loop of the project runs.

Path x_s = (1 - s) x0 + s eps for s in [0, 1]; the network predicts the velocity v = eps - x0 and is
fed the timestep 1000 s. Training draws s from a logit-normal distribution and shifts it towards
noise (the SD3 / SANA time shift), sampling walks a shifted grid from s = 1 to 0 with Euler steps and
optional classifier-free guidance. Frames can carry their own s: a clean conditioning frame has s = 0
and is left out of the loss.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

Tensor = torch.Tensor
TIMESTEP_SCALE = 1000.0  # the DiT's timestep for s = 1
PATTERNS = ("uniform", "per_chunk", "last_chunk")


def shift_sigma(s: Tensor, shift: float) -> Tensor:
    """Move noise levels towards 1: shift * s / (1 + (shift - 1) * s); identity for shift = 1."""
    return shift * s / (1 + (shift - 1) * s)


def euler_sample(
    velocity: Callable[[Tensor, float], Tensor],
    x: Tensor,
    sigmas: Sequence[float] | Tensor,
    guidance: float = 1.0,
    uncond_velocity: Callable[[Tensor, float], Tensor] | None = None,
    exit_step: int | None = None,
) -> Tensor:
    """Euler integration of dx/ds = v from s = sigmas[0] to sigmas[-1]: the one sampler of the
    project (bidirectional sampling, streamed chunks, the refiner).

    Args:
        velocity: ``f(x, sigma) -> v`` of x's shape, the conditional prediction at noise level sigma
            (callers wrap their network: timesteps, held frames, a cached context).
        x: the latents at ``sigmas[0]``.
        sigmas: decreasing noise levels, at least two.
        guidance: classifier-free guidance scale, ``v_u + guidance * (v - v_u)``; needs
            ``uncond_velocity`` when not 1.
        uncond_velocity: like ``velocity``, without the condition.
        exit_step: stop at step k (0 <= k < len(sigmas) - 1) and return its clean estimate
            ``x_k - sigma_k * v_k``. Steps before k run without gradient and step k with the caller's
            grad mode, so a self-forcing loss back-propagates through one network call per chunk.
            With k the last step and sigmas ending at 0 this is the full Euler result.

    Returns:
        latents of x's shape: at ``sigmas[-1]``, or the clean estimate at ``exit_step``.
    """
    sigmas = sigmas.tolist() if isinstance(sigmas, Tensor) else [float(s) for s in sigmas]
    steps = len(sigmas) - 1
    if steps < 1:
        raise ValueError(f"sigmas must hold at least 2 noise levels, got {sigmas}")
    if guidance != 1.0 and uncond_velocity is None:
        raise ValueError("guidance != 1 needs uncond_velocity")
    if exit_step is not None and not 0 <= exit_step < steps:
        raise ValueError(f"exit_step must be in [0, {steps - 1}] for {steps} steps, or None, got {exit_step}")

    def guided(x: Tensor, s: float) -> Tensor:
        v = velocity(x, s)
        if guidance != 1.0:
            v_u = uncond_velocity(x, s)
            v = v_u + guidance * (v - v_u)
        return v

    if exit_step is None:
        for s, s_next in zip(sigmas[:-1], sigmas[1:]):
            x = x + (s_next - s) * guided(x, s)
        return x
    with torch.no_grad():
        for s, s_next in zip(sigmas[:exit_step], sigmas[1 : exit_step + 1]):
            x = x + (s_next - s) * guided(x, s)
    s = sigmas[exit_step]
    return x - s * guided(x, s)


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
        """``euler_sample`` of a network fed per-frame timesteps, some frames possibly held clean.

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
        m = mask[None, None, :, None, None]

        def masked(f: Callable[[Tensor, Tensor], Tensor]) -> Callable[[Tensor, float], Tensor]:
            # Held frames see timestep 0 and get no velocity, so Euler steps leave them as they are.
            def v(x: Tensor, s: float) -> Tensor:
                ts = torch.where(mask, s * TIMESTEP_SCALE, 0.0).expand(b, t).to(noise.dtype)
                return torch.where(m, f(x, ts), 0.0)
            return v

        x = noise if mask.all() else torch.where(m, noise, clean)
        uncond = None if uncond_velocity is None else masked(uncond_velocity)
        return euler_sample(masked(velocity), x, sigmas, guidance, uncond)

