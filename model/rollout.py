"""The world rollout: N worlds that each turn a camera path into latent chunks and video frames, one
chunk at a time; the env steps it, training and evaluation can drive it the same way.

One chunk of a world (the data path of the design):
  camera inputs    UCPE rows + Plucker maps of the chunk's raw-frame poses (``chunk_camera``)
  advance          few Euler steps against the carried state, then one t = 0 pass writes the chunk
                   into it (``StreamingGenerator.advance``)
  refine           every ``refine_every`` chunks: the refiner re-noises the chunk and integrates it back
                   with frame 0 as its sink and the recent chunks as history
  decode           the VAE's streaming decoder turns the chunk's latents into raw frames

Worlds that stand at the same point of their video (the usual case: they start together) run in
one batched forward; others run in groups. Each world draws its noise from its own generator, so a
world's frames do not depend on which other worlds it is batched with.

Nothing here sets the grad mode (the env runs the rollout in inference mode); what a world carries
from one chunk to the next is kept without gradient.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from .camera_conditions import camera_conditions
from .chunks import CHUNK_FRAMES, chunk_bounds
from .generator import StreamingGenerator, WorldState
from .quantization import low_precision_linears
from .video import to_uint8
from .world import WorldModel

Tensor = torch.Tensor


def chunk_camera(first_c2w: Tensor | np.ndarray, poses: Tensor | np.ndarray, intrinsics: Tensor, start_raw_frame: int,
                 image_size: tuple[int, int], vae_stride: tuple[int, int, int]) -> tuple[Tensor, Tensor]:
    """The DiT's camera inputs for one chunk of a streamed video.

    Args:
        first_c2w: (4, 4) camera-to-world pose of the video's raw frame 0 (the image condition).
        poses: (F, 4, 4) poses of the chunk's raw frames, F = ``CHUNK_FRAMES * vae_stride[0]``.
        intrinsics: (4,) (fx, fy, cx, cy) in pixels of ``image_size``, shared by all frames.
        start_raw_frame: raw index of ``poses[0]``: 1 for the first chunk, then 1 + k * F.
        image_size: (H, W) of the raw frames.
        vae_stride: (temporal, spatial, spatial) compression of the VAE.

    Returns:
        camera (T, 20) and plucker (6 * temporal, T, h, w), float32, for the latent frames the DiT sees:
        the first chunk also carries frame 0 (T = 1 + CHUNK_FRAMES), later chunks T = CHUNK_FRAMES.
    """
    frames = CHUNK_FRAMES * vae_stride[0]
    poses = torch.as_tensor(poses, dtype=torch.float64)
    if tuple(poses.shape) != (frames, 4, 4):
        raise ValueError(f"poses must have shape (CHUNK_FRAMES * temporal stride, 4, 4) = {(frames, 4, 4)}, got {tuple(poses.shape)}")
    if start_raw_frame < 1 or (start_raw_frame - 1) % frames:
        raise ValueError(f"start_raw_frame must be 1 + k * {frames} with k >= 0 (where a chunk starts), got {start_raw_frame}")
    first_c2w = torch.as_tensor(first_c2w, dtype=torch.float64)
    if start_raw_frame == 1:  # the first chunk: frame 0 in front, relative poses start there
        c2w = torch.cat([first_c2w[None], poses])
        return camera_conditions(c2w, intrinsics.expand(len(c2w), 4), image_size, vae_stride)
    return camera_conditions(poses, intrinsics.expand(frames, 4), image_size, vae_stride, first_c2w=first_c2w,
                             start_frame=start_raw_frame)


@dataclass
class WorldSlot:
    """Everything one world carries between chunks (a copy of it is a fork of the world)."""

    state: WorldState
    decoder: Tensor | None  # the VAE decoder's cache, None before the first chunk
    first_c2w: np.ndarray  # (4, 4) pose of raw frame 0
    first_image: np.ndarray  # (H, W, 3) uint8 raw frame 0, the image the world started from
    pose: np.ndarray  # (4, 4) pose of the last raw frame so far
    raw_frames: int  # raw frames generated so far, frame 0 included
    history: Tensor  # (1, C, <= refine_window, h, w) recent latents, context of the refiner
    first_latent: Tensor  # (1, C, 1, h, w) the refiner's sink
    rng: np.random.Generator  # the world's noise

    def clone(self) -> WorldSlot:
        rng = np.random.Generator(type(self.rng.bit_generator)())
        rng.bit_generator.state = self.rng.bit_generator.state
        return WorldSlot(self.state.clone(), None if self.decoder is None else self.decoder.clone(), self.first_c2w.copy(),
                         self.first_image.copy(), self.pose.copy(), self.raw_frames, self.history.clone(), self.first_latent.clone(), rng)


@dataclass
class ChunkResult:
    """What ``WorldRollout.step`` returns for the n worlds it advanced."""

    frames: np.ndarray  # (n, F, H, W, 3) uint8, the chunk's raw frames
    refined: np.ndarray  # (n,) bool, the refiner ran on the chunk
    seconds: float  # generation time per world


class WorldRollout:
    """``num_worlds`` worlds of one world model, advanced a chunk at a time along given camera poses.

    Args:
        world: the DiT, VAE and (for ``refine_every``) refiner.
        num_worlds: slots; start each with ``start`` before stepping it.
        intrinsics: (4,) (fx, fy, cx, cy) in pixels of the world's frames, for every frame.
        steps: denoising steps per chunk.
        window: softmax chunks kept besides the sink (None keeps all; the state then grows).
        refine_every: refine every this many chunks (0: never).
        refine_window: latent frames of history the refiner sees.
        device, dtype: where and in which precision the models run.
        compile: compile the DiT's streaming pass (``model.compiled``) for the chunks after a world's
            second, which all have one shape (it compiles at the third; each batch size has its own), or
            with ``"all"`` for every chunk (``StreamingGenerator``).
    """

    def __init__(self, world: WorldModel, num_worlds: int, intrinsics: Tensor, steps: int = 4, window: int | None = 1,
                 refine_every: int = 0, refine_window: int = 6, device: str = "cpu", dtype: torch.dtype = torch.float32,
                 compile: bool | str = False) -> None:
        if tuple(intrinsics.shape) != (4,):
            raise ValueError(f"intrinsics must have shape (4,) = (fx, fy, cx, cy), got {tuple(intrinsics.shape)}")
        if refine_every and world.refiner is None:
            raise ValueError("refine_every > 0 needs a world with a refiner")
        self.world = world.to(device=device, dtype=dtype)
        if world.info.quantization is not None:  # FP8 and INT8 layers multiply in their format where the device can
            low_precision_linears(world.dit)
        self.device, self.dtype = torch.device(device), dtype
        self.height, self.width = world.info.height, world.info.width
        self.frames_per_chunk = CHUNK_FRAMES * world.vae.temporal_stride
        self.intrinsics = intrinsics
        self.gen = StreamingGenerator(world.dit, steps=steps, window=window, compile=compile)
        self.refine_every, self.refine_window = refine_every, refine_window
        self.slots: list[WorldSlot | None] = [None] * num_worlds

    def start(self, i: int, image: np.ndarray, pose: np.ndarray, rng: np.random.Generator) -> None:
        """Start world ``i`` from ``image`` (H, W, 3) uint8 seen at camera ``pose`` (4, 4); its noise
        comes from ``rng``."""
        video = torch.tensor(image, device=self.device).permute(2, 0, 1)[None, :, None].to(self.dtype) / 127.5 - 1
        latent = self.world.vae.encode(video).detach()  # (1, C, 1, h, w)
        self.slots[i] = WorldSlot(self.gen.prefill(latent), None, pose.copy(), image.copy(), pose.copy(), 1, latent[:, :, :0], latent, rng)

    def step(self, indices: list[int], poses: np.ndarray) -> ChunkResult:
        """Advance worlds ``indices`` by one chunk along camera-to-world ``poses`` (n, F, 4, 4) of the
        chunk's raw frames (F = ``frames_per_chunk``, metres)."""
        expected = (len(indices), self.frames_per_chunk, 4, 4)
        if np.shape(poses) != expected:
            raise ValueError(f"poses must have shape (len(indices), frames_per_chunk, 4, 4) = {expected}, got {np.shape(poses)}")
        unstarted = [i for i in indices if self.slots[i] is None]
        if unstarted:
            raise ValueError(f"worlds {unstarted} have not been started; call start() first")
        frames = np.empty((len(indices), self.frames_per_chunk, self.height, self.width, 3), dtype=np.uint8)
        refined = np.zeros(len(indices), dtype=bool)
        # Worlds share a pass where their states have the same shapes, at whatever frame (RoPE positions
        # are per world); with the refiner on, only at the same frame (its chunks are counted per group).
        groups: dict[tuple, list[int]] = {}
        for row, i in enumerate(indices):
            slot = self.slots[i]
            key = (slot.state.pending is None, slot.state.dit.shapes(),
                   None if slot.decoder is None else tuple(slot.decoder.shape), slot.raw_frames if self.refine_every else None)
            groups.setdefault(key, []).append(row)
        t0 = time.perf_counter()
        for rows in groups.values():
            frames[rows], refined[rows] = self._step_group([indices[r] for r in rows], poses[rows])
        seconds = (time.perf_counter() - t0) / max(len(indices), 1)
        for row, i in enumerate(indices):
            slot = self.slots[i]
            slot.pose = np.array(poses[row, -1])
            slot.raw_frames += self.frames_per_chunk
        return ChunkResult(frames, refined, seconds)

    def _step_group(self, worlds: list[int], poses: np.ndarray) -> tuple[np.ndarray, bool]:
        slots = [self.slots[i] for i in worlds]
        first = slots[0].state.pending is not None
        vae = self.world.vae
        h, w = self.height // vae.spatial_stride, self.width // vae.spatial_stride
        stride = (vae.temporal_stride, vae.spatial_stride, vae.spatial_stride)
        cams, pls, noises = [], [], []
        for slot, p in zip(slots, poses):
            cam, pl = chunk_camera(slot.first_c2w, p, self.intrinsics, slot.raw_frames, (self.height, self.width), stride)
            cams.append(cam)
            pls.append(pl)
            noises.append(torch.randn(1, vae.latent_channels, CHUNK_FRAMES, h, w, generator=_torch_generator(slot.rng)))
        dev, dt = self.device, self.dtype
        camera, plucker, noise = torch.stack(cams).to(dev, dt), torch.stack(pls).to(dev, dt), torch.cat(noises).to(dev, dt)
        state = WorldState.cat([s.state for s in slots]) if len(slots) > 1 else slots[0].state
        clean, new_state = self.gen.advance(state, camera, plucker, noise)
        chunk = slots[0].raw_frames // self.frames_per_chunk + 1  # this chunk's number, from 1
        did_refine = bool(self.refine_every) and chunk % self.refine_every == 0
        if did_refine:
            clean = self._refine(slots, clean)
        latents = torch.cat([state.pending, clean], dim=2) if first else clean
        decoder = None if first else torch.cat([s.decoder for s in slots])
        video, decoder = vae.decode(latents, decoder)
        if first:
            video = video[:, :, 1:]  # frame 0 is the given image
        frames = to_uint8(video)
        for j, slot in enumerate(slots):
            slot.state = new_state.select([j]) if len(slots) > 1 else new_state
            slot.decoder = decoder[j : j + 1].detach()
            history = torch.cat([slot.history, clean[j : j + 1].detach()], dim=2)
            slot.history = history[:, :, history.shape[2] - min(self.refine_window, history.shape[2]) :]  # a window of 0 keeps none
        return frames, did_refine

    def _refine(self, slots: list[WorldSlot], clean: Tensor) -> Tensor:
        """Re-noise the chunk to the refiner's first sigma and integrate it back, with frame 0 as the
        sink and the recent (already emitted) latents as history."""
        refiner, fps = self.world.refiner, self.world.info.fps
        out = []
        for j, slot in enumerate(slots):
            t = slot.history.shape[2] + 1  # frames before the chunk: the sink and the history
            cache = refiner.capture_sink(slot.first_latent, fps)
            if slot.history.shape[2]:
                cache = refiner.commit(slot.history, torch.arange(1, t), cache, fps=fps)
            frames = torch.arange(t, t + CHUNK_FRAMES)
            out.append(refiner.refine_block(clean[j : j + 1], frames, cache, fps, generator=_torch_generator(slot.rng)))
        return torch.cat(out)


