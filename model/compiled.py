"""The streaming pass compiled for inference (``torch.compile`` with inductor).

A world's step is a few passes of the DiT over one small chunk, where eager PyTorch spends most of
the time launching and moving data for small ops around the matrix products (the benchmark
``benchmarks/forward.py`` measures how much). Inductor fuses those ops; freezing makes the weights
constants of the graph (constant folding, prepacked weights for the CPU's matrix library), and on a
GPU the compiled pass replays as a CUDA graph.

Freezing reads the weights once, at the first call: a compiled stream does not see later changes to
them, so it is for inference of a fixed model (the env), never for training. The first call of each
new input shape compiles (tens of seconds to minutes on a small CPU); inductor keeps its results in
its on-disk cache (``TORCHINDUCTOR_CACHE_DIR``), so later processes start much faster.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .dit import SanaWMDiT


def compile_stream(dit: SanaWMDiT) -> Callable:
    """``dit.stream`` compiled for inference on the DiT's device (call it without gradients)."""
    cuda = next(dit.parameters()).device.type == "cuda"
    return torch.compile(dit.stream, options={"freezing": True, "triton.cudagraphs": cuda})
