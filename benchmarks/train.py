"""Training speed on this machine: samples/s of every stage of ``sanawm train``, and one training
step of our DiT against the public implementation (diffusers' ``SanaWMTransformer3DModel``) beside
the step's FLOP floor. Runs on the GPU when there is one, else on the CPU.

    python benchmarks/train.py                      # small world, 64x64 clips, 11 steps a stage (3 minutes on 2 CPU cores)
    python benchmarks/train.py --world tiny --size 32 --steps 2 --dit tiny --repeats 2   # a smoke run

Part 1 renders procedural clips into a temporary folder and runs the recipe's stages in order, each
from the one before (vae -> latents -> bidirectional -> chunk_causal -> ode -> self_forcing ->
refiner), through ``model.training.trainer.train`` in one process without data workers. A stage's
samples/s is its clips over the wall time of its steps after the first (the first warms up), from
the trainer's per-step metrics (data loading included); "run s" is the whole ``train`` call (building
the models, all steps, the sample videos and the export). ``latents`` takes no steps: it encodes
every clip once and is timed whole, warm-up included.

Part 2 times one training step (forward, MSE loss, backward) of ``model.dit.SanaWMDiT``, eager and
with its blocks compiled (``compile_blocks``, what ``sanawm train compile=true`` runs; not with
``--no-compile``), and of diffusers' model at the same config and weights in fp32, alternating them
within one run, and checks that the gradients agree. The floor is 3x the forward's FLOPs (counted on the ops it
dispatches) over the matrix rate measured in the same run; beside it, "products alone" replays the
products the eager step dispatches, forward and backward, on random tensors of their shapes: the step's
time if all between its products were free. Prints tables and writes JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import statistics
import tempfile
import time
import traceback
import warnings
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from dit_pair import dit_inputs, dit_pair, ours_forward, ref_forward
from floor import PRODUCTS, CountFlops, alternated_ms, fp32_device, machine_info, measure_ceilings, products_alone

from kernels.frame_gdn import force_triton

# Largest relative L2 error allowed between the two models' gradients, per parameter tensor (fp32,
# TF32 off). Summation order alone moves the worst-conditioned gradients (the GDN key short-conv
# weights) by up to 3e-4: on the CPU both fp32 models land that far from an fp64 run of the reference
# while agreeing with each other to 1e-6, and on a GPU ours does; a mistake moves them by O(1).
GRAD_TOLERANCE = 1e-3


# ---- part 1: the stages of the recipe -----------------------------------------------------------


def stage_runs(tmp: Path, clips: Path) -> list[tuple[str, list[str]]]:
    """Each stage's overrides beside the common ones: what it reads, which is what the one before wrote."""
    lat = f"data={tmp / 'latents'}"
    return [
        ("vae", [f"data={clips}"]),
        ("latents", [f"data={clips}", f"vae={tmp / 'vae'}"]),
        ("bidirectional", [lat]),
        ("chunk_causal", [lat, f"init={tmp / 'bidirectional'}"]),
        ("ode", [lat, f"teacher={tmp / 'chunk_causal'}"]),
        ("self_forcing", [lat, f"teacher={tmp / 'chunk_causal'}", f"init={tmp / 'ode'}"]),
        ("refiner", [lat, f"init={tmp / 'self_forcing'}"]),
    ]


