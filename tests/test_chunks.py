"""model.chunks: the one place that says how a video is cut into latent chunks."""

import pytest

from model.chunks import CHUNK_FRAMES, FIRST_CHUNK_FRAMES, chunk_bounds


def test_first_chunk_is_the_image_condition_plus_one_chunk():
    assert (FIRST_CHUNK_FRAMES, CHUNK_FRAMES) == (4, 3)  # the release's split
    assert FIRST_CHUNK_FRAMES == 1 + CHUNK_FRAMES


@pytest.mark.parametrize("frames, expected", [
    (1, [(0, 1)]),
    (3, [(0, 3)]),
    (4, [(0, 4)]),
    (5, [(0, 5)]),  # a last chunk shorter than CHUNK_FRAMES joins the one before
    (7, [(0, 4), (4, 7)]),
    (9, [(0, 4), (4, 9)]),
    (10, [(0, 4), (4, 7), (7, 10)]),
    (121, [(0, 4)] + [(s, s + 3) for s in range(4, 121, 3)]),  # 60 s at the release's scale
])
def test_chunk_bounds_tile_the_video(frames, expected):
    bounds = chunk_bounds(frames)
    assert bounds == expected
    assert bounds[0][0] == 0 and bounds[-1][1] == frames
    assert all(end == start for (_, end), (start, _) in zip(bounds, bounds[1:]))


def test_chunk_bounds_takes_other_lengths():
    assert chunk_bounds(7, first_chunk=1, chunk=2) == [(0, 1), (1, 3), (3, 5), (5, 7)]


@pytest.mark.parametrize("kwargs, name", [(dict(num_frames=0), "num_frames"), (dict(num_frames=5, first_chunk=0), "first_chunk"),
                                          (dict(num_frames=5, chunk=-1), "chunk")])
def test_chunk_bounds_rejects_empty_lengths(kwargs, name):
    with pytest.raises(ValueError, match=f"{name} must be >= 1"):
        chunk_bounds(**kwargs)
