"""Procedural scenes and the ray caster: determinism, collision, and exact depth against a
brute-force reference that intersects every ray with every wall cell, landmark and plane."""

import math
from collections import deque

import numpy as np
import pytest
import torch

from model.camera import camera_directions, intrinsics_from_fov
from sanawm_env.render import render
from sanawm_env.scene import SceneConfig, generate_scene
from sanawm_env.trajectories import pose_from


def _reference_depth(scene, c2w: np.ndarray, intrinsics: torch.Tensor, h: int, w: int) -> np.ndarray:
    """z-depth by testing each ray against all geometry (slow, obviously correct)."""
    cfg = scene.config
    cs, top = cfg.cell_size, cfg.wall_height
    d = camera_directions(intrinsics.double(), h, w).reshape(-1, 3).numpy() @ c2w[:3, :3].T
    o = c2w[:3, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / d
        t_best = np.full(len(d), np.inf)

        def slab(lo, hi):  # (N, 3) boxes -> (R, N) entry distance
            t1 = (lo[None] - o) * inv[:, None]
            t2 = (hi[None] - o) * inv[:, None]
            near, far = np.minimum(t1, t2).max(-1), np.maximum(t1, t2).min(-1)
            return np.where((far >= near) & (near > 0), near, np.inf)

        iz, ix = np.nonzero(scene.walls.numpy() > 0)
        lo = np.stack([ix * cs, np.full(len(ix), -top), iz * cs], -1)
        t_best = np.minimum(t_best, slab(lo, lo + np.array([cs, top, cs])).min(-1))
        if len(scene.boxes):
            b = scene.boxes.double().numpy()
            t_best = np.minimum(t_best, slab(b[:, :3], b[:, 3:]).min(-1))
        for x, z, r in scene.cylinders.double().numpy():
            px, pz = o[0] - x, o[2] - z
            a = d[:, 0] ** 2 + d[:, 2] ** 2
            bq = px * d[:, 0] + pz * d[:, 2]
            disc = bq * bq - a * (px * px + pz * pz - r * r)
            t = (-bq - np.sqrt(np.maximum(disc, 0))) / a
            y = o[1] + t * d[:, 1]
            t_best = np.minimum(t_best, np.where((disc > 0) & (t > 0) & (y >= -top) & (y <= 0), t, np.inf))
        for x, y0, z, r in scene.spheres.double().numpy():
            oc = o - np.array([x, y0, z])
            a, bq = (d * d).sum(-1), d @ oc
            disc = bq * bq - a * (oc @ oc - r * r)
            t = (-bq - np.sqrt(np.maximum(disc, 0))) / a
            t_best = np.minimum(t_best, np.where((disc > 0) & (t > 0), t, np.inf))
        t_floor = np.where(d[:, 1] > 0, -o[1] / d[:, 1], np.inf)
        t_top = np.where(d[:, 1] < 0, (-top - o[1]) / d[:, 1], np.inf)
        px, pz = o[0] + t_top * d[:, 0], o[2] + t_top * d[:, 2]
        g = cfg.grid_size
        cx = np.clip(np.nan_to_num(px // cs, posinf=g, neginf=-1), 0, g - 1).astype(int)
        cz = np.clip(np.nan_to_num(pz // cs, posinf=g, neginf=-1), 0, g - 1).astype(int)
        roofed = scene.roofed.numpy()[cz, cx] & np.isfinite(t_top)
        t_best = np.minimum(t_best, np.minimum(t_floor, np.where(roofed, t_top, np.inf)))
    return t_best.reshape(h, w)


def _views(scene, rng, n):
    poses = []
    for _ in range(n):
        base = scene.spawn_pose(rng).numpy()
        yaw = math.atan2(base[0, 2], base[2, 2]) + rng.uniform(-math.pi, math.pi)
        poses.append(pose_from(base[:3, 3], yaw, pitch=rng.uniform(-1.2, 1.2), roll=rng.uniform(-0.5, 0.5)))
    return np.stack(poses)


@pytest.mark.parametrize("seed,sky", [(0, 0.0), (1, 1.0), (7, 0.5), (12, 0.5)])
def test_depth_matches_brute_force_reference(seed, sky):
    scene = generate_scene(seed, SceneConfig(sky_probability=sky))
    rng = np.random.default_rng(seed)
    poses = _views(scene, rng, 6)
    k = intrinsics_from_fov(90.0, 24, 32)
    depth = render(scene, torch.from_numpy(poses), k, 24, 32).depth.numpy()
    for pose, got in zip(poses, depth):
        want = _reference_depth(scene, pose, k, 24, 32)
        assert np.array_equal(np.isinf(got), np.isinf(want)), "sky pixels differ"
        finite = np.isfinite(want)
        rel = np.abs(got[finite] - want[finite]) / want[finite]
        print(f"seed {seed}: max relative depth error {rel.max():.2e}")
        assert rel.max() < 1e-4


def test_depth_is_metric():
    scene = generate_scene(3)
    # Stand in a free cell and face a wall straight on: the centre ray's depth is the distance.
    walls = scene.walls.numpy()
    cs = scene.config.cell_size
    for iz, ix in zip(*np.nonzero(walls == 0)):
        if walls[iz, ix + 1] > 0:
            break
    x = (ix + 0.5) * cs
    pose = pose_from(np.array([x, -1.5, (iz + 0.5) * cs]), yaw=math.pi / 2)  # facing +x
    frames = render(scene, torch.from_numpy(pose[None]), intrinsics_from_fov(60.0, 9, 9), 9, 9)
    assert frames.depth[0, 4, 4].item() == pytest.approx((ix + 1) * cs - x, rel=1e-5)


def test_render_is_deterministic_batched_and_typed():
    scene = generate_scene(5)
    poses = torch.from_numpy(_views(scene, np.random.default_rng(0), 5))
    k = intrinsics_from_fov(80.0, 16, 20)
    batched = render(scene, poses, k, 16, 20)
    assert batched.rgb.shape == (5, 16, 20, 3) and batched.rgb.dtype == torch.uint8
    assert batched.depth.shape == (5, 16, 20) and batched.depth.dtype == torch.float32
    again = render(scene, poses, k, 16, 20, max_rays=16 * 20)  # one camera per group
    assert torch.equal(batched.rgb, again.rgb)
    assert torch.equal(batched.depth, again.depth)
    assert batched.rgb.float().std() > 10, "images should not be flat"


def test_render_rejects_bad_input():
    scene = generate_scene(0)
    with pytest.raises(ValueError, match="height and width must be positive"):
        render(scene, torch.eye(4)[None], intrinsics_from_fov(60.0, 8, 8), 0, 8)
    with pytest.raises(ValueError, match=r"c2w must have shape \(B, 4, 4\)"):
        render(scene, torch.eye(4), intrinsics_from_fov(60.0, 8, 8), 8, 8)


def test_scenes_are_deterministic_and_varied():
    a, b, c = generate_scene(11), generate_scene(11), generate_scene(12)
    assert torch.equal(a.walls, b.walls) and torch.equal(a.boxes, b.boxes)
    assert torch.equal(a.materials.color_a, b.materials.color_a)
    assert not torch.equal(a.walls, c.walls)
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        generate_scene(-1)
    with pytest.raises(ValueError, match="eye_height"):
        SceneConfig(eye_height=5.0)


@pytest.mark.parametrize("seed", range(8))
def test_every_room_is_reachable_and_the_border_is_solid(seed):
    scene = generate_scene(seed)
    walls = scene.walls.numpy()
    assert (walls[0] > 0).all() and (walls[-1] > 0).all() and (walls[:, 0] > 0).all() and (walls[:, -1] > 0).all()
    free = walls == 0
    start = tuple(np.argwhere(free)[0])
    seen, queue = {start}, deque([start])
    while queue:
        z, x = queue.popleft()
        for n in ((z + 1, x), (z - 1, x), (z, x + 1), (z, x - 1)):
            if free[n] and n not in seen:
                seen.add(n)
                queue.append(n)
    assert len(seen) == free.sum(), "some free cells cannot be reached"
    assert len(scene.rooms) >= 1


def test_motion_never_ends_inside_geometry():
    scene = generate_scene(4)
    rng = np.random.default_rng(0)
    pos = scene.spawn_pose(rng).numpy()[:3, 3]
    hits = 0
    for _ in range(400):
        target = pos + rng.normal(0, 0.3, 3) * np.array([1.0, 0.3, 1.0])
        pos, hit = scene.resolve_motion(pos, target, 0.25)
        hits += hit
        assert scene.is_free(pos, 0.25)
    assert hits > 0, "a long random walk should bump into something"


def test_long_moves_do_not_tunnel_through_walls():
    scene = generate_scene(3)
    walls = scene.walls.numpy()
    iz, ix = next((z, x) for z, x in zip(*np.nonzero(walls == 0)) if walls[z, x + 1] > 0)
    start = np.array([ix + 0.5, -1.5, iz + 0.5])
    end = start + np.array([5.0, 0.0, 0.0])  # 5 m through the wall in one call
    pos, hit = scene.resolve_motion(start, end, 0.25)
    assert hit and pos[0] <= ix + 1 - 0.25 + 1e-6
