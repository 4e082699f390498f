"""Camera-pose annotation of a user's own videos (``sanawm annotate``): metric 6-DoF camera paths for
training clips, and the estimator behind the camera-accuracy metrics of ``sanawm eval``.

    from model.annotation import AnnotateConfig, annotate
    annotate(["videos/"], "data/annotated", AnnotateConfig(camera_height_m=1.6))

pycolmap, PyAV and evo come with ``pip install 'sanawm[annotate]'`` and are imported when used.
"""

from .accuracy import camera_accuracy, trajectory_errors
from .colmap import ColmapEstimator, ColmapOptions
from .estimator import Estimate, PoseEstimator, Reconstruction
from .frames import Sampling, SourceClip, find_sources, read_clips
from .output import AnnotateConfig, annotate
from .pipeline import ClipResult, ScaleSources, Segment, annotate_frames
from .quality import QualityLimits
from .scale import MetricDepth, ScaleError, ScaleEstimate, scale_from_camera_height, scale_from_depth

__all__ = [
    "AnnotateConfig", "ClipResult", "ColmapEstimator", "ColmapOptions", "Estimate", "MetricDepth", "PoseEstimator",
    "QualityLimits", "Reconstruction", "Sampling", "ScaleError", "ScaleEstimate", "ScaleSources", "Segment", "SourceClip",
    "annotate", "annotate_frames", "camera_accuracy", "find_sources", "read_clips", "scale_from_camera_height", "scale_from_depth",
    "trajectory_errors",
]
