"""The `sanawm` command line and the demo that `make demo` runs."""

import json
import subprocess
import sys

import pytest
from hydra.errors import ConfigCompositionException

from sanawm.cli import _compose_demo, run_demo


def test_help_lists_subcommands():
    out = subprocess.run([sys.executable, "-m", "sanawm", "--help"], capture_output=True, text=True, check=True).stdout
    assert "demo" in out and "data" in out


def test_demo_writes_video_plot_and_summary(tmp_path):
    cfg = _compose_demo([f"out={tmp_path}", "steps=3", "env_kwargs.height=24", "env_kwargs.width=32"])
    paths = run_demo(cfg)
    assert paths["video"].stat().st_size > 0 and paths["video"].suffix == ".mp4"
    assert paths["plot"].stat().st_size > 0 and paths["plot"].suffix == ".png"
    summary = json.loads(paths["summary"].read_text())
    assert summary["steps"] == 3 and summary["frames"] == 1 + 3 * 12


def test_demo_config_rejects_unknown_keys_and_wrong_types():
    with pytest.raises(ConfigCompositionException):
        _compose_demo(["stepz=3"])
    with pytest.raises(ConfigCompositionException):
        _compose_demo(["steps=many"])
