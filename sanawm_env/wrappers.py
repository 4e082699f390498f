"""Wrappers for SanaWM environments: discrete and keyboard actions, and a rollout recorder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from .recording import plot_trajectory, write_video

# (dx, dy, dz, droll, dpitch, dyaw) unit motions; the env scales them by its per-step limits.
MOTIONS: dict[str, tuple[float, ...]] = {
    "stay": (0, 0, 0, 0, 0, 0),
    "forward": (0, 0, 1, 0, 0, 0),
    "back": (0, 0, -1, 0, 0, 0),
    "turn_left": (0, 0, 0, 0, 0, -1),
    "turn_right": (0, 0, 0, 0, 0, 1),
    "look_up": (0, 0, 0, 0, 1, 0),
    "look_down": (0, 0, 0, 0, -1, 0),
    "strafe_left": (-1, 0, 0, 0, 0, 0),
    "strafe_right": (1, 0, 0, 0, 0, 0),
}
KEYS = {"w": "forward", "s": "back", "a": "strafe_left", "d": "strafe_right", "left": "turn_left", "right": "turn_right",
        "up": "look_up", "down": "look_down", "none": "stay"}


class DiscreteActions(gym.ActionWrapper):
    """``Discrete(9)``: stay, forward, back, turn left / right, look up / down, strafe left / right
    (see ``MOTIONS``), each the env's full per-step motion times ``scale``."""

    def __init__(self, env: gym.Env, scale: float = 1.0) -> None:
        super().__init__(env)
        if not 0 < scale <= 1:
            raise ValueError(f"scale must be in (0, 1], got {scale}")
        self.names = list(MOTIONS)
        self.table = np.array([MOTIONS[n] for n in self.names], dtype=np.float32) * scale
        self.action_space = spaces.Discrete(len(self.names))

    def action(self, action: int) -> np.ndarray:
        if not self.action_space.contains(action):
            raise ValueError(f"action must be an int in [0, {len(self.names) - 1}] ({', '.join(self.names)}), got {action!r}")
        return self.table[int(action)]


class KeyboardActions(gym.ActionWrapper):
    """Actions as key strings, as a person would play: ``"w"``, ``"a"``, ``"s"``, ``"d"`` move,
    ``"left"`` / ``"right"`` turn, ``"up"`` / ``"down"`` look, ``"none"`` waits; ``"w+left"`` combines."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.action_space = spaces.Text(max_length=64, charset=set("abcdefghijklmnopqrstuvwxyz+"))

    def action(self, action: str) -> np.ndarray:
        if not isinstance(action, str):
            raise TypeError(f"action must be a key string such as 'w' or 'w+left', got {type(action).__name__}")
        keys = [k.strip().lower() for k in action.split("+") if k.strip()] or ["none"]
        bad = sorted(set(keys) - set(KEYS))
        if bad:
            raise ValueError(f"unknown key(s) {bad} in {action!r}; allowed: {sorted(KEYS)}")
        return np.clip(np.sum([MOTIONS[KEYS[k]] for k in keys], axis=0), -1, 1).astype(np.float32)


class RecordRollout(gym.Wrapper):
    """Records every raw frame of an episode and writes, when the episode ends or the env closes,
    ``<prefix>-<n>.mp4`` at 16 fps with a top-down mini-map of the camera path drawn in a corner,
    and ``<prefix>-<n>.png``, the full trajectory plot."""

    def __init__(self, env: gym.Env, folder: str | Path, prefix: str = "rollout", minimap: bool = True) -> None:
        super().__init__(env)
        self.folder, self.prefix, self.minimap = Path(folder), prefix, minimap
        self.episode = 0
        self._frames: list[np.ndarray] = []
        self._poses: list[np.ndarray] = []
        self.written: list[Path] = []

    def reset(self, **kwargs: Any):
        self._flush()
        obs, info = self.env.reset(**kwargs)
        self._add(info)
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._add(info)
        if terminated or truncated:
            self._flush()
        return obs, reward, terminated, truncated, info

    def close(self) -> None:
        self._flush()
        super().close()

    def _add(self, info: dict[str, Any]) -> None:
        self._frames.extend(info["frames"])
        self._poses.extend(info["poses"])

    def _flush(self) -> None:
        if len(self._frames) < 2:
            self._frames, self._poses = [], []
            return
        poses = np.stack(self._poses)
        frames = np.stack(self._frames)
        if self.minimap:
            frames = np.stack([draw_minimap(f, poses[: i + 1]) for i, f in enumerate(frames)])
        name = f"{self.prefix}-{self.episode}"
        fps = self.env.metadata.get("render_fps", 16)
        self.written.append(write_video(self.folder / f"{name}.mp4", frames, fps=fps))
        self.written.append(plot_trajectory(self.folder / f"{name}.png", poses, getattr(self.env.unwrapped, "scene", None)))
        self.episode += 1
        self._frames, self._poses = [], []


def draw_minimap(frame: np.ndarray, poses: np.ndarray, frac: float = 0.3) -> np.ndarray:
    """``frame`` with the top-down path of ``poses`` (x right, z up) in its top-right corner: the path
    in white, the camera in red with its heading."""
    h, w = frame.shape[:2]
    size = max(8, int(min(h, w) * frac))
    out = frame.copy()
    box = out[1 : size + 1, w - size - 1 : w - 1]
    box[:] = (box * 0.4).astype(np.uint8)
    xz = poses[:, [0, 2], 3]
    lo, hi = xz.min(0), xz.max(0)
    span = max(float((hi - lo).max()), 1.0)
    centre = (lo + hi) / 2

    def to_px(p: np.ndarray) -> tuple[int, int]:
        u = (p - centre) / span * (size - 3) + (size - 1) / 2
        return int(np.clip(round(size - 1 - u[1]), 0, size - 1)), int(np.clip(round(u[0]), 0, size - 1))

    for p in xz:
        box[to_px(p)] = (255, 255, 255)
    heading = poses[-1][[0, 2], 2]
    for t in np.linspace(0, 0.15 * span, 6):
        box[to_px(xz[-1] + t * heading / max(np.linalg.norm(heading), 1e-9))] = (255, 80, 80)
    r, c = to_px(xz[-1])
    box[max(r - 1, 0) : r + 2, max(c - 1, 0) : c + 2] = (255, 0, 0)
    return out
