"""Model-predictive control with CEM or MPPI over action sequences, scored by the task in forks of the world.

    planner = Planner("cem", horizon=4, samples=32)
    obs, info = env.reset(seed=0)
    planner.reset(env)
    obs, reward, terminated, truncated, info = env.step(planner(obs, info))   # replans every step

In ``SanaWM-v0`` the candidates roll out in forks of the current world (``clone_state`` restored into
the ``samples`` worlds of one ``SanaWMVectorEnv`` that shares the env's model, so each look-ahead step
is one batched forward for all candidates). In ``SanaWM-GT-v0`` they roll out exactly, by the true
world's motion and collisions (``move_camera``) under copies of the task, without rendering: the
tasks read poses only. ``seconds_per_step`` holds the planning time of the last step.

Only level motion is planned (forward ``dz`` and turn ``dyaw``; the other four dimensions stay 0):
navigation needs no more, and six dimensions would need many more samples.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import gymnasium as gym
import numpy as np

from sanawm_env.common import check_positive_int
from sanawm_env.trajectories import move_camera

PLANNED = [2, 5]  # action dimensions planned: dz (forward) and dyaw (turn)


class WorldForks:
    """Returns of action sequences in forks of a ``SanaWM-v0`` env (made with ``gym.make``)."""

    def __init__(self, env: gym.Env, samples: int) -> None:
        from sanawm_env import SanaWMVectorEnv

        if env.spec is None:
            raise ValueError("planning in SanaWM-v0 needs an env made with gym.make (its forks are built from env.spec.kwargs)")
        self.env = env.unwrapped
        kwargs = {**env.spec.kwargs, "checkpoint": self.env.worlds.world}  # one model for the env and its forks
        self.forks = SanaWMVectorEnv(num_envs=samples, max_episode_steps=None, **kwargs)

    def returns(self, actions: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        """Summed rewards (N,) of the action sequences ``actions`` (N, H, 6) from the current state."""
        snapshot = self.env.clone_state()
        for i in range(self.forks.num_envs):
            self.forks.restore_state(i, snapshot)
        total, alive = np.zeros(len(actions)), np.ones(len(actions), dtype=bool)
        for h in range(actions.shape[1]):
            _, rewards, terminated, _, _ = self.forks.step(actions[:, h])
            total += np.where(alive, rewards, 0.0)
            alive &= ~terminated
        return total


class GroundTruthForks:
    """Returns of action sequences in ``SanaWM-GT-v0``: exact motion and collisions, copies of the task."""

    def __init__(self, env: gym.Env) -> None:
        self.env = env.unwrapped

    def returns(self, actions: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        env, start = self.env, np.asarray(info["pose"], dtype=np.float64)
        total = np.zeros(len(actions))
        for i, sequence in enumerate(actions):
            task, pose = copy.deepcopy(env.task), start
            for action in sequence:
                poses, collision = move_camera(env.scene, pose, action * env.step_scale, env.frames_per_step, env.camera_radius)
                reward, terminated, _ = task.step(poses, collision)
                total[i], pose = total[i] + reward, poses[-1]
                if terminated:
                    break
        return total


class Planner:
    """CEM or MPPI over ``horizon``-step action sequences, replanning every step, warm-started from the
    previous step's plan shifted by one.

    ``method``: ``"cem"`` (refit a Gaussian to the ``elites`` best of ``samples`` sequences, for
    ``iterations`` rounds) or ``"mppi"`` (average the sequences weighted by exp(return / ``temperature``)).
    ``noise``: the initial standard deviation of the sampled actions.
    """

    def __init__(self, method: str = "cem", horizon: int = 4, samples: int = 32, iterations: int = 2, elites: int = 4,
                 temperature: float = 0.5, noise: float = 0.6, seed: int | None = None) -> None:
        if method not in ("cem", "mppi"):
            raise ValueError(f"method must be 'cem' or 'mppi', got {method!r}")
        for name, value in (("horizon", horizon), ("samples", samples), ("iterations", iterations), ("elites", elites)):
            check_positive_int(name, value)
        if elites > samples:
            raise ValueError(f"elites must be <= samples ({samples}), got {elites}")
        if not temperature > 0 or not noise > 0:
            raise ValueError(f"temperature and noise must be positive, got {temperature}, {noise}")
        self.method, self.horizon, self.samples, self.iterations, self.elites = method, horizon, samples, iterations, elites
        self.temperature, self.noise = temperature, noise
        self.rng = np.random.default_rng(seed)
        self.seconds_per_step = 0.0

    def reset(self, env: gym.Env) -> None:
        from sanawm_env import SanaWMEnv, SanaWMGTEnv

        unwrapped = env.unwrapped
        if isinstance(unwrapped, SanaWMEnv):
            if getattr(self, "_forks_of", None) is not unwrapped:  # the forks' worlds are kept between episodes
                self.forks, self._forks_of = WorldForks(env, self.samples), unwrapped
        elif isinstance(unwrapped, SanaWMGTEnv):
            self.forks = GroundTruthForks(env)
        else:
            raise ValueError(f"policy 'planner' plans in SanaWM-v0 or SanaWM-GT-v0, not {type(unwrapped).__name__}")
        self.mean = np.zeros((self.horizon, len(PLANNED)))

    def __call__(self, observation: Any, info: dict[str, Any]) -> np.ndarray:
        start = time.perf_counter()
        mean, std = self.mean, np.full_like(self.mean, self.noise)
        for _ in range(self.iterations):
            plans = np.clip(mean + std * self.rng.standard_normal((self.samples, *mean.shape)), -1.0, 1.0)
            plans[0] = mean  # keep the current plan among the candidates
            actions = np.zeros((self.samples, self.horizon, 6), dtype=np.float32)
            actions[..., PLANNED] = plans
            returns = self.forks.returns(actions, info)
            if self.method == "cem":
                best = plans[np.argsort(returns)[-self.elites:]]
                mean, std = best.mean(0), best.std(0) + 1e-3
            else:
                weights = np.exp((returns - returns.max()) / self.temperature)
                mean = np.einsum("n,nhd->hd", weights / weights.sum(), plans)
        self.mean = np.concatenate([mean[1:], np.zeros((1, len(PLANNED)))])
        action = np.zeros(6, dtype=np.float32)
        action[PLANNED] = mean[0]
        self.seconds_per_step = time.perf_counter() - start
        return action
