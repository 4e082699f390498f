"""``SanaWM-v0``: the learned world, one environment (``SanaWMEnv``) or many batched (``SanaWMVectorEnv``)."""

from __future__ import annotations

import copy
import math
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.error import ResetNeeded
from gymnasium.vector.utils import batch_space

from model.camera import delta_steps, intrinsics_from_fov
from model.collision import relative_pose
from model.generator import check_compile
from model.precision import world_dtype
from model.rollout import WorldRollout
from model.threads import ThreadPolicy
from model.world import WorldModel, default_world, load_world

from .common import (CAMERA_RADIUS, RENDER_FPS, action_space, check_action, check_device, check_fov, check_nonnegative_int, check_options,
                     check_pose, check_pose_in_scene, check_positive_float, check_positive_int, check_scene_seed, observation_space)
from .render import render
from .scene import Scene, generate_scene
from .tasks import TaskContext, make_task, task_observation, task_observation_space
from .vector import RaggedInfo

RESET_OPTIONS = ("image", "prompt", "scene_seed", "pose", "resize")


def _world(checkpoint: str | WorldModel | None, size: str, height: int, width: int) -> WorldModel:
    if isinstance(checkpoint, WorldModel):
        world = checkpoint
    elif checkpoint is None:
        world = default_world(size, height, width)
    else:
        world = load_world(checkpoint)
        if world.info.size != size:
            raise ValueError(f"{checkpoint}: the checkpoint is a '{world.info.size}' world, but size={size!r} was requested")
    if (world.info.height, world.info.width) != (height, width):
        raise ValueError(f"the world generates {world.info.height} x {world.info.width} frames, but height={height}, width={width} were requested")
    return world


