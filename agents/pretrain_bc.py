"""Behaviour cloning of the scripted expert on a rollout data set, then PPO fine-tuning of the same network.

    sanawm rollouts --policy scripted --episodes 200 --out data/expert --task pointgoal
    python -m agents.pretrain_bc data=data/expert                            # BC, then PPO in SanaWM-GT-v0
    python -m agents.pretrain_bc data=data/expert finetune=false             # BC only

The policy is SB3's PPO policy for the env (``agents.train_ppo.make_ppo``), so behaviour cloning
trains the very network PPO then fine-tunes: the actor by the negative log-likelihood of the
expert's actions under the policy's Gaussian, minus ``ent_weight`` times its entropy (the loss of
the imitation library's BC); the value head is left to PPO. The data set's observation space must be
the env's (its task and image size), else the run stops naming both. The run folder
``<out>/<env>__<task>__<exp_name>__<seed>__<time>/`` holds ``bc.zip`` (after cloning),
``model.zip`` and ``summary.json`` (after PPO, as ``agents.train_ppo`` writes them), TensorBoard
logs, and ``pretrain.json`` with the number of transitions, the cloning loss per epoch and,
with ``eval_episodes``, the success rate and SPL of both policies in the env (``agents.evaluate``,
episode k from seed ``eval_seed + k``).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .rollout_data import RolloutDataset, observation_spec
from .runs import compose, run_folder
from .train_ppo import TrainPPOConfig, learn, make_ppo


@dataclass
class PretrainBCConfig:
    """Schema of ``configs/agents/pretrain_bc.yaml`` (its notes say what each knob does)."""

    data: str = "???"
    epochs: int = 20
    batch_size: int = 256
    learning_rate: float = 1e-3
    ent_weight: float = 1e-3
    finetune: bool = True
    eval_episodes: int = 0
    eval_seed: int = 1000
    ppo: TrainPPOConfig = field(default_factory=lambda: TrainPPOConfig(exp_name="bc_ppo"))

    def __post_init__(self) -> None:
        if isinstance(self.ppo, dict):  # Hydra hands the nested config over as a dict
            self.ppo = TrainPPOConfig(**self.ppo)
        for name in ("epochs", "batch_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.learning_rate <= 0 or self.ent_weight < 0 or self.eval_episodes < 0 or self.eval_seed < 0:
            raise ValueError(f"need learning_rate > 0, ent_weight >= 0, eval_episodes >= 0, eval_seed >= 0; got {self.learning_rate}, "
                             f"{self.ent_weight}, {self.eval_episodes}, {self.eval_seed}")


def behaviour_clone(policy: Any, observations: dict[str, np.ndarray] | np.ndarray, actions: np.ndarray, epochs: int, batch_size: int,
                    learning_rate: float, ent_weight: float = 1e-3, seed: int = 0) -> list[float]:
    """Train the SB3 actor-critic ``policy`` to imitate ``actions`` (N, 6) taken in ``observations``
    (as the env gives them, stacked over N steps; images channels-last); returns each epoch's mean loss."""
    optimizer = torch.optim.Adam(policy.parameters(), lr=learning_rate)
    rng = np.random.default_rng(seed)
    policy.set_training_mode(True)
    losses = []
    for _ in range(epochs):
        order, total = rng.permutation(len(actions)), 0.0
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            batch = {k: v[rows] for k, v in observations.items()} if isinstance(observations, dict) else observations[rows]
            obs, _ = policy.obs_to_tensor(batch)  # SB3 moves images channels-first as its CNN wants
            _, log_prob, entropy = policy.evaluate_actions(obs, torch.as_tensor(actions[rows], device=policy.device))
            loss = -log_prob.mean() - ent_weight * entropy.mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(rows)
        losses.append(total / len(actions))
    policy.set_training_mode(False)
    return losses


def _evaluate(cfg: PretrainBCConfig, model_file: Path, folder: Path) -> dict[str, float]:
    """Success rate and SPL of the saved policy ``model_file`` in the fine-tuning env."""
    from .evaluate import EvaluateConfig, evaluate

    p = cfg.ppo
    run = evaluate(EvaluateConfig(env=p.env, task=p.task, task_kwargs=p.task_kwargs, policy=str(model_file), exp_name=model_file.stem,
                                  seed=cfg.eval_seed, episodes=cfg.eval_episodes, max_episode_steps=p.max_episode_steps, video_episodes=0,
                                  env_kwargs=p.env_kwargs, device=p.device, out=str(folder / "eval")))
    summary = json.loads((run / "summary.json").read_text())
    return {"success_rate": summary["success_rate"], "spl": summary["spl"], "episodes": summary["episodes"]}


def pretrain(cfg: PretrainBCConfig) -> Path:
    """Clone, save ``bc.zip``, fine-tune with PPO, save ``model.zip``; returns the run folder."""
    data = RolloutDataset(cfg.data)
    p = cfg.ppo
    folder = run_folder(p.out, p.env, p.task, p.exp_name, p.seed, cfg)
    model = make_ppo(p, folder)
    env_spec = observation_spec(model.get_env().unwrapped.venv.single_observation_space)
    if data.observation != env_spec:
        raise ValueError(f"{cfg.data}: its episodes observe {data.observation}, but {p.env} with task={p.task!r} and env_kwargs="
                         f"{p.env_kwargs} observes {env_spec}; collect the data with the same task and image size")
    observations, actions = data.transitions()
    losses = behaviour_clone(model.policy, observations, actions, cfg.epochs, cfg.batch_size, cfg.learning_rate, cfg.ent_weight, p.seed)
    model.save(folder / "bc.zip")
    summary: dict[str, Any] = {"data": cfg.data, "transitions": len(actions), "bc_loss": losses}
    if cfg.finetune:
        learn(model, p, folder)
    if cfg.eval_episodes:
        summary["bc"] = _evaluate(cfg, folder / "bc.zip", folder)
        if cfg.finetune:
            summary["bc_ppo"] = _evaluate(cfg, folder / "model.zip", folder)
    (folder / "pretrain.json").write_text(json.dumps(summary, indent=2))
    return folder


def main(argv: list[str] | None = None) -> int:
    from sanawm.errors import run_reporting

    overrides = sys.argv[1:] if argv is None else argv
    return run_reporting("pretrain_bc", lambda: print(pretrain(compose("pretrain_bc", PretrainBCConfig, overrides))))


if __name__ == "__main__":
    sys.exit(main())
