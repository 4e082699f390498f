"""`sanawm annotate`: camera poses of rendered clips with known poses come back accurate and metric,
from frame folders and from an mp4; a camera that only turns, a textureless clip and a distorted
reconstruction are rejected with their reason; the output folder is read by the normal clip reader
and trains the tiny world; the geometry helpers (segments, interpolation, parallax, scale and its
trend, ground plane, alignment, camera accuracy) on exact cases.

Small frames (128 x 128) keep COLMAP to about two seconds a clip; benchmarks/annotate.py measures
the same at 256 x 256."""

import json
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("pycolmap")
pytest.importorskip("evo")

from model.annotation import (  # noqa: E402
    AnnotateConfig, ColmapEstimator, Estimate, QualityLimits, Reconstruction, Sampling, ScaleError, ScaleSources, Segment, annotate,
    annotate_frames, camera_accuracy, find_sources, read_clips, scale_from_camera_height, scale_from_depth, trajectory_errors,
)
from model.annotation.quality import interpolate_poses, parallax_deg, segments  # noqa: E402
from model.annotation.scale import scale_trend  # noqa: E402
from model.camera import intrinsics_from_fov, read_re10k_cameras, so3_exp  # noqa: E402
from model.clips import open_clips  # noqa: E402
from sanawm_env.render import render  # noqa: E402
from sanawm_env.scene import generate_scene  # noqa: E402
from sanawm_env.trajectories import make_trajectory, pose_from  # noqa: E402

SIZE = 128
FOV = 80.0
EYE_HEIGHT = 1.5  # the procedural worlds' camera height (SceneConfig.eye_height)


