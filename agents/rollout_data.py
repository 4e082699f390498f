"""Offline data sets of trajectories, as ``sanawm rollouts`` writes them (the format: docs/rollouts.md).

A data set is a sharded folder (``model.shards``) of format ``sanawm-rollouts`` v1 whose items are
episodes. Episodes differ in length, so a shard concatenates its episodes' steps along the first
axis, and ``steps`` says where each one ends. An episode of T steps holds, in the layout of Minari
(observations at both ends of every step, so T + 1 of them):

| key | shape | dtype | what |
|---|---|---|---|
| ``frames`` | (T + 1, H, W, 3) | uint8 | the image observations, from the reset's on |
| ``obs.<field>`` | (T + 1, ...) | the space's | the task's observation fields (``obs.pointgoal``, ``obs.imagegoal``) |
| ``poses`` | (T + 1, 4, 4) | float32 | camera-to-world of each observation (metres, OpenCV axes) |
| ``actions`` | (T, 6) | float32 | the actions the env executed (clipped to [-1, 1]) |
| ``rewards`` | (T,) | float32 | |
| ``terminated``, ``truncated`` | (T,) | bool | only the last step ends the episode, by one or the other |
| ``collision`` | (T,) | bool | the step's motion was stopped by geometry (``info["collision"]``) |
| ``steps``, ``seed``, ``scene_seed`` | () | int64 | T; the reset's seed; the procedural scene (-1 for none) |
| ``success``, ``spl`` | () | bool, float32 | the task's at the episode's end (False and 0 for tasks without goals) |
| ``goal`` | (2,) | float32 | the goal's floor position (x, z), goal tasks only |

A shard stores the per-observation keys as (sum(T + 1), ...), the per-step keys as (sum(T), ...)
and the per-episode keys as (episodes, ...).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from model.shards import ShardFormat, ShardWriter, open_index, read_shard

PER_OBSERVATION = ("frames", "poses")  # and every "obs.<field>"
PER_STEP = ("actions", "rewards", "terminated", "truncated", "collision")
PER_EPISODE = ("steps", "seed", "scene_seed", "success", "spl")  # and "goal" for goal tasks
REQUIRED = PER_OBSERVATION + PER_STEP + PER_EPISODE
ROLLOUTS = ShardFormat("sanawm-rollouts", 1, "episodes", "sanawm rollouts", "sanawm rollouts --resume",
                       {"env": str, "task": str, "observation": dict, "metadata": dict})


def observation_spec(space: gym.Space) -> dict[str, dict[str, Any]]:
    """The index's ``observation``: shape and dtype of each observation key (``image`` for a Box image)."""
    spaces = space.spaces if isinstance(space, gym.spaces.Dict) else {"image": space}
    return {key: {"shape": list(s.shape), "dtype": str(s.dtype)} for key, s in spaces.items()}


def stored_key(key: str) -> str:
    """Where observation key ``key`` is stored: ``frames`` for the image, ``obs.<key>`` for task fields."""
    return "frames" if key == "image" else f"obs.{key}"


def _kind(key: str) -> str:
    if key in PER_OBSERVATION or key.startswith("obs."):
        return "observation"
    return "step" if key in PER_STEP else "episode"


