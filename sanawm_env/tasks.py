"""Tasks turn camera motion into rewards. They read poses only, so the same task scores an agent in
the ground-truth world (``SanaWM-GT-v0``) and in the imagined one (``SanaWM-v0``)."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from gymnasium import spaces as gym_spaces

from .common import check_positive_float
from .navigation import FloorGrid, free_positions
from .scene import Scene


@dataclass
class TaskContext:
    """What a task may read at reset besides the start pose."""

    scene: Scene | None  # the procedural world, None for a learned world started from a user's image
    rng: np.random.Generator  # the env's seeded generator: goals are drawn from it
    render: Callable[[np.ndarray], np.ndarray]  # camera-to-world (4, 4) -> the true world's RGB (H, W, 3) uint8
    height: int
    width: int
    camera_radius: float
    goal: np.ndarray | None = None  # reset option 'goal': a floor position (x, z) in metres, else drawn


class Task(Protocol):
    """What an environment asks of a task. A task that adds observation fields (``spaces`` is not
    empty) makes the env's observation a ``Dict`` of ``image`` and those fields."""

    reset_options: tuple[str, ...]  # reset options the task reads (from TaskContext) besides the env's own

    def spaces(self, height: int, width: int) -> dict[str, gym_spaces.Space]:
        """The task's observation fields for images of ``height`` x ``width``; empty for image-only tasks."""

    def reset(self, pose: np.ndarray, context: TaskContext) -> dict[str, Any]:
        """Start an episode at camera-to-world ``pose`` (4, 4); returns info entries."""

    def observe(self) -> dict[str, np.ndarray]:
        """The current values of the fields of ``spaces``."""

    def step(self, poses: np.ndarray, collision: bool) -> tuple[float, bool, dict[str, Any]]:
        """Score one env step from the poses (F, 4, 4) of its raw frames: (reward, terminated, info)."""


class _NoFields:
    """Tasks whose observation is the image alone."""

    reset_options: tuple[str, ...] = ()

    def spaces(self, height: int, width: int) -> dict[str, gym_spaces.Space]:
        return {}

    def observe(self) -> dict[str, np.ndarray]:
        return {}


class FreeRoam(_NoFields):
    """No objective: reward 0, never terminates. For data collection and demos."""

    def reset(self, pose: np.ndarray, context: TaskContext) -> dict[str, Any]:
        return {}

    def step(self, poses: np.ndarray, collision: bool) -> tuple[float, bool, dict[str, Any]]:
        return 0.0, False, {}


class Explore(_NoFields):
    """Reward for reaching floor area not visited before in the episode.

    The floor is divided into square cells of ``cell_size`` metres; each raw frame whose camera
    stands in a new cell earns ``+1``, and a step that bumps into geometry costs
    ``collision_penalty``. ``info["visited_cells"]`` counts the cells seen so far.
    """

    def __init__(self, cell_size: float = 1.0, collision_penalty: float = 0.1) -> None:
        if cell_size <= 0:
            raise ValueError(f"cell_size must be positive, got {cell_size}")
        self.cell_size = cell_size
        self.collision_penalty = collision_penalty
        self._visited: set[tuple[int, int]] = set()

    def _cell(self, pose: np.ndarray) -> tuple[int, int]:
        return math.floor(pose[0, 3] / self.cell_size), math.floor(pose[2, 3] / self.cell_size)

    def reset(self, pose: np.ndarray, context: TaskContext) -> dict[str, Any]:
        self._visited = {self._cell(pose)}
        return {"visited_cells": 1}

    def step(self, poses: np.ndarray, collision: bool) -> tuple[float, bool, dict[str, Any]]:
        before = len(self._visited)
        self._visited.update(self._cell(p) for p in poses)
        reward = float(len(self._visited) - before) - (self.collision_penalty if collision else 0.0)
        return reward, False, {"visited_cells": len(self._visited)}


def floor_position(pose: np.ndarray) -> np.ndarray:
    """The floor position (x, z) of camera-to-world ``pose`` (..., 4, 4)."""
    return pose[..., [0, 2], 3]


def bearing(pose: np.ndarray, target: np.ndarray) -> float:
    """The turn (rad, in [-pi, pi), positive to the right as ``dyaw``) that faces the camera at
    ``pose`` towards the floor position ``target``, measured on the floor plane."""
    forward = pose[[0, 2], 2]  # the camera's z axis projected on the floor
    to = target - floor_position(pose)
    turn = math.atan2(to[0], to[1]) - math.atan2(forward[0], forward[1])
    return (turn + math.pi) % (2 * math.pi) - math.pi


