"""``sanawm quantize``: a world whose DiT runs in FP8, INT8 or NVFP4, calibrated on its own rollouts.

    sanawm quantize --world sanawm_env/assets/world-small --format fp8 --calib-steps 32 --out worlds/small-fp8
    gym.make("SanaWM-v0", checkpoint="worlds/small-fp8")        # loads as any world folder

Calibration runs the world in ``SanaWM-v0`` as an agent would: seeded random camera actions from
procedural starts, a new episode (and scene) every ``CALIBRATION_EPISODE_STEPS`` steps. Which layers
each format quantizes, and how a quantized world is stored: ``model.quantization``.
"""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym

import sanawm_env  # noqa: F401  (registers the environments)
from model.quantization import check_format, quantize_world_model
from model.world import DEFAULT_WORLD, WorldModel, load_world, save_world

# Env steps (chunks of 12 raw frames, 0.75 s) per calibration episode: long enough for the state to
# carry several chunks, short enough that a few dozen steps see several scenes.
CALIBRATION_EPISODE_STEPS = 16


def calibration_rollouts(world: WorldModel, steps: int, seed: int = 0, device: str = "cpu") -> None:
    """Run ``world`` in SanaWM-v0 on ``device`` for ``steps`` env steps of random camera actions drawn
    from ``seed``, starting a new episode every ``CALIBRATION_EPISODE_STEPS`` steps."""
    info = world.info
    env = gym.make("SanaWM-v0", checkpoint=world, size=info.size, height=info.height, width=info.width, device=device)
    env.action_space.seed(seed)
    env.reset(seed=seed)
    for step in range(1, steps + 1):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated or step % CALIBRATION_EPISODE_STEPS == 0:
            env.reset()
    env.close()


def _check_out(out: Path, world: Path) -> None:
    if out.resolve() == world.resolve():
        raise ValueError(f"--out must differ from --world ({world}): quantizing keeps the full-precision world")
    if out.exists() and not (out / "world.json").is_file() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out}: exists and is not a world folder; give a new path (or a world folder to replace)")


def quantize_world(world: str | Path, fmt: str, calib_steps: int, out: str | Path, seed: int = 0, device: str = "cpu") -> Path:
    """Write to ``out`` the world folder ``world`` with its DiT quantized to ``fmt`` (one of
    ``model.quantization.FORMATS``), calibrated on ``calib_steps`` env steps (>= 1) of its own
    rollouts on ``device``; returns ``out``."""
    check_format(fmt)
    if calib_steps < 1:
        raise ValueError(f"calib_steps must be a positive number of env steps, got {calib_steps}")
    world, out = Path(world), Path(out)
    _check_out(out, world)
    model = load_world(world)
    if model.info.quantization is not None:
        raise ValueError(f"{world}: is already quantized ({model.info.quantization}); quantize its full-precision world")
    quantize_world_model(model, fmt, lambda _: calibration_rollouts(model, calib_steps, seed, device))
    return save_world(out, model.cpu())


def main(world: str | None, fmt: str, calib_steps: int, out: str, seed: int, device: str) -> Path:
    """The command: quantize ``world`` (the shipped world if None) and say where it went."""
    path = quantize_world(DEFAULT_WORLD if world is None else world, fmt, calib_steps, out, seed, device)
    print(f"wrote the {fmt} world to {path}; load it with gym.make('SanaWM-v0', checkpoint='{path}')")
    return path
