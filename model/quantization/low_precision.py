"""Quantized linear layers that multiply in their format: FP8 through ``torch._scaled_mm``, INT8
through ``torch._int_mm``.

modelopt's fake quantization (``quantize.py``) rounds a layer's weight and input to the format, then
multiplies the rounded values back in high precision, which shows the format's quality on any device
and is slower than not quantizing at all. ``low_precision_linears`` swaps each FP8 or INT8 layer of a
fake-quantized DiT for a ``LowPrecisionLinear``: the rounded weight kept in the format itself (one
byte a weight), the input rounded with the calibrated scale, the product taken in the format (fp8 x
fp8 summed in fp32, int8 x int8 summed in int32) and scaled after. The rounding is modelopt's, value
for value, so the outputs are modelopt's up to the order of the sums (and closer to exact where
modelopt rounds its dequantized values to a half-precision model's dtype).

The products run where the device has them: FP8 on GPUs of compute capability 8.9 and up (Ada,
Hopper, Blackwell) at the shapes cuBLASLt takes; INT8 on CUDA GPUs at its shapes and on the CPU
(oneDNN, with VNNI or AMX units where the CPU has them). Elsewhere (FP8 on the CPU, whose
``_scaled_mm`` is a slow reference; shapes the kernels refuse) the layer multiplies the dequantized
values in the model's dtype, which is modelopt's arithmetic. NVFP4 has no such product before
Blackwell GPUs, so its layers stay fake quantized.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

Tensor = torch.Tensor
FP8_MAX, INT8_MAX, INT8_MIN = 448.0, 127.0, -128.0  # modelopt's INT8 grid: not narrowed to +-127
_TINY_AMAX = 1.0 / (1 << 24)  # modelopt treats smaller ranges as zero


def _multiplier(amax: Tensor, fmt: str) -> Tensor:
    """What modelopt multiplies a tensor by before rounding it to ``fmt``: the format's largest value
    over the calibrated range, in fp32 (1 for a zero range in FP8, 0 in INT8, as modelopt does)."""
    amax = amax.float()
    if fmt == "fp8":
        return FP8_MAX / torch.where(amax <= _TINY_AMAX, torch.ones_like(amax), amax)
    return torch.where(amax <= _TINY_AMAX, torch.zeros_like(amax), INT8_MAX / amax)


def _descale(multiplier: Tensor) -> Tensor:
    """The step of the format's grid: the inverse of ``_multiplier`` (1 where that is 0)."""
    return 1.0 / torch.where(multiplier == 0, torch.ones_like(multiplier), multiplier)


def _dequantize(q: Tensor, multiplier: Tensor, fmt: str) -> Tensor:
    """fp32 values of the format's ``q`` as modelopt computes them: times the step in FP8, divided by
    the multiplier in INT8."""
    if fmt == "fp8":
        return q.float() * _descale(multiplier)
    return q.float() / torch.where(multiplier == 0, torch.ones_like(multiplier), multiplier)


def _round(x: Tensor, multiplier: Tensor, fmt: str) -> Tensor:
    """``x`` on the format's grid, as fp8 or int8 values (modelopt's rounding: fp32, clamped, cast to
    E4M3 with ties to even; or rounded half to even and clamped to [-128, 127])."""
    x = x.float() * multiplier
    if fmt == "fp8":
        return x.clamp_(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn)
    return x.round_().clamp_(INT8_MIN, INT8_MAX).to(torch.int8)


_FP8_DEVICES: dict[int, bool] = {}


