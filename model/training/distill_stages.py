"""Distillation to the few-step autoregressive student: ``ode`` (regression on the chunk-causal
teacher's sampling trajectories) and ``self_forcing`` (the student rolls out as the env runs it and
learns by distribution matching against the frozen teacher, with a trained fake score)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..camera_conditions import null_camera
from ..chunks import chunk_bounds
from ..dit import SanaWMDiT
from ..flow import shift_sigma
from ..generator import StreamingGenerator, WorldState
from ..rollout import chunk_noise, stream_latents
from .data import PER_CLIP, clip_generator
from .dit_stages import LatentStage, dit_velocity, flow_loss, masked_clip_mse
from .stage import load_dit

Tensor = torch.Tensor


class DistillStage(LatentStage):
    """What both distillation stages share: the frozen teacher and the student's levels."""

    def __init__(self, cfg, d) -> None:
        super().__init__(cfg, d)
        self.teacher = load_dit(cfg.teacher, cfg.world).to(d.device).eval().requires_grad_(False)
        self.sigmas = torch.tensor(cfg.distill.student_sigmas, dtype=torch.float32)

    def student_init(self) -> SanaWMDiT:
        return load_dit(self.cfg.init if self.cfg.init is not None else self.cfg.teacher, self.cfg.world)

    def generate(self, dit, first, camera, plucker, g):
        gen = StreamingGenerator(dit, sigmas=tuple(self.sigmas.tolist()), window=self.cfg.distill.window)
        return stream_latents(gen, first, camera, plucker, chunk_noise([g], first, camera.shape[1]))[0]


class ODEStage(DistillStage):
    """The teacher streams each clip chunk by chunk with ``teacher_substeps`` Euler steps per student
    interval, and its latents at the student's levels are kept (the snapshots); the student sees
    every chunk at a random snapshot (or clean) in one chunk-causal forward, frame 0 clean, and
    regresses the teacher's final latents through its clean estimate x - s v (the release's recipe)."""

    name = "ode"

    def __init__(self, cfg, d) -> None:
        super().__init__(cfg, d)
        student = self.student_init()
        self.add("dit", student, cfg.optim.lr, blocks=list(student.blocks))

    @torch.no_grad()
    def trajectories(self, first: Tensor, camera: Tensor, plucker: Tensor, gens: list[torch.Generator]) -> Tensor:
        """(K + 1, B, C, T, h, w): the teacher's video at each student level, the last clean."""
        gen = StreamingGenerator(self.teacher, sigmas=(1.0, 0.0), window=self.cfg.distill.window)
        state = gen.prefill(first)
        k = len(self.sigmas) - 1
        sub = self.cfg.distill.teacher_substeps
        chunks = []
        for (start, end), x in zip(chunk_bounds(camera.shape[1]), chunk_noise(gens, first, camera.shape[1])):
            cam, pl = camera[:, start:end], plucker[:, :, start:end]
            snaps = [x]
            for i in range(k):
                grid = torch.linspace(float(self.sigmas[i]), float(self.sigmas[i + 1]), sub + 1)
                x = gen.denoise_chunk(state, cam, pl, x, sigmas=grid)
                snaps.append(x)
            state = gen.commit(state, x, cam, pl)
            chunks.append(torch.stack(snaps))
        firsts = first[None].expand(k + 1, -1, -1, -1, -1, -1)
        return torch.cat([firsts, *chunks], dim=3)

    def cached_trajectories(self, batch: dict[str, Tensor], x0: Tensor, camera: Tensor, plucker: Tensor) -> Tensor:
        """``trajectories`` of the batch with each clip's noise fixed for the run, each made once and
        kept under ``<out>/trajectories`` (written atomically: processes may make the same clip)."""
        folder = Path(self.cfg.out) / "trajectories"
        folder.mkdir(parents=True, exist_ok=True)
        paths = [folder / f"clip-{int(i):07d}-{x0.shape[2]}.safetensors" for i in batch["index"]]
        missing = [row for row, p in enumerate(paths) if not p.exists()]
        if missing:
            gens = [clip_generator(self.cfg.seed, PER_CLIP, int(batch["index"][row])) for row in missing]
            made = self.trajectories(x0[missing, :, :1], camera[missing], plucker[missing], gens)
            for j, row in enumerate(missing):
                tmp = paths[row].with_name(paths[row].name + f".{self.d.rank}.tmp")
                save_file({"trajectory": made[:, j].contiguous().cpu()}, str(tmp))
                os.replace(tmp, paths[row])
        return torch.stack([load_file(str(p))["trajectory"] for p in paths], dim=1).to(x0.device)

    def step(self, batch, step):
        x0, camera, plucker = self.batch(batch)
        b, _, t = x0.shape[:3]
        gens = self.draws(batch, step, lambda g, row: g)
        if self.cfg.distill.trajectory_cache:
            traj = self.cached_trajectories(batch, x0, camera, plucker)  # (K + 1, B, C, T, h, w)
        else:
            traj = self.trajectories(x0[:, :, :1], camera, plucker, gens)
        chunks = chunk_bounds(t)
        pick = torch.stack([torch.randint(len(self.sigmas), (len(chunks),), generator=g) for g in gens])  # (B, n)
        frame_pick = torch.zeros(b, t, dtype=torch.long)
        for j, (start, end) in enumerate(chunks):
            frame_pick[:, start:end] = pick[:, j : j + 1]
        frame_pick[:, 0] = len(self.sigmas) - 1  # frame 0: the clean image condition
        sigma = self.sigmas[frame_pick].to(x0.device)  # (B, T)
        idx = frame_pick.to(x0.device)[None, :, None, :, None, None].expand(1, b, traj.shape[2], t, *traj.shape[4:])
        xs = traj.gather(0, idx)[0]
        target = traj[-1]
        with self.autocast():
            v = self.run("dit", dit_velocity, xs, sigma, camera, plucker, "chunk_causal")
        loss = masked_clip_mse(xs - sigma[:, None, :, None, None] * v.float(), target, sigma)
        return {"loss": loss.item(), **self.update("dit", loss, step)}


