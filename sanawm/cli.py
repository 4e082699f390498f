"""``sanawm``: the project's command line.

    sanawm demo [key=value ...]          one rollout -> video + trajectory plot (Hydra overrides)
    sanawm data generate --out DIR ...   render training clips from procedural worlds
    sanawm train stage=<stage> ...       one stage of the training recipe (Hydra overrides)
    sanawm eval [key=value ...]          a world against the ground truth -> table, JSON, plots, videos
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import run_reporting

if TYPE_CHECKING:
    from sanawm_env.evaluation import EvalConfig


@dataclass
class DemoConfig:
    """Schema of ``configs/demo.yaml``: Hydra rejects unknown keys and wrong types against it."""

    env: str = "SanaWM-v0"
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    steps: int = 40
    seed: int = 0
    scene_seed: int | None = None
    ground_truth: bool = True
    out: str = "outputs/demo"

    def __post_init__(self) -> None:
        import gymnasium as gym

        import sanawm_env  # noqa: F401  (registers the environments)

        if self.env not in gym.registry:
            raise ValueError(f"env must be a registered environment id such as SanaWM-v0 or SanaWM-GT-v0, got {self.env!r}")
        if self.steps <= 0:
            raise ValueError(f"steps must be positive, got {self.steps}")


def _compose_demo(overrides: list[str]) -> DemoConfig:
    from hydra import compose, initialize_config_module
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    ConfigStore.instance().store(name="demo_schema", node=DemoConfig)
    with initialize_config_module(config_module="configs", version_base=None):
        cfg = compose(config_name="demo", overrides=overrides)
    return DemoConfig(**OmegaConf.to_container(cfg, resolve=True))


def run_demo(cfg: DemoConfig) -> dict[str, Path]:
    """Roll out the wander policy in ``cfg.env``; write a video, a trajectory plot and a summary.

    For a learned world that started from a procedural scene, the video shows that scene rendered
    along the same camera path beside the imagined frames, and the summary their PSNR next to that
    of repeating the first frame (``ground_truth=false`` turns this off).
    """
    import gymnasium as gym
    import torch
    from tqdm import trange

    import sanawm_env  # noqa: F401  (registers the environments)
    from agents.wander import WanderPolicy
    from sanawm_env.metrics import psnr
    from sanawm_env.recording import plot_trajectory, write_video
    from sanawm_env.render import render
    from sanawm_env.scene import generate_scene

    env = gym.make(cfg.env, **cfg.env_kwargs)
    options = {} if cfg.scene_seed is None else {"scene_seed": cfg.scene_seed}
    obs, info = env.reset(seed=cfg.seed, options=options)
    scene_seed = info.get("scene_seed", -1)
    policy = WanderPolicy(seed=cfg.seed)
    frames, poses, rewards = [info["frames"]], [info["poses"]], []
    for _ in trange(cfg.steps, desc=f"{cfg.env} rollout", unit="step"):
        obs, reward, terminated, truncated, info = env.step(policy(obs, info))
        frames.append(info["frames"])
        poses.append(info["poses"])
        rewards.append(float(reward))
        if terminated or truncated:
            break
    out = Path(cfg.out)
    video_frames, all_poses = np.concatenate(frames), np.concatenate(poses)
    # The learned world keeps no geometry; its start is a render of a procedural scene, drawn under the path.
    scene = getattr(env.unwrapped, "scene", None)
    learned = scene is None
    if learned and scene_seed >= 0:
        scene = generate_scene(scene_seed)
    extra = {}
    if learned and scene is not None and cfg.ground_truth:
        k = torch.as_tensor(info["intrinsics"], dtype=torch.float64)
        truth = render(scene, torch.from_numpy(all_poses.astype(np.float64)), k, *video_frames.shape[1:3]).rgb.numpy()
        extra["psnr_db_vs_ground_truth"] = float(np.mean(psnr(video_frames[1:], truth[1:])))  # frame 0 is the given image
        # The lower bracket: a world that never moves, showing its first frame for the whole path.
        extra["psnr_db_repeat_first_frame"] = float(np.mean(psnr(np.broadcast_to(truth[:1], truth[1:].shape), truth[1:])))
        video_frames = np.concatenate([video_frames, truth], axis=2)  # imagined | ground truth
    video = write_video(out / "rollout.mp4", video_frames, fps=env.metadata.get("render_fps", 16))
    plot = plot_trajectory(out / "trajectory.png", all_poses, scene, title=f"{cfg.env}, seed {cfg.seed}")
    summary = out / "rollout.json"
    summary.write_text(json.dumps({
        "env": cfg.env,
        "env_kwargs": cfg.env_kwargs,
        "seed": cfg.seed,
        "scene_seed": scene_seed,
        "steps": len(rewards),
        "frames": int(sum(len(f) for f in frames)),
        "return": float(sum(rewards)),
        "rewards": rewards,
        "poses": all_poses.tolist(),
        **extra,
    }))
    env.close()
    return {"video": video, "plot": plot, "summary": summary}


def _demo(args: argparse.Namespace) -> int:
    def demo() -> None:
        for name, path in run_demo(_compose_demo(args.overrides)).items():
            print(f"{name}: {path}")

    return run_reporting("demo", demo)


def _data_generate(args: argparse.Namespace) -> int:
    from sanawm_env.datagen import generate_clips

    def run() -> None:
        out = generate_clips(args.out, clips=args.clips, frames=args.frames, size=tuple(args.size), fps=args.fps, seed=args.seed,
                             clips_per_shard=args.clips_per_shard, fov_deg=args.fov, trajectories=tuple(args.trajectories),
                             depth=args.depth, resume=args.resume)
        print(f"wrote {args.clips} clips to {out}")

    return run_reporting("data generate", run)


def _train(args: argparse.Namespace) -> int:
    from .train import main as train_main

    return train_main(args.overrides)


def compose_eval(overrides: list[str]) -> EvalConfig:
    """The typed config of ``sanawm eval`` from Hydra overrides of ``configs/eval/eval.yaml``: Hydra
    rejects unknown keys and wrong types, ``EvalConfig.__post_init__`` bad values (ValueError)."""
    from hydra import compose, initialize_config_module
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    from sanawm_env.evaluation import EvalConfig

    ConfigStore.instance().store(name="eval_schema", node=EvalConfig)
    with initialize_config_module(config_module="configs.eval", version_base=None):
        cfg = compose(config_name="eval", overrides=overrides)
    return EvalConfig(**OmegaConf.to_container(cfg, resolve=True))


def _eval(args: argparse.Namespace) -> int:
    from sanawm_env.evaluation import evaluate

    def run() -> None:
        result = evaluate(compose_eval(args.overrides))
        print(result.table)
        print(f"\ntable: {result.paths['table']}\nmetrics: {result.paths['metrics']}\nplots and videos: {result.paths['table'].parent}")

    return run_reporting("eval", run)


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from sanawm_env.trajectories import TRAJECTORIES

    parser = argparse.ArgumentParser(prog="sanawm", description="SanaWM: a Gymnasium environment whose world is a learned video model.")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="roll out an environment and write a video and a trajectory plot")
    demo.add_argument("overrides", nargs="*", help="Hydra overrides of configs/demo.yaml, e.g. steps=80 env_kwargs.height=64")
    demo.set_defaults(func=_demo)

    data = sub.add_parser("data", help="training data")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    gen = data_sub.add_parser("generate", help="render clips (frames + metric camera poses) from procedural worlds")
    gen.add_argument("--out", required=True, help="output folder: new or empty (or an interrupted run of ours, with --resume)")
    gen.add_argument("--clips", type=_positive_int, required=True, help="number of clips")
    gen.add_argument("--frames", type=_positive_int, required=True, help="frames per clip")
    gen.add_argument("--size", type=_positive_int, nargs=2, metavar=("H", "W"), default=[64, 64], help="frame height and width")
    gen.add_argument("--fps", type=_positive_float, default=16.0, help="frame rate: sets how far the camera moves per frame")
    gen.add_argument("--seed", type=int, default=0, help="base seed; clip i depends only on (seed, i)")
    gen.add_argument("--clips-per-shard", type=_positive_int, default=64, help="clips per safetensors shard")
    gen.add_argument("--fov", type=_positive_float, default=80.0, help="horizontal field of view in degrees")
    gen.add_argument("--trajectories", nargs="+", choices=sorted(TRAJECTORIES), default=list(TRAJECTORIES), help="kinds of camera path to draw from")
    gen.add_argument("--depth", action="store_true", help="also store metric z-depth (float16)")
    gen.add_argument("--resume", action="store_true", help="continue an interrupted run in --out (same arguments) after its last finished shard")
    gen.set_defaults(func=_data_generate)

    train = sub.add_parser("train", help="train a world: one stage of the recipe (vae, latents, bidirectional, chunk_causal, "
                           "ode, self_forcing, refiner)", prefix_chars="\0")
    train.add_argument("overrides", nargs="*", help="Hydra overrides of configs/train/train.yaml, e.g. stage=vae data=clips out=runs/vae")
    train.set_defaults(func=_train)

    evaluate = sub.add_parser("eval", help="evaluate a world against the procedural ground truth (fidelity, action following, "
                              "revisit consistency, degradation)", prefix_chars="\0")
    evaluate.add_argument("overrides", nargs="*", help="Hydra overrides of configs/eval/eval.yaml, e.g. world=runs/sf/world splits.hard=20")
    evaluate.set_defaults(func=_eval)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
