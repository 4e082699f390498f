"""What a training step reads: which clips (a deterministic order that depends on the seed and the
step, not on how many processes share the work) and the random numbers of each clip.

Every clip of a step draws its noise from a generator seeded by ``(seed, step, clip index)``, so a
step's global batch sees the same numbers whether it runs in one process or is split over eight,
and a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler


PER_CLIP = 2**32 - 1  # the "step" of draws that belong to a clip for the whole run (the ODE teacher's noise)


def clip_generator(seed: int, step: int, index: int) -> torch.Generator:
    """The random numbers of clip ``index`` at ``step`` (``PER_CLIP``: the same at every step)."""
    state = np.random.SeedSequence([seed, step, index]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


class StepSampler(Sampler[list[int]]):
    """Clip indices of this process for steps ``start`` .. ``steps - 1``.

    The global order is a fresh permutation of the clips per epoch (seeded by ``(seed, epoch)``); step
    s takes the next ``batch * world`` positions of it and process r the positions r, r + world, ...
    """

    def __init__(self, num_clips: int, batch: int, rank: int, world: int, seed: int, start: int, steps: int) -> None:
        if num_clips <= 0:
            raise ValueError("the data holds no clips")
        self.n, self.batch, self.rank, self.world = num_clips, batch, rank, world
        self.seed, self.start, self.steps = seed, start, steps
        self._perm: tuple[int, torch.Tensor] | None = None  # the current epoch's permutation

    def _position(self, pos: int) -> int:
        epoch, offset = divmod(pos, self.n)
        if self._perm is None or self._perm[0] != epoch:
            self._perm = (epoch, torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 100_003 + epoch)))
        return int(self._perm[1][offset])

    def indices(self, step: int) -> list[int]:
        g = self.batch * self.world
        return [self._position(step * g + j * self.world + self.rank) for j in range(self.batch)]

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start, self.steps):
            yield self.indices(step)

    def __len__(self) -> int:
        return max(self.steps - self.start, 0)


def step_loader(dataset: Dataset, sampler: StepSampler, num_workers: int) -> DataLoader:
    """Batches of this process, one per step, read by ``num_workers`` worker processes."""
    return DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers, persistent_workers=False,
                      prefetch_factor=2 if num_workers else None)


class Indexed(Dataset):
    """A dataset whose items also carry ``index``, the clip's number (it seeds the clip's noise)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {**self.dataset[i], "index": torch.tensor(i)}
