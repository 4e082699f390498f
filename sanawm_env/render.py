"""Batched CPU ray caster for the procedural worlds: RGB and metric depth at any 6-DoF pose.

Why our own ray caster rather than pybullet's TinyRenderer: every ray is intersected analytically
with the whole scene in a handful of large tensor operations, so a batch of cameras costs a few
vectorised passes (no per-camera Python loop, no OpenGL state), depth is exact z-depth in metres
with no z-buffer round trip, procedural textures are evaluated at the hit point (any resolution,
no texture files), and the same code runs on a GPU for data generation at scale. Walls live on a
grid, so a ray meets them only where it crosses a grid line: the grid is traversed for all rays together, and a ray leaves the batch at its first wall (see ``_walls``).

Shapes: B cameras, P = H * W rays per camera.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from model.camera import camera_directions

from .scene import Scene

Tensor = torch.Tensor
INF = float("inf")

# Kinds of surfaces a ray can end on, in the order of the stacked hit distances.
FLOOR, CEILING, WALL, LANDMARK = range(4)


@dataclass
class Frames:
    """Rendered images: ``rgb`` (B, H, W, 3) uint8 and ``depth`` (B, H, W) float32 z-depth in metres
    (``inf`` where a ray sees the sky)."""

    rgb: Tensor
    depth: Tensor


def render(
    scene: Scene,
    c2w: Tensor,
    intrinsics: Tensor,
    height: int,
    width: int,
    max_rays: int = 1 << 18,
) -> Frames:
    """Render cameras ``c2w`` (B, 4, 4) with ``intrinsics`` (B, 4) or (4,) at ``height`` x ``width``.

    Cameras are processed in groups of at most ``max_rays`` rays to bound memory.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"height and width must be positive, got {height} x {width}")
    if c2w.ndim != 3 or c2w.shape[1:] != (4, 4):
        raise ValueError(f"c2w must have shape (B, 4, 4), got {tuple(c2w.shape)}")
    b = c2w.shape[0]
    intrinsics = torch.as_tensor(intrinsics).expand(b, 4)
    per_group = max(1, max_rays // (height * width))
    rgb, depth = [], []
    for i in range(0, b, per_group):
        r, d = _render_group(scene, c2w[i : i + per_group].float(), intrinsics[i : i + per_group].float(), height, width)
        rgb.append(r)
        depth.append(d)
    return Frames(rgb=torch.cat(rgb).reshape(b, height, width, 3), depth=torch.cat(depth).reshape(b, height, width))


def _render_group(scene: Scene, c2w: Tensor, intrinsics: Tensor, height: int, width: int) -> tuple[Tensor, Tensor]:
    cfg = scene.config
    dirs_cam = camera_directions(intrinsics, height, width).reshape(-1, height * width, 3)  # (B, P, 3), z = 1
    d = dirs_cam @ c2w[:, :3, :3].transpose(1, 2)  # world directions; ray parameter = z-depth
    # Exact zeros would give 0 * inf = nan in the slab tests below.
    d = torch.where(d.abs() < 1e-9, torch.full_like(d, 1e-9), d)
    o = c2w[:, None, :3, 3]  # (B, 1, 3)
    ox, oy, oz = o.unbind(-1)
    dx, dy, dz = d.unbind(-1)
    h = cfg.wall_height

    t_floor = torch.where(dy > 0, -oy / dy, INF)
    t_top = torch.where(dy < 0, (-h - oy) / dy, INF)  # where the ray rises above the wall tops
    ix, iz = _cell(scene, ox + t_top * dx, oz + t_top * dz)
    roofed = scene.roofed[iz, ix] & torch.isfinite(t_top)
    t_ceiling = torch.where(roofed, t_top, INF)
    t_wall, m_wall, wall_x = _walls(scene, ox, oz, dx, dz, torch.minimum(t_floor, t_top))
    t_land, i_land = _landmarks(scene, c2w, intrinsics, o, d, height, width, t_top)

    t_all = torch.stack([t_floor, t_ceiling, t_wall, t_land], dim=-1)
    t, kind = t_all.min(dim=-1)  # (B, P)
    hit = torch.isfinite(t)
    t_safe = torch.where(hit, t, torch.zeros_like(t))
    p = o + t_safe[..., None] * d  # hit points (B, P, 3)

    material, normal = _surfaces(scene, kind, p, d, m_wall, wall_x, i_land)
    color = _shade(scene, material, normal, p, d, t_safe)
    color = torch.where(hit[..., None], color, _sky(scene, d))
    rgb = (color.clamp(0, 1) * 255 + 0.5).to(torch.uint8)
    return rgb, t


def _cell(scene: Scene, x: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
    """Grid cell indices of points, clamped into the grid (and finite for infinite inputs)."""
    g, cs = scene.config.grid_size, scene.config.cell_size
    ix = torch.nan_to_num(x / cs, nan=0.0, posinf=g, neginf=-1).floor().clamp(0, g - 1).long()
    iz = torch.nan_to_num(z / cs, nan=0.0, posinf=g, neginf=-1).floor().clamp(0, g - 1).long()
    return ix, iz


def _walls(scene: Scene, ox: Tensor, oz: Tensor, dx: Tensor, dz: Tensor, t_max: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """First wall cell each ray enters before ``t_max`` (2-D grid traversal, Amanatides & Woo).

    All rays step together, one grid line per iteration. Rays that hit a wall or run past ``t_max``
    (the floor, or the height of the wall tops) are dropped from the batch whenever enough of them
    are done, so the cost follows the distance rays actually travel. The plan's border cells are
    walls, so a ray ends before it could leave the grid. Returns the hit distance (inf if none), the
    wall's material and whether the wall was entered across an x = const line, each (B, P).
    """
    g, cs = scene.config.grid_size, scene.config.cell_size
    shape = dx.shape
    ox, oz = (v.expand(shape).reshape(-1) for v in (ox, oz))
    dx, dz, t_max = dx.reshape(-1), dz.reshape(-1), t_max.reshape(-1)
    walls = scene.walls.reshape(-1)
    t_out = torch.full_like(dx, INF)
    m_out = torch.zeros(dx.shape, dtype=torch.long)
    x_out = torch.zeros(dx.shape, dtype=torch.bool)

    ix, iz = (ox / cs).floor(), (oz / cs).floor()
    sx, sz = torch.sign(dx), torch.sign(dz)
    # Distance to the next x (z) grid line, and between consecutive ones.
    tx = ((ix + (sx > 0)) * cs - ox) / dx
    tz = ((iz + (sz > 0)) * cs - oz) / dz
    dtx, dtz = cs / dx.abs(), cs / dz.abs()
    ray = torch.arange(dx.numel())
    t_rec, m_rec = torch.full_like(dx, INF), torch.zeros_like(ray)
    x_rec, alive = torch.zeros_like(ray, dtype=torch.bool), torch.ones_like(ray, dtype=torch.bool)
    for _ in range(2 * g + 2):
        use_x = tx < tz
        t = torch.minimum(tx, tz)
        ix = ix + torch.where(use_x, sx, 0.0)
        iz = iz + torch.where(use_x, 0.0, sz)
        tx = tx + torch.where(use_x, dtx, 0.0)
        tz = tz + torch.where(use_x, 0.0, dtz)
        m = walls[(iz.clamp(0, g - 1) * g + ix.clamp(0, g - 1)).long()]
        past = t > t_max
        solid = (m > 0) & ~past & alive
        t_rec = torch.where(solid, t, t_rec)
        m_rec = torch.where(solid, m, m_rec)
        x_rec = torch.where(solid, use_x, x_rec)
        alive = alive & ~(solid | past)
        n_alive = int(alive.sum())
        if n_alive < 0.7 * alive.numel() or n_alive == 0:
            done = ~alive
            t_out[ray[done]], m_out[ray[done]], x_out[ray[done]] = t_rec[done], m_rec[done], x_rec[done]
            if n_alive == 0:
                break
            ray, ix, iz, sx, sz, tx, tz, dtx, dtz, t_max, t_rec, m_rec, x_rec = (
                v[alive] for v in (ray, ix, iz, sx, sz, tx, tz, dtx, dtz, t_max, t_rec, m_rec, x_rec)
            )
            alive = torch.ones_like(ray, dtype=torch.bool)
    return t_out.reshape(shape), m_out.reshape(shape), x_out.reshape(shape)


# Landmark kinds in the renderer's table.
_BOX, _CYLINDER, _SPHERE = 0, 1, 2


def _landmark_table(scene: Scene) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """All landmarks as (kind (L,), params (L, 6), bounds (L, 6) min/max xyz, material (L,)), cached."""
    cache = scene.__dict__.setdefault("_render_cache", {})
    if "landmarks" not in cache:
        h = scene.config.wall_height
        cyl, sph = scene.cylinders, scene.spheres
        pad = lambda x: torch.nn.functional.pad(x, (0, 6 - x.shape[1]))  # noqa: E731
        cyl_bounds = torch.stack([cyl[:, 0] - cyl[:, 2], torch.full_like(cyl[:, 0], -h), cyl[:, 1] - cyl[:, 2],
                                  cyl[:, 0] + cyl[:, 2], torch.zeros_like(cyl[:, 0]), cyl[:, 1] + cyl[:, 2]], dim=-1)
        sph_bounds = torch.cat([sph[:, :3] - sph[:, 3:], sph[:, :3] + sph[:, 3:]], dim=-1)
        cache["landmarks"] = (
            torch.cat([torch.full((len(scene.boxes),), _BOX), torch.full((len(cyl),), _CYLINDER), torch.full((len(sph),), _SPHERE)]),
            torch.cat([scene.boxes, pad(cyl), pad(sph)]),
            torch.cat([scene.boxes, cyl_bounds, sph_bounds]),
            torch.cat([scene.box_materials, scene.cylinder_materials, scene.sphere_materials]),
        )
    return cache["landmarks"]


def _landmarks(scene, c2w, intrinsics, o, d, height, width, t_top) -> tuple[Tensor, Tensor]:
    """Nearest landmark along each ray: distance (B, P) (inf if none) and index into the table.

    Each landmark's bounding box is projected into each camera; only the pixels inside that screen
    rectangle are tested against it, so the work follows the landmarks' screen area rather than
    (pixels x landmarks).
    """
    kind, params, bounds, _ = _landmark_table(scene)
    b, p = d.shape[:2]
    t_out = torch.full((b * p,), INF)
    i_out = torch.zeros(b * p, dtype=torch.long)
    if len(kind) == 0:
        return t_out.reshape(b, p), i_out.reshape(b, p)
    # Column of ``bounds`` that holds each coordinate of each of the 8 corners: axis i is i or i + 3.
    corners = torch.stack(torch.meshgrid(*[torch.tensor([i, i + 3]) for i in range(3)], indexing="ij"), -1).reshape(8, 3)
    pts = bounds[:, corners]  # (L, 8, 3)
    w2c = torch.linalg.inv(c2w)
    cam = pts[None] @ w2c[:, None, :3, :3].transpose(-1, -2) + w2c[:, None, None, :3, 3]  # (B, L, 8, 3)
    z = cam[..., 2]
    fx, fy, cx, cy = (v[:, None, None] for v in intrinsics.unbind(-1))
    u = fx * cam[..., 0] / z.clamp_min(1e-6) + cx
    v = fy * cam[..., 1] / z.clamp_min(1e-6) + cy
    near = (z <= 1e-3).any(-1)  # straddles the camera plane: test the whole screen
    # Pixel j is tested when its centre j + 0.5 lies in [u_min, u_max], with a pixel of margin.
    c0 = torch.where(near, 0, (u.amin(-1) - 1.5).ceil()).clamp(0, width)
    c1 = torch.where(near, width, (u.amax(-1) + 0.5).floor() + 1).clamp(0, width)
    r0 = torch.where(near, 0, (v.amin(-1) - 1.5).ceil()).clamp(0, height)
    r1 = torch.where(near, height, (v.amax(-1) + 0.5).floor() + 1).clamp(0, height)
    behind = (z <= 1e-3).all(-1)
    cols, rows = (c1 - c0).clamp_min(0).long(), (r1 - r0).clamp_min(0).long()
    area = torch.where(behind, 0, cols * rows).reshape(-1)  # (B * L,)
    total = int(area.sum())
    if total == 0:
        return t_out.reshape(b, p), i_out.reshape(b, p)
    pair = torch.repeat_interleave(torch.arange(area.numel()), area)  # (K,) index into (B * L)
    offset = torch.arange(total) - torch.repeat_interleave(area.cumsum(0) - area, area)
    w_pair = cols.reshape(-1)[pair]
    row = r0.reshape(-1)[pair].long() + offset // w_pair
    col = c0.reshape(-1)[pair].long() + offset % w_pair
    cam_i, lm = pair // len(kind), pair % len(kind)
    ray = cam_i * p + row * width + col
    t = _intersect(kind[lm], params[lm], o.reshape(b, 3)[cam_i], d.reshape(-1, 3)[ray])
    t = torch.where(t > t_top.reshape(-1)[ray], INF, t)  # nothing stands above the wall tops
    t_out.scatter_reduce_(0, ray, t, reduce="amin")
    win = torch.isfinite(t) & (t == t_out[ray])
    i_out[ray[win]] = lm[win]
    return t_out.reshape(b, p), i_out.reshape(b, p)


def _intersect(kind: Tensor, params: Tensor, o: Tensor, d: Tensor) -> Tensor:
    """Ray parameter of the first intersection of rays (K, 3) with landmarks (K,), inf if none."""
    inv = 1.0 / d
    t1, t2 = (params[:, :3] - o) * inv, (params[:, 3:] - o) * inv
    t_near = torch.minimum(t1, t2).amax(-1)
    t_far = torch.maximum(t1, t2).amin(-1)
    t_box = torch.where((t_far >= t_near) & (t_near > 0), t_near, INF)
    # Vertical cylinder (x, z, r): a circle in the x-z plane.
    px, pz, r = o[:, 0] - params[:, 0], o[:, 2] - params[:, 1], params[:, 2]
    a = d[:, 0] ** 2 + d[:, 2] ** 2
    bq = px * d[:, 0] + pz * d[:, 2]
    disc = bq * bq - a * (px * px + pz * pz - r * r)
    t_cyl = (-bq - disc.clamp_min(0).sqrt()) / a
    t_cyl = torch.where((disc > 0) & (t_cyl > 0), t_cyl, INF)
    # Sphere (x, y, z, r).
    oc = o - params[:, :3]
    a = (d * d).sum(-1)
    bq = (d * oc).sum(-1)
    disc = bq * bq - a * ((oc * oc).sum(-1) - params[:, 3] ** 2)
    t_sph = (-bq - disc.clamp_min(0).sqrt()) / a
    t_sph = torch.where((disc > 0) & (t_sph > 0), t_sph, INF)
    return torch.where(kind == _BOX, t_box, torch.where(kind == _CYLINDER, t_cyl, t_sph))


def _surfaces(scene, kind, p, d, m_wall, wall_x, i_land) -> tuple[Tensor, Tensor]:
    """Material id (B, P) and unit normal (B, P, 3) at every hit point."""
    ix, iz = _cell(scene, p[..., 0], p[..., 2])
    unit = torch.eye(3, dtype=p.dtype)
    mat = torch.where(kind == FLOOR, scene.floors[iz, ix], scene.ceiling_material)
    mat = torch.where(kind == WALL, m_wall, mat)
    normal = torch.where((kind == FLOOR)[..., None], -unit[1], unit[1])
    n_wall = torch.where(wall_x[..., None], -torch.sign(d[..., :1]) * unit[0], -torch.sign(d[..., 2:]) * unit[2])
    normal = torch.where((kind == WALL)[..., None], n_wall, normal)
    sel = (kind == LANDMARK).nonzero(as_tuple=True)
    if sel[0].numel():
        lk, params, _, lmat = _landmark_table(scene)
        lm, q = i_land[sel], p[sel]
        prm = params[lm]
        gap = torch.cat([(q - prm[:, :3]).abs(), (q - prm[:, 3:]).abs()], dim=-1)
        face = gap.argmin(-1)  # 0..2 min faces, 3..5 max faces
        n_box = unit[face % 3] * torch.where(face < 3, -1.0, 1.0)[:, None]
        n_cyl = torch.stack([q[:, 0] - prm[:, 0], torch.zeros_like(q[:, 0]), q[:, 2] - prm[:, 1]], -1) / prm[:, 2:3]
        n_sph = (q - prm[:, :3]) / prm[:, 3:4]
        k = lk[lm][:, None]
        normal[sel] = torch.where(k == _BOX, n_box, torch.where(k == _CYLINDER, n_cyl, n_sph))
        mat[sel] = lmat[lm]
    return mat, normal


def _hash(a: Tensor, b: Tensor) -> Tensor:
    """Cheap deterministic pseudo-random value in [0, 1) per integer lattice point."""
    return torch.frac(torch.sin(a * 12.9898 + b * 78.233) * 43758.5453).abs()


def _shade(scene: Scene, material: Tensor, normal: Tensor, p: Tensor, d: Tensor, t: Tensor) -> Tensor:
    """Colour (B, P, 3): procedural pattern at the hit point, simple lighting, distance fog."""
    mats = scene.materials
    n_abs = normal.abs()
    # Surface coordinates: project on the plane that the normal is most aligned with.
    along_x = (n_abs[..., 0] >= n_abs[..., 1]) & (n_abs[..., 0] >= n_abs[..., 2])
    along_y = ~along_x & (n_abs[..., 1] >= n_abs[..., 2])
    u = torch.where(along_x, p[..., 2], p[..., 0])
    v = torch.where(along_y, p[..., 2], p[..., 1])
    s = mats.scale[material]
    uu, vv = u / s, v / s
    pattern = mats.pattern[material]
    checker = torch.remainder(uu.floor() + vv.floor(), 2)
    stripes = torch.remainder((2 * vv).floor(), 2)
    row = (2 * vv).floor()
    bricks = ((torch.frac(uu + 0.5 * row).abs() < 0.08) | (torch.frac(2 * vv).abs() < 0.12)).float()
    tiles = ((torch.frac(uu).abs() < 0.07) | (torch.frac(vv).abs() < 0.07)).float()
    rings = (torch.frac(torch.sqrt(uu * uu + vv * vv)) < 0.5).float()
    mix = torch.zeros_like(uu)
    for i, value in enumerate((None, checker, stripes, bricks, tiles, rings)):
        if value is not None:
            mix = torch.where(pattern == i, value, mix)
    grain = _hash((u * 6).floor(), (v * 6).floor() + material.float() * 7.0)
    base = torch.lerp(mats.color_a[material], mats.color_b[material], mix[..., None])
    base = base * (0.88 + 0.24 * grain[..., None])
    dist = t * d.norm(dim=-1)
    view = (d / d.norm(dim=-1, keepdim=True) * normal).sum(-1).abs()
    light = 0.3 + 0.45 * (normal @ scene.light).clamp_min(0) + 0.25 * view
    fog = torch.exp(-dist / scene.config.fog_distance)[..., None]
    return torch.lerp(scene.fog_color, base * light[..., None], fog)


def _sky(scene: Scene, d: Tensor) -> Tensor:
    elevation = (-d[..., 1] / d.norm(dim=-1)).clamp(0, 1) ** 0.6
    return torch.lerp(scene.sky[0], scene.sky[1], elevation[..., None])
