"""Time to generate 60 s of video (961 raw frames at 16 fps) with the streaming 4-step generator:
the world's stage 1 (DiT chunks against the fixed-size state, then the VAE's decoder), per world
size, precision and device. Random weights: the speed does not depend on them.

    python benchmarks/realtime.py                                   # small world, 64x64, fp32, this machine
    python benchmarks/realtime.py --worlds small paper --dtypes bfloat16 --compile   # on a GPU
    python benchmarks/realtime.py --worlds paper --chunks 2         # paper on a CPU: 2 timed chunks, extrapolated

``small`` is our world at 64 x 64 (DiT, VAE; ``tiny``, the tests' world, at 32 x 32); ``paper`` is
the release's 2.6B DiT with the LTX-2 VAE (diffusers' ``AutoencoderKLLTX2Video`` at its default
config) at 704 x 1280, the largest size under 720p that its 32x spatial stride divides. One chunk is 3 latent frames; a 60 s video is frame 0 and
the chunks after it. The first three chunks warm up and are reported apart: the first (which also
carries frame 0) and the second (its softmax cache not yet full) have shapes of their own and run
eager, the third has the shape of every later chunk and compiles with ``--compile``. The 60 s
figure is the median of the later chunks times the chunks of 60 s, since a chunk costs the same at
every point of the video (the state is fixed-size; the per-chunk times in the JSON show it).
``--chunks`` times only that many chunks after the warm-up; ``--profile N`` then runs one more
chunk split into the DiT's passes and the VAE's decoder, and one under ``torch.profiler`` for its N
slowest ops (where the time goes, for the paper world on a GPU). Reports seconds of video per wall
second (above 1 is faster than real time), seconds for the 60 s, and peak memory (GPU memory on a
GPU, the process's peak resident memory on the CPU). Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from floor import machine_info
from torch import profiler

from model.precision import DTYPES

SIZES = {"tiny": (32, 32), "small": (64, 64), "paper": (704, 1280)}  # world -> (height, width)
VIDEO_FRAMES = 961  # 60 s at 16 fps, frame 0 included
FPS = 16.0
WARM_UP_CHUNKS = 3  # two chunks of shapes of their own, then the first of the shape that repeats (compiled there)


def build_world(name: str, device: str, dtype: torch.dtype):
    """A world of ``name`` with random weights, built on ``device`` (the paper's 2.6B would take
    minutes to initialise on the CPU and then copy)."""
    from model import SanaWMDiT, dit_config
    from model.world import WorldInfo, WorldModel, fresh_world

    height, width = SIZES[name]
    torch.manual_seed(0)
    if name != "paper":
        return fresh_world(name, height, width, refiner=False).to(device=device, dtype=dtype)
    from diffusers import AutoencoderKLLTX2Video

    from model import LTX2VideoVAE

    with torch.device(device):
        dit = SanaWMDiT(dit_config("paper"))
        vae = LTX2VideoVAE(AutoencoderKLLTX2Video(spatial_compression_ratio=32, temporal_compression_ratio=8))  # the release's config
    return WorldModel(dit, vae, None, WorldInfo(height=height, width=width, fps=FPS, size="paper")).eval().to(dtype=dtype)


def peak_memory_mb(device: str) -> float:
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def profile_chunk(rollout, step_chunk: Callable[[], float], sync: Callable[[], None], device: str, top: int) -> dict:
    """One more chunk, timed in parts: the DiT's denoising passes (``StreamingGenerator.advance``) and the
    VAE's decoder, each synchronised, and under ``torch.profiler`` the ``top`` ops by self time (device
    time on a GPU): where a chunk's time goes."""
    parts: dict[str, float] = {}

    def timed(name: str, fn: Callable) -> Callable:
        def call(*args, **kwargs):
            sync()
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            sync()
            parts[name] = parts.get(name, 0.0) + time.perf_counter() - t0
            return out
        return call

    gen, vae = rollout.gen, rollout.world.vae
    gen.advance, vae.decode = timed("dit", gen.advance), timed("vae decoder", vae.decode)
    try:
        chunk_s = step_chunk()
    finally:
        del gen.advance, vae.decode  # the instance attributes go; the methods show through again
    activities = [profiler.ProfilerActivity.CPU] + ([profiler.ProfilerActivity.CUDA] if device == "cuda" else [])
    with profiler.profile(activities=activities) as prof:
        step_chunk()
    key = "self_device_time_total" if device == "cuda" else "self_cpu_time_total"
    events = sorted(prof.key_averages(), key=lambda e: getattr(e, key), reverse=True)[:top]
    ops = [{"op": e.key, "calls": e.count, "self_ms": getattr(e, key) / 1000} for e in events]
    return {"chunk_s": chunk_s, "parts_s": parts, "top_ops": ops, "time": "device" if device == "cuda" else "cpu"}