def rendered(seed: int, frames: int = 40, stride: int = 2, turn_only: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames (N, H, W, 3), depth (N, H, W) and poses (N, 4, 4) of a walk through procedural scene ``seed``."""
    scene = generate_scene(seed)
    poses = make_trajectory("walk", scene, np.random.default_rng(seed), frames * stride, 16.0)[::stride]
    if turn_only:
        poses = np.stack([pose_from(poses[0, :3, 3], yaw) for yaw in np.linspace(0.0, 1.0, frames)])
    out = render(scene, torch.from_numpy(poses), intrinsics_from_fov(FOV, SIZE, SIZE), SIZE, SIZE)
    return out.rgb.numpy(), out.depth.numpy(), poses


class RenderedDepth:
    """A MetricDepth that hands back the renderer's exact depth of the clip it was made for."""

    def __init__(self, depth: np.ndarray) -> None:
        self.depth = depth

    def __call__(self, frames: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
        assert frames.shape[:3] == self.depth.shape
        return self.depth


class Recorded:
    """COLMAP, keeping what it estimated so that tests can check the same reconstruction again."""

    def __init__(self) -> None:
        self.colmap = ColmapEstimator()
        self.estimates: list[Estimate] = []

    def __call__(self, frames: np.ndarray, intrinsics: np.ndarray | None) -> Estimate:
        self.estimates.append(self.colmap(frames, intrinsics))
        return self.estimates[-1]


class Replay:
    """A PoseEstimator that hands back a stored estimate."""

    def __init__(self, estimate: Estimate) -> None:
        self.estimate = estimate

    def __call__(self, frames: np.ndarray, intrinsics: np.ndarray | None) -> Estimate:
        return self.estimate


def save_frames(folder: Path, frames: np.ndarray) -> Path:
    folder.mkdir(parents=True)
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{i:04d}.png")
    return folder


@pytest.fixture(scope="module")
def walk(tmp_path_factory):
    """A walk annotated through the whole pipeline (frame folder in, RealEstate10K-style folder out)."""
    tmp = tmp_path_factory.mktemp("annotate")
    frames, depth, poses = rendered(seed=2)
    config = AnnotateConfig(sampling=Sampling(folder_fps=8.0), intrinsics=tuple(intrinsics_from_fov(FOV, SIZE, SIZE).tolist()),
                            camera_height_m=EYE_HEIGHT, progress=False)
    colmap = Recorded()
    summary = annotate([save_frames(tmp / "walk", frames)], tmp / "out", config, estimator=colmap, depth=RenderedDepth(depth))
    return tmp / "out", summary, frames, poses, colmap.estimates[0], depth


def test_walk_is_accepted_accurate_and_metric(walk):
    out, summary, _, poses, _, _ = walk
    assert summary["accepted"] == ["walk_000"], summary
    cams = read_re10k_cameras(out / "walk_000.txt")
    report = json.loads((out / "walk_000.json").read_text())
    start, stop = report["frame_range"]
    assert stop - start >= 30  # most of the 40 frames
    truth = np.linalg.inv(poses[start]) @ poses[start:stop]
    errors = trajectory_errors(cams.c2w.numpy(), truth)
    print(errors, report["scales"])
    assert errors["rotation_deg"] < 1.0
    assert errors["relative_rotation_deg"] < 0.5
    assert errors["ate_fraction"] < 0.05
    # The path was scaled by the depth scale; the alignment's scale is what it is still off by.
    assert abs(errors["scale"] - 1) < 0.05
    depth_scale = report["scales"]["depth"]["scale"]
    true_scale = depth_scale * errors["scale"]
    assert abs(report["scales"]["camera_height"]["scale"] / true_scale - 1) < 0.10
    assert report["metric"] and report["reasons"] == [] and report["scales"]["depth"]["spread"] < 0.25


def test_output_is_read_by_the_clip_reader_and_trains_the_tiny_world(walk, tmp_path):
    from model.training.trainer import train
    from sanawm.train import compose

    out, _, frames, _, _, _ = walk
    data = open_clips(out)
    item = data[0]
    report = json.loads((out / "walk_000.json").read_text())
    start, stop = report["frame_range"]
    assert item["frames"].shape == (stop - start, SIZE, SIZE, 3)
    assert np.array_equal(item["frames"].numpy(), frames[start:stop])
    assert torch.allclose(item["intrinsics"][0].double(), intrinsics_from_fov(FOV, SIZE, SIZE), atol=1e-3)
    assert torch.allclose(item["c2w"][0], torch.eye(4), atol=1e-5)  # relative to the clip's first frame
    base = ["world=tiny", "num_workers=0", "progress=false", "threads=1", "latent_frames=4"]
    train(compose([*base, "stage=vae", f"data={out}", f"out={tmp_path / 'vae'}", "steps=2"]))
    train(compose([*base, "stage=latents", f"data={out}", f"out={tmp_path / 'latents'}", f"vae={tmp_path / 'vae'}"]))
    index = json.loads((tmp_path / "latents" / "index.json").read_text())
    assert index["complete"] and index["num_clips"] == 1


@pytest.mark.parametrize("along", ["depth", "column", "time"])
def test_a_distorted_reconstruction_is_rejected_with_its_reason(walk, along):
    """The walk's own reconstruction, measured against depth that disagrees with it the way a distorted
    reconstruction disagrees with the scene (the benchmark's distorted walks trend by 0.56 and 0.82):
    the depth ratio grows 1.7 times from the 10th to the 90th percentile of the observed points' depth,
    image column or time. The undistorted depth passes."""
    _, _, frames, _, estimate, depth = walk
    k = intrinsics_from_fov(FOV, SIZE, SIZE).numpy()
    n, _, w = depth.shape
    covariate = {
        "depth": np.log(depth / np.median(depth)),
        "column": np.broadcast_to(np.linspace(-1, 1, w)[None, None, :], depth.shape),
        "time": np.broadcast_to(np.linspace(-1, 1, n)[:, None, None], depth.shape),
    }[along]

    def main_segment(d: np.ndarray) -> Segment:
        result = annotate_frames(frames, Replay(estimate), k, ScaleSources(depth=RenderedDepth(d), camera_height_m=EYE_HEIGHT))
        return max(result.segments, key=lambda s: s.stop - s.start)

    right = main_segment(depth)
    assert right.accepted, right.reasons
    rec = estimate.reconstructions[0]
    seen = covariate[rec.obs_frame, rec.obs_uv[:, 1].astype(int), rec.obs_uv[:, 0].astype(int)]
    low, mid, high = np.quantile(seen, [0.1, 0.5, 0.9])
    warped = main_segment(depth * 1.7 ** ((covariate - mid) / (high - low)))
    print(along, right.stats["scales"]["depth"]["trend"], warped.stats["scales"]["depth"]["trend"], warped.reasons)
    assert right.stats["scales"]["depth"]["trend"] < QualityLimits().max_scale_trend / 2
    assert any(r.startswith("distorted reconstruction") for r in warped.reasons)


def test_a_camera_that_only_turns_is_rejected():
    frames, _, _ = rendered(seed=2, frames=24, turn_only=True)
    result = annotate_frames(frames, ColmapEstimator(), intrinsics_from_fov(FOV, SIZE, SIZE).numpy())
    accepted = [s for s in result.segments if s.accepted]
    reasons = result.reasons + [r for s in result.segments for r in s.reasons]
    print(reasons)
    assert not accepted
    assert any("parallax" in r for r in reasons)


def test_a_textureless_clip_is_rejected(tmp_path):
    from sanawm.cli import main

    ramp = np.linspace(40, 200, SIZE).astype(np.uint8)
    frames = np.broadcast_to(ramp[None, None, :, None], (12, SIZE, SIZE, 3)).copy()
    assert main(["annotate", str(save_frames(tmp_path / "flat", frames)), "--out", str(tmp_path / "out")]) == 0
    summary = json.loads((tmp_path / "out" / "annotation.json").read_text())
    assert summary["accepted"] == [] and summary["rejected"] == 1
    assert "textureless" in summary["clips"][0]["reasons"][0]
    assert not list((tmp_path / "out").glob("*.txt"))  # nothing the clip reader would take


def test_a_model_with_a_focal_length_through_zero_is_dropped_and_said():
    """Bundle adjustment with the focal length free drove one 128 px walk's model to -0.025 px; such a
    model is dropped, and a clip left with none says why."""
    from model.annotation.colmap import _focal_is_positive

    camera = SimpleNamespace(focal_length_x=-0.025, focal_length_y=-0.025)
    assert not _focal_is_positive(SimpleNamespace(cameras={1: camera}))
    assert _focal_is_positive(SimpleNamespace(cameras={1: SimpleNamespace(focal_length_x=90.0, focal_length_y=90.0)}))
    frames = np.zeros((8, SIZE, SIZE, 3), dtype=np.uint8)
    result = annotate_frames(frames, Replay(Estimate(reconstructions=[], diagnostics={"keypoints_per_frame": 500.0, "degenerate_models": 1.0})))
    assert result.reasons and "focal length" in result.reasons[0]


def test_annotate_refuses_a_folder_in_use_and_bad_input(tmp_path):
    from sanawm.cli import main

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not an empty folder"):
        annotate([tmp_path], tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="no such video"):
        find_sources([tmp_path / "missing.mp4"])
    assert main(["annotate", str(tmp_path), "--out", str(tmp_path / "o2"), "--estimator", "nowhere:Nothing"]) == 2
    with pytest.raises(ValueError, match="clip_frames"):
        Sampling(clip_frames=1)


def test_the_distortion_limit_is_a_command_line_option(tmp_path, monkeypatch, capsys):
    import model.annotation
    from sanawm.cli import main

    seen = {}
    monkeypatch.setattr(model.annotation, "annotate", lambda inputs, out, config, **kw: seen.setdefault("limits", config.limits) and
                        {"accepted": [], "rejected": 0, "frames": 0, "seconds": {}})
    assert main(["annotate", str(tmp_path), "--out", str(tmp_path / "o"), "--max-scale-trend", "0.3"]) == 0
    assert seen.pop("limits").max_scale_trend == 0.3
    assert main(["annotate", str(tmp_path), "--out", str(tmp_path / "o")]) == 0
    assert seen["limits"].max_scale_trend == QualityLimits().max_scale_trend  # the default stays the library's
    with pytest.raises(SystemExit):
        main(["annotate", str(tmp_path), "--out", str(tmp_path / "o"), "--max-scale-trend", "-1"])
    assert "--max-scale-trend" in capsys.readouterr().err


def write_mp4(path: Path, frames: np.ndarray, fps: int) -> Path:
    """Frames (N, H, W, 3) uint8 as an H.264 video (PyAV), at a quality (CRF 10, 33 dB on the walk) that
    keeps the walk's reconstruction right; MPEG-4 at 32 dB made it 9 degrees off, which the checks reject."""
    av = pytest.importorskip("av")
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"crf": "10"})
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_video_files_are_sampled_to_the_asked_frame_rate(tmp_path):
    ramp = np.repeat(np.arange(32, dtype=np.uint8) * 8, 64 * 64 * 3).reshape(32, 64, 64, 3)
    path = write_mp4(tmp_path / "v.mp4", ramp, fps=16)
    clips = list(read_clips(find_sources([path])[0], Sampling(fps=8.0, clip_frames=10, size=(32, 48))))
    assert [len(c.frames) for c in clips] == [10, 6]  # 32 frames at 16 fps -> 16 at 8 fps
    assert clips[0].frames.shape[1:] == (32, 48, 3)
    assert np.allclose(np.diff(clips[0].timestamps_us), 125_000, atol=1)
    assert clips[1].name == "v_001"


