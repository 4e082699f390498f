"""The learned world, batched: N worlds that each turn 6-DoF camera motions into video chunks.

One step of a world (the data path of the design):
  camera path      the action's motion spread over the chunk's raw frames (SE(3), metres)
  camera inputs    UCPE rows + Plucker maps of those frames (model.camera_conditions)
  denoise_chunk    few Euler steps against the carried state (read-only)
  commit           one t = 0 pass writes the chunk into the state
  refine           every ``refine_every`` chunks: the refiner re-noises the chunk and integrates it back
                   with frame 0 as its sink and the recent chunks as history
  decode           the VAE's streaming decoder turns the chunk's latents into raw frames

Worlds that stand at the same point of their video (the usual case: they reset together) run in
one batched forward; others run in groups. Each world draws its noise from its own generator, so a
world's frames do not depend on which other worlds it is batched with.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from model.camera import delta_steps, intrinsics_from_fov
from model.camera_conditions import camera_conditions
from model.chunks import CHUNK_FRAMES
from model.generator import StreamingGenerator, WorldState
from model.world import WorldModel

Tensor = torch.Tensor


@dataclass
class WorldSlot:
    """Everything one world carries between steps (a copy of it is a fork of the world)."""

    state: WorldState
    decoder: Tensor | None  # the VAE decoder's cache, None before the first chunk
    first_c2w: np.ndarray  # (4, 4) pose of raw frame 0
    pose: np.ndarray  # (4, 4) current pose (last raw frame)
    raw_frames: int  # raw frames generated so far, frame 0 included
    history: Tensor  # (1, C, <= refine_window, h, w) recent latents, context of the refiner
    first_latent: Tensor  # (1, C, 1, h, w) the refiner's sink
    rng: np.random.Generator

    def clone(self) -> WorldSlot:
        rng = np.random.Generator(type(self.rng.bit_generator)())
        rng.bit_generator.state = self.rng.bit_generator.state
        return WorldSlot(self.state.clone(), None if self.decoder is None else self.decoder.clone(), self.first_c2w.copy(),
                         self.pose.copy(), self.raw_frames, self.history.clone(), self.first_latent.clone(), rng)


class WorldBatch:
    """The worlds of an env (N = 1) or a vector env."""

    def __init__(self, world: WorldModel, num_worlds: int, steps: int, window: int | None, fov_deg: float,
                 refine_every: int, refine_window: int, device: str, dtype: torch.dtype) -> None:
        self.world = world.to(device=device, dtype=dtype)
        self.device, self.dtype = torch.device(device), dtype
        self.info = world.info
        self.height, self.width = world.info.height, world.info.width
        self.stride = world.vae.temporal_stride
        self.frames_per_step = CHUNK_FRAMES * self.stride  # one step is one chunk
        self.gen = StreamingGenerator(world.dit, steps=steps, window=window)
        self.intrinsics = intrinsics_from_fov(fov_deg, self.height, self.width).float()
        if refine_every and world.refiner is None:
            raise ValueError("refine_every > 0 needs a world with a refiner")
        self.refine_every, self.refine_window = refine_every, refine_window
        self.slots: list[WorldSlot | None] = [None] * num_worlds

    # ---- per world -----------------------------------------------------------------------------

    @torch.inference_mode()
    def reset(self, i: int, image: np.ndarray, pose: np.ndarray, rng: np.random.Generator) -> None:
        """Start world ``i`` from ``image`` (H, W, 3) uint8 seen at camera ``pose``."""
        video = torch.tensor(image, device=self.device).permute(2, 0, 1)[None, :, None].to(self.dtype) / 127.5 - 1
        latent = self.world.vae.encode(video)  # (1, C, 1, h, w)
        self.slots[i] = WorldSlot(self.gen.prefill(latent), None, pose.copy(), pose.copy(), 1, latent[:, :, :0], latent, rng)

    # ---- batched step --------------------------------------------------------------------------

    @torch.inference_mode()
    def step(self, indices: list[int], deltas: np.ndarray) -> dict[str, np.ndarray | list]:
        """Advance worlds ``indices`` by camera ``deltas`` (n, 6) in metres / radians.

        Returns frames (n, F, H, W, 3) uint8, poses (n, F, 4, 4), refined (n,) bool, seconds per world.
        """
        f = self.frames_per_step
        poses = np.empty((len(indices), f, 4, 4))
        for row, (i, delta) in enumerate(zip(indices, deltas)):
            steps = delta_steps(torch.from_numpy(np.asarray(delta, dtype=np.float64)), f).numpy()
            pose = self.slots[i].pose
            for k in range(f):
                pose = pose @ steps[k]
                poses[row, k] = pose
        frames = np.empty((len(indices), f, self.height, self.width, 3), dtype=np.uint8)
        refined = np.zeros(len(indices), dtype=bool)
        groups: dict[tuple[int, bool], list[int]] = {}
        for row, i in enumerate(indices):
            slot = self.slots[i]
            groups.setdefault((slot.state.frames, slot.state.pending is None), []).append(row)
        t0 = time.perf_counter()
        for rows in groups.values():
            out, did_refine = self._step_group([indices[r] for r in rows], poses[rows])
            frames[rows] = out
            refined[rows] = did_refine
        seconds = (time.perf_counter() - t0) / max(len(indices), 1)
        for row, i in enumerate(indices):
            slot = self.slots[i]
            slot.pose = poses[row, -1].copy()
            slot.raw_frames += f
        return {"frames": frames, "poses": poses, "refined": refined, "seconds": seconds}

    def _camera(self, slot: WorldSlot, new_poses: np.ndarray) -> tuple[Tensor, Tensor]:
        k = self.intrinsics
        if slot.raw_frames == 1:  # the first chunk also carries frame 0
            c2w = np.concatenate([slot.first_c2w[None], new_poses])
            cam, pl = camera_conditions(c2w, k.expand(len(c2w), 4), (self.height, self.width), self._vae_stride())
        else:
            cam, pl = camera_conditions(new_poses, k.expand(len(new_poses), 4), (self.height, self.width), self._vae_stride(),
                                        first_c2w=slot.first_c2w, start_frame=slot.raw_frames)
        return cam, pl

    def _vae_stride(self) -> tuple[int, int, int]:
        s = self.world.vae.spatial_stride
        return (self.stride, s, s)

    def _step_group(self, worlds: list[int], poses: np.ndarray) -> tuple[np.ndarray, bool]:
        slots = [self.slots[i] for i in worlds]
        first = slots[0].state.pending is not None
        cams, pls, noises = [], [], []
        h, w = self.height // self.world.vae.spatial_stride, self.width // self.world.vae.spatial_stride
        c = self.world.vae.latent_channels
        for slot, p in zip(slots, poses):
            cam, pl = self._camera(slot, p)
            cams.append(cam)
            pls.append(pl)
            g = torch.Generator().manual_seed(int(slot.rng.integers(2**63 - 1)))
            noises.append(torch.randn(1, c, CHUNK_FRAMES, h, w, generator=g))
        dev, dt = self.device, self.dtype
        camera = torch.stack(cams).to(dev, dt)
        plucker = torch.stack(pls).to(dev, dt)
        noise = torch.cat(noises).to(dev, dt)
        state = WorldState.cat([s.state for s in slots]) if len(slots) > 1 else slots[0].state
        clean = self.gen.denoise_chunk(state, camera, plucker, noise)
        new_state = self.gen.commit(state, clean, camera, plucker)
        did_refine = bool(self.refine_every) and (slots[0].raw_frames // self.frames_per_step + 1) % self.refine_every == 0
        if did_refine:
            clean = self._refine(slots, clean)
        latents = torch.cat([state.pending, clean], dim=2) if first else clean
        decoder = None if first else torch.cat([s.decoder for s in slots])
        video, decoder = self.world.vae.decode(latents, decoder)
        if first:
            video = video[:, :, 1:]  # frame 0 is the given image
        frames = ((video.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 4, 1).cpu().numpy()
        for j, slot in enumerate(slots):
            slot.state = new_state.select([j]) if len(slots) > 1 else new_state
            slot.decoder = decoder[j : j + 1]
            slot.history = torch.cat([slot.history, clean[j : j + 1]], dim=2)[:, :, -self.refine_window :]
        return frames, did_refine

    def _refine(self, slots: list[WorldSlot], clean: Tensor) -> Tensor:
        """Re-noise the chunk to the refiner's first sigma and integrate it back, with frame 0 as the
        sink and the recent (already emitted) latents as history."""
        refiner = self.world.refiner
        out = []
        for j, slot in enumerate(slots):
            t = slot.history.shape[2] + 1  # frames before the chunk: the sink and the history
            cache = refiner.capture_sink(slot.first_latent, self.info.fps)
            if slot.history.shape[2]:
                cache = refiner.commit(slot.history, torch.arange(1, t), cache, fps=self.info.fps)
            g = torch.Generator().manual_seed(int(slot.rng.integers(2**63 - 1)))
            out.append(refiner.refine_block(clean[j : j + 1], torch.arange(t, t + CHUNK_FRAMES), cache, self.info.fps, generator=g))
        return torch.cat(out)
