"""RMSNorm with a hand-written backward, for the CPU.

On the CPU, torch's ``rms_norm`` is a chain of small ops (square, mean, rsqrt, two multiplies) and
autograd replays about ten more in the backward, each one pass over the activations; on this
project's 2-core machines such passes, not the matrix products, are most of a training step
(``benchmarks/RESULTS.md``, training). This one's backward makes five (``model.ucpe.match_rms`` does the same for the
camera branch's rescaling). Elsewhere torch's own kernels run (``cpu_backward``).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

Tensor = torch.Tensor


def cpu_backward(*tensors: Tensor) -> bool:
    """Whether a hand-written CPU backward applies: autograd records (some input needs a gradient) on
    the CPU. Otherwise torch's own ops run: on a GPU the small ops cost launches, not passes, and
    without gradients the forward alone is as fast either way."""
    return tensors[0].device.type == "cpu" and torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def _wide_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.promote_types(dtype, torch.float32)


def wide(x: Tensor) -> Tensor:
    """``x`` in at least fp32: a hand-written backward sums in it whatever its inputs' dtype."""
    return x.to(_wide_dtype(x.dtype))


def rms(x: Tensor, eps: float) -> Tensor:
    """sqrt(mean(x^2) + eps) over the last dim, kept, in one pass, in at least fp32."""
    norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True, dtype=_wide_dtype(x.dtype))
    return (norm.square_() / x.shape[-1]).add_(eps).sqrt_()


class _RMSNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, eps: float) -> Tensor:
        # The output from torch's op, so that a pass with gradients equals one without to the bit.
        ctx.save_for_backward(x, weight, rms(x, eps).reciprocal_())
        return F.rms_norm(x, (x.shape[-1],), weight, eps)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, weight, inv = ctx.saved_tensors
        dtypes = x.dtype, weight.dtype
        x, weight, grad = wide(x), wide(weight), wide(grad)
        gw = grad * weight
        # d/dx of x * inv: inv * g - x * inv^3 * mean(g * x)
        coef = torch.linalg.vecdot(gw, x, dim=-1)[..., None] * inv.pow(3) / -x.shape[-1]
        d_x = gw.mul_(inv).addcmul_(x, coef)
        d_weight = None
        if ctx.needs_input_grad[1]:
            d_weight = (grad * x * inv).reshape(-1, x.shape[-1]).sum(0).to(dtypes[1])
        return d_x.to(dtypes[0]), d_weight, None


class RMSNorm(nn.Module):
    """``nn.RMSNorm`` over the last dim with a learned scale (same parameter name and function; the
    hand-written backward where ``cpu_backward`` says so)."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        if not cpu_backward(x, self.weight):
            return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)
        return _RMSNorm.apply(x, self.weight.to(x.dtype), self.eps)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"
