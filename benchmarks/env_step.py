"""Speed and memory of SanaWM-v0 on this machine.

    python benchmarks/env_step.py                      # all parts (several minutes on a 2-core CPU)
    python benchmarks/env_step.py --long-steps 100     # a shorter long run

Parts 1 and 3 run the shipped (trained) world, or with ``--world hybrid`` the same architecture
untrained: the speed does not depend on the weights.

Part 1: steps/s and seconds of video per wall second at num_envs 1, 4, 16 (one batched forward), in each
of ``--dtypes`` (float32 by default; ``--dtypes float32 bfloat16`` compares the two), eager and with
``--compile`` compiled (``compile=True``; the third of the three warm-up steps compiles, a minute or more on a small CPU), and
the floor: the FLOPs of one world's step over this machine's measured matrix rate, the least time a
world's step can take at any batch size (so the most that batching can gain over num_envs 1).
Part 2: per-step latency and process memory at step 10 and at the end of a long run, for the hybrid
model (fixed-size state, ``--long-steps``) and an all-softmax variant keeping every chunk's K/V (the
cache grows; ``--softmax-steps``), each in its own process. Prints tables and writes JSON.

    python benchmarks/env_step.py --busy-neighbour     # only part 3

Part 3: a world's step on an idle machine and beside a process that keeps one core busy, under the
thread policy (``threads="auto"``, model.threads) and with every core's thread (what torch does by
default), as ratios to the idle step.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from floor import CountFlops, measure_ceilings

from model.precision import DTYPES


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _world(variant: str):
    """The ``small`` world of ``variant``: ``shipped`` (the trained default world), ``hybrid`` (the same
    architecture untrained; speed does not depend on the weights) or ``softmax`` (every block softmax)."""
    from model import CausalVideoVAE, SanaWMDiT, dit_config, world_size
    from model.world import DEFAULT_WORLD, WorldInfo, WorldModel, load_world

    if variant == "shipped":
        return load_world(DEFAULT_WORLD)
    torch.manual_seed(0)
    cfg = dit_config("small", softmax_every_n=1) if variant == "softmax" else dit_config("small")
    return WorldModel(SanaWMDiT(cfg), CausalVideoVAE(world_size("small").vae), None, WorldInfo()).eval()


def throughput(num_envs: int, steps: int, denoise_steps: int, world: str, dtype: str = "float32", compile: bool = False) -> dict:
    import sanawm_env

    env = sanawm_env.SanaWMVectorEnv(num_envs=num_envs, checkpoint=_world(world), steps=denoise_steps, max_episode_steps=None,
                                     dtype=dtype, compile=compile)
    env.reset(seed=0)
    warm = 3  # two chunks of shapes of their own, then the shape every later chunk repeats (compiled there)
    actions = np.random.default_rng(0).uniform(-1, 1, (steps + warm, num_envs, 6)).astype(np.float32)
    t0 = time.perf_counter()
    for a in actions[:warm]:
        env.step(a)
    warm_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for a in actions[warm:]:
        env.step(a)
    sec = (time.perf_counter() - t0) / steps
    video = env.step_seconds * num_envs / sec
    return {"num_envs": num_envs, "dtype": str(env.worlds.dtype).removeprefix("torch."), "compiled": compile, "warm_up_s": warm_s,
            "seconds_per_step": sec, "env_steps_per_s": num_envs / sec, "frames_per_s": num_envs * env.frames_per_step / sec,
            "video_seconds_per_wall_second": video}


def step_floor(denoise_steps: int, world: str) -> dict:
    """FLOPs of one world's step, and that over the measured matrix rate."""
    import sanawm_env

    env = sanawm_env.SanaWMVectorEnv(num_envs=1, checkpoint=_world(world), steps=denoise_steps, max_episode_steps=None)
    env.reset(seed=0)
    action = np.array([[0, 0, 0.3, 0, 0, 0.1]], np.float32)
    for _ in range(2):  # past the first chunk, which also carries frame 0
        env.step(action)
    with CountFlops() as counter:
        env.step(action)
    rate = measure_ceilings("cpu", torch.float32)["matmul_flops_per_s"]
    return {"gflop_per_world_step": counter.total / 1e9, "flops_by_op": dict(counter.flops),
            "matmul_gflop_per_s": rate / 1e9, "min_seconds_per_world_step": counter.total / rate,
            "max_frames_per_s": env.frames_per_step * rate / counter.total}


