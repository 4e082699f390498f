"""Camera paths for training clips."""

import numpy as np
import pytest

from sanawm_env.scene import generate_scene
from sanawm_env.trajectories import CAMERA_RADIUS, TRAJECTORIES, make_trajectory


@pytest.mark.parametrize("kind", sorted(TRAJECTORIES))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_paths_are_smooth_free_and_deterministic(kind, seed):
    scene = generate_scene(seed)
    poses = make_trajectory(kind, scene, np.random.default_rng(seed), 120, fps=16)
    again = make_trajectory(kind, scene, np.random.default_rng(seed), 120, fps=16)
    assert poses.shape == (120, 4, 4) and np.isfinite(poses).all()
    assert np.array_equal(poses, again)
    rot = poses[:, :3, :3]
    np.testing.assert_allclose(rot @ rot.transpose(0, 2, 1), np.broadcast_to(np.eye(3), rot.shape), atol=1e-9)
    assert all(scene.is_free(p[:3, 3], CAMERA_RADIUS - 1e-6) for p in poses)
    steps = np.linalg.norm(np.diff(poses[:, :3, 3], axis=0), axis=1)
    assert steps.max() < 2.0 / 16, "at most 2 m/s"
    assert steps.sum() > 1.0, "the camera should travel"
    forward = poses[:, :3, 2]
    turn = np.degrees(np.arccos(np.clip((forward[1:] * forward[:-1]).sum(1), -1, 1)))
    assert turn.max() < 180.0 / 16, "at most 180 degrees per second"


def test_revisit_loop_returns_to_the_first_pose():
    scene = generate_scene(3)
    poses = make_trajectory("revisit", scene, np.random.default_rng(0), 97, fps=16)
    assert poses.shape == (97, 4, 4)
    np.testing.assert_array_equal(poses[-1], poses[0])
    far = np.linalg.norm(poses[:, :3, 3] - poses[0, :3, 3], axis=1).max()
    assert far > 1.0, "the loop should go somewhere before coming back"


def test_bad_arguments():
    scene = generate_scene(0)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="trajectory kind must be one of"):
        make_trajectory("orbit", scene, rng, 10)
    with pytest.raises(ValueError, match="frames must be >= 1"):
        make_trajectory("walk", scene, rng, 0)
    with pytest.raises(ValueError, match="fps must be positive"):
        make_trajectory("walk", scene, rng, 5, fps=0)


def test_agent_paths_are_env_steps_in_the_action_range():
    import torch

    from model.camera import so3_log
    from sanawm_env.trajectories import MAX_ROTATION, MAX_TRANSLATION, STEP_FRAMES

    scene = generate_scene(5)
    poses = make_trajectory("agent", scene, np.random.default_rng(1), 1 + 40 * STEP_FRAMES)
    deltas = []
    for s in range(40):  # each step: the same camera-frame increment on every frame (unless a wall stopped it)
        a, b = poses[s * STEP_FRAMES], poses[(s + 1) * STEP_FRAMES]
        rel = np.linalg.inv(a) @ b
        deltas.append(np.concatenate([rel[:3, 3], so3_log(torch.from_numpy(rel[:3, :3])).numpy()]))
    deltas = np.array(deltas)  # (steps, 6): translation, then rotation vector (pitch, yaw, roll) in the step's start frame
    assert np.abs(deltas[:, 3:]).max() <= MAX_ROTATION * 1.01
    assert np.linalg.norm(deltas[:, :3], axis=1).max() <= MAX_TRANSLATION * np.sqrt(2.04) + 1e-6
    assert np.abs(deltas[:, 4]).max() > 0.5 * MAX_ROTATION, "some steps turn hard"
    pitch = np.degrees(np.arcsin(np.clip(-poses[:, 1, 2], -1, 1)))
    assert np.abs(pitch).max() < 45 + 0.3 * 30 + 1
    same = sum(np.allclose(deltas[i], deltas[i + 1], atol=1e-6) for i in range(39))
    assert 5 <= same <= 35, "actions are held for a while, as a policy holds a key"
