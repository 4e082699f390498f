"""Accuracy and speed of camera-pose annotation (``sanawm annotate``) on procedural clips with known
poses and depth.

    python benchmarks/annotate.py [--size 256] [--clips 6] [--frames 40] [--unknown-intrinsics] [--max-scale-trend 0.45]
                                  [--out outputs/bench/annotate.json]

Renders walks through held-out procedural scenes (known metric poses, exact depth), writes them as
frame folders, plus a camera that only turns and a textureless clip, and annotates all of them with
``model.annotation.annotate`` (COLMAP, single-threaded, known intrinsics; scale from the renderer's
depth and from the camera height of 1.5 m). For every accepted clip: rotation error (mean, after the
best single rotation; and frame to frame), ATE after evo's similarity alignment as a fraction of the
path length, and the error of each scale against the true one; for every segment the depth scale's
trend, which the distortion check limits (``--max-scale-trend inf`` turns the check off). Frames per second per stage (decode,
features, matching, mapping, depth, checks, write) cover the whole run. Prints a table, writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from model.annotation import AnnotateConfig, QualityLimits, Sampling, annotate, trajectory_errors
from model.atomic import write_text_atomic
from model.camera import intrinsics_from_fov, read_re10k_cameras
from sanawm_env.render import render
from sanawm_env.scene import SceneConfig, generate_scene
from sanawm_env.trajectories import make_trajectory, pose_from

FOV = 80.0
HELD_OUT = 2**31  # scene seeds training clips never draw


class LookupDepth:
    """MetricDepth for the benchmark: the renderer's depth of whichever clip it is handed."""

    def __init__(self) -> None:
        self.by_clip: dict[bytes, np.ndarray] = {}

    def add(self, frames: np.ndarray, depth: np.ndarray) -> None:
        self.by_clip[frames[0].tobytes()] = depth

    def __call__(self, frames: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
        depth = self.by_clip[frames[0].tobytes()]
        if len(depth) != len(frames):
            raise ValueError("the benchmark's clips must fit in one annotated clip (clip_frames >= frames)")
        return depth


def save(folder: Path, frames: np.ndarray) -> None:
    folder.mkdir(parents=True)
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{i:05d}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="square frame size")
    parser.add_argument("--clips", type=int, default=6, help="walks in different held-out scenes")
    parser.add_argument("--frames", type=int, default=40, help="frames a clip")
    parser.add_argument("--stride", type=int, default=2, help="keep every n-th frame of a 16 fps path (2: 8 fps)")
    parser.add_argument("--unknown-intrinsics", action="store_true", help="let COLMAP estimate the focal length")
    parser.add_argument("--max-scale-trend", type=float, default=QualityLimits().max_scale_trend,
                        help="the distortion check's limit (inf turns it off, to see what it rejects)")
    parser.add_argument("--out", default="outputs/bench/annotate.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    size, n = args.size, args.frames
    k = intrinsics_from_fov(FOV, size, size)
    eye = SceneConfig().eye_height
    depth = LookupDepth()
    truth: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory(prefix="sanawm-bench-annotate-") as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        for c in range(args.clips + 1):
            seed = HELD_OUT + c
            scene = generate_scene(seed)
            poses = make_trajectory("walk", scene, np.random.default_rng(seed), n * args.stride, 16.0)[:: args.stride]
            name = f"walk{c}"
            if c == args.clips:  # the last scene: a camera that turns on the spot
                poses = np.stack([pose_from(poses[0, :3, 3], yaw) for yaw in np.linspace(0.0, 1.2, n)])
                name = "turn"
            out = render(scene, torch.from_numpy(poses), k, size, size)
            save(root / "in" / name, out.rgb.numpy())
            depth.add(out.rgb.numpy(), out.depth.numpy())
            truth[name] = poses
        ramp = np.linspace(40, 200, size).astype(np.uint8)
        flat = np.broadcast_to(ramp[None, None, :, None], (n, size, size, 3)).copy()
        save(root / "in" / "flat", flat)
        depth.add(flat, np.full(flat.shape[:3], 3.0, dtype=np.float32))
        render_s = time.perf_counter() - t
        config = AnnotateConfig(sampling=Sampling(clip_frames=n, folder_fps=16.0 / args.stride), limits=QualityLimits(max_scale_trend=args.max_scale_trend),
                                intrinsics=None if args.unknown_intrinsics else tuple(k.tolist()), camera_height_m=eye)
        t = time.perf_counter()
        summary = annotate([root / "in"], root / "out", config, depth=depth)
        wall = time.perf_counter() - t
        rows = []
        for clip in summary["clips"]:
            source = Path(clip["source"]).name
            if not clip["segments"]:
                rows.append({"clip": source, "accepted": False, "reasons": clip["reasons"]})
            for seg in clip["segments"]:
                row = {"clip": source, "segment": seg["name"], "frame_range": seg["frame_range"], "accepted": seg["accepted"],
                       "reasons": seg["reasons"], "parallax_deg": seg["parallax_deg"], "reprojection_px": seg["reprojection_px"],
                       "scale_trend": seg["scales"].get("depth", {}).get("trend", float("nan"))}
                if seg["accepted"] and source in truth:
                    a, b = seg["frame_range"]
                    gt = np.linalg.inv(truth[source][a]) @ truth[source][a:b]
                    est = read_re10k_cameras(root / "out" / f"{seg['name']}.txt").c2w.numpy()
                    err = trajectory_errors(est, gt)
                    used = seg["scales"]["depth"]["scale"]
                    true_scale = used * err["scale"]  # the scale that would have made the path right
                    row.update(err)
                    row["depth_scale_error"] = seg["scales"]["depth"]["scale"] / true_scale - 1
                    row["depth_scale_spread"] = seg["scales"]["depth"]["spread"]
                    if "camera_height" in seg["scales"]:
                        row["height_scale_error"] = seg["scales"]["camera_height"]["scale"] / true_scale - 1
                    if args.unknown_intrinsics:
                        row["focal_error"] = seg["intrinsics_px"][0] / float(k[0]) - 1
                rows.append(row)
    good = [r for r in rows if r["accepted"]]
    header = (f"{'clip':8} {'frames':>8} {'ok':>3} {'rot deg':>8} {'rel rot':>8} {'ATE %':>6} {'depth sc %':>10} {'height sc %':>11} "
              f"{'parallax':>8} {'trend':>6}  reason")
    lines = [f"sanawm annotate on {args.clips} walks + a turn + a textureless clip, {size} x {size}, {n} frames at {16 / args.stride:g} fps, "
             f"{'estimated' if args.unknown_intrinsics else 'known'} intrinsics, scale trend limit {args.max_scale_trend:g}", header]
    for r in rows:
        fr = r.get("frame_range")
        lines.append(f"{r['clip']:8} {(f'{fr[0]}-{fr[1]}' if fr else '-'):>8} {'yes' if r['accepted'] else 'no':>3} "
                     f"{r.get('rotation_deg', float('nan')):8.3f} {r.get('relative_rotation_deg', float('nan')):8.3f} "
                     f"{100 * r.get('ate_fraction', float('nan')):6.2f} {100 * r.get('depth_scale_error', float('nan')):10.2f} "
                     f"{100 * r.get('height_scale_error', float('nan')):11.2f} {r.get('parallax_deg', float('nan')):8.2f} "
                     f"{r.get('scale_trend', float('nan')):6.3f}  "
                     f"{'; '.join(r['reasons'])[:110]}")
    fps = summary["frames_per_second"]
    lines.append("frames/s per stage: " + ", ".join(f"{s} {v:.1f}" for s, v in fps.items()) +
                 f"; whole pipeline {summary['frames'] / wall:.2f} frames/s ({summary['frames']} frames in {wall:.1f} s, rendering {render_s:.1f} s apart)")
    if good:
        mean = {key: float(np.mean([abs(r[key]) for r in good if key in r])) for key in
                ("rotation_deg", "relative_rotation_deg", "ate_fraction", "depth_scale_error", "height_scale_error")}
        lines.append("accepted walks, mean |error|: " + ", ".join(f"{key} {v:.4f}" for key, v in mean.items()))
    print("\n".join(lines))
    result = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "size": size, "frames": n,
              "fps_of_clips": 16 / args.stride, "unknown_intrinsics": args.unknown_intrinsics, "max_scale_trend": args.max_scale_trend, "rows": rows,
              "frames_per_second": fps, "seconds": summary["seconds"], "wall_seconds": wall, "table": lines}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(Path(args.out), json.dumps(result, indent=1, default=float))


if __name__ == "__main__":
    main()