def test_annotate_an_mp4_end_to_end(walk, tmp_path):
    """`sanawm annotate` on a video file: decoded with PyAV, annotated, and written as a clip whose
    cameras follow the walk, in metres from the camera height."""
    from sanawm.cli import main

    _, _, frames, poses, _, _ = walk
    video = write_mp4(tmp_path / "walk.mp4", frames, fps=8)
    out = tmp_path / "out"
    assert main(["annotate", str(video), "--out", str(out), "--fov", str(FOV), "--size", str(SIZE), str(SIZE),
                 "--camera-height", str(EYE_HEIGHT)]) == 0
    summary = json.loads((out / "annotation.json").read_text())
    assert summary["accepted"] == ["walk_000"], summary["clips"][0]["segments"]
    report = json.loads((out / "walk_000.json").read_text())
    start, stop = report["frame_range"]
    cams = read_re10k_cameras(out / "walk_000.txt")
    assert stop - start >= 30 and len(cams.c2w) == stop - start
    assert np.allclose(np.diff(cams.timestamps.numpy()), 125_000, atol=1)  # 8 fps
    errors = trajectory_errors(cams.c2w.numpy(), np.linalg.inv(poses[start]) @ poses[start:stop])
    print(errors, report["scales"])
    assert errors["rotation_deg"] < 1.0 and errors["ate_fraction"] < 0.05
    assert report["metric"] and abs(errors["scale"] - 1) < 0.10  # the camera-height prior's bar


