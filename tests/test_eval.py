"""`sanawm eval`: the camera paths of its splits, its brackets, its outputs, its config checks and its
determinism, on a tiny untrained world at 32 x 32 with paths of two env steps."""

import functools
import json
import math

import numpy as np
import pytest
from hydra.errors import ConfigCompositionException

from model.world import fresh_world, save_world
from sanawm.cli import compose_eval, main
from sanawm_env.evaluation import SPLITS, evaluate, mirror_actions, plan_actions
from sanawm_env.gt_env import SanaWMGTEnv

SCENE = 2**31  # the first held-out scene seed


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory):
    return save_world(tmp_path_factory.mktemp("world") / "tiny", fresh_world("tiny", 32, 32))


def _config(world_dir, out, *overrides):
    # Two env steps (1.5 s) per split, so degradation compares the first and the second step.
    return compose_eval([f"world={world_dir}", f"out={out}", "splits.smooth=1.5", "splits.hard=1.5", "splits.revisit=1.5",
                         f"scenes=[{SCENE}]", "early_seconds=0.75", "degradation_seconds=0.75", "grid_frames=3",
                         "progress=false", *overrides])


@pytest.fixture(scope="module")
def result(world_dir, tmp_path_factory):
    return evaluate(_config(world_dir, tmp_path_factory.mktemp("eval")))


def _plan(split, steps, seed):
    env = SanaWMGTEnv(height=8, width=8, task="free")
    _, info = env.reset(seed=seed, options={"scene_seed": SCENE + seed})
    return env, info["pose"], plan_actions(split, env.scene, info["pose"].astype(np.float64), steps, np.random.default_rng(seed))


@functools.cache
def _gt_path(split, steps, seed):
    """A planned path (actions), the ground-truth env's poses along it, and its colliding steps."""
    env, start, actions = _plan(split, steps, seed)
    poses, collisions = [start], 0
    for a in actions:
        _, _, _, _, step = env.step(a)
        poses.extend(step["poses"])
        collisions += step["collision"]
    return actions, np.stack(poses).astype(np.float64), collisions


@pytest.mark.parametrize("split", SPLITS)
def test_paths_keep_clear_of_geometry_and_repeat_with_the_seed(split):
    for seed in range(3):
        actions, poses, collisions = _gt_path(split, 16, seed)
        assert actions.shape == (16, 6) and actions.dtype == np.float32 and np.abs(actions).max() <= 1
        assert collisions == 0  # so the ground-truth env moves the camera exactly as the learned world does
        if split == "revisit":  # out and back through the same poses, ending at the start
            np.testing.assert_allclose(poses, poses[::-1], atol=1e-5)
    assert np.array_equal(_plan(split, 16, 0)[2], _gt_path(split, 16, 0)[0])


def test_splits_move_as_described():
    smooth = np.concatenate([_gt_path("smooth", 16, s)[0] for s in range(3)])
    hard = np.concatenate([_gt_path("hard", 16, s)[0] for s in range(3)])
    walking = smooth[:, 2] > 0
    assert np.all(smooth[:, [0, 1, 3, 4]] == 0) and np.abs(smooth[walking, 5]).max() <= 0.3  # gentle, level walks
    assert walking.mean() > 0.7 and np.abs(smooth[~walking, 5]).max() <= 0.6  # turning on the spot only at walls
    assert np.abs(hard[:, 5]).max() > 0.6 and np.abs(hard[:, 0]).max() > 0.5 and np.abs(hard[:, 4]).max() > 0.2
    pitch = [math.degrees(math.asin(-p[1, 2])) for p in _gt_path("hard", 16, 0)[1]]
    assert max(abs(p) for p in pitch) < 41


def test_mirrored_path_swaps_left_and_right():
    a = np.array([[0.3, 0.1, 0.8, 0.2, -0.4, 0.5]], dtype=np.float32)
    np.testing.assert_array_equal(mirror_actions(a), a * np.float32([-1, 1, 1, -1, 1, -1]))
    np.testing.assert_array_equal(mirror_actions(mirror_actions(a)), a)


def test_writes_table_json_plots_and_videos(result):
    import imageio.v3 as iio

    paths = result.paths
    assert paths["table"].read_text().strip() == result.table
    for split in SPLITS:
        assert f"{split}: 1 scene(s) x 1.5 s (2 steps, 25 frames)" in result.table
        for key in (f"plot_{split}", f"grid_{split}"):
            assert paths[key].suffix == ".png" and paths[key].stat().st_size > 0
        video = paths[f"video_{split}_scene{SCENE}"]
        assert iio.imread(video, index=0).shape == (32, 64, 3)  # world | ground truth
    assert "repeat first frame (lower)" in result.table and "ground truth (upper)" in result.table
    saved = json.loads(paths["metrics"].read_text())
    assert saved["splits"] == json.loads(json.dumps(result.metrics["splits"]))
    assert len(saved["splits"]["smooth"]["curves"]["time_s"]) == 24  # frames 1..24


