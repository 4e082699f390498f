"""Stable-Baselines3 on the batched world: a Gymnasium vector env presented as an SB3 ``VecEnv``.

SB3's own ``make_vec_env`` builds one env per worker, so N learned worlds would load N models and
step them one by one. ``SB3VecEnv`` wraps a Gymnasium ``VectorEnv`` instead, so
``SanaWMVectorEnv`` steps all N worlds in one batched forward of one model::

    from stable_baselines3 import PPO
    from sanawm_env.sb3 import make_vec_env

    venv = make_vec_env("SanaWM-v0", num_envs=8, task="pointgoal")   # one model, 8 worlds
    PPO("MultiInputPolicy", venv).learn(10_000)

SB3's conventions hold: a world that ends is reset within the same step, its last observation in
``info["terminal_observation"]``; ``info["TimeLimit.truncated"]`` tells truncation from termination;
``seed()`` and ``set_options()`` apply to the next ``reset()`` only; ``render()`` tiles the worlds'
frames; Dict observations are dicts of batched arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvObs, VecEnvStepReturn

from .vector import make_vector_env, world_info


class SB3VecEnv(VecEnv):
    """An SB3 ``VecEnv`` over a Gymnasium ``VectorEnv`` that autoresets in the same step.

    ``venv``: e.g. ``SanaWMVectorEnv(num_envs=N, autoreset_mode=AutoresetMode.SAME_STEP)`` (see
    ``make_vec_env``) or a ``SyncVectorEnv`` in that mode. Of a batched env without sub-envs,
    ``get_attr``/``env_method`` read or call the one env all worlds share (once, the result repeated
    for each index) and ``set_attr`` sets it for all worlds at once.
    """

    def __init__(self, venv: gym.vector.VectorEnv) -> None:
        mode = venv.metadata.get("autoreset_mode")
        if mode != AutoresetMode.SAME_STEP:
            raise ValueError(f"SB3VecEnv needs a vector env whose autoreset_mode is {AutoresetMode.SAME_STEP} (SB3 resets a world "
                             f"in the step that ends it), got {mode}; make it with sanawm_env.sb3.make_vec_env")
        self.venv = venv
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
        self._actions: np.ndarray | None = None

    def reset(self) -> VecEnvObs:
        options = self._options
        if any(o != options[0] for o in options):
            raise ValueError("set_options: the worlds of one batched env reset with one options dict, got different ones per world")
        seeds = None if all(s is None for s in self._seeds) else list(self._seeds)
        obs, infos = self.venv.reset(seed=seeds, options=options[0] or None)
        self.reset_infos = [world_info(infos, i) for i in range(self.num_envs)]
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, terminated, truncated, merged = self.venv.step(self._actions)
        dones = terminated | truncated
        infos = []
        for i in range(self.num_envs):
            info = world_info(merged, i)
            final_obs, final_info = info.pop("final_obs", None), info.pop("final_info", None)
            if dones[i]:
                self.reset_infos[i] = info
                info = {**final_info, "terminal_observation": final_obs}
            info["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
            infos.append(info)
        return obs, rewards.astype(np.float32), dones, infos

    def close(self) -> None:
        self.venv.close()

    def get_images(self) -> Sequence[np.ndarray | None]:
        images = self.venv.render()
        return [None] * self.num_envs if images is None else list(images)

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        indices = list(self._get_indices(indices))
        if hasattr(self.venv, "envs"):
            return [self.venv.envs[i].get_wrapper_attr(attr_name) for i in indices]
        return [getattr(self.venv, attr_name)] * len(indices)

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        indices = list(self._get_indices(indices))
        if hasattr(self.venv, "envs"):
            for i in indices:
                setattr(self.venv.envs[i], attr_name, value)
        elif sorted(indices) == list(range(self.num_envs)):
            setattr(self.venv, attr_name, value)
        else:
            raise ValueError(f"set_attr({attr_name!r}): the worlds of a batched env share their attributes; set it for all of them (indices=None)")

    def env_method(self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any) -> list[Any]:
        indices = list(self._get_indices(indices))
        if hasattr(self.venv, "envs"):
            return [self.venv.envs[i].get_wrapper_attr(method_name)(*method_args, **method_kwargs) for i in indices]
        return [getattr(self.venv, method_name)(*method_args, **method_kwargs)] * len(indices)

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        from stable_baselines3.common.env_util import is_wrapped

        indices = list(self._get_indices(indices))
        if hasattr(self.venv, "envs"):
            return [is_wrapped(self.venv.envs[i], wrapper_class) for i in indices]
        return [False] * len(indices)


def make_vec_env(env_id: str, num_envs: int, **env_kwargs: Any) -> SB3VecEnv:
    """``num_envs`` worlds of ``env_id`` as an SB3 ``VecEnv`` (``sanawm_env.vector.make_vector_env`` in
    SB3's autoreset mode: ``SanaWM-v0`` batched in one model, ``SanaWM-GT-v0`` as a sync env)."""
    return SB3VecEnv(make_vector_env(env_id, num_envs, AutoresetMode.SAME_STEP, **env_kwargs))