# ------------------------------------------------------------------------------------------------
# Geometry on exact cases (no COLMAP)


def synthetic(c2w: np.ndarray, points: np.ndarray, k: np.ndarray) -> Reconstruction:
    """A reconstruction whose observations are the exact projections of ``points`` in every frame."""
    n, m = len(c2w), len(points)
    frames = np.repeat(np.arange(n), m)
    ids = np.tile(np.arange(m), n)
    w2c = np.linalg.inv(c2w)[frames]
    x = np.einsum("kij,kj->ki", w2c[:, :3, :3], points[ids]) + w2c[:, :3, 3]
    uv = np.stack([k[0] * x[:, 0] / x[:, 2] + k[2], k[1] * x[:, 1] / x[:, 2] + k[3]], axis=1)
    return Reconstruction(c2w=c2w, registered=np.ones(n, dtype=bool), intrinsics=k, points=points,
                          obs_frame=frames, obs_point=ids, obs_uv=uv)


def scene_points(rng: np.random.Generator) -> np.ndarray:
    floor = np.stack([rng.uniform(-3, 3, 200), np.full(200, 1.5), rng.uniform(2, 8, 200)], axis=1)  # 1.5 below the cameras
    walls = np.stack([rng.uniform(-3, 3, 200), rng.uniform(-1.5, 1.0, 200), np.full(200, 8.0)], axis=1)
    return np.concatenate([floor, walls])


def test_scale_from_depth_and_camera_height_on_exact_geometry():
    rng = np.random.default_rng(0)
    c2w = np.stack([pose_from(np.array([0.2 * i, 0.0, 0.1 * i]), 0.05 * i) for i in range(6)])
    k = np.array([100.0, 100.0, 64.0, 64.0])
    points = scene_points(rng)
    metric = synthetic(c2w, points, k)
    shrunk = c2w.copy()
    shrunk[:, :3, 3] /= 4
    units = synthetic(shrunk, points / 4, k)  # the same views in units of 4 m: the scale is 4
    # depth of the metric scene at every pixel an observation falls on (nearest pixel)
    depth = np.full((6, 128, 128), np.inf)
    z = metric.camera_points()[:, 2]
    inside = (metric.obs_uv >= 0).all(1) & (metric.obs_uv < 128).all(1)
    depth[metric.obs_frame[inside], metric.obs_uv[inside, 1].astype(int), metric.obs_uv[inside, 0].astype(int)] = z[inside]
    estimate = scale_from_depth(units, depth, (128, 128))
    assert abs(estimate.scale - 4.0) < 1e-6 and estimate.spread < 1e-6
    assert estimate.trend < 1e-6  # a similarity of the scene: one ratio at every point
    height, plane = scale_from_camera_height(units, 1.5)
    assert abs(height.scale - 4.0) < 1e-6 and plane.inliers >= 150
    assert np.allclose(np.abs(plane.normal), [0, 1, 0], atol=1e-6)
    with pytest.raises(ScaleError, match="ground plane"):
        scale_from_camera_height(synthetic(c2w, scene_points(rng)[200:], k), 1.5)  # walls only


