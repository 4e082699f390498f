"""The precision a world runs in: its name, and ``"auto"``, the one whose matrix products are fast on a device.

bfloat16 halves what every operation moves, but it is only faster where the hardware multiplies it
natively. On CPUs with AMX tiles (Intel Xeon since Sapphire Rapids) oneDNN multiplies bf16 at several
times the fp32 rate, and the shipped world's batched step takes 0.6 to 0.75 of its fp32 time with the same
evaluation scores; on CPUs without them bf16 products are emulated and a step takes several times as long
(``benchmarks/RESULTS.md``). CUDA GPUs multiply bf16 on their tensor cores, and it is the release's
inference precision.
"""

from __future__ import annotations

import os

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def cpu_has_amx() -> bool:
    """Whether oneDNN may use this CPU's AMX tiles: the CPU has them and ``ONEDNN_MAX_CPU_ISA`` (if
    set) does not cap the instruction set below them."""
    amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "ALL").upper()
    return bool(amx) and (isa in ("ALL", "DEFAULT") or "AMX" in isa)


def world_dtype(name: str, device: str | torch.device) -> torch.dtype:
    """The dtype called ``name`` (a key of ``DTYPES``), or for ``"auto"`` bfloat16 where ``device``
    multiplies it natively (a CPU with AMX, a CUDA GPU with bf16 support) and float32 elsewhere."""
    if name == "auto":
        device = torch.device(device)
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
        return torch.bfloat16 if device.type == "cpu" and cpu_has_amx() else torch.float32
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)} or 'auto', got {name!r}")
    return DTYPES[name]
