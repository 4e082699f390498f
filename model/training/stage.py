"""What every training stage shares: its trained modules (wrapped for DDP / FSDP2, with AdamW and an
optional EMA), the optimiser step with its guards, and where models come from and go to.

A stage subclass builds its modules in ``__init__`` (``self.add``), reads one batch per step in
``step`` and returns scalar metrics, writes sample videos in ``samples`` and a usable artefact
(a world folder, a VAE file) in ``export``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import Dataset

from ..checkpoint import load_model
from ..dit import SanaWMDiT
from ..video import video_suffix, write_video
from ..world import WorldModel, load_world
from . import checkpoints
from .config import TrainConfig
from .distributed import Dist, wrap


class NonFiniteLoss(RuntimeError):
    """A NaN or inf loss: the run stops before the optimiser step, the last checkpoint untouched."""


class Methods(nn.Module):
    """Runs ``fn(module, *args)`` as the wrapped module's ``forward``, so DDP's gradient hooks and
    FSDP2's unsharding see whatever a stage computes with it (``dit.stream``, a whole rollout), one
    forward per backward as DDP wants."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, fn: Callable[..., Any], *args: Any) -> Any:
        return fn(self.module, *args)


def world_folder(path: str | Path) -> Path:
    """A world folder, given itself or a run folder that exported one (``<run>/world``)."""
    path = Path(path)
    if (path / "world.json").exists():
        return path
    if (path / "world" / "world.json").exists():
        return path / "world"
    raise FileNotFoundError(f"{path}: neither a world folder (world.json) nor a run folder with world/")


def load_world_checked(path: str | Path, size: str) -> WorldModel:
    """The world of a world or run folder, checked to be of world size ``size``."""
    folder = world_folder(path)
    world = load_world(folder)
    if world.info.size != size:
        raise ValueError(f"{folder}: a '{world.info.size}' world, but world={size} was asked")
    return world


def load_dit(path: str | Path, size: str) -> SanaWMDiT:
    """The DiT of a world or run folder of world size ``size``."""
    return load_world_checked(path, size).dit


def load_vae_file(path: str | Path):
    """Our VAE from a model file, a vae run folder (``vae.safetensors``) or a world folder."""
    path = Path(path)
    for candidate in (path, path / "vae.safetensors", path / "world" / "vae.safetensors"):
        if candidate.is_file():
            vae = load_model(candidate)
            if type(vae).__name__ != "CausalVideoVAE":
                raise ValueError(f"{candidate}: holds a {type(vae).__name__}, not a VAE")
            return vae, candidate
    raise FileNotFoundError(f"{path}: no VAE (a .safetensors file, a folder with vae.safetensors, or a run folder with world/)")


class Stage:
    """Base of the stages (see the module docstring)."""

    name = ""
    dataset: Dataset

    def __init__(self, cfg: TrainConfig, d: Dist) -> None:
        self.cfg, self.d = cfg, d
        self.plain: dict[str, nn.Module] = {}
        self.wrapped: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.emas: dict[str, checkpoints.EMA] = {}
        self.lrs: dict[str, float] = {}

    # ---- trained modules -----------------------------------------------------------------------

    def add(self, name: str, module: nn.Module, lr: float, betas: tuple[float, float] | None = None,
            blocks: list[nn.Module] | None = None) -> None:
        """Train ``module`` under ``name`` (run it with ``self.run(name, fn, ...)``)."""
        cfg = self.cfg
        module.to(self.d.device).train()
        if hasattr(module, "gradient_checkpointing"):
            module.gradient_checkpointing = cfg.grad_checkpointing
        if cfg.compile and hasattr(module, "compile_blocks"):
            module.compile_blocks()
        wrapped = wrap(Methods(module), self.d, cfg.strategy, blocks)
        self.plain[name], self.wrapped[name], self.lrs[name] = module, wrapped, lr
        self.optimizers[name] = torch.optim.AdamW(wrapped.parameters(), lr=lr, betas=tuple(betas or cfg.optim.betas),
                                                  eps=cfg.optim.eps, weight_decay=cfg.optim.weight_decay)
        if cfg.optim.ema_decay > 0:
            self.emas[name] = checkpoints.EMA(module, cfg.optim.ema_decay)

    def run(self, name: str, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(module, *args)`` on trained module ``name`` as one forward of its parallel wrapper."""
        return self.wrapped[name](fn, *args)

    def sync(self, name: str, last: bool) -> contextlib.AbstractContextManager:
        """Around the forward and backward of one of several losses of a step: DDP reduces the
        gradients only with the last (the others accumulate locally)."""
        wrapped = self.wrapped[name]
        if not last and isinstance(wrapped, nn.parallel.DistributedDataParallel):
            return wrapped.no_sync()
        return contextlib.nullcontext()

    def check_finite(self, loss: torch.Tensor, step: int) -> None:
        if self.d.any(not bool(torch.isfinite(loss.detach()).all())):
            raise NonFiniteLoss(f"non-finite loss ({loss.item()}) at step {step}; stopped before the optimiser step, "
                                "the last checkpoint is untouched")

    def update(self, name: str, loss: torch.Tensor, step: int, backward: bool = True) -> dict[str, float]:
        """One optimiser step of ``name`` on ``loss`` (already back-propagated if not ``backward``)."""
        self.check_finite(loss, step)
        if backward:
            loss.backward()
        opt, cfg = self.optimizers[name], self.cfg.optim
        params = [p for p in self.wrapped[name].parameters() if p.grad is not None]
        norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip if cfg.grad_clip > 0 else float("inf"))
        scale = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
        for group in opt.param_groups:
            group["lr"] = self.lrs[name] * scale
        opt.step()
        opt.zero_grad(set_to_none=True)
        if name in self.emas:
            self.emas[name].update()
        norm = norm.full_tensor() if hasattr(norm, "full_tensor") else norm
        return {f"{name}/grad_norm": float(norm)}

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.cfg.precision == "bf16":
            return torch.autocast(self.d.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def final_weights(self, name: str) -> nn.Module | None:
        """A plain copy of ``name`` with its EMA (or current) weights on this process's device, for
        samples and export, on the main process (None on the others); a collective under FSDP, so
        every process calls it."""
        payload = checkpoints.gather({name: self.wrapped[name]}, {}, {name: self.emas[name]} if name in self.emas else {})
        if not self.d.main:
            return None
        state = {}
        for k, v in payload["modules"][name].items():
            while k.startswith("module."):  # the Methods router (and DDP) prefixes
                k = k.removeprefix("module.")
            state[k] = v
        state.update(payload["emas"].get(name, {}))
        copy = type(self.plain[name])(self.plain[name].config)
        copy.load_state_dict(state)
        return copy.to(self.d.device).eval()

    @staticmethod
    def write_sample(folder: Path, step: int, frames: np.ndarray, fps: float = 16.0) -> Path:
        """A sample video (generated and ground truth side by side) of ``step`` in ``folder`` (.mp4, or .gif
        without ffmpeg: a missing encoder must not cost a run its export)."""
        return write_video(folder / f"step-{step:07d}{video_suffix()}", frames, fps=fps)

    # ---- what a stage defines ------------------------------------------------------------------

    def step(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, float]:
        raise NotImplementedError

    def samples(self, folder: Path, step: int) -> list[Path]:
        """Sample videos (generated beside ground truth) in ``folder``. Every process calls it (the
        weights are gathered first), the main one generates and writes."""
        return []

    def export(self, out: Path) -> Path:
        """Write the stage's artefact under ``out``; every process calls it, the main one writes."""
        raise NotImplementedError