class _WorldEnvBase:
    """Construction, reset and step logic shared by the single and the vector env."""

    def _setup(self, num: int, checkpoint, size, height, width, device, dtype, steps, window, refine_every, refine_window,
               max_translation, max_rotation, fov_deg, task, task_kwargs, timings, threads, collisions, compile) -> None:
        check_positive_int("height", height)
        check_positive_int("width", width)
        check_positive_int("steps", steps)
        check_positive_float("max_translation", max_translation)
        check_positive_float("max_rotation", max_rotation)
        self.thread_policy = ThreadPolicy(threads)
        check_nonnegative_int("refine_every", refine_every)
        check_nonnegative_int("refine_window", refine_window)
        if window is not None:
            check_nonnegative_int("window", window)
        check_compile(compile)
        device = check_device(device)
        dtype = world_dtype(dtype, device)
        world = _world(checkpoint, size, height, width)
        if collisions not in (None, True, False):
            raise ValueError(f"collisions must be None (on when the world has a collision predictor), True or False, got {collisions!r}")
        if collisions and world.collision is None:
            raise ValueError("collisions=True needs a world with a collision predictor (collision.safetensors in its folder; "
                             "agents.train_collision trains one)")
        self.collisions = world.collision is not None if collisions is None else collisions
        fov_deg = check_fov(world.info.fov_deg if fov_deg is None else fov_deg)  # None: the field of view it was trained at
        intrinsics = intrinsics_from_fov(fov_deg, height, width).float()
        self.worlds = WorldRollout(world, num, intrinsics, steps, window, refine_every, refine_window, device, dtype, compile)
        self.height, self.width = height, width
        self.frames_per_step = self.worlds.frames_per_chunk  # one step is one chunk
        self.step_seconds = self.frames_per_step / world.info.fps
        self.step_scale = np.array([max_translation] * 3 + [max_rotation] * 3)
        self.fov_deg = fov_deg
        self.tasks = [make_task(task, **(task_kwargs or {})) for _ in range(num)]
        self._obs: list[np.ndarray | None] = [None] * num
        self._steps = [0] * num
        self.timings = timings

    def _first_frame(self, rng: np.random.Generator, options: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, Scene | None]:
        """The first image, the camera pose it is seen from, and the procedural scene (None for a user image)."""
        image = options.get("image")
        if image is not None:
            image = self._check_image(image, bool(options.get("resize", False)))
            pose = check_pose(options["pose"]) if options.get("pose") is not None else np.eye(4)
            return image, pose, None
        seed = options.get("scene_seed")
        seed = int(rng.integers(2**31)) if seed is None else check_scene_seed(seed)
        scene = generate_scene(seed)
        pose = check_pose_in_scene(options["pose"], scene) if options.get("pose") is not None else scene.spawn_pose(rng, CAMERA_RADIUS).numpy()
        return self._render_true(scene, pose), pose, scene

    def _render_true(self, scene: Scene, pose: np.ndarray) -> np.ndarray:
        """The procedural ground truth's RGB (H, W, 3) uint8 of ``scene`` seen from camera-to-world ``pose``."""
        k = self.worlds.intrinsics.double()
        return render(scene, torch.from_numpy(pose)[None], k, self.height, self.width).rgb[0].numpy()

    def _check_image(self, image: Any, resize: bool) -> np.ndarray:
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"options['image'] must be a uint8 array (H, W, 3), got {image.dtype} {image.shape}")
        if image.shape[:2] != (self.height, self.width):
            if not resize:
                raise ValueError(f"options['image'] must be {self.height} x {self.width} (H x W), got {image.shape[0]} x {image.shape[1]}; "
                                 "pass options['resize']=True to resize it")
            from PIL import Image

            image = np.asarray(Image.fromarray(image).resize((self.width, self.height), Image.BILINEAR))
        return np.ascontiguousarray(image)

    def _reset_world(self, i: int, rng: np.random.Generator, options: dict[str, Any] | None) -> dict[str, Any]:
        options = check_options(options, RESET_OPTIONS + self.tasks[i].reset_options)
        if options.get("prompt") is not None:
            raise ValueError("options['prompt']: this world has no text encoder; it generates from images alone")
        image, pose, scene = self._first_frame(rng, options)
        with torch.inference_mode(), self.thread_policy.scope():
            self.worlds.start(i, image, pose, rng)
        self._obs[i] = image
        self._steps[i] = 0
        info = {"pose": pose.astype(np.float32), "poses": pose[None].astype(np.float32), "frames": image[None],
                "collision": False, "refined": False, "scene_seed": -1 if scene is None else scene.seed, "step": 0,
                "intrinsics": self.worlds.intrinsics.numpy().copy()}
        render_true = None if scene is None else (lambda p: self._render_true(scene, p))
        context = TaskContext(scene, rng, render_true, self.height, self.width, CAMERA_RADIUS, options.get("goal"))
        info.update(self.tasks[i].reset(pose, context))
        return info

    def _camera_path(self, start: np.ndarray, delta: np.ndarray, moving: int | None = None) -> np.ndarray:
        """Poses (F, 4, 4) of the step's raw frames: the 6-DoF ``delta`` (metres, radians) spread
        evenly over them from the ``start`` pose; with ``moving``, only the first ``moving`` frames
        translate (the camera stops at a contact and goes on turning, as a sphere stopped by a wall)."""
        increments = delta_steps(torch.from_numpy(delta), self.frames_per_step).numpy()
        if moving is not None:
            increments[moving:, :3, 3] = 0.0
        poses = np.empty((self.frames_per_step, 4, 4))
        pose = start
        for k, increment in enumerate(increments):
            pose = pose @ increment
            poses[k] = pose
        return poses

    def _contacts(self, indices: list[int], deltas: np.ndarray) -> list[int | None]:
        """Per world, the raw frames that move before the contact the collision predictor foresees for
        its motion ``deltas`` (n, 6) from its current pose (read with the world's first frame, the one true
        view it has: ``model.collision``); None where it foresees none (or is off)."""
        if not self.collisions:
            return [None] * len(indices)
        slots, device = [self.worlds.slots[i] for i in indices], self.worlds.device
        first = torch.from_numpy(np.stack([s.first_image for s in slots])).to(device)
        c2w = torch.from_numpy(np.stack([s.pose for s in slots]))
        pose = relative_pose(torch.from_numpy(np.stack([s.first_c2w for s in slots])), c2w).to(device)  # in frame 0's camera
        gravity = torch.from_numpy(np.stack([s.pose[1, :3] for s in slots])).to(device)  # world +y, camera frame
        predictor = self.worlds.world.collision
        with torch.inference_mode(), self.thread_policy.scope():
            prob, free = predictor.predict(first, pose, gravity, torch.from_numpy(deltas).to(device))
        return [round(float(f) * self.frames_per_step) if p >= predictor.config.threshold else None for p, f in zip(prob, free)]

    def _step_worlds(self, indices: list[int], actions: np.ndarray) -> list[tuple[np.ndarray, float, bool, dict]]:
        deltas = np.stack([check_action(a) * self.step_scale for a in actions])
        moving = self._contacts(indices, deltas)
        poses = np.stack([self._camera_path(self.worlds.slots[i].pose, d, m) for i, d, m in zip(indices, deltas, moving)])
        with torch.inference_mode(), self.thread_policy.scope():
            out = self.worlds.step(indices, poses)
        results = []
        for row, i in enumerate(indices):
            self._steps[i] += 1
            self._obs[i] = out.frames[row, -1]
            collision = moving[row] is not None
            reward, terminated, task_info = self.tasks[i].step(poses[row], collision)
            info = {"pose": poses[row, -1].astype(np.float32), "poses": poses[row].astype(np.float32),
                    "frames": out.frames[row], "collision": collision, "refined": bool(out.refined[row]),
                    "step": self._steps[i], "intrinsics": self.worlds.intrinsics.numpy().copy()}
            if self.timings:
                info["seconds"] = out.seconds
            info.update(task_info)
            results.append((self._observation(i), float(reward), bool(terminated), info))
        return results

    def _observation(self, i: int) -> np.ndarray | dict[str, np.ndarray]:
        return task_observation(self.tasks[i], self._obs[i])

    def _identity(self) -> dict[str, Any]:
        """What a snapshot's state must match: its tensors are shaped and typed by these."""
        info = self.worlds.world.info
        return {"size": info.size, "height": self.height, "width": self.width, "dtype": str(self.worlds.dtype)}

    def _clone(self, i: int) -> dict[str, Any]:
        return {"world": self._identity(), "slot": self.worlds.slots[i].clone(), "obs": self._obs[i].copy(),
                "steps": self._steps[i], "task": copy.deepcopy(self.tasks[i])}

    def _restore(self, i: int, snapshot: dict[str, Any]) -> None:
        if not isinstance(snapshot, dict) or not {"world", "slot", "obs", "steps", "task"} <= set(snapshot):
            raise TypeError("restore_state: snapshot must come from clone_state() of a SanaWM-v0 env")
        if snapshot["world"] != self._identity():
            raise ValueError(f"restore_state: the snapshot is of a world {snapshot['world']}, this env runs {self._identity()}")
        self.worlds.slots[i] = snapshot["slot"].clone()
        self._obs[i] = snapshot["obs"].copy()
        self._steps[i] = snapshot["steps"]
        self.tasks[i] = copy.deepcopy(snapshot["task"])


