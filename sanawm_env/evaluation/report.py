"""What ``sanawm eval`` writes: the bracketed tables, the plots (metrics over time, a grid of generated
vs true frames) and the side-by-side videos."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from model.atomic import write_text_atomic
from model.video import write_video

from .scores import WORLDS

HEADERS = {"repeat_first": "repeat first frame (lower)", "world": "world", "autoencoder": "VAE on the truth (ceiling)",
           "ground_truth": "ground truth (upper)"}
# (key, label, kind): "db" and "ssim" are scores, "db_gap" and "ssim_gap" differences of two scores,
# "fraction" and "error" the camera-accuracy fraction registered and its errors per frame.
ROWS = (
    ("fidelity_psnr", "fidelity PSNR (dB)", "db"),
    ("fidelity_ssim", "fidelity SSIM", "ssim"),
    ("early_psnr", "fidelity PSNR, first {early:g} s (dB)", "db"),
    ("early_ssim", "fidelity SSIM, first {early:g} s", "ssim"),
    ("mirror_psnr", "PSNR vs the mirrored path (dB)", "db"),
    ("follow_psnr", "action following: own - mirrored PSNR (dB)", "db_gap"),
    ("follow_ssim", "action following: own - mirrored SSIM", "ssim_gap"),
    ("degradation_psnr", "degradation: first - last {window:g} s PSNR (dB)", "db_gap"),
    ("degradation_ssim", "degradation: first - last {window:g} s SSIM", "ssim_gap"),
    ("revisit_psnr", "revisit consistency PSNR (dB)", "db"),
    ("revisit_ssim", "revisit consistency SSIM", "ssim"),
    ("return_psnr", "fidelity PSNR on the way back (dB)", "db"),
    ("return_ssim", "fidelity SSIM on the way back", "ssim"),
    ("camera_registered", "camera: frames COLMAP registers, first {camera:g} s", "fraction"),
    ("camera_rot_err_deg", "camera: rotation error per frame (deg)", "error"),
    ("camera_trans_err", "camera: translation error per frame", "error"),
    ("camera_cammc", "camera: CamMC per frame", "error"),
)


def _cell(key: str, kind: str, scalars: dict[str, Any], cap: float) -> str:
    value = scalars.get(key)
    if value is None:
        return "n/a"
    if kind in ("fraction", "error"):
        return f"{value:.2f}" if kind == "fraction" else f"{value:.3f}"
    exact = scalars["fidelity_psnr"] >= cap
    if kind == "db":
        return "exact" if value >= cap else f"{value:.2f}"
    if key.startswith("degradation") and exact:
        return "0 (exact)"
    if kind == "db_gap":
        return "inf" if exact else f"{value:+.2f}"  # a difference from a capped score would only measure the cap
    return f"{value:.3f}" if kind == "ssim" else f"{value:+.3f}"


def format_table(split: str, summary: dict[str, Any], cap: float, early: float, window: float, camera: float = 0.0) -> str:
    """The bracketed table of one split: a row per metric, a column per world (lower bracket, world,
    upper bracket); metrics the split does not have (revisit, or degradation of a short rollout)
    are left out or read n/a."""
    means = summary["worlds"]
    rows = [(label.format(early=early, window=window, camera=camera), [_cell(key, kind, means[w], cap) for w in WORLDS])
            for key, label, kind in ROWS if key in means["world"]]
    width = max(len(label) for label, _ in rows)
    cols = [max(len(HEADERS[w]), 8) for w in WORLDS]
    title = (f"{split}: {summary['scenes']} scene(s) x {summary['seconds']:g} s ({summary['steps']} steps, "
             f"{summary['frames']} frames)")
    lines = [title, " " * width + "  " + "  ".join(HEADERS[w].rjust(c) for w, c in zip(WORLDS, cols))]
    lines += [label.ljust(width) + "  " + "  ".join(v.rjust(c) for v, c in zip(values, cols)) for label, values in rows]
    return "\n".join(lines)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    tmp.replace(path)
    return path


def plot_curves(path: Path, split: str, curves: dict[str, Any], cap: float) -> Path:
    """PSNR and SSIM over time (mean over the split's scenes) of the world and the lower bracket against
    the ground truth of their own path and of the mirrored path; for the revisit split also the
    revisit consistency against the time between the two visits."""
    plt = _pyplot()
    revisit = "revisit_gap_s" in curves
    fig, axes = plt.subplots(1, 3 if revisit else 2, figsize=(15 if revisit else 10, 3.8))
    t = np.asarray(curves["time_s"])
    styles = {"world": ("tab:blue", "world"), "repeat_first": ("0.5", "repeat first frame"),
              "autoencoder": ("tab:orange", "VAE on the truth"), "ground_truth": ("tab:green", "ground truth")}
    for ax, metric, unit in ((axes[0], "psnr", "PSNR (dB)"), (axes[1], "ssim", "SSIM")):
        shown = []
        for w, (color, label) in styles.items():
            if w != "ground_truth":  # its own path is exact: off the PSNR axis, SSIM 1
                shown.append(np.asarray(curves[w][metric]))
                ax.plot(t, shown[-1], color=color, label=f"{label}, own path")
            shown.append(np.asarray(curves[w][f"mirror_{metric}"]))
            ax.plot(t, shown[-1], color=color, ls="--", label=f"{label}, mirrored path")
        if metric == "psnr":  # exact (capped) frames, where a path meets its mirror image, would flatten the rest
            finite = np.concatenate(shown)
            finite = finite[finite < cap]
            if finite.size:
                ax.set_ylim(finite.min() - 1, finite.max() + 2)
        if metric == "ssim":
            ax.axhline(1.0, color="tab:green", lw=1, label="ground truth, own path")
        ax.set_xlabel("time (s)")
        ax.set_ylabel(unit)
        ax.grid(alpha=0.3)
    axes[0].set_title(f"{split}: fidelity over time (ground truth on its own path: exact)")
    axes[1].set_title(f"{split}: SSIM over time")
    axes[1].legend(fontsize=7, loc="best")
    if revisit:
        gap = np.asarray(curves["revisit_gap_s"])
        for w in ("world", "ground_truth"):
            color, label = styles[w]
            axes[2].plot(gap, np.minimum(np.asarray(curves[w]["revisit_psnr"]), cap), color=color, label=label)
        axes[2].set_xlabel("time between the two visits (s)")
        axes[2].set_ylabel(f"PSNR (dB), capped at {cap:g}")
        axes[2].set_title("revisit consistency (same pose, out and back)")
        axes[2].legend(fontsize=7)
        axes[2].grid(alpha=0.3)
    return _save(fig, path)


def plot_grid(path: Path, title: str, world: np.ndarray, truth: np.ndarray, fps: float, columns: int, cap: float) -> Path:
    """Generated (bottom row) against true (top row) frames at ``columns`` times spread over the
    rollout, each generated frame titled with its PSNR."""
    from ..metrics import psnr

    plt = _pyplot()
    idx = np.unique(np.linspace(1, len(truth) - 1, columns).round().astype(int)) if len(truth) > 1 else np.array([0])
    fig, axes = plt.subplots(2, len(idx), figsize=(1.6 * len(idx), 3.6), squeeze=False)
    for j, i in enumerate(idx):
        score = min(float(psnr(world[i], truth[i])), cap)
        for row, (frames, label) in enumerate(((truth, "ground truth"), (world, "world"))):
            ax = axes[row, j]
            ax.imshow(frames[i])
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(label)
        axes[0, j].set_title(f"{i / fps:.1f} s", fontsize=8)
        axes[1, j].set_title(f"{score:.1f} dB", fontsize=8)
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def write_side_by_side(path: Path, world: np.ndarray, truth: np.ndarray, fps: float) -> Path:
    """A video of the world's frames (left) beside the ground truth (right)."""
    return write_video(path, np.concatenate([world, truth], axis=2), fps=fps)


def write_table(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, text + "\n")
    return path
