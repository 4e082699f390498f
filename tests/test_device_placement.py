"""Every tensor the models make lies on the device of their weights, checked without a GPU: on the
``meta`` device, which (like CUDA) refuses to mix its tensors with CPU tensors other than scalars.
A table built on the CPU inside a pass (RoPE positions, noise levels, masks) fails here as it would
at the first step on a GPU, where a lent GPU's minutes are too few to find it (it once cost one:
the refiner's RoPE tables and sink sigmas were made on the CPU)."""

import pytest
import torch

from model.chunks import CHUNK_FRAMES
from model.generator import StreamingGenerator, WorldState
from model.sizes import world_size
from model.world import fresh_world

META = torch.device("meta")
PLUCKER_CHANNELS = world_size("tiny").dit.chunk_plucker_channels


pytestmark = pytest.mark.usefixtures("meta_device")


@pytest.fixture(scope="module")
def world():
    return fresh_world("tiny", 32, 32).to(META)


def _camera(b: int, t: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Identity poses and Plucker maps for ``t`` latent frames of the tiny world's 4 x 4 latent grid."""
    camera = torch.cat([torch.eye(4).reshape(16).expand(b, t, 16), torch.tensor([4.0, 4.0, 2.0, 2.0]).expand(b, t, 4)], dim=-1)
    return camera.to(META), torch.empty(b, PLUCKER_CHANNELS, t, 4, 4, device=META)


def _noise(b: int, c: int) -> torch.Tensor:
    """A chunk's starting noise on the tiny world's 4 x 4 latent grid."""
    return torch.empty(b, c, CHUNK_FRAMES, 4, 4, device=META)


def test_the_meta_device_refuses_cpu_tensors_as_a_gpu_does():
    with pytest.raises(RuntimeError, match="device"):
        torch.ones(3, device=META) + torch.ones(3)


def test_a_world_streams_encodes_refines_and_decodes_on_the_device_of_its_weights(world):
    dit, vae, refiner = world.dit, world.vae, world.refiner
    b, c = 2, vae.latent_channels
    with torch.no_grad():
        first = vae.encode(torch.empty(b, 3, 1, 32, 32, device=META))
        assert first.device == META and first.shape == (b, c, 1, 4, 4)
        gen = StreamingGenerator(dit, steps=1)
        state, decoder, history = gen.prefill(first), None, []
        for i in range(4):  # the first chunk, the second (sink alone), then steady ones
            camera, plucker = _camera(b, 1 + CHUNK_FRAMES if i == 0 else CHUNK_FRAMES)
            pending = state.pending
            clean, state = gen.advance(state, camera, plucker, _noise(b, c))
            video, decoder = vae.decode(torch.cat([pending, clean], dim=2) if i == 0 else clean, decoder)
            assert video.device == META and video.shape[2] == (1 if i == 0 else 0) + CHUNK_FRAMES * vae.temporal_stride
            history.append(clean)
        # Worlds at different frames in one pass: per-world RoPE positions.
        _, ahead = gen.advance(state, *_camera(b, CHUNK_FRAMES), _noise(b, c))
        clean, _ = gen.advance(WorldState.cat([state.select([0]), ahead.select([1])]), *_camera(b, CHUNK_FRAMES), _noise(b, c))
        assert clean.device == META
        cache = refiner.capture_sink(first)
        cache = refiner.commit(torch.cat(history[:2], dim=2), torch.arange(1, 1 + 2 * CHUNK_FRAMES), cache)
        frames = torch.arange(1 + 2 * CHUNK_FRAMES, 1 + 3 * CHUNK_FRAMES)
        refined = refiner.refine_block(history[2], frames, cache, generator=torch.Generator().manual_seed(0))
        assert refined.device == META and refined.shape == history[2].shape


@pytest.mark.parametrize("mode", ["bidirectional", "chunk_causal"])
def test_a_training_step_runs_forward_and_backward_on_the_device_of_the_weights(world, mode):
    dit = world.dit.train()
    try:
        b, t = 2, 1 + 2 * CHUNK_FRAMES
        camera, plucker = _camera(b, t)
        latents = torch.empty(b, dit.config.in_channels, t, 4, 4, device=META)
        out = dit(latents, torch.empty(b, t, device=META), camera=camera, plucker=plucker, mode=mode)
        out.square().mean().backward()
        grads = [p.grad for p in dit.parameters() if p.grad is not None]
        assert grads and all(g.device == META for g in grads)
    finally:
        dit.zero_grad(set_to_none=True)
        dit.eval()


@pytest.mark.parametrize("refine_every", [0, 2])
def test_worlds_roll_out_on_the_device_of_their_weights(monkeypatch, refine_every):
    """``WorldRollout``, what the env steps: two worlds started a chunk apart (without the refiner they
    share a pass once both are steady, with per-world RoPE positions; with it, the refiner runs on
    every second chunk); frames leave the device only as uint8."""
    import numpy as np

    import model.rollout as rollout
    from model.camera import intrinsics_from_fov

    def to_uint8(video: torch.Tensor) -> np.ndarray:  # the values stay behind on meta; the shape comes out
        b, _, f, h, w = video.shape
        return np.zeros((b, f, h, w, 3), dtype=np.uint8)

    monkeypatch.setattr(rollout, "to_uint8", to_uint8)
    world = fresh_world("tiny", 32, 32)
    worlds = rollout.WorldRollout(world, 2, intrinsics_from_fov(80.0, 32, 32).float(), steps=1, refine_every=refine_every, device="meta")
    batches = []
    advance = worlds.gen.advance
    monkeypatch.setattr(worlds.gen, "advance", lambda state, camera, *args: batches.append(len(camera)) or advance(state, camera, *args))
    rng = np.random.default_rng(0)
    image, pose = np.zeros((32, 32, 3), np.uint8), np.eye(4)
    path = np.broadcast_to(np.eye(4), (1, worlds.frames_per_chunk, 4, 4))
    worlds.start(0, image, pose, rng)
    refined = []
    for chunk in range(4):
        if chunk == 1:
            worlds.start(1, image, pose, rng)
        started = [i for i in (0, 1) if worlds.slots[i] is not None]
        result = worlds.step(started, np.repeat(path, len(started), axis=0))
        assert result.frames.shape == (len(started), worlds.frames_per_chunk, 32, 32, 3)
        refined.append(bool(result.refined.any()))
    assert any(refined) == bool(refine_every)
    assert (2 in batches) == (not refine_every), batches  # worlds at different frames share a pass without the refiner
    assert worlds.slots[0].state.dit.blocks[0].attn.gdn.kv.device == META


def test_the_collision_predictor_answers_on_the_device_of_its_weights():
    """What the env hands it (``SanaWMEnv._contacts``): the uint8 first frame and float64 poses moved to the device."""
    from model.collision import CollisionConfig, CollisionPredictor

    predictor = CollisionPredictor(CollisionConfig(height=32, width=32)).to(META)
    first = torch.empty(2, 32, 32, 3, dtype=torch.uint8, device=META)
    pose, gravity, motion = (torch.empty(*shape, dtype=torch.float64, device=META) for shape in ((2, 4, 4), (2, 3), (2, 6)))
    prob, free = predictor.predict(first, pose, gravity, motion)
    assert prob.device == free.device == META and prob.shape == free.shape == (2,)
