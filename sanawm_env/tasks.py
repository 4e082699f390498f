"""Tasks turn camera motion into rewards. They read poses only, so the same task scores an agent in
the ground-truth world (``SanaWM-GT-v0``) and in the imagined one (``SanaWM-v0``)."""

from __future__ import annotations

import inspect

import math
from typing import Any, Protocol

import numpy as np


class Task(Protocol):
    """What an environment asks of a task."""

    def reset(self, pose: np.ndarray) -> dict[str, Any]:
        """Start an episode at camera-to-world ``pose`` (4, 4); returns info entries."""

    def step(self, poses: np.ndarray, collision: bool) -> tuple[float, bool, dict[str, Any]]:
        """Score one env step from the poses (F, 4, 4) of its raw frames: (reward, terminated, info)."""


class FreeRoam:
    """No objective: reward 0, never terminates. For data collection and demos."""

    def reset(self, pose: np.ndarray) -> dict[str, Any]:
        return {}

    def step(self, poses: np.ndarray, collision: bool) -> tuple[float, bool, dict[str, Any]]:
        return 0.0, False, {}


class Explore:
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

    def reset(self, pose: np.ndarray) -> dict[str, Any]:
        self._visited = {self._cell(pose)}
        return {"visited_cells": 1}

    def step(self, poses: np.ndarray, collision: bool) -> tuple[float, bool, dict[str, Any]]:
        before = len(self._visited)
        self._visited.update(self._cell(p) for p in poses)
        reward = float(len(self._visited) - before) - (self.collision_penalty if collision else 0.0)
        return reward, False, {"visited_cells": len(self._visited)}


TASKS: dict[str, type] = {"explore": Explore, "free": FreeRoam}


def make_task(name: str, **kwargs: Any) -> Task:
    """Build a task by name (see ``TASKS``)."""
    if name not in TASKS:
        raise ValueError(f"task must be one of {sorted(TASKS)}, got {name!r}")
    accepted = [p for p in inspect.signature(TASKS[name]).parameters if p != "self"]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ValueError(f"task_kwargs {unknown} are not arguments of task {name!r}; accepted: {accepted}")
    return TASKS[name](**kwargs)
