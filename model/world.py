"""A world model bundle: the DiT, the VAE and, optionally, the refiner and the collision predictor,
saved as one folder.

    world/
      world.json            image size, fps and field of view the world was trained at; the quantization format
      dit.safetensors       model files (model.checkpoint)
      vae.safetensors
      refiner.safetensors   optional
      collision.safetensors optional: the collision predictor (model.collision) SanaWM-v0 stops the camera with
      dit-quantizers.pt     a quantized world's DiT quantizers (model.quantization; their ranges are in dit.safetensors)
"""

from __future__ import annotations

import json
import math
import os
import shutil
import warnings
from dataclasses import asdict, dataclass, fields
from functools import partial
from pathlib import Path

import torch
import torch.nn as nn

from .checkpoint import load_model, save_model
from .collision import CollisionPredictor
from .jsonfile import read_json_object
from .dit import SanaWMDiT
from .quantization import FORMATS, QUANTIZERS_FILE, quantized_layers, restore_quantizers, save_quantizers
from .refiner import SanaWMRefiner
from .sizes import WORLD_SIZES, world_size
from .vae import CausalVideoVAE

# The world the package ships, once trained (see the training scripts); absent until then.
DEFAULT_WORLD = Path(__file__).resolve().parent.parent / "sanawm_env" / "assets" / "world-small"


@dataclass
class WorldInfo:
    height: int = 64
    width: int = 64
    fps: float = 16.0
    fov_deg: float = 80.0
    size: str = "small"
    trained: bool = False
    quantization: str | None = None  # the DiT's format (model.quantization.FORMATS), None at full precision


class WorldModel(nn.Module):
    def __init__(self, dit: SanaWMDiT, vae: CausalVideoVAE, refiner: SanaWMRefiner | None, info: WorldInfo,
                 collision: CollisionPredictor | None = None) -> None:
        super().__init__()
        if dit.config.in_channels != vae.latent_channels:
            raise ValueError(f"the DiT takes {dit.config.in_channels} latent channels but the VAE makes {vae.latent_channels}")
        if dit.config.temporal_stride != vae.temporal_stride:
            raise ValueError(f"the DiT's Plucker maps cover {dit.config.temporal_stride} raw frames per latent frame, the VAE {vae.temporal_stride}")
        if info.height % vae.spatial_stride or info.width % vae.spatial_stride:
            raise ValueError(f"image size {info.height} x {info.width} must be divisible by the VAE's spatial stride {vae.spatial_stride}")
        if collision is not None and (collision.config.height, collision.config.width) != (info.height, info.width):
            raise ValueError(f"the collision predictor reads {collision.config.height} x {collision.config.width} frames, "
                             f"the world makes {info.height} x {info.width}")
        self.dit, self.vae, self.refiner, self.info, self.collision = dit, vae, refiner, info, collision


def fresh_world(size: str = "small", height: int = 64, width: int = 64, seed: int = 0, refiner: bool = True) -> WorldModel:
    """An untrained world of ``size`` (one of ``model.sizes.WORLD_SIZES``; deterministic
    initialisation from ``seed``)."""
    configs = world_size(size)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        dit = SanaWMDiT(configs.dit)
        vae = CausalVideoVAE(configs.vae)
        ref = SanaWMRefiner(configs.refiner) if refiner else None
    return WorldModel(dit, vae, ref, WorldInfo(height=height, width=width, size=size)).eval()


def save_world(path: str | Path, world: WorldModel) -> Path:
    """Write ``world`` as the folder ``path``, whole: the files go to a temporary folder beside it,
    which then replaces ``path``, so an interrupted save leaves the old world (or none) and a world
    saved over another keeps none of the old files (a refiner it lacks, say)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    old = path.with_name(f".{path.name}.old-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        save_model(tmp / "dit.safetensors", world.dit)
        if world.info.quantization is not None or quantized_layers(world.dit):
            save_quantizers(tmp / QUANTIZERS_FILE, world.dit, world.info.quantization)
        save_model(tmp / "vae.safetensors", world.vae)
        if world.refiner is not None:
            save_model(tmp / "refiner.safetensors", world.refiner)
        if world.collision is not None:
            save_model(tmp / "collision.safetensors", world.collision)
        (tmp / "world.json").write_text(json.dumps(asdict(world.info), indent=2))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)
    return path


def read_world_info(path: Path) -> WorldInfo:
    """The ``world.json`` at ``path``, checked field by field; errors name the file and the field."""
    raw = read_json_object(path)
    accepted = {f.name for f in fields(WorldInfo)}
    unknown = sorted(set(raw) - accepted)
    if unknown:
        raise ValueError(f"{path}: unknown fields {unknown}; accepted: {sorted(accepted)}")
    info = WorldInfo(**raw)
    def number(v: object) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    def positive_int(v: object) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v > 0

    checks = {  # field -> (accepted, what the error says is expected)
        "height": (positive_int, "a positive int"),
        "width": (positive_int, "a positive int"),
        "fps": (lambda v: number(v) and 0 < v < math.inf, "a positive number"),
        "fov_deg": (lambda v: number(v) and 0 < v < 180, "degrees in (0, 180)"),
        "size": (lambda v: v in WORLD_SIZES, f"one of {sorted(WORLD_SIZES)}"),
        "trained": (lambda v: isinstance(v, bool), "true or false"),
        "quantization": (lambda v: v is None or v in FORMATS, f"null or one of {sorted(FORMATS)}"),
    }
    for name, (ok, expected) in checks.items():
        if not ok(getattr(info, name)):
            raise ValueError(f"{path}: field {name!r} must be {expected}, got {getattr(info, name)!r}")
    return info


def load_world(path: str | Path, map_location: str = "cpu") -> WorldModel:
    """Load a world folder; a missing or corrupt part fails with its path."""
    path = Path(path)
    if not (path / "world.json").exists():
        raise FileNotFoundError(f"{path}: not a world folder (no world.json)")
    info = read_world_info(path / "world.json")
    refiner = None
    if (path / "refiner.safetensors").exists():
        refiner = load_model(path / "refiner.safetensors", map_location=map_location, kind="refiner")
    quantized = None if info.quantization is None else partial(restore_quantizers, path=path / QUANTIZERS_FILE, fmt=info.quantization)
    dit = load_model(path / "dit.safetensors", map_location=map_location, kind="dit", prepare=quantized)
    vae = load_model(path / "vae.safetensors", map_location=map_location, kind="vae")
    collision = None
    if (path / "collision.safetensors").exists():
        collision = load_model(path / "collision.safetensors", map_location=map_location, kind="collision")
    try:
        return WorldModel(dit, vae, refiner, info, collision).eval()
    except ValueError as e:
        raise ValueError(f"{path}: its parts do not fit together: {e}") from e


def default_world(size: str = "small", height: int = 64, width: int = 64) -> WorldModel:
    """The shipped trained world; an untrained one (with a warning) until it exists."""
    if size == "small" and (DEFAULT_WORLD / "world.json").exists():
        return load_world(DEFAULT_WORLD)
    warnings.warn(f"no trained '{size}' world is installed: using a freshly initialised model, whose frames are noise. "
                  "Pass checkpoint=<world folder> to gym.make for a trained world.", stacklevel=2)
    return fresh_world(size, height, width)
