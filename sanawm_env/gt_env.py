"""``SanaWM-GT-v0``: the ground-truth procedural world, with the spaces of the learned ``SanaWM-v0``."""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.error import ResetNeeded

from model.camera import intrinsics_from_fov

from .common import (CAMERA_RADIUS, RENDER_FPS, action_space, check_action, check_fov, check_options, check_pose_in_scene, check_positive_float,
                     check_positive_int, check_scene_seed, observation_space)
from .render import render
from .scene import Scene, SceneConfig, generate_scene
from .tasks import TaskContext, make_task, task_observation, task_observation_space
from .trajectories import move_camera

RESET_OPTIONS = ("scene_seed", "pose")


class SanaWMGTEnv(gym.Env[np.ndarray, np.ndarray]):
    """A camera moving with six degrees of freedom through a procedural world of rooms and corridors.

    ## Description
    Each episode takes place in a world drawn from a scene seed: a floor plan of rooms joined by
    corridors, walls and floors with their own colours and patterns, some rooms open to the sky, and
    landmarks (crates, pillars, pedestals, monoliths). The world is rendered exactly by a CPU ray
    caster, with metric camera poses, so this environment is the ground truth that the learned world
    ``SanaWM-v0`` imitates: both have the same spaces, so an agent trained in one runs in the other.

    ## Action Space
    ``Box(-1, 1, (6,), float32)``: a camera motion in the camera's own frame (OpenCV axes: x right,
    y down, z forward), scaled by the per-step limits and spread smoothly over the step's
    ``frames_per_step`` raw frames. Values outside [-1, 1] are clipped.

    | Num | Action | Min | Max | Scaled by |
    |-----|--------|-----|-----|-----------|
    | 0 | dx, move right (m) | -1 | 1 | ``max_translation`` |
    | 1 | dy, move down (m) | -1 | 1 | ``max_translation`` |
    | 2 | dz, move forward (m) | -1 | 1 | ``max_translation`` |
    | 3 | droll, clockwise roll (rad) | -1 | 1 | ``max_rotation`` |
    | 4 | dpitch, look up (rad) | -1 | 1 | ``max_rotation`` |
    | 5 | dyaw, turn right (rad) | -1 | 1 | ``max_rotation`` |

    ## Observation Space
    ``Box(0, 255, (height, width, 3), uint8)``: the RGB image of the step's last raw frame. Tasks with
    fields of their own make it a ``Dict`` of ``image`` and those fields:

    | Task | Key | Space |
    |------|-----|-------|
    | ``pointgoal`` | ``pointgoal`` | ``Box([0, -pi], [inf, pi], (2,), float32)``: distance (m) and angle to turn right (rad) to the goal |
    | ``imagegoal`` | ``imagegoal`` | ``Box(0, 255, (height, width, 3), uint8)``: the view from the goal |

    ## Rewards
    From the task (``task=``): ``"explore"`` (default) gives +1 for every 1 m floor cell entered for
    the first time in the episode and -0.1 for a step that bumps into geometry; ``"free"`` gives 0;
    ``"pointgoal"`` and ``"imagegoal"`` give the decrease of the shortest-path distance to the goal,
    -0.01 a step and +2.5 on arrival (see ``sanawm_env.tasks.PointGoal``).

    ## Starting State
    A level camera at eye height (1.5 m) at a random free spot of a random room, facing a random
    direction, in the world of ``options["scene_seed"]`` (drawn from the env's generator if absent),
    or at ``options["pose"]`` (a 4x4 camera-to-world matrix) if given. Navigation tasks draw their goal
    from the env's generator too, or take ``options["goal"]``, a floor position (x, z) in metres.

    ## Episode End
    Termination: on reaching the goal in ``pointgoal`` and ``imagegoal``; never in ``explore`` and
    ``free`` (the camera cannot leave the world).
    Truncation: by the time limit given at registration, 80 steps (60 s of video at 16 fps with the
    default 12 frames per step).

    ## Info
    ``pose`` (4, 4) camera-to-world of the last frame, ``poses`` (F, 4, 4) and ``frames`` (F, H, W, 3)
    of the step's raw frames, ``collision`` (the camera was stopped by geometry), ``intrinsics``
    (fx, fy, cx, cy) in pixels, ``scene_seed``, ``step``, the task's entries, and ``depth`` (F, H, W)
    metric z-depth (inf for sky) when ``return_depth=True``. Poses are in metres; world y points down
    and the floor is y = 0.

    ## Arguments
    ``height``, ``width``: image size (default 64 x 64). ``frames_per_step``: raw frames per step at
    16 fps (default 12 = 0.75 s, one latent chunk of the default world model). ``max_translation``:
    metres per step at action 1 (default 0.5). ``max_rotation``: radians per step at action 1
    (default 30 degrees). ``fov_deg``: horizontal field of view (default 80). ``task``, ``task_kwargs``.
    ``scene``: a ``SceneConfig`` or dict of its fields. ``camera_radius``: the camera's collision
    radius in metres. ``return_depth``. ``render_mode``: ``"rgb_array"`` or None.

    ## Example
    >>> import gymnasium as gym
    >>> import sanawm_env
    >>> env = gym.make("SanaWM-GT-v0")
    >>> obs, info = env.reset(seed=0)
    >>> obs.shape
    (64, 64, 3)
    >>> obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    >>> info["frames"].shape
    (12, 64, 64, 3)
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": RENDER_FPS}

    def __init__(
        self,
        render_mode: str | None = None,
        height: int = 64,
        width: int = 64,
        frames_per_step: int = 12,
        max_translation: float = 0.5,
        max_rotation: float = math.radians(30.0),
        fov_deg: float = 80.0,
        task: str = "explore",
        task_kwargs: dict[str, Any] | None = None,
        scene: SceneConfig | dict[str, Any] | None = None,
        camera_radius: float = CAMERA_RADIUS,
        return_depth: bool = False,
    ) -> None:
        for name, value in (("height", height), ("width", width), ("frames_per_step", frames_per_step)):
            check_positive_int(name, value)
        for name, value in (("max_translation", max_translation), ("max_rotation", max_rotation), ("camera_radius", camera_radius)):
            check_positive_float(name, value)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        self.scene_config = SceneConfig(**scene) if isinstance(scene, dict) else (scene or SceneConfig())
        if camera_radius >= self.scene_config.cell_size / 2:
            raise ValueError(f"camera_radius must be below half a cell ({self.scene_config.cell_size / 2} m), got {camera_radius}")

        self.render_mode = render_mode
        self.height, self.width = int(height), int(width)
        self.frames_per_step = int(frames_per_step)
        self.camera_radius = float(camera_radius)
        self.return_depth = return_depth
        self.step_scale = np.array([max_translation] * 3 + [max_rotation] * 3, dtype=np.float64)
        self.intrinsics = intrinsics_from_fov(check_fov(fov_deg), self.height, self.width)
        self.task = make_task(task, **(task_kwargs or {}))

        self.action_space = action_space()
        self.observation_space = task_observation_space(self.task, observation_space(self.height, self.width))

        self.scene: Scene | None = None
        self._pose: np.ndarray | None = None  # (4, 4) float64 camera-to-world
        self._obs: np.ndarray | None = None
        self._steps = 0

    # ---- Gymnasium API -------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        options = check_options(options, RESET_OPTIONS + self.task.reset_options)
        scene_seed = options.get("scene_seed")
        scene_seed = int(self.np_random.integers(2**31)) if scene_seed is None else check_scene_seed(scene_seed)
        if self.scene is None or self.scene.seed != scene_seed:
            self.scene = generate_scene(int(scene_seed), self.scene_config)
        if options.get("pose") is not None:
            pose = check_pose_in_scene(options["pose"], self.scene, self.camera_radius)
        else:
            pose = self.scene.spawn_pose(self.np_random, self.camera_radius).numpy()
        self._pose = pose
        self._steps = 0
        frames = self._render(pose[None])
        self._obs = frames[0][-1]
        info = self._info(pose[None], frames, collision=False)
        context = TaskContext(self.scene, self.np_random, lambda p: self._render(p[None])[0][0], self.height, self.width,
                              self.camera_radius, options.get("goal"))
        info.update(self.task.reset(pose, context))
        return task_observation(self.task, self._obs), info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._pose is None:
            raise ResetNeeded("call reset() before step()")
        delta = check_action(action) * self.step_scale
        poses, collision = self._move(self._pose, delta)
        self._pose = poses[-1]
        self._steps += 1
        frames = self._render(poses)
        self._obs = frames[0][-1]
        reward, terminated, task_info = self.task.step(poses, collision)
        info = self._info(poses, frames, collision)
        info.update(task_info)
        return task_observation(self.task, self._obs), reward, terminated, False, info

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='rgb_array' to gym.make")
            return None
        if self._obs is None:
            raise ResetNeeded("call reset() before render()")
        return self._obs.copy()

    # ---- helpers -------------------------------------------------------------------------------

    def _move(self, start: np.ndarray, delta: np.ndarray) -> tuple[np.ndarray, bool]:
        """Poses (F, 4, 4) of the step's raw frames; collisions stop the camera and it slides on."""
        return move_camera(self.scene, start, delta, self.frames_per_step, self.camera_radius)

    def _render(self, poses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """RGB (F, H, W, 3) uint8 and z-depth (F, H, W) of cameras ``poses`` (F, 4, 4)."""
        frames = render(self.scene, torch.from_numpy(poses), self.intrinsics, self.height, self.width)
        return frames.rgb.numpy(), frames.depth.numpy()

    def _info(self, poses: np.ndarray, frames: tuple[np.ndarray, np.ndarray], collision: bool) -> dict[str, Any]:
        info = {
            "pose": poses[-1].astype(np.float32),
            "poses": poses.astype(np.float32),
            "frames": frames[0],
            "collision": bool(collision),
            "intrinsics": self.intrinsics.numpy().astype(np.float32),
            "scene_seed": self.scene.seed,
            "step": self._steps,
        }
        if self.return_depth:
            info["depth"] = frames[1]
        return info

