"""Clip shards (writer and reader), RealEstate10K folders, and data generation."""

import json

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from model.clips import ClipDataset, ClipShardWriter, RealEstate10KDataset, open_clips
from sanawm.cli import main
from sanawm_env.datagen import generate_clips


def _clip(rng, f=5, h=6, w=7):
    frames = rng.integers(0, 256, (f, h, w, 3), dtype=np.uint8)
    c2w = np.broadcast_to(np.eye(4, dtype=np.float32), (f, 4, 4)).copy()
    c2w[:, :3, 3] = rng.normal(size=(f, 3))
    return frames, c2w, np.array([5.0, 5.0, 3.5, 3.0], np.float32)


def test_writer_reader_round_trip_with_shards(tmp_path):
    rng = np.random.default_rng(0)
    clips = [_clip(rng) for _ in range(5)]
    with ClipShardWriter(tmp_path / "ds", frames=5, height=6, width=7, fps=16, clips_per_shard=2, metadata={"note": "x"}) as w:
        for i, (frames, c2w, k) in enumerate(clips):
            w.add(frames, c2w, k, depth=np.full((5, 6, 7), 2.5, np.float32), scene_seed=100 + i)
    index = json.loads((tmp_path / "ds" / "index.json").read_text())
    assert index["complete"] and index["num_clips"] == 5 and [s["clips"] for s in index["shards"]] == [2, 2, 1]
    assert not list((tmp_path / "ds").glob("*.tmp"))
    ds = ClipDataset(tmp_path / "ds")
    assert len(ds) == 5
    for i, (frames, c2w, k) in enumerate(clips):
        item = ds[i]
        assert item["frames"].dtype == torch.uint8 and np.array_equal(item["frames"].numpy(), frames)
        np.testing.assert_array_equal(item["c2w"].numpy(), c2w)
        np.testing.assert_array_equal(item["intrinsics"].numpy(), np.broadcast_to(k, (5, 4)))
        assert item["depth"].dtype == torch.float16 and float(item["depth"][0, 0, 0]) == 2.5
        assert int(item["scene_seed"]) == 100 + i and bool(item["metric"]) and float(item["fps"]) == 16.0
    window = ClipDataset(tmp_path / "ds", clip_frames=2, frame_stride=2)[1]
    assert np.array_equal(window["frames"].numpy(), clips[1][0][[0, 2]])
    assert float(window["fps"]) == 8.0
    batch = next(iter(DataLoader(ds, batch_size=2)))
    assert batch["frames"].shape == (2, 5, 6, 7, 3)


def test_interrupted_writer_leaves_a_readable_prefix(tmp_path):
    rng = np.random.default_rng(1)
    w = ClipShardWriter(tmp_path / "ds", frames=5, height=6, width=7, fps=16, clips_per_shard=2)
    for _ in range(3):
        w.add(*_clip(rng))
    # No close(): the run "died" with one clip pending.
    index = json.loads((tmp_path / "ds" / "index.json").read_text())
    assert index["complete"] is False and index["num_clips"] == 2
    with pytest.raises(ValueError, match="interrupted dataset"):
        ClipDataset(tmp_path / "ds")
    assert len(ClipDataset(tmp_path / "ds", allow_incomplete=True)) == 2


