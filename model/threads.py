"""How many CPU threads the world's forward passes use, chosen so that a busy neighbour cannot stall them.

torch's CPU kernels run on OpenMP threads that spin while they wait for each other. When another
process keeps one of the cores busy, a thread that loses its core holds up the others at every
barrier: on a 2-core machine a ``small`` env step goes from 0.22 s to 5.4 s with 2 threads, while one
thread takes 0.31 s (benchmarks/env_step.py ``--busy-neighbour``). So the policy counts the cores that
other processes keep busy and leaves them out:

    policy = ThreadPolicy("auto")        # or an int: that many threads, whatever the load
    with policy.scope():                 # torch's thread count for the block, restored after
        ...                              # the forward passes

``"auto"`` measures the neighbours between scopes from ``/proc/stat`` (all cores' busy time minus this
process's own), so it follows a neighbour that comes or goes during an episode. Different thread
counts round differently in the last bit, so frames can differ by one level between runs under
different load; a fixed count makes runs on one machine bitwise reproducible. Where ``/proc`` is
missing (not Linux), ``"auto"`` uses every core this process may run on. The ``SANAWM_NUM_THREADS``
environment variable sets the default (an int or ``auto``).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

import torch

ENV_VAR = "SANAWM_NUM_THREADS"


def available_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _busy_ticks() -> tuple[int, int] | None:
    """(all cores' busy clock ticks, this process's CPU ticks) since boot, or None without /proc."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        with open("/proc/self/stat") as f:
            own = f.read().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields[:8]) - idle, int(own[11]) + int(own[12])  # utime + stime of every thread


def parse_threads(value: int | str, name: str = "threads") -> int | str:
    """``"auto"`` or a positive thread count, from an int or its text (a config value, an environment
    variable); anything else is an error naming ``name``."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return value
    raise ValueError(f"{name} must be 'auto' or a positive int, got {value!r}")


def default_threads() -> int | str:
    """``SANAWM_NUM_THREADS`` if set (checked), else ``"auto"``."""
    return parse_threads(os.environ.get(ENV_VAR, "auto"), ENV_VAR)


class ThreadPolicy:
    """The thread count of the world's CPU work (see the module docstring)."""

    min_interval_s = 0.1  # a shorter gap between scopes holds too few clock ticks to measure the neighbours

    def __init__(self, threads: int | str | None = None) -> None:
        self.threads = default_threads() if threads is None else parse_threads(threads)
        self.cap = min(available_cores(), torch.get_num_threads())  # torch's default honours OMP_NUM_THREADS
        self.cores = os.cpu_count() or self.cap  # the neighbours' load is counted over every core
        self.current = self.cap if self.threads == "auto" else self.threads
        self._hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._last = (time.monotonic(), _busy_ticks())

    def neighbour_cores(self) -> float | None:
        """Cores other processes kept busy since the last measurement (None if too soon or no /proc)."""
        now, ticks = time.monotonic(), _busy_ticks()
        then, before = self._last
        if ticks is None or before is None or now - then < self.min_interval_s:
            return None
        self._last = (now, ticks)
        wall = (now - then) * self._hz
        return max(0.0, (ticks[0] - before[0]) - (ticks[1] - before[1])) / wall

    def choose(self) -> int:
        """The thread count for the next block of work."""
        if self.threads != "auto":
            return self.threads
        busy = self.neighbour_cores()
        if busy is not None:
            self.current = max(1, min(self.cap, self.cores - int(busy + 0.5)))
        return self.current

    @contextlib.contextmanager
    def scope(self) -> Iterator[int]:
        """torch's intra-op thread count set to ``choose()`` inside the block, restored after."""
        before = torch.get_num_threads()
        n = self.choose()
        if n != before:
            torch.set_num_threads(n)
        try:
            yield n
        finally:
            if n != before:
                torch.set_num_threads(before)
