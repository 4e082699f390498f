"""Inference speed of the DiT on this machine against its FLOP floor and against the public
implementation (diffusers' ``SanaWMTransformer3DModel``), eager and compiled.

    python benchmarks/forward.py                  # small DiT, 8x8 latents (several minutes: it compiles)
    python benchmarks/forward.py --no-compile     # eager only
    python benchmarks/forward.py --dit tiny --frames 4 --batches 1 --repeats 3   # a smoke run

Part 1, the full forward (bidirectional, camera + Plucker inputs, an 8-token prompt) over
``--frames`` latent frames, batch 1: ours eager, ours compiled (``torch.compile``, as
``model.compiled``) and diffusers' at the same config and weights (``dit_pair``).

Part 2, the streaming pass the env runs (``SanaWMDiT.stream``, no prompt): one chunk of
``CHUNK_FRAMES`` latent frames against the state of two earlier chunks, at each of ``--batches``
worlds, eager and compiled (``model.compiled.compile_stream``).

Every variant of a row alternates with the others within one run over rotating input sets; the
median of ``--repeats`` calls is reported. The floor is the forward's FLOPs (counted on the ops it
dispatches, PyTorch path of the scans) over the fp32 matrix rate measured in the same run. Beside
the variants, "products alone" replays the products the eager call dispatches (the ops the floor
counts) one after another on random tensors of their shapes and strides: the call's time if all
between its products were free, which says how much of the gap to the floor is the matrix library
at these small shapes and how much the rest. Prints tables and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from dit_pair import dit_inputs, dit_pair, ours_forward, ref_forward
from floor import PRODUCTS, CountFlops, alternated_ms, fp32_device, machine_info, measure_ceilings, products_alone

from kernels.frame_gdn import force_triton
from model.chunks import CHUNK_FRAMES, FIRST_CHUNK_FRAMES
from model.compiled import compile_stream, inductor_options


def flops_of(fn: Callable[[], object]) -> int:
    with force_triton(False), CountFlops() as counter:  # the counter cannot see into Triton kernels
        fn()
    return counter.total


def timed_compile(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def report(what: str, row: dict) -> None:
    """One line per finished row, so a run cut off by a time limit still shows what it measured."""
    cells = ", ".join(f"{name} {ms:.2f} ms" for name, ms in row["ms"].items())
    compiled = "" if row["compile_s"] is None else f" (compiled in {row['compile_s']:.0f} s)"
    print(f"{what}: floor {row['floor_ms']:.2f} ms, {cells}{compiled}", flush=True)


def forward_rows(args: argparse.Namespace, device: str, rate: float) -> list[dict]:
    cfg, ours, ref = dit_pair(args.dit, device)
    ours.eval(), ref.eval()
    compiled = torch.compile(ours, options=inductor_options(torch.device(device))) if args.compile else None
    rows = []
    for frames in args.frames:
        sets = [dit_inputs(cfg, 1, frames, args.grid, device, seed) for seed in range(2)]
        fns = {"ours": [lambda i=i: ours_forward(ours, i) for i in sets]}
        compile_s = None
        if compiled is not None:
            fns["ours compiled"] = [lambda i=i: ours_forward(compiled, i) for i in sets]
            compile_s = timed_compile(fns["ours compiled"][0])
        if ref is not None:
            fns["diffusers"] = [lambda i=i: ref_forward(ref, i) for i in sets]
        fns[PRODUCTS] = [products_alone(f) for f in fns["ours"]]
        ms = {name: statistics.median(t) for name, t in alternated_ms(fns, args.repeats, device).items()}
        floor_ms = 1000 * flops_of(fns["ours"][0]) / rate
        rows.append({"frames": frames, "batch": 1, "ms": ms, "floor_ms": floor_ms, "over_floor": {k: v / floor_ms for k, v in ms.items()},
                     "compile_s": compile_s})
        report(f"forward, {frames} latent frames", rows[-1])
    return rows


def stream_rows(args: argparse.Namespace, device: str, rate: float) -> list[dict]:
    cfg, ours, _ = dit_pair(args.dit, device, reference=False)
    ours.eval()
    compiled = compile_stream(ours) if args.compile else None
    rows = []
    for batch in args.batches:
        sets = []
        for seed in range(2):
            chunks = [dit_inputs(cfg, batch, t, args.grid, device, 10 * seed + j)
                      for j, t in enumerate((FIRST_CHUNK_FRAMES, CHUNK_FRAMES, CHUNK_FRAMES))]
            state = ours.empty_stream()
            for i in chunks[:2]:  # the past: two chunks written (the sink and the window of softmax K/V)
                _, state = ours.stream(i["x"], i["t"] * 0, state, camera=i["camera"], plucker=i["plucker"])
            sets.append((chunks[2], state))
        call = lambda f, i, s: f(i["x"], i["t"], s, camera=i["camera"], plucker=i["plucker"])  # noqa: E731
        fns = {"ours": [lambda i=i, s=s: call(ours.stream, i, s) for i, s in sets]}
        compile_s = None
        if compiled is not None:
            fns["ours compiled"] = [lambda i=i, s=s: call(compiled, i, s) for i, s in sets]
            compile_s = timed_compile(fns["ours compiled"][0])
        fns[PRODUCTS] = [products_alone(f) for f in fns["ours"]]
        ms = {name: statistics.median(t) for name, t in alternated_ms(fns, args.repeats, device).items()}
        floor_ms = 1000 * flops_of(fns["ours"][0]) / rate
        rows.append({"frames": CHUNK_FRAMES, "batch": batch, "ms": ms, "floor_ms": floor_ms,
                     "over_floor": {k: v / floor_ms for k, v in ms.items()}, "compile_s": compile_s})
        report(f"streaming pass, {batch} world(s)", rows[-1])
    return rows


def print_table(title: str, rows: list[dict], key: str) -> None:
    print(title)
    names = list(rows[0]["ms"])
    print(f"{key:>7} {'floor ms':>9} " + " ".join(f"{n + ' ms':>20} {'/ floor':>8}" for n in names) + f" {'compile s':>10}")
    for r in rows:
        cells = " ".join(f"{r['ms'][n]:>20.2f} {r['over_floor'][n]:>7.2f}x" for n in names)
        comp = "" if r["compile_s"] is None else f"{r['compile_s']:.0f}"
        print(f"{r[key]:>7} {r['floor_ms']:>9.2f} {cells} {comp:>10}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dit", default="small", help="DiT preset (model.config.DIT_SIZES)")
    parser.add_argument("--grid", type=int, default=8, help="latent height and width (8: the small world's 64x64 frames)")
    parser.add_argument("--frames", type=int, nargs="+", default=[4, 7, 13], help="part 1: latent frames of the full forward")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 16], help="part 2: worlds per streaming pass")
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per variant")
    parser.add_argument("--no-compile", dest="compile", action="store_false", help="eager only (compiling takes minutes on a small CPU)")
    parser.add_argument("--out", default="outputs/bench/forward.json", help="JSON output path")
    args = parser.parse_args()
    for name in ("frames", "batches"):
        if min(getattr(args, name)) < 1:
            parser.error(f"--{name} must be >= 1")
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    warnings.simplefilter("ignore")
    device = fp32_device()
    machine = machine_info(device)
    gpu = machine["gpu"]
    rate = measure_ceilings(device, torch.float32)["matmul_flops_per_s"]

    with torch.inference_mode():
        forward = forward_rows(args, device, rate)
        stream = stream_rows(args, device, rate)
    where = f"{gpu or device}, {machine['torch_threads']} torch threads, fp32 matmul {rate / 1e9:.0f} GFLOP/s measured in this run"
    print_table(f"DiT '{args.dit}' full forward (bidirectional, camera + Plucker, 8-token prompt), batch 1, "
                f"{args.grid}x{args.grid} latents; {where}", forward, "frames")
    print()
    print_table(f"streaming pass: {CHUNK_FRAMES} latent frames after two chunks, {args.grid}x{args.grid} latents; {where}", stream, "batch")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "forward", "machine": machine, "dit": args.dit, "grid": args.grid,
                               "matmul_gflop_per_s": rate / 1e9, "repeats": args.repeats, "forward": forward, "stream": stream}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
