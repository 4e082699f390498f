"""Camera geometry: SE(3) algebra, deltas, intrinsics, rays, Plucker maps, RealEstate10K files."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from model.camera import (
    Re10kCameras,
    apply_camera_delta,
    camera_delta,
    camera_directions,
    delta_steps,
    intrinsics_from_fov,
    intrinsics_matrix,
    look_at,
    pixel_rays,
    plucker_rays,
    read_re10k_cameras,
    relative_to_first,
    rescale_intrinsics,
    scale_translation,
    se3,
    se3_compose,
    se3_inverse,
    so3_exp,
    so3_log,
    write_re10k_cameras,
)

finite = st.floats(-3.0, 3.0, allow_nan=False)
vec3 = st.tuples(finite, finite, finite)
small_angle = st.floats(-1.0, 1.0, allow_nan=False)


def _pose(rotvec, trans) -> torch.Tensor:
    return se3(so3_exp(torch.tensor(rotvec, dtype=torch.float64)), torch.tensor(trans, dtype=torch.float64))


@given(vec3, vec3)
def test_inverse_composes_to_identity(rotvec, trans):
    pose = _pose(rotvec, trans)
    eye = torch.eye(4, dtype=torch.float64)
    torch.testing.assert_close(se3_compose(se3_inverse(pose), pose), eye, atol=1e-10, rtol=0)
    torch.testing.assert_close(se3_compose(pose, se3_inverse(pose)), eye, atol=1e-10, rtol=0)


@given(st.tuples(small_angle, small_angle, small_angle).filter(lambda v: np.linalg.norm(v) < 3.0))
def test_so3_log_inverts_exp(rotvec):
    v = torch.tensor(rotvec, dtype=torch.float64)
    rot = so3_exp(v)
    torch.testing.assert_close(rot @ rot.T, torch.eye(3, dtype=torch.float64), atol=1e-12, rtol=0)
    assert torch.det(rot).item() == pytest.approx(1.0, abs=1e-12)
    torch.testing.assert_close(so3_log(rot), v, atol=1e-9, rtol=0)


def test_so3_log_near_pi():
    v = torch.tensor([0.0, math.pi - 1e-5, 0.0], dtype=torch.float64)
    torch.testing.assert_close(so3_exp(so3_log(so3_exp(v))), so3_exp(v), atol=1e-8, rtol=0)


def test_delta_axes_follow_opencv_and_the_release_controls():
    eye = torch.eye(4, dtype=torch.float64)

    def forward(delta):
        return apply_camera_delta(eye, torch.tensor(delta, dtype=torch.float64))[:3, 2]

    assert forward([0, 0, 0, 0, 0, 0.3])[0] > 0  # positive yaw turns right (+x)
    assert forward([0, 0, 0, 0, 0.3, 0])[1] < 0  # positive pitch looks up (-y, y is down)
    right = apply_camera_delta(eye, torch.tensor([0, 0, 0, 0.3, 0, 0], dtype=torch.float64))[:3, 0]
    assert right[1] > 0  # positive roll dips the right side: clockwise seen from behind
    moved = apply_camera_delta(eye, torch.tensor([0.1, -0.2, 0.5, 0, 0, 0], dtype=torch.float64))
    torch.testing.assert_close(moved[:3, 3], torch.tensor([0.1, -0.2, 0.5], dtype=torch.float64))


def test_translation_is_in_the_camera_frame():
    turned = _pose([0.0, math.pi / 2, 0.0], [1.0, 0.0, 2.0])  # facing +x
    moved = apply_camera_delta(turned, torch.tensor([0, 0, 1.0, 0, 0, 0], dtype=torch.float64))
    torch.testing.assert_close(moved[:3, 3], torch.tensor([2.0, 0.0, 2.0], dtype=torch.float64), atol=1e-12, rtol=0)


@settings(max_examples=30)
@given(st.tuples(*[small_angle] * 6), st.integers(1, 20))
def test_delta_steps_compose_to_the_delta(delta, frames):
    d = torch.tensor(delta, dtype=torch.float64)
    steps = delta_steps(d, frames)
    assert steps.shape == (frames, 4, 4)
    pose = torch.eye(4, dtype=torch.float64)
    for k, step in enumerate(steps, start=1):
        pose = pose @ step
        torch.testing.assert_close(pose, camera_delta(d * k / frames), atol=1e-10, rtol=0)


def test_camera_delta_rejects_wrong_shape():
    with pytest.raises(ValueError, match="6 entries"):
        camera_delta(torch.zeros(5))
    with pytest.raises(ValueError, match="num_frames"):
        delta_steps(torch.zeros(6), 0)


@given(vec3, vec3, vec3, vec3)
def test_relative_poses_ignore_a_global_transform(r0, t0, r1, t1):
    poses = torch.stack([_pose(r0, t0), _pose(r1, t1)])
    rel = relative_to_first(poses)
    torch.testing.assert_close(rel[0], torch.eye(4, dtype=torch.float64), atol=1e-10, rtol=0)
    world = _pose([0.3, -0.2, 0.5], [4.0, -1.0, 2.0])
    torch.testing.assert_close(relative_to_first(world @ poses), rel, atol=1e-9, rtol=0)


def test_scale_translation_scales_metric_distances():
    poses = torch.stack([_pose([0.1, 0.2, 0.3], [1.0, 2.0, 3.0]), _pose([0.0, 0.0, 0.0], [0.0, 0.0, 0.0])])
    scaled = scale_translation(poses, 2.5)
    torch.testing.assert_close(scaled[:, :3, :3], poses[:, :3, :3])
    torch.testing.assert_close(scaled[:, :3, 3], poses[:, :3, 3] * 2.5)


def test_look_at_points_the_optical_axis_at_the_target():
    eye, target = torch.tensor([1.0, -1.5, 0.0], dtype=torch.float64), torch.tensor([4.0, -1.0, 4.0], dtype=torch.float64)
    pose = look_at(eye, target)
    torch.testing.assert_close(pose[:3, 2], (target - eye) / (target - eye).norm())
    torch.testing.assert_close(pose[:3, :3] @ pose[:3, :3].T, torch.eye(3, dtype=torch.float64), atol=1e-12, rtol=0)


def test_intrinsics_from_fov_and_matrix():
    k = intrinsics_from_fov(90.0, 48, 64)
    torch.testing.assert_close(k, torch.tensor([32.0, 32.0, 32.0, 24.0], dtype=torch.float64))
    torch.testing.assert_close(intrinsics_matrix(k), torch.tensor([[32.0, 0, 32], [0, 32, 24], [0, 0, 1]], dtype=torch.float64))
    with pytest.raises(ValueError, match="fov_x_deg"):
        intrinsics_from_fov(180.0, 8, 8)
    with pytest.raises(ValueError, match="height and width"):
        intrinsics_from_fov(60.0, 0, 8)
    with pytest.raises(ValueError, match="sizes must be positive"):
        rescale_intrinsics(k, (48, 64), (0, 2))


@settings(max_examples=30)
@given(
    st.floats(20.0, 200.0), st.floats(20.0, 200.0), st.floats(0.0, 64.0), st.floats(0.0, 48.0),
    st.sampled_from([(48, 64, 12, 16), (48, 64, 6, 2), (32, 32, 32, 32), (33, 17, 5, 7)]),
)
def test_rescaled_intrinsics_hit_the_same_rays(fx, fy, cx, cy, sizes):
    h0, w0, h1, w1 = sizes
    k = torch.tensor([fx, fy, cx, cy], dtype=torch.float64)
    k1 = rescale_intrinsics(k, (h0, w0), (h1, w1))
    small = camera_directions(k1, h1, w1)  # rays through the small grid's pixel centres
    # The same points of the image, in the big image's continuous coordinates.
    u = (torch.arange(w1, dtype=torch.float64) + 0.5) * (w0 / w1)
    v = (torch.arange(h1, dtype=torch.float64) + 0.5) * (h0 / h1)
    vv, uu = torch.meshgrid(v, u, indexing="ij")
    big = torch.stack([(uu - cx) / fx, (vv - cy) / fy, torch.ones_like(uu)], dim=-1)
    torch.testing.assert_close(small, big, atol=1e-10, rtol=1e-10)


@given(vec3, vec3)
def test_plucker_moment_is_orthogonal_to_direction(rotvec, trans):
    pose = _pose(rotvec, trans)
    k = intrinsics_from_fov(70.0, 6, 8)
    pl = plucker_rays(pose, k, 6, 8)
    assert pl.shape == (6, 6, 8)
    d, m = pl[:3], pl[3:]
    torch.testing.assert_close(d.norm(dim=0), torch.ones(6, 8, dtype=torch.float64))
    assert (d * m).sum(0).abs().max() < 1e-9
    # The moment belongs to the line, not the origin: any point on the ray gives the same one.
    origins, dirs = pixel_rays(pose, k, 6, 8)
    shifted = torch.linalg.cross(origins + 2.5 * dirs, dirs, dim=-1).movedim(-1, 0)
    torch.testing.assert_close(shifted, m, atol=1e-9, rtol=0)


def test_pixel_rays_unnormalised_have_unit_camera_depth():
    pose = _pose([0.2, -0.4, 0.1], [1.0, 2.0, 3.0])
    _, dirs = pixel_rays(pose, intrinsics_from_fov(60.0, 4, 5), 4, 5, normalize=False)
    depth_axis = pose[:3, 2]
    torch.testing.assert_close(dirs @ depth_axis, torch.ones(4, 5, dtype=torch.float64))


def test_plucker_matches_the_release_raymap():
    cam_utils = pytest.importorskip("diffusers.pipelines.sana_wm.cam_utils")
    g = torch.Generator().manual_seed(0)
    poses = torch.stack([_pose(torch.randn(3, generator=g).tolist(), torch.randn(3, generator=g).tolist()) for _ in range(3)]).float()
    k = torch.tensor([[20.0, 22.0, 7.5, 5.0]] * 3)
    ref = cam_utils.compute_raymap(k, poses, 10, 16, use_plucker=True)  # (T, H, W, 6)
    ours = plucker_rays(poses, k, 10, 16, pixel_offset=0.0).movedim(-3, -1)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


def _random_cameras(n: int, seed: int = 0) -> Re10kCameras:
    g = torch.Generator().manual_seed(seed)
    c2w = torch.stack([_pose((torch.rand(3, generator=g) - 0.5).tolist(), (torch.randn(3, generator=g) * 3).tolist()) for _ in range(n)])
    return Re10kCameras(
        url="https://www.youtube.com/watch?v=abcdefghijk",
        timestamps=torch.arange(n, dtype=torch.int64) * 33366 + 1000,
        intrinsics=torch.rand(n, 4, generator=g, dtype=torch.float64) * 0.5 + 0.25,
        c2w=c2w,
    )


def test_re10k_round_trip(tmp_path):
    cams = _random_cameras(5)
    path = tmp_path / "seq.txt"
    write_re10k_cameras(path, cams)
    back = read_re10k_cameras(path)
    assert back.url == cams.url
    assert torch.equal(back.timestamps, cams.timestamps)
    torch.testing.assert_close(back.intrinsics, cams.intrinsics, atol=0, rtol=0)
    torch.testing.assert_close(back.c2w, cams.c2w, atol=1e-12, rtol=0)
    assert not list(tmp_path.glob("*.tmp"))


def test_re10k_reads_world_to_camera_rows(tmp_path):
    path = tmp_path / "seq.txt"
    # Camera at world (1, 2, 3) with identity rotation: world-to-camera translation is -(1, 2, 3).
    path.write_text("url\n0 0.5 0.8 0.5 0.5 0 0 1 0 0 -1 0 1 0 -2 0 0 1 -3\n")
    cams = read_re10k_cameras(path)
    torch.testing.assert_close(cams.c2w[0, :3, 3], torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    torch.testing.assert_close(cams.pixel_intrinsics(100, 200)[0], torch.tensor([100.0, 80.0, 100.0, 50.0], dtype=torch.float64))
    path.write_text("url\n0 0.5 0.8 0.5\n")
    with pytest.raises(ValueError, match="expected 19 numbers"):
        read_re10k_cameras(path)
