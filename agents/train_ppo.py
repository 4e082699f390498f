"""PPO on a SanaWM task, in the learned world or the ground truth (CleanRL-style: one file, one config).

    python -m agents.train_ppo                                       # pointgoal in SanaWM-GT-v0
    python -m agents.train_ppo env=SanaWM-v0 num_envs=8 +env_kwargs.checkpoint=runs/sf/world
    python -m agents.train_ppo task=explore total_timesteps=20000 env_kwargs.height=64

Every knob has a default and a note in ``configs/agents/train_ppo.yaml``. ``SanaWM-v0`` steps its
``num_envs`` worlds in one batched model (``sanawm_env.sb3.make_vec_env``); tasks with goal fields
train SB3's ``MultiInputPolicy``, image-only tasks its ``CnnPolicy``. A run folder
``<out>/<env>__<task>__<exp_name>__<seed>__<time>/`` holds ``config.json``, ``model.zip`` (for
``agents.evaluate policy=...``), TensorBoard logs under ``tb/`` (SB3's ``rollout/`` and ``train/``
scalars, plus ``rollout/success_rate`` and ``rollout/spl`` of goal tasks) and ``summary.json``.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from .runs import check_common, compose, run_folder


@dataclass
class TrainPPOConfig:
    """Schema of ``configs/agents/train_ppo.yaml`` (its notes say what each knob does)."""

    env: str = "SanaWM-GT-v0"
    task: str = "pointgoal"
    task_kwargs: dict[str, Any] = field(default_factory=dict)
    exp_name: str = "ppo"
    seed: int = 0
    num_envs: int = 4
    total_timesteps: int = 100_000
    max_episode_steps: int = 80
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    learning_rate: float = 3e-4
    n_steps: int = 128
    batch_size: int = 64
    n_epochs: int = 4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.0
    device: str = "cpu"
    out: str = "runs/agents"
    max_minutes: float = 0.0

    def __post_init__(self) -> None:
        check_common(self.env, self.seed, {"num_envs": self.num_envs, "total_timesteps": self.total_timesteps, "n_steps": self.n_steps,
                                           "batch_size": self.batch_size, "n_epochs": self.n_epochs, "max_episode_steps": self.max_episode_steps})
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
        if self.max_minutes < 0:
            raise ValueError(f"max_minutes must be >= 0 (0: no limit), got {self.max_minutes}")


class GoalMetrics(BaseCallback):
    """Logs the success rate and SPL of the episodes that end (goal tasks) beside SB3's scalars."""

    def _on_step(self) -> bool:
        for done, info in zip(self.locals["dones"], self.locals["infos"]):
            if done and "success" in info:
                self.logger.record_mean("rollout/success_rate", float(info["success"]))
                self.logger.record_mean("rollout/spl", float(info["spl"]))
        return True


class TimeBudget(BaseCallback):
    """Stops learning at the first env step after ``minutes`` of wall time (SB3 ends ``learn`` when a
    callback's step returns False); the model is saved as at the end."""

    def __init__(self, minutes: float) -> None:
        super().__init__()
        self.seconds = 60 * minutes
        self.started = time.perf_counter()

    def _on_step(self) -> bool:
        return time.perf_counter() - self.started <= self.seconds


def _policy_kind(space: gym.Space) -> str:
    """SB3's policy for ``space``: ``MultiInputPolicy`` for a Dict observation (goal tasks), else ``CnnPolicy``."""
    return "MultiInputPolicy" if isinstance(space, gym.spaces.Dict) else "CnnPolicy"


def make_ppo(cfg: TrainPPOConfig, folder: Path) -> Any:
    """The SB3 PPO model of ``cfg`` on its batched env (``VecMonitor`` over ``make_vec_env``), logging under ``folder/tb``."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecMonitor

    import sanawm_env  # noqa: F401  (registers the environments)
    from sanawm_env.sb3 import make_vec_env

    venv = VecMonitor(make_vec_env(cfg.env, cfg.num_envs, task=cfg.task, task_kwargs=cfg.task_kwargs,
                                   max_episode_steps=cfg.max_episode_steps, **cfg.env_kwargs))
    return PPO(_policy_kind(venv.observation_space), venv, learning_rate=cfg.learning_rate, n_steps=cfg.n_steps,
               batch_size=cfg.batch_size, n_epochs=cfg.n_epochs, gamma=cfg.gamma, gae_lambda=cfg.gae_lambda, clip_range=cfg.clip_range, ent_coef=cfg.ent_coef, seed=cfg.seed,
               device=cfg.device, tensorboard_log=str(folder / "tb"), verbose=0)


def learn(model: Any, cfg: TrainPPOConfig, folder: Path) -> Path:
    """Run PPO for ``cfg.total_timesteps``, save ``model.zip`` and ``summary.json`` in ``folder``; returns it."""
    callbacks = [GoalMetrics()] + ([TimeBudget(cfg.max_minutes)] if cfg.max_minutes else [])
    model.learn(cfg.total_timesteps, callback=callbacks, tb_log_name="ppo")
    model.save(folder / "model.zip")
    episodes = list(model.ep_info_buffer)
    summary = {"run": folder.name, "timesteps": int(model.num_timesteps), "stopped_by_max_minutes": model.num_timesteps < cfg.total_timesteps,
               "policy": _policy_kind(model.observation_space),
               "recent_episodes": len(episodes), "recent_return": float(np.mean([e["r"] for e in episodes])) if episodes else None}
    (folder / "summary.json").write_text(json.dumps(summary, indent=2))
    model.get_env().close()
    return folder


def train(cfg: TrainPPOConfig) -> Path:
    """Train, save ``model.zip`` and ``summary.json`` in a new run folder; returns the folder."""
    folder = run_folder(cfg.out, cfg.env, cfg.task, cfg.exp_name, cfg.seed, cfg)
    return learn(make_ppo(cfg, folder), cfg, folder)


def main(argv: list[str] | None = None) -> int:
    from sanawm.errors import run_reporting

    overrides = sys.argv[1:] if argv is None else argv
    return run_reporting("train_ppo", lambda: print(train(compose("train_ppo", TrainPPOConfig, overrides))))


if __name__ == "__main__":
    sys.exit(main())
