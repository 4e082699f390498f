"""Our model files: one safetensors file holding the weights, with the model's kind and its config
in the header, so ``load_model(path)`` rebuilds the exact model. Written to a temporary name and
renamed, so an interrupted save never leaves a half-written file under the real name."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .checkpoint_io import load_strict
from .collision import CollisionConfig, CollisionPredictor
from .config import DiTConfig
from .dit import SanaWMDiT
from .refiner import RefinerConfig, SanaWMRefiner
from .vae import CausalVideoVAE, VAEConfig

FORMAT = "sanawm-model"
VERSION = 1

# kind -> (model class, config class); a model is built as cls(config).
KINDS: dict[str, tuple[type[nn.Module], type]] = {
    "collision": (CollisionPredictor, CollisionConfig),
    "dit": (SanaWMDiT, DiTConfig),
    "refiner": (SanaWMRefiner, RefinerConfig),
    "vae": (CausalVideoVAE, VAEConfig),
}


def _kind_of(model: nn.Module) -> str:
    for kind, (cls, _) in KINDS.items():
        if isinstance(model, cls):
            return kind
    raise TypeError(f"cannot save a {type(model).__name__}; known kinds: {sorted(KINDS)}")


def save_model(path: str | Path, model: nn.Module, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``model``'s weights and config to ``path`` (a .safetensors file)."""
    path = Path(path)
    kind = _kind_of(model)
    header = {
        "format": FORMAT,
        "version": str(VERSION),
        "kind": kind,
        "config": json.dumps(dataclasses.asdict(model.config)),
        "metadata": json.dumps(metadata or {}),
    }
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=header)
    os.replace(tmp, path)
    return path


def read_header(path: str | Path) -> dict[str, Any]:
    """The kind, config (dict) and metadata of a model file, without loading the weights."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such model file")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(f"{path}: not a readable safetensors file ({e})") from e
    if header.get("format") != FORMAT:
        raise ValueError(f"{path}: not a {FORMAT} file (format={header.get('format')!r}); for the release's weights use SanaWMDiT.from_pretrained")
    if header.get("kind") not in KINDS:
        raise ValueError(f"{path}: unknown model kind {header.get('kind')!r}; known: {sorted(KINDS)}")
    try:
        config, metadata = json.loads(header.get("config", "")), json.loads(header.get("metadata", "{}"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: the header's config or metadata is not JSON ({e})") from e
    if not isinstance(config, dict):
        raise ValueError(f"{path}: the header's config must be a JSON object, got {type(config).__name__}")
    return {"kind": header["kind"], "config": config, "metadata": metadata}


def _config(path: Path, config_cls: type, fields: dict[str, Any]) -> Any:
    """``config_cls(**fields)``, with unknown or bad fields named with the file."""
    known = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(f"{path}: config fields {unknown} are not {config_cls.__name__} fields (written by a newer SanaWM?)")
    try:
        return config_cls(**fields)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: bad {config_cls.__name__} in the header ({e})") from e


def load_model(path: str | Path, expected_config: Any = None, map_location: str | torch.device = "cpu", kind: str | None = None,
               prepare: Callable[[nn.Module], object] | None = None) -> nn.Module:
    """Rebuild the model stored at ``path``. With ``expected_config``, a file whose config differs
    fails, naming the fields that differ; with ``kind`` (one of ``KINDS``), a file of another kind
    fails. ``prepare`` runs on the new model before its weights load (a quantized DiT gets its
    quantizers there, whose calibrated ranges are among the weights)."""
    path = Path(path)
    header = read_header(path)
    if kind is not None and header["kind"] != kind:
        raise ValueError(f"{path}: holds a {header['kind']} model, a {kind} was expected here")
    cls, config_cls = KINDS[header["kind"]]
    config = _config(path, config_cls, header["config"])
    if expected_config is not None and expected_config != config:
        diff = {f.name: (getattr(config, f.name), getattr(expected_config, f.name))
                for f in dataclasses.fields(config) if getattr(config, f.name) != getattr(expected_config, f.name)}
        raise ValueError(f"{path}: config does not match the requested one; (file, requested) per field: {diff}")
    model = cls(config)
    if prepare is not None:
        prepare(model)
    try:
        with safe_open(str(path), framework="pt", device=str(map_location)) as f:
            state = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError) as e:
        raise ValueError(f"{path}: cannot read the weights ({e})") from e
    load_strict(model, state, source=str(path))
    return model
