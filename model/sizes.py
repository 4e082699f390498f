"""World sizes: the DiT, VAE and refiner presets that make up one world, named together.

    size = world_size("small")        # deep copies: edit them freely, the presets stay as they are
    dit, vae = SanaWMDiT(size.dit), CausalVideoVAE(size.vae)

The component tables (``DIT_SIZES``, ``VAE_SIZES``, ``REFINER_SIZES``) hold the presets; whatever
builds a module from them takes a copy (``world_size``, ``dit_config``), so a module never shares
its config with a preset or with another module.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from .config import DIT_SIZES, DiTConfig
from .refiner import REFINER_SIZES, RefinerConfig
from .vae import VAE_SIZES, VAEConfig


@dataclass
class WorldSize:
    """The configs of one world's three models (their latent channels and strides agree)."""

    dit: DiTConfig
    vae: VAEConfig
    refiner: RefinerConfig


# The sizes a world comes in; "base" and "paper" DiTs have no VAE or refiner preset of ours.
WORLD_SIZES: dict[str, WorldSize] = {
    name: WorldSize(dit=DIT_SIZES[name], vae=VAE_SIZES[name], refiner=REFINER_SIZES[name]) for name in ("tiny", "small")
}


def world_size(name: str) -> WorldSize:
    """Deep copies of the presets of world size ``name`` (one of ``WORLD_SIZES``)."""
    if name not in WORLD_SIZES:
        raise ValueError(f"size must be one of {sorted(WORLD_SIZES)}, got {name!r}")
    return copy.deepcopy(WORLD_SIZES[name])
