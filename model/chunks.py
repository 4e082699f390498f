"""How a video is cut into latent chunks, for the chunk-causal models, the streaming generator, the
refiner and the env (one env step is one chunk).

A video's latent frames are cut as SANA-WM trains and streams them: the first chunk is frame 0, the
clean image condition, plus the first ``CHUNK_FRAMES`` generated latents; every later chunk is
``CHUNK_FRAMES`` generated latents.
"""

from __future__ import annotations

CHUNK_FRAMES = 3  # latent frames generated per chunk (one env step)
FIRST_CHUNK_FRAMES = 1 + CHUNK_FRAMES  # the first chunk: frame 0 (the clean image condition) + CHUNK_FRAMES generated


def chunk_bounds(num_frames: int, first_chunk: int = FIRST_CHUNK_FRAMES, chunk: int = CHUNK_FRAMES) -> list[tuple[int, int]]:
    """(start, end) of the chunks of ``num_frames`` latent frames: the first of ``first_chunk`` frames,
    then ``chunk`` each; a last chunk shorter than ``chunk`` joins the one before it (the release's
    training split), and a video no longer than ``first_chunk`` is one chunk.

    >>> chunk_bounds(10)
    [(0, 4), (4, 7), (7, 10)]
    """
    for name, value in (("num_frames", num_frames), ("first_chunk", first_chunk), ("chunk", chunk)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    starts = [0] + list(range(first_chunk, num_frames, chunk))
    if len(starts) > 1 and num_frames - starts[-1] < chunk:
        starts.pop()
    return list(zip(starts, starts[1:] + [num_frames]))