def test_brackets_order_and_the_ground_truth_follows_its_actions(result):
    cap = result.metrics["psnr_cap_db"]
    for split in SPLITS:
        worlds = result.metrics["splits"][split]["worlds"]
        lower, world, upper = worlds["repeat_first"], worlds["world"], worlds["ground_truth"]
        assert upper["fidelity_psnr"] == cap and upper["fidelity_ssim"] == 1.0  # the ground truth's own frames
        assert lower["fidelity_psnr"] < upper["fidelity_psnr"] and world["fidelity_psnr"] < cap
        assert lower["degradation_psnr"] is not None and upper["degradation_psnr"] == 0.0
        # The mirrored path shows other views: the ground truth scores clearly higher on its own path,
        # and a world that ignores its actions (the first frame held) hardly does.
        assert upper["mirror_psnr"] < 60 and upper["follow_ssim"] > 0.02
        assert abs(lower["follow_ssim"]) < upper["follow_ssim"]
    revisit = result.metrics["splits"]["revisit"]["worlds"]
    assert revisit["ground_truth"]["revisit_psnr"] > 60  # same poses out and back: the same images
    assert revisit["repeat_first"]["return_psnr"] < revisit["ground_truth"]["return_psnr"] == cap
    assert "revisit_psnr" not in result.metrics["splits"]["smooth"]["worlds"]["world"]


def test_the_autoencoder_column_reconstructs_the_truth_through_a_trained_vae():
    from model.checkpoint import load_model
    from model.world import DEFAULT_WORLD
    from sanawm_env.evaluation.run import autoencode
    from sanawm_env.metrics import psnr

    vae = load_model(DEFAULT_WORLD.parent / "training" / "vae-small.safetensors", kind="vae").eval()
    env = SanaWMGTEnv(height=64, width=64)
    _, info = env.reset(seed=3)
    frames = [info["frames"]] + [env.step(np.array([0, 0, 0.5, 0, 0, 0.3], np.float32))[4]["frames"] for _ in range(2)]
    truth = np.concatenate(frames)  # 25 frames
    out = autoencode(vae, truth)
    assert out.shape == truth.shape and out.dtype == np.uint8
    assert psnr(out, truth).mean() > 20  # frames in the right order and layout; a scrambled layout scores ~10 dB


def test_same_config_same_numbers(world_dir, result, tmp_path):
    again = evaluate(_config(world_dir, tmp_path, "videos=false"))
    assert again.metrics["splits"] == result.metrics["splits"]


@pytest.mark.parametrize("override, message", [
    ("splits.hard=0", r"splits.hard: the rollout length must lie in \(0, 60\]"),
    ("splits.hard=61", r"splits.hard: the rollout length must lie in \(0, 60\]"),
    ("+splits.walk=3", "unknown split 'walk'"),
    ("scenes=[5]", "below 2\\*\\*31"),
    ("scenes=[]", "at least one scene"),
    ("scenes=[2147483648,2147483648]", "must not repeat"),
    ("+env_kwargs.height=64", "env_kwargs \\['height'\\]"),
    ("psnr_cap_db=0", "psnr_cap_db must be positive"),
    ("grid_frames=0", "grid_frames must be >= 1"),
])
def test_bad_config_values_fail_clearly(override, message):
    with pytest.raises(ValueError, match=message):
        compose_eval([override])


def test_unknown_keys_and_wrong_types_fail():
    with pytest.raises(ConfigCompositionException):
        compose_eval(["stepz=3"])
    with pytest.raises(ConfigCompositionException):
        compose_eval(["seed=many"])


def test_command_line_reports_errors(world_dir, tmp_path, capsys):
    assert main(["eval", f"world={tmp_path / 'missing'}"]) == 2
    assert "not a world folder" in capsys.readouterr().err
    assert main(["eval", f"world={world_dir}", f"out={tmp_path}", "splits.revisit=0.75"]) == 2
    assert "a revisit path needs at least 2" in capsys.readouterr().err


def test_camera_accuracy_registers_the_truth_and_scores_its_poses(tmp_path):
    world = save_world(tmp_path / "tiny64", fresh_world("tiny", 64, 64))  # 32 x 32 frames are too small for COLMAP
    result = evaluate(_config(world, tmp_path / "eval", "videos=false", "camera_seconds=3", "~splits.hard", "~splits.revisit",
                              "splits.smooth=3"))
    worlds = result.metrics["splits"]["smooth"]["worlds"]
    truth = worlds["ground_truth"]
    assert truth["camera_registered"] > 0.8  # COLMAP places (nearly) every true frame
    assert truth["camera_rot_err_deg"] < 5.0 and truth["camera_trans_err"] < 0.5  # 2.5 degrees, 0.05 when written
    assert worlds["world"]["camera_registered"] < truth["camera_registered"]  # an untrained world's noise has no geometry
    assert "camera: frames COLMAP registers, first 3 s" in result.table
