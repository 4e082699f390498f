"""The SB3 VecEnv adapter over the batched world (issue 16): one model for N worlds, equal to N
single envs under SB3's DummyVecEnv, and SB3's conventions (autoreset, terminal_observation, seed,
render)."""


import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3 import PPO
from stable_baselines3.common.logger import configure
from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor
from stable_baselines3.common.vec_env.base_vec_env import tile_images

import sanawm_env
from sanawm_env.sb3 import SB3VecEnv, make_vec_env

TINY = dict(size="tiny", height=32, width=32)


pytestmark = pytest.mark.usefixtures("quiet_untrained")


def _same(a, b):
    if isinstance(a, dict):
        return set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in a)
    return np.array_equal(a, b)


@pytest.mark.parametrize("task", ["pointgoal", "explore"])
def test_adapter_equals_n_single_envs_under_dummy_vec_env(task):
    kwargs = dict(**TINY, task=task, max_episode_steps=3)
    batched = make_vec_env("SanaWM-v0", 3, **kwargs)
    assert isinstance(batched.venv.unwrapped, sanawm_env.SanaWMVectorEnv)  # one model for the three worlds
    singles = DummyVecEnv([lambda: gym.make("SanaWM-v0", **kwargs) for _ in range(3)])
    assert batched.observation_space == singles.observation_space and batched.action_space == singles.action_space
    assert batched.seed(5) == singles.seed(5)
    assert _same(batched.reset(), singles.reset())
    actions = np.random.default_rng(0).uniform(-1, 1, (7, 3, 6)).astype(np.float32)
    ended = 0
    for action in actions:
        (obs_a, rew_a, done_a, infos_a), (obs_b, rew_b, done_b, infos_b) = batched.step(action), singles.step(action)
        assert _same(obs_a, obs_b) and np.array_equal(rew_a, rew_b) and np.array_equal(done_a, done_b)
        for info_a, info_b in zip(infos_a, infos_b):
            assert set(info_a) == set(info_b) and info_a["TimeLimit.truncated"] == info_b["TimeLimit.truncated"]
            if "terminal_observation" in info_b:
                ended += 1
                assert _same(info_a["terminal_observation"], info_b["terminal_observation"])
    assert ended == 6  # every world ended twice (3-step limit), and was reset in the step that ended it
    assert rew_a.dtype == np.float32 and done_a.dtype == bool


def test_adapter_follows_sb3_conventions():
    venv = make_vec_env("SanaWM-v0", 2, **TINY, render_mode="rgb_array")
    first = venv.seed(7)
    obs = venv.reset()
    assert first == [7, 8] and venv.seed(7) == first and _same(venv.reset(), obs)  # seed() applies to the next reset
    obs = venv.reset()
    assert _same(venv.get_images()[1], obs[1]) and not _same(venv.reset(), obs)  # seed() applies once
    assert _same(venv.render(), tile_images(venv.get_images()))  # SB3 tiles the worlds' frames
    assert venv.get_attr("render_mode") == ["rgb_array"] * 2 and venv.env_is_wrapped(gym.Wrapper) == [False, False]
    with pytest.raises(ValueError, match="set_attr"):
        venv.set_attr("render_mode", None, indices=[0])
    venv.set_options({"scene_seed": 11})
    venv.reset()
    assert all(info["scene_seed"] == 11 for info in venv.reset_infos)
    with pytest.raises(ValueError, match="autoreset_mode"):
        SB3VecEnv(sanawm_env.SanaWMVectorEnv(num_envs=2, **TINY))
    gt = make_vec_env("SanaWM-GT-v0", 2, height=32, width=32, task="pointgoal")  # no vector entry point: Gymnasium's sync env
    assert gt.reset()["pointgoal"].shape == (2, 2)


def test_ppo_multi_input_policy_learns_on_the_batched_world(tmp_path):
    venv = VecMonitor(make_vec_env("SanaWM-v0", 2, size="tiny", height=64, width=64, task="pointgoal", max_episode_steps=8))
    model = PPO("MultiInputPolicy", venv, n_steps=16, batch_size=16, n_epochs=1, seed=0, device="cpu")
    model.set_logger(configure(str(tmp_path), []))  # SB3's default logger leaves a folder in the system's temp dir
    model.learn(48)
    assert model.num_timesteps >= 48
    action, _ = model.predict(venv.reset(), deterministic=True)
    assert action.shape == (2, 6)


def test_ground_truth_worlds_that_end_apart_merge_their_infos():
    from gymnasium.vector import AutoresetMode

    from sanawm_env.vector import SyncWorlds

    # One world ends at step 2, the other at 3: the reset world's one-frame info meets a step's worth.
    def make(limit):
        return lambda: gym.make("SanaWM-GT-v0", height=32, width=32, frames_per_step=2, max_episode_steps=limit)

    venv = SB3VecEnv(SyncWorlds([make(2), make(3)], autoreset_mode=AutoresetMode.SAME_STEP))
    venv.reset()
    steps = [venv.step(np.zeros((2, 6), np.float32)) for _ in range(3)]
    assert [s[2].tolist() for s in steps] == [[False, False], [True, False], [False, True]]
    ended, going_on = steps[1][3]
    assert ended["poses"].shape == going_on["poses"].shape == (2, 4, 4) and "terminal_observation" in ended
    assert [info["poses"].shape for info in venv.reset_infos] == [(1, 4, 4), (1, 4, 4)]
