"""PSNR of imagined frames against the ground truth."""

import numpy as np
import pytest

from sanawm_env.metrics import psnr


def test_psnr_values():
    a = np.random.default_rng(0).integers(0, 255, (2, 3, 8, 8, 3), dtype=np.uint8)
    assert np.isinf(psnr(a, a)).all() and psnr(a, a).shape == (2, 3)
    b = a + 1  # every channel off by one: 10 log10(255^2)
    assert np.allclose(psnr(b, a), 20 * np.log10(255.0))


def test_psnr_rejects_mismatched_inputs():
    a = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(ValueError, match="uint8 arrays of one shape"):
        psnr(a, np.zeros((4, 5, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8 arrays of one shape"):
        psnr(a.astype(np.float32), a)


def test_ssim_known_values():
    from sanawm_env.metrics import ssim

    a = np.random.default_rng(0).integers(0, 255, (2, 3, 16, 16, 3), dtype=np.uint8)
    assert ssim(a, a).shape == (2, 3) and np.allclose(ssim(a, a), 1.0)
    # Flat images have no variance, so SSIM is the luminance term (2 m1 m2 + C1) / (m1^2 + m2^2 + C1),
    # C1 = (0.01 * 255)^2; in float32 the variances E[x^2] - E[x]^2 keep a rounding error of ~1e-2.
    c1 = (0.01 * 255) ** 2
    flat = np.full((16, 16, 3), 100, np.uint8)
    assert np.isclose(ssim(flat, flat + 50), (2 * 100 * 150 + c1) / (100**2 + 150**2 + c1), atol=1e-3)
    assert ssim(a[0, 0], 255 - a[0, 0]) < 0.1
    with pytest.raises(ValueError, match="uint8 arrays of one shape"):
        ssim(flat, flat[:8])
