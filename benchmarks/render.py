"""Frames per second of the procedural renderer (sanawm_env.render) on this machine.

    python benchmarks/render.py [--sizes 64 128] [--batches 1 16 64] [--out outputs/bench/render.json]

Renders batches of random views (spawn points with random heading, pitch and roll) in several
scenes, after a warm-up, and reports the median over repeats. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from model.camera import intrinsics_from_fov
from sanawm_env.render import render
from sanawm_env.scene import generate_scene
from sanawm_env.trajectories import pose_from


def views(scene, rng: np.random.Generator, n: int) -> torch.Tensor:
    poses = []
    for _ in range(n):
        base = scene.spawn_pose(rng).numpy()
        yaw = math.atan2(base[0, 2], base[2, 2])
        poses.append(pose_from(base[:3, 3], yaw, pitch=rng.uniform(-0.4, 0.4), roll=rng.uniform(-0.1, 0.1)))
    return torch.from_numpy(np.stack(poses))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128], help="square image sizes")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16, 64], help="cameras per render call")
    parser.add_argument("--scenes", type=int, default=4, help="scenes to average over")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per scene")
    parser.add_argument("--out", default="outputs/bench/render.json", help="JSON output path")
    args = parser.parse_args()

    rows = []
    for size in args.sizes:
        k = intrinsics_from_fov(80.0, size, size)
        for batch in args.batches:
            times = []
            for seed in range(args.scenes):
                scene = generate_scene(seed)
                poses = views(scene, np.random.default_rng(seed), batch)
                render(scene, poses, k, size, size)  # warm-up
                for _ in range(args.repeats):
                    t0 = time.perf_counter()
                    render(scene, poses, k, size, size)
                    times.append(time.perf_counter() - t0)
            sec = statistics.median(times)
            rows.append({"size": size, "batch": batch, "seconds_per_call": sec, "frames_per_second": batch / sec})

    print(f"{'size':>9} {'batch':>6} {'ms/call':>9} {'frames/s':>10} {'vs batch 1':>11}")
    for r in rows:
        base = next(b for b in rows if b["size"] == r["size"] and b["batch"] == args.batches[0])
        r["speedup_vs_first_batch"] = r["frames_per_second"] / base["frames_per_second"]
        print(f"{r['size']:>4}x{r['size']:<4} {r['batch']:>6} {1000 * r['seconds_per_call']:>9.1f} {r['frames_per_second']:>10.1f} {r['speedup_vs_first_batch']:>10.2f}x")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "benchmark": "render",
        "machine": {"processor": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__},
        "results": rows,
    }, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
