"""Streaming generation with the DiT: a world advances one latent chunk at a time against a
fixed-size state (``dit.stream``), the way SANA-WM's autoregressive student runs.

    state = gen.prefill(first_latent)                  # frame 0, the clean image condition
    clean = gen.denoise_chunk(state, cam, pl, noise)   # few Euler steps, state read-only
    state = gen.commit(state, clean, cam, pl)          # one t = 0 pass writes the chunk
    clean, state = gen.advance(state, cam, pl, noise)  # the two together

Chunks are cut as ``model.chunks`` says, as the chunk-causal model was trained: the first is the
pending frame 0 plus the first generated frames, later chunks are the generated frames alone.
Everything is batched over worlds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .compiled import compile_stream
from .dit import SanaWMDiT, StreamState, softmax_cache_chunks
from .flow import FlowMatching, euler_sample

Tensor = torch.Tensor


def check_compile(compile: bool | str) -> None:
    """``compile`` of a generator (and of the env): False (off), True (the shape a world keeps) or "all"."""
    if not (isinstance(compile, bool) or compile == "all"):
        raise ValueError(f"compile must be False, True or 'all', got {compile!r}")


@dataclass
class WorldState:
    """What a batch of worlds remembers: the DiT's streaming state and, until the first chunk is
    written, the clean first latent frame (B, C, 1, h, w)."""

    dit: StreamState
    pending: Tensor | None

    @property
    def frames(self) -> int | Tensor:
        """Latent frames so far, frame 0 included (per world (B,) when the worlds are at different frames)."""
        return self.dit.frames + (0 if self.pending is None else self.pending.shape[2])

    def clone(self) -> WorldState:
        return WorldState(self.dit.clone(), None if self.pending is None else self.pending.clone())

    def to(self, device: torch.device | str) -> WorldState:
        return WorldState(self.dit.to(device), None if self.pending is None else self.pending.to(device))

    def select(self, index: list[int]) -> WorldState:
        pending = None if self.pending is None else self.pending[torch.as_tensor(index, dtype=torch.long)]
        return WorldState(self.dit if self.dit.empty else self.dit.select(index), pending)

    @staticmethod
    def cat(states: list[WorldState]) -> WorldState:
        """One state for several batches of worlds: all before their first chunk, or all past it with
        states of the same shapes (``StreamState.cat``), at the same frame or not."""
        if len({s.pending is None for s in states}) != 1:
            raise ValueError("worlds must all be before their first chunk, or all past it, to batch them")
        pending = None if states[0].pending is None else torch.cat([s.pending for s in states])
        dit = states[0].dit if states[0].dit.empty else StreamState.cat([s.dit for s in states])
        return WorldState(dit, pending)


class StreamingGenerator:
    """Few-step flow-matching sampling of latent chunks with a carried state.

    Args:
        dit: the (chunk-causal / distilled) DiT.
        steps: Euler steps per chunk.
        flow: the noise schedule (its shift) when ``sigmas`` is not given.
        sigmas: explicit decreasing noise levels ending at 0 (e.g. a distilled student's list).
        window: recent chunks of softmax K/V kept besides the sink (None: all; the state then grows).
        guidance: classifier-free guidance against the null prompt (1: off, as for a distilled student).
        compile: run the passes made without gradient through ``model.compiled.compile_stream`` (passes
            with gradient stay eager): True once a world streams at the shape it keeps (``steady``; its
            first chunks, whose shapes come once a video, stay eager), ``"all"`` for every pass (a graph
            for each of a world's first two chunks too: worth it where worlds restart often, as in RL).
    """

    def __init__(self, dit: SanaWMDiT, steps: int = 4, flow: FlowMatching | None = None, sigmas: tuple[float, ...] | None = None,
                 window: int | None = 1, guidance: float = 1.0, compile: bool | str = False) -> None:
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        self.dit = dit
        self.sigmas = torch.tensor(sigmas, dtype=torch.float32) if sigmas is not None else (flow or FlowMatching()).schedule(steps)
        if self.sigmas[-1] != 0 or (self.sigmas[1:] > self.sigmas[:-1]).any():
            raise ValueError(f"sigmas must decrease to 0, got {self.sigmas.tolist()}")
        self.window = window
        self.guidance = guidance
        check_compile(compile)
        self._compiled = compile_stream(dit) if compile else None
        self._compile_all = compile == "all"

    def steady(self, state: StreamState) -> bool:
        """Whether a pass against ``state`` has the shapes every later chunk's pass repeats: past the
        first chunk, with each softmax cache full (the sink and ``window`` chunks; never with an
        unbounded window, whose state grows every chunk). A world's first two chunks (with the default
        window) have shapes of their own, so compiling them would cost two more graphs (minutes on a
        small CPU) to speed up two passes a video."""
        full = softmax_cache_chunks(self.window)
        if full is None or state.empty:
            return False
        return all(len(cache.attn.keys) == full for block, cache in zip(self.dit.blocks, state.blocks) if block.attn.softmax)

    def _stream(self, x: Tensor, ts: Tensor, state: StreamState, *args, **kwargs) -> tuple[Tensor, StreamState]:
        """``dit.stream``, compiled when asked for (for every state, or for ``steady`` ones) and no gradient is wanted."""
        if self._compiled is not None and not torch.is_grad_enabled() and (self._compile_all or self.steady(state)):
            return self._compiled(x, ts, state, *args, **kwargs)
        return self.dit.stream(x, ts, state, *args, **kwargs)

    def prefill(self, first_latent: Tensor) -> WorldState:
        """Start worlds from their clean first latent frames (B, C, 1, h, w)."""
        if first_latent.ndim != 5 or first_latent.shape[2] != 1:
            raise ValueError(f"first_latent must have shape (B, C, 1, h, w), got {tuple(first_latent.shape)}")
        return WorldState(self.dit.empty_stream(), first_latent)

    def _chunk(self, state: WorldState, x: Tensor, sigma: float) -> tuple[Tensor, Tensor]:
        """The chunk as the DiT sees it (the pending first frame in front, at timestep 0)."""
        b, _, t = x.shape[:3]
        ts = torch.full((b, t), sigma * 1000.0, device=x.device)
        if state.pending is None:
            return x, ts
        return torch.cat([state.pending.to(x.dtype), x], dim=2), torch.cat([torch.zeros(b, 1, device=x.device), ts], dim=1)

    def denoise_chunk(self, state: WorldState, camera: Tensor, plucker: Tensor, noise: Tensor,
                      prompt_embeds: Tensor | None = None, prompt_mask: Tensor | None = None,
                      exit_step: int | None = None, sigmas: Tensor | None = None) -> Tensor:
        """Clean latents (B, C, T_new, h, w) of the next chunk from ``noise`` of that shape.

        ``sigmas`` replaces the generator's levels for this call and may stop above 0 (a segment of
        a schedule: the teacher's ODE trajectories are recorded at the student's levels).

        ``camera`` (B, T, 20) and ``plucker`` cover the whole chunk the DiT sees: with the pending first
        frame in front before the first chunk is written. ``state`` is only read. Gradients follow the
        caller's grad mode; ``exit_step`` (see ``euler_sample``) returns that step's clean estimate,
        with gradient through that step alone.
        """
        t_new = noise.shape[2]

        def velocity(prompt: Tensor | None, mask: Tensor | None) -> Callable[[Tensor, float], Tensor]:
            def v(x: Tensor, s: float) -> Tensor:
                xc, ts = self._chunk(state, x, s)
                out, _ = self._stream(xc, ts, state.dit, prompt, mask, camera, plucker, window=self.window)
                return out[:, :, -t_new:]  # the pending first frame is context, not sampled
            return v

        uncond = velocity(None, None) if self.guidance != 1.0 else None
        sigmas = self.sigmas if sigmas is None else sigmas
        return euler_sample(velocity(prompt_embeds, prompt_mask), noise, sigmas, self.guidance, uncond, exit_step)

    @torch.no_grad()
    def commit(self, state: WorldState, clean: Tensor, camera: Tensor, plucker: Tensor,
               prompt_embeds: Tensor | None = None, prompt_mask: Tensor | None = None) -> WorldState:
        """The state with the clean chunk written (one pass at timestep 0)."""
        xc, ts = self._chunk(state, clean, 0.0)
        _, dit_state = self._stream(xc, ts, state.dit, prompt_embeds, prompt_mask, camera, plucker, window=self.window)
        return WorldState(dit_state, None)

    def advance(self, state: WorldState, camera: Tensor, plucker: Tensor, noise: Tensor, exit_step: int | None = None,
                prompt_embeds: Tensor | None = None, prompt_mask: Tensor | None = None) -> tuple[Tensor, WorldState]:
        """One chunk: ``denoise_chunk`` then ``commit``. Returns the clean chunk (B, C, T_new, h, w),
        carrying gradient as ``denoise_chunk`` gives it, and the state with the chunk written (always
        without gradient, as self-forcing refills its cache from the detached clean chunk)."""
        clean = self.denoise_chunk(state, camera, plucker, noise, prompt_embeds, prompt_mask, exit_step)
        return clean, self.commit(state, clean, camera, plucker, prompt_embeds, prompt_mask)