def _rollout(dit: SanaWMDiT, gen_args: dict, first: Tensor, camera: Tensor, plucker: Tensor, noises: list[Tensor],
             exit_step: int) -> tuple[Tensor, list[WorldState]]:
    """The student's video (exit step ``exit_step`` in every chunk) and the state before each chunk."""
    return stream_latents(StreamingGenerator(dit, **gen_args), first, camera, plucker, noises, exit_step)


def _exit_chunk(dit: SanaWMDiT, gen_args: dict, state: WorldState, camera: Tensor, plucker: Tensor, noise: Tensor,
                exit_step: int) -> Tensor:
    """One chunk of the rollout again, with gradient through its exit step."""
    return StreamingGenerator(dit, **gen_args).denoise_chunk(state, camera, plucker, noise, exit_step=exit_step)


class SelfForcingStage(DistillStage):
    """Self-forcing with distribution matching (DMD).

    Every step the student (``dit``) rolls out each clip as the env does: chunk by chunk against its
    streaming state and window, frame 0 the clip's clean first latent, one exit step (drawn per step,
    the same on every process) ending every chunk, the state refilled at t = 0 from the detached
    chunk. The critic (``critic``, the fake score, initialised from the teacher) learns flow matching
    on those videos every step. Every ``generator_every`` steps the student moves along the DMD
    gradient (fake - real) / mean|x - real| of the re-noised video, real = the frozen teacher.

    The student's loss is computed chunk by chunk on a second pass that repeats each chunk's exit
    step with gradient (the same numbers: the steps before it and the state carry no gradient), so
    every forward is followed by its own backward.
    """

    name = "self_forcing"

    def __init__(self, cfg, d) -> None:
        super().__init__(cfg, d)
        dc = cfg.distill
        student = self.student_init()
        self.add("dit", student, cfg.optim.lr, betas=dc.generator_betas, blocks=list(student.blocks))
        critic = load_dit(cfg.teacher, cfg.world)
        self.add("critic", critic, dc.critic_lr, betas=dc.generator_betas, blocks=list(critic.blocks))
        self.gen_args = {"sigmas": tuple(self.sigmas.tolist()), "window": dc.window}

    def score_sigma(self, g: torch.Generator, t: int) -> Tensor:
        dc = self.cfg.distill
        s = shift_sigma(torch.rand((), generator=g), self.cfg.flow.shift).clamp(dc.score_sigma_min, dc.score_sigma_max)
        sigma = s.expand(t).clone()
        sigma[0] = 0.0  # frame 0 stays the clean condition
        return sigma

    def renoise(self, video: Tensor, gens: list[torch.Generator]) -> tuple[Tensor, Tensor, Tensor]:
        """The student's video at a score level per clip: (noisy video, sigma (B, T), noise)."""
        sigma = torch.stack([self.score_sigma(g, video.shape[2]) for g in gens]).to(video.device)
        noise = torch.stack([torch.randn(video.shape[1:], generator=g) for g in gens]).to(video)
        return self.flow.noisy(video, noise, sigma), sigma, noise

    @staticmethod
    @torch.no_grad()
    def x0_estimate(velocity, xs: Tensor, sigma: Tensor, camera: Tensor, plucker: Tensor, guidance: float = 1.0) -> Tensor:
        """The clean estimate xs - s v of a score ``velocity(xs, sigma, camera, plucker)``, with
        camera guidance against the null camera when ``guidance`` is not 1."""
        v = velocity(xs, sigma, camera, plucker).float()
        if guidance != 1.0:
            v_u = velocity(xs, sigma, *null_camera(camera, plucker)).float()
            v = v_u + guidance * (v - v_u)
        return xs - sigma[:, None, :, None, None] * v

    def step(self, batch, step):
        x0, camera, plucker = self.batch(batch)
        first, t = x0[:, :, :1], x0.shape[2]
        dc = self.cfg.distill
        gens = self.draws(batch, step, lambda g, row: g)
        exit_step = int(torch.randint(len(self.sigmas) - 1, (), generator=torch.Generator().manual_seed(self.cfg.seed * 7919 + step)))
        noises = chunk_noise(gens, first, t)
        with torch.no_grad(), self.autocast():
            video, states = self.run("dit", _rollout, self.gen_args, first, camera, plucker, noises, exit_step)
        video = video.float()
        metrics: dict[str, float] = {"exit_step": exit_step}
        if step % dc.generator_every == 0:
            metrics.update(self.generator_step(video, states, camera, plucker, noises, exit_step, gens, step))
        # The critic: flow matching on the student's videos.
        xs, sigma, noise = self.renoise(video, gens)
        with self.autocast():
            v = self.run("critic", dit_velocity, xs, sigma, camera, plucker, "chunk_causal")
        critic_loss = flow_loss(v, video, noise, sigma)
        metrics.update({"critic_loss": critic_loss.item(), **self.update("critic", critic_loss, step)})
        return metrics

    def generator_step(self, video, states, camera, plucker, noises, exit_step, gens, step) -> dict[str, float]:
        xs, sigma, _ = self.renoise(video, gens)
        with self.autocast():
            real = self.x0_estimate(lambda *a: dit_velocity(self.teacher, *a, "chunk_causal"), xs, sigma, camera, plucker,
                                    self.cfg.distill.real_guidance)
            fake = self.x0_estimate(lambda *a: self.run("critic", dit_velocity, *a, "chunk_causal"), xs, sigma, camera, plucker)
        scale = (video - real).abs().mean(dim=(1, 2, 3, 4), keepdim=True).clamp_min(1e-6)
        target = video - torch.nan_to_num((fake - real) / scale)  # (B, C, T, h, w)
        chunks = chunk_bounds(video.shape[2])
        count = video[:, :, 1:].numel()  # generated elements of the batch (frame 0 is given)
        total = torch.zeros((), device=video.device)
        for i, ((start, end), state, noise) in enumerate(zip(chunks, states, noises)):
            with self.sync("dit", last=i == len(chunks) - 1):
                with self.autocast():
                    est = self.run("dit", _exit_chunk, self.gen_args, state, camera[:, start:end], plucker[:, :, start:end], noise, exit_step)
                lo = max(start, 1)
                loss = 0.5 * ((est.float() - target[:, :, lo:end]) ** 2).sum() / count
                loss.backward()
            total = total + loss.detach()
        return {"dmd_loss": total.item(), **self.update("dit", total, step, backward=False)}

