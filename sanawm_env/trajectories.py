"""Camera paths through a procedural world, for training clips: smooth random 6-DoF motion, forward
walks that turn away from walls, revisit loops that go out and come back to the first pose, and
agent-like paths made of env steps (piecewise-constant 6-DoF motions in the action space's range).

Every path is a sequence of camera-to-world poses (F, 4, 4) float64 sampled at ``fps``, stays out of
the geometry (it moves through ``Scene.resolve_motion``) and is a deterministic function of the
scene and the random generator.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from model.camera import delta_steps

from .common import CAMERA_RADIUS
from .scene import Scene

# An env step of the agent paths: raw frames and the largest motion (the envs' default action scale).
STEP_FRAMES, MAX_TRANSLATION, MAX_ROTATION = 12, 0.5, math.radians(30.0)


def pose_from(position: np.ndarray, yaw: float, pitch: float = 0.0, roll: float = 0.0) -> np.ndarray:
    """Camera-to-world (4, 4): turn ``yaw`` about world y (right is positive), then look up by
    ``pitch``, then roll clockwise by ``roll`` (radians), standing at ``position`` (3,)."""
    cy, sy, cp, sp, cr, sr = math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch), math.cos(roll), math.sin(roll)
    r_yaw = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    r_pitch = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    r_roll = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    out = np.eye(4)
    out[:3, :3] = r_yaw @ r_pitch @ r_roll
    out[:3, 3] = position
    return out


def heading(yaw: float) -> np.ndarray:
    """Unit forward vector on the floor plane for ``yaw``."""
    return np.array([math.sin(yaw), 0.0, math.cos(yaw)])


def _start(scene: Scene, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    pose = scene.spawn_pose(rng, CAMERA_RADIUS).numpy()
    yaw = math.atan2(pose[0, 2], pose[2, 2])
    return pose[:3, 3].copy(), yaw


def _smooth_signal(rng: np.random.Generator, frames: int, fps: float, amplitude: float, max_hz: float = 0.25) -> np.ndarray:
    """A band-limited random signal: a few sinusoids with random frequency and phase."""
    t = np.arange(frames) / fps
    out = np.zeros(frames)
    for _ in range(3):
        out += np.sin(2 * math.pi * rng.uniform(0.02, max_hz) * t + rng.uniform(0, 2 * math.pi))
    return amplitude * out / 3


def _walkable(scene: Scene) -> np.ndarray:
    """(G, G) bool: cells free of walls and of landmarks (with a margin for the camera)."""
    cs = scene.config.cell_size
    free = scene.walls.numpy() == 0
    g = free.shape[0]
    centres = (np.arange(g) + 0.5) * cs
    xs, zs = np.meshgrid(centres, centres)  # [iz, ix]
    reach = cs / 2 + CAMERA_RADIUS
    for x0, _, z0, x1, _, z1 in scene.boxes.tolist():
        free &= ~((xs > x0 - reach) & (xs < x1 + reach) & (zs > z0 - reach) & (zs < z1 + reach))
    for x, z, r in scene.cylinders.tolist():
        free &= (xs - x) ** 2 + (zs - z) ** 2 > (r + reach) ** 2
    for x, _, z, r in scene.spheres.tolist():
        free &= (xs - x) ** 2 + (zs - z) ** 2 > (r + reach) ** 2
    return free


def _route(walkable: np.ndarray, start: tuple[int, int], rng: np.random.Generator) -> list[tuple[int, int]]:
    """Shortest 4-connected route (cells (iz, ix)) from ``start`` to a random reachable cell at
    least 4 cells away (the farthest one if none is)."""
    g = walkable.shape[0]
    parent = {start: start}
    queue, dist = [start], {start: 0}
    for cell in queue:  # breadth-first search; ``queue`` grows while it is read
        iz, ix = cell
        for nz, nx in ((iz + 1, ix), (iz - 1, ix), (iz, ix + 1), (iz, ix - 1)):
            if 0 <= nz < g and 0 <= nx < g and walkable[nz, nx] and (nz, nx) not in parent:
                parent[(nz, nx)] = cell
                dist[(nz, nx)] = dist[cell] + 1
                queue.append((nz, nx))
    far = [c for c in queue if dist[c] >= 4]
    goal = far[int(rng.integers(len(far)))] if far else queue[-1]
    route = [goal]
    while route[-1] != start:
        route.append(parent[route[-1]])
    return route[::-1]


class _Walker:
    """Follows routes between random goals at a walking speed, turning at a bounded rate."""

    def __init__(self, scene: Scene, rng: np.random.Generator, fps: float) -> None:
        self.scene, self.rng = scene, rng
        self.position, self.yaw = _start(scene, rng)
        self.speed = rng.uniform(0.7, 1.3) / fps  # metres per frame
        self.turn_rate = math.radians(90) / fps  # radians per frame
        self.walkable = _walkable(scene)
        self.waypoints: list[np.ndarray] = []
        self._plan()
        if self.waypoints:  # set off facing the route rather than turning on the spot first
            to = self.waypoints[0] - self.position
            self.yaw = math.atan2(to[0], to[2])

    def _plan(self) -> None:
        cs = self.scene.config.cell_size
        cell = (int(self.position[2] // cs), int(self.position[0] // cs))
        self.walkable[cell] = True  # the camera stands there, so it is walkable
        route = _route(self.walkable, cell, self.rng)
        self.waypoints = [np.array([(ix + 0.5) * cs, self.position[1], (iz + 0.5) * cs]) for iz, ix in route[1:]]

    def step(self, speed_scale: float = 1.0, yaw_offset: float = 0.0) -> None:
        """One frame: turn towards the next waypoint (plus ``yaw_offset``), walk when facing it."""
        if not self.waypoints:
            self._plan()
            if not self.waypoints:  # nowhere to go: look around
                self.yaw += self.turn_rate
                return
        to = self.waypoints[0] - self.position
        to[1] = 0.0
        if np.hypot(to[0], to[2]) < 0.3:
            self.waypoints.pop(0)
            return self.step(speed_scale, yaw_offset)
        want = math.atan2(to[0], to[2]) + yaw_offset
        turn = (want - self.yaw + math.pi) % (2 * math.pi) - math.pi
        self.yaw += float(np.clip(turn, -self.turn_rate, self.turn_rate))
        if abs(turn) < math.radians(50):
            step = self.speed * speed_scale * heading(self.yaw)
            self.position, hit = self.scene.resolve_motion(self.position, self.position + step, CAMERA_RADIUS)
            if hit:
                self.waypoints = []


def forward_walk(scene: Scene, rng: np.random.Generator, frames: int, fps: float = 16.0) -> np.ndarray:
    """Walk level at eye height (0.7 to 1.3 m/s) along shortest routes between random places,
    turning smoothly (at most 90 degrees per second) at corners and doorways."""
    walker = _Walker(scene, rng, fps)
    poses = [pose_from(walker.position, walker.yaw)]
    for _ in range(frames - 1):
        walker.step()
        poses.append(pose_from(walker.position, walker.yaw))
    return np.stack(poses)


def smooth_random(scene: Scene, rng: np.random.Generator, frames: int, fps: float = 16.0) -> np.ndarray:
    """A route-following walk with smooth random motion in all six degrees of freedom on top:
    varying speed, weaving, bobbing up and down, pitch (up to 25 degrees) and roll (up to 8)."""
    walker = _Walker(scene, rng, fps)
    speed = 1.0 + _smooth_signal(rng, frames, fps, 0.5)
    weave = _smooth_signal(rng, frames, fps, math.radians(35))
    lateral = _smooth_signal(rng, frames, fps, 0.25)  # m/s
    vertical = _smooth_signal(rng, frames, fps, 0.12)
    pitch = _smooth_signal(rng, frames, fps, math.radians(25))
    roll = _smooth_signal(rng, frames, fps, math.radians(8))
    poses = [pose_from(walker.position, walker.yaw, pitch[0], roll[0])]
    for k in range(1, frames):
        walker.step(speed_scale=speed[k], yaw_offset=weave[k])
        side = np.array([math.cos(walker.yaw), 0.0, -math.sin(walker.yaw)])
        drift = (lateral[k] * side + np.array([0.0, vertical[k], 0.0])) / fps
        walker.position, _ = scene.resolve_motion(walker.position, walker.position + drift, CAMERA_RADIUS)
        poses.append(pose_from(walker.position, walker.yaw, pitch[k], roll[k]))
    return np.stack(poses)


def revisit_loop(scene: Scene, rng: np.random.Generator, frames: int, fps: float = 16.0) -> np.ndarray:
    """Walk out, turn round, walk back along the same positions, and turn to face the way the
    walk began: the last pose equals the first, so the last frames revisit the first view."""
    turn = max(2, min(int(fps * 1.25), (frames - 1) // 6))  # frames for each half turn
    out_frames = max(1, (frames - 1 - 2 * turn) // 2 + 1)
    out = forward_walk(scene, rng, out_frames, fps)
    yaws = np.arctan2(out[:, 0, 2], out[:, 2, 2])
    positions = out[:, :3, 3]
    poses = list(out)
    end_yaw = float(yaws[-1])
    for k in range(1, turn + 1):
        poses.append(pose_from(positions[-1], end_yaw + math.pi * k / turn))
    for i in range(out_frames - 2, -1, -1):  # back along the recorded positions, facing the way home
        poses.append(pose_from(positions[i], float(yaws[i + 1]) + math.pi))
    # Turn to the first pose's heading; the last frame is the first pose exactly.
    start_yaw = float(yaws[0])
    back_yaw = float(yaws[1] if out_frames > 1 else yaws[0]) + math.pi
    diff = (start_yaw - back_yaw + math.pi) % (2 * math.pi) - math.pi
    for k in range(1, turn + 1):
        poses.append(pose_from(positions[0], back_yaw + diff * k / turn))
    poses[-1] = out[0].copy()
    while len(poses) < frames:  # rounding: hold the final pose
        poses.append(out[0].copy())
    return np.stack(poses[:frames])


def move_camera_frames(scene: Scene, start: np.ndarray, delta: np.ndarray, frames: int,
                       radius: float = CAMERA_RADIUS) -> tuple[np.ndarray, np.ndarray]:
    """The poses (frames, 4, 4) of one env step: the 6-DoF camera-frame ``delta`` (metres, radians)
    spread evenly over ``frames`` raw frames from ``start``; geometry stops the camera and it slides on.
    Returns the poses and, per frame (frames,), whether the move into it hit anything."""
    increments = delta_steps(torch.from_numpy(np.asarray(delta, dtype=np.float64)), frames).numpy()
    poses, hits, current = [], [], start
    for inc in increments:
        nxt = current @ inc
        nxt[:3, 3], hit = scene.resolve_motion(current[:3, 3], nxt[:3, 3], radius)
        hits.append(hit)
        poses.append(nxt)
        current = nxt
    return np.stack(poses), np.array(hits)


def move_camera(scene: Scene, start: np.ndarray, delta: np.ndarray, frames: int, radius: float = CAMERA_RADIUS) -> tuple[np.ndarray, bool]:
    """``move_camera_frames`` with one verdict for the step: the poses and whether it hit anything."""
    poses, hits = move_camera_frames(scene, start, delta, frames, radius)
    return poses, bool(hits.any())


def agent_steps(scene: Scene, rng: np.random.Generator, frames: int, fps: float = 16.0) -> np.ndarray:
    """Moves the way an agent drives the env: steps of ``STEP_FRAMES`` raw frames, each a constant
    6-DoF motion drawn from the action space's range (forward / strafe and yaw up to the full scale,
    vertical motion, pitch and roll small), held for a random number of steps as a policy holds a
    key; pitch is kept within 45 degrees. ``fps`` does not change a step's motion (an action is per step)."""
    pose = scene.spawn_pose(rng, CAMERA_RADIUS).numpy()
    # (dx, dy, dz, droll, dpitch, dyaw), as model.camera.camera_delta takes them.
    scale = np.array([MAX_TRANSLATION, 0.2 * MAX_TRANSLATION, MAX_TRANSLATION, 0.1 * MAX_ROTATION, 0.3 * MAX_ROTATION, MAX_ROTATION])
    poses, action = [pose], np.zeros(6)
    while len(poses) < frames:
        if not action.any() or rng.random() < 0.5:
            action = rng.uniform(-1, 1, 6) * scale
        pitch = math.asin(float(np.clip(-pose[1, 2], -1, 1)))  # y points down: forward with -y looks up
        if abs(pitch) > math.radians(45) and np.sign(action[4]) == np.sign(pitch):
            action[4] = -action[4]
        step, _ = move_camera(scene, pose, action, STEP_FRAMES)
        poses.extend(step)
        pose = step[-1]
    return np.stack(poses[:frames])


TRAJECTORIES: dict[str, Callable[[Scene, np.random.Generator, int, float], np.ndarray]] = {
    "walk": forward_walk,
    "smooth": smooth_random,
    "revisit": revisit_loop,
    "agent": agent_steps,
}


def make_trajectory(kind: str, scene: Scene, rng: np.random.Generator, frames: int, fps: float = 16.0) -> np.ndarray:
    """Poses (frames, 4, 4) of a path of ``kind`` (see ``TRAJECTORIES``)."""
    if kind not in TRAJECTORIES:
        raise ValueError(f"trajectory kind must be one of {sorted(TRAJECTORIES)}, got {kind!r}")
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    return TRAJECTORIES[kind](scene, rng, frames, fps)