def test_writer_rejects_bad_clips(tmp_path):
    rng = np.random.default_rng(2)
    frames, c2w, k = _clip(rng)
    w = ClipShardWriter(tmp_path / "ds", frames=5, height=6, width=7, fps=16)
    with pytest.raises(TypeError, match="frames must be uint8"):
        w.add(frames.astype(np.float32), c2w, k)
    with pytest.raises(ValueError, match=r"frames must have shape \(frames, height, width, 3\)"):
        w.add(frames[:, :, :, :2], c2w, k)
    with pytest.raises(ValueError, match="c2w must be finite"):
        w.add(frames, c2w[:3], k)
    with pytest.raises(ValueError, match="intrinsics must be finite"):
        w.add(frames, c2w, np.array([0.0, 1, 1, 1]))
    w.close()
    with pytest.raises(FileExistsError, match="already holds a complete dataset"):
        ClipShardWriter(tmp_path / "ds", frames=5, height=6, width=7, fps=16)
    with pytest.raises(ValueError, match="height must be a positive int"):
        ClipShardWriter(tmp_path / "other", frames=5, height=0, width=7, fps=16)
    with pytest.raises(ValueError, match="needs 9 frames"):
        ClipDataset(tmp_path / "ds", clip_frames=5, frame_stride=2)


def test_realestate10k_folder(tmp_path, re10k_folder):
    cams = re10k_folder(tmp_path)
    ds = open_clips(tmp_path)
    assert isinstance(ds, RealEstate10KDataset) and len(ds) == 1
    item = ds[0]
    assert item["frames"].shape == (4, 12, 16, 3) and int(item["frames"][2, 0, 0, 0]) == 80
    torch.testing.assert_close(item["c2w"], cams.c2w.float())
    torch.testing.assert_close(item["intrinsics"][0], torch.tensor([9.6, 9.6, 8.0, 6.0]))
    assert not bool(item["metric"])
    small = RealEstate10KDataset(tmp_path, size=(6, 8), clip_frames=2)[0]
    assert small["frames"].shape == (2, 6, 8, 3)
    torch.testing.assert_close(small["intrinsics"][0], torch.tensor([4.8, 4.8, 4.0, 3.0]))
    with pytest.raises(FileNotFoundError, match="no RealEstate10K sequences"):
        RealEstate10KDataset(tmp_path / "seq0")
    with pytest.raises(ValueError, match="size must be"):
        RealEstate10KDataset(tmp_path, size=(0, 4))


def test_generate_clips_is_deterministic_and_readable(tmp_path):
    a = generate_clips(tmp_path / "a", clips=3, frames=9, size=(16, 20), seed=4, clips_per_shard=2, depth=True, progress=False)
    b = generate_clips(tmp_path / "b", clips=3, frames=9, size=(16, 20), seed=4, clips_per_shard=2, progress=False, workers=2)
    da, db = ClipDataset(a), ClipDataset(b)
    for i in range(3):
        assert torch.equal(da[i]["frames"], db[i]["frames"])
        assert torch.equal(da[i]["c2w"], db[i]["c2w"])
    item = da[0]
    assert item["frames"].shape == (9, 16, 20, 3) and item["depth"].shape == (9, 16, 20)
    assert float(item["metric_scale"]) == 1.0 and bool(item["metric"])
    assert len({int(da[i]["scene_seed"]) for i in range(3)}) == 3
    with pytest.raises(ValueError, match="trajectories must be a non-empty subset"):
        generate_clips(tmp_path / "c", clips=1, frames=3, trajectories=("orbit",), progress=False)
    with pytest.raises(ValueError, match="workers must be a positive int"):
        generate_clips(tmp_path / "c", clips=1, frames=3, progress=False, workers=0)


def test_cli_data_generate(tmp_path, capsys):
    out = tmp_path / "clips"
    assert main(["data", "generate", "--out", str(out), "--clips", "2", "--frames", "5", "--size", "8", "12", "--fps", "16", "--seed", "1"]) == 0
    ds = ClipDataset(out)
    assert len(ds) == 2 and ds[1]["frames"].shape == (5, 8, 12, 3)
    with pytest.raises(SystemExit):
        main(["data", "generate", "--out", str(tmp_path / "x"), "--clips", "0", "--frames", "5"])
    assert "must be a positive integer" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["data", "generate", "--out", str(tmp_path / "x"), "--clips", "2", "--frames", "5", "--workers", "0"])
    assert "--workers" in (err := capsys.readouterr().err) and "must be a positive integer" in err
