"""Gymnasium environments of SanaWM. Importing this package registers them:

* ``SanaWM-GT-v0``: the ground-truth procedural world (exact renderer, metric poses).

``gym.make("sanawm_env:SanaWM-GT-v0")`` imports the package and makes the env in one call.
"""

import gymnasium as gym

from .gt_env import SanaWMGTEnv
from .scene import Scene, SceneConfig, generate_scene

__all__ = ["SanaWMGTEnv", "Scene", "SceneConfig", "generate_scene"]

# 80 steps of 12 raw frames at 16 fps = 60 s of video, the paper's episode length.
GT_MAX_EPISODE_STEPS = 80

if "SanaWM-GT-v0" not in gym.registry:
    gym.register(
        id="SanaWM-GT-v0",
        entry_point="sanawm_env.gt_env:SanaWMGTEnv",
        max_episode_steps=GT_MAX_EPISODE_STEPS,
    )
