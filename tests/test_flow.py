"""Flow matching: path, targets, timestep distributions, schedule and the Euler sampler."""

import pytest
import torch

from model.chunks import chunk_bounds
from model.flow import FlowMatching, euler_sample, shift_sigma


def test_path_and_target():
    x0, eps = torch.randn(2, 3, 4, 2, 2), torch.randn(2, 3, 4, 2, 2)
    sigma = torch.tensor([[0.0, 0.5, 1.0, 0.25]] * 2)
    xs = FlowMatching.noisy(x0, eps, sigma)
    torch.testing.assert_close(xs[:, :, 0], x0[:, :, 0])
    torch.testing.assert_close(xs[:, :, 2], eps[:, :, 2])
    # Moving along the target velocity from x_s by -s lands on x0.
    torch.testing.assert_close(xs + (0 - sigma[:, None, :, None, None]) * FlowMatching.target(x0, eps), x0)


def test_loss_ignores_clean_frames():
    x0, eps = torch.randn(1, 2, 3, 2, 2), torch.randn(1, 2, 3, 2, 2)
    sigma = torch.tensor([[0.0, 0.5, 0.5]])
    pred = eps - x0
    pred[:, :, 0] += 100.0  # wrong only on the clean frame
    assert FlowMatching.loss(pred, x0, eps, sigma).item() == pytest.approx(0.0, abs=1e-10)
    pred[:, :, 1] += 1.0
    assert FlowMatching.loss(pred, x0, eps, sigma).item() == pytest.approx(0.5)


def test_training_sigmas_and_patterns():
    fm = FlowMatching(shift=3.0)
    s = fm.sample_sigmas((10000,), torch.Generator().manual_seed(0))
    assert 0 < s.min() and s.max() < 1
    assert s.median() > 0.6  # shift 3 moves the median sigmoid(0) = 0.5 to 0.75
    chunks = chunk_bounds(10, 4, 3)
    g = torch.Generator().manual_seed(1)
    per_chunk = fm.frame_sigmas(3, chunks, "per_chunk", g)
    assert per_chunk.shape == (3, 10) and (per_chunk[:, 0] == 0).all()
    assert torch.equal(per_chunk[:, 4], per_chunk[:, 6]) and not torch.equal(per_chunk[:, 4], per_chunk[:, 7])
    last = fm.frame_sigmas(3, chunks, "last_chunk", g)
    assert (last[:, :7] == 0).all() and (last[:, 7:] > 0).all()
    uniform = fm.frame_sigmas(2, chunks, "uniform", g, clean_first=False)
    assert (uniform == uniform[:, :1]).all()
    with pytest.raises(ValueError, match="pattern must be one of"):
        fm.frame_sigmas(1, chunks, "random")
    with pytest.raises(ValueError, match="shift must be positive"):
        FlowMatching(shift=0)


def test_schedule_endpoints_and_shift():
    sig = FlowMatching(shift=3.0).schedule(4)
    assert sig[0] == 1 and sig[-1] == 0 and (sig[1:] < sig[:-1]).all()
    torch.testing.assert_close(shift_sigma(torch.tensor([0.5]), 1.0), torch.tensor([0.5]))
    with pytest.raises(ValueError, match="steps must be >= 1"):
        FlowMatching().schedule(0)


def test_euler_with_the_exact_velocity_recovers_the_data():
    x0 = torch.randn(2, 3, 5, 2, 2)
    noise = torch.randn_like(x0)
    fm = FlowMatching(shift=2.0)

    def oracle(x, ts):  # the straight path's velocity field towards x0
        s = (ts / 1000.0)[:, None, :, None, None]
        return (x - x0) / s.clamp_min(1e-8)

    out = fm.sample(oracle, noise, fm.schedule(3))
    torch.testing.assert_close(out, x0, atol=1e-5, rtol=1e-5)
    # Only frames 1.. are generated; frame 0 stays the clean condition.
    mask = torch.tensor([False, True, True, True, True])
    out = fm.sample(oracle, noise, fm.schedule(3), frame_mask=mask, clean=x0)
    torch.testing.assert_close(out, x0, atol=1e-5, rtol=1e-5)


