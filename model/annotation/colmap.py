"""The default pose estimator: COLMAP through pycolmap (SIFT on the CPU, sequential matching,
incremental mapping with bundle adjustment).

pycolmap is an optional dependency (``pip install 'sanawm[annotate]'``), imported when an estimate
is made. Everything runs single-threaded unless ``num_threads`` says otherwise, so annotation stays
polite beside a training run.
"""

from __future__ import annotations

import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from PIL import Image

from .estimator import Estimate, Reconstruction


def import_optional(name: str) -> Any:
    """Import one of the annotation extra's packages, naming the extra when it is missing."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise ImportError(f"camera-pose annotation needs {name}: pip install 'sanawm[annotate]' ({e})") from e


@dataclass
class ColmapOptions:
    """COLMAP settings; the defaults suit clips of a few dozen frames of 128 to 512 pixels."""

    max_features: int = 4096  # SIFT features per frame
    # SIFT's contrast threshold; COLMAP's 0.0067 finds too few features in small, smooth frames.
    peak_threshold: float = 0.003
    overlap: int = 10  # each frame is matched with this many next ones (and quadratically farther ones)
    # The first pair of frames must share this many inliers and see them at this angle (degrees).
    # COLMAP's 16 degrees suits photo collections; video frames are close together. 4 degrees let a
    # procedural walk start from a poor pair (6 degrees of rotation error), 8 did not (benchmarks/annotate.py).
    init_min_num_inliers: int = 100
    init_min_tri_angle: float = 8.0
    abs_pose_min_num_inliers: int = 20  # correspondences to register a further frame
    min_model_size: int = 5  # smaller models are dropped
    num_threads: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("max_features", "overlap", "init_min_num_inliers", "abs_pose_min_num_inliers", "min_model_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.peak_threshold < 1:
            raise ValueError(f"peak_threshold must lie in (0, 1), got {self.peak_threshold}")
        if not 0 <= self.init_min_tri_angle < 90:
            raise ValueError(f"init_min_tri_angle must lie in [0, 90) degrees, got {self.init_min_tri_angle}")
        if self.num_threads < 1:
            raise ValueError(f"num_threads must be >= 1, got {self.num_threads}")


@contextmanager
def _quiet(pycolmap: Any) -> Iterator[None]:
    """COLMAP logs every step to stderr; the annotation reports what matters itself."""
    level = pycolmap.logging.minloglevel
    pycolmap.logging.minloglevel = 3
    try:
        yield
    finally:
        pycolmap.logging.minloglevel = level


class ColmapEstimator:
    """``PoseEstimator`` running COLMAP's incremental structure from motion on one clip.

    With known intrinsics the camera is a fixed pinhole; without, a single shared focal length is
    estimated (principal point at the image centre). Frames COLMAP cannot place stay unregistered;
    a clip it splits comes back as several reconstructions, largest first.
    """

    def __init__(self, options: ColmapOptions | None = None) -> None:
        self.options = options or ColmapOptions()

    def __call__(self, frames: np.ndarray, intrinsics: np.ndarray | None) -> Estimate:
        pycolmap = import_optional("pycolmap")
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"frames must be (N, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
        n, height, width = frames.shape[:3]
        seconds: dict[str, float] = {}
        with tempfile.TemporaryDirectory(prefix="sanawm-colmap-") as tmp, _quiet(pycolmap):
            root = Path(tmp)
            images = root / "images"
            images.mkdir()
            names = [f"{i:06d}.png" for i in range(n)]
            for name, frame in zip(names, frames):
                Image.fromarray(frame).save(images / name)
            t = time.perf_counter()
            self._extract(pycolmap, root / "db.db", images, names, intrinsics)
            seconds["features"] = time.perf_counter() - t
            t = time.perf_counter()
            self._match(pycolmap, root / "db.db")
            seconds["matching"] = time.perf_counter() - t
            diagnostics = self._diagnostics(pycolmap, root / "db.db")
            t = time.perf_counter()
            models = pycolmap.incremental_mapping(root / "db.db", images, root / "sparse", options=self._mapping_options(pycolmap, intrinsics))
            seconds["mapping"] = time.perf_counter() - t
        index = {name: i for i, name in enumerate(names)}
        usable = [m for m in models.values() if _focal_is_positive(m)]
        recs = sorted((_convert(m, index, n) for m in usable), key=lambda r: -r.num_registered)
        notes = []
        if len(usable) < len(models):
            diagnostics["degenerate_models"] = float(len(models) - len(usable))
            notes.append(f"dropped {len(models) - len(usable)} COLMAP model(s) whose estimated focal length is not positive")
        if len(recs) > 1:
            notes.append(f"COLMAP split the clip into {len(recs)} models of {[r.num_registered for r in recs]} frames")
        return Estimate(reconstructions=recs, diagnostics=diagnostics, notes=notes, seconds=seconds)

    def _extract(self, pycolmap: Any, db: Path, images: Path, names: list[str], intrinsics: np.ndarray | None) -> None:
        o = self.options
        extraction = pycolmap.FeatureExtractionOptions()
        extraction.num_threads = o.num_threads
        extraction.sift.max_num_features = o.max_features
        extraction.sift.peak_threshold = o.peak_threshold
        reader = pycolmap.ImageReaderOptions()
        if intrinsics is not None:
            reader.camera_model = "PINHOLE"
            reader.camera_params = ",".join(repr(float(v)) for v in intrinsics)
        else:
            reader.camera_model = "SIMPLE_PINHOLE"
        pycolmap.extract_features(db, images, image_names=names, camera_mode=pycolmap.CameraMode.SINGLE, reader_options=reader,
                                  extraction_options=extraction, device=pycolmap.Device.cpu)

    def _match(self, pycolmap: Any, db: Path) -> None:
        matching = pycolmap.FeatureMatchingOptions()
        matching.num_threads = self.options.num_threads
        pairing = pycolmap.SequentialPairingOptions()
        pairing.num_threads = self.options.num_threads
        pairing.overlap = self.options.overlap
        pycolmap.match_sequential(db, matching_options=matching, pairing_options=pairing, device=pycolmap.Device.cpu)

    def _mapping_options(self, pycolmap: Any, intrinsics: np.ndarray | None) -> Any:
        o = self.options
        opts = pycolmap.IncrementalPipelineOptions()
        opts.num_threads = o.num_threads
        opts.random_seed = o.seed
        opts.min_model_size = o.min_model_size
        opts.ba_refine_focal_length = intrinsics is None
        opts.ba_refine_principal_point = False
        opts.ba_refine_extra_params = False
        opts.mapper.num_threads = o.num_threads
        opts.mapper.random_seed = o.seed
        opts.mapper.init_min_num_inliers = o.init_min_num_inliers
        opts.mapper.init_min_tri_angle = o.init_min_tri_angle
        opts.mapper.abs_pose_min_num_inliers = o.abs_pose_min_num_inliers
        opts.mapper.abs_pose_refine_focal_length = intrinsics is None
        opts.mapper.abs_pose_refine_extra_params = False
        opts.triangulation.random_seed = o.seed
        return opts

    @staticmethod
    def _diagnostics(pycolmap: Any, db_path: Path) -> dict[str, float]:
        """Why a clip may fail: features per frame and frame pairs with verified matches."""
        db = pycolmap.Database.open(db_path)
        try:
            keypoints = [db.num_keypoints_for_image(image.image_id) for image in db.read_all_images()]
            _, geometries = db.read_two_view_geometries()
        finally:
            db.close()
        return {
            "keypoints_per_frame": float(np.median(keypoints)) if keypoints else 0.0,
            "verified_pairs": float(sum(len(g.inlier_matches) > 0 for g in geometries)),
        }


def _focal_is_positive(model: Any) -> bool:
    """Whether every camera of a pycolmap model has positive focal lengths. Bundle adjustment with
    the focal length free can drive it through zero on a weak clip (a 128 px walk ended at -0.025 px);
    such a model is no camera at all."""
    return all(c.focal_length_x > 0 and c.focal_length_y > 0 for c in model.cameras.values())


def _convert(model: Any, index: dict[str, int], n: int) -> Reconstruction:
    """A pycolmap reconstruction as a ``Reconstruction`` over the clip's ``n`` frames."""
    c2w = np.full((n, 4, 4), np.nan)
    registered = np.zeros(n, dtype=bool)
    point_rows = {pid: row for row, pid in enumerate(model.points3D)}
    points = np.array([p.xyz for p in model.points3D.values()], dtype=np.float64).reshape(-1, 3)
    frames, point_ids, uvs = [], [], []
    camera = None
    for image in model.images.values():
        if not image.has_pose:
            continue
        i = index[image.name]
        w2c = np.eye(4)
        w2c[:3, :] = image.cam_from_world().matrix()
        c2w[i] = np.linalg.inv(w2c)
        registered[i] = True
        camera = image.camera
        for p in image.points2D:
            if p.has_point3D():
                frames.append(i)
                point_ids.append(point_rows[p.point3D_id])
                uvs.append(p.xy)
    k = np.array([camera.focal_length_x, camera.focal_length_y, camera.principal_point_x, camera.principal_point_y], dtype=np.float64)
    return Reconstruction(c2w=c2w, registered=registered, intrinsics=k, points=points,
                          obs_frame=np.array(frames, dtype=np.int64), obs_point=np.array(point_ids, dtype=np.int64),
                          obs_uv=np.array(uvs, dtype=np.float64).reshape(-1, 2))
