"""What the vector envs of both worlds share: Gymnasium's info merge made safe for worlds whose
array infos differ in shape, one world's info out of the merge, and one way to build N worlds of
either env.

A world reset within a step has one frame and one pose (``frames`` (1, H, W, 3), ``poses`` (1, 4, 4))
where the worlds that stepped have a step's worth; Gymnasium's merge assumes one shape per key and
fails. Here such a key becomes an object array of each world's own array (its ``_key`` mask as usual).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, SyncVectorEnv


def world_info(merged: dict[str, Any], i: int) -> dict[str, Any]:
    """World ``i``'s own info from Gymnasium's merged vector info (``key`` stacked, ``_key`` its mask)."""
    info = {}
    for key, value in merged.items():
        if key.startswith("_") or not merged.get(f"_{key}", np.zeros(i + 1, bool))[i]:
            continue
        info[key] = world_info(value, i) if isinstance(value, dict) else value[i]
    return info


class RaggedInfo:
    """Mixin for a ``gym.vector.VectorEnv``: ``_add_info`` turns an array key whose shapes differ
    between the worlds into an object array of each world's own array."""

    def _add_info(self, vector_infos: dict[str, Any], env_info: dict[str, Any], env_num: int) -> dict[str, Any]:
        for key, value in env_info.items():
            stacked = vector_infos.get(key)
            if (isinstance(value, np.ndarray) and isinstance(stacked, np.ndarray) and stacked.dtype != object
                    and stacked.shape[1:] != value.shape):
                ragged = np.full(self.num_envs, None, dtype=object)
                for i in np.flatnonzero(vector_infos[f"_{key}"]):
                    ragged[i] = stacked[i]
                vector_infos[key] = ragged
        return super()._add_info(vector_infos, env_info, env_num)


class SyncWorlds(RaggedInfo, SyncVectorEnv):
    """Gymnasium's ``SyncVectorEnv`` with the ragged info merge (for ``SanaWM-GT-v0``, whose worlds
    end at different steps)."""


def make_vector_env(env_id: str, num_envs: int, autoreset_mode: AutoresetMode, **env_kwargs: Any) -> gym.vector.VectorEnv:
    """``num_envs`` worlds of ``env_id`` as a Gymnasium ``VectorEnv``: ``SanaWM-v0`` batched in one
    model (``SanaWMVectorEnv``, its time limit included), other ids (``SanaWM-GT-v0``) as a
    ``SyncWorlds`` of ``gym.make`` envs. ``env_kwargs`` go to the env."""
    if gym.spec(env_id).vector_entry_point is not None:
        return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", autoreset_mode=autoreset_mode, **env_kwargs)
    return SyncWorlds([lambda: gym.make(env_id, **env_kwargs)] * num_envs, autoreset_mode=autoreset_mode)
