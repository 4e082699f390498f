"""Procedural worlds: a seed gives a floor plan of rooms and corridors with landmarks and materials.

The world is 2.5-D on purpose. Walls stand on a square grid of cells (full height, floor to wall
top), floors and ceilings are planes, and landmarks (crates, pillars, pedestals with spheres,
monoliths) are boxes, vertical cylinders and spheres. That keeps ray casting exact and vectorisable
(see ``render.py``) while a camera still moves with all six degrees of freedom. Rooms differ in wall
and floor materials (colour pairs and procedural patterns) and some are open to the sky, so views
of different places are easy to tell apart.

World frame (see ``model.camera``): y points down, the floor is y = 0, the tops of the walls and the
ceilings are at y = -wall_height, and cell (iz, ix) covers x in [ix, ix + 1) * cell_size and
z in [iz, iz + 1) * cell_size.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from model.camera import se3, so3_exp

Tensor = torch.Tensor

# Procedural patterns a material can carry (see render.py for their formulas).
PATTERNS = ("plain", "checker", "stripes", "bricks", "tiles", "rings")


@dataclass
class SceneConfig:
    """How procedural worlds are drawn. Lengths in metres."""

    grid_size: int = 24  # cells per side of the square floor plan
    cell_size: float = 1.0  # side of a cell
    wall_height: float = 3.0  # floor to ceiling / wall top
    min_rooms: int = 4
    max_rooms: int = 7
    min_room_cells: int = 4  # side of a room, in cells
    max_room_cells: int = 8
    max_corridor_cells: int = 2  # corridor width in cells (1 .. this)
    sky_probability: float = 0.3  # chance that a room is open to the sky
    max_landmarks_per_room: int = 3
    eye_height: float = 1.5  # height of a spawned camera above the floor
    fog_distance: float = 18.0  # distance at which fog reaches 1 - 1/e

    def __post_init__(self) -> None:
        if self.grid_size < self.max_room_cells + 4:
            raise ValueError(f"grid_size must be >= max_room_cells + 4 = {self.max_room_cells + 4}, got {self.grid_size}")
        if not 2 <= self.min_room_cells <= self.max_room_cells:
            raise ValueError(f"need 2 <= min_room_cells <= max_room_cells, got {self.min_room_cells}, {self.max_room_cells}")
        if not 1 <= self.min_rooms <= self.max_rooms:
            raise ValueError(f"need 1 <= min_rooms <= max_rooms, got {self.min_rooms}, {self.max_rooms}")
        for name in ("cell_size", "wall_height", "eye_height", "fog_distance"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.eye_height >= self.wall_height:
            raise ValueError(f"eye_height must be below wall_height ({self.wall_height}), got {self.eye_height}")


@dataclass
class Materials:
    """A table of surface materials; row 0 is unused so that 0 can mean 'no wall'."""

    color_a: Tensor  # (M, 3) float32 in [0, 1]
    color_b: Tensor  # (M, 3)
    pattern: Tensor  # (M,) int64 index into PATTERNS
    scale: Tensor  # (M,) float32, pattern period in metres


@dataclass
class Scene:
    """One procedural world. Tensors are float32 / int64 on the CPU."""

    seed: int
    config: SceneConfig
    walls: Tensor  # (G, G) int64 wall material per cell, 0 = free; indexed [iz, ix]
    floors: Tensor  # (G, G) int64 floor material per cell
    roofed: Tensor  # (G, G) bool, False where the cell is open to the sky
    ceiling_material: int
    boxes: Tensor  # (Nb, 6) min xyz, max xyz
    box_materials: Tensor  # (Nb,)
    cylinders: Tensor  # (Nc, 3) x, z, radius; floor to wall top
    cylinder_materials: Tensor  # (Nc,)
    spheres: Tensor  # (Ns, 4) x, y, z, radius
    sphere_materials: Tensor  # (Ns,)
    materials: Materials
    sky: Tensor  # (2, 3) horizon and zenith colours
    fog_color: Tensor  # (3,)
    light: Tensor  # (3,) unit vector towards the light
    rooms: list[tuple[int, int, int, int]] = field(default_factory=list)  # (ix0, iz0, ix1, iz1), exclusive ends

    # ---- collision -----------------------------------------------------------------------------

    def is_free(self, position: np.ndarray, radius: float) -> bool:
        """Whether a sphere of ``radius`` at ``position`` (3,) touches no geometry."""
        x, y, z = (float(v) for v in position)
        cfg = self.config
        if not (-cfg.wall_height + radius <= y <= -radius):
            return False
        cs, g = cfg.cell_size, cfg.grid_size
        for iz in range(math.floor((z - radius) / cs), math.floor((z + radius) / cs) + 1):
            for ix in range(math.floor((x - radius) / cs), math.floor((x + radius) / cs) + 1):
                outside = not (0 <= ix < g and 0 <= iz < g)
                if outside or self.walls[iz, ix] > 0:
                    dx = max(ix * cs - x, 0.0, x - (ix + 1) * cs)
                    dz = max(iz * cs - z, 0.0, z - (iz + 1) * cs)
                    if dx * dx + dz * dz < radius * radius:
                        return False
        p = np.array([x, y, z])
        if len(self.boxes):
            b = self._np("boxes")
            d = np.maximum(np.maximum(b[:, :3] - p, 0.0), p - b[:, 3:])
            if ((d * d).sum(1) < radius * radius).any():
                return False
        if len(self.cylinders):
            c = self._np("cylinders")
            if ((c[:, 0] - x) ** 2 + (c[:, 1] - z) ** 2 < (c[:, 2] + radius) ** 2).any():
                return False
        if len(self.spheres):
            s = self._np("spheres")
            if (((s[:, :3] - p) ** 2).sum(1) < (s[:, 3] + radius) ** 2).any():
                return False
        return True

    def _np(self, name: str) -> np.ndarray:
        cache = self.__dict__.setdefault("_np_cache", {})
        if name not in cache:
            cache[name] = getattr(self, name).double().numpy()
        return cache[name]

    def resolve_motion(self, start: np.ndarray, end: np.ndarray, radius: float) -> tuple[np.ndarray, bool]:
        """Move a sphere from ``start`` towards ``end``; stop short of geometry and slide along it.

        Returns the reached position and whether anything was hit. ``start`` is assumed free. Long
        moves go in pieces no longer than ``radius``: every obstacle inflated by the radius is at
        least two radii thick, so no piece can pass through one.
        """
        start, end = np.asarray(start, dtype=np.float64), np.asarray(end, dtype=np.float64)
        pieces = max(1, math.ceil(float(np.linalg.norm(end - start)) / radius))
        pos, collided = start, False
        for _ in range(pieces):
            pos, hit = self._resolve_piece(pos, pos + (end - start) / pieces, radius)
            collided |= hit
        return pos, collided

    def _resolve_piece(self, start: np.ndarray, end: np.ndarray, radius: float) -> tuple[np.ndarray, bool]:
        if self.is_free(end, radius):
            return end, False
        lo, hi = 0.0, 1.0
        for _ in range(12):
            mid = (lo + hi) / 2
            if self.is_free(start + mid * (end - start), radius):
                lo = mid
            else:
                hi = mid
        pos = start + lo * (end - start)
        rest = end - pos
        for axis in range(3):  # slide: keep the parts of the remaining motion that are still free
            trial = pos.copy()
            trial[axis] += rest[axis]
            if self.is_free(trial, radius):
                pos = trial
        return pos, True

    def spawn_pose(self, rng: np.random.Generator, radius: float = 0.3) -> Tensor:
        """A random free, level camera pose (4, 4) float64 at eye height inside one of the rooms."""
        cfg = self.config
        for _ in range(1000):
            ix0, iz0, ix1, iz1 = self.rooms[int(rng.integers(len(self.rooms)))]
            x = rng.uniform(ix0, ix1) * cfg.cell_size
            z = rng.uniform(iz0, iz1) * cfg.cell_size
            pos = np.array([x, -cfg.eye_height, z])
            if self.is_free(pos, radius + 0.2):
                yaw = rng.uniform(-math.pi, math.pi)
                rot = so3_exp(torch.tensor([0.0, yaw, 0.0], dtype=torch.float64))
                return se3(rot, torch.from_numpy(pos))
        raise RuntimeError(f"scene {self.seed}: found no free spawn position")


# --------------------------------------------------------------------------------------------------
# Generation


def _random_color(rng: np.random.Generator) -> tuple[float, float, float]:
    return colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0.2, 0.85), rng.uniform(0.35, 0.95))


def _random_materials(rng: np.random.Generator, count: int) -> Materials:
    a = [(0.0, 0.0, 0.0)]
    b = [(0.0, 0.0, 0.0)]
    for _ in range(count):
        c = _random_color(rng)
        a.append(c)
        if rng.uniform() < 0.5:  # a darker or lighter shade of the same colour
            k = rng.uniform(0.45, 0.8) if rng.uniform() < 0.5 else rng.uniform(1.2, 1.5)
            b.append(tuple(min(1.0, v * k) for v in c))
        else:
            b.append(_random_color(rng))
    pattern = [0] + [int(rng.integers(len(PATTERNS))) for _ in range(count)]
    scale = [1.0] + [float(rng.uniform(0.25, 1.0)) for _ in range(count)]
    return Materials(
        color_a=torch.tensor(a, dtype=torch.float32),
        color_b=torch.tensor(b, dtype=torch.float32),
        pattern=torch.tensor(pattern, dtype=torch.int64),
        scale=torch.tensor(scale, dtype=torch.float32),
    )


def _place_rooms(rng: np.random.Generator, cfg: SceneConfig) -> list[tuple[int, int, int, int]]:
    g = cfg.grid_size
    target = int(rng.integers(cfg.min_rooms, cfg.max_rooms + 1))
    rooms: list[tuple[int, int, int, int]] = []
    for _ in range(400):
        if len(rooms) == target:
            break
        w = int(rng.integers(cfg.min_room_cells, cfg.max_room_cells + 1))
        h = int(rng.integers(cfg.min_room_cells, cfg.max_room_cells + 1))
        x0 = int(rng.integers(1, g - w))
        z0 = int(rng.integers(1, g - h))
        cand = (x0, z0, x0 + w, z0 + h)
        # Rooms keep at least one wall cell between them; corridors join them later.
        if all(cand[0] > r[2] or cand[2] < r[0] or cand[1] > r[3] or cand[3] < r[1] for r in rooms):
            rooms.append(cand)
    return rooms


def _carve_corridor(walls: np.ndarray, a: tuple[int, int], b: tuple[int, int], width: int, first_x: bool) -> list[tuple[int, int]]:
    """Carve an L-shaped corridor between cells a and b (ix, iz); returns the carved cells."""
    g = walls.shape[0]
    (ax, az), (bx, bz) = a, b
    corner = (bx, az) if first_x else (ax, bz)
    cells = []
    for (x0, z0), (x1, z1) in ((a, corner), (corner, b)):
        for ix in range(min(x0, x1), max(x0, x1) + width):
            for iz in range(min(z0, z1), max(z0, z1) + width):
                if 1 <= ix < g - 1 and 1 <= iz < g - 1:
                    walls[iz, ix] = 0
                    cells.append((ix, iz))
    return cells


def generate_scene(seed: int, config: SceneConfig | None = None) -> Scene:
    """Draw the world of ``seed`` (deterministic: the same seed always gives the same scene)."""
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    cfg = config or SceneConfig()
    rng = np.random.default_rng(int(seed))
    g, cs, wh = cfg.grid_size, cfg.cell_size, cfg.wall_height

    rooms = _place_rooms(rng, cfg)
    n = len(rooms)
    # Material ids: walls of each room, corridor walls, floors of each room, corridor floor, ceiling,
    # then landmarks.
    n_land = n * cfg.max_landmarks_per_room * 2
    mats = _random_materials(rng, 2 * n + 3 + n_land)
    corridor_wall, corridor_floor, ceiling = 2 * n + 1, 2 * n + 2, 2 * n + 3
    next_land = 2 * n + 4

    walls = np.full((g, g), corridor_wall, dtype=np.int64)
    floors = np.full((g, g), corridor_floor, dtype=np.int64)
    roofed = np.ones((g, g), dtype=bool)
    for i, (x0, z0, x1, z1) in enumerate(rooms):
        walls[max(z0 - 1, 0) : z1 + 1, max(x0 - 1, 0) : x1 + 1] = 1 + i
    for i, (x0, z0, x1, z1) in enumerate(rooms):
        floors[z0:z1, x0:x1] = 1 + n + i
        if rng.uniform() < cfg.sky_probability:
            roofed[z0 - 1 : z1 + 1, x0 - 1 : x1 + 1] = False
    carve = walls.copy()
    for x0, z0, x1, z1 in rooms:
        carve[z0:z1, x0:x1] = 0
    centres = [(int(rng.integers(x0, x1)), int(rng.integers(z0, z1))) for x0, z0, x1, z1 in rooms]
    links = [(i, i + 1) for i in range(n - 1)]
    if n > 2:  # one extra link closes a loop, so there is more than one way round
        i, j = sorted(rng.choice(n, size=2, replace=False).tolist())
        if j != i + 1:
            links.append((i, j))
    for i, j in links:
        width = int(rng.integers(1, cfg.max_corridor_cells + 1))
        _carve_corridor(carve, centres[i], centres[j], width, bool(rng.integers(2)))
    walls = np.where(carve == 0, 0, walls)

    boxes, box_m, cyls, cyl_m, sph, sph_m = [], [], [], [], [], []

    def new_material() -> int:
        nonlocal next_land
        next_land += 1
        return next_land - 1

    taken: list[tuple[float, float, float]] = []
    for x0, z0, x1, z1 in rooms:
        for _ in range(int(rng.integers(1, cfg.max_landmarks_per_room + 1))):
            # Landmarks keep a cell away from the room's walls so doorways stay open.
            if x1 - x0 < 3 or z1 - z0 < 3:
                break
            x = rng.uniform(x0 + 1, x1 - 1) * cs
            z = rng.uniform(z0 + 1, z1 - 1) * cs
            half = rng.uniform(0.2, 0.5) * cs
            if any((x - tx) ** 2 + (z - tz) ** 2 < (half + tr + 0.8) ** 2 for tx, tz, tr in taken):
                continue
            taken.append((x, z, half))
            kind = rng.choice(["crate", "pillar", "pedestal", "monolith"])
            if kind == "crate":
                h = rng.uniform(0.4, 1.4)
                boxes.append([x - half, -h, z - half, x + half, 0.0, z + half])
                box_m.append(new_material())
            elif kind == "pillar":
                cyls.append([x, z, half * 0.8])
                cyl_m.append(new_material())
            elif kind == "pedestal":
                h = rng.uniform(0.7, 1.1)
                boxes.append([x - 0.3, -h, z - 0.3, x + 0.3, 0.0, z + 0.3])
                box_m.append(new_material())
                r = rng.uniform(0.25, 0.4)
                sph.append([x, -h - r, z, r])
                sph_m.append(new_material())
            else:
                h = rng.uniform(1.8, min(2.6, wh - 0.1))
                if rng.uniform() < 0.5:
                    boxes.append([x - half, -h, z - 0.12, x + half, 0.0, z + 0.12])
                else:
                    boxes.append([x - 0.12, -h, z - half, x + 0.12, 0.0, z + half])
                box_m.append(new_material())

    def t(rows: list, width: int) -> Tensor:
        return torch.tensor(rows, dtype=torch.float32).reshape(-1, width)

    sun = np.array([rng.uniform(-1, 1), -rng.uniform(0.6, 1.2), rng.uniform(-1, 1)])
    horizon = np.array(_random_color(rng)) * 0.3 + 0.7 * np.array([0.85, 0.88, 0.92])
    zenith = np.array(colorsys.hsv_to_rgb(rng.uniform(0.52, 0.68), rng.uniform(0.35, 0.7), rng.uniform(0.7, 0.95)))
    return Scene(
        seed=int(seed),
        config=cfg,
        walls=torch.from_numpy(walls),
        floors=torch.from_numpy(floors),
        roofed=torch.from_numpy(roofed),
        ceiling_material=ceiling,
        boxes=t(boxes, 6),
        box_materials=torch.tensor(box_m, dtype=torch.int64),
        cylinders=t(cyls, 3),
        cylinder_materials=torch.tensor(cyl_m, dtype=torch.int64),
        spheres=t(sph, 4),
        sphere_materials=torch.tensor(sph_m, dtype=torch.int64),
        materials=mats,
        sky=torch.tensor(np.stack([horizon, zenith]), dtype=torch.float32),
        fog_color=torch.tensor(horizon * 0.9, dtype=torch.float32),
        light=torch.tensor(sun / np.linalg.norm(sun), dtype=torch.float32),
        rooms=rooms,
    )
