"""The scene's floor as a navigation grid: where a camera at eye height fits, and geodesic distances.

Navigation tasks (``pointgoal``, ``imagegoal``) draw goals on this grid and measure the shortest path
to them on it, as habitat-lab measures SPL on its navmesh. Nodes sit every ``spacing`` metres; a node
is free where a level camera of the given radius at eye height touches no geometry (the test of
``Scene.is_free``, here for all nodes at once). Moves go to the 16 nodes of the 5 x 5 neighbourhood
that a straight line reaches (8 neighbours and 8 knight moves), each only where every node of the
rectangle it crosses is free, so paths cannot cut corners. With 16 directions the grid's shortest
path is at most 2.7% longer than the true any-angle one.
"""

from __future__ import annotations

import math

import numpy as np

from .scene import Scene

SPACING = 0.25  # metres between grid nodes
MOVES = [(dz, dx) for dz in range(-2, 3) for dx in range(-2, 3) if (dz, dx) != (0, 0) and math.gcd(abs(dz), abs(dx)) == 1]


def free_positions(scene: Scene, x: np.ndarray, z: np.ndarray, y: float, radius: float) -> np.ndarray:
    """Whether a sphere of ``radius`` at each (``x``, ``y``, ``z``) touches no geometry; ``x`` and ``z``
    are arrays of one shape. Equals ``scene.is_free`` point by point (for ``radius`` below half a cell)."""
    cfg = scene.config
    if not (-cfg.wall_height + radius <= y <= -radius):
        return np.zeros(x.shape, dtype=bool)
    cs, g, r2 = cfg.cell_size, cfg.grid_size, radius * radius
    walls = scene.walls.numpy()
    free = np.ones(x.shape, dtype=bool)
    base_x, base_z = np.floor(x / cs).astype(int), np.floor(z / cs).astype(int)
    for dz in (-1, 0, 1):
        for dx in (-1, 0, 1):
            ix, iz = base_x + dx, base_z + dz
            inside = (ix >= 0) & (ix < g) & (iz >= 0) & (iz < g)
            solid = ~inside | (walls[np.clip(iz, 0, g - 1), np.clip(ix, 0, g - 1)] > 0)
            ddx = np.maximum(np.maximum(ix * cs - x, 0.0), x - (ix + 1) * cs)
            ddz = np.maximum(np.maximum(iz * cs - z, 0.0), z - (iz + 1) * cs)
            free &= ~(solid & (ddx * ddx + ddz * ddz < r2))
    p = np.stack([x, np.full(x.shape, y), z], -1)[..., None, :]  # (..., 1, 3)
    if len(scene.boxes):
        b = scene.boxes.double().numpy()
        d = np.maximum(np.maximum(b[:, :3] - p, 0.0), p - b[:, 3:])
        free &= ~((d * d).sum(-1) < r2).any(-1)
    if len(scene.cylinders):
        c = scene.cylinders.double().numpy()
        free &= ~(((c[:, 0] - p[..., 0]) ** 2 + (c[:, 1] - p[..., 2]) ** 2) < (c[:, 2] + radius) ** 2).any(-1)
    if len(scene.spheres):
        s = scene.spheres.double().numpy()
        free &= ~(((s[:, :3] - p) ** 2).sum(-1) < (s[:, 3] + radius) ** 2).any(-1)
    return free


