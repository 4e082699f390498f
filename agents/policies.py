"""Policies that ``agents.evaluate`` runs: random, the scripted goal expert, and a saved PPO model.

Each is called as ``policy(observation, info) -> action`` once per step, and ``policy.reset(env)``
at the start of each episode (after ``env.reset``), so a policy may read the episode's task.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from sanawm_env.tasks import PointGoal, bearing, floor_position


class RandomPolicy:
    """Uniform actions from the env's action space, seeded."""

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed

    def reset(self, env: gym.Env) -> None:
        self.space = env.action_space
        if self.seed is not None:
            self.space.seed(self.seed)
            self.seed = None  # seed once: later episodes go on from the same stream

    def __call__(self, observation: Any, info: dict[str, Any]) -> np.ndarray:
        return self.space.sample()


class GoalExpert:
    """Steers by the known camera pose (``info["pose"]``) along the floor grid's shortest path to the
    goal of a ``pointgoal`` or ``imagegoal`` task: it aims at the point ``lookahead`` metres down the
    path, turns towards it and walks forward when facing it within ``max_turn`` radians. Level
    motion only (no pitch, roll or vertical moves)."""

    def __init__(self, lookahead: float = 0.75, max_turn: float = math.radians(35.0)) -> None:
        self.lookahead, self.max_turn = lookahead, max_turn

    def reset(self, env: gym.Env) -> None:
        task = env.unwrapped.task
        if not isinstance(task, PointGoal):
            raise ValueError(f"policy 'expert' needs a goal task (pointgoal or imagegoal), the env runs {type(task).__name__}")
        self.task = task
        max_translation, max_rotation = env.unwrapped.step_scale[2], env.unwrapped.step_scale[5]
        self.max_translation, self.max_rotation = float(max_translation), float(max_rotation)

    def __call__(self, observation: Any, info: dict[str, Any]) -> np.ndarray:
        pose = np.asarray(info["pose"], dtype=np.float64)
        target = self._target(floor_position(pose))
        turn = bearing(pose, target)
        distance = float(np.linalg.norm(target - floor_position(pose)))
        forward = min(distance / self.max_translation, 1.0) * max(math.cos(turn), 0.0) if abs(turn) < self.max_turn else 0.0
        yaw = float(np.clip(turn / self.max_rotation, -1.0, 1.0))
        return np.array([0.0, 0.0, forward, 0.0, 0.0, yaw], dtype=np.float32)

    def _target(self, position: np.ndarray) -> np.ndarray:
        """The point ``lookahead`` metres down the shortest path (the goal when nearer)."""
        path = np.concatenate([position[None], self.task.shortest_path(position)])
        legs = np.linalg.norm(np.diff(path, axis=0), axis=1)
        along = np.cumsum(legs)
        k = int(np.searchsorted(along, self.lookahead))
        if k >= len(legs):
            return path[-1]
        t = (self.lookahead - (along[k] - legs[k])) / max(legs[k], 1e-9)
        return path[k] + t * (path[k + 1] - path[k])


def _channels_first(space: gym.Space) -> gym.Space:
    """``space`` as an SB3 model stores it: images channels-first (SB3 transposes them for its CNNs)."""
    from stable_baselines3.common.preprocessing import is_image_space, is_image_space_channels_first
    from stable_baselines3.common.vec_env import VecTransposeImage

    if isinstance(space, gym.spaces.Dict):
        return gym.spaces.Dict({key: _channels_first(s) for key, s in space.spaces.items()})
    if is_image_space(space) and not is_image_space_channels_first(space):
        return VecTransposeImage.transpose_space(space)
    return space


class PPOPolicy:
    """A PPO model saved by ``agents.train_ppo`` (SB3 ``.zip``), acting deterministically. Refuses a
    model trained on another observation or action space, naming both."""

    def __init__(self, path: str | Path, device: str = "cpu") -> None:
        from stable_baselines3 import PPO

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"policy file {path} does not exist (a .zip saved by agents.train_ppo)")
        try:
            self.model = PPO.load(path, device=device)
        except Exception as error:  # noqa: BLE001  (SB3 raises many kinds for a file that is no model)
            raise ValueError(f"policy file {path} is not an SB3 PPO model: {error}") from error
        self.path = path

    def reset(self, env: gym.Env) -> None:
        for name, ours, theirs in (("observation", _channels_first(env.observation_space), self.model.observation_space),
                                   ("action", env.action_space, self.model.action_space)):
            if ours != theirs:
                raise ValueError(f"policy file {self.path} was trained on the {name} space {theirs}, but the env has {ours}")

    def __call__(self, observation: Any, info: dict[str, Any]) -> np.ndarray:
        action, _ = self.model.predict(observation, deterministic=True)
        return action
