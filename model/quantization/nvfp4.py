"""A plain-PyTorch reference of modelopt's NVFP4 fake quantization, for tensors off CUDA.

NVFP4 stores a tensor as FP4 (E2M1) values in blocks of 16 along its last dimension (a linear
layer's input dimension), each block with its own FP8 (E4M3) scale, and one fp32 scale for the
whole tensor:

    global_scale = global_amax / (6 * 448)                    # 6: largest E2M1 value, 448: largest E4M3
    block_scale  = e4m3(min(block_amax / (6 * global_scale), 448)) * global_scale
    x_q          = sign(x) * e2m1(|x| / block_scale) * block_scale

``e2m1`` rounds a magnitude to the nearest of {0, 0.5, 1, 1.5, 2, 3, 4, 6} (ties to the even
mantissa, larger values saturate at 6) and ``e4m3`` rounds to the nearest FP8 E4M3 number. This
follows modelopt 0.47's Triton kernel (``fp4_fake_quant_block``) step by step, including its two
corner cases: a non-positive global amax is taken as 1e-12, and a block whose scale rounds below
1e-5 (an all-zero block, say) is quantized with scale 1. modelopt runs NVFP4 only on CUDA; this
runs anywhere, registered as a modelopt quantization backend (``REFERENCE_BACKEND``) that a
quantized DiT's own modelopt quantizers call for every tensor not on a CUDA device
(``use_reference_off_cuda``). ``tests/test_quantize.py`` checks it against modelopt on a GPU.
"""

from __future__ import annotations

import logging

import torch
import torch.nn as nn

Tensor = torch.Tensor

log = logging.getLogger(__name__)

BLOCK = 16
E2M1_MAX = 6.0
E4M3_MAX = 448.0
# The name this reference is registered under as a modelopt quantization backend.
REFERENCE_BACKEND = "sanawm_nvfp4_reference"

# The E2M1 magnitudes, and the midpoints between neighbours with the way a tie rounds: to the
# neighbour whose mantissa bit is 0 (round half to even), i.e. up at 0.75, 1.75 and 3.5.
E2M1_GRID = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
_MIDPOINTS = ((0.25, False), (0.75, True), (1.25, False), (1.75, True), (2.5, False), (3.5, True), (5.0, False))


def e2m1_round(magnitude: Tensor) -> Tensor:
    """Non-negative ``magnitude`` rounded to the nearest E2M1 value (ties to even, saturating at 6)."""
    index = sum(((magnitude >= m) if up else (magnitude > m)).long() for m, up in _MIDPOINTS)
    return torch.tensor(E2M1_GRID, dtype=magnitude.dtype, device=magnitude.device)[index]


def e4m3_round(x: Tensor) -> Tensor:
    """``x`` (float32, within +-448) rounded to the nearest FP8 E4M3 number (ties to even)."""
    return x.to(torch.float8_e4m3fn).to(torch.float32)


def nvfp4_fake_quant(x: Tensor, global_amax: Tensor) -> Tensor:
    """``x`` (..., K) quantized to NVFP4 and back, in blocks of 16 along its last dimension (a last
    block cut short is padded with zeros, which leave its amax as it is); ``global_amax`` is the
    per-tensor range (a scalar, or any tensor whose maximum is taken). Same shape and dtype as ``x``."""
    shape, dtype, k = x.shape, x.dtype, x.shape[-1]
    pad = -k % BLOCK
    blocks = torch.nn.functional.pad(x.reshape(-1, k).float(), (0, pad)).reshape(-1, (k + pad) // BLOCK, BLOCK)
    global_scale = global_amax.float().amax().to(x.device) / (E2M1_MAX * E4M3_MAX)
    global_scale = torch.where(global_scale > 0, global_scale, 1e-12)
    block_amax = blocks.abs().amax(dim=-1, keepdim=True)
    scale = e4m3_round(torch.clamp(block_amax / (E2M1_MAX * global_scale), max=E4M3_MAX)) * global_scale
    scale = torch.where(scale >= 1e-5, scale, 1.0)
    magnitude = e2m1_round(blocks.abs() / scale) * scale
    out = torch.where(blocks >= 0, magnitude, -magnitude)
    return out.reshape(-1, k + pad)[:, :k].reshape(shape).to(dtype)


def _reference_backend(inputs: Tensor, quantizer: nn.Module) -> Tensor:
    """modelopt's backend entry point: the quantizer's calibrated amax is the global amax (modelopt
    takes the input's own amax when the quantizer has none, and so does this)."""
    amax = quantizer.amax
    return nvfp4_fake_quant(inputs, inputs.detach().abs().amax() if amax is None else amax)


def is_nvfp4(quantizer: nn.Module) -> bool:
    """Whether a modelopt ``TensorQuantizer`` quantizes to NVFP4 (E2M1 values, E4M3 block scales)."""
    return quantizer.num_bits == (2, 1) and (quantizer.block_sizes or {}).get("scale_bits") == (4, 3)


def _pick_backend(quantizer: nn.Module, args: tuple[Tensor, ...]) -> None:
    """Forward pre-hook: modelopt's kernel for a CUDA tensor, this reference for any other."""
    quantizer.backend = None if args[0].is_cuda else REFERENCE_BACKEND


def nvfp4_quantizers(model: nn.Module) -> list[nn.Module]:
    """The enabled NVFP4 quantizers of ``model``."""
    from modelopt.torch.quantization.nn import TensorQuantizer

    return [m for m in model.modules() if isinstance(m, TensorQuantizer) and m.is_enabled and is_nvfp4(m)]


def use_reference_off_cuda(model: nn.Module) -> None:
    """Make the NVFP4 quantizers of ``model`` quantize CUDA tensors with modelopt's kernel and other
    tensors with this reference, call by call (so a world runs wherever it is moved)."""
    from modelopt.torch.quantization.nn.modules.tensor_quantizer import is_registered_quant_backend, register_quant_backend

    if not is_registered_quant_backend(REFERENCE_BACKEND):
        register_quant_backend(REFERENCE_BACKEND, _reference_backend)
    quantizers = nvfp4_quantizers(model)
    for q in quantizers:
        q.register_forward_pre_hook(_pick_backend)
    if quantizers and not torch.cuda.is_available():
        log.warning("no CUDA: NVFP4 runs through SanaWM's CPU reference of modelopt's kernel (model/quantization/nvfp4.py)")
