"""Discrete and keyboard actions, and the rollout recorder."""

import gymnasium as gym
import numpy as np
import pytest

import sanawm_env  # noqa: F401
from sanawm_env.wrappers import DiscreteActions, KeyboardActions, RecordRollout, draw_minimap

GT = dict(height=24, width=32, frames_per_step=4)


def test_discrete_actions():
    env = DiscreteActions(gym.make("SanaWM-GT-v0", **GT))
    assert env.action_space == gym.spaces.Discrete(9)
    assert env.action(1).tolist() == [0, 0, 1, 0, 0, 0]
    assert env.action(4).tolist() == [0, 0, 0, 0, 0, 1]
    env.reset(seed=0)
    _, _, _, _, info = env.step(4)
    yaw = np.arctan2(info["pose"][0, 2], info["pose"][2, 2]) - np.arctan2(info["poses"][0][0, 2], info["poses"][0][2, 2])
    assert yaw > 0  # turned right
    with pytest.raises(ValueError, match=r"action must be an int in \[0, 8\]"):
        env.step(9)


def test_keyboard_actions():
    env = KeyboardActions(gym.make("SanaWM-GT-v0", **GT))
    assert env.action("w").tolist() == [0, 0, 1, 0, 0, 0]
    assert env.action("w+left").tolist() == [0, 0, 1, 0, 0, -1]
    assert env.action("").tolist() == [0] * 6
    env.reset(seed=0)
    env.step("d+up")
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['q'\]"):
        env.step("q")
    with pytest.raises(TypeError, match="key string"):
        env.step(3)


def test_recorder_writes_video_and_plot(tmp_path):
    env = RecordRollout(gym.make("SanaWM-GT-v0", **GT, max_episode_steps=3), tmp_path)
    env.reset(seed=0)
    done = False
    while not done:
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        done = terminated or truncated
    names = sorted(p.name for p in env.written)
    assert names == ["rollout-0.mp4", "rollout-0.png"]
    import imageio

    frames = imageio.mimread(tmp_path / "rollout-0.mp4")
    assert len(frames) == 1 + 3 * 4
    env.close()


def test_minimap_marks_the_path():
    frame = np.zeros((30, 30, 3), np.uint8)
    poses = np.stack([np.eye(4)] * 3)
    poses[:, 0, 3] = [0.0, 1.0, 2.0]
    out = draw_minimap(frame, poses)
    assert (out[:, :20] == 0).all() and (out == 255).any() and (out[..., 0] == 255).any()
