"""How close estimated camera paths are to known ones.

* ``trajectory_errors``: the annotation's accuracy against ground truth, after a similarity
  alignment of the camera centres (Umeyama, through evo): ATE (RMSE of the centres), as a fraction
  of the path's length, the alignment's scale (how far a metric path is off in scale), and rotation
  errors (absolute after the best single rotation, and frame to frame).
* ``camera_accuracy``: the camera-control metrics of the SANA-WM benchmark as CamI2V computes them
  (RotErr, TransErr, CamMC), for poses re-estimated on generated video against the commanded path.

Definitions: docs/metrics.md ("Camera accuracy") and docs/annotation.md.
"""

from __future__ import annotations

import numpy as np

from .colmap import import_optional


def _angles_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Geodesic angles (degrees) between rotation matrices (N, 3, 3)."""
    cos = (np.einsum("nij,nij->n", a, b) - 1) / 2  # trace(a^T b)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def _nearest_rotation(m: np.ndarray) -> np.ndarray:
    u, _, vt = np.linalg.svd(m)
    d = np.sign(np.linalg.det(u @ vt))
    return u @ np.diag([1.0, 1.0, d]) @ vt


def similarity_alignment(est: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, str]:
    """(R, t, s) with ``s R est_i + t ~ truth_i`` for camera centres (N, 3), least squares (Umeyama,
    through evo), and "umeyama"; or the identity and "degenerate" where centres on a line leave the
    rotation about it open (``trajectory_errors`` then takes the rotation from the orientations)."""
    geometry = import_optional("evo.core.geometry")
    try:
        r, t, s = geometry.umeyama_alignment(est.T.copy(), truth.T.copy(), True)
        return r, t, float(s), "umeyama"
    except geometry.GeometryException:
        return np.eye(3), np.zeros(3), 1.0, "degenerate"


def trajectory_errors(est_c2w: np.ndarray, true_c2w: np.ndarray) -> dict[str, float | str]:
    """Errors of estimated poses (N, 4, 4) against the true ones, after a similarity alignment.

    Keys: ``ate`` (RMSE of the aligned centres, in the truth's units), ``path_length``,
    ``ate_fraction`` (ate / path_length), ``scale`` (the alignment's scale: 1 for a path that is
    already metric and right), ``rotation_deg`` (mean angle after the best single rotation),
    ``relative_rotation_deg`` (mean error of the frame-to-frame rotations), ``alignment``.
    """
    if est_c2w.shape != true_c2w.shape or est_c2w.ndim != 3 or est_c2w.shape[1:] != (4, 4) or len(est_c2w) < 2:
        raise ValueError(f"poses must be two arrays (N, 4, 4) of the same N >= 2, got {est_c2w.shape} and {true_c2w.shape}")
    re, rt = est_c2w[:, :3, :3], true_c2w[:, :3, :3]
    ce, ct = est_c2w[:, :3, 3], true_c2w[:, :3, 3]
    align = _nearest_rotation(np.einsum("nij,nkj->ik", rt, re))  # the R minimising sum |R re_i - rt_i|
    r, t, s, how = similarity_alignment(ce, ct)
    if how == "degenerate":
        r = align
        centred_e, centred_t = (ce - ce.mean(0)) @ r.T, ct - ct.mean(0)
        s = float((centred_e * centred_t).sum() / max((centred_e**2).sum(), 1e-300))
        t = ct.mean(0) - s * ce.mean(0) @ r.T
    aligned = s * ce @ r.T + t
    ate = float(np.sqrt(((aligned - ct) ** 2).sum(1).mean()))
    length = float(np.linalg.norm(np.diff(ct, axis=0), axis=1).sum())
    rel_e = np.einsum("nji,njk->nik", re[:-1], re[1:])
    rel_t = np.einsum("nji,njk->nik", rt[:-1], rt[1:])
    return {
        "ate": ate,
        "path_length": length,
        "ate_fraction": ate / length if length > 0 else float("inf"),
        "scale": s,
        "rotation_deg": float(_angles_deg(align @ re, rt).mean()),
        "relative_rotation_deg": float(_angles_deg(rel_e, rel_t).mean()),
        "alignment": how,
    }


def _relative(c2w: np.ndarray) -> np.ndarray:
    return np.linalg.inv(c2w[0]) @ c2w


def _normalised(c2w: np.ndarray) -> np.ndarray:
    """Poses relative to the first, translations divided by the farthest one's distance (CamI2V)."""
    out = _relative(c2w)
    far = np.linalg.norm(out[:, :3, 3], axis=1).max()
    out[:, :3, 3] /= far + 1e-9
    return out


def camera_accuracy(est_c2w: np.ndarray, target_c2w: np.ndarray) -> dict[str, float]:
    """CamI2V's camera-control metrics of poses re-estimated on a generated video (N, 4, 4) against
    the commanded path (N, 4, 4): both made relative to their first frame, translations of each
    divided by its own largest distance from the first frame (so scale does not count).

    ``rot_err_deg``: sum over frames of the angle between the rotations (degrees; CamI2V sums
    radians); ``trans_err``: sum of the distances between the normalised translations; ``cammc``:
    sum of the Frobenius norms of the differences of the normalised 3 x 4 poses; ``*_per_frame``:
    the same divided by the number of frames, to compare paths of different lengths.
    """
    if est_c2w.shape != target_c2w.shape or est_c2w.ndim != 3 or est_c2w.shape[1:] != (4, 4):
        raise ValueError(f"poses must be two arrays (N, 4, 4) of the same N, got {est_c2w.shape} and {target_c2w.shape}")
    e, g = _relative(est_c2w), _relative(target_c2w)
    rot = float(_angles_deg(e[:, :3, :3], g[:, :3, :3]).sum())
    en, gn = _normalised(est_c2w), _normalised(target_c2w)
    trans = float(np.linalg.norm(en[:, :3, 3] - gn[:, :3, 3], axis=1).sum())
    cammc = float(np.linalg.norm((en[:, :3, :4] - gn[:, :3, :4]).reshape(len(en), 12), axis=1).sum())
    n = len(e)
    return {"rot_err_deg": rot, "trans_err": trans, "cammc": cammc, "frames": n,
            "rot_err_deg_per_frame": rot / n, "trans_err_per_frame": trans / n, "cammc_per_frame": cammc / n}
