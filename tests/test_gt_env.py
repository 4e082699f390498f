"""SanaWM-GT-v0: the Gymnasium contract, determinism, collisions, rewards and bad input."""

import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.error import ResetNeeded
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import sanawm_env  # noqa: F401
from sanawm_env import SanaWMGTEnv
from sanawm_env.trajectories import pose_from

SMALL = dict(height=32, width=40, frames_per_step=4)


def test_gymnasium_env_checker_passes():
    check_env(gym.make("SanaWM-GT-v0", render_mode="rgb_array", **SMALL).unwrapped, skip_render_check=False)


def test_sb3_env_checker_passes():
    sb3_check_env(SanaWMGTEnv(height=64, width=64, frames_per_step=4), warn=True)


def test_make_with_module_prefix_and_time_limit():
    env = gym.make("sanawm_env:SanaWM-GT-v0", height=8, width=8, frames_per_step=1)
    assert env.spec.max_episode_steps == 80
    env.reset(seed=0)
    truncated = False
    for step in range(80):  # noqa: B007 (the last value is checked)
        _, _, terminated, truncated, _ = env.step(np.zeros(6, dtype=np.float32))
        assert not terminated
    assert truncated and step == 79


def test_spaces_and_info():
    env = SanaWMGTEnv(**SMALL)
    assert env.action_space == gym.spaces.Box(-1, 1, (6,), np.float32)
    assert env.observation_space.shape == (32, 40, 3) and env.observation_space.dtype == np.uint8
    assert env.metadata["render_fps"] == 16
    obs, info = env.reset(seed=3)
    assert obs in env.observation_space
    assert info["frames"].shape == (1, 32, 40, 3) and info["poses"].shape == (1, 4, 4)
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert obs in env.observation_space
    assert isinstance(reward, float) and terminated is False and truncated is False
    assert info["frames"].shape == (4, 32, 40, 3) and info["frames"].dtype == np.uint8
    assert np.array_equal(info["frames"][-1], obs)
    assert info["poses"].shape == (4, 4, 4) and np.array_equal(info["poses"][-1], info["pose"])
    assert info["intrinsics"].shape == (4,) and isinstance(info["collision"], bool)


def _rollout(seed, actions, **kwargs):
    env = SanaWMGTEnv(**SMALL, **kwargs)
    obs, info = env.reset(seed=seed)
    frames = [obs]
    for a in actions:
        obs, *_ = env.step(a)
        frames.append(obs)
    return np.stack(frames), info["scene_seed"]


def test_same_seed_same_frames():
    actions = np.random.default_rng(0).uniform(-1, 1, (6, 6)).astype(np.float32)
    a, seed_a = _rollout(5, actions)
    b, seed_b = _rollout(5, actions)
    c, _ = _rollout(6, actions)
    assert seed_a == seed_b and np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_scene_seed_and_pose_options():
    env = SanaWMGTEnv(**SMALL)
    _, info = env.reset(seed=0, options={"scene_seed": 42})
    assert info["scene_seed"] == 42
    pose = info["pose"].astype(np.float64)
    obs1, _ = env.reset(seed=1, options={"scene_seed": 42, "pose": pose})
    obs2, info2 = env.reset(seed=2, options={"scene_seed": 42, "pose": pose})
    assert np.array_equal(obs1, obs2)
    np.testing.assert_allclose(info2["pose"], pose, atol=1e-6)


def test_step_moves_the_camera_by_the_scaled_action():
    env = SanaWMGTEnv(**SMALL, max_translation=0.4, max_rotation=math.radians(20))
    _, info = env.reset(seed=0)
    start = info["pose"].astype(np.float64)
    env_free = env.scene.is_free
    # Step forward only when the way is clear; expect 0.2 m along the view direction.
    if env_free(start[:3, 3] + 0.6 * start[:3, 2], 0.3):
        _, _, _, _, info = env.step(np.array([0, 0, 0.5, 0, 0, 0], dtype=np.float32))
        np.testing.assert_allclose(info["pose"][:3, 3], start[:3, 3] + 0.2 * start[:3, 2], atol=1e-5)
    _, _, _, _, info = env.step(np.array([0, 0, 0, 0, 0, 1.0], dtype=np.float32))
    before, after = info["poses"][0], info["pose"]
    yaw = math.atan2(after[0, 2], after[2, 2]) - math.atan2(before[0, 2], before[2, 2])
    # The first raw frame already carries 1/4 of the turn.
    assert (yaw + math.pi) % (2 * math.pi) - math.pi == pytest.approx(math.radians(20) * 3 / 4, abs=1e-5)


