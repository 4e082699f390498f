"""Post-training quantization of a world's DiT with nvidia-modelopt, and its quantizers on disk.

    quantize_dit(dit, "fp8", forward_loop)       # insert quantizers, calibrate them on forward_loop(dit)
    quantize_world_model(world, "fp8", loop)     # the same on a world's DiT, its info saying so
    save_quantizers(path, dit, "fp8")            # modelopt's state: which quantizers, of which format
    restore_quantizers(fresh_dit, path, "fp8")   # the same quantizers on a fresh DiT, before its weights load

Quantization is modelopt's fake quantization: the DiT keeps its high-precision weights and each
quantized linear layer rounds its weight and its input to the format in the forward, which gives
the format's numerics on any device (the speed of real low-precision kernels is another matter).
The calibrated ranges (``*_quantizer._amax``) are buffers of the DiT, so they travel in its state
dict with the weights; the file written here is ``mto.modelopt_state``, which tells modelopt how to
rebuild the quantizers they belong to.
"""

from __future__ import annotations

import dataclasses
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn as nn

from .formats import check_format, quant_config
from .nvfp4 import is_nvfp4, nvfp4_quantizers, use_reference_off_cuda


def _modelopt():
    """modelopt's quantization and state modules, or an ImportError that says what needs them."""
    try:
        # Calibration imports modelopt's exporter, which warns that Hugging Face's transformers (never used here) is missing.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Cannot find transformers package")
            import modelopt.torch.export  # noqa: F401
            import modelopt.torch.opt as mto
            import modelopt.torch.quantization as mtq
    except ImportError as e:
        raise ImportError(f"quantized worlds need nvidia-modelopt (pip install nvidia-modelopt): {e}") from e
    return mtq, mto


def quantize_dit(dit: nn.Module, fmt: str, forward_loop: Callable[[nn.Module], None]) -> nn.Module:
    """Quantize the linear layers of ``dit`` (in place) to ``fmt``, one of ``FORMATS``, calibrating
    the activation ranges on what ``forward_loop(dit)`` runs through it (modelopt's max calibration:
    the largest magnitude each layer's input takes). Returns ``dit``."""
    mtq, _ = _modelopt()
    mtq.quantize(dit, quant_config(check_format(fmt)), forward_loop)
    use_reference_off_cuda(dit)
    return dit


def quantize_world_model(world, fmt: str, forward_loop: Callable[[nn.Module], None]):
    """Quantize the DiT of ``world`` (a ``model.world.WorldModel``, in place) to ``fmt`` as
    ``quantize_dit`` does, and record the format in its ``info``, which saving and rolling out the
    world go by. Returns ``world``."""
    quantize_dit(world.dit, fmt, forward_loop)
    world.info = dataclasses.replace(world.info, quantization=fmt)
    return world


def _format_of(quantizer: nn.Module) -> str:
    if is_nvfp4(quantizer):
        return "nvfp4"
    if quantizer.num_bits == (4, 3) and quantizer.block_sizes is None:
        return "fp8"
    if quantizer.num_bits == 8:
        return "int8"
    raise ValueError(f"a quantizer of a format SanaWM does not make: {quantizer}")


def quantized_layers(model: nn.Module) -> dict[str, str]:
    """Name -> format of the layers of ``model`` whose weights are quantized (none without modelopt
    loaded: nothing can have been quantized then, and importing it takes seconds)."""
    if "modelopt.torch.quantization" not in sys.modules:
        return {}
    from modelopt.torch.quantization.nn import TensorQuantizer

    return {name: _format_of(q) for name, module in model.named_modules()
            if isinstance(q := getattr(module, "weight_quantizer", None), TensorQuantizer) and q.is_enabled}


def dit_format(dit: nn.Module) -> str | None:
    """The format ``dit`` is quantized to, None if it is not; a ValueError if its layers disagree."""
    formats = set(quantized_layers(dit).values())
    if len(formats) > 1:
        raise ValueError(f"the DiT's layers are quantized to several formats {sorted(formats)}")
    return formats.pop() if formats else None


def save_quantizers(path: str | Path, dit: nn.Module, fmt: str) -> Path:
    """Write the modelopt state of ``dit``, which must be quantized to ``fmt``, to ``path``."""
    _, mto = _modelopt()
    found = dit_format(dit)
    if found != fmt:
        raise ValueError(f"the world's info.quantization is {fmt!r}, but its DiT is {'quantized to ' + found if found else 'not quantized'}")
    for q in nvfp4_quantizers(dit):  # the state names modelopt's own kernel; the reference is picked call by call
        q.backend = None
    path = Path(path)
    torch.save(mto.modelopt_state(dit), path)
    return path


def restore_quantizers(dit: nn.Module, path: str | Path, fmt: str) -> nn.Module:
    """Rebuild on ``dit`` (fresh, before its weights load) the quantizers that ``save_quantizers``
    wrote to ``path``, checking they are of ``fmt``; errors name ``path`` and what is wrong."""
    _, mto = _modelopt()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; a world quantized to {fmt} keeps its quantizers there")
    try:
        state = mto.load_modelopt_state(path, weights_only=True)
    except Exception as e:  # torch.load raises pickle, zip, EOF and runtime errors alike for a damaged file
        raise ValueError(f"{path}: not a readable modelopt state ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from e
    try:
        with warnings.catch_warnings():  # it cannot place the quantizers of parameter-free norms; they follow the DiT's .to()
            warnings.filterwarnings("ignore", message="Could not identify the device for TensorQuantizer")
            mto.restore_from_modelopt_state(dit, state)
    except Exception as e:  # modelopt asserts, and raises key and type errors, on a state of another model
        raise ValueError(f"{path}: does not restore onto this DiT ({type(e).__name__}: {e})") from e
    found = dit_format(dit)
    if found != fmt:
        raise ValueError(f"{path}: holds {found or 'no'} quantizers, but world.json says the world is quantized to {fmt}")
    use_reference_off_cuda(dit)
    return dit
