"""Golden rollout: the tiny untrained SanaWM-v0 world must produce exactly the frames it produced
before the sampler / chunk / rollout refactor (tests/data/golden_tiny_rollout.npz).

The comparison is exact (max abs difference 0 on the uint8 frames): a refactor that moves code must not
change a single pixel. Only a deliberate change of behaviour may rewrite the file, with
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
def test_rollout_matches_golden_exactly(case):
    golden = np.load(GOLDEN)[case]
    frames = rollout(**CASES[case])
    assert frames.dtype == np.uint8 and frames.shape == golden.shape
    diff = np.abs(frames.astype(np.int16) - golden.astype(np.int16)).max()
    print(f"{case}: max abs difference {diff}")
    assert diff == 0, f"{case}: frames differ from the golden rollout by up to {diff} (must be 0)"


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: tests/test_rollout_golden.py --write  (rewrites the golden frames)")
    torch.set_num_threads(1)  # as the test suite runs (tests/conftest.py)
    GOLDEN.parent.mkdir(exist_ok=True)
    np.savez_compressed(GOLDEN, **{case: rollout(**kwargs) for case, kwargs in CASES.items()})
    print(f"wrote {GOLDEN}")