def _fp8_products(device: torch.device) -> bool:
    """Whether CUDA ``device`` has FP8 products (compute capability 8.9 and up), asked once per device (a
    dict, not a call per forward, which a compiled graph would have to guard on)."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    if index not in _FP8_DEVICES:
        _FP8_DEVICES[index] = torch.cuda.get_device_capability(index) >= (8, 9)
    return _FP8_DEVICES[index]


class LowPrecisionLinear(nn.Module):
    """``y = x W^T + b`` with ``W`` and ``x`` rounded to ``fmt`` (``fp8``: one scale per tensor each;
    ``int8``: one scale per output channel for ``W``, one per tensor for ``x``).

    Buffers that must keep their dtype through ``Module.to(dtype)``, which casts every floating-point
    tensor (float8 and the fp32 scales included), are stored as integer views of their bits.
    """

    def __init__(self, weight: Tensor, weight_amax: Tensor, input_amax: Tensor, bias: Tensor | None, fmt: str) -> None:
        super().__init__()
        if fmt not in ("fp8", "int8"):
            raise ValueError(f"fmt must be 'fp8' or 'int8', got {fmt!r}")
        self.fmt = fmt
        self.out_features, self.in_features = weight.shape
        w_mult = _multiplier(weight_amax, fmt).reshape(-1, 1)  # (1, 1) per tensor or (out, 1) per channel
        w = _round(weight.detach(), w_mult, fmt)
        self.register_buffer("weight_bits", w.view(torch.uint8) if fmt == "fp8" else w)
        self.register_buffer("weight_mult_bits", w_mult.reshape(-1).contiguous().view(torch.int32))
        self.register_buffer("weight_step_bits", _descale(w_mult).reshape(-1).contiguous().view(torch.int32))
        x_mult = _multiplier(input_amax, fmt).reshape(1)
        self.register_buffer("input_mult_bits", x_mult.view(torch.int32))
        self.register_buffer("input_step_bits", _descale(x_mult).view(torch.int32))
        self.register_buffer("bias", None if bias is None else bias.detach().clone())

    @property
    def weight_q(self) -> Tensor:
        """(out, in) in the format."""
        return self.weight_bits.view(torch.float8_e4m3fn) if self.fmt == "fp8" else self.weight_bits

    def _scales(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(input multiplier, input step, weight multipliers, weight steps) in fp32: (1,) for the input,
        (1,) or (out,) for the weight."""
        bits = (self.input_mult_bits, self.input_step_bits, self.weight_mult_bits, self.weight_step_bits)
        return tuple(b.view(torch.float32) for b in bits)

    def _kernel(self, x: Tensor) -> bool:
        """Whether this device takes the format's own product at this layer's shapes (``x`` (M, in))."""
        if x.device.type == "cpu":
            return self.fmt == "int8"
        if x.device.type != "cuda":
            return False
        k, n = self.in_features, self.out_features
        if self.fmt == "fp8":
            return _fp8_products(x.device) and k % 16 == 0 and n % 16 == 0
        return x.shape[0] > 16 and k % 8 == 0 and n % 8 == 0

    def forward(self, x: Tensor) -> Tensor:
        shape, dtype = x.shape, x.dtype
        x = x.reshape(-1, self.in_features)
        x_mult, x_step, w_mult, w_step = self._scales()
        xq = _round(x, x_mult, self.fmt)
        if not self._kernel(x):  # modelopt's arithmetic: the rounded values, dequantized, in the model's dtype
            w = _dequantize(self.weight_q, w_mult[:, None], self.fmt).to(dtype)
            y = F.linear(_dequantize(xq, x_mult, self.fmt).to(dtype), w, self.bias)
        elif self.fmt == "fp8":
            # A half-precision model gets its output and bias straight from the product (no fp32 copy).
            half = dtype in (torch.float16, torch.bfloat16)
            y = torch._scaled_mm(xq, self.weight_q.t(), scale_a=x_step.reshape(1, 1), scale_b=w_step.reshape(1, 1),
                                 bias=self.bias if half else None, out_dtype=dtype)
            if not half and self.bias is not None:
                y = y + self.bias
        else:
            y = torch._int_mm(xq, self.weight_q.t()) * (x_step * w_step)  # int32 x fp32 scales: fp32 in one pass
            y = (y if self.bias is None else y.add_(self.bias)).to(dtype)
        return y.reshape(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, fmt={self.fmt}, bias={self.bias is not None}"


def _convertible(module: nn.Module) -> str | None:
    """The format of a fake-quantized linear layer that ``LowPrecisionLinear`` computes exactly: FP8 or
    INT8 weight and input quantizers with calibrated ranges (INT8 signed on the full [-128, 127] grid,
    as modelopt's default configs make it), nothing else enabled (no output quantizer, no
    pre-quantization scale). None for any other module."""
    from .quantize import _format_of

    wq, iq, oq = (getattr(module, f"{n}_quantizer", None) for n in ("weight", "input", "output"))
    if not isinstance(module, nn.Linear) or wq is None or iq is None or not (wq.is_enabled and iq.is_enabled):
        return None
    if (oq is not None and oq.is_enabled) or getattr(iq, "pre_quant_scale", None) is not None:
        return None
    fmt = _format_of(wq)
    if fmt not in ("fp8", "int8") or _format_of(iq) != fmt or wq.amax is None or iq.amax is None:
        return None
    if fmt == "int8" and any(q._narrow_range or q._unsigned for q in (wq, iq)):
        return None
    return fmt


def low_precision_linears(model: nn.Module) -> int:
    """Swap, in place, every FP8 or INT8 fake-quantized linear layer of ``model`` (as ``quantize_dit``
    or a quantized world's loading leaves it) for a ``LowPrecisionLinear`` on the same device; returns
    how many. For inference: the swapped layers have no gradients, and modelopt's state no longer
    describes the model (save the world before, not after)."""
    swaps = [(name, module, fmt) for name, module in model.named_modules() if (fmt := _convertible(module))]
    for name, module, fmt in swaps:
        parent_name, _, attr = name.rpartition(".")
        layer = LowPrecisionLinear(module.weight, module.weight_quantizer.amax, module.input_quantizer.amax, module.bias, fmt)
        setattr(model.get_submodule(parent_name) if parent_name else model, attr, layer)
    return len(swaps)
