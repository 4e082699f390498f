"""The evaluation's camera paths, as env actions: three splits, each a deterministic function of the
scene, the start pose and a random generator.

* ``smooth``: walk forward (0.33 to 0.6 m/s) with gentle turns (a slow random heading signal, steered
  by at most 9 degrees per step of 0.75 s towards the heading that stays clear longest), turning on the
  spot only where every heading is blocked.
* ``hard``: actions held for 1 to 3 steps, each drawn from the action space's range: fast turns (up to
  30 degrees per step), strafes, forward and backward moves, and pitch (kept within 40 degrees).
* ``revisit``: a ``smooth`` walk out for half the steps, then back along the same path (each step
  undone in reverse order, the camera facing the way it faced on the way out), ending at the start:
  every pose of the way out is seen again on the way back.

The paths are planned to stay clear of geometry by a margin, so both envs move the camera exactly as
commanded (the ground-truth env would stop it at a wall, the learned world never does) and their poses
agree. ``mirror_actions`` gives the mirrored-turn path (left and right swapped) of a path.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from model.camera import camera_delta

from ..common import CAMERA_RADIUS
from ..scene import Scene
from ..trajectories import MAX_ROTATION, MAX_TRANSLATION, STEP_FRAMES, move_camera

SPLITS = ("smooth", "hard", "revisit")
# Planned paths keep this much more room (metres) than the collision radius: the ground-truth env
# then never touches geometry, also where float rounding differs between the planner and the envs.
CLEARANCE = 0.15
# Action components (dx, dy, dz, droll, dpitch, dyaw) that change sign in the mirror image about the
# camera's vertical plane: strafe, roll and yaw; forward, vertical moves and pitch stay.
MIRROR = np.array([-1.0, 1.0, 1.0, -1.0, 1.0, -1.0])
# Smooth walks: yaw actions tried around the wished heading, the most they turn while walking (0.3 = 9
# degrees per step at the default 30), how many steps ahead they look for walls, and the turn on the
# spot where every heading is blocked (0.6 = 18 degrees per step).
STEER = np.array([0.0, -0.1, 0.1, -0.2, 0.2, -0.3, 0.3])
MAX_SMOOTH_TURN = 0.3
LOOKAHEAD = 8
SPIN = 0.6


class _Planner:
    """Integrates actions from the start pose; a step is free when it keeps ``CLEARANCE`` to geometry."""

    def __init__(self, scene: Scene, start: np.ndarray, frames_per_step: int, step_scale: np.ndarray) -> None:
        self.scene, self.pose = scene, np.asarray(start, dtype=np.float64)
        self.frames_per_step, self.step_scale = frames_per_step, np.asarray(step_scale, dtype=np.float64)

    def reach(self, action: np.ndarray, steps: int = 1, pose: np.ndarray | None = None) -> int:
        """How many times in a row (up to ``steps``) ``action`` can be taken from ``pose`` (the current
        pose if None) keeping clear of geometry."""
        pose = self.pose if pose is None else pose
        for k in range(steps):
            poses, hit = move_camera(self.scene, pose, _delta(action, self.step_scale), self.frames_per_step, CAMERA_RADIUS + CLEARANCE)
            if hit:
                return k
            pose = poses[-1]
        return steps

    def take(self, action: np.ndarray) -> np.ndarray:
        action = np.asarray(action, dtype=np.float32)
        poses, _ = move_camera(self.scene, self.pose, _delta(action, self.step_scale), self.frames_per_step, CAMERA_RADIUS)
        self.pose = poses[-1]
        return action


def _delta(action: np.ndarray, step_scale: np.ndarray) -> np.ndarray:
    # As the envs do: the float32 action, clipped, in float64 times the per-step limits.
    return np.clip(np.asarray(action, dtype=np.float32).astype(np.float64), -1.0, 1.0) * step_scale


def _smooth(planner: _Planner, rng: np.random.Generator, steps: int) -> list[np.ndarray]:
    speed = rng.uniform(0.5, 0.9)  # of max_translation per step: 0.33 to 0.6 m/s at the defaults
    t = np.arange(steps)
    periods, phases = rng.uniform(8, 30, 2), rng.uniform(0, 2 * math.pi, 2)
    wish = 0.1 * sum(np.sin(2 * math.pi * t / p + f) for p, f in zip(periods, phases))  # |yaw| <= 0.2: 6 deg per step
    actions, side = [], 0.0
    for k in range(steps):
        # Steer towards the heading whose arc stays clear the longest, so the walk bends away from
        # walls and along corridors early; among equals, the one nearest the wish.
        turns = np.clip(wish[k] + STEER, -MAX_SMOOTH_TURN, MAX_SMOOTH_TURN)
        reach = [planner.reach(np.array([0, 0, speed, 0, 0, y]), LOOKAHEAD) for y in turns]
        best = max(range(len(turns)), key=lambda i: (reach[i], -abs(turns[i] - wish[k])))
        if reach[best] > 0:
            actions.append(planner.take(np.array([0, 0, speed, 0, 0, turns[best]])))
            side = 0.0
            continue
        if not side:  # cornered: turn on the spot towards the side that opens up sooner
            side = max((-1.0, 1.0), key=lambda d: planner.reach(np.array([0, 0, speed, 0, 0, 0]), LOOKAHEAD,
                                                                  planner.pose @ _turned(d * math.pi / 2)))
        actions.append(planner.take(np.array([0, 0, 0, 0, 0, SPIN * side])))
    return actions


def _turned(yaw: float) -> np.ndarray:
    """The camera-frame transform (4, 4) of a turn by ``yaw`` radians (right is positive)."""
    return camera_delta(torch.tensor([0.0, 0, 0, 0, 0, yaw], dtype=torch.float64)).numpy()


def _pitch(pose: np.ndarray) -> float:
    """Upward pitch (radians) of a camera-to-world pose; world y points down."""
    return math.asin(float(np.clip(-pose[1, 2], -1.0, 1.0)))


def _hard(planner: _Planner, rng: np.random.Generator, steps: int) -> list[np.ndarray]:
    max_pitch = math.radians(40)
    actions: list[np.ndarray] = []
    while len(actions) < steps:
        hold = int(rng.integers(1, 4))
        for _ in range(10):  # redraw a motion that would hit something
            action = np.array([rng.uniform(-1, 1), 0, rng.uniform(-0.5, 1), 0, rng.uniform(-0.5, 0.5), rng.uniform(-1, 1)])
            if planner.reach(action):
                break
        else:  # turning on the spot always fits
            action[:3] = 0
        for _ in range(min(hold, steps - len(actions))):
            if abs(_pitch(planner.pose) + action[4] * planner.step_scale[4]) > max_pitch:  # tip back instead
                action = action.copy()
                action[4] = -action[4]
            if not planner.reach(action):
                action = action.copy()
                action[:3] = 0
            actions.append(planner.take(action))
    return actions


def undo_action(action: np.ndarray, step_scale: np.ndarray) -> np.ndarray:
    """The action that takes the camera back from where ``action`` took it, through the same poses in
    reverse: the negated rotation, and the translation turned into the frame the camera ends in.

    An action moves the camera by ``[R | t]`` (its rotation and translation in the start frame, spread
    over the step); undoing it needs ``[R^T | -R^T t]``, i.e. rotation vector ``-w`` and translation
    ``-R^T t``. The translation's length is unchanged, so a translation within the unit ball in action
    units stays within [-1, 1].
    """
    delta = _delta(action, step_scale)
    rotation = camera_delta(torch.from_numpy(delta)).numpy()[:3, :3]
    back = np.concatenate([-rotation.T @ delta[:3], -delta[3:]])
    return (back / step_scale).astype(np.float32)


def _revisit(planner: _Planner, rng: np.random.Generator, steps: int) -> list[np.ndarray]:
    out = _smooth(planner, rng, steps // 2)
    # An odd number of steps holds still at the far end, so the path is a palindrome of poses either way.
    middle = [np.zeros(6, dtype=np.float32)] * (steps % 2)
    return out + middle + [undo_action(a, planner.step_scale) for a in reversed(out)]


PLANNERS: dict[str, Callable[[_Planner, np.random.Generator, int], list[np.ndarray]]] = {
    "smooth": _smooth,
    "hard": _hard,
    "revisit": _revisit,
}


def plan_actions(split: str, scene: Scene, start: np.ndarray, steps: int, rng: np.random.Generator,
                 frames_per_step: int = STEP_FRAMES, step_scale: np.ndarray | None = None) -> np.ndarray:
    """Actions (steps, 6) float32 in [-1, 1] of a ``split`` path (one of ``SPLITS``) from the camera
    pose ``start`` (4, 4) in ``scene``, for envs of ``frames_per_step`` raw frames per step whose
    action 1 moves ``step_scale`` (6,) = (metres x 3, radians x 3); the envs' defaults if None."""
    if split not in PLANNERS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    if steps < (2 if split == "revisit" else 1):
        raise ValueError(f"a {split!r} path needs at least {2 if split == 'revisit' else 1} steps, got {steps}")
    if step_scale is None:
        step_scale = np.array([MAX_TRANSLATION] * 3 + [MAX_ROTATION] * 3)
    planner = _Planner(scene, start, frames_per_step, step_scale)
    return np.stack(PLANNERS[split](planner, rng, steps)).astype(np.float32)


def mirror_actions(actions: np.ndarray) -> np.ndarray:
    """The mirrored-turn path: each action reflected about the camera's vertical plane (left and right
    swapped: strafe, roll and yaw change sign)."""
    return (np.asarray(actions) * MIRROR).astype(np.float32)