def forward_poses(pose: np.ndarray, frames: int) -> np.ndarray:
    """(frames, 4, 4) camera poses walking 5 cm a frame straight ahead of ``pose``."""
    step = np.eye(4)
    step[2, 3] = 0.05
    return np.stack([pose @ np.linalg.matrix_power(step, k + 1) for k in range(frames)])


def quantize_for_timing(world, fmt: str, intrinsics: torch.Tensor, image: np.ndarray, device: str, dtype: torch.dtype) -> None:
    """The world's DiT quantized to ``fmt`` as ``sanawm quantize`` does (``model.quantization``), calibrated
    on one chunk of its own rollout (not on procedural scenes: the paper world's would render at 720p on the
    CPU); the timed rollout then runs it as the env would (FP8 and INT8 layers multiplying in their format
    where the device can)."""
    from model.quantization import quantize_world_model
    from model.rollout import WorldRollout

    def one_chunk(_) -> None:
        rollout = WorldRollout(world, 1, intrinsics, steps=4, device=device, dtype=dtype)
        rollout.start(0, image, np.eye(4), np.random.default_rng(0))
        rollout.step([0], forward_poses(np.eye(4), rollout.frames_per_chunk)[None])

    with torch.no_grad():
        quantize_world_model(world, fmt, one_chunk)


def run(name: str, dtype_name: str, device: str, chunks: int | None, compile: bool, num_worlds: int, profile: int = 0,
        quantize: str | None = None) -> dict:
    from model.camera import intrinsics_from_fov
    from model.rollout import WorldRollout

    dtype = DTYPES[dtype_name]
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    world = build_world(name, device, dtype)
    height, width = SIZES[name]
    intrinsics = intrinsics_from_fov(80.0, height, width).float()
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    if quantize:
        quantize_for_timing(world, quantize, intrinsics, image, device, dtype)
    rollout = WorldRollout(world, num_worlds, intrinsics, steps=4, device=device, dtype=dtype, compile=compile)
    per_chunk = rollout.frames_per_chunk
    total_chunks = math.ceil((VIDEO_FRAMES - 1) / per_chunk)
    timed = total_chunks - WARM_UP_CHUNKS if chunks is None else min(chunks, total_chunks - WARM_UP_CHUNKS)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    pose = np.eye(4)

    def step_chunk() -> float:
        nonlocal pose
        poses = forward_poses(pose, per_chunk)
        pose = poses[-1]
        t1 = time.perf_counter()
        rollout.step(list(range(num_worlds)), np.repeat(poses[None], num_worlds, axis=0))
        sync()
        return time.perf_counter() - t1

    with torch.inference_mode():
        for i in range(num_worlds):
            rollout.start(i, image, pose, np.random.default_rng(i))
        chunk_seconds = [step_chunk() for _ in range(WARM_UP_CHUNKS + timed)]
        breakdown = profile_chunk(rollout, step_chunk, sync, device, profile) if profile else None
    steady = float(np.median(chunk_seconds[WARM_UP_CHUNKS:]))
    video_s = (VIDEO_FRAMES - 1) / FPS
    seconds_60 = steady * total_chunks
    return {"world": name, "height": height, "width": width, "dtype": dtype_name, "quantization": quantize, "device": device, "compile": compile,
            "num_worlds": num_worlds, "chunks_timed": timed, "chunks_per_60s": total_chunks, "extrapolated": timed < total_chunks - WARM_UP_CHUNKS,
            "warm_up_s": sum(chunk_seconds[:WARM_UP_CHUNKS]), "chunk_s_median": steady, "chunk_seconds": chunk_seconds, "seconds_for_60s": seconds_60,
            "video_seconds_per_wall_second": num_worlds * video_s / seconds_60, "peak_memory_mb": peak_memory_mb(device),
            "profile": breakdown}