def test_guidance_combines_predictions():
    fm = FlowMatching(shift=1.0)
    noise = torch.zeros(1, 1, 1, 1, 1)
    out = fm.sample(lambda x, t: torch.full_like(x, 2.0), noise, torch.tensor([1.0, 0.0]), guidance=3.0,
                    uncond_velocity=lambda x, t: torch.full_like(x, 1.0))
    # v = 1 + 3 * (2 - 1) = 4, one step of size -1.
    assert out.item() == pytest.approx(-4.0)
    with pytest.raises(ValueError, match="uncond_velocity"):
        fm.sample(lambda x, t: x, noise, torch.tensor([1.0, 0.0]), guidance=2.0)


def _field(weight):
    """A nonlinear velocity v(x, s) = weight * tanh(x) + s, recording the grad mode of each call."""
    calls = []

    def v(x, s):
        calls.append(torch.is_grad_enabled())
        return weight * torch.tanh(x) + s
    return v, calls


def test_euler_sample_steps_and_takes_any_sigma_sequence():
    x = torch.randn(2, 3)
    v, calls = _field(torch.tensor(0.7))
    sigmas = [1.0, 0.625, 0.25, 0.0]  # exact in float32, so a tensor of them walks the same grid
    expected = x
    for s, s_next in zip(sigmas[:-1], sigmas[1:]):
        expected = expected + (s_next - s) * (0.7 * torch.tanh(expected) + s)
    assert torch.equal(euler_sample(v, x, sigmas), expected)
    assert torch.equal(euler_sample(v, x, torch.tensor(sigmas)), expected) and len(calls) == 6


def test_exit_at_the_last_step_is_the_full_euler_result():
    x = torch.randn(2, 3, 4)
    v, _ = _field(torch.tensor(1.3))
    sigmas = FlowMatching(shift=3.0).schedule(4)  # ends at 0
    assert torch.equal(euler_sample(v, x, sigmas, exit_step=3), euler_sample(v, x, sigmas))


@pytest.mark.parametrize("k", [0, 1, 2])
def test_exit_step_returns_that_steps_clean_estimate_with_gradient_through_it_alone(k):
    x = torch.randn(4, 5)
    weight = torch.tensor(0.9, requires_grad=True)
    sigmas = [1.0, 0.75, 0.4, 0.0]
    v, calls = _field(weight)
    out = euler_sample(v, x, sigmas, exit_step=k)
    assert calls == [False] * k + [True], "steps before the exit run without gradient"
    with torch.no_grad():
        x_k = euler_sample(v, x, sigmas[: k + 1]) if k else x
    s = sigmas[k]
    torch.testing.assert_close(out, x_k - s * (weight * torch.tanh(x_k) + s), atol=0, rtol=0)
    out.sum().backward()
    # d/dw of x_k - s (w tanh(x_k) + s) with x_k held constant: only the exit step's call counts.
    torch.testing.assert_close(weight.grad, -s * torch.tanh(x_k).sum())


def test_exit_step_follows_the_callers_grad_mode():
    weight = torch.tensor(0.5, requires_grad=True)
    v, calls = _field(weight)
    with torch.no_grad():
        out = euler_sample(v, torch.randn(3), [1.0, 0.5, 0.0], exit_step=1)
    assert calls == [False, False] and not out.requires_grad


@pytest.mark.parametrize("k", [-1, 3, 7])
def test_exit_step_out_of_range_is_rejected(k):
    with pytest.raises(ValueError, match=r"exit_step must be in \[0, 2\]"):
        euler_sample(lambda x, s: x, torch.zeros(1), [1.0, 0.5, 0.2, 0.0], exit_step=k)


def test_euler_sample_rejects_bad_input():
    with pytest.raises(ValueError, match="at least 2 noise levels"):
        euler_sample(lambda x, s: x, torch.zeros(1), [1.0])
    with pytest.raises(ValueError, match="uncond_velocity"):
        euler_sample(lambda x, s: x, torch.zeros(1), [1.0, 0.0], guidance=2.0)
