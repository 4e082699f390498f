"""The schema of ``configs/eval/eval.yaml`` (``sanawm eval``): every knob, its default and its range."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .paths import SPLITS

# Training clips draw their scene seeds below 2**31 (``np.random.default_rng([seed, i]).integers(2**31)``
# in sanawm_env.datagen), so seeds from here on are never training scenes, whatever the data seed.
HELD_OUT_SCENE_SEEDS = 2**31
# The paper's rollouts, and SanaWM-v0's episodes (80 steps of 0.75 s), last 60 s.
MAX_SECONDS = 60.0
# SanaWM-v0 arguments the evaluation leaves to the user; the others it sets from the world (size,
# image size, field of view) or fixes so that both envs move alike (task, motion scale).
ENV_KWARGS = ("steps", "window", "refine_every", "refine_window", "device", "dtype")


@dataclass
class EvalConfig:
    """Schema of ``configs/eval/eval.yaml``: Hydra rejects unknown keys and wrong types against it,
    ``__post_init__`` checks the values."""

    world: str | None = None  # world folder; null = the shipped world (model.world.DEFAULT_WORLD), untrained with a warning until one ships
    out: str = "outputs/eval"  # folder for table.txt, metrics.json, plots/ and videos/
    # split -> rollout length in seconds (at most 60, rounded to whole env steps of 0.75 s); drop one with ~splits.<name>
    splits: dict[str, float] = field(default_factory=lambda: {"smooth": 60.0, "hard": 60.0, "revisit": 60.0})
    # held-out procedural scenes (seeds >= 2**31, which training never draws); every split runs in each
    scenes: list[int] = field(default_factory=lambda: [HELD_OUT_SCENE_SEEDS + i for i in range(4)])
    seed: int = 0  # start poses, actions and the world's noise derive from (seed, split, scene)
    env_kwargs: dict[str, Any] = field(default_factory=dict)  # more SanaWM-v0 arguments (ENV_KWARGS), e.g. refine_every
    early_seconds: float = 2.0  # fidelity is also reported over the first this many seconds
    degradation_seconds: float = 10.0  # degradation compares the first and the last this many seconds (rollouts of at least twice that)
    psnr_cap_db: float = 100.0  # PSNR of identical frames (infinite) counts as this, so means and JSON stay finite
    grid_frames: int = 8  # columns of the generated-vs-true frame grid of each split (its first scene)
    videos: bool = True  # write a side-by-side video (world | ground truth) of every rollout
    progress: bool = True  # show a progress bar (env steps of both worlds)
    # camera accuracy over the first this many seconds of each rollout (0: off): poses re-estimated by COLMAP
    # (sanawm annotate's estimator; the annotate extra) on every column's frames, against the commanded path
    camera_seconds: float = 0.0

    def __post_init__(self) -> None:
        if not self.splits:
            raise ValueError(f"splits must name at least one of {list(SPLITS)}")
        for name, seconds in self.splits.items():
            if name not in SPLITS:
                raise ValueError(f"splits: unknown split {name!r}; the splits are {list(SPLITS)}")
            if not 0 < seconds <= MAX_SECONDS:
                raise ValueError(f"splits.{name}: the rollout length must lie in (0, {MAX_SECONDS:g}] seconds, got {seconds}")
        if not self.scenes:
            raise ValueError("scenes must list at least one scene seed")
        if len(set(self.scenes)) != len(self.scenes):
            raise ValueError(f"scenes must not repeat a seed, got {list(self.scenes)}")
        training = [s for s in self.scenes if s < HELD_OUT_SCENE_SEEDS]
        if training:
            raise ValueError(f"scenes {training} lie below 2**31 = {HELD_OUT_SCENE_SEEDS}, where training clips draw their "
                             "scene seeds; held-out scenes are seeds from 2**31 on")
        unknown = sorted(set(self.env_kwargs) - set(ENV_KWARGS))
        if unknown:
            raise ValueError(f"env_kwargs {unknown} are not SanaWM-v0 arguments the evaluation lets you set; accepted: {list(ENV_KWARGS)}")
        for name in ("early_seconds", "degradation_seconds", "psnr_cap_db"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0 <= self.camera_seconds <= MAX_SECONDS:
            raise ValueError(f"camera_seconds must lie in [0, {MAX_SECONDS:g}] (0: off), got {self.camera_seconds}")
        if self.grid_frames < 1:
            raise ValueError(f"grid_frames must be >= 1, got {self.grid_frames}")
