"""Flow matching: path, targets, timestep distributions, schedule and the Euler sampler."""

import pytest
import torch

from model.flow import FlowMatching, shift_sigma
from model.chunks import chunk_bounds


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
