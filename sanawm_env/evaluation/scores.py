"""The evaluation's metrics for one rollout (defined in docs/metrics.md): fidelity over time, action
following, degradation and revisit consistency, for the world and for both brackets."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..metrics import psnr, ssim

# Table columns, lower bracket first: the ground-truth render's first frame held still, the world under
# test, the world's own autoencoder on the ground truth (what the world could show at best: it draws
# its frames through that decoder), and the ground-truth world itself.
WORLDS = ("repeat_first", "world", "autoencoder", "ground_truth")


@dataclass
class Rollout:
    """One evaluated path: frames (F, H, W, 3) uint8 at ``fps``, frame 0 being the shared first image."""

    world: np.ndarray  # the learned world's frames
    truth: np.ndarray  # the ground-truth env's frames along the same actions: what the camera should see
    autoencoded: np.ndarray  # ``truth`` encoded and decoded by the world's VAE
    mirror: np.ndarray  # the ground-truth render along the mirrored-turn path from the same start
    poses: np.ndarray  # (F, 4, 4) the commanded camera-to-world path both worlds followed
    fps: float
    palindrome: bool  # the path comes back through its own poses in reverse (the revisit split)


def _pair(frames: np.ndarray, reference: np.ndarray, cap: float) -> tuple[np.ndarray, np.ndarray]:
    return np.minimum(psnr(frames, reference), cap), ssim(frames, reference)


def _window_mean(values: np.ndarray, mask: np.ndarray) -> float:
    return float(values[mask].mean())


def world_frames(rollout: Rollout) -> dict[str, np.ndarray]:
    """The frames of every column of ``WORLDS`` for one rollout."""
    return {"repeat_first": np.broadcast_to(rollout.truth[:1], rollout.truth.shape), "world": rollout.world,
            "autoencoder": rollout.autoencoded, "ground_truth": rollout.truth}


def score(rollout: Rollout, cap_db: float, early_seconds: float, degradation_seconds: float) -> dict[str, dict]:
    """Per world of ``WORLDS``: ``scalars`` (the metrics of docs/metrics.md; None where the rollout is
    too short for one) and ``curves`` (per-frame values for the plots).

    Frame 0 is the given image for every world, so fidelity starts at frame 1. PSNR is capped at
    ``cap_db`` (identical frames).
    """
    f = len(rollout.truth)
    times = np.arange(1, f) / rollout.fps  # seconds of frames 1..F-1
    duration = (f - 1) / rollout.fps
    early = times <= early_seconds + 1e-9
    degradation = duration >= 2 * degradation_seconds - 1e-9
    first, last = times <= degradation_seconds + 1e-9, times > duration - degradation_seconds + 1e-9
    out_idx, back_idx = revisit_pairs(f)
    # The ground-truth world scored against its own frames: exact fidelity by construction, but not
    # exact action following or revisit consistency.
    results = {}
    for name, x in world_frames(rollout).items():
        x = np.ascontiguousarray(x)
        p, s = _pair(x[1:], rollout.truth[1:], cap_db)
        mp, ms = _pair(x[1:], rollout.mirror[1:], cap_db)
        scalars: dict[str, float | None] = {
            "fidelity_psnr": float(p.mean()), "fidelity_ssim": float(s.mean()),
            "early_psnr": _window_mean(p, early), "early_ssim": _window_mean(s, early),
            "mirror_psnr": float(mp.mean()), "mirror_ssim": float(ms.mean()),
            "follow_psnr": float(p.mean() - mp.mean()), "follow_ssim": float(s.mean() - ms.mean()),
            "degradation_psnr": _window_mean(p, first) - _window_mean(p, last) if degradation else None,
            "degradation_ssim": _window_mean(s, first) - _window_mean(s, last) if degradation else None,
        }
        curves = {"psnr": p, "ssim": s, "mirror_psnr": mp, "mirror_ssim": ms}
        if rollout.palindrome:
            cp, cs = _pair(x[out_idx], x[back_idx], cap_db)
            rp, rs = _pair(x[back_idx], rollout.truth[back_idx], cap_db)
            scalars.update({"revisit_psnr": float(cp.mean()), "revisit_ssim": float(cs.mean()),
                            "return_psnr": float(rp.mean()), "return_ssim": float(rs.mean())})
            curves.update({"revisit_psnr": cp, "revisit_ssim": cs})
        results[name] = {"scalars": scalars, "curves": curves}
    return results


def revisit_pairs(frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame indices (out, back) of the revisit pairs of a palindromic path of ``frames`` frames: frame
    i on the way out and frame ``frames - 1 - i``, at the same pose on the way back (the turning
    point, paired with itself, left out)."""
    out_idx = np.arange(frames // 2)
    out_idx = out_idx[out_idx < frames - 1 - out_idx]
    return out_idx, frames - 1 - out_idx
