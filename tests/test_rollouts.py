"""Offline rollout data sets (issue 16, item 5): ``sanawm rollouts`` and its format (round trip, the
batched worlds equal single envs, resume after an interruption, damaged data sets named), and
behaviour cloning of the scripted expert with PPO going on from the cloned network."""

import json

import gymnasium as gym
import numpy as np
import pytest
import torch

import sanawm_env  # noqa: F401
from agents import rollouts
from agents.policies import GoalExpert
from agents.pretrain_bc import PretrainBCConfig, behaviour_clone, pretrain
from agents.rollout_data import RolloutDataset
from agents.rollouts import collect_rollouts
from agents.train_ppo import TrainPPOConfig
from sanawm.cli import main

GT = {"height": 32, "width": 32, "frames_per_step": 2}
NEAR = {"max_distance": 3.0}


def _collect(out, episodes=5, **kwargs):
    args = dict(env="SanaWM-GT-v0", env_kwargs=GT, task_kwargs=NEAR, num_worlds=2, max_steps=12, episodes_per_shard=2, progress=False)
    return collect_rollouts(out, "scripted", episodes, **{**args, **kwargs})


def _equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_data_set_round_trip_equals_single_env_episodes(tmp_path):
    data = RolloutDataset(_collect(tmp_path / "ds"))
    index = json.loads((tmp_path / "ds" / "index.json").read_text())
    assert len(data) == 5 and [s["episodes"] for s in index["shards"]] == [2, 2, 1] and index["complete"]
    assert data.observation == {"image": {"shape": [32, 32, 3], "dtype": "uint8"}, "pointgoal": {"shape": [2], "dtype": "float32"}}
    env = gym.make("SanaWM-GT-v0", task="pointgoal", task_kwargs=NEAR, max_episode_steps=12, **GT)
    for k in range(5):  # episode k of the batched run is the single env's episode from reset(seed=k)
        episode, expert = data[k], GoalExpert()
        obs, info = env.reset(seed=k)
        expert.reset(env)
        assert int(episode["seed"]) == k and int(episode["scene_seed"]) == info["scene_seed"]
        assert np.array_equal(episode["frames"][0].numpy(), obs["image"]) and np.allclose(episode["poses"][0].numpy(), info["pose"])
        for t in range(int(episode["steps"])):
            action = expert(obs, info)
            obs, reward, terminated, truncated, info = env.step(action)
            assert np.allclose(episode["actions"][t].numpy(), action) and np.isclose(float(episode["rewards"][t]), reward, atol=1e-6)
            assert np.array_equal(episode["frames"][t + 1].numpy(), obs["image"])
            assert np.allclose(episode["obs.pointgoal"][t + 1].numpy(), obs["pointgoal"])
            assert bool(episode["terminated"][t]) == terminated and bool(episode["truncated"][t]) == truncated
        assert terminated or truncated
        assert bool(episode["success"]) == info["success"] and np.isclose(float(episode["spl"]), info["spl"])
        assert np.allclose(episode["goal"].numpy(), info["goal"])
    observations, actions = data.transitions()
    assert observations["image"].shape == (sum(int(data[k]["steps"]) for k in range(5)), 32, 32, 3) and actions.shape[1] == 6


def test_an_interrupted_run_resumes_to_the_uninterrupted_data(tmp_path, monkeypatch):
    whole = RolloutDataset(_collect(tmp_path / "whole"))
    real_run_batch, batches = rollouts._run_batch, []

    def dies_in_the_third_batch(*args):
        batches.append(1)
        if len(batches) == 3:
            raise KeyboardInterrupt
        return real_run_batch(*args)

    monkeypatch.setattr(rollouts, "_run_batch", dies_in_the_third_batch)
    with pytest.raises(KeyboardInterrupt):
        _collect(tmp_path / "cut")
    monkeypatch.setattr(rollouts, "_run_batch", real_run_batch)
    assert len(RolloutDataset(tmp_path / "cut", allow_incomplete=True)) == 4
    with pytest.raises(ValueError, match="interrupted dataset"):
        RolloutDataset(tmp_path / "cut")
    with pytest.raises(FileExistsError, match="--resume"):
        _collect(tmp_path / "cut")
    with pytest.raises(ValueError, match="cannot resume: it was written with metadata"):
        _collect(tmp_path / "cut", resume=True, seed=3)
    resumed = RolloutDataset(_collect(tmp_path / "cut", resume=True))
    assert len(resumed) == 5 and all(_equal(resumed[k], whole[k]) for k in range(5))
    with pytest.raises(FileExistsError, match="already holds a complete dataset"):
        _collect(tmp_path / "cut", resume=True)


