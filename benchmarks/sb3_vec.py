"""Env steps per second that SB3 sees from N learned worlds: the batched adapter against SB3's make_vec_env.

    python benchmarks/sb3_vec.py                          # 4 and 8 worlds of the shipped world
    python benchmarks/sb3_vec.py --num-envs 8 --steps 20 --rounds 3

``sanawm_env.sb3.make_vec_env`` steps all N worlds of ``SanaWM-v0`` in one forward of one model;
SB3's own ``make_vec_env`` (its default ``DummyVecEnv``) builds N single ``SanaWM-v0`` envs, each
loading its own model, and steps them one after the other. Both run ``vec_env.step`` on the same
random actions of the ``pointgoal`` task; the two alternate within every round (so a shared CPU's
load falls on both alike) and each keeps the median of its rounds. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from floor import machine_info


def build(kind: str, num_envs: int, env_kwargs: dict):
    """The SB3 VecEnv of ``kind``: ``batched`` (our adapter) or ``make_vec_env`` (SB3's, N models)."""
    if kind == "batched":
        from sanawm_env.sb3 import make_vec_env

        return make_vec_env("SanaWM-v0", num_envs, **env_kwargs)
    from stable_baselines3.common.env_util import make_vec_env

    return make_vec_env("SanaWM-v0", n_envs=num_envs, env_kwargs=env_kwargs)


def steps_per_second(venv, actions: np.ndarray) -> float:
    """Env steps per second (all worlds) over ``actions`` (T, N, 6); the first step, which also
    encodes the first frames, is left out of the timing."""
    venv.step(actions[0])
    t0 = time.perf_counter()
    for a in actions[1:]:
        venv.step(a)
    return venv.num_envs * (len(actions) - 1) / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--world", default=None, help="world folder (default: the shipped world)")
    parser.add_argument("--world-size", default="small", help="the world's size (tiny, small, ...), as SanaWM-v0's size")
    parser.add_argument("--num-envs", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--steps", type=int, default=12, help="timed vec_env.step calls per round and variant")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=int, default=64, help="frame height and width")
    parser.add_argument("--device", default="cpu", help="the worlds' device (cpu, cuda)")
    parser.add_argument("--out", type=Path, default=Path("outputs/bench/sb3_vec.json"))
    args = parser.parse_args(argv)
    if args.steps < 1 or args.rounds < 1 or min(args.num_envs) < 1:
        parser.error("--steps, --rounds and --num-envs must be >= 1")

    import sanawm_env  # noqa: F401  (registers the environments)

    # threads=1: every model on one thread, so the batched forward cannot win by using more cores.
    env_kwargs = dict(task="pointgoal", task_kwargs={"max_distance": 3}, max_episode_steps=30, height=args.size, width=args.size,
                      size=args.world_size, threads=1, device=args.device, **({"checkpoint": args.world} if args.world else {}))
    rows = []
    for n in args.num_envs:
        venvs = {kind: build(kind, n, env_kwargs) for kind in ("batched", "make_vec_env")}
        for venv in venvs.values():
            venv.seed(0)
            venv.reset()
        actions = np.random.default_rng(0).uniform(-1, 1, (args.steps + 1, n, 6)).astype(np.float32)
        rates: dict[str, list[float]] = {kind: [] for kind in venvs}
        for _ in range(args.rounds):
            for kind, venv in venvs.items():
                rates[kind].append(steps_per_second(venv, actions))
        for venv in venvs.values():
            venv.close()
        batched, single = float(np.median(rates["batched"])), float(np.median(rates["make_vec_env"]))
        rows.append({"num_envs": n, "batched_steps_per_s": batched, "make_vec_env_steps_per_s": single, "ratio": batched / single,
                     "rounds": rates})

    print(f"SanaWM-v0 pointgoal {args.size}x{args.size}, one thread per model, {args.steps} steps x {args.rounds} rounds (median)")
    print("| worlds | batched adapter steps/s | SB3 make_vec_env steps/s | ratio |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['num_envs']} | {r['batched_steps_per_s']:.2f} | {r['make_vec_env_steps_per_s']:.2f} | {r['ratio']:.2f}x |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": {**machine_info(args.device), "cores": os.cpu_count()},
                                    "world": args.world or "shipped", "size": args.size, "steps": args.steps, "rounds": args.rounds,
                                    "results": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
