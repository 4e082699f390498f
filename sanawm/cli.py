"""``sanawm``: the project's command line.

    sanawm demo [key=value ...]          one rollout -> video + trajectory plot (Hydra overrides)
    sanawm data generate --out DIR ...   render training clips from procedural worlds
    sanawm train stage=<stage> ...       one stage of the training recipe (Hydra overrides)
    sanawm eval [key=value ...]          a world against the ground truth -> table, JSON, plots, videos
    sanawm annotate INPUT... --out DIR   metric camera poses of your own videos -> RealEstate10K-style clips
    sanawm quantize --format F --out DIR a world with its DiT in fp8, int8 or nvfp4 (nvidia-modelopt)
    sanawm rollouts --policy P --episodes N --out DIR   a policy's episodes in batched worlds -> an offline data set
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
                             depth=args.depth, resume=args.resume, workers=args.workers)
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


def _plugin(spec: str) -> Any:
    """An object the user installed, named ``module:attribute``: a class is instantiated with no
    arguments, anything else (a function, an instance) is used as it is."""
    import importlib

    module, _, attr = spec.partition(":")
    if not module or not attr:
        raise ValueError(f"expected module:attribute (e.g. my_models.depth:DepthModel), got {spec!r}")
    try:
        obj = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"cannot load {spec!r}: {e}") from e
    return obj() if isinstance(obj, type) else obj


def _annotate(args: argparse.Namespace) -> int:
    def run() -> None:
        from model.annotation import AnnotateConfig, ColmapEstimator, ColmapOptions, QualityLimits, Sampling, annotate
        from model.camera import intrinsics_from_fov

        sampling = Sampling(fps=args.fps, clip_frames=args.clip_frames, size=tuple(args.size) if args.size else None, folder_fps=args.folder_fps)
        intrinsics = tuple(args.intrinsics) if args.intrinsics else None
        if args.fov is not None:
            if intrinsics is not None:
                raise ValueError("give --fov or --intrinsics, not both")
            if sampling.size is None:
                raise ValueError("--fov needs --size (the frame size the intrinsics belong to); or give --intrinsics in pixels")
            intrinsics = tuple(intrinsics_from_fov(args.fov, *sampling.size).tolist())
        trend = {} if args.max_scale_trend is None else {"max_scale_trend": args.max_scale_trend}
        limits = QualityLimits(min_frames=args.min_frames, max_reprojection_px=args.max_reprojection, min_parallax_deg=args.min_parallax, **trend)
        config = AnnotateConfig(sampling=sampling, limits=limits, intrinsics=intrinsics, camera_height_m=args.camera_height)
        estimator = _plugin(args.estimator) if args.estimator else ColmapEstimator(ColmapOptions(num_threads=args.threads))
        depth = _plugin(args.depth_model) if args.depth_model else None
        summary = annotate(args.inputs, args.out, config, estimator=estimator, depth=depth)
        print(f"{len(summary['accepted'])} clips accepted, {summary['rejected']} rejected (reasons in {Path(args.out) / 'annotation.json'}); "
              f"{summary['frames']} frames at {summary['frames'] / max(sum(summary['seconds'].values()), 1e-9):.1f} frames/s")

    return run_reporting("annotate", run)


def _key_values(pairs: list[str], option: str) -> dict[str, Any]:
    """``KEY=VALUE`` arguments as a dict, each value read as YAML (``64`` an int, ``tiny`` a string)."""
    import yaml

    values = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"{option} takes KEY=VALUE pairs (e.g. height=64), got {pair!r}")
        values[key] = yaml.safe_load(value)
    return values


def _rollouts(args: argparse.Namespace) -> int:
    def run() -> None:
        from agents.rollouts import collect_rollouts

        out = collect_rollouts(args.out, args.policy, args.episodes, env=args.env, task=args.task,
                               task_kwargs=_key_values(args.task_kwargs, "--task-kwargs"), env_kwargs=_key_values(args.env_kwargs, "--env-kwargs"),
                               num_worlds=args.num_worlds, seed=args.seed, max_steps=args.max_steps,
                               episodes_per_shard=args.episodes_per_shard, resume=args.resume)
        print(f"wrote {args.episodes} episodes to {out}")

    return run_reporting("rollouts", run)


def _quantize(args: argparse.Namespace) -> int:
    from .quantize import main as quantize_main

    return run_reporting("quantize", lambda: quantize_main(args.world, args.format, args.calib_steps, args.out, args.seed, args.device))


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
    from model.quantization import FORMATS
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
    gen.add_argument("--workers", type=_positive_int, default=1, help="processes rendering clips side by side (the same data as one)")
    gen.set_defaults(func=_data_generate)

    train = sub.add_parser("train", help="train a world: one stage of the recipe (vae, latents, bidirectional, chunk_causal, "
                           "ode, self_forcing, refiner)", prefix_chars="\0")
    train.add_argument("overrides", nargs="*", help="Hydra overrides of configs/train/train.yaml, e.g. stage=vae data=clips out=runs/vae")
    train.set_defaults(func=_train)

    evaluate = sub.add_parser("eval", help="evaluate a world against the procedural ground truth (fidelity, action following, "
                              "revisit consistency, degradation)", prefix_chars="\0")
    evaluate.add_argument("overrides", nargs="*", help="Hydra overrides of configs/eval/eval.yaml, e.g. world=runs/sf/world splits.hard=20")
    evaluate.set_defaults(func=_eval)

    ann = sub.add_parser("annotate", help="metric 6-DoF camera poses of your own videos or frame folders, as RealEstate10K-style "
                         "training clips (needs pip install 'sanawm[annotate]')")
    ann.add_argument("inputs", nargs="+", help="video files, folders of frames, or folders holding either")
    ann.add_argument("--out", required=True, help="output folder (new or empty): <clip>.txt cameras, <clip>/ frames, reports")
    ann.add_argument("--fps", type=_positive_float, default=None, help="frames a second to keep (default: every frame)")
    ann.add_argument("--clip-frames", type=_positive_int, default=48, help="frames per annotated clip; longer sources are cut")
    ann.add_argument("--size", type=_positive_int, nargs=2, metavar=("H", "W"), default=None, help="resize frames (default: as they are)")
    ann.add_argument("--folder-fps", type=_positive_float, default=30.0, help="frame rate of a folder of images")
    ann.add_argument("--intrinsics", type=float, nargs=4, metavar=("FX", "FY", "CX", "CY"), default=None,
                     help="known intrinsics in pixels of the (resized) frames; estimated if not given")
    ann.add_argument("--fov", type=_positive_float, default=None, help="known horizontal field of view in degrees (with --size)")
    ann.add_argument("--camera-height", type=_positive_float, default=None, help="camera height over the ground in metres, for metric scale")
    ann.add_argument("--depth-model", default=None, help="module:attribute of an installed metric depth model (a MetricDepth), for metric scale")
    ann.add_argument("--estimator", default=None, help="module:attribute of an installed pose estimator (a PoseEstimator); default COLMAP")
    ann.add_argument("--min-frames", type=_positive_int, default=8, help="shortest clip kept, in frames")
    ann.add_argument("--max-reprojection", type=_positive_float, default=1.5, help="largest mean reprojection error kept, in pixels")
    ann.add_argument("--min-parallax", type=float, default=1.0, help="smallest median triangulation angle kept, in degrees")
    ann.add_argument("--max-scale-trend", type=_positive_float, default=None,
                     help="largest change of the depth scale across a clip's points before it reads as distorted (default 0.45; docs/annotation.md)")
    ann.add_argument("--threads", type=_positive_int, default=1, help="COLMAP threads")
    ann.set_defaults(func=_annotate)

    quant = sub.add_parser("quantize", help="quantize a world's DiT to fp8, int8 or nvfp4 with nvidia-modelopt, calibrated on its own "
                           "rollouts (docs/quantization.md)")
    quant.add_argument("--world", default=None, help="world folder to quantize (default: the shipped world)")
    quant.add_argument("--format", required=True, choices=sorted(FORMATS), help="the DiT's linear layers in this format")
    quant.add_argument("--calib-steps", type=_positive_int, default=32, help="env steps of random camera actions to calibrate on")
    quant.add_argument("--out", required=True, help="output world folder (new, or a world folder to replace)")
    quant.add_argument("--seed", type=int, default=0, help="seed of the calibration rollouts")
    quant.add_argument("--device", default="cpu", help="where calibration runs (cpu, cuda, cuda:1, ...)")
    quant.set_defaults(func=_quantize)

    ro = sub.add_parser("rollouts", help="run a policy in batched worlds and write its episodes as an offline data set (docs/rollouts.md)")
    ro.add_argument("--policy", required=True, help="scripted (the goal expert), random, or the path of a PPO model.zip (agents.train_ppo)")
    ro.add_argument("--episodes", type=_positive_int, required=True, help="number of episodes; episode k resets with seed + k")
    ro.add_argument("--out", required=True, help="output folder: new or empty (or an interrupted run of ours, with --resume)")
    ro.add_argument("--env", default="SanaWM-v0", choices=["SanaWM-v0", "SanaWM-GT-v0"], help="the learned world or the ground truth")
    ro.add_argument("--task", default="pointgoal", help="pointgoal, imagegoal, explore or free")
    ro.add_argument("--task-kwargs", nargs="*", default=[], metavar="KEY=VALUE", help="the task's arguments, e.g. max_distance=3")
    ro.add_argument("--env-kwargs", nargs="*", default=[], metavar="KEY=VALUE", help="more gym.make arguments, e.g. size=tiny height=32 checkpoint=DIR")
    ro.add_argument("--num-worlds", type=_positive_int, default=4, help="episodes stepped together (one batched forward in SanaWM-v0)")
    ro.add_argument("--seed", type=int, default=0, help="base seed")
    ro.add_argument("--max-steps", type=_positive_int, default=80, help="per-episode time limit in steps")
    ro.add_argument("--episodes-per-shard", type=_positive_int, default=None, help="a multiple of --num-worlds (default: about 64)")
    ro.add_argument("--resume", action="store_true", help="continue an interrupted run in --out (same arguments) after its last finished shard")
    ro.set_defaults(func=_rollouts)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
