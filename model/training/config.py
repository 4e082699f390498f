"""The schema of ``sanawm train``: one dataclass per concern, every knob with a default and a note.

Hydra validates command-line overrides against these classes (unknown keys and wrong types fail with
its message); ``configs/train/train.yaml`` is the primary config built on them. The release's
hyperparameters (SANA-WM, 2.6B at 720p) are given beside ours where we differ for the small worlds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..chunks import CHUNK_FRAMES, FIRST_CHUNK_FRAMES
from ..sizes import WORLD_SIZES
from ..threads import parse_threads

STAGES = ("vae", "latents", "bidirectional", "chunk_causal", "ode", "self_forcing", "refiner")
STRATEGIES = ("ddp", "fsdp")
PRECISIONS = ("fp32", "bf16")


@dataclass
class OptimConfig:
    """AdamW for the trained module (the critic of self-forcing has its own lr)."""

    lr: float = 2e-4  # release 1e-5 at 2.6B; a 11M world from scratch needs far more
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-10  # release value
    weight_decay: float = 0.0  # release value
    grad_clip: float = 0.5  # max global gradient norm (release 0.5); 0 turns clipping off
    warmup_steps: int = 0  # linear lr warm-up from 0, then constant (the release's schedule is constant)
    ema_decay: float = 0.0  # EMA of the weights (0: off, as in the release); the exported world uses the EMA when on


@dataclass
class FlowConfig:
    """Flow-matching training of the DiT stages (bidirectional, chunk_causal, the critic)."""

    shift: float = 3.0  # time shift of training and sampling; the release's 9.95 suits 720p, 3 suits 64 tokens per frame
    logit_mean: float = 0.0  # logit-normal(mean, std) draw of the noise level before the shift (release: 0, 1)
    logit_std: float = 1.0
    first_clean_prob: float = 0.9  # frame 0 kept clean (the image condition, out of the loss) this often (release 0.9)
    camera_dropout: float = 0.1  # samples trained with the null camera, so camera guidance works at sampling
    sample_steps: int = 20  # Euler steps of the sample videos (bidirectional / chunk-causal teacher)
    guidance: float = 1.0  # camera guidance of the bidirectional stage's sample videos (1: off; streaming samples are unguided)


@dataclass
class MixtureConfig:
    """Per-chunk noise levels of the chunk-causal teacher: a mixture of four patterns (release's weights)."""

    same: float = 0.1  # one level for every chunk
    increasing: float = 0.4  # independent levels sorted to increase along the video
    last_anchor: float = 0.4  # the last chunk at a fresh level, earlier chunks at independent lower-or-equal levels
    clean_prefix: float = 0.1  # earlier chunks clean, the last one noisy (teacher forcing: exactly the streaming case)


@dataclass
class VAEStageConfig:
    """The ``vae`` stage: our causal video VAE."""

    kl_weight: float = 1e-4  # weight of KL(q(z|x) || N(0, I)) beside the L1 reconstruction
    stats_clips: int = 64  # clips whose posterior means give the per-channel latent mean / std stored with the VAE


@dataclass
class DistillConfig:
    """The ``ode`` and ``self_forcing`` stages: the few-step student."""

    student_sigmas: tuple[float, ...] = (1.0, 0.9, 0.75, 0.5, 0.0)  # release: steps 1000/967/908/764 under shift 10; ours under shift 3
    teacher_substeps: int = 4  # teacher Euler steps per student interval (ODE trajectories land on the student's levels)
    trajectory_cache: bool = True  # ode: one teacher trajectory per clip, made once and kept in <out>/trajectories (the release precomputes them)
    window: int = 1  # recent chunks of softmax K/V the student keeps besides the sink, as in the env
    critic_lr: float = 4e-5  # the fake score's AdamW lr (release 2e-6 at 2.6B)
    generator_every: int = 5  # the generator is updated every n-th step, the critic every step (release 5)
    generator_betas: tuple[float, float] = (0.0, 0.999)  # release value for the DMD generator
    real_guidance: float = 1.0  # camera guidance of the real score (release: 3.0 text CFG)
    score_sigma_min: float = 0.02  # DMD score levels, after the shift, clamped to [min, max] (release 20 / 980)
    score_sigma_max: float = 0.98


@dataclass
class RefinerStageConfig:
    """The ``refiner`` stage: bring re-noised chunks back to clean, frame 0 as the sink."""

    sigma_max: float = 0.909375  # the refiner starts from this level at inference (release schedule)
    student_prob: float = 0.5  # chunks taken from the student's rollout (else ground truth) before re-noising
    history: int = 1  # clean chunks of history before the refined one


@dataclass
class TrainConfig:
    """``sanawm train``: one stage of the SANA-WM recipe on one world size."""

    stage: str = "bidirectional"  # one of vae, latents, bidirectional, chunk_causal, ode, self_forcing, refiner
    world: str = "small"  # world size (model.sizes); a checkpoint or init of another size is an error
    data: str = "???"  # clip folder (vae, latents: `sanawm data generate` or RealEstate10K-style) or latent folder (the rest)
    out: str = "outputs/train"  # run folder: checkpoints, metrics.jsonl, samples/, the exported world
    steps: int = 1000  # optimiser steps of this stage
    max_minutes: float = 0.0  # wall-clock budget: stop after the step that passes it, ending as at the last step (0: none)
    batch_size: int = 1  # clips per process and step (release 1 per GPU)
    latent_frames: int = 7  # latent frames per training clip (1 + 3 k: frame 0 then chunks of 3); 7 = 25 raw frames
    seed: int = 0  # base seed: data order, noise and initialisation; each process adds its rank
    num_workers: int = 2  # DataLoader worker processes
    init: str | None = None  # world folder or run folder the trained module starts from (fresh if null)
    teacher: str | None = None  # ode / self_forcing: the chunk-causal teacher (run or world folder); the real score
    vae: str | None = None  # latents: the VAE (vae run folder, world folder or .safetensors); fresh if null
    resume: bool = False  # continue the run in `out` from its last checkpoint (same stage, size and data)
    strategy: str = "ddp"  # ddp or fsdp (FSDP2, one fully_shard per block) under torchrun
    precision: str = "fp32"  # bf16 autocast on GPU
    grad_checkpointing: bool = False  # recompute each block in the backward (saves memory on GPU)
    compile: bool = False  # torch.compile the DiT's blocks for whole-clip steps (CPU: ~20% faster after ~1.5 min compiling)
    log_every: int = 10  # steps between metric lines (JSONL, TensorBoard, progress bar)
    ckpt_every: int = 500  # steps between checkpoints (and one at the end)
    sample_every: int = 0  # steps between sample videos beside ground truth (0: only at the end)
    progress: bool = True  # progress bar on rank 0
    threads: str = "auto"  # CPU threads of a step: auto (leave out the cores other processes keep busy; model.threads) or a count
    optim: OptimConfig = field(default_factory=OptimConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    mixture: MixtureConfig = field(default_factory=MixtureConfig)
    vae_stage: VAEStageConfig = field(default_factory=VAEStageConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    refiner: RefinerStageConfig = field(default_factory=RefinerStageConfig)

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {self.stage!r}")
        if self.world not in WORLD_SIZES:
            raise ValueError(f"world must be one of {sorted(WORLD_SIZES)}, got {self.world!r}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        for name in ("steps", "batch_size", "log_every", "ckpt_every"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be a positive int, got {getattr(self, name)}")
        parse_threads(self.threads)
        if self.max_minutes < 0:
            raise ValueError(f"max_minutes must be >= 0 (0: no limit), got {self.max_minutes}")
        if self.num_workers < 0 or self.sample_every < 0:
            raise ValueError(f"num_workers and sample_every must be >= 0, got {self.num_workers}, {self.sample_every}")
        if self.latent_frames < FIRST_CHUNK_FRAMES or (self.latent_frames - 1) % CHUNK_FRAMES:
            raise ValueError(f"latent_frames must be 1 + {CHUNK_FRAMES} k with k >= 1 (frame 0, then chunks of {CHUNK_FRAMES}), got {self.latent_frames}")
        if not 0 <= self.flow.first_clean_prob <= 1 or not 0 <= self.flow.camera_dropout <= 1:
            raise ValueError("flow.first_clean_prob and flow.camera_dropout must lie in [0, 1]")
        weights = (self.mixture.same, self.mixture.increasing, self.mixture.last_anchor, self.mixture.clean_prefix)
        if min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(f"mixture weights must be >= 0 with a positive sum, got {weights}")
        o = self.optim
        ranges = {"optim.lr": (o.lr, o.lr > 0, "> 0"), "optim.eps": (o.eps, o.eps > 0, "> 0"),
                  "optim.betas": (list(o.betas), len(o.betas) == 2 and all(0 <= b < 1 for b in o.betas), "two values in [0, 1)"),
                  "optim.weight_decay": (o.weight_decay, o.weight_decay >= 0, ">= 0"), "optim.grad_clip": (o.grad_clip, o.grad_clip >= 0, ">= 0 (0: off)"),
                  "optim.warmup_steps": (o.warmup_steps, o.warmup_steps >= 0, ">= 0"), "optim.ema_decay": (o.ema_decay, 0 <= o.ema_decay < 1, "in [0, 1)"),
                  "flow.shift": (self.flow.shift, self.flow.shift > 0, "> 0"), "flow.logit_std": (self.flow.logit_std, self.flow.logit_std > 0, "> 0"),
                  "flow.sample_steps": (self.flow.sample_steps, self.flow.sample_steps > 0, "> 0"),
                  "flow.guidance": (self.flow.guidance, self.flow.guidance >= 0, ">= 0"),
                  "distill.teacher_substeps": (self.distill.teacher_substeps, self.distill.teacher_substeps > 0, "> 0"),
                  "distill.critic_lr": (self.distill.critic_lr, self.distill.critic_lr > 0, "> 0"),
                  "distill.generator_every": (self.distill.generator_every, self.distill.generator_every > 0, "> 0"),
                  "distill.window": (self.distill.window, self.distill.window >= 0, ">= 0"),
                  "refiner.sigma_max": (self.refiner.sigma_max, 0 < self.refiner.sigma_max <= 1, "in (0, 1]"),
                  "refiner.student_prob": (self.refiner.student_prob, 0 <= self.refiner.student_prob <= 1, "in [0, 1]"),
                  "refiner.history": (self.refiner.history, self.refiner.history >= 0, ">= 0"),
                  "vae_stage.kl_weight": (self.vae_stage.kl_weight, self.vae_stage.kl_weight >= 0, ">= 0"),
                  "vae_stage.stats_clips": (self.vae_stage.stats_clips, self.vae_stage.stats_clips > 0, "> 0")}
        for name, (value, ok, accepted) in ranges.items():
            if not ok:
                raise ValueError(f"{name} must be {accepted}, got {value}")
        sig = self.distill.student_sigmas
        if len(sig) < 2 or sig[-1] != 0 or any(b >= a for a, b in zip(sig, sig[1:])) or sig[0] > 1:
            raise ValueError(f"distill.student_sigmas must decrease from <= 1 to 0, got {list(sig)}")
        if self.stage in ("ode", "self_forcing") and self.teacher is None:
            raise ValueError(f"stage={self.stage} needs teacher=<chunk-causal run or world folder>")
