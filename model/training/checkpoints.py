"""Training checkpoints and the EMA of the weights.

A checkpoint is one file, ``<run>/checkpoint.pt``: the trained modules, their EMAs and optimisers
(full, unsharded tensors, so a run can resume under another process count), the step, the RNG
states and the resolved config. It is written to a temporary file and renamed, so an interrupted
save leaves the previous checkpoint as it was.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict, get_optimizer_state_dict,
                                                     set_model_state_dict, set_optimizer_state_dict)

FORMAT, VERSION = "sanawm-train", 1
_FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)


def _full(t: torch.Tensor) -> torch.Tensor:
    """A parameter as one full tensor (FSDP2 holds DTensor shards)."""
    return t.full_tensor() if hasattr(t, "full_tensor") else t


class EMA:
    """Exponential moving average of a module's parameters, kept in fp32 beside them."""

    def __init__(self, module: nn.Module, decay: float) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"ema_decay must lie in (0, 1), got {decay}")
        self.decay = decay
        self.params = dict(module.named_parameters())
        self.shadow = {k: p.detach().float().clone() for k, p in self.params.items()}

    @torch.no_grad()
    def update(self) -> None:
        for k, p in self.params.items():
            self.shadow[k].lerp_(p.detach().float(), 1 - self.decay)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: _full(v).cpu() for k, v in self.shadow.items()}

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for k, v in self.shadow.items():
            full = state[k]
            if hasattr(v, "full_tensor"):  # re-shard like the parameter
                from torch.distributed.tensor import distribute_tensor

                full = distribute_tensor(full.to(v.to_local().device), v.device_mesh, v.placements)
            v.copy_(full)


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def gather(modules: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer], emas: dict[str, EMA]) -> dict[str, Any]:
    """Full state dicts of every trained module (a collective under FSDP: every process calls it)."""
    return {
        "modules": {k: get_model_state_dict(m, options=_FULL) for k, m in modules.items()},
        "optimizers": {k: get_optimizer_state_dict(modules[k], o, options=_FULL) for k, o in optimizers.items()},
        "emas": {k: e.state_dict() for k, e in emas.items()},
    }


def save(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` to ``path`` atomically (temporary file, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save({"format": FORMAT, "version": VERSION, **payload}, f)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    return path


def load(path: str | Path, stage: str, world: str) -> dict[str, Any]:
    """Read a checkpoint of ``stage`` on world size ``world``; another stage or size is an error
    that names the file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no checkpoint to resume from")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # a truncated or foreign file: say which
        raise ValueError(f"{path}: not a readable training checkpoint ({e})") from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path}: not a {FORMAT} checkpoint")
    if payload["stage"] != stage or payload["world"] != world:
        raise ValueError(f"{path}: a checkpoint of stage={payload['stage']} world={payload['world']}, "
                         f"but stage={stage} world={world} was asked")
    return payload


def restore(payload: dict[str, Any], modules: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer],
            emas: dict[str, EMA]) -> None:
    """Load ``payload`` (from ``load``) into the trained modules, optimisers and EMAs."""
    for k, m in modules.items():
        set_model_state_dict(m, payload["modules"][k], options=StateDictOptions(full_state_dict=True))
    for k, o in optimizers.items():
        # strict=False: parameters that never received a gradient (the release's unused raymap
        # embedder) have no optimiser state to restore.
        set_optimizer_state_dict(modules[k], o, payload["optimizers"][k], options=StateDictOptions(full_state_dict=True, strict=False))
    for k, e in emas.items():
        e.load_state_dict(payload["emas"][k])