def _torch_generator(rng: np.random.Generator) -> torch.Generator:
    """A CPU torch generator seeded from the world's generator (one draw)."""
    return torch.Generator().manual_seed(int(rng.integers(2**63 - 1)))


def chunk_noise(generators: list[torch.Generator], first: Tensor, frames: int) -> list[Tensor]:
    """The starting noise of every generated chunk of a ``frames``-latent video, one generator per
    world: [(B, C, T_chunk, h, w)] in chunk order (frame 0 of the first chunk is given, not drawn)."""
    _, c, _, h, w = first.shape
    out = []
    for start, end in chunk_bounds(frames):
        n = end - max(start, 1)
        out.append(torch.stack([torch.randn(c, n, h, w, generator=g) for g in generators]).to(first))
    return out


def stream_latents(gen: StreamingGenerator, first: Tensor, camera: Tensor, plucker: Tensor, noises: list[Tensor],
                   exit_step: int | None = None) -> tuple[Tensor, list[WorldState]]:
    """A whole video in latents, streamed chunk by chunk as the env does, from its first latent
    (B, C, 1, h, w) and the camera inputs of all its latent frames (camera (B, T, 20), plucker
    (B, 6 s, T, h, w), relative to frame 0): the latents (B, C, T, h, w) and the state before each
    chunk (self-forcing repeats a chunk's exit step from it with gradient)."""
    state = gen.prefill(first)
    out, states = [first], []
    for (start, end), noise in zip(chunk_bounds(camera.shape[1]), noises):
        states.append(state)
        clean, state = gen.advance(state, camera[:, start:end], plucker[:, :, start:end], noise, exit_step=exit_step)
        out.append(clean)
    return torch.cat(out, dim=2), states
