"""What a rollout leaves behind: a video file of its frames and a top-down plot of the camera path."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from model.video import write_video

from .scene import Scene

__all__ = ["plot_trajectory", "write_video"]


def plot_trajectory(path: str | Path, poses: np.ndarray, scene: Scene | None = None, title: str | None = None) -> Path:
    """Top-down plot of camera-to-world ``poses`` (T, 4, 4): x to the right, z up the page, the
    path coloured by time with the view direction every few frames, over the scene's floor plan."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    poses = np.asarray(poses, dtype=np.float64)
    if poses.ndim != 3 or poses.shape[1:] != (4, 4):
        raise ValueError(f"poses must have shape (T, 4, 4), got {poses.shape}")
    fig, ax = plt.subplots(figsize=(6, 6))
    if scene is not None:
        g, cs = scene.config.grid_size, scene.config.cell_size
        plan = np.where(scene.walls.numpy() > 0, 0.25, np.where(scene.roofed.numpy(), 0.95, 0.8))
        ax.imshow(plan, cmap="gray", vmin=0, vmax=1, origin="lower", extent=(0, g * cs, 0, g * cs))
        for x0, _, z0, x1, _, z1 in scene.boxes.tolist():
            ax.add_patch(plt.Rectangle((x0, z0), x1 - x0, z1 - z0, color="tab:brown", alpha=0.8))
        for x, z, r in scene.cylinders.tolist():
            ax.add_patch(plt.Circle((x, z), r, color="tab:purple", alpha=0.8))
        for x, _, z, r in scene.spheres.tolist():
            ax.add_patch(plt.Circle((x, z), r, color="tab:olive", alpha=0.8))
    xs, zs = poses[:, 0, 3], poses[:, 2, 3]
    t = np.linspace(0, 1, len(poses))
    ax.plot(xs, zs, color="0.3", lw=0.8, zorder=2)
    sc = ax.scatter(xs, zs, c=t, cmap="viridis", s=8, zorder=3)
    every = max(1, len(poses) // 24)
    fwd = poses[::every, :3, 2]
    ax.quiver(xs[::every], zs[::every], fwd[:, 0], fwd[:, 2], color="tab:red", scale=20, width=0.004, zorder=4)
    ax.plot(xs[0], zs[0], "o", color="tab:green", ms=8, label="start", zorder=5)
    ax.plot(xs[-1], zs[-1], "s", color="tab:red", ms=7, label="end", zorder=5)
    fig.colorbar(sc, ax=ax, fraction=0.046, label="time (fraction of the rollout)")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("z (m)")
    ax.set_aspect("equal")
    ax.legend(loc="best")
    ax.set_title(title or "camera path (top view)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    fig.savefig(tmp, dpi=120, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)
    return path