def pack_episodes(episodes: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """A shard's arrays: per-observation and per-step keys concatenated, per-episode keys stacked."""
    return {key: (np.stack if _kind(key) == "episode" else np.concatenate)([e[key] for e in episodes]) for key in episodes[0]}


class RolloutWriter:
    """Writes episodes into a rollout data set (resumable: see ``model.shards.ShardWriter``).

    ``observation``: the env's single observation space; ``env``, ``task`` and ``metadata`` (how
    the data was made) go into the index, and a resumed run must bring the same.
    """

    def __init__(self, out_dir: str | Path, env: str, task: str, observation: gym.Space, metadata: dict[str, Any],
                 episodes_per_shard: int = 64, resume: bool = False) -> None:
        self.spec = observation_spec(observation)
        settings = {"env": env, "task": task, "observation": self.spec, "metadata": metadata}
        self._writer = ShardWriter(out_dir, ROLLOUTS, settings, episodes_per_shard, resume, pack=pack_episodes)
        self.out_dir = self._writer.out_dir
        self._keys: set[str] | None = None

    @property
    def num_episodes(self) -> int:
        """Episodes written so far (a resumed data set starts with those of its finished shards)."""
        return self._writer.num_items

    def add(self, episode: dict[str, np.ndarray]) -> None:
        """Queue one episode (its arrays by key, as in the module docstring), checked against the format."""
        episode = {k: np.asarray(v) for k, v in episode.items()}
        missing = sorted(set(REQUIRED) - set(episode))
        if missing:
            raise ValueError(f"an episode needs {missing} (it has {sorted(episode)})")
        steps = len(episode["actions"])
        if steps < 1 or int(episode["steps"]) != steps:
            raise ValueError(f"an episode needs at least one step and steps = len(actions), got steps={int(episode['steps'])}, {steps} actions")
        for key, value in episode.items():
            want = {"observation": steps + 1, "step": steps}.get(_kind(key))
            if want is not None and len(value) != want:
                raise ValueError(f"episode key {key!r} must hold {want} entries ({_kind(key)}s), got {len(value)}")
        for key, spec in self.spec.items():
            value = episode.get(stored_key(key))
            if value is None or list(value.shape[1:]) != spec["shape"] or str(value.dtype) != spec["dtype"]:
                raise ValueError(f"episode observation {key!r} must be {spec['dtype']} {spec['shape']} per step, "
                                 f"got {None if value is None else (str(value.dtype), list(value.shape[1:]))}")
        ends = episode["terminated"] | episode["truncated"]
        if not ends[-1] or ends[:-1].any():
            raise ValueError("an episode must end (terminated or truncated) at its last step and at no other")
        if self._keys is not None and set(episode) != self._keys:
            raise ValueError(f"every episode of a data set needs the same keys; got {sorted(episode)} after {sorted(self._keys)}")
        self._keys = set(episode)
        self._writer.add(episode)

    def close(self) -> Path:
        """Write the last shard and mark the data set complete; returns the folder."""
        return self._writer.close()


class RolloutDataset:
    """Reads a rollout data set written by ``sanawm rollouts``; ``dataset[k]`` is episode k as a dict
    of tensors (the module docstring's keys). An empty, interrupted (unless ``allow_incomplete``),
    damaged or other-version data set fails with the file at fault."""

    def __init__(self, root: str | Path, allow_incomplete: bool = False) -> None:
        self.root = Path(root)
        self.index = open_index(self.root, ROLLOUTS, allow_incomplete)
        if self.index["num_episodes"] == 0:
            raise ValueError(f"{self.root / 'index.json'}: the data set holds no episodes")
        self._episodes: list[tuple[Path, int, int, int]] = []  # (shard, row, first step, steps)
        for shard in self.index["shards"]:
            path = self.root / shard["file"]
            steps = read_shard(path, REQUIRED, lambda key: slice(0, shard["episodes"]) if key == "steps" else None)["steps"]
            if len(steps) != shard["episodes"] or (steps < 1).any():
                raise ValueError(f"{path}: 'steps' must hold {shard['episodes']} positive counts (the index's), got {steps.tolist()}")
            starts = np.concatenate([[0], np.cumsum(steps.numpy())[:-1]])
            self._episodes += [(path, row, int(start), int(n)) for row, (start, n) in enumerate(zip(starts, steps.tolist()))]

    @property
    def observation(self) -> dict[str, dict[str, Any]]:
        """Shape and dtype of each observation key (``image`` and the task's fields)."""
        return self.index["observation"]

    def __len__(self) -> int:
        return len(self._episodes)

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        if not -len(self) <= k < len(self):
            raise IndexError(f"episode {k} out of range for {len(self)} episodes")
        path, row, start, steps = self._episodes[k]

        def rows(key: str) -> int | slice:
            kind = _kind(key)
            if kind == "episode":
                return row
            return slice(start + row, start + row + steps + 1) if kind == "observation" else slice(start, start + steps)

        return read_shard(path, REQUIRED, rows)

    def transitions(self) -> tuple[dict[str, np.ndarray] | np.ndarray, np.ndarray]:
        """Every step of every episode as (observation before the step, action): the observations as
        the env gives them (a dict of arrays for a Dict observation) stacked over steps, actions (N, 6)."""
        observations: dict[str, list[np.ndarray]] = {key: [] for key in self.observation}
        actions = []
        for k in range(len(self)):
            episode = self[k]
            for key in observations:
                observations[key].append(episode[stored_key(key)][:-1].numpy())
            actions.append(episode["actions"].numpy())
        stacked = {key: np.concatenate(v) for key, v in observations.items()}
        return (stacked if set(stacked) != {"image"} else stacked["image"]), np.concatenate(actions)