class SanaWMEnv(_WorldEnvBase, gym.Env[np.ndarray, np.ndarray]):
    """A camera moving with six degrees of freedom through a world imagined by SANA-WM.

    ## Description
    The world model (a hybrid frame-GDN / softmax diffusion transformer with camera control) generates
    the video chunk by chunk from the first image, carrying a fixed-size state, so a step costs the
    same at step 10 and at step 10,000. Same spaces as ``SanaWM-GT-v0``.

    ## Action Space
    ``Box(-1, 1, (6,), float32)`` = (dx, dy, dz, droll, dpitch, dyaw) in the camera frame, scaled by
    ``max_translation`` (m) and ``max_rotation`` (rad) per step and spread over the step's raw frames.

    ## Observation Space
    ``Box(0, 255, (height, width, 3), uint8)``: the last raw frame of the step; a ``Dict`` of ``image``
    and the task's fields for ``pointgoal`` and ``imagegoal``, as in ``SanaWM-GT-v0``.

    ## Step
    One latent chunk (``model.chunks.CHUNK_FRAMES`` = 3 latent frames) = ``3 * temporal_stride`` raw
    frames at 16 fps (12 frames = 0.75 s for the default world), generated by ``model.rollout``.

    ## Rewards, Episode End
    From the task, as in ``SanaWM-GT-v0`` (``explore`` by default). Truncation at the registered limit
    (80 steps = 60 s of video); termination on reaching the goal of ``pointgoal`` and ``imagegoal``,
    whose goals need a procedural start (``scene_seed``) and may be given as ``options["goal"]``.

    ## Starting State
    ``reset(seed=..., options={...})``: ``image`` (uint8 H x W x 3; resized only with ``resize=True``)
    and optionally its ``pose``; otherwise a render of the procedural world ``scene_seed`` (drawn from
    the seed if absent) at a spawn pose. ``prompt`` needs a world with a text encoder.

    ## Info
    ``frames`` (F, H, W, 3) and ``poses`` (F, 4, 4) of the step's raw frames, ``pose``, ``refined``
    (the refiner ran on this chunk), ``intrinsics``, ``collision``, ``step``, the task's entries, and
    ``seconds`` (generation time per world) with ``timings=True`` (off by default: timings differ
    between identical runs).

    ## Collisions
    An imagined world has no geometry to hit. A world folder with a collision predictor
    (``collision.safetensors``, ``model.collision``) stops the camera where it foresees contact, as
    ``SanaWM-GT-v0`` stops it at geometry: from the episode's first frame (the true one), the camera's
    pose relative to it and the step's motion it predicts whether the motion collides and after which
    raw frame; the camera then stops translating there and
    goes on turning, ``info["collision"]`` is True and tasks see the collision (``explore``'s
    penalty). Unlike the true world it does not slide along the wall after the contact. Without a
    predictor (or with ``collisions=False``) the camera follows the commanded motion through
    anything and ``collision`` is always False.

    ## Arguments
    ``checkpoint`` (a world folder; the shipped world if None, untrained with a warning until one is
    installed), ``size``, ``device``, ``dtype`` (``"float32"``, ``"bfloat16"``, ``"float16"``, or ``"auto"``:
    bfloat16 where the device multiplies it natively, a CPU with AMX or a CUDA GPU, float32 elsewhere;
    see ``model.precision``), ``steps`` (denoising steps per chunk), ``window``
    (softmax chunks kept besides the sink; None keeps all), ``refine_every`` (chunks; 0 = off),
    ``refine_window`` (latent frames of refiner context), ``height``, ``width``, ``max_translation``,
    ``max_rotation``, ``fov_deg`` (None: the world's, from its ``world.json``), ``task``, ``task_kwargs``, ``timings``,
    ``threads`` (CPU threads of the world's forward passes: ``"auto"`` leaves out the cores other
    processes keep busy, an int fixes the count for bitwise-reproducible runs; None reads
    ``SANAWM_NUM_THREADS``, default ``"auto"``; see ``model.threads``), ``collisions`` (None: on when
    the world has a collision predictor; True requires one; False: off), ``compile`` (compile the
    world's streaming pass with ``torch.compile``: faster steps from the fourth on, after the third
    has compiled, which takes a minute or more on a small CPU and is cached on disk; ``"all"`` also
    compiles the first two steps' shapes, several minutes more, for vector envs whose worlds restart
    often; see ``model.compiled``), ``render_mode``.

    ## Planning
    ``clone_state()`` returns a snapshot of the world (fixed size); ``restore_state(s)`` goes back to it.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": RENDER_FPS}

    def __init__(self, render_mode: str | None = None, checkpoint: str | WorldModel | None = None, size: str = "small",
                 height: int = 64, width: int = 64, device: str = "cpu", dtype: str = "float32", steps: int = 4,
                 window: int | None = 1, refine_every: int = 0, refine_window: int = 6, max_translation: float = 0.5,
                 max_rotation: float = math.radians(30.0), fov_deg: float | None = None, task: str = "explore",
                 task_kwargs: dict[str, Any] | None = None, timings: bool = False, threads: int | str | None = None,
                 collisions: bool | None = None, compile: bool | str = False) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        self.render_mode = render_mode
        self._setup(1, checkpoint, size, height, width, device, dtype, steps, window, refine_every, refine_window,
                    max_translation, max_rotation, fov_deg, task, task_kwargs, timings, threads, collisions, compile)
        self.action_space = action_space()
        self.observation_space = task_observation_space(self.tasks[0], observation_space(height, width))

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        info = self._reset_world(0, self.np_random, options)
        return self._observation(0), info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._obs[0] is None:
            raise ResetNeeded("call reset() before step()")
        obs, reward, terminated, info = self._step_worlds([0], np.asarray(action)[None])[0]
        return obs, reward, terminated, False, info

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='rgb_array' to gym.make")
            return None
        if self._obs[0] is None:
            raise ResetNeeded("call reset() before render()")
        return self._obs[0].copy()

    @property
    def task(self) -> Any:
        """The episode's task (``sanawm_env.tasks``), as ``SanaWMGTEnv.task``."""
        return self.tasks[0]

    def clone_state(self) -> dict[str, Any]:
        """A snapshot of the world (model state, decoder cache, pose, random generator, task). Under
        ``gym.make``, ``sanawm_env.clone_state(env)`` also takes the wrappers' counters."""
        if self._obs[0] is None:
            raise ResetNeeded("call reset() before clone_state()")
        return self._clone(0)

    def restore_state(self, snapshot: dict[str, Any]) -> None:
        """Go back to a ``clone_state()`` snapshot (it can be restored again later)."""
        self._restore(0, snapshot)
        self.np_random = self.worlds.slots[0].rng


