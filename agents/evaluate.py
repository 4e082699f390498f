"""Evaluate a policy on a SanaWM task, in the learned world or the ground truth.

    python -m agents.evaluate                                              # the scripted expert on pointgoal
    python -m agents.evaluate policy=random episodes=50
    python -m agents.evaluate policy=runs/agents/<run>/model.zip env=SanaWM-GT-v0
    python -m agents.evaluate policy=planner env=SanaWM-v0 replay_env=SanaWM-GT-v0   # planned in imagination, scored in the truth

Policies (``agents.policies``): ``random``, ``expert`` (steers by the known pose along the floor
grid's shortest path), ``planner`` (``agents.planning``: CEM or MPPI in forks of the world, its
arguments under ``planner``, e.g. ``+planner.method=mppi``; its time per step is reported) or the path of a PPO ``model.zip`` from ``agents.train_ppo`` (refused with
both spaces named if it was trained on another observation space). Episode ``k`` resets with
``seed + k``, so every policy meets the same starts and goals. A run folder
``<out>/<env>__<task>__<exp_name>__<seed>__<time>/`` holds ``episodes.csv`` (one row per episode:
return, length, success, SPL, shortest path and walked length), ``summary.json`` (success rate, SPL,
mean return, with the config) and ``videos/`` of the first ``video_episodes`` episodes, recorded by
Gymnasium's ``RecordVideo``. With ``replay_env``, each episode's actions are replayed open loop in that
env from the same seed (the same start and goal): how a policy acting on the imagined world, e.g. the
planner in ``SanaWM-v0``'s forks, fares in the true world; its success and SPL join the rows and summary.
"""

from __future__ import annotations

import csv
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from .planning import Planner
from .policies import GoalExpert, PPOPolicy, RandomPolicy
from .runs import ENVS, check_common, compose, run_folder

COLUMNS = ("episode", "seed", "scene_seed", "return", "length", "success", "spl", "shortest_path", "walked", "planning_seconds_per_step",
           "replay_success", "replay_spl")


@dataclass
class EvaluateConfig:
    """Schema of ``configs/agents/evaluate.yaml`` (its notes say what each knob does)."""

    env: str = "SanaWM-GT-v0"
    task: str = "pointgoal"
    task_kwargs: dict[str, Any] = field(default_factory=dict)
    policy: str = "expert"
    planner: dict[str, Any] = field(default_factory=dict)
    exp_name: str = "eval"
    seed: int = 0
    episodes: int = 10
    max_episode_steps: int = 80
    video_episodes: int = 1
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    replay_env: str = ""
    replay_env_kwargs: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    out: str = "runs/agents"

    def __post_init__(self) -> None:
        check_common(self.env, self.seed, {"episodes": self.episodes, "max_episode_steps": self.max_episode_steps})
        if self.replay_env and self.replay_env not in ENVS:
            raise ValueError(f"replay_env must be '' (none) or one of {list(ENVS)}, got {self.replay_env!r}")
        if self.video_episodes < 0:
            raise ValueError(f"video_episodes must be >= 0, got {self.video_episodes}")


def make_policy(name: str, seed: int, device: str = "cpu", planner: dict[str, Any] | None = None) -> Any:
    """``random``, ``expert`` (also called ``scripted``), ``planner`` (``agents.planning.Planner(**planner)``)
    or the path of a PPO ``model.zip``."""
    if name == "random":
        return RandomPolicy(seed)
    if name in ("expert", "scripted"):
        return GoalExpert()
    if name == "planner":
        return Planner(seed=seed, **(planner or {}))
    if not name.endswith(".zip"):
        raise ValueError(f"policy must be 'random', 'expert', 'planner' or the path of a PPO model.zip, got {name!r}")
    return PPOPolicy(name, device)


def run_episode(env: gym.Env, policy: Any, seed: int, replay: gym.Env | None = None) -> dict[str, Any]:
    """One episode of ``policy`` in ``env`` from ``reset(seed=seed)``: its row of ``episodes.csv``; with
    ``replay``, its actions are then replayed there from the same seed."""
    obs, info = env.reset(seed=seed)
    policy.reset(env)
    total, length, scene_seed, planning, actions = 0.0, 0, info["scene_seed"], 0.0, []
    while True:
        actions.append(policy(obs, info))
        obs, reward, terminated, truncated, info = env.step(actions[-1])
        total, length = total + float(reward), length + 1
        planning += getattr(policy, "seconds_per_step", 0.0)
        if terminated or truncated:
            break
    task = env.unwrapped.task
    return {"seed": seed, "scene_seed": scene_seed, "return": total, "length": length, "success": bool(info.get("success", False)),
            "spl": float(info.get("spl", 0.0)), "shortest_path": getattr(task, "shortest", None), "walked": getattr(task, "walked", None),
            "planning_seconds_per_step": planning / length, **(replay_episode(replay, actions, seed) if replay else {})}


def replay_episode(env: gym.Env, actions: list[np.ndarray], seed: int) -> dict[str, Any]:
    """Success and SPL of ``actions`` played open loop in ``env`` from ``reset(seed=seed)``, up to its episode's end."""
    env.reset(seed=seed)
    for action in actions:
        _, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            break
    return {"replay_success": bool(info.get("success", False)), "replay_spl": float(info.get("spl", 0.0))}


def evaluate(cfg: EvaluateConfig) -> Path:
    """Run the episodes and write the results; returns the run folder."""
    import sanawm_env  # noqa: F401  (registers the environments)

    policy = make_policy(cfg.policy, cfg.seed, cfg.device, cfg.planner)
    env = gym.make(cfg.env, task=cfg.task, task_kwargs=cfg.task_kwargs, max_episode_steps=cfg.max_episode_steps,
                   render_mode="rgb_array", **cfg.env_kwargs)
    folder = run_folder(cfg.out, cfg.env, cfg.task, cfg.exp_name, cfg.seed, cfg)
    if cfg.video_episodes:
        env = gym.wrappers.RecordVideo(env, str(folder / "videos"), episode_trigger=lambda k: k < cfg.video_episodes,
                                       name_prefix=Path(cfg.policy).stem, disable_logger=True)
    replay = gym.make(cfg.replay_env, task=cfg.task, task_kwargs=cfg.task_kwargs, max_episode_steps=cfg.max_episode_steps,
                      **cfg.replay_env_kwargs) if cfg.replay_env else None
    rows = [{"episode": k, **run_episode(env, policy, cfg.seed + k, replay)} for k in range(cfg.episodes)]
    env.close()
    with open(folder / "episodes.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    summary = {"run": folder.name, "episodes": len(rows), "success_rate": float(np.mean([r["success"] for r in rows])),
               "spl": float(np.mean([r["spl"] for r in rows])), "return": float(np.mean([r["return"] for r in rows])),
               "length": float(np.mean([r["length"] for r in rows])),
               "planning_seconds_per_step": float(np.mean([r["planning_seconds_per_step"] for r in rows])), "config": asdict(cfg)}
    if replay:
        replay.close()
        summary["replay"] = {"env": cfg.replay_env, "success_rate": float(np.mean([r["replay_success"] for r in rows])),
                             "spl": float(np.mean([r["replay_spl"] for r in rows]))}
    (folder / "summary.json").write_text(json.dumps(summary, indent=2))
    return folder


def main(argv: list[str] | None = None) -> int:
    from sanawm.errors import run_reporting

    overrides = sys.argv[1:] if argv is None else argv
    return run_reporting("evaluate", lambda: print(evaluate(compose("evaluate", EvaluateConfig, overrides))))


if __name__ == "__main__":
    sys.exit(main())
