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
