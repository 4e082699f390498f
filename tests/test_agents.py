"""agents/ (issue 16): train_ppo and evaluate end to end on tiny settings, their results files and
errors, and Gymnasium's standard wrappers on our envs."""

import csv
import json
import warnings

import gymnasium as gym
import numpy as np
import pytest

import sanawm_env  # noqa: F401
from agents.evaluate import EvaluateConfig, evaluate
from agents.evaluate import main as evaluate_main
from agents.runs import compose
from agents.train_ppo import TrainPPOConfig, train

FAST_GT = {"height": 64, "width": 64, "frames_per_step": 2}


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="no trained")
        yield


def _summary(folder):
    return json.loads((folder / "summary.json").read_text())


def test_train_ppo_then_evaluate_the_saved_model(tmp_path):
    cfg = compose("train_ppo", TrainPPOConfig, [f"out={tmp_path}", "num_envs=2", "n_steps=64", "batch_size=64", "n_epochs=1",
                                                "total_timesteps=256", "max_episode_steps=20", *[f"+env_kwargs.{k}={v}" for k, v in FAST_GT.items()]])
    run = train(cfg)
    assert run.name.startswith("SanaWM-GT-v0__pointgoal__ppo__0__")
    assert (run / "model.zip").is_file() and list((run / "tb").rglob("events.out.tfevents.*"))
    assert _summary(run)["timesteps"] >= 256 and _summary(run)["policy"] == "MultiInputPolicy"

    result = evaluate(EvaluateConfig(policy=str(run / "model.zip"), episodes=2, max_episode_steps=10, env_kwargs=FAST_GT, out=str(tmp_path)))
    rows = list(csv.DictReader(open(result / "episodes.csv")))
    assert len(rows) == 2 and set(rows[0]) >= {"return", "success", "spl", "shortest_path"}
    assert list((result / "videos").glob("*.mp4"))

    other = EvaluateConfig(policy=str(run / "model.zip"), task="explore", episodes=1, video_episodes=0, env_kwargs=FAST_GT, out=str(tmp_path))
    with pytest.raises(ValueError, match=r"model.zip was trained on the observation space Dict.*but the env has Box"):
        evaluate(other)


def test_ppo_trains_in_the_learned_world(tmp_path):
    cfg = TrainPPOConfig(env="SanaWM-v0", num_envs=2, n_steps=32, batch_size=32, n_epochs=1, total_timesteps=64, max_episode_steps=10,
                         env_kwargs={"size": "tiny", "height": 64, "width": 64}, out=str(tmp_path))
    assert _summary(train(cfg))["timesteps"] >= 64


def test_max_minutes_stops_ppo_early_and_saves_the_model(tmp_path):
    cfg = TrainPPOConfig(num_envs=2, n_steps=32, batch_size=32, n_epochs=1, total_timesteps=100_000, max_episode_steps=10,
                         env_kwargs=FAST_GT, out=str(tmp_path), max_minutes=1e-6)
    run = train(cfg)
    summary = _summary(run)
    assert summary["stopped_by_max_minutes"] and summary["timesteps"] < 100_000 and (run / "model.zip").is_file()


def test_expert_beats_random_in_both_worlds(tmp_path):
    results = {}
    for env, kwargs in (("SanaWM-GT-v0", {"height": 32, "width": 32, "frames_per_step": 4}), ("SanaWM-v0", {"size": "tiny", "height": 32, "width": 32})):
        for policy in ("expert", "random"):
            cfg = EvaluateConfig(env=env, policy=policy, episodes=3, max_episode_steps=25, video_episodes=0, env_kwargs=kwargs, out=str(tmp_path))
            results[env, policy] = _summary(evaluate(cfg))
    for env in ("SanaWM-GT-v0", "SanaWM-v0"):  # the learned world moves the camera as commanded: the expert's path holds there too
        assert results[env, "expert"]["success_rate"] == 1.0 and results[env, "expert"]["spl"] > 0.9
        assert results[env, "random"]["spl"] < 0.5