class SanaWMVectorEnv(RaggedInfo, _WorldEnvBase, gym.vector.VectorEnv):
    """``num_envs`` learned worlds stepped in one batched forward (``gym.make_vec("SanaWM-v0", num_envs=N)``).

    Autoreset follows Gymnasium's next-step mode by default: the step after a world ends resets it
    (its observation is the new first frame, reward 0). With ``autoreset_mode=AutoresetMode.SAME_STEP`` a world
    that ends is reset within the step that ended it, as Gymnasium's ``SyncVectorEnv`` does in that
    mode: the observation is the new first frame, and ``info["final_obs"]`` / ``info["final_info"]``
    (masked by ``_final_obs`` / ``_final_info``) hold the last observation and info of the episode
    (the convention of SB3, see ``sanawm_env.sb3``). When worlds that step and worlds that reset
    differ in their ``frames`` and ``poses`` (a step's raw frames against one), those info keys are
    object arrays of each world's own array. Keyword arguments as ``SanaWMEnv``, plus
    ``max_episode_steps`` for the per-world time limit.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": RENDER_FPS, "autoreset_mode": gym.vector.AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int = 1, max_episode_steps: int | None = 80, render_mode: str | None = None,
                 autoreset_mode: str | gym.vector.AutoresetMode = gym.vector.AutoresetMode.NEXT_STEP, **kwargs: Any) -> None:
        check_positive_int("num_envs", num_envs)
        modes = (gym.vector.AutoresetMode.NEXT_STEP, gym.vector.AutoresetMode.SAME_STEP)
        if autoreset_mode not in modes and autoreset_mode not in [m.value for m in modes]:
            raise ValueError(f"autoreset_mode must be one of {[m.value for m in modes]}, got {autoreset_mode!r}")
        self.autoreset_mode = gym.vector.AutoresetMode(autoreset_mode)
        self.metadata = {**self.metadata, "autoreset_mode": self.autoreset_mode}
        self.num_envs = num_envs
        self.render_mode = render_mode
        if max_episode_steps is not None:
            check_positive_int("max_episode_steps", max_episode_steps)
        self.max_episode_steps = max_episode_steps
        defaults = dict(checkpoint=None, size="small", height=64, width=64, device="cpu", dtype="float32", steps=4, window=1,
                        refine_every=0, refine_window=6, max_translation=0.5, max_rotation=math.radians(30.0), fov_deg=None,
                        task="explore", task_kwargs=None, timings=False, threads=None, collisions=None, compile=False)
        unknown = sorted(set(kwargs) - set(defaults))
        if unknown:
            raise ValueError(f"unknown keyword argument(s) {unknown}; accepted: {sorted(defaults)}")
        defaults.update(kwargs)
        self._setup(num_envs, **defaults)
        self.single_action_space = action_space()
        self.single_observation_space = task_observation_space(self.tasks[0], observation_space(defaults["height"], defaults["width"]))
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self._rngs: list[np.random.Generator] = [np.random.default_rng() for _ in range(num_envs)]
        self._needs_reset = np.zeros(num_envs, dtype=bool)

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        seeds = seed if isinstance(seed, list) else [None if seed is None else seed + i for i in range(self.num_envs)]
        if len(seeds) != self.num_envs:
            raise ValueError(f"seed must be an int or a list of {self.num_envs} seeds, got {len(seeds)}")
        infos = []
        for i, s in enumerate(seeds):
            self._rngs[i], _ = gym.utils.seeding.np_random(s)
            infos.append(self._reset_world(i, self._rngs[i], options))
        self._needs_reset[:] = False
        return self._observations(), self._merge(infos)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if any(o is None for o in self._obs):
            raise ResetNeeded("call reset() before step()")
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs, 6):
            raise ValueError(f"actions must have shape (num_envs, 6) = ({self.num_envs}, 6), got {actions.shape}")
        rewards = np.zeros(self.num_envs)
        terminated = np.zeros(self.num_envs, dtype=bool)
        truncated = np.zeros(self.num_envs, dtype=bool)
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        resetting = [i for i in range(self.num_envs) if self._needs_reset[i]]
        for i in resetting:
            infos[i] = self._reset_world(i, self._rngs[i], None)
        stepping = [i for i in range(self.num_envs) if not self._needs_reset[i]]
        if stepping:
            for i, (_, reward, term, info) in zip(stepping, self._step_worlds(stepping, actions[stepping])):
                rewards[i], terminated[i], infos[i] = reward, term, info
                truncated[i] = self.max_episode_steps is not None and self._steps[i] >= self.max_episode_steps
        if self.autoreset_mode == gym.vector.AutoresetMode.SAME_STEP:
            for i in np.flatnonzero(terminated | truncated):
                final = {"final_obs": self._observation(i), "final_info": infos[i]}
                infos[i] = {**self._reset_world(i, self._rngs[i], None), **final}
        else:
            self._needs_reset[:] = terminated | truncated
        return self._observations(), rewards, terminated, truncated, self._merge(infos)

    def _observations(self) -> np.ndarray | dict[str, np.ndarray]:
        """The worlds' observations stacked (per key for a ``Dict`` observation)."""
        observations = [self._observation(i) for i in range(self.num_envs)]
        if isinstance(observations[0], dict):
            return {key: np.stack([o[key] for o in observations]) for key in observations[0]}
        return np.stack(observations)

    def _merge(self, infos: list[dict[str, Any]]) -> dict[str, Any]:
        """Gymnasium's merge (``key`` stacked over the worlds, ``_key`` the mask of those that have
        it), with a ragged key as an object array (``sanawm_env.vector.RaggedInfo``)."""
        merged: dict[str, Any] = {}
        for i, info in enumerate(infos):
            merged = self._add_info(merged, info, i)
        return merged

    def render(self) -> tuple[np.ndarray, ...] | None:
        if self.render_mode is None:
            return None
        return tuple(o.copy() for o in self._obs)

    def clone_state(self, index: int) -> dict[str, Any]:
        """A snapshot of world ``index``."""
        return {**self._clone(index), "needs_reset": bool(self._needs_reset[index])}

    def restore_state(self, index: int, snapshot: dict[str, Any]) -> None:
        """Put world ``index`` back to a snapshot (of any world of the same model)."""
        self._restore(index, snapshot)
        self._rngs[index] = self.worlds.slots[index].rng
        self._needs_reset[index] = snapshot.get("needs_reset", False)
