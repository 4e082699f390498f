"""Quantized worlds: the DiT's linear layers in FP8, INT8 or NVFP4 through nvidia-modelopt.

``formats`` says which layers each format quantizes, ``quantize`` inserts, calibrates, saves and
restores the quantizers, ``nvfp4`` is the plain-PyTorch NVFP4 used where modelopt's needs CUDA,
``low_precision`` swaps FP8 and INT8 layers for ones that multiply in the format (rollouts do). A
quantized world folder is a world folder (``model.world``) whose ``world.json`` names the format and
which holds the quantizers' state beside the DiT (``QUANTIZERS_FILE``).
"""

from .formats import FORMATS, check_format, is_quantized_layer
from .low_precision import LowPrecisionLinear, low_precision_linears
from .nvfp4 import nvfp4_fake_quant
from .quantize import dit_format, quantize_dit, quantize_world_model, quantized_layers, restore_quantizers, save_quantizers

# The modelopt state of a quantized world's DiT, in the world folder.
QUANTIZERS_FILE = "dit-quantizers.pt"

__all__ = [
    "FORMATS",
    "LowPrecisionLinear",
    "QUANTIZERS_FILE",
    "check_format",
    "dit_format",
    "is_quantized_layer",
    "low_precision_linears",
    "nvfp4_fake_quant",
    "quantize_dit",
    "quantize_world_model",
    "quantized_layers",
    "restore_quantizers",
    "save_quantizers",
]
