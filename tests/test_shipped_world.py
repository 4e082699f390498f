"""The shipped world (sanawm_env/assets/world-small) has learned: tests an untrained world fails.

The world loads by default with no warning; turning left and turning right from the same start give
different frames, each closer to its own ground truth than to the other's; the demo scores above the
repeat-the-first-frame bracket against the procedural scene rendered along its path; its collision
predictor finds true collisions in held-out scenes better than a constant answer.
"""

import json
import warnings

import numpy as np
import pytest

from model.world import DEFAULT_WORLD
from sanawm.cli import _compose_demo, run_demo
from sanawm_env import SanaWMEnv
from sanawm_env.gt_env import SanaWMGTEnv
from sanawm_env.metrics import psnr

YAW = 4  # the action's yaw component


def test_default_world_loads_without_warning():
    assert (DEFAULT_WORLD / "world.json").is_file()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = SanaWMEnv()
        obs, _ = env.reset(seed=0)
    assert obs.shape == (64, 64, 3)


def _psnr(frames: np.ndarray, reference: np.ndarray) -> float:
    return float(psnr(frames, reference).mean())


def _turn(env, seed: int, direction: float, steps: int) -> np.ndarray:
    """The frames of the last of ``steps`` full-rate turns in ``direction`` (+1 or -1) from the seed's start."""
    env.reset(seed=seed)
    action = np.zeros(6, dtype=np.float32)
    action[YAW] = direction
    for _ in range(steps):
        _, _, _, _, info = env.step(action)
    return info["frames"]


def test_turning_left_and_right_each_follow_their_own_ground_truth():
    """From the same starts, the frames after turning left are closer to the true left turn than to the
    true right turn, and the other way round: on average over eight starts by a clear margin, and in
    most of them. A world that ignores its actions has no margin (it shows the same frames either way).
    The shipped world: mean margin 2.35 dB, 12 of 16 positive (docs/world-small.md)."""
    world, truth = SanaWMEnv(), SanaWMGTEnv(height=64, width=64)
    margins = []
    for seed in range(8):
        left, right = _turn(world, seed, 1.0, 2), _turn(world, seed, -1.0, 2)
        true_left, true_right = _turn(truth, seed, 1.0, 2), _turn(truth, seed, -1.0, 2)
        assert np.abs(left.astype(int) - right.astype(int)).mean() > 5  # the actions reach the frames
        margins += [_psnr(left, true_left) - _psnr(left, true_right), _psnr(right, true_right) - _psnr(right, true_left)]
    margins = np.array(margins)
    assert margins.mean() > 1.0 and (margins > 0).mean() > 0.6, margins.round(2)


def test_demo_scores_above_repeating_the_first_frame(tmp_path):
    paths = run_demo(_compose_demo([f"out={tmp_path}", "steps=4"]))
    summary = json.loads(paths["summary"].read_text())
    assert summary["psnr_db_vs_ground_truth"] > summary["psnr_db_repeat_first_frame"]


def test_the_shipped_collision_predictor_beats_a_constant_answer_in_held_out_scenes():
    """On 12 held-out walks (scene seeds from 2**31 on, not those of the reported numbers), the shipped
    predictor's F1 clears the best constant answer's ("always a collision") by a wide margin. An
    untrained predictor gives one answer everywhere, so it can at most tie that constant. The shipped
    one: F1 0.68 against 0.43 here; 0.63 against 0.45 on the 200 walks of docs/agents.md."""
    import torch

    from agents.train_collision import _predict, _scores, _with_views
    from model.world import load_world
    from sanawm_env.collision_data import CollisionDataConfig, collision_walk

    predictor = load_world(DEFAULT_WORLD).collision
    assert predictor is not None and SanaWMEnv().unwrapped.collisions  # on by default
    config = CollisionDataConfig(seed=12345, held_out=True)
    walks = [collision_walk(config, w) for w in range(12)]
    data = _with_views({key: torch.cat([torch.as_tensor(w[key]) for w in walks]) for key in ("images", "poses", "gravity", "motion", "collision")},
                       config.views_per_walk)
    truth = data["collision"]
    predicted = _predict(predictor, data)[0] >= predictor.config.threshold
    f1, always = _scores(predicted, truth)["f1"], _scores(torch.ones_like(truth), truth)["f1"]
    assert f1 > always + 0.08, (f1, always)