def test_scale_trend_sees_a_trend_through_noise_and_outliers():
    """The trend fit averages noise away (sigma 0.1, more than a correct 128 px walk's spread of 0.077)
    and trims outliers (5% of points, as at depth edges), but keeps a systematic change of the ratio."""
    rng = np.random.default_rng(0)
    covariates = rng.uniform(-1, 1, (4000, 5))
    noise = rng.normal(0.0, 0.1, 4000)
    noise[:200] += rng.uniform(1.0, 3.0, 200)
    assert scale_trend(np.log(0.3) + noise, covariates) < 0.02
    systematic = 0.3 * covariates[:, 1] - 0.2 * covariates[:, 4]
    low, high = np.quantile(systematic, [0.1, 0.9])
    assert abs(scale_trend(np.log(0.3) + systematic + noise, covariates) - np.expm1(high - low)) < 0.03


def test_segments_interpolation_and_parallax():
    registered = np.array([0, 1, 1, 0, 1, 0, 0, 0, 1, 1, 1, 0], dtype=bool)
    assert segments(registered, max_gap=2) == [(1, 5), (8, 11)]
    assert segments(registered, max_gap=3) == [(1, 11)]
    assert segments(np.zeros(4, dtype=bool), 2) == []
    a = pose_from(np.array([0.0, 0, 0]), 0.0)
    b = pose_from(np.array([2.0, 0, 0]), 0.4)
    c2w = np.stack([a, np.full((4, 4), np.nan), np.full((4, 4), np.nan), np.full((4, 4), np.nan), b])
    filled = interpolate_poses(c2w, np.array([1, 0, 0, 0, 1], dtype=bool))
    assert np.allclose(filled[2], pose_from(np.array([1.0, 0, 0]), 0.2))
    rng = np.random.default_rng(1)
    k = np.array([100.0, 100.0, 64.0, 64.0])
    turning = np.stack([pose_from(np.zeros(3), 0.02 * i) for i in range(8)])
    walking = np.stack([pose_from(np.array([0.0, 0, 0.3 * i]), 0.0) for i in range(8)])
    assert parallax_deg(synthetic(turning, scene_points(rng), k)) < 1e-4  # rounding only
    assert parallax_deg(synthetic(walking, scene_points(rng), k)) > 5


def test_alignment_and_camera_accuracy_on_exact_copies():
    truth = np.stack([pose_from(np.array([np.sin(i / 3), 0.1 * i, 0.4 * i]), 0.1 * i) for i in range(10)])
    moved = np.eye(4)
    moved[:3, :3] = so3_exp(torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64)).numpy()
    moved[:3, 3] = [1.0, 2.0, 3.0]
    est = moved @ truth
    est[:, :3, 3] *= 0.5  # a similarity away from the truth
    errors = trajectory_errors(est, truth)
    assert errors["ate"] < 1e-9 and errors["rotation_deg"] < 1e-6 and abs(errors["scale"] - 2) < 1e-9
    straight = np.stack([pose_from(np.array([0, 0, 0.3 * i]), 0.0) for i in range(6)])  # centres on a line
    assert trajectory_errors(straight, straight)["ate"] < 1e-9
    acc = camera_accuracy(est, truth)  # relative to the first frame and normalised: a similarity costs nothing
    assert acc["rot_err_deg"] < 1e-6 and acc["trans_err"] < 1e-6 and acc["cammc"] < 1e-6
    noisy = truth.copy()
    noisy[5:, :3, :3] = so3_exp(torch.tensor([0.0, np.radians(2.0), 0.0], dtype=torch.float64)).numpy() @ truth[5:, :3, :3]
    assert abs(camera_accuracy(noisy, truth)["rot_err_deg"] - 5 * 2.0) < 1e-6
    with pytest.raises(ValueError, match="same N"):
        camera_accuracy(est[:3], truth)


def test_benchmark_writes_table_and_json(tmp_path):
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "annotate.json"
    run = subprocess.run([sys.executable, str(root / "benchmarks" / "annotate.py"), "--size", "128", "--clips", "1", "--frames", "24",
                          "--out", str(out)], cwd=root, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr
    assert "frames/s per stage" in run.stdout
    data = json.loads(out.read_text())
    assert {r["clip"] for r in data["rows"]} >= {"turn", "flat"}
    assert not any(r["accepted"] for r in data["rows"] if r["clip"] in ("turn", "flat"))
    assert data["frames_per_second"]["features"] > 0
