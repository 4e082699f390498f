"""``sanawm rollouts``: run a policy in batched worlds and write its episodes as an offline data set
(``agents.rollout_data``; the format: docs/rollouts.md).

    sanawm rollouts --policy scripted --episodes 256 --out data/expert --task pointgoal --num-worlds 8
    sanawm rollouts --policy runs/agents/<run>/model.zip --episodes 64 --out data/ppo --env SanaWM-GT-v0

Episode k resets with ``seed + k`` (as in ``agents.evaluate``, so both meet the same starts and
goals) and runs in a batch of ``num_worlds`` episodes stepped together: one vector env
(``SanaWMVectorEnv``: one batched forward of the world model for all worlds; ``SanaWM-GT-v0``:
Gymnasium's sync env). A shard holds whole batches, so an interrupted run resumed with ``resume``
starts at the batch after its last finished shard and writes what the uninterrupted run would have.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from tqdm import tqdm

from sanawm_env.common import action_space
from sanawm_env.vector import make_vector_env, world_info

from .evaluate import make_policy
from .policies import PPOPolicy
from .rollout_data import RolloutWriter, observation_spec, stored_key
from .runs import check_common


class _World:
    """World ``i`` of a ``SanaWMVectorEnv`` as a policy's ``reset`` reads a single env: its task, step
    scale and spaces (``env.unwrapped.task`` and so on)."""

    def __init__(self, venv: Any, i: int) -> None:
        self.venv, self.i = venv, i
        self.step_scale = venv.step_scale
        self.action_space = action_space()  # its own, so that a seeded random policy draws from it alone
        self.observation_space = venv.single_observation_space

    @property
    def unwrapped(self) -> _World:
        return self

    @property
    def task(self) -> Any:
        return self.venv.tasks[self.i]


def _policies(name: str, seed: int) -> Callable[[int], Any]:
    """``episode -> policy`` for ``name``: a fresh ``make_policy`` per episode, seeded by the episode
    (so an episode's actions do not depend on the batch it runs in); a PPO model loaded once."""
    if name == "planner":
        raise ValueError("policy must be 'scripted', 'random' or the path of a PPO model.zip; the planner forks a single env "
                         "and cannot run in a batch of worlds")
    if name.endswith(".zip"):
        model = PPOPolicy(name)
        return lambda episode: model
    make_policy(name, seed)  # an unknown name fails here, before any world is built
    return lambda episode: make_policy(name, seed + episode)


class _Episode:
    """One episode's arrays as it runs (``agents.rollout_data``'s keys)."""

    def __init__(self, seed: int, observation: Any, info: dict[str, Any], keys: list[str]) -> None:
        self.keys = keys
        self.arrays: dict[str, list] = {key: [] for key in ("poses", "actions", "rewards", "terminated", "truncated", "collision",
                                                            *map(stored_key, keys))}
        self.seed, self.scene_seed = seed, int(info["scene_seed"])
        self._observe(observation, info)

    def _observe(self, observation: Any, info: dict[str, Any]) -> None:
        values = observation if isinstance(observation, dict) else {"image": observation}
        for key in self.keys:
            self.arrays[stored_key(key)].append(values[key])
        self.arrays["poses"].append(np.asarray(info["pose"], dtype=np.float32))

    def step(self, action: np.ndarray, observation: Any, reward: float, terminated: bool, truncated: bool, info: dict[str, Any]) -> None:
        for key, value in (("actions", np.clip(action, -1, 1).astype(np.float32)), ("rewards", np.float32(reward)),
                           ("terminated", bool(terminated)), ("truncated", bool(truncated)), ("collision", bool(info["collision"]))):
            self.arrays[key].append(value)
        self._observe(observation, info)
        self.final = info

    def arrays_of(self) -> dict[str, np.ndarray]:
        episode = {key: np.stack(values) for key, values in self.arrays.items()}
        episode.update(steps=np.int64(len(self.arrays["actions"])), seed=np.int64(self.seed), scene_seed=np.int64(self.scene_seed),
                       success=np.bool_(self.final.get("success", False)), spl=np.float32(self.final.get("spl", 0.0)))
        if "goal" in self.final:
            episode["goal"] = np.asarray(self.final["goal"], dtype=np.float32)
        return episode


def _observation(observations: Any, i: int) -> Any:
    return {k: v[i] for k, v in observations.items()} if isinstance(observations, dict) else observations[i]


def collect_rollouts(out: str | Path, policy: str, episodes: int, env: str = "SanaWM-v0", task: str = "pointgoal",
                     task_kwargs: dict[str, Any] | None = None, env_kwargs: dict[str, Any] | None = None, num_worlds: int = 4,
                     seed: int = 0, max_steps: int = 80, episodes_per_shard: int | None = None, resume: bool = False,
                     progress: bool = True) -> Path:
    """Run ``episodes`` episodes of ``policy`` (``scripted``, ``random`` or a PPO ``model.zip``) in
    ``env`` under ``task`` and write them to the folder ``out``; returns it.

    ``num_worlds`` episodes step together; ``episodes_per_shard`` (a multiple of ``num_worlds``;
    default the multiple nearest 64 from below, at least ``num_worlds``) go into one shard; each
    episode ends at the task's end or after ``max_steps`` steps. ``resume`` continues an interrupted
    run in ``out`` (same arguments). ``env_kwargs`` go to ``gym.make`` (``size``, ``checkpoint``,
    ``height``, ...).
    """
    check_common(env, seed, {"episodes": episodes, "num_worlds": num_worlds, "max_steps": max_steps})
    per_shard = num_worlds * max(1, 64 // num_worlds) if episodes_per_shard is None else episodes_per_shard
    if per_shard <= 0 or per_shard % num_worlds:
        raise ValueError(f"episodes_per_shard must be a positive multiple of num_worlds={num_worlds} (a shard holds whole batches), "
                         f"got {per_shard}")
    policies = _policies(policy, seed)
    task_kwargs, env_kwargs = dict(task_kwargs or {}), dict(env_kwargs or {})
    venv = make_vector_env(env, num_worlds, AutoresetMode.NEXT_STEP, task=task, task_kwargs=task_kwargs, max_episode_steps=max_steps,
                           **env_kwargs)
    metadata = {"policy": policy, "seed": seed, "max_steps": max_steps, "num_worlds": num_worlds, "task_kwargs": task_kwargs,
                "env_kwargs": {k: str(v) for k, v in env_kwargs.items()}}
    writer = RolloutWriter(out, env, task, venv.single_observation_space, metadata, per_shard, resume)
    keys = list(observation_spec(venv.single_observation_space))
    worlds = [venv.envs[i] if hasattr(venv, "envs") else _World(venv, i) for i in range(num_worlds)]
    start = writer.num_episodes
    with tqdm(total=episodes, initial=start, desc=f"{env} rollouts", unit="episode", disable=not progress) as bar:
        for first in range(start, episodes, num_worlds):
            batch = list(range(first, first + num_worlds))  # episodes past the end run with the batch and are dropped
            for episode in _run_batch(venv, worlds, policies, batch, seed, keys, episodes):
                writer.add(episode)
                bar.update()
    venv.close()
    return writer.close()


def _run_batch(venv: gym.vector.VectorEnv, worlds: list[Any], policies: Callable[[int], Any], batch: list[int], seed: int,
               keys: list[str], episodes: int) -> list[dict[str, np.ndarray]]:
    """Episodes ``batch`` (one per world) stepped together until each has ended; those below ``episodes``, in order."""
    observations, infos = venv.reset(seed=[seed + k for k in batch])
    running = {}
    for i, k in enumerate(batch):
        if k < episodes:
            info = world_info(infos, i)
            running[i] = (policies(k), _Episode(seed + k, _observation(observations, i), info, keys), info)
            running[i][0].reset(worlds[i])
    done: dict[int, dict[str, np.ndarray]] = {}
    while running:
        actions = np.zeros((len(batch), 6), dtype=np.float32)  # worlds whose episode ended idle until the batch ends
        for i, (policy, episode, info) in running.items():
            actions[i] = policy(_observation(observations, i), info)
        observations, rewards, terminated, truncated, infos = venv.step(actions)
        for i in list(running):
            policy, episode, _ = running[i]
            info = world_info(infos, i)
            episode.step(actions[i], _observation(observations, i), rewards[i], terminated[i], truncated[i], info)
            running[i] = (policy, episode, info)
            if terminated[i] or truncated[i]:
                done[i] = running.pop(i)[1].arrays_of()
    return [done[i] for i in sorted(done)]

