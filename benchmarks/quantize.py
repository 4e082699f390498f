"""Quality cost of each quantization format: the shipped world's DiT in fp8, int8 and nvfp4 against full precision.

    python benchmarks/quantize.py                   # both parts (about 16 minutes on a 2-core CPU)
    python benchmarks/quantize.py --skip-eval       # part 1 only

Each format's world is made as ``sanawm quantize`` makes it (``sanawm.quantize.quantize_world``;
nvfp4 through the CPU reference where there is no CUDA), calibrated on ``--calib-steps`` env steps of
random camera actions (seed 0), and written under ``--worlds``.

Part 1: every world, full precision included, rolls out in SanaWM-v0 from the same reset seeds (so
the same first frame and the same noise) along the same random actions (another seed than
calibration's), one thread, for ``--episodes`` x ``--steps`` env steps. Each quantized frame is
scored by its PSNR against the full-precision world's frame at the same point (identical frames
count as 100 dB); reported over all frames and over the first and the last step of the episodes
(the error compounds along a rollout, as the state carries it).

Part 2: ``sanawm eval`` on each world with 6 s splits (4 held-out scenes each; docs/metrics.md):
fidelity PSNR against the ground truth over the first 2 s and the whole 6 s, and action following.

Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import sanawm_env  # noqa: F401  (registers the environments)
from model.quantization import FORMATS
from model.world import DEFAULT_WORLD, read_world_info
from sanawm.quantize import quantize_world
from sanawm_env.evaluation import EvalConfig, evaluate
from sanawm_env.metrics import psnr

PSNR_CAP_DB = 100.0
EVAL_SPLITS = {"smooth": 6.0, "hard": 6.0, "revisit": 6.0}


def rollouts(world: Path, episodes: int, steps: int, seed: int) -> tuple[np.ndarray, float]:
    """Frames (episodes, steps, F, H, W, 3) of ``world`` along seeded random actions, and seconds per step."""
    info = read_world_info(world / "world.json")
    env = gym.make("SanaWM-v0", checkpoint=str(world), size=info.size, height=info.height, width=info.width, threads=1)
    actions = np.random.default_rng(seed).uniform(-1, 1, (episodes, steps, 6)).astype(np.float32)
    frames, seconds = [], 0.0
    for k in range(episodes):
        env.reset(seed=seed + k)
        t0 = time.perf_counter()
        frames.append([env.step(a)[4]["frames"] for a in actions[k]])
        seconds += time.perf_counter() - t0
    env.close()
    return np.asarray(frames), seconds / (episodes * steps)


def against(frames: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """PSNR (dB, capped) of ``frames`` against ``reference``: all frames, the first and the last step."""
    p = np.minimum(psnr(frames, reference), PSNR_CAP_DB)  # (episodes, steps, F)
    return {"psnr_db": float(p.mean()), "psnr_first_step_db": float(p[:, 0].mean()), "psnr_last_step_db": float(p[:, -1].mean()),
            "psnr_worst_frame_db": float(p.min())}


def eval_scores(world: Path, out: Path) -> dict[str, dict[str, float]]:
    """``sanawm eval world=<world> splits.smooth=6 splits.hard=6 splits.revisit=6``: per split, the
    world's fidelity PSNR (first 2 s, whole rollout) and its action following (own - mirrored PSNR)."""
    metrics = evaluate(EvalConfig(world=str(world), out=str(out), splits=dict(EVAL_SPLITS), videos=False, progress=False)).metrics
    return {split: {key: s["worlds"]["world"][key] for key in ("early_psnr", "fidelity_psnr", "follow_psnr")}
            for split, s in metrics["splits"].items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", default=str(DEFAULT_WORLD), help="full-precision world folder (default: the shipped world)")
    parser.add_argument("--formats", nargs="+", choices=sorted(FORMATS), default=list(FORMATS))
    parser.add_argument("--calib-steps", type=int, default=32, help="env steps of calibration rollouts per format")
    parser.add_argument("--episodes", type=int, default=4, help="part 1: rollouts per world")
    parser.add_argument("--steps", type=int, default=20, help="part 1: env steps per rollout (12 raw frames each)")
    parser.add_argument("--seed", type=int, default=100, help="part 1: reset seeds seed, seed + 1, ... and the actions' seed")
    parser.add_argument("--skip-eval", action="store_true", help="skip part 2 (sanawm eval with 6 s splits)")
    parser.add_argument("--worlds", default="outputs/bench/quantize-worlds", help="folder for the quantized worlds and eval outputs")
    parser.add_argument("--out", default="outputs/bench/quantize.json")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    worlds_dir = Path(args.worlds)

    worlds = {"fp32": Path(args.world)}
    rows = {"fp32": {}}
    for fmt in args.formats:
        t0 = time.perf_counter()
        worlds[fmt] = quantize_world(args.world, fmt, args.calib_steps, worlds_dir / fmt)
        rows[fmt] = {"quantize_seconds": time.perf_counter() - t0}
    reference, rows["fp32"]["seconds_per_step"] = rollouts(worlds["fp32"], args.episodes, args.steps, args.seed)
    for fmt in args.formats:
        frames, rows[fmt]["seconds_per_step"] = rollouts(worlds[fmt], args.episodes, args.steps, args.seed)
        rows[fmt].update(against(frames, reference))
    if not args.skip_eval:
        for name, path in worlds.items():
            rows[name]["eval"] = eval_scores(path, worlds_dir / "eval" / name)

    splits = list(EVAL_SPLITS) if not args.skip_eval else []
    header = f"{'format':>6} {'PSNR vs fp32':>12} {'first step':>10} {'last step':>9} {'worst':>6} {'s/step':>7}"
    header += "".join(f" {split + ' 2s/6s (follow)':>26}" for split in splits)
    print(header)
    for name, r in rows.items():
        line = f"{name:>6} " + ("       exact      exact     exact  exact" if name == "fp32" else
                                f"{r['psnr_db']:>12.2f} {r['psnr_first_step_db']:>10.2f} {r['psnr_last_step_db']:>9.2f} {r['psnr_worst_frame_db']:>6.2f}")
        line += f" {r['seconds_per_step']:>7.3f}"
        for split in splits:
            e = r["eval"][split]
            line += f" {e['early_psnr']:>11.2f} / {e['fidelity_psnr']:.2f} ({e['follow_psnr']:+.2f})"
        print(line)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "quantize", "world": args.world, "cpus": os.cpu_count(), "torch": torch.__version__,
                               "cuda": torch.cuda.is_available(), "calib_steps": args.calib_steps, "episodes": args.episodes,
                               "steps": args.steps, "seed": args.seed, "eval_splits": None if args.skip_eval else EVAL_SPLITS,
                               "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