def test_a_damaged_or_empty_data_set_is_named(tmp_path):
    folder = _collect(tmp_path / "ds", episodes=2)
    with pytest.raises(FileNotFoundError, match="no index.json"):
        RolloutDataset(tmp_path / "nothing")
    index = json.loads((folder / "index.json").read_text())
    (folder / "index.json").write_text(json.dumps({**index, "version": 2}))
    with pytest.raises(ValueError, match=r"index.json: not a sanawm-rollouts v1 index"):
        RolloutDataset(folder)
    (folder / "index.json").write_text(json.dumps({**index, "num_episodes": 0, "shards": []}))
    with pytest.raises(ValueError, match="index.json: the data set holds no episodes"):
        RolloutDataset(folder)
    (folder / "index.json").write_text(json.dumps(index))
    (folder / "shard-00000.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="shard-00000.safetensors: not a readable safetensors shard"):
        RolloutDataset(folder)
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="holds no dataset of ours"):
        _collect(tmp_path / "user")
    with pytest.raises(ValueError, match="episodes_per_shard must be a positive multiple of num_worlds=2"):
        _collect(tmp_path / "odd", episodes_per_shard=3)
    with pytest.raises(ValueError, match="policy must be 'scripted', 'random'"):
        collect_rollouts(tmp_path / "p", "planner", 1, env="SanaWM-GT-v0", env_kwargs=GT)


def test_learned_world_rollouts_and_the_command_line(tmp_path, capsys, quiet_untrained):
    out = tmp_path / "imagined"
    assert main(["rollouts", "--policy", "random", "--episodes", "3", "--out", str(out), "--task", "explore", "--num-worlds", "2",
                 "--max-steps", "2", "--env-kwargs", "size=tiny", "height=32", "width=32"]) == 0
    data = RolloutDataset(out)
    assert len(data) == 3 and data[2]["frames"].shape == (3, 32, 32, 3) and set(data.observation) == {"image"}
    assert not data[0]["collision"].any() and not data[0]["success"]  # a world without a collision predictor, a task without a goal
    assert main(["rollouts", "--policy", "random", "--episodes", "1", "--out", str(tmp_path / "x"), "--env-kwargs", "size"]) == 2
    assert "--env-kwargs takes KEY=VALUE pairs" in capsys.readouterr().err


def _ppo_config(tmp_path, **kwargs):
    args = dict(num_envs=2, n_steps=32, batch_size=32, n_epochs=1, total_timesteps=64, max_episode_steps=12, out=str(tmp_path),
                task_kwargs=NEAR, env_kwargs={**GT, "height": 40, "width": 40})
    return TrainPPOConfig(**{**args, **kwargs})


def test_behaviour_cloning_lowers_its_loss_and_ppo_goes_on_from_it(tmp_path):
    data = _collect(tmp_path / "ds", episodes=4, env_kwargs={**GT, "height": 40, "width": 40})
    from agents.train_ppo import make_ppo

    model = make_ppo(_ppo_config(tmp_path), tmp_path)
    observations, actions = RolloutDataset(data).transitions()
    losses = behaviour_clone(model.policy, observations, actions, epochs=4, batch_size=16, learning_rate=1e-3)
    assert losses[-1] < losses[0]
    model.get_env().close()

    run = pretrain(PretrainBCConfig(data=str(data), epochs=2, batch_size=16, eval_episodes=1, ppo=_ppo_config(tmp_path)))
    summary = json.loads((run / "pretrain.json").read_text())
    assert len(summary["bc_loss"]) == 2 and set(summary["bc"]) == set(summary["bc_ppo"]) == {"success_rate", "spl", "episodes"}
    assert (run / "bc.zip").is_file() and (run / "model.zip").is_file()


def test_a_policy_or_data_set_of_another_observation_space_is_refused(tmp_path):
    from stable_baselines3 import PPO

    from sanawm_env.sb3 import make_vec_env

    explore = make_vec_env("SanaWM-GT-v0", 1, task="explore", **{**GT, "height": 40, "width": 40})
    PPO("CnnPolicy", explore, n_steps=8, batch_size=8).save(tmp_path / "explore.zip")
    with pytest.raises(ValueError, match=r"explore.zip was trained on the observation space Box.*but the env has Dict"):
        collect_rollouts(tmp_path / "ds", str(tmp_path / "explore.zip"), 1, env="SanaWM-GT-v0", env_kwargs={**GT, "height": 40, "width": 40})
    data = _collect(tmp_path / "small", episodes=2)  # 32 x 32 frames
    with pytest.raises(ValueError, match=r"small: its episodes observe .*32, 32, 3.* but SanaWM-GT-v0 .* observes .*40, 40, 3"):
        pretrain(PretrainBCConfig(data=str(data), ppo=_ppo_config(tmp_path)))