def run_stages(args: argparse.Namespace) -> list[dict]:
    """One row per stage: its steady-state samples/s, or the error that stopped it (the stages after
    a failed one are not run)."""
    from model.sizes import world_size
    from model.training.trainer import train
    from sanawm.train import compose
    from sanawm_env.datagen import generate_clips

    raw_frames = 1 + world_size(args.world).vae.temporal_stride * (args.latent_frames - 1)
    common = [f"world={args.world}", "num_workers=0", "progress=false", f"latent_frames={args.latent_frames}",
              f"steps={args.steps}", f"batch_size={args.batch_size}", "log_every=1"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        generate_clips(tmp / "clips", clips=args.clips, frames=raw_frames, size=(args.size, args.size), seed=0, progress=False)
        failed = None
        for stage, overrides in stage_runs(tmp, tmp / "clips"):
            if failed is not None:  # each stage starts from the one before
                rows.append({"stage": stage, "error": f"not run: {failed} failed"})
                continue
            t0 = time.perf_counter()
            try:
                with contextlib.redirect_stdout(io.StringIO()):  # the trainer prints each run's summary
                    train(compose([*common, f"stage={stage}", f"out={tmp / stage}", *overrides]))
            except Exception as e:  # the table still reports the stages that ran
                failed = stage
                rows.append({"stage": stage, "error": f"{type(e).__name__}: {e}"})
                traceback.print_exc()
                continue
            seconds = time.perf_counter() - t0
            if stage == "latents":
                rows.append({"stage": stage, "timed_steps": None, "samples": args.clips, "seconds": seconds,
                             "samples_per_s": args.clips / seconds, "seconds_per_step": None, "run_seconds": seconds})
                continue
            metrics = [json.loads(line) for line in (tmp / stage / "metrics.jsonl").read_text().splitlines()]
            timed = metrics[1:]  # one line per step (log_every=1); the first step warms up
            step_seconds = [args.batch_size / m["samples_per_s"] for m in timed]
            rows.append({"stage": stage, "timed_steps": len(timed), "samples": args.batch_size * len(timed),
                         "seconds": sum(step_seconds), "samples_per_s": args.batch_size * len(timed) / sum(step_seconds),
                         "seconds_per_step": statistics.mean(step_seconds), "step_seconds": step_seconds, "run_seconds": seconds})
    return rows


# ---- part 2: our DiT against the reference ------------------------------------------------------


def train_step(model, forward, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    model.zero_grad(set_to_none=True)
    out = forward(model, inputs)
    F.mse_loss(out, inputs["target"]).backward()
    return out


def grad_errors(ours, ref) -> dict[str, float]:
    """Relative L2 error of our gradient against the reference's, per parameter (by the shared names)."""
    mine = dict(ours.named_parameters())
    errors = {}
    for name, p in ref.named_parameters():
        if p.grad is None:
            if mine[name].grad is not None:
                raise AssertionError(f"{name}: ours has a gradient, the reference none")
            continue
        errors[name] = float((mine[name].grad - p.grad).norm() / p.grad.norm().clamp_min(1e-30))
    return errors


def compare_dit(args: argparse.Namespace, device: str) -> dict:
    cfg, ours, ref = dit_pair(args.dit, device)
    ours.train(), ref.train()
    models = {"ours": ours}
    if args.compile:
        models["ours compiled"] = copy.deepcopy(ours)
        models["ours compiled"].compile_blocks()
    sets = [dit_inputs(cfg, args.dit_batch, args.dit_frames, args.dit_grid, device, seed) for seed in range(3)]

    out_ref = train_step(ref, ref_forward, sets[0]).detach()
    compile_s, forward_error, grad_check = None, {}, {}
    for name, model in models.items():
        start = time.perf_counter()
        out = train_step(model, ours_forward, sets[0]).detach()
        if name == "ours compiled":
            compile_s = time.perf_counter() - start
        forward_error[name] = float((out - out_ref).norm() / out_ref.norm())
        errors = grad_errors(model, ref)
        worst = max(errors, key=errors.get)
        grad_check[name] = {"max": errors[worst], "worst_param": worst, "tensors": len(errors), "equal": errors[worst] <= GRAD_TOLERANCE}

    flops = {}
    for name, model, forward in (("ours", ours, ours_forward), ("diffusers", ref, ref_forward)):
        # The PyTorch path of the GDN scans: the counter cannot see into the Triton kernels.
        with torch.no_grad(), force_triton(False), CountFlops() as counter:
            forward(model, sets[0])
        flops[name] = counter.total
    rate = measure_ceilings(device, torch.float32)["matmul_flops_per_s"]
    # The arithmetic neither model can avoid: the smaller forward count, x3 for forward + backward
    # (the backward's two products per forward product). torch's counter is not asked for the
    # backward itself: it overcounts the weight gradient of grouped convolutions (it ignores the
    # groups), so depthwise convs would count as dense ones.
    floor_ms = 1000 * 3 * min(flops.values()) / rate

    steps = {name: (model, ours_forward) for name, model in models.items()} | {"diffusers": (ref, ref_forward)}
    fns = {name: [lambda m=m, f=f, i=i: train_step(m, f, i) for i in sets] for name, (m, f) in steps.items()}
    # The eager step's products, forward and backward, to replay alone.
    fns[PRODUCTS] = [products_alone(lambda i=i: train_step(ours, ours_forward, i)) for i in sets]
    times = alternated_ms(fns, args.repeats, device)
    ms = {name: statistics.median(t) for name, t in times.items()}
    return {
        "dit": args.dit, "config": asdict(cfg), "batch": args.dit_batch, "latent_frames": args.dit_frames,
        "grid": [args.dit_grid, args.dit_grid], "mode": "bidirectional", "camera": True, "plucker": True,
        "repeats": args.repeats, "ms": ms, "times_ms": times, "over_diffusers": {k: v / ms["diffusers"] for k, v in ms.items()},
        "compile_s": compile_s, "forward_gflop": {k: v / 1e9 for k, v in flops.items()}, "matmul_gflop_per_s": rate / 1e9,
        "floor_ms": floor_ms, "over_floor": {k: v / floor_ms for k, v in ms.items()}, "forward_rel_error": forward_error,
        "grads": grad_check, "grad_tolerance": GRAD_TOLERANCE, "grads_equal": all(g["equal"] for g in grad_check.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", default="small", help="world size of the stages (model.sizes)")
    parser.add_argument("--size", type=int, default=64, help="height and width of the generated clips")
    parser.add_argument("--clips", type=int, default=8, help="clips generated for the stages")
    parser.add_argument("--latent-frames", type=int, default=7, help="latent frames per training clip (1 + 3 k; 7 = 25 raw frames)")
    parser.add_argument("--steps", type=int, default=11,
                        help="steps per stage, the first untimed (1 + 5 k: the timed self_forcing steps then hold its recipe's one generator update in 5)")
    parser.add_argument("--batch-size", type=int, default=1, help="clips per step of the stages")
    parser.add_argument("--dit", default="small", help="DiT preset of part 2 (model.config.DIT_SIZES)")
    parser.add_argument("--dit-batch", type=int, default=2, help="part 2: clips per step")
    parser.add_argument("--dit-frames", type=int, default=7, help="part 2: latent frames")
    parser.add_argument("--dit-grid", type=int, default=8, help="part 2: latent height and width")
    parser.add_argument("--repeats", type=int, default=20, help="part 2: timed steps per model")
    parser.add_argument("--no-compile", dest="compile", action="store_false", help="part 2 without the compiled variant (it compiles for 1.5 minutes with a cold cache)")
    parser.add_argument("--out", default="outputs/bench/train.json", help="JSON output path")
    args = parser.parse_args()
    if args.steps < 2:
        parser.error("--steps must be >= 2 (the first step of each stage warms up and is not timed)")
    warnings.simplefilter("ignore")
    device = fp32_device()  # no TF32: this also makes the gradient check exact up to summation order
    machine = machine_info(device)
    gpu = machine["gpu"]

    stages = run_stages(args)
    print(f"training stages, world {args.world}, {args.size}x{args.size}, {args.latent_frames} latent frames, batch {args.batch_size}, "
          f"{args.steps} steps a stage (first untimed), fp32, {gpu or device}")
    print(f"{'stage':>14} {'timed steps':>12} {'s/step':>8} {'samples/s':>10} {'run s':>7}")
    for r in stages:
        if "error" in r:
            print(f"{r['stage']:>14} failed: {r['error']}")
            continue
        steps = "whole run" if r["timed_steps"] is None else str(r["timed_steps"])
        per_step = "" if r["seconds_per_step"] is None else f"{r['seconds_per_step']:.3f}"
        print(f"{r['stage']:>14} {steps:>12} {per_step:>8} {r['samples_per_s']:>10.2f} {r['run_seconds']:>7.1f}")

    try:
        import diffusers  # noqa: F401
    except ImportError:
        dit = None
        print("\nDiT step against diffusers: skipped (diffusers is not installed; pip install diffusers==0.42.1)")
    else:
        dit = compare_dit(args, device)
        print(f"\nDiT training step (forward + MSE + backward), '{args.dit}' config ({dit['config']['num_layers']} blocks x "
              f"{dit['config']['hidden_size']}), batch {args.dit_batch}, {args.dit_frames} latent frames of {args.dit_grid}x{args.dit_grid}, "
              f"bidirectional, camera + Plucker, fp32, {gpu or device}; median of {args.repeats} alternated steps each")
        print(f"{'model':>14} {'ms':>9} {'floor ms':>9} {'/ floor':>8} {'/ diffusers':>12}")
        for name in dit["ms"]:
            print(f"{name:>14} {dit['ms'][name]:>9.1f} {dit['floor_ms']:>9.2f} {dit['over_floor'][name]:>7.2f}x {dit['over_diffusers'][name]:>11.2f}x")
        if dit["compile_s"] is not None:
            print(f"ours compiled: each block's attention and Mix-FFN through torch.compile (SanaWMDiT.compile_blocks), compiled in {dit['compile_s']:.0f} s")
        print(f"floor: 3 x {min(dit['forward_gflop'].values()):.3f} GFLOP forward (ours {dit['forward_gflop']['ours']:.3f}, diffusers "
              f"{dit['forward_gflop']['diffusers']:.3f}) at {dit['matmul_gflop_per_s']:.0f} GFLOP/s (fp32 matmul measured in this run); "
              "3x the forward because torch's FLOP counter overcounts the backward of grouped convolutions")
        for name, g in dit["grads"].items():
            print(f"{name} against diffusers: {g['tensors']} gradient tensors, largest relative L2 error {g['max']:.1e} ({g['worst_param']}), "
                  f"tolerance {GRAD_TOLERANCE:.0e}: {'equal' if g['equal'] else 'NOT EQUAL'}; forward relative error {dit['forward_rel_error'][name]:.1e}")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "train", "machine": machine, "world": args.world, "size": args.size, "clips": args.clips,
                               "latent_frames": args.latent_frames, "steps": args.steps, "batch_size": args.batch_size,
                               "stages": stages, "dit_step": dit}, indent=2))
    print(f"wrote {out}")
    if any("error" in r for r in stages):
        raise SystemExit("a training stage failed (see above)")
    if dit is not None and not dit["grads_equal"]:
        raise SystemExit(f"gradients differ from the reference beyond {GRAD_TOLERANCE:.0e}")


if __name__ == "__main__":
    main()
