"""Gymnasium environments of SanaWM. Importing this package registers them:

* ``SanaWM-v0``: the learned world (a SANA-WM world model generating the video), with a native
  batched vector env (``gym.make_vec("SanaWM-v0", num_envs=N)``).
* ``SanaWM-GT-v0``: the ground-truth procedural world (exact renderer, metric poses).

``gym.make("sanawm_env:SanaWM-v0")`` imports the package and makes the env in one call.
"""

import gymnasium as gym

from .gt_env import SanaWMGTEnv
from .scene import Scene, SceneConfig, generate_scene
from .snapshots import clone_state, restore_state
from .world_env import SanaWMEnv, SanaWMVectorEnv

__all__ = ["SanaWMEnv", "SanaWMGTEnv", "SanaWMVectorEnv", "Scene", "SceneConfig", "clone_state", "generate_scene", "restore_state"]

# 80 steps of 12 raw frames at 16 fps = 60 s of video, the paper's episode length.
MAX_EPISODE_STEPS = 80

if "SanaWM-GT-v0" not in gym.registry:
    gym.register(id="SanaWM-GT-v0", entry_point="sanawm_env.gt_env:SanaWMGTEnv", max_episode_steps=MAX_EPISODE_STEPS)
if "SanaWM-v0" not in gym.registry:
    gym.register(
        id="SanaWM-v0",
        entry_point="sanawm_env.world_env:SanaWMEnv",
        vector_entry_point="sanawm_env.world_env:SanaWMVectorEnv",
        max_episode_steps=MAX_EPISODE_STEPS,
    )