class FloorGrid:
    """Free floor nodes of ``scene`` for a camera of ``radius`` at the scene's eye height.

    Node (iz, ix) stands at x = (ix + 0.5) * spacing, z = (iz + 0.5) * spacing. Immutable once built,
    so copies of a task (snapshots for planning) share it.
    """

    def __init__(self, scene: Scene, radius: float, spacing: float = SPACING) -> None:
        cfg = scene.config
        self.spacing = spacing
        self.size = round(cfg.grid_size * cfg.cell_size / spacing)
        centres = (np.arange(self.size) + 0.5) * spacing
        self.x, self.z = np.meshgrid(centres, centres)  # (n, n), indexed [iz, ix]
        self.free = free_positions(scene, self.x, self.z, -cfg.eye_height, radius)
        # For each move, the nodes it may leave from: every node of the rectangle it crosses is free.
        pad = np.pad(self.free, 2)
        n = self.size
        self._valid = []
        for dz, dx in MOVES:
            ok = np.ones((n, n), dtype=bool)
            for a in range(min(0, dz), max(0, dz) + 1):
                for b in range(min(0, dx), max(0, dx) + 1):
                    ok &= pad[2 + a : 2 + a + n, 2 + b : 2 + b + n]
            self._valid.append(ok)
        self._costs = [spacing * math.hypot(dz, dx) for dz, dx in MOVES]

    def __deepcopy__(self, memo: dict) -> FloorGrid:
        return self

    def node(self, position: np.ndarray) -> tuple[int, int]:
        """The (iz, ix) node nearest to the floor position (x, z) ``position``, clipped to the grid."""
        ix = int(np.clip(math.floor(position[0] / self.spacing), 0, self.size - 1))
        iz = int(np.clip(math.floor(position[1] / self.spacing), 0, self.size - 1))
        return iz, ix

    def position(self, node: tuple[int, int]) -> np.ndarray:
        return np.array([self.x[node], self.z[node]])

    def distance_field(self, source: np.ndarray) -> np.ndarray:
        """Shortest-path length (m) on the grid from every node to the floor position (x, z) ``source``;
        inf where unreachable. ``source`` must stand near a free node (see ``nearest_free``)."""
        node = self.nearest_free(source)
        if node is None:
            raise ValueError(f"no free floor within a metre of {np.round(source, 3).tolist()}")
        n = self.size
        dist = np.full((n, n), np.inf)
        dist[node] = float(np.linalg.norm(self.position(node) - source))
        # Bellman-Ford over all nodes at once: each sweep extends every shortest path by one move.
        while True:
            pad = np.pad(dist, 2, constant_values=np.inf)
            best = dist
            for (dz, dx), ok, cost in zip(MOVES, self._valid, self._costs):
                via = pad[2 + dz : 2 + dz + n, 2 + dx : 2 + dx + n] + cost
                best = np.where(ok & (via < best), via, best)
            if np.array_equal(best, dist):
                return dist
            dist = best

    def nearest_free(self, position: np.ndarray, reach: float = 1.0) -> tuple[int, int] | None:
        """The free node nearest to the floor position (x, z) within ``reach`` metres, or None."""
        iz, ix = self.node(position)
        k = math.ceil(reach / self.spacing)
        z0, z1, x0, x1 = max(iz - k, 0), min(iz + k + 1, self.size), max(ix - k, 0), min(ix + k + 1, self.size)
        d2 = (self.x[z0:z1, x0:x1] - position[0]) ** 2 + (self.z[z0:z1, x0:x1] - position[1]) ** 2
        d2 = np.where(self.free[z0:z1, x0:x1] & (d2 <= reach * reach), d2, np.inf)
        if not np.isfinite(d2).any():
            return None
        a, b = np.unravel_index(int(np.argmin(d2)), d2.shape)
        return z0 + int(a), x0 + int(b)

    def lookup(self, field: np.ndarray, position: np.ndarray) -> float:
        """Shortest-path length from the floor position (x, z) to the field's source: through the best
        of the free nodes around it (inf if none of them reaches the source)."""
        iz, ix = self.node(position)
        z0, z1, x0, x1 = max(iz - 1, 0), min(iz + 2, self.size), max(ix - 1, 0), min(ix + 2, self.size)
        near = field[z0:z1, x0:x1] + np.hypot(self.x[z0:z1, x0:x1] - position[0], self.z[z0:z1, x0:x1] - position[1])
        return float(near.min())

    def path(self, field: np.ndarray, position: np.ndarray) -> np.ndarray:
        """The grid's shortest path (K, 2) of floor positions from ``position`` to the field's source
        (the last point), following the field downhill; empty if the source cannot be reached."""
        node = self.nearest_free(position)
        if node is None or not np.isfinite(field[node]):
            return np.zeros((0, 2))
        points = [self.position(node)]
        while field[node] > 0 and len(points) <= self.size * self.size:
            step = None
            for (dz, dx), ok, cost in zip(MOVES, self._valid, self._costs):
                nz, nx = node[0] + dz, node[1] + dx
                if ok[node] and abs(field[nz, nx] + cost - field[node]) < 1e-9:
                    step = (nz, nx)
                    break
            if step is None:  # the source node itself: its value is the offset to the exact source
                break
            node = step
            points.append(self.position(node))
        return np.stack(points)
