"""A scripted explorer for demos and smoke tests: no learning, no observation of pixels."""

from __future__ import annotations

from typing import Any

import numpy as np


class WanderPolicy:
    """Walks forward while its heading drifts smoothly; after bumping into something it stops and
    turns on the spot for a random number of steps (up to ``max_turn_steps``). Keeps the camera
    level (no pitch or roll). Works with any env whose action is ``(dx, dy, dz, droll, dpitch,
    dyaw)`` in [-1, 1] and whose ``info`` has ``collision``.
    """

    def __init__(self, seed: int | None = None, forward: float = 0.8, max_yaw: float = 0.35, max_turn_steps: int = 6) -> None:
        self.rng = np.random.default_rng(seed)
        self.forward, self.max_yaw, self.max_turn_steps = forward, max_yaw, max_turn_steps
        self._yaw = 0.0
        self._turning = 0
        self._turn_dir = 1.0

    def __call__(self, observation: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        if info.get("collision", False) and self._turning == 0:
            self._turning = int(self.rng.integers(2, self.max_turn_steps + 1))
            self._turn_dir = float(self.rng.choice([-1.0, 1.0]))
        if self._turning > 0:
            self._turning -= 1
            return np.array([0, 0, 0, 0, 0, self._turn_dir], dtype=np.float32)
        self._yaw = float(np.clip(0.8 * self._yaw + self.rng.normal(0, 0.15), -self.max_yaw, self.max_yaw))
        return np.array([0, 0, self.forward, 0, 0, self._yaw], dtype=np.float32)
