"""model.rollout: per-chunk camera inputs, and the world rollout driven by camera poses, which is what
the env steps (same frames, to the pixel) and runs with or without gradient."""

import warnings

import numpy as np
import pytest
import torch

from model.camera import se3, so3_exp
from model.camera_conditions import camera_conditions
from model.chunks import CHUNK_FRAMES
from model.rollout import WorldRollout, chunk_camera
from model.world import fresh_world
from sanawm_env import SanaWMEnv

IMAGE, STRIDE = (32, 32), (4, 8, 8)
K = torch.tensor([20.0, 20.0, 16.0, 16.0])
F = CHUNK_FRAMES * STRIDE[0]  # raw frames per chunk


def _path(frames, seed=0):
    g = torch.Generator().manual_seed(seed)
    return se3(so3_exp(torch.randn(frames, 3, generator=g, dtype=torch.float64) * 0.3),
               torch.randn(frames, 3, generator=g, dtype=torch.float64))


def test_chunk_camera_streams_the_whole_videos_inputs():
    c2w = _path(1 + 3 * F)  # frame 0 and three chunks
    camera, plucker = camera_conditions(c2w, K.expand(len(c2w), 4), IMAGE, STRIDE)
    latent = 0
    for start in range(1, len(c2w), F):
        cam, pl = chunk_camera(c2w[0], c2w[start : start + F], K, start, IMAGE, STRIDE)
        t = len(cam)
        assert t == (1 + CHUNK_FRAMES if start == 1 else CHUNK_FRAMES) and pl.shape == (6 * STRIDE[0], t, 4, 4)
        torch.testing.assert_close(cam, camera[latent : latent + t], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(pl, plucker[:, latent : latent + t], atol=1e-5, rtol=1e-5)
        latent += t
    assert latent == camera.shape[0]


@pytest.mark.parametrize("kwargs, match", [
    (dict(start_raw_frame=0), r"start_raw_frame must be 1 \+ k \* 12 with k >= 0"),
    (dict(start_raw_frame=5), r"start_raw_frame must be 1 \+ k \* 12"),
    (dict(frames=F - 1), r"poses must have shape \(CHUNK_FRAMES \* temporal stride, 4, 4\) = \(12, 4, 4\)"),
])
def test_chunk_camera_rejects_bad_input(kwargs, match):
    c2w = _path(1 + kwargs.get("frames", F))
    with pytest.raises(ValueError, match=match):
        chunk_camera(c2w[0], c2w[1:], K, kwargs.get("start_raw_frame", 1), IMAGE, STRIDE)


@pytest.mark.parametrize("refine_every", [0, 1])
def test_rollout_along_the_envs_poses_gives_the_envs_frames(refine_every):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="no trained")
        env = SanaWMEnv(size="tiny", height=32, width=32, refine_every=refine_every)
    _, info = env.reset(seed=7)
    start_pose = env.worlds.slots[0].first_c2w.copy()
    rng = np.random.Generator(np.random.PCG64())
    rng.bit_generator.state = env.np_random.bit_generator.state  # the world's noise from here on
    steps = [env.step(a)[4] for a in np.random.default_rng(0).uniform(-1, 1, (3, 6)).astype(np.float32)]

    # The same untrained world, driven by poses alone and with gradients enabled (the env runs in inference mode).
    rollout = WorldRollout(fresh_world("tiny", 32, 32), 1, env.worlds.intrinsics, refine_every=refine_every)
    rollout.start(0, info["frames"][0], start_pose, rng)
    for step in steps:
        out = rollout.step([0], step["poses"][None])
        diff = np.abs(out.frames[0].astype(int) - step["frames"].astype(int)).max()
        assert diff == 0, f"frames differ by up to {diff}"
        assert out.refined[0] == step["refined"]
    slot = rollout.slots[0]
    assert slot.raw_frames == 1 + 3 * F and not slot.history.requires_grad and not slot.decoder.requires_grad


def test_rollout_rejects_bad_input():
    world = fresh_world("tiny", 32, 32, refiner=False)
    with pytest.raises(ValueError, match="refine_every > 0 needs a world with a refiner"):
        WorldRollout(world, 1, K, refine_every=2)
    with pytest.raises(ValueError, match=r"intrinsics must have shape \(4,\)"):
        WorldRollout(world, 1, K[None])
    rollout = WorldRollout(world, 2, K)
    poses = np.broadcast_to(np.eye(4), (1, F, 4, 4))
    with pytest.raises(ValueError, match=r"worlds \[1\] have not been started"):
        rollout.step([1], poses)
    with pytest.raises(ValueError, match=r"poses must have shape \(len\(indices\), frames_per_chunk, 4, 4\) = \(2, 12, 4, 4\)"):
        rollout.step([0, 1], poses)


def test_worlds_at_different_frames_share_one_pass_and_each_gives_its_own_frames():
    """Three worlds whose episodes began at different steps: once all are past their second chunk they step
    in one pass (RoPE positions per world), and each gives the frames it gives stepped alone."""
    world = fresh_world("tiny", 32, 32, refiner=False)
    with torch.no_grad():  # no zero-initialised output: the frames must depend on the positions
        for p in world.dit.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())) * 0.05)
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    paths = [_path(1 + 5 * F, seed=i).numpy() for i in range(3)]
    together, alone = WorldRollout(world, 3, K), WorldRollout(world, 3, K)
    passes = []
    advance = together.gen.advance
    together.gen.advance = lambda state, *a, **k: passes.append(state.frames) or advance(state, *a, **k)
    for step in range(5):
        if step < 3:  # world i begins at step i
            together.start(step, image, paths[step][0], np.random.default_rng(step))
            alone.start(step, image, paths[step][0], np.random.default_rng(step))
        worlds = list(range(min(step + 1, 3)))
        poses = np.stack([paths[i][1 + (step - i) * F : 1 + (step - i + 1) * F] for i in worlds])
        passes.clear()
        got = together.step(worlds, poses).frames
        for row, i in enumerate(worlds):
            want = alone.step([i], poses[row : row + 1]).frames[0]
            diff = np.abs(got[row].astype(int) - want.astype(int))
            assert diff.max() <= 1 and diff.mean() < 0.01, (step, i, diff.max())
    assert len(passes) == 1 and passes[0].tolist() == [13, 10, 7]  # the last step: one pass, each world at its frame
