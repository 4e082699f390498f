"""The quantization formats of a world's DiT and the layers each leaves in high precision.

| format | weights                                 | activations (layer inputs)             | modelopt base config |
|--------|-----------------------------------------|----------------------------------------|----------------------|
| fp8    | E4M3, one scale per tensor              | E4M3, one calibrated scale per tensor  | FP8_DEFAULT_CFG      |
| int8   | int8, one scale per output channel      | int8, one calibrated scale per tensor  | INT8_DEFAULT_CFG     |
| nvfp4  | E2M1 in blocks of 16, E4M3 block scales | the same, block scales computed on the fly under a calibrated per-tensor scale | NVFP4_DEFAULT_CFG |

Only ``nn.Linear`` layers are quantized, and of those only the ones the release quantizes by default
(``--stage1_precision fp8|fp4`` of its inference scripts: self-attention, cross-attention and FFN).
The embedders (timestep, ``t_block``, patch, caption, Plucker, ray map) and the final layer stay in
high precision as in the release, and so does the camera branch of every block (the UCPE
projections and ``plucker_proj``): the release leaves it out of its default quantized set, and its
NVFP4 recipe keeps the small camera residual from rounding to zero with a Hadamard rotation that we
do not have. Our FFN's pointwise layers are 1x1 convolutions, not linear layers, so they stay in
high precision too (the release turns them into linear layers to quantize them).
"""

from __future__ import annotations

import copy
from typing import Any

import torch.nn as nn

FORMATS: dict[str, str] = {"fp8": "FP8_DEFAULT_CFG", "int8": "INT8_DEFAULT_CFG", "nvfp4": "NVFP4_DEFAULT_CFG"}

# Module name prefixes (of SanaWMDiT) whose linear layers stay in high precision.
KEPT_HIGH_PRECISION = (
    "t_embedder.", "t_block.", "x_embedder.", "y_embedder.", "plucker_embedder.", "raymap_embedder.", "final_layer.",
)
# Camera-branch layers inside each block, kept in high precision (see the module docstring).
KEPT_CAMERA = ("attn.q_proj_cam", "attn.k_proj_cam", "attn.v_proj_cam", "attn.out_proj_cam", "plucker_proj")


def check_format(name: str) -> str:
    """``name`` if it is one of ``FORMATS``; a ValueError naming the accepted ones otherwise."""
    if name not in FORMATS:
        raise ValueError(f"format must be one of {sorted(FORMATS)}, got {name!r}")
    return name


def is_quantized_layer(name: str, module: nn.Module) -> bool:
    """Whether the DiT's module ``name`` is one of the layers a quantized world quantizes."""
    return (isinstance(module, nn.Linear) and not name.startswith(KEPT_HIGH_PRECISION)
            and not name.endswith(KEPT_CAMERA))


def quant_config(fmt: str) -> dict[str, Any]:
    """modelopt's config for ``fmt``: its default config with every quantizer outside the quantized
    linear layers disabled (convolutions, norms, embedders, final layer, camera branch)."""
    import modelopt.torch.quantization as mtq

    config = copy.deepcopy(getattr(mtq, FORMATS[check_format(fmt)]))
    # The default configs quantize every layer modelopt wraps (convolutions, norms too): linear ones only.
    for entry in config["quant_cfg"]:
        if entry["quantizer_name"] in ("*weight_quantizer", "*input_quantizer"):
            entry["parent_class"] = "nn.Linear"
    config["quant_cfg"] += [{"quantizer_name": f"{prefix}*", "enable": False} for prefix in KEPT_HIGH_PRECISION]
    config["quant_cfg"] += [{"quantizer_name": f"*{layer}.*", "enable": False} for layer in KEPT_CAMERA]
    return config
