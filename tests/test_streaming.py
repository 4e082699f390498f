"""Streaming the DiT chunk by chunk with a carried state equals the chunk-causal forward, the state
stays the same size however long the video runs, and the generator advances a chunk with or without
gradient."""

import pytest
import torch

from model import SanaWMDiT, dit_config
from model.camera import se3, so3_exp
from model.chunks import CHUNK_FRAMES
from model.dit import _map_tensors
from model.generator import StreamingGenerator


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = SanaWMDiT(dit_config("tiny")).eval()
    with torch.no_grad():  # wake every zero-initialised branch (camera, Plucker, t_conv, output)
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return m


def _inputs(t, b=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    poses = se3(so3_exp(torch.randn(b, t, 3, generator=g) * 0.2), torch.randn(b, t, 3, generator=g))
    cam = torch.cat([poses.reshape(b, t, 16), torch.tensor([4.0, 4.0, 2.0, 1.5]).expand(b, t, 4)], dim=-1)
    return dict(
        latents=torch.randn(b, 8, t, 3, 4, generator=g),
        timesteps=torch.randint(0, 1000, (b, t), generator=g).float(),
        prompt_embeds=torch.randn(b, 5, 32, generator=g),
        prompt_mask=torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]])[:b],
        camera=cam,
        plucker=torch.randn(b, 24, t, 3, 4, generator=g),
    )


def _slice(inputs, start, end):
    out = dict(inputs)
    for key in ("latents", "plucker"):
        out[key] = inputs[key][:, :, start:end]
    for key in ("timesteps", "camera"):
        out[key] = inputs[key][:, start:end]
    return out


def test_streaming_equals_the_chunk_causal_forward(model):
    inputs = _inputs(13)  # chunks of 4, 3, 3, 3 latent frames
    with torch.no_grad():
        full = model(**inputs, mode="chunk_causal")
        state, parts = model.empty_stream(), []
        for start, end in [(0, 4), (4, 7), (7, 10), (10, 13)]:
            v, state = model.stream(**_slice(inputs, start, end), state=state, window=None)
            parts.append(v)
    streamed = torch.cat(parts, dim=2)
    err = ((streamed - full).norm() / full.norm()).item()
    print(f"streaming vs chunk-causal: relative L2 error {err:.2e}")
    assert err < 1e-4
    assert state.frames == 13


def test_stream_does_not_modify_its_input_state(model):
    inputs = _inputs(7)
    with torch.no_grad():
        _, state = model.stream(**_slice(inputs, 0, 4), state=model.empty_stream())
        before = state.clone()
        a, _ = model.stream(**_slice(inputs, 4, 7), state=state)
        b, _ = model.stream(**_slice(inputs, 4, 7), state=state)
    assert torch.equal(a, b)
    assert state.blocks[0].attn.gdn.kv.equal(before.blocks[0].attn.gdn.kv)


def test_state_size_is_constant_in_the_number_of_chunks(model):
    inputs = _inputs(4 + 3 * 6, b=1)
    sizes = []
    with torch.no_grad():
        state = model.empty_stream()
        _, state = model.stream(**_slice(inputs, 0, 4), state=state, window=1)
        for i in range(6):
            _, state = model.stream(**_slice(inputs, 4 + 3 * i, 7 + 3 * i), state=state, window=1)
            sizes.append(state.nbytes())
    print("state bytes per chunk:", sizes)
    assert len(set(sizes[1:])) == 1, "sink + one recent chunk: fixed size after the window fills"
    softmax = next(b for b, blk in zip(state.blocks, model.blocks) if blk.attn.softmax)
    assert len(softmax.attn.keys) == 2  # the sink chunk and the previous chunk
    unbounded_sizes = []
    with torch.no_grad():
        state = model.empty_stream()
        for start, end in [(0, 4), (4, 7), (7, 10), (10, 13)]:
            _, state = model.stream(**_slice(inputs, start, end), state=state, window=None)
            unbounded_sizes.append(state.nbytes())
    assert unbounded_sizes == sorted(unbounded_sizes) and unbounded_sizes[-1] > unbounded_sizes[1]


