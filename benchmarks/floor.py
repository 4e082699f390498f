"""What bounds a benchmark from below: the machine's measured ceilings (copy bandwidth, matrix
rate) and the arithmetic a call cannot avoid (FLOPs counted on the ops it dispatches).

Shared by the benchmark scripts; see METHOD.md of the device library for the method.
"""

from __future__ import annotations

import platform
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map
from torch.utils.flop_counter import flop_registry

from kernels.frame_gdn import force_triton


def fp32_device() -> str:
    """The device to benchmark on (the GPU when there is one), with fp32 matrix products computed as
    written: no TF32 in cuBLAS or cuDNN."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    return "cuda" if torch.cuda.is_available() else "cpu"


def machine_info(device: str) -> dict[str, object]:
    """What a benchmark's JSON records about where it ran."""
    return {"processor": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "device": device, "gpu": torch.cuda.get_device_name(device) if device.startswith("cuda") else None}


def time_ms(fn: Callable[[], object], device: str) -> float:
    """Wall time of one call of ``fn`` in milliseconds (device events on a GPU, whose work is
    asynchronous)."""
    if device == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end)
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def median_ms(fns: list[Callable[[], object]], repeats: int, device: str) -> float:
    """Median wall time of one call in milliseconds, rotating over ``fns`` (one per input set, so
    that repeated calls do not time a warm cache), after one warm-up call of each."""
    for fn in fns:
        fn()
    return statistics.median(time_ms(fns[i % len(fns)], device) for i in range(repeats))


def alternated_ms(fns: dict[str, list[Callable[[], object]]], repeats: int, device: str) -> dict[str, list[float]]:
    """Wall times in ms of ``repeats`` calls per variant, after a warm-up call of each of its calls
    (one per input set; a compiled variant compiles there). The variants alternate which goes first,
    and each rotates over its input sets, so drift of a shared machine and a warm cache fall on all alike."""
    for calls in fns.values():
        for call in calls:
            call()
    times: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            calls = fns[name]
            times[name].append(time_ms(calls[r % len(calls)], device))
    return times


def measure_ceilings(device: str, dtype: torch.dtype) -> dict[str, float]:
    """Copy bandwidth (bytes read + written per second) and matrix rate (FLOP/s in ``dtype``)."""
    n_bytes = (1 << 30) if device == "cuda" else (1 << 27)
    src = torch.rand(n_bytes // 4, device=device)
    dst = torch.empty_like(src)
    copy_ms = median_ms([lambda: dst.copy_(src)], 10, device)
    n = 8192 if device == "cuda" else 1024
    a, b = torch.rand(n, n, device=device, dtype=dtype), torch.rand(n, n, device=device, dtype=dtype)
    mm_ms = median_ms([lambda: a @ b], 10, device)
    return {"bandwidth_bytes_per_s": 2 * n_bytes / (copy_ms / 1000), "matmul_flops_per_s": 2 * n**3 / (mm_ms / 1000)}


_SDPA_CPU = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu


class _ProductsMode(TorchDispatchMode):
    """Shows the products (matrix products, convolutions, attention) run inside the block to
    ``seen``, also under ``torch.inference_mode``, where torch's FlopCounterMode cannot hook modules.
    Composite ops (linear, matmul, einsum) are decomposed so that their products are seen."""

    def seen(self, func, args: tuple, kwargs: dict, out) -> None:
        raise NotImplementedError

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        packet = func._overloadpacket
        if packet in flop_registry or packet is _SDPA_CPU:
            out = func(*args, **kwargs)
            self.seen(func, args, kwargs, out)
            return out
        with self:  # the decomposition's ops come back through this mode
            out = func.decompose(*args, **kwargs)
        return func(*args, **kwargs) if out is NotImplemented else out


class CountFlops(_ProductsMode):
    """Counts the FLOPs of the products run inside the block, per op."""

    def __init__(self) -> None:
        super().__init__()
        self.flops: Counter[str] = Counter()

    @property
    def total(self) -> int:
        return sum(self.flops.values())

    def seen(self, func, args: tuple, kwargs: dict, out) -> None:
        packet = func._overloadpacket
        if packet is _SDPA_CPU:
            q, k = args[0], args[1]  # (B, H, Lq, D), (B, H, Lk, D): QK^T and PV
            self.flops[str(packet)] += 4 * q.shape[0] * q.shape[1] * q.shape[2] * k.shape[2] * q.shape[3]
        else:
            self.flops[str(packet)] += flop_registry[packet](*args, **kwargs, out_val=out)


@dataclass(frozen=True)
class TensorSpec:
    """What ``RecordProducts`` keeps of a tensor argument."""

    shape: tuple[int, ...]
    stride: tuple[int, ...]
    dtype: torch.dtype
    device: torch.device

    def make(self) -> torch.Tensor:
        """A tensor of this layout with random values (zeros for integer and boolean dtypes)."""
        # Filled as flat storage: a broadcast layout (stride 0) has elements that share memory.
        size = 1 + sum((n - 1) * s for n, s in zip(self.shape, self.stride)) if all(self.shape) else 0
        flat = torch.empty(size, dtype=self.dtype, device=self.device)
        flat = flat.normal_() if self.dtype.is_floating_point else flat.zero_()
        return flat.as_strided(self.shape, self.stride)


class RecordProducts(_ProductsMode):
    """Records the products run inside the block, each as its op and its arguments with every tensor
    reduced to a ``TensorSpec``, so that they can be replayed alone (``replay``): what a call would
    cost if everything between its products were free."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[object, tuple, dict]] = []

    def seen(self, func, args: tuple, kwargs: dict, out) -> None:
        spec = lambda x: TensorSpec(tuple(x.shape), x.stride(), x.dtype, x.device) if isinstance(x, torch.Tensor) else x  # noqa: E731
        self.calls.append((func, tree_map(spec, args), tree_map(spec, kwargs)))


# The name benchmarks give the time of a call's products replayed alone (``replay``): the floor at
# the call's own shapes, beside the FLOP floor at the measured 1024^2 matrix rate.
PRODUCTS = "products alone"


def replay(calls: list[tuple[object, tuple, dict]]) -> Callable[[], None]:
    """A function that runs the recorded products in order on random tensors of the recorded layouts
    (each product its own inputs, as in the call it came from)."""
    make = lambda x: x.make() if isinstance(x, TensorSpec) else x  # noqa: E731
    ready = [(func, tree_map(make, args), tree_map(make, kwargs)) for func, args, kwargs in calls]

    def run() -> None:
        for func, args, kwargs in ready:
            func(*args, **kwargs)

    return run


def products_alone(fn: Callable[[], object]) -> Callable[[], None]:
    """``fn``'s products recorded (the PyTorch path of the GDN scans, whose products the recorder
    cannot see inside a Triton kernel) and ready to ``replay`` alone."""
    with force_triton(False), RecordProducts() as recorder:
        fn()
    return replay(recorder.calls)