def long_run(variant: str, long_steps: int, denoise_steps: int, queue) -> None:
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    warnings.simplefilter("ignore")
    from sanawm_env import SanaWMEnv

    env = SanaWMEnv(checkpoint=_world(variant), steps=denoise_steps, window=1 if variant == "hybrid" else None)
    env.reset(seed=0)
    action = np.array([0, 0, 0.3, 0, 0, 0.1], np.float32)
    out, latencies = {}, []
    for step in range(1, long_steps + 1):
        t0 = time.perf_counter()
        env.step(action)
        latencies.append(time.perf_counter() - t0)
        if step in (10, long_steps):
            out[step] = {"rss_mb": _rss_mb(), "state_mb": env.worlds.slots[0].state.dit.nbytes() / 2**20}
    # A step's latency is the median of the 10 steps around it: single steps jitter on a shared CPU.
    out[10]["latency_s"] = float(np.median(latencies[5:15]))
    out[long_steps]["latency_s"] = float(np.median(latencies[-10:]))
    out["latencies_s"] = latencies
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put((variant, out))


def _median_step(threads, steps: int, world: str) -> float:
    import sanawm_env

    env = sanawm_env.SanaWMEnv(checkpoint=_world(world), threads=threads)
    env.reset(seed=0)
    action = np.array([0, 0, 0.3, 0, 0, 0.1], np.float32)
    for _ in range(2):  # warm-up, and the policy's first measurement of the neighbours
        env.step(action)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        env.step(action)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def busy_neighbour(steps: int, world: str) -> list[dict]:
    """Median step time: idle and beside a busy process, under the policy and with all threads."""
    import subprocess
    import sys

    from model.threads import available_cores

    every_core = min(available_cores(), torch.get_num_threads())
    rows = [{"neighbour": "idle", "threads": "auto", "seconds_per_step": _median_step("auto", steps, world)},
            {"neighbour": "idle", "threads": every_core, "seconds_per_step": _median_step(every_core, steps, world)}]
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        rows += [{"neighbour": "one busy core", "threads": "auto", "seconds_per_step": _median_step("auto", steps, world)},
                 {"neighbour": "one busy core", "threads": every_core, "seconds_per_step": _median_step(every_core, max(2, steps // 4), world)}]
    finally:
        spinner.kill()
    idle = rows[0]["seconds_per_step"]
    for r in rows:
        r["vs_idle_auto"] = r["seconds_per_step"] / idle
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-envs", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per throughput point")
    parser.add_argument("--long-steps", type=int, default=500, help="the hybrid model's long run (>= 15)")
    parser.add_argument("--softmax-steps", type=int, default=100,
                        help="the all-softmax model's long run (its cost per step grows with the episode: 500 steps take hours here)")
    parser.add_argument("--denoise-steps", type=int, default=4)
    parser.add_argument("--dtypes", nargs="+", default=["float32"], choices=[*sorted(DTYPES), "auto"],
                        help="part 1: the worlds' precisions (SanaWM-v0's dtype), each at every num_envs")
    parser.add_argument("--compile", action="store_true",
                        help="part 1: also each point with compile=True (its warm-up's third step compiles: a minute or more here)")
    parser.add_argument("--world", choices=["shipped", "hybrid"], default="shipped",
                        help="parts 1 and 3: the trained default world, or the same architecture untrained (part 2 compares "
                             "untrained hybrid and all-softmax models)")
    parser.add_argument("--busy-neighbour", action="store_true", help="only part 3: the step beside a process busy on one core")
    parser.add_argument("--neighbour-steps", type=int, default=8, help="timed steps per part-3 point")
    parser.add_argument("--out", default="outputs/bench/env_step.json")
    args = parser.parse_args()
    if args.busy_neighbour:
        warnings.simplefilter("ignore")
        rows = busy_neighbour(args.neighbour_steps, args.world)
        print(f"{'neighbour':>14} {'threads':>8} {'s/step':>8} {'vs idle':>8}")
        for r in rows:
            print(f"{r['neighbour']:>14} {r['threads']!s:>8} {r['seconds_per_step']:>8.3f} {r['vs_idle_auto']:>7.2f}x")
        out = Path(args.out).with_name("env_step_busy_neighbour.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"benchmark": "env_step_busy_neighbour", "cpus": os.cpu_count(), "torch": torch.__version__,
                                   "world": args.world, "rows": rows}, indent=2))
        print(f"wrote {out}")
        return
    if min(args.long_steps, args.softmax_steps) < 15:
        parser.error("--long-steps and --softmax-steps must be >= 15 (latency at step 10 is the median of steps 6..15)")
    warnings.simplefilter("ignore")

    # The variants alternate at each num_envs, so that a drifting machine's speed falls on all alike.
    modes = [False, True] if args.compile else [False]
    rows = [throughput(n, args.steps, args.denoise_steps, args.world, d, c) for n in args.num_envs for d in args.dtypes for c in modes]
    print(f"{'num_envs':>8} {'dtype':>9} {'compiled':>8} {'s/step':>8} {'steps/s':>8} {'frames/s':>9} {'video s/s':>10} {'vs 1 env':>9} "
          f"{'vs first':>9} {'warm-up s':>10}")
    for r in rows:
        same = [q for q in rows if (q["dtype"], q["compiled"]) == (r["dtype"], r["compiled"])]
        r["frames_per_s_vs_one_env"] = r["frames_per_s"] / same[0]["frames_per_s"]  # the same variant at the first num_envs
        base = next(q for q in rows if q["num_envs"] == r["num_envs"])  # the first variant at the same num_envs
        r["frames_per_s_vs_first_variant"] = r["frames_per_s"] / base["frames_per_s"]
        print(f"{r['num_envs']:>8} {r['dtype']:>9} {r['compiled']!s:>8} {r['seconds_per_step']:>8.3f} {r['env_steps_per_s']:>8.2f} "
              f"{r['frames_per_s']:>9.1f} {r['video_seconds_per_wall_second']:>10.2f} {r['frames_per_s_vs_one_env']:>8.2f}x "
              f"{r['frames_per_s_vs_first_variant']:>8.2f}x {r['warm_up_s']:>10.1f}")
    floor = step_floor(args.denoise_steps, args.world)
    floor["max_frames_per_s_vs_one_env"] = floor["max_frames_per_s"] / rows[0]["frames_per_s"]
    print(f"floor: {floor['gflop_per_world_step']:.1f} GFLOP per world step at {floor['matmul_gflop_per_s']:.0f} GFLOP/s "
          f"(measured matmul) = {floor['min_seconds_per_world_step']:.3f} s, so at most {floor['max_frames_per_s']:.1f} frames/s "
          f"at any num_envs ({floor['max_frames_per_s_vs_one_env']:.2f}x num_envs {rows[0]['num_envs']})")

    queue = mp.get_context("spawn").Queue()
    long = {}
    for variant, steps in (("hybrid", args.long_steps), ("softmax", args.softmax_steps)):
        p = mp.get_context("spawn").Process(target=long_run, args=(variant, steps, args.denoise_steps, queue))
        p.start()
        name, result = queue.get()
        p.join()
        result["steps"] = steps
        long[name] = result
    print(f"\n{'model':>8} {'steps':>6} {'lat@10':>8} {'lat@end':>8} {'ratio':>6} {'rss@10':>8} {'rss@end':>8} {'state@10':>9} {'state@end':>10} (s, MB)")
    for name, r in long.items():
        a, b = r[10], r[r["steps"]]
        r["latency_ratio"] = b["latency_s"] / a["latency_s"]
        print(f"{name:>8} {r['steps']:>6} {a['latency_s']:>8.3f} {b['latency_s']:>8.3f} {r['latency_ratio']:>6.2f} {a['rss_mb']:>8.0f} "
              f"{b['rss_mb']:>8.0f} {a['state_mb']:>9.2f} {b['state_mb']:>10.2f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "env_step", "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                               "torch": torch.__version__, "denoise_steps": args.denoise_steps, "world": args.world, "throughput": rows, "floor": floor,
                               "long_run": {k: {str(s): v for s, v in r.items()} for k, r in long.items()}}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
