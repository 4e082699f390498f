"""Golden rollout: the tiny untrained SanaWM-v0 world must produce the frames it produced before the
sampler / chunk / rollout refactor (tests/data/golden_tiny_rollout.npz), up to rounding.

A refactor that moves code must not change the frames. The comparison is exact but for rounding: a
value that lies at a uint8 rounding boundary may round either way on another CPU (the matrix kernels of
an AMD EPYC and of an Intel Xeon with AMX sum in different orders), so at most one value in a thousand may
differ, by one level; a change of behaviour moves far more. Only a deliberate change of behaviour may
rewrite the file, with
``.venv/bin/python tests/test_rollout_golden.py --write``, and it says so in its commit.
"""

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from sanawm_env import SanaWMEnv

GOLDEN = Path(__file__).parent / "data" / "golden_tiny_rollout.npz"
SEED, STEPS = 7, 3
CASES = {"plain": dict(refine_every=0), "refined": dict(refine_every=1)}
# Of the uint8 values, the share that may differ by one level (a rounding boundary on another CPU).
ROUNDING_SHARE = 1e-3


def rollout(refine_every: int) -> np.ndarray:
    """All frames of reset(seed=7) and 3 fixed steps, (1 + 3 * F, H, W, 3) uint8."""
    actions = np.random.default_rng(0).uniform(-1, 1, (STEPS, 6)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="no trained")
        env = SanaWMEnv(size="tiny", height=32, width=32, refine_every=refine_every)
    _, info = env.reset(seed=SEED)
    frames = [info["frames"]]
    for action in actions:
        frames.append(env.step(action)[4]["frames"])
    return np.concatenate(frames)


@pytest.mark.parametrize("case", sorted(CASES))
def test_rollout_matches_golden_up_to_rounding(case):
    golden = np.load(GOLDEN)[case]
    frames = rollout(**CASES[case])
    assert frames.dtype == np.uint8 and frames.shape == golden.shape
    diff = np.abs(frames.astype(np.int16) - golden.astype(np.int16))
    share = np.count_nonzero(diff) / diff.size
    print(f"{case}: max abs difference {diff.max()} on {share:.2e} of the values")
    assert diff.max() <= 1 and share <= ROUNDING_SHARE, (
        f"{case}: frames differ from the golden rollout by up to {diff.max()} on {share:.2e} of the values "
        f"(rounding allows 1 on at most {ROUNDING_SHARE:g})")


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: tests/test_rollout_golden.py --write  (rewrites the golden frames)")
    torch.set_num_threads(1)  # as the test suite runs (tests/conftest.py)
    GOLDEN.parent.mkdir(exist_ok=True)
    np.savez_compressed(GOLDEN, **{case: rollout(**kwargs) for case, kwargs in CASES.items()})
    print(f"wrote {GOLDEN}")
