"""The streaming pass compiled for inference (``torch.compile`` with inductor).

A world's step is a few passes of the DiT over one small chunk, where eager PyTorch spends most of
the time launching and moving data for small ops around the matrix products (the benchmark
``benchmarks/forward.py`` measures how much). Inductor fuses those ops, and on a GPU the compiled pass
replays as a CUDA graph.

The graph takes the weights as inputs (dynamo lifts a module's parameters so): a compiled stream
follows changes to them, and worlds of one architecture share its graphs. (Inductor's ``freezing``,
which would make them constants, took no effect on the stream, and nothing measured slower without
it.) Passes with gradient stay eager (``model.generator``). The first call of each
new input shape compiles (about a minute on a small CPU); inductor keeps its results in its on-disk
cache (``TORCHINDUCTOR_CACHE_DIR``), so later processes start faster. A streaming generator
(``model.generator``) compiles only the shape a world keeps from its third chunk on.

On the CPU the compiled kernels take their OpenMP thread count when they run (``inductor_options``).
Inductor's C++ wrapper, which helps the training step's compiled blocks, is not used here: on the
streaming pass it gained 1-3% once its kernels follow the thread count, for twice the first compile
(``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from .dit import SanaWMDiT, StreamState


def inductor_options(device: torch.device) -> dict[str, bool]:
    """Inductor options for graphs compiled on ``device``. On the CPU, kernels that take their OpenMP
    thread count when they run: ``model.threads`` may change it from step to step (by default inductor
    bakes in the count at compile time, so a world compiled with two threads would keep them beside a
    busy neighbour, where that policy drops to one), and the on-disk cache then serves every count."""
    return {"cpp.dynamic_threads": True} if device.type == "cpu" else {}


def check_cpp_compiler() -> None:
    """Fail now, with what to do, where inductor would fail at the first compiled step: its CPU kernels
    are C++ that it compiles with the machine's compiler."""
    from torch._inductor.cpp_builder import get_cpp_compiler

    try:
        get_cpp_compiler()
    except RuntimeError as e:
        raise RuntimeError(f"compile=True on the CPU needs a C++ compiler for inductor's kernels ({e}): install g++ or "
                           "clang++ (or point the CXX environment variable at one), or use compile=False") from e


def compile_stream(dit: SanaWMDiT) -> Callable:
    """``dit.stream`` with its pass (``dit.stream_at``) compiled for inference on the DiT's device
    (call it without gradients). The chunk's RoPE positions enter the graph as a tensor, so chunks
    of the same shapes share one graph (and one CUDA graph) at every frame."""
    device = next(dit.parameters()).device
    if device.type == "cpu":
        check_cpp_compiler()
    options = {"triton.cudagraphs": device.type == "cuda"} | inductor_options(device)
    stream = functools.partial(dit.stream, stream_at=torch.compile(dit.stream_at, options=options))
    if device.type != "cuda":
        return stream

    def copied_out(*args, **kwargs) -> tuple[torch.Tensor, StreamState]:
        # A CUDA graph's outputs live in its memory pool, which the next call (a new generation of
        # cudagraph trees, in inference) reuses; a generator keeps the state it commits, and a guided
        # step its first velocity, past the next call.
        velocity, state = stream(*args, **kwargs)
        return velocity.clone(), state.clone()

    return copied_out
