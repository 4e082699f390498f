"""The compiled streaming pass (``model.compiled``) computes what the eager one does, chunk after
chunk, compiles once per shape rather than once per chunk, and stays out of passes with gradient."""

import pytest
import torch
import torch._dynamo
from torch._dynamo.utils import counters

from model import SanaWMDiT, dit_config
from model.camera import se3, so3_exp
from model.chunks import CHUNK_FRAMES
from model.generator import StreamingGenerator, WorldState


def _model() -> SanaWMDiT:
    # Two blocks, a GDN and a softmax one: the smallest DiT that has both (compiling is what costs).
    torch.manual_seed(0)
    m = SanaWMDiT(dit_config("tiny", num_layers=2, softmax_every_n=2)).eval()
    with torch.no_grad():  # wake every zero-initialised branch (camera, Plucker, t_conv, output)
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return m


def _chunk(t: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    poses = se3(so3_exp(torch.randn(1, t, 3, generator=g) * 0.2), torch.randn(1, t, 3, generator=g))
    camera = torch.cat([poses.reshape(1, t, 16), torch.tensor([4.0, 4.0, 2.0, 1.5]).expand(1, t, 4)], dim=-1)
    return camera, torch.randn(1, 24, t, 3, 4, generator=g), torch.randn(1, 8, CHUNK_FRAMES, 3, 4, generator=g)


def _rollout(gen: StreamingGenerator, chunks: int, device: str = "cpu") -> torch.Tensor:
    first = torch.randn(1, 8, 1, 3, 4, generator=torch.Generator().manual_seed(0)).to(device)
    state = gen.prefill(first)
    out = []
    for i in range(chunks):
        camera, plucker, noise = (x.to(device) for x in _chunk(1 + CHUNK_FRAMES if i == 0 else CHUNK_FRAMES, seed=i + 1))
        clean, state = gen.advance(state, camera, plucker, noise)
        out.append(clean)
    return torch.cat(out, dim=2)


def _compiled_against_eager(model: SanaWMDiT, compile: bool | str, chunks: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """A rollout eager and compiled from a fresh dynamo cache: both, checked equal, and the graphs compiled."""
    torch._dynamo.reset()
    counters.clear()
    with torch.inference_mode():
        eager = _rollout(StreamingGenerator(model, steps=2), chunks=chunks)
        compiled = _rollout(StreamingGenerator(model, steps=2, compile=compile), chunks=chunks)
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-5)
    return eager, compiled, counters["stats"]["unique_graphs"]


def test_compiled_stream_equals_eager_and_compiles_one_graph_for_every_chunk_past_the_second():
    eager, compiled, graphs = _compiled_against_eager(_model(), True, chunks=5)
    # The first chunk (no past) and the second (the sink alone in the softmax cache) run eager; every
    # later chunk has the third's shapes, at later frames: one graph, compiled once.
    assert graphs == 1
    assert torch.any(compiled[:, :, -CHUNK_FRAMES:] != eager[:, :, -CHUNK_FRAMES:]), "the last chunk did not run compiled"


def test_two_worlds_compiled_in_one_process_each_use_their_own_weights():
    # Their passes may share one compiled graph (the same code, the weights as its inputs): each must
    # still compute with its own weights, not with those the graph was first compiled with.
    a, b = _model(), _model()
    with torch.no_grad():
        for p in b.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())) * 0.05)
    torch._dynamo.reset()
    with torch.inference_mode():
        eager = [_rollout(StreamingGenerator(m, steps=2), chunks=4) for m in (a, b)]
        compiled = [_rollout(StreamingGenerator(m, steps=2, compile=True), chunks=4) for m in (a, b)]
    assert (eager[0] - eager[1]).abs().max() > 0.1
    for got, want in zip(compiled, eager):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_a_compiled_stream_follows_its_weights():
    model = _model()
    gen = StreamingGenerator(model, steps=2, compile=True)
    with torch.inference_mode():
        before = _rollout(gen, chunks=4)
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(1.1)
        after = _rollout(gen, chunks=4)
        eager = _rollout(StreamingGenerator(model, steps=2), chunks=4)
    assert (after - before).abs().max() > 0.01
    torch.testing.assert_close(after, eager, rtol=1e-4, atol=1e-5)