def test_windowed_streaming_forgets_old_chunks_in_softmax_blocks_only(model):
    inputs = _inputs(13, b=1)
    with torch.no_grad():
        full_state, small_state = model.empty_stream(), model.empty_stream()
        for start, end in [(0, 4), (4, 7), (7, 10)]:
            _, full_state = model.stream(**_slice(inputs, start, end), state=full_state, window=None)
            _, small_state = model.stream(**_slice(inputs, start, end), state=small_state, window=1)
        a, _ = model.stream(**_slice(inputs, 10, 13), state=full_state, window=None)
        b, _ = model.stream(**_slice(inputs, 10, 13), state=small_state, window=1)
    assert not torch.allclose(a, b)  # the softmax block no longer sees chunk 1
    with pytest.raises(ValueError, match="window must be >= 0"):
        model.stream(**_slice(inputs, 0, 4), state=model.empty_stream(), window=-2)


def _chunk_inputs(b=2, seed=1):
    """A first latent frame, the first chunk's camera inputs (frame 0 + CHUNK_FRAMES) and its noise."""
    inputs = _inputs(1 + CHUNK_FRAMES, b=b, seed=seed)
    first = inputs["latents"][:, :, :1]
    return first, inputs["camera"], inputs["plucker"], torch.randn_like(inputs["latents"][:, :, 1:])


def _requires_grad(state):
    flags = []
    _map_tensors(state.dit.blocks, lambda t: flags.append(t.requires_grad) or t)
    return flags


def test_advance_is_denoise_then_commit(model):
    gen = StreamingGenerator(model, steps=3)
    first, cam, pl, noise = _chunk_inputs()
    with torch.no_grad():
        state = gen.prefill(first)
        clean = gen.denoise_chunk(state, cam, pl, noise)
        committed = gen.commit(state, clean, cam, pl)
        got, new_state = gen.advance(state, cam, pl, noise)
    assert torch.equal(got, clean) and got.shape == noise.shape
    assert new_state.frames == committed.frames == 1 + CHUNK_FRAMES and new_state.pending is None
    assert new_state.dit.blocks[0].attn.gdn.kv.equal(committed.dit.blocks[0].attn.gdn.kv)


def test_advance_with_an_exit_step_carries_gradient_through_that_step_only(model):
    gen = StreamingGenerator(model, steps=3)
    first, cam, pl, noise = _chunk_inputs()
    with torch.no_grad():
        state = gen.prefill(first)
        full, _ = gen.advance(state, cam, pl, noise)
    clean, new_state = gen.advance(state, cam, pl, noise, exit_step=2)
    # The last step's x0 estimate is the Euler result: equal but for rounding, since without gradients the
    # cross-attention to the one-token null prompt skips its product (``CrossAttention``).
    torch.testing.assert_close(clean, full, atol=1e-6, rtol=1e-5)
    assert clean.requires_grad and not any(_requires_grad(new_state)), "the state is written without gradient"
    clean.square().mean().backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    model.zero_grad(set_to_none=True)
    # No decorator turns gradients off: without exit_step they flow through every step.
    assert gen.denoise_chunk(state, cam, pl, noise).requires_grad
    with pytest.raises(ValueError, match=r"exit_step must be in \[0, 2\]"):
        gen.advance(state, cam, pl, noise, exit_step=3)


def test_states_batch_across_frames_only_where_their_shapes_agree(model):
    """Worlds past the softmax window at different frames batch into one state with per-world frame counts;
    a world still before that (fewer cached chunks) or before its first chunk does not."""
    from model.dit import StreamState
    from model.generator import WorldState

    inputs = _inputs(13, b=1)
    with torch.no_grad():
        states = [model.empty_stream()]
        for start, end in [(0, 4), (4, 7), (7, 10)]:
            states.append(model.stream(**_slice(inputs, start, end), state=states[-1])[1])
    batched = StreamState.cat([states[3], states[2]])  # frames 10 and 7: both keep the sink and one chunk
    assert batched.frames.tolist() == [10, 7] and batched.select([1]).frames == 7
    with pytest.raises(ValueError, match=r"states must have the same shapes to batch them \(worlds at frames \[10, 4\]\)"):
        StreamState.cat([states[3], states[1]])  # frame 4 has cached one chunk only
    with pytest.raises(ValueError, match="worlds must all be before their first chunk, or all past it, to batch them"):
        WorldState.cat([WorldState(states[0], inputs["latents"][:, :, :1]), WorldState(states[2], None)])
