"""Speed of the frame-wise GDN scan against its floor: the PyTorch reference, the PyTorch transition
form (the CPU path, ``kernels/frame_gdn/transitions.py``), the Triton kernels (the fused ones of
``fused_recurrent.py`` and, forward only, the three-phase ones of ``transitions_triton.py``) and
flash-linear-attention's token-wise ``chunk_gated_delta_rule`` at the same token count (a GPU anchor
when installed, not the same recurrence).

    python benchmarks/gdn.py                                  # GPU: sizes up to the paper's, bf16
    python benchmarks/gdn.py --sizes 1,4,6,64,32 1,4,12,64,32  # B,H,T,S,D each (CPU: the PyTorch forms)

Each size runs ``bidirectional_scan`` (forward scan from a carried state + exclusive reverse scan +
normaliser: what a GDN block does) forward, then forward + backward; the variants of a row alternate
(``floor.alternated_ms``), so their ratio holds on a busy machine. The floor is the larger of
FLOPs over the measured matrix rate and bytes over the measured copy bandwidth (METHOD.md in the
device library): FLOPs = 2 scans x 6 S D (D + 1) per frame and head (recall, write, read of the
state and of the normaliser), x 3 with the backward; bytes = every input read and the output
written once (inputs read twice, the output gradient read and the input gradients written with
the backward). Prints a table row by row (median ms, speedup over the reference, measured / floor) and
writes JSON after each size and pass.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
from collections.abc import Callable
from pathlib import Path

import torch
from floor import alternated_ms, measure_ceilings

from kernels.frame_gdn import bidirectional_scan, force_triton
from kernels.frame_gdn.reference import bidirectional_reference
from kernels.frame_gdn.transitions import bidirectional_transitions
from kernels.frame_gdn.transitions_triton import bidirectional_transitions_triton

# 1,20,3,880,112: one streamed chunk of the paper world at 704x1280 (what the env runs per step).
GPU_SIZES = ["1,20,3,880,112", "1,20,21,220,112", "1,20,21,880,112", "1,20,61,880,112", "1,20,121,880,112"]
CPU_SIZES = ["1,4,6,64,32", "1,4,12,64,32", "1,8,12,128,64"]


def parse_size(text: str) -> tuple[int, int, int, int, int]:
    parts = text.split(",")
    if len(parts) != 5 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"a size is five positive integers B,H,T,S,D, got {text!r}")
    b, h, t, s, d = (int(p) for p in parts)
    return b, h, t, s, d


def scan_cost(size: tuple[int, int, int, int, int], itemsize: int, backward: bool) -> tuple[float, float]:
    """(FLOPs, bytes) the bidirectional scan cannot do without, at input element size ``itemsize``."""
    b, h, t, s, d = size
    frames = b * h * t
    flops = frames * 2 * 6 * s * d * (d + 1)
    inputs = frames * (s * (5 * d + 1) + 1) * itemsize  # q, k, v, q_rot, k_rot; beta; gamma
    output = frames * s * d * 4  # fp32
    if backward:
        return 3 * flops, 3 * inputs + 2 * output
    return flops, inputs + output


def make_inputs(size, dtype, device, grad: bool, seed: int) -> tuple[torch.Tensor, ...]:
    b, h, t, s, d = size
    g = torch.Generator(device="cpu").manual_seed(seed)

    def make(*shape, scale: float = 1.0) -> torch.Tensor:
        return (torch.rand(*shape, generator=g) * scale).to(device=device, dtype=dtype).requires_grad_(grad)

    q, q_rot = make(b, h, t, s, d), make(b, h, t, s, d)
    k, k_rot = make(b, h, t, s, d, scale=(d * s) ** -0.5), make(b, h, t, s, d, scale=(d * s) ** -0.5)
    v = make(b, h, t, s, d)
    return q, k, v, q_rot, k_rot, make(b, h, t, s), make(b, h, t, scale=0.5)


def triton_scan(*inputs: torch.Tensor):
    with force_triton(True):
        return bidirectional_scan(*inputs)


def transitions_triton(q, k, v, q_rot, k_rot, beta, gamma):
    return bidirectional_transitions_triton(q, k, v, q_rot, k_rot, beta, gamma, None, None, None, True, 1e-15)


def scan_call(scan: Callable, inputs, backward: bool) -> Callable[[], None]:
    def call() -> None:
        with torch.set_grad_enabled(backward):
            out = scan(*inputs)[0]
            if backward:
                out.float().sum().backward()
    return call


def fla_call(inputs, size, backward: bool) -> Callable[[], None] | None:
    try:
        from fla.ops.gated_delta_rule import chunk_gated_delta_rule
    except ImportError:
        return None
    b, h, t, s, _ = size
    q, k, v = (x.detach().permute(0, 2, 3, 1, 4).reshape(b, t * s, h, -1).contiguous().requires_grad_(backward) for x in inputs[:3])
    g = torch.full((b, t * s, h), -0.01, device=q.device, dtype=q.dtype)
    beta = torch.full((b, t * s, h), 0.5, device=q.device, dtype=q.dtype)

    def call() -> None:
        with torch.set_grad_enabled(backward):
            out = chunk_gated_delta_rule(q, k, v, g, beta)[0]
            if backward:
                out.float().sum().backward()
    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=parse_size, nargs="+", default=None,
                        help=f"B,H,T,S,D sizes (GPU default {' '.join(GPU_SIZES)}; CPU default {' '.join(CPU_SIZES)})")
    parser.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], default=None,
                        help="input dtype (default bfloat16 on a GPU, float32 on the CPU)")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per variant (default 20 GPU, 3 CPU)")
    parser.add_argument("--no-reference", action="store_true", help="skip the PyTorch reference (slow at paper size)")
    parser.add_argument("--out", default="outputs/bench/gdn.json", help="JSON output path")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    sizes = args.sizes or [parse_size(s) for s in (GPU_SIZES if device == "cuda" else CPU_SIZES)]
    dtype = getattr(torch, args.dtype or ("bfloat16" if device == "cuda" else "float32"))
    repeats = args.repeats or (20 if device == "cuda" else 3)
    input_sets = 3 if device == "cuda" else 1

    ceilings = measure_ceilings(device, dtype)
    gpu = torch.cuda.get_device_name() if device == "cuda" else None
    print(f"frame-wise GDN bidirectional scan, {dtype}, {gpu or device}: copy {ceilings['bandwidth_bytes_per_s'] / 1e9:.0f} GB/s, "
          f"matmul {ceilings['matmul_flops_per_s'] / 1e12:.2f} TFLOP/s (measured)")
    print(f"{'B,H,T,S,D':>18} {'pass':>8} {'variant':>18} {'ms':>10} {'vs reference':>13} {'floor ms':>9} {'/ floor':>8}", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for size in sizes:
        for backward in (False, True):
            sets = [make_inputs(size, dtype, device, backward, seed) for seed in range(input_sets)]
            variants: dict[str, list[Callable[[], None]]] = {}
            if not args.no_reference:
                variants["reference"] = [scan_call(bidirectional_reference, x, backward) for x in sets]
            variants["transitions"] = [scan_call(bidirectional_transitions, x, backward) for x in sets]
            if device == "cuda":
                variants["triton"] = [scan_call(triton_scan, x, backward) for x in sets]
                if not backward:
                    variants["triton transitions"] = [scan_call(transitions_triton, x, False) for x in sets]
                fla = [fla_call(x, size, backward) for x in sets]
                if fla[0] is not None:
                    variants["fla token-wise"] = fla
            flops, n_bytes = scan_cost(size, sets[0][0].element_size(), backward)
            floor_ms = 1000 * max(flops / ceilings["matmul_flops_per_s"], n_bytes / ceilings["bandwidth_bytes_per_s"])
            times = alternated_ms(variants, repeats, device)
            reference_ms = statistics.median(times["reference"]) if "reference" in times else None
            for name, ts in times.items():
                ms = statistics.median(ts)
                r = {"size": list(size), "pass": "fwd+bwd" if backward else "fwd", "variant": name, "ms": ms,
                     "speedup_vs_reference": None if reference_ms is None else reference_ms / ms,
                     "flops": flops, "bytes": n_bytes, "floor_ms": floor_ms, "over_floor": ms / floor_ms}
                rows.append(r)
                speedup = "" if r["speedup_vs_reference"] is None else f"{r['speedup_vs_reference']:.2f}x"
                print(f"{','.join(map(str, r['size'])):>18} {r['pass']:>8} {r['variant']:>18} {r['ms']:>10.2f} {speedup:>13} "
                      f"{r['floor_ms']:>9.3f} {r['over_floor']:>7.1f}x", flush=True)
            # Written after every row group: a run stopped by a time limit keeps what it measured.
            out.write_text(json.dumps({
                "benchmark": "gdn", "dtype": str(dtype), "device": device, "gpu": gpu,
                "machine": {"processor": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads(),
                            "torch": torch.__version__},
                "ceilings": ceilings, "results": rows,
            }, indent=2))
            del sets, variants
            if device == "cuda":
                torch.cuda.empty_cache()
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