def precision(row: dict) -> str:
    """A row's dtype, and its quantization format if any: ``bfloat16+fp8``."""
    return row["dtype"] + (f"+{row['quantization']}" if row["quantization"] else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worlds", nargs="+", default=["small"], choices=sorted(SIZES), help="world sizes")
    parser.add_argument("--dtypes", nargs="+", default=["float32"], choices=sorted(DTYPES), help="precisions")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda")
    parser.add_argument("--chunks", type=int, default=None, help="time only this many chunks after the warm-up (default: all of the 60 s)")
    parser.add_argument("--quantize", nargs="+", default=[], choices=["fp8", "int8", "nvfp4"],
                        help="also time the world quantized to these formats (rows beside the unquantized one)")
    parser.add_argument("--num-worlds", type=int, default=1, help="worlds per batched step")
    parser.add_argument("--compile", action="store_true", help="also time the compiled streaming pass (model.compiled)")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="after the timed chunks, one chunk split into DiT and VAE decoder, and its N slowest ops")
    parser.add_argument("--out", default="outputs/bench/realtime.json", help="JSON output path")
    args = parser.parse_args()
    if args.chunks is not None and args.chunks < 1:
        parser.error("--chunks must be >= 1")
    if args.profile < 0:
        parser.error("--profile must be >= 0")
    if args.num_worlds < 1:
        parser.error("--num-worlds must be >= 1")
    if args.device not in ("cpu", "cuda") or (args.device == "cuda" and not torch.cuda.is_available()):
        parser.error(f"--device must be cpu or cuda (with a GPU), got {args.device!r}")
    warnings.simplefilter("ignore")
    machine = machine_info(args.device)
    gpu = machine["gpu"]
    rows = []
    for name in args.worlds:
        for dtype in args.dtypes:
            for fmt in [None, *args.quantize]:
                for compile in (False, True) if args.compile else (False,):
                    rows.append(run(name, dtype, args.device, args.chunks, compile, args.num_worlds, args.profile, fmt))
                    print(f"{name} {precision(rows[-1])} compile={compile}: {rows[-1]['seconds_for_60s']:.1f} s for 60 s", flush=True)
    print(f"\n60 s of video (961 frames at 16 fps), streaming 4-step generator, stage 1 (DiT + VAE decoder), "
          f"{args.num_worlds} world(s), {gpu or args.device}, {machine['torch_threads']} torch threads")
    print(f"{'world':>6} {'size':>10} {'precision':>15} {'compiled':>8} {'warm-up s':>9} {'chunk s':>8} {'s for 60 s':>11} {'video s / s':>12} {'peak MB':>9} {'timed':>9}")
    for r in rows:
        timed = f"{r['chunks_timed']}/{r['chunks_per_60s'] - WARM_UP_CHUNKS}"
        print(f"{r['world']:>6} {r['height']}x{r['width']:<5} {precision(r):>15} {str(r['compile']):>8} {r['warm_up_s']:>9.2f} {r['chunk_s_median']:>8.3f} "
              f"{r['seconds_for_60s']:>11.1f} {r['video_seconds_per_wall_second']:>12.2f} {r['peak_memory_mb']:>9.0f} {timed:>9}")
    for r in rows:
        if r["profile"]:
            p = r["profile"]
            parts = ", ".join(f"{k} {v:.3f} s" for k, v in p["parts_s"].items())
            print(f"\n{r['world']} {precision(r)} compile={r['compile']}: one chunk {p['chunk_s']:.3f} s ({parts}); slowest ops by self {p['time']} time:")
            for op in p["top_ops"]:
                print(f"  {op['self_ms']:>10.2f} ms {op['calls']:>6} calls  {op['op']}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "realtime", "machine": machine, "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
