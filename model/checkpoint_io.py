"""Reading the release's weights: ``save_pretrained`` folders (``config.json`` + safetensors, single
or sharded) and official ``.pth`` / ``.safetensors`` state dicts."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
from safetensors import SafetensorError
from safetensors.torch import load_file

from .config import DiTConfig
from .jsonfile import read_json_object

Tensor = torch.Tensor

# Fields of the release's config.json that we map onto DiTConfig one to one.
_SHARED_FIELDS = (
    "in_channels", "num_layers", "hidden_size", "num_attention_heads", "linear_head_dim", "patch_size",
    "softmax_every_n", "mlp_ratio", "t_kernel_size", "conv_kernel_size", "caption_channels",
    "chunk_plucker_channels", "qk_norm", "cross_norm", "y_norm",
)
# Fields whose only supported value is the release's default (anything else is another architecture).
_FIXED_FIELDS = {
    "ffn_type": "GLUMBConvTemp", "k_conv_only": True, "pos_embed_type": "wan_rope", "cam_attn_compress": 1,
    "use_chunk_plucker_post_attn": True, "use_pe": True, "pred_sigma": False, "mlp_acts": ["silu", "silu", None],
}
# Fields that do not change the computation.
_IGNORED_FIELDS = ("_class_name", "_diffusers_version", "init_cam_from_base", "fp32_attention", "image_size",
                   "learn_sigma", "mixed_precision", "chunk_plucker_post_attn_blocks", "_name_or_path")


def _load_safetensors(path: Path) -> dict[str, Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise ValueError(f"{path}: not a readable safetensors file ({e})") from e


def reference_config(path: str | Path) -> DiTConfig:
    """DiTConfig from the release's ``config.json``; fields we do not implement are an error."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no config.json; pass config= for a bare state dict")
    raw = read_json_object(path)
    unknown = sorted(set(raw) - set(_SHARED_FIELDS) - set(_FIXED_FIELDS) - set(_IGNORED_FIELDS))
    if unknown:
        raise ValueError(f"{path}: unknown config field(s) {unknown}")
    for name, value in _FIXED_FIELDS.items():
        given = list(raw[name]) if isinstance(raw.get(name), (list, tuple)) else raw.get(name, value)
        if given != value:
            raise ValueError(f"{path}: {name}={raw[name]!r} is not supported (only {value!r})")
    blocks = raw.get("chunk_plucker_post_attn_blocks", raw.get("num_layers", 20))
    if 0 <= blocks < raw.get("num_layers", 20):
        raise ValueError(f"{path}: chunk_plucker_post_attn_blocks={blocks} is not supported (Plucker branch in every block)")
    try:
        return DiTConfig(**{k: raw[k] for k in _SHARED_FIELDS if k in raw})
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: bad config ({e})") from e


def load_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Tensors of a checkpoint folder or file (CPU)."""
    path = Path(path)
    if path.is_dir():
        single = path / "diffusion_pytorch_model.safetensors"
        index = path / "diffusion_pytorch_model.safetensors.index.json"
        if single.exists():
            return _load_safetensors(single)
        if index.exists():
            weight_map = read_json_object(index).get("weight_map")
            if not isinstance(weight_map, dict) or not all(isinstance(f, str) for f in weight_map.values()):
                raise ValueError(f"{index}: needs a 'weight_map' of parameter name -> shard file")
            state: dict[str, Tensor] = {}
            for f in sorted(set(weight_map.values())):
                if not (path / f).is_file():
                    raise FileNotFoundError(f"{index}: names the shard {f}, which is not in {path}")
                state.update(_load_safetensors(path / f))
            return state
        raise FileNotFoundError(f"{path}: no diffusion_pytorch_model.safetensors (or its .index.json)")
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    if path.suffix == ".safetensors":
        return _load_safetensors(path)
    if path.suffix in (".pth", ".pt", ".bin"):
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises pickle, zip and runtime errors alike for a damaged file
            raise ValueError(f"{path}: not a readable torch checkpoint ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from e
        for key in ("state_dict", "model", "module"):
            if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
                obj = obj[key]
        if not isinstance(obj, dict):
            raise ValueError(f"{path}: expected a state dict, got {type(obj).__name__}")
        return obj
    raise ValueError(f"{path}: unsupported checkpoint format {path.suffix!r} (use .safetensors, .pth, .pt or .bin)")


def load_strict(module: nn.Module, state: dict[str, Tensor], allow_missing: set[str] = frozenset(), source: str = "state dict") -> None:
    """Load ``state`` into ``module``: every missing key (outside ``allow_missing``), unexpected key
    or wrong shape is an error that lists them, naming ``source``."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state) - set(allow_missing))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        more = lambda keys: keys[:20] + (["..."] if len(keys) > 20 else [])  # noqa: E731
        raise ValueError(f"{source} does not match {type(module).__name__}: missing {more(missing)}, unexpected {more(unexpected)}")
    bad = [f"{k}: {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in state.items() if v.shape != own[k].shape]
    if bad:
        raise ValueError(f"{source}: shapes do not match {type(module).__name__}: {bad[:10]}")
    module.load_state_dict(state, strict=False)