def test_replay_scores_the_learned_worlds_actions_in_the_true_world(tmp_path):
    # The expert walks the floor grid's path, which has no wall in it: its actions from the learned world
    # reach the goal when replayed in the true world from the same seed (same start and goal).
    cfg = EvaluateConfig(env="SanaWM-v0", policy="expert", episodes=2, max_episode_steps=25, video_episodes=0,
                         env_kwargs={"size": "tiny", "height": 32, "width": 32}, replay_env="SanaWM-GT-v0",
                         replay_env_kwargs={"height": 32, "width": 32, "frames_per_step": 4}, out=str(tmp_path))
    result = evaluate(cfg)
    replay = _summary(result)["replay"]
    assert replay["env"] == "SanaWM-GT-v0" and replay["success_rate"] == 1.0 and replay["spl"] > 0.9
    rows = list(csv.DictReader(open(result / "episodes.csv")))
    assert [r["replay_success"] for r in rows] == ["True", "True"]


def test_bad_configs_are_named(tmp_path, capsys):
    assert evaluate_main(["policy=walker"]) == 2 and "policy must be 'random', 'expert'" in capsys.readouterr().err
    assert evaluate_main(["episodes=0"]) == 2 and "episodes must be positive" in capsys.readouterr().err
    assert evaluate_main(["colour=red"]) == 2 and "colour" in capsys.readouterr().err
    assert evaluate_main(["replay_env=CartPole-v1"]) == 2 and "replay_env must be '' (none) or one of" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="no.zip"):
        evaluate(EvaluateConfig(policy=str(tmp_path / "no.zip"), out=str(tmp_path)))
    (tmp_path / "bad.zip").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not an SB3 PPO model"):
        evaluate(EvaluateConfig(policy=str(tmp_path / "bad.zip"), out=str(tmp_path)))
    with pytest.raises(ValueError, match="env must be one of"):
        TrainPPOConfig(env="CartPole-v1")
    with pytest.raises(ValueError, match="max_minutes must be >= 0"):
        TrainPPOConfig(max_minutes=-1)
    with pytest.raises(ValueError, match="needs a goal task"):
        evaluate(EvaluateConfig(task="explore", episodes=1, video_episodes=0, env_kwargs={"height": 32, "width": 32}, out=str(tmp_path)))


@pytest.mark.parametrize("env_id,kwargs", [("SanaWM-GT-v0", {}), ("SanaWM-v0", {"size": "tiny"})])
def test_gymnasium_standard_wrappers_work(env_id, kwargs, tmp_path):
    env = gym.make(env_id, height=32, width=32, task="explore", render_mode="rgb_array", max_episode_steps=3, **kwargs)
    env = gym.wrappers.RecordVideo(env, str(tmp_path), disable_logger=True)
    env = gym.wrappers.GrayscaleObservation(gym.wrappers.ResizeObservation(env, (16, 16)), keep_dim=True)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (16, 16, 1) and obs.dtype == np.uint8
    for _ in range(3):
        obs, *_ = env.step(env.action_space.sample())
    env.close()
    assert env.observation_space.contains(obs) and list(tmp_path.glob("*.mp4"))


@pytest.mark.parametrize("method", ["cem", "mppi"])
def test_planner_beats_random_on_a_tiny_pointgoal_in_the_true_world(method, tmp_path):
    common = dict(episodes=2, max_episode_steps=25, video_episodes=0, env_kwargs={"height": 32, "width": 32, "frames_per_step": 4}, out=str(tmp_path))
    planner = _summary(evaluate(EvaluateConfig(policy="planner", planner={"method": method, "samples": 16}, **common)))
    random = _summary(evaluate(EvaluateConfig(policy="random", **common)))
    assert planner["success_rate"] == 1.0 and planner["spl"] > random["spl"] + 0.5
    assert planner["planning_seconds_per_step"] > 0


def test_planner_forks_the_learned_world_without_disturbing_it():
    from agents.planning import Planner

    kwargs = dict(size="tiny", height=32, width=32, task="pointgoal")
    env, replay = gym.make("SanaWM-v0", **kwargs), gym.make("SanaWM-v0", **kwargs)
    planner = Planner("cem", horizon=2, samples=4, iterations=1, seed=0)
    obs, info = env.reset(seed=0)
    replay.reset(seed=0)
    planner.reset(env)
    assert planner.forks.forks.worlds.world is env.unwrapped.worlds.world  # one model for the env and its forks
    for _ in range(2):
        action = planner(obs, info)
        obs, reward, _, _, info = env.step(action)
        obs_replay, reward_replay, *_ = replay.step(action)
        assert np.array_equal(obs["image"], obs_replay["image"]) and reward == reward_replay
    with pytest.raises(ValueError, match="elites"):
        Planner(samples=2, elites=4)
