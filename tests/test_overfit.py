"""A tiny DiT learns: it overfits a small batch of procedural clips with camera conditioning."""

import numpy as np
import torch
import torch.nn.functional as F

from model import SanaWMDiT, camera_conditions, dit_config
from model.camera import intrinsics_from_fov
from model.flow import FlowMatching
from sanawm_env.render import render
from sanawm_env.scene import generate_scene
from sanawm_env.trajectories import make_trajectory


def _clips(n=2, frames=5, size=16):
    latents, cams, pls = [], [], []
    k = intrinsics_from_fov(80.0, size, size)
    for i in range(n):
        scene = generate_scene(i)
        poses = make_trajectory("walk", scene, np.random.default_rng(i), frames)
        rgb = render(scene, torch.from_numpy(poses), k, size, size).rgb
        video = rgb.permute(3, 0, 1, 2).float() / 127.5 - 1  # (3, F, H, W)
        # Space-to-depth stands in for the VAE: 4x4 pixels -> 48 channels.
        latents.append(F.pixel_unshuffle(video.transpose(0, 1), 4).transpose(0, 1))
        cam, pl = camera_conditions(poses, k.expand(frames, 4), (size, size), (1, 4, 4))
        cams.append(cam)
        pls.append(pl)
    return torch.stack(latents), torch.stack(cams), torch.stack(pls)


def test_tiny_model_overfits_a_batch_of_clips():
    torch.manual_seed(0)
    x0, cam, pl = _clips()
    model = SanaWMDiT(dit_config("tiny", in_channels=48, chunk_plucker_channels=6))
    fm = FlowMatching()
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(x0.shape, generator=g)
    sigma = fm.sample_sigmas((x0.shape[0], x0.shape[2]), g)
    sigma[:, 0] = 0.0  # frame 0 is the clean image condition
    xs = fm.noisy(x0, noise, sigma)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(60):
        loss = fm.loss(model(xs, sigma * 1000, camera=cam, plucker=pl), x0, noise, sigma)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    print(f"loss {losses[0]:.4f} -> {losses[-1]:.4f} ({losses[0] / losses[-1]:.1f}x)")
    assert losses[-1] < losses[0] / 10
