"""Our DiT beside the public implementation (diffusers' ``SanaWMTransformer3DModel``) at one config
and the same weights, with matching inputs: shared by the benchmarks that time the two."""

from __future__ import annotations

import contextlib
import inspect
from dataclasses import asdict

import torch

PROMPT_TOKENS = 8  # prompt length (the small world runs without prompts; both models take one here)


@contextlib.contextmanager
def fp32_reference_softmax():
    """The reference rounds fp32 softmax q/k/v to bf16 (for FlashAttention); keep them fp32, so that
    both models compute the same function."""
    original = torch.Tensor.bfloat16
    torch.Tensor.bfloat16 = lambda self, *a, **k: self
    try:
        yield
    finally:
        torch.Tensor.bfloat16 = original


def dit_pair(preset: str, device: str, reference: bool = True):
    """Our DiT and diffusers' at the DiT config ``preset``, with the same (perturbed) weights; ours
    alone (the reference None) without ``reference`` or where diffusers is not installed."""
    from model import SanaWMDiT, dit_config

    cfg = dit_config(preset)
    try:
        from diffusers import SanaWMTransformer3DModel
    except ImportError:
        reference = False
    torch.manual_seed(0)
    if not reference:
        ours = SanaWMDiT(cfg)
        _perturb(ours)
        return cfg, ours.to(device), None
    accepted = inspect.signature(SanaWMTransformer3DModel.__init__).parameters
    ref = SanaWMTransformer3DModel(**{k: v for k, v in asdict(cfg).items() if k in accepted},
                                   chunk_plucker_post_attn_blocks=cfg.num_layers)
    _perturb(ref)
    ours = SanaWMDiT(cfg)
    ours.load_reference_state_dict(ref.state_dict())  # strict: a config the two read differently fails here
    return cfg, ours.to(device), ref.to(device)


def _perturb(model: torch.nn.Module) -> None:
    """No zero-initialised branch (camera, Plucker, temporal conv) sits out of the outputs or gradients."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)


def dit_inputs(cfg, batch: int, frames: int, grid: int, device: str, seed: int) -> dict[str, torch.Tensor]:
    """One batch: noisy latents, per-frame timesteps, a prompt, cameras and Plucker maps, and a
    velocity target (for a training step)."""
    from model.camera import se3, so3_exp

    g = torch.Generator().manual_seed(seed)
    poses = se3(so3_exp(torch.randn(batch, frames, 3, generator=g) * 0.2), torch.randn(batch, frames, 3, generator=g))
    intrinsics = torch.tensor([0.6 * grid, 0.6 * grid, grid / 2, grid / 2]).expand(batch, frames, 4)
    x = torch.randn(batch, cfg.in_channels, frames, grid, grid, generator=g)
    inputs = {
        "x": x,
        "t": torch.randint(0, 1000, (batch, frames), generator=g).float(),  # integers: the reference truncates timesteps
        "y": torch.randn(batch, PROMPT_TOKENS, cfg.caption_channels, generator=g),
        "mask": torch.ones(batch, PROMPT_TOKENS, dtype=torch.long),
        "camera": torch.cat([poses.reshape(batch, frames, 16), intrinsics], dim=-1),
        "plucker": torch.randn(batch, cfg.chunk_plucker_channels, frames, grid, grid, generator=g),
        "target": torch.randn(x.shape, generator=g),
    }
    return {k: v.to(device) for k, v in inputs.items()}


def ours_forward(model, i: dict[str, torch.Tensor]) -> torch.Tensor:
    return model(i["x"], i["t"], i["y"], i["mask"], camera=i["camera"], plucker=i["plucker"], mode="bidirectional")


def ref_forward(model, i: dict[str, torch.Tensor]) -> torch.Tensor:
    with fp32_reference_softmax():
        return model(i["x"], i["t"][:, None], i["y"][:, None], encoder_attention_mask=i["mask"], camera_conditions=i["camera"],
                     chunk_plucker=i["plucker"]).sample
