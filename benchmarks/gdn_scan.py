"""Speed of the frame-wise GDN scan: the Triton kernels against the PyTorch reference, and against
flash-linear-attention's token-wise ``chunk_gated_delta_rule`` at the same token count when it is
installed (a GPU anchor, not the same recurrence).

    python benchmarks/gdn_scan.py                       # GPU: paper-like shape, bf16, fwd and fwd+bwd
    python benchmarks/gdn_scan.py --shape 1 4 6 64 32   # B H T S D (on the CPU: the reference only)

Prints a table (median milliseconds, speedup over the reference) and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from kernels.frame_gdn import bidirectional_scan, force_triton


def _inputs(b, h, t, s, d, dtype, device, grad):
    g = torch.Generator(device="cpu").manual_seed(0)
    make = lambda *shape, scale=1.0: (torch.rand(*shape, generator=g) * scale).to(device=device, dtype=dtype).requires_grad_(grad)  # noqa: E731
    q, qr = make(b, h, t, s, d), make(b, h, t, s, d)
    k, kr = make(b, h, t, s, d, scale=(d * s) ** -0.5), make(b, h, t, s, d, scale=(d * s) ** -0.5)
    v = make(b, h, t, s, d)
    return q, k, v, qr, kr, make(b, h, t, s), make(b, h, t, scale=0.5)


def _time(fn, repeats: int, device: str) -> float:
    fn()  # warm-up (and compilation)
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=5, metavar=("B", "H", "T", "S", "D"), default=None,
                        help="batch, heads, frames, tokens per frame, head dim (GPU default 1 20 21 880 112)")
    parser.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], default=None)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--out", default="outputs/bench/gdn_scan.json")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    shape = args.shape or ([1, 20, 21, 880, 112] if device == "cuda" else [1, 4, 6, 64, 32])
    dtype = getattr(torch, args.dtype or ("bfloat16" if device == "cuda" else "float32"))
    b, h, t, s, d = shape

    rows = []
    for backward in (False, True):
        inputs = _inputs(b, h, t, s, d, dtype, device, grad=backward)

        def run(triton: bool):
            def call():
                with force_triton(triton), torch.set_grad_enabled(backward):
                    out = bidirectional_scan(*inputs)[0]
                    if backward:
                        out.float().sum().backward()
            return call

        variants = {"reference": run(False)}
        if device == "cuda":
            variants["triton"] = run(True)
            try:
                from fla.ops.gated_delta_rule import chunk_gated_delta_rule

                tok = lambda x: x.transpose(1, 2).reshape(b, t * s, h, -1).contiguous().detach().requires_grad_(backward)  # noqa: E731
                fq, fk, fv = tok(inputs[0]), tok(inputs[1]), tok(inputs[2])
                fg = torch.full((b, t * s, h), -0.01, device=device, dtype=dtype)
                fb = torch.full((b, t * s, h), 0.5, device=device, dtype=dtype)

                def fla():
                    with torch.set_grad_enabled(backward):
                        out = chunk_gated_delta_rule(fq, fk, fv, fg, fb)[0]
                        if backward:
                            out.float().sum().backward()

                variants["fla token-wise (same tokens)"] = fla
            except ImportError:
                pass
        base = None
        for name, fn in variants.items():
            ms = _time(fn, args.repeats if name != "reference" or device == "cuda" else max(2, args.repeats // 3), device)
            base = base or ms
            rows.append({"pass": "fwd+bwd" if backward else "fwd", "variant": name, "ms": ms, "speedup_vs_reference": base / ms})

    print(f"frame-wise GDN scan, B={b} H={h} T={t} S={s} D={d}, {dtype}, {device}")
    print(f"{'pass':>8} {'variant':>30} {'ms':>10} {'vs reference':>13}")
    for r in rows:
        print(f"{r['pass']:>8} {r['variant']:>30} {r['ms']:>10.2f} {r['speedup_vs_reference']:>12.2f}x")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    gpu = torch.cuda.get_device_name() if device == "cuda" else None
    out.write_text(json.dumps({"benchmark": "gdn_scan", "shape": shape, "dtype": str(dtype), "device": device, "gpu": gpu,
                               "machine": platform.processor() or platform.machine(), "results": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