class PointGoal:
    """Reach a goal position on the floor: habitat-lab's PointNav, its success and SPL.

    At reset a goal is drawn on the scene's free floor (``sanawm_env.navigation.FloorGrid``) at a
    shortest-path distance in [``min_distance``, ``max_distance``] metres from the start, or taken
    from the reset option ``goal`` (a floor position (x, z) in metres). The observation gains
    ``pointgoal`` = (distance in metres, angle in radians to turn right to face it), both measured on
    the floor plane from the camera (habitat's GPS+compass goal sensor).

    Reward per step: the decrease of the shortest-path distance to the goal, plus ``slack_reward``,
    plus ``success_reward`` on arrival. The episode terminates with success when the step ends
    within ``success_radius`` metres (shortest path) of the goal. SPL = success x l / max(p, l), with l
    the shortest path from the start and p the length the camera walked on the floor.

    Info: ``distance_to_goal`` (m), ``success``, ``spl`` (0 until success), ``goal`` (x, z). A camera
    off the free floor (a learned world lets it walk through walls) is scored by the straight-line
    distance until it is back on it.
    """

    reset_options = ("goal",)

    def __init__(self, success_radius: float = 0.5, min_distance: float = 1.0, max_distance: float = 8.0,
                 success_reward: float = 2.5, slack_reward: float = -0.01) -> None:
        self.success_radius = check_positive_float("success_radius", success_radius)
        self.min_distance = check_positive_float("min_distance", min_distance)
        self.max_distance = check_positive_float("max_distance", max_distance)
        if self.min_distance > self.max_distance:
            raise ValueError(f"min_distance must be <= max_distance, got {min_distance} > {max_distance}")
        for name, value in (("success_reward", success_reward), ("slack_reward", slack_reward)):
            if not (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        self.success_reward, self.slack_reward = float(success_reward), float(slack_reward)
        self._grids: dict[tuple, FloorGrid] = {}
        self._grid: FloorGrid | None = None
        self._field: np.ndarray | None = None
        self.goal = np.zeros(2)

    def spaces(self, height: int, width: int) -> dict[str, gym_spaces.Space]:
        return {"pointgoal": gym_spaces.Box(np.array([0.0, -math.pi], np.float32), np.array([np.inf, math.pi], np.float32), dtype=np.float32)}

    def reset(self, pose: np.ndarray, context: TaskContext) -> dict[str, Any]:
        scene = context.scene
        if scene is None:
            raise ValueError(f"task {self.name!r} needs a procedural scene to put its goal on: reset with options['scene_seed'] "
                             "(a world started from options['image'] has no floor plan)")
        key = (scene.seed, repr(scene.config), context.camera_radius)
        if key not in self._grids:  # one scene per key: keep only the latest
            self._grids = {key: FloorGrid(scene, context.camera_radius)}
        self._grid = grid = self._grids[key]
        start = floor_position(pose)
        self.goal = self._draw_goal(grid, start, context.rng) if context.goal is None else self._check_goal(context, start)
        self._field = grid.distance_field(self.goal)
        self.shortest = grid.lookup(self._field, start)
        if not math.isfinite(self.shortest):
            raise ValueError(f"options['goal'] {self.goal.tolist()} cannot be reached from the start {start.round(3).tolist()} in scene {scene.seed}")
        self._pose, self._distance = pose, self.shortest
        self.walked, self.success = 0.0, False
        return self._info()

    def observe(self) -> dict[str, np.ndarray]:
        distance = float(np.linalg.norm(self.goal - floor_position(self._pose)))
        return {"pointgoal": np.array([distance, bearing(self._pose, self.goal)], dtype=np.float32)}

    def step(self, poses: np.ndarray, collision: bool) -> tuple[float, bool, dict[str, Any]]:
        path = np.concatenate([floor_position(self._pose)[None], floor_position(poses)])
        self.walked += float(np.linalg.norm(np.diff(path, axis=0), axis=1).sum())
        self._pose = poses[-1]
        before, self._distance = self._distance, self.distance_to_goal(floor_position(self._pose))
        reward = before - self._distance + self.slack_reward
        if self._distance <= self.success_radius and not self.success:
            self.success = True
            reward += self.success_reward
        return float(reward), self.success, self._info()

    def distance_to_goal(self, position: np.ndarray) -> float:
        """Shortest-path distance (m) from the floor position (x, z) to the goal; the straight line off the floor."""
        d = self._grid.lookup(self._field, position)
        return d if math.isfinite(d) else float(np.linalg.norm(self.goal - position))

    def shortest_path(self, position: np.ndarray) -> np.ndarray:
        """Floor positions (K, 2) of the shortest path on the floor grid from ``position`` to the goal
        (the last point); just the goal when ``position`` is off the free floor."""
        path = self._grid.path(self._field, position)
        return np.concatenate([path, self.goal[None]])

    @property
    def name(self) -> str:
        return next(k for k, v in TASKS.items() if v is type(self))

    def _info(self) -> dict[str, Any]:
        spl = self.shortest / max(self.walked, self.shortest) if self.success else 0.0
        return {"distance_to_goal": self._distance, "success": self.success, "spl": float(spl), "goal": self.goal.astype(np.float32)}

    def _draw_goal(self, grid: FloorGrid, start: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        from_start = grid.distance_field(start)
        candidates = np.argwhere(grid.free & (from_start >= self.min_distance) & (from_start <= self.max_distance))
        if not len(candidates):
            raise ValueError(f"no free floor at a shortest-path distance in [min_distance, max_distance] = "
                             f"[{self.min_distance}, {self.max_distance}] m from the start {start.round(3).tolist()}")
        return grid.position(tuple(candidates[int(rng.integers(len(candidates)))]))

    def _check_goal(self, context: TaskContext, start: np.ndarray) -> np.ndarray:
        try:
            goal = np.asarray(context.goal, dtype=np.float64)
        except (TypeError, ValueError):
            goal = None
        if goal is None or goal.shape != (2,) or not np.isfinite(goal).all():
            raise ValueError(f"options['goal'] must be a finite floor position (x, z) in metres, got {context.goal!r}")
        scene = context.scene
        free = free_positions(scene, goal[:1], goal[1:], -scene.config.eye_height, context.camera_radius)[0]
        if not free:
            raise ValueError(f"options['goal'] {goal.tolist()} is off the free floor of scene {scene.seed}: inside or within "
                             f"{context.camera_radius} m of geometry, or outside the scene")
        return goal


class ImageGoal(PointGoal):
    """Reach the place shown by an image: habitat-lab's ImageNav.

    As ``pointgoal`` (goal, rewards, success, SPL, info), but the observation gains ``imagegoal``
    instead of the goal's direction: the true world's image (H, W, 3) uint8 seen by a level camera at
    eye height at the goal, facing a random direction. In the learned world the goal image comes from
    the procedural ground truth of the scene it started in, as a user would photograph a place.
    """

    def spaces(self, height: int, width: int) -> dict[str, gym_spaces.Space]:
        return {"imagegoal": gym_spaces.Box(0, 255, shape=(height, width, 3), dtype=np.uint8)}

    def reset(self, pose: np.ndarray, context: TaskContext) -> dict[str, Any]:
        info = super().reset(pose, context)
        yaw = context.rng.uniform(-math.pi, math.pi)
        goal_pose = np.eye(4)
        goal_pose[:3, :3] = [[math.cos(yaw), 0, math.sin(yaw)], [0, 1, 0], [-math.sin(yaw), 0, math.cos(yaw)]]
        goal_pose[:3, 3] = [self.goal[0], -context.scene.config.eye_height, self.goal[1]]
        self.goal_image = context.render(goal_pose)
        return info

    def observe(self) -> dict[str, np.ndarray]:
        return {"imagegoal": self.goal_image}


TASKS: dict[str, type] = {"explore": Explore, "free": FreeRoam, "imagegoal": ImageGoal, "pointgoal": PointGoal}


def make_task(name: str, **kwargs: Any) -> Task:
    """Build a task by name (see ``TASKS``)."""
    if name not in TASKS:
        raise ValueError(f"task must be one of {sorted(TASKS)}, got {name!r}")
    accepted = [p for p in inspect.signature(TASKS[name]).parameters if p != "self"]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ValueError(f"task_kwargs {unknown} are not arguments of task {name!r}; accepted: {accepted}")
    return TASKS[name](**kwargs)


def task_observation_space(task: Task, image_space: gym_spaces.Box) -> gym_spaces.Space:
    """The env's observation space under ``task``: the image alone, or a ``Dict`` of ``image`` and the
    task's fields (SB3's ``MultiInputPolicy`` takes it)."""
    fields = task.spaces(*image_space.shape[:2])
    return gym_spaces.Dict({"image": image_space, **fields}) if fields else image_space


def task_observation(task: Task, image: np.ndarray) -> np.ndarray | dict[str, np.ndarray]:
    """The observation of ``image`` under ``task`` (see ``task_observation_space``); arrays are copies."""
    fields = task.observe()
    if not fields:
        return image.copy()
    return {"image": image.copy(), **{k: v.copy() for k, v in fields.items()}}