def test_walking_into_a_wall_collides_and_stays_outside():
    env = SanaWMGTEnv(**SMALL, task="explore")
    env.reset(seed=0, options={"scene_seed": 3})
    walls = env.scene.walls.numpy()
    iz, ix = next((z, x) for z, x in zip(*np.nonzero(walls == 0)) if walls[z, x + 1] > 0 and walls[z, x - 1] == 0)
    pose = pose_from(np.array([ix + 0.5, -1.5, iz + 0.5]), yaw=math.pi / 2)  # 0.5 m from a wall, facing it
    env.reset(seed=0, options={"scene_seed": 3, "pose": pose})
    _, reward, _, _, info = env.step(np.array([0, 0, 1, 0, 0, 0], dtype=np.float32))
    assert info["collision"] is True
    assert env.scene.is_free(info["pose"][:3, 3].astype(np.float64), env.camera_radius - 1e-6)
    assert info["pose"][0, 3] == pytest.approx(ix + 1 - env.camera_radius, abs=1e-3)
    assert reward == pytest.approx(-0.1)  # stayed in the same cell, paid the collision penalty


def test_explore_rewards_new_cells():
    env = SanaWMGTEnv(height=8, width=8, frames_per_step=8, task="explore", max_translation=1.0)
    env.reset(seed=1)
    total = 0.0
    for _ in range(10):
        _, r, _, _, info = env.step(np.array([0, 0, 1, 0, 0, 0.2], dtype=np.float32))
        total += r
    assert info["visited_cells"] > 1
    assert total > 0


def test_depth_in_info():
    env = SanaWMGTEnv(**SMALL, return_depth=True)
    _, info = env.reset(seed=0)
    assert info["depth"].shape == (1, 32, 40) and (info["depth"] > 0).all()


@pytest.mark.parametrize(
    "action,error,match",
    [
        (np.zeros(5, np.float32), ValueError, r"shape \(6,\)"),
        (np.zeros((2, 6), np.float32), ValueError, r"shape \(6,\)"),
        (np.array([0, 0, np.nan, 0, 0, 0], np.float32), ValueError, "finite"),
        (np.array([0, 0, np.inf, 0, 0, 0], np.float32), ValueError, "finite"),
        ("forward", TypeError, "float array"),
    ],
)
def test_bad_actions_raise(action, error, match):
    env = SanaWMGTEnv(**SMALL)
    env.reset(seed=0)
    with pytest.raises(error, match=match):
        env.step(action)


def test_out_of_range_actions_are_clipped():
    a = SanaWMGTEnv(**SMALL)
    b = SanaWMGTEnv(**SMALL)
    a.reset(seed=0)
    b.reset(seed=0)
    obs_a, *_ = a.step(np.array([0, 0, 0, 0, 0, 5.0], np.float32))
    obs_b, *_ = b.step(np.array([0, 0, 0, 0, 0, 1.0], np.float32))
    assert np.array_equal(obs_a, obs_b)


def test_bad_options_and_construction_raise():
    env = SanaWMGTEnv(**SMALL)
    with pytest.raises(ResetNeeded):
        env.step(np.zeros(6, np.float32))
    with pytest.raises(ValueError, match=r"unknown reset option\(s\) \['image'\]; accepted: \['scene_seed', 'pose'\]"):
        env.reset(seed=0, options={"image": np.zeros((32, 40, 3), np.uint8)})
    with pytest.raises(ValueError, match="scene_seed"):
        env.reset(seed=0, options={"scene_seed": -3})
    with pytest.raises(ValueError, match="4x4"):
        env.reset(seed=0, options={"pose": np.eye(3)})
    with pytest.raises(ValueError, match="rigid transform"):
        env.reset(seed=0, options={"pose": np.diag([2.0, 1, 1, 1])})
    with pytest.raises(ValueError, match="inside geometry"):
        env.reset(seed=0, options={"pose": np.eye(4)})  # the origin is in the border wall
    for kwargs, match in [
        (dict(height=0), "height must be a positive int"),
        (dict(width=-4), "width must be a positive int"),
        (dict(frames_per_step=0), "frames_per_step must be a positive int"),
        (dict(max_translation=0.0), "max_translation must be a positive finite number"),
        (dict(task="fly"), "task must be one of"),
        (dict(render_mode="human"), "render_mode must be one of"),
    ]:
        with pytest.raises(ValueError, match=match):
            SanaWMGTEnv(**kwargs)


def test_render_returns_the_observation():
    env = SanaWMGTEnv(**SMALL, render_mode="rgb_array")
    obs, _ = env.reset(seed=0)
    assert np.array_equal(env.render(), obs)


def test_scene_config_from_make_kwargs():
    env = gym.make("SanaWM-GT-v0", height=8, width=8, scene={"grid_size": 16, "max_room_cells": 6, "sky_probability": 1.0})
    env.reset(seed=0)
    scene = env.unwrapped.scene
    assert scene.walls.shape == (16, 16) and not scene.roofed.all()
    with pytest.raises(ValueError, match="grid_size"):
        gym.make("SanaWM-GT-v0", scene={"grid_size": 5})