@pytest.mark.usefixtures("scalar_inductor_kernels")
def test_compile_all_compiles_the_first_chunks_too(monkeypatch):
    model = _model()
    # Compiled by inductor: the two chunks compile=True leaves eager (the later chunks' graph is the first test's).
    _, _, graphs = _compiled_against_eager(model, "all", chunks=2)
    assert graphs == 2
    # Routed, with the compiled pass standing in for itself (no compiling): compile=True sends only the
    # steady chunks through it, "all" every chunk.
    routed = {}
    for compile in (True, "all"):
        gen = StreamingGenerator(model, steps=2, compile=compile)
        seen = routed[compile] = []
        monkeypatch.setattr(gen, "_compiled", lambda x, ts, state, *a, _gen=gen, _seen=seen, **k: _seen.append(_gen.steady(state))
                            or model.stream(x, ts, state, *a, **k))
        with torch.inference_mode():
            _rollout(gen, chunks=4)
    assert set(routed[True]) == {True} and set(routed["all"]) == {False, True}
    with pytest.raises(ValueError, match="compile must be False, True or 'all', got 'yes'"):
        StreamingGenerator(model, compile="yes")


def test_steady_state_is_a_full_softmax_cache():
    model = _model()
    gen, unbounded = StreamingGenerator(model, window=1), StreamingGenerator(model, window=None)
    state = gen.prefill(torch.randn(1, 8, 1, 3, 4))
    steady = []
    with torch.inference_mode():
        for i in range(4):
            steady.append((gen.steady(state.dit), unbounded.steady(state.dit)))
            camera, plucker, noise = _chunk(1 + CHUNK_FRAMES if i == 0 else CHUNK_FRAMES, seed=i + 1)
            _, state = gen.advance(state, camera, plucker, noise)
    assert steady == [(False, False), (False, False), (True, False), (True, False)]


def test_compiling_on_a_cpu_without_a_cpp_compiler_fails_at_once():
    import torch._inductor.config

    with torch._inductor.config.patch({"cpp.cxx": ("no-such-compiler++",)}), pytest.raises(RuntimeError, match="compile=True on the CPU needs a C\\+\\+ compiler.*compile=False"):
        StreamingGenerator(_model(), compile=True)


def test_passes_with_gradient_stay_eager():
    model = _model()
    torch._dynamo.reset()
    counters.clear()
    gen = StreamingGenerator(model, steps=2, compile=True)
    camera, plucker, noise = _chunk(1 + CHUNK_FRAMES, seed=1)
    state = gen.prefill(torch.randn(1, 8, 1, 3, 4))
    clean = gen.denoise_chunk(state, camera, plucker, noise)
    assert clean.requires_grad
    clean.square().mean().backward()
    assert any(p.grad is not None for p in model.parameters())
    assert counters["stats"]["unique_graphs"] == 0, "a pass with gradient must not go through the compiled graph"


@pytest.mark.usefixtures("scalar_inductor_kernels")
def test_compiled_stream_takes_worlds_at_different_frames():
    model = _model()
    eager, compiled = StreamingGenerator(model, steps=2), StreamingGenerator(model, steps=2, compile=True)
    states = []
    with torch.inference_mode():
        for chunks in (3, 4):  # both steady, at different frames
            state = eager.prefill(torch.randn(1, 8, 1, 3, 4, generator=torch.Generator().manual_seed(chunks)))
            for i in range(chunks):
                camera, plucker, noise = _chunk(1 + CHUNK_FRAMES if i == 0 else CHUNK_FRAMES, seed=10 * chunks + i)
                _, state = eager.advance(state, camera, plucker, noise)
            states.append(state)
        batch = WorldState.cat(states)
        assert not isinstance(batch.frames, int) and compiled.steady(batch.dit)
        camera, plucker, noise = (torch.cat([x, y]) for x, y in zip(_chunk(CHUNK_FRAMES, seed=98), _chunk(CHUNK_FRAMES, seed=99)))
        want = eager.denoise_chunk(batch, camera, plucker, noise)
        got = compiled.denoise_chunk(batch, camera, plucker, noise)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.gpu
@pytest.mark.parametrize("guidance", [1.0, 2.0])
def test_cuda_graphs_keep_the_state_and_velocities_the_stream_holds(guidance):
    """On a GPU the compiled pass replays as a CUDA graph, whose outputs the next call's replay reuses:
    the committed state and (with guidance) the first of two velocities must outlive it."""
    model = _model().cuda()
    torch._dynamo.reset()
    counters.clear()
    with torch.inference_mode():
        eager = _rollout(StreamingGenerator(model, steps=2, guidance=guidance), chunks=5, device="cuda")
        compiled = _rollout(StreamingGenerator(model, steps=2, guidance=guidance, compile=True), chunks=5, device="cuda")
    torch.testing.assert_close(compiled, eager, rtol=1e-3, atol=1e-4)
    assert counters["stats"]["unique_graphs"] == 1, dict(counters["stats"])
