"""The `sanawm` command line and the demo that `make demo` runs."""

import json
import subprocess
import sys
import warnings

import pytest
from hydra.errors import ConfigCompositionException

from sanawm.cli import _compose_demo, run_demo


def test_help_lists_subcommands():
    out = subprocess.run([sys.executable, "-m", "sanawm", "--help"], capture_output=True, text=True, check=True).stdout
    assert all(word in out for word in ("demo", "data", "train", "eval"))


@pytest.mark.parametrize("env", ["SanaWM-v0", "SanaWM-GT-v0"])
def test_demo_writes_video_plot_and_summary(tmp_path, env):
    overrides = [f"out={tmp_path}", "steps=3", f"env={env}", "env_kwargs.height=24", "env_kwargs.width=32"]
    if env == "SanaWM-v0":  # the default world is untrained (with a warning) until one ships
        overrides.append("+env_kwargs.size=tiny")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        paths = run_demo(_compose_demo(overrides))
    assert paths["video"].stat().st_size > 0 and paths["video"].suffix == ".mp4"
    assert paths["plot"].stat().st_size > 0 and paths["plot"].suffix == ".png"
    summary = json.loads(paths["summary"].read_text())
    assert summary["steps"] == 3 and summary["frames"] == 1 + 3 * 12
    # A learned world is shown beside the procedural scene rendered along its path, and scored against it.
    assert ("psnr_db_vs_ground_truth" in summary) == (env == "SanaWM-v0")
    assert ("psnr_db_repeat_first_frame" in summary) == (env == "SanaWM-v0")
    import imageio.v3 as iio

    assert iio.imread(paths["video"], index=0).shape[:2] == (24, 64 if env == "SanaWM-v0" else 32)


def test_make_demo_rolls_out_the_learned_world():
    assert _compose_demo([]).env == "SanaWM-v0"


def test_demo_config_rejects_unknown_keys_and_wrong_types():
    with pytest.raises(ConfigCompositionException):
        _compose_demo(["stepz=3"])
    with pytest.raises(ConfigCompositionException):
        _compose_demo(["steps=many"])


def test_recording_rejects_bad_frames_and_paths(tmp_path):
    import numpy as np

    from sanawm_env.recording import plot_trajectory, write_video

    with pytest.raises(ValueError, match=r"uint8 with shape \(T, H, W, 3\)"):
        write_video(tmp_path / "v.mp4", np.zeros((2, 4, 4, 3), np.float32))
    with pytest.raises(ValueError, match=r"uint8 with shape \(T, H, W, 3\)"):
        write_video(tmp_path / "v.mp4", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match=r"\.mp4 or \.gif"):
        write_video(tmp_path / "v.avi", np.zeros((2, 4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match=r"poses must have shape \(T, 4, 4\)"):
        plot_trajectory(tmp_path / "p.png", np.zeros((3, 3, 4)))
    odd = write_video(tmp_path / "odd.mp4", np.zeros((3, 5, 7, 3), np.uint8))  # odd sizes are padded
    assert odd.stat().st_size > 0 and not list(tmp_path.glob("*.tmp*"))
    assert write_video(tmp_path / "v.gif", np.zeros((2, 4, 4, 3), np.uint8)).stat().st_size > 0
