"""The ops with hand-written backwards (RMSNorm, the UCPE rescaling, the temporal short conv) against
autograd through their plain definitions, values and gradients."""

import pytest
import torch

from model.attention import TemporalShortConv
from model.chunks import chunk_bounds
from model.norms import RMSNorm
from model.ucpe import match_rms


def _grads(out, inputs, seed=0):
    weight = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=out.dtype)
    return torch.autograd.grad((out * weight).sum(), inputs)


def _close(got, want, tol=1e-10):
    got, want = got.detach(), want.detach()
    assert got.shape == want.shape
    assert float((got - want).abs().max()) <= tol * (1 + float(want.abs().max()))


def test_rms_norm_equals_torch_values_and_gradients():
    torch.manual_seed(0)
    x = torch.randn(3, 5, 16, dtype=torch.float64, requires_grad=True)
    ours, theirs = RMSNorm(16, eps=1e-5).double(), torch.nn.RMSNorm(16, eps=1e-5).double()
    with torch.no_grad():
        ours.weight.normal_()
        theirs.weight.copy_(ours.weight)
    got, want = ours(x), theirs(x)
    _close(got, want)
    for g, w in zip(_grads(got, [x, ours.weight]), _grads(want, [x, theirs.weight])):
        _close(g, w)
    assert ours.state_dict().keys() == theirs.state_dict().keys()


def _match_rms_by_autograd(reference, x, eps=1e-6):
    ref = reference.square().mean(-1, keepdim=True).add(eps).sqrt()
    cur = x.square().mean(-1, keepdim=True).add(eps).sqrt()
    return x * (ref / cur.clamp_min(eps)).clamp(max=1.0)


def test_match_rms_equals_its_definition_where_it_scales_and_where_it_does_not():
    torch.manual_seed(0)
    reference = torch.randn(2, 3, 10, 8, dtype=torch.float64)
    x = torch.randn(2, 3, 10, 8, dtype=torch.float64) * torch.rand(2, 3, 10, 1, dtype=torch.float64) * 2
    ratio = reference.square().mean(-1) / x.square().mean(-1)
    assert (ratio < 1).any() and (ratio > 1).any()  # both branches of the cap are exercised
    reference.requires_grad_(), x.requires_grad_()
    got, want = match_rms(reference, x), _match_rms_by_autograd(reference, x)
    _close(got, want)
    for g, w in zip(_grads(got, [reference, x]), _grads(want, [reference, x])):
        _close(g, w)


def _short_conv_by_matrix(x, weight, num_frames, chunks, past):
    """The filter as an explicit (T, K - 1 + T) mixing matrix per channel over the padded sequence."""
    b, n, c = x.shape
    k = weight.shape[1]
    seq = torch.cat([past, x.reshape(b, num_frames, n // num_frames, c)], dim=1)
    mix = torch.zeros(c, num_frames, k - 1 + num_frames, dtype=x.dtype)
    for i in range(num_frames):
        for d in range(k):  # causal taps, into the past frames too
            mix[:, i, i + k - 1 - d] += weight[:, k - 1 - d]
        start, end = next((s, e) for s, e in chunks if s <= i < e)
        for d in range(1, k):  # anti-causal taps, inside the frame's chunk
            if i + d < end:
                mix[:, i, i + k - 1 + d] += weight[:, k - 1 - d]
    return torch.einsum("cij,bjsc->bisc", mix, seq).reshape(b, n, c)


@pytest.mark.parametrize("frames,chunks", [(7, [(0, 7)]), (7, chunk_bounds(7)), (10, chunk_bounds(10)), (2, [(0, 2)]), (1, [(0, 1)])])
def test_temporal_short_conv_equals_its_mixing_matrix(frames, chunks):
    torch.manual_seed(frames)
    conv = TemporalShortConv(6, 4).double()
    with torch.no_grad():
        conv.weight.normal_()
    x = torch.randn(2, frames * 5, 6, dtype=torch.float64, requires_grad=True)
    past = torch.randn(2, 3, 5, 6, dtype=torch.float64, requires_grad=True)
    got, new_past = conv(x, frames, chunks, past)
    want = _short_conv_by_matrix(x, conv.weight[:, 0], frames, chunks, past)
    _close(got, want)
    seq = torch.cat([past, x.reshape(2, frames, 5, 6)], dim=1)
    _close(new_past, seq[:, frames:])
    for g, w in zip(_grads(got, [x, past, conv.weight]), _grads(want, [x, past, conv.weight])):
        _close(g, w)
