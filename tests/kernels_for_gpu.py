"""Compile every Triton kernel of ``kernels.frame_gdn`` for an NVIDIA GPU without one: the scans run
on ``meta`` tensors with a stand-in driver that names the target, and each launch becomes Triton's
warm-up (compile, do not run), through ptxas to a cubin. Prints one JSON line per compiled kernel: its
name, constexprs and the shared memory a block needs; fails where a launch gets a tensor that is not on
the inputs' device (a GPU launch would refuse a CPU tensor; the wrappers' own torch operations refuse
one on ``meta`` as on CUDA). Run by ``tests/test_kernels_gdn.py`` in a process of its own (the tests'
processes run Triton in its interpreter).

    python tests/kernels_for_gpu.py --arch 89 --head-dims 112 64 --dtypes bfloat16 float16 float32
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.pop("TRITON_INTERPRET", None)
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")  # Triton 3.9 warns while the default is unset

import torch  # noqa: E402
import triton  # noqa: E402
import triton.runtime.jit as jit  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402

DEVICE = torch.device("meta")


class TargetOnlyDriver:
    """What Triton asks of its driver before a launch: the target, a device and a stream."""

    def __init__(self, arch: int) -> None:
        self.target = GPUTarget("cuda", arch, 32)

    def get_current_target(self) -> GPUTarget:
        return self.target

    def get_current_device(self) -> int:
        return 0

    def get_current_stream(self, device: int | None = None) -> int:
        return 0

    def get_active_torch_device(self) -> torch.device:
        return torch.device("cpu")

    def is_active(self) -> bool:
        return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", type=int, default=90, help="compute capability x 10 (90: H100 / H200, 89: RTX 40xx, 80: A100)")
    parser.add_argument("--head-dims", type=int, nargs="+", default=[112, 64], help="head sizes (112: paper, 64: small)")
    parser.add_argument("--dtypes", nargs="+", default=["bfloat16"], choices=["bfloat16", "float16", "float32"])
    args = parser.parse_args()
    triton.runtime.driver.set_active(TargetOnlyDriver(args.arch))
    run = jit.JITFunction.run

    def compile_only(self, *a, grid, warmup, **kwargs):
        stray = [i for i, x in enumerate(a) if isinstance(x, torch.Tensor) and x.device != DEVICE]
        if stray:
            raise SystemExit(f"{self.fn.__name__}: arguments {stray} are not on the device of the scan's inputs ({DEVICE})")
        kernel = run(self, *a, grid=grid, warmup=True, **kwargs)
        constexprs = {name: value for name, value in kwargs.items() if name.isupper()}
        print(json.dumps({"kernel": self.fn.__name__, "constexprs": constexprs, "shared": kernel.metadata.shared,
                          "cubin_bytes": len(kernel.asm["cubin"])}), flush=True)
        return kernel

    jit.JITFunction.run = compile_only
    from kernels.frame_gdn import bidirectional_scan, force_triton
    from kernels.frame_gdn.transitions_triton import bidirectional_transitions_triton

    def inputs(t: int, s: int, d: int, dtype: torch.dtype, grad: bool = False) -> list[torch.Tensor]:
        """q, k, v, q_rot, k_rot, beta, gamma of 20 heads (meta: no values, which a warm-up never reads)."""
        def empty(*shape: int, dtype: torch.dtype = dtype) -> torch.Tensor:
            return torch.empty(*shape, dtype=dtype, device=DEVICE, requires_grad=grad)

        return [empty(1, 20, t, s, d) for _ in range(5)] + [empty(1, 20, t, s), empty(1, 20, t, dtype=torch.float32)]

    with force_triton(True):
        for d in args.head_dims:
            for dtype in (getattr(torch, name) for name in args.dtypes):
                with torch.no_grad():  # a streamed chunk from a carried state: the fused kernel and the transition form
                    state = torch.empty(1, 20, d, d, device=DEVICE), torch.empty(1, 20, d, device=DEVICE)
                    bidirectional_scan(*inputs(3, 880, d, dtype), initial_kv=state[0], initial_z=state[1])
                    bidirectional_transitions_triton(*inputs(3, 880, d, dtype), None, None, None, True, 1e-15)
                # A chunk-causal training clip: the scans with restarts, forward and backward.
                restarts = [False, True, False, False, True, False, False]
                out, _, _ = bidirectional_scan(*inputs(7, 220, d, dtype, grad=True), resets=restarts)
                out.sum().backward()


if __name__ == "__main__":
    main()
