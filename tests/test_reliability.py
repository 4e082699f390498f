"""Reliability: what a user writes is never lost or silently mixed (issue 19)."""

import json
import os
import shutil
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import model.world as world_module
import sanawm_env
import sanawm_env.datagen as datagen
from model.camera import intrinsics_from_fov
from model.checkpoint import load_model
from model.clips import ClipDataset
from model.world import fresh_world, load_world, save_world
from sanawm_env import SanaWMEnv
from sanawm_env.world_env import SanaWMVectorEnv


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_a_world_saved_over_another_keeps_none_of_its_files(tmp_path):
    save_world(tmp_path / "w", fresh_world("tiny", 32, 32, seed=0, refiner=True))
    save_world(tmp_path / "w", fresh_world("tiny", 32, 32, seed=1, refiner=False))
    loaded = load_world(tmp_path / "w")
    assert loaded.refiner is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w"]  # no temporary folders left behind


def test_an_interrupted_save_leaves_the_old_world_whole(tmp_path, monkeypatch):
    old = fresh_world("tiny", 32, 32, seed=0)
    save_world(tmp_path / "w", old)
    real_save = world_module.save_model

    def failing_save(path, module):
        if path.name == "vae.safetensors":  # the new DiT is already written
            raise KeyboardInterrupt
        return real_save(path, module)

    monkeypatch.setattr(world_module, "save_model", failing_save)
    with pytest.raises(KeyboardInterrupt):
        save_world(tmp_path / "w", fresh_world("tiny", 32, 32, seed=1))
    loaded = load_world(tmp_path / "w")
    assert _same_weights(loaded.dit, old.dit) and _same_weights(loaded.vae, old.vae)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w"]


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_every_advertised_dtype_steps_close_to_float32(dtype):
    def rollout(dt):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="no trained")
            env = SanaWMEnv(size="tiny", height=32, width=32, dtype=dt, refine_every=2)
        env.reset(seed=0)
        return np.stack([env.step(np.full(6, 0.3, dtype=np.float32))[0] for _ in range(3)]).astype(float)

    half, full = rollout(dtype), rollout("float32")
    assert np.abs(half - full).mean() < 4.0  # uint8 levels: rounding, not a different video


def test_vector_env_one_world_autoresets_while_another_steps_after_a_restore():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="no trained")
        env = SanaWMVectorEnv(num_envs=2, max_episode_steps=2, size="tiny", height=32, width=32)
    env.reset(seed=0)
    act = np.full((2, 6), 0.3, dtype=np.float32)
    env.step(act)
    snapshot = env.clone_state(1)
    _, _, _, truncated, _ = env.step(act)
    assert truncated.all()
    env.restore_state(1, snapshot)  # world 1 goes back one step; world 0 resets on the next step
    obs, reward, _, truncated, info = env.step(act)
    assert info["frames"][0].shape[0] == 1 and np.array_equal(info["frames"][0][0], obs[0])
    frames = info["frames"][1]
    assert frames.shape[0] == 12 and np.array_equal(frames[-1], obs[1])
    assert not all(np.array_equal(f, frames[0]) for f in frames)  # a step's frames, not copies of one
    assert truncated.tolist() == [False, True]


def _make_tiny(**kwargs):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="no trained")
        return gym.make("SanaWM-v0", size="tiny", height=32, width=32, **kwargs)


def test_restore_under_gym_make_rewinds_the_time_limit():
    env = _make_tiny(max_episode_steps=3)
    env.reset(seed=0)
    act = np.full(6, 0.3, dtype=np.float32)
    env.step(act)
    snapshot = sanawm_env.clone_state(env)
    first = [env.step(act) for _ in range(2)]
    assert [t for *_, t, _ in first] == [False, True]
    sanawm_env.restore_state(env, snapshot)
    again = [env.step(act) for _ in range(2)]
    assert [t for *_, t, _ in again] == [False, True]  # the restored episode has its two steps left
    for a, b in zip(first, again):
        assert np.array_equal(a[0], b[0]) and a[1] == b[1]


def test_a_snapshot_of_another_world_is_refused():
    small = _make_tiny()
    small.reset(seed=0)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="no trained")
        large = gym.make("SanaWM-v0", size="tiny", height=48, width=48)
    large.reset(seed=0)
    with pytest.raises(ValueError, match="snapshot is of a world"):
        large.unwrapped.restore_state(small.unwrapped.clone_state())
    with pytest.raises(TypeError, match="sanawm_env.clone_state"):
        sanawm_env.restore_state(small, small.unwrapped.clone_state())


@pytest.mark.parametrize("window", [0, 2])
def test_the_refiner_history_stays_within_its_window(window):
    env = _make_tiny(refine_every=1, refine_window=window)
    env.reset(seed=0)
    for _ in range(3):
        env.step(np.full(6, 0.3, dtype=np.float32))
    assert env.unwrapped.worlds.slots[0].history.shape[2] == window


def test_the_world_runs_at_the_field_of_view_it_was_trained_at(tmp_path):
    world = fresh_world("tiny", 32, 32)
    world.info.fov_deg = 60.0
    save_world(tmp_path / "w", world)
    env = SanaWMEnv(checkpoint=str(tmp_path / "w"), size="tiny", height=32, width=32)
    torch.testing.assert_close(env.worlds.intrinsics, intrinsics_from_fov(60.0, 32, 32).float())
    _, info = env.reset(seed=0)
    np.testing.assert_allclose(info["intrinsics"], intrinsics_from_fov(60.0, 32, 32).numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="fov_deg"):
        SanaWMEnv(checkpoint=str(tmp_path / "w"), size="tiny", height=32, width=32, fov_deg=-5.0)


def test_both_worlds_refuse_a_start_pose_inside_geometry():
    from sanawm_env.scene import generate_scene

    scene = generate_scene(5)
    inside = next(p for p in np.random.default_rng(0).uniform(-8, 8, (1000, 3)) if not scene.is_free(np.array([p[0], -1.0, p[2]]), 0.25))
    pose = np.eye(4)
    pose[:3, 3] = [inside[0], -1.0, inside[2]]
    for env in (_make_tiny(), gym.make("SanaWM-GT-v0", height=32, width=32)):
        with pytest.raises(ValueError, match="inside geometry"):
            env.reset(seed=0, options={"scene_seed": 5, "pose": pose})


def _generate(out, clips, seed=3, **kwargs):
    return datagen.generate_clips(out, clips=clips, frames=5, size=(16, 16), seed=seed, clips_per_shard=2, progress=False, **kwargs)


def test_data_generate_refuses_a_folder_it_did_not_make(tmp_path):
    (tmp_path / "shard-00000.safetensors").write_text("the user's own file")
    with pytest.raises(FileExistsError, match="not empty"):
        _generate(tmp_path, 3)
    assert (tmp_path / "shard-00000.safetensors").read_text() == "the user's own file"


def test_data_generate_resumes_an_interrupted_run_to_the_same_data(tmp_path, monkeypatch):
    whole = ClipDataset(_generate(tmp_path / "whole", 5))
    real_render, calls = datagen.render, []

    def dying_render(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:  # two shards of two clips written, the third shard's first clip pending
            raise KeyboardInterrupt
        return real_render(*args, **kwargs)

    monkeypatch.setattr(datagen, "render", dying_render)
    with pytest.raises(KeyboardInterrupt):
        _generate(tmp_path / "cut", 5)
    monkeypatch.setattr(datagen, "render", real_render)
    with pytest.raises(ValueError, match="interrupted dataset"):
        ClipDataset(tmp_path / "cut")
    with pytest.raises(FileExistsError, match="--resume"):
        _generate(tmp_path / "cut", 5)
    with pytest.raises(ValueError, match="seed"):
        _generate(tmp_path / "cut", 5, seed=4, resume=True)
    resumed = ClipDataset(_generate(tmp_path / "cut", 5, resume=True))
    assert len(resumed) == len(whole) == 5
    for i in range(5):
        assert torch.equal(resumed[i]["frames"], whole[i]["frames"]) and torch.equal(resumed[i]["c2w"], whole[i]["c2w"])


def test_a_damaged_clip_index_fails_with_its_path_and_field(tmp_path):
    folder = _generate(tmp_path / "ds", 2)
    index = json.loads((folder / "index.json").read_text())
    for field, value, message in (("frames", -1, "'frames' must be positive"), ("shards", [{"file": "gone.safetensors", "clips": 2}], "gone.safetensors"),
                                  ("num_clips", 7, "num_clips is 7")):
        (folder / "index.json").write_text(json.dumps({**index, field: value}))
        with pytest.raises((ValueError, FileNotFoundError), match=message) as error:
            ClipDataset(folder)
        assert str(folder / "index.json") in str(error.value)
    (folder / "index.json").write_text("{not json")
    with pytest.raises(ValueError, match="not readable as JSON"):
        ClipDataset(folder)


def test_an_interrupted_latent_folder_is_refused(tmp_path):
    from model.training.latents import LatentDataset

    (tmp_path / "index.json").write_text(json.dumps({"format": "sanawm-latents", "version": 1, "num_clips": 64, "complete": False,
                                                     "latent_frames": 7, "shards": []}))
    with pytest.raises(ValueError, match="interrupted latents stage"):
        LatentDataset(tmp_path)


def test_the_thread_policy_leaves_out_the_cores_a_neighbour_keeps_busy(monkeypatch):
    import model.threads as threads

    monkeypatch.setattr(threads, "available_cores", lambda: 2)
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(threads.torch, "get_num_threads", lambda: 2)
    ticks = {"all": 0, "own": 0}
    monkeypatch.setattr(threads, "_busy_ticks", lambda: (ticks["all"], ticks["own"]))
    clock = [0.0]
    monkeypatch.setattr(threads.time, "monotonic", lambda: clock[0])
    policy = threads.ThreadPolicy("auto")
    hz = policy._hz
    for neighbour, expected in ((1.0, 1), (0.0, 2), (0.9, 1), (0.2, 2), (2.0, 1)):  # busy cores -> threads
        clock[0] += 1.0
        ticks["own"] += hz  # this process: one core for the whole second
        ticks["all"] += hz + int(neighbour * hz)
        assert policy.choose() == expected
    assert threads.ThreadPolicy(3).choose() == 3


def test_the_thread_policy_restores_torch_threads_and_checks_its_input(monkeypatch):
    from model.threads import ThreadPolicy

    before = torch.get_num_threads()
    with ThreadPolicy(1).scope() as n:
        assert n == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="threads must be 'auto' or a positive int, got 0"):
        ThreadPolicy(0)
    monkeypatch.setenv("SANAWM_NUM_THREADS", "many")
    with pytest.raises(ValueError, match="SANAWM_NUM_THREADS must be 'auto' or a positive int"):
        ThreadPolicy()
    monkeypatch.setenv("SANAWM_NUM_THREADS", "1")
    assert ThreadPolicy().choose() == 1


@pytest.mark.parametrize("args, reason", [
    (["train", "foo=bar"], "sanawm train: error: Key 'foo' not in 'TrainConfig'"),
    (["demo", "steps=abc"], "sanawm demo: error: Value 'abc' of type 'str' could not be converted to Integer (Error merging override steps=abc)"),
    (["eval", "splits.smooth=abc"], "sanawm eval: error: Value 'abc' of type 'str' could not be converted to Float"),
])
def test_a_bad_override_is_one_short_error_with_the_reason_first(args, reason, capsys, monkeypatch):
    from sanawm.cli import main

    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(reason) and len(err.splitlines()) == 2 and "Traceback" not in err
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException):
        main(args)


def test_training_takes_a_thread_policy_and_rejects_a_bad_one():
    from sanawm.train import compose

    assert compose(["data=x", "threads=2"]).threads == "2" and compose(["data=x"]).threads == "auto"
    with pytest.raises(ValueError, match="threads must be 'auto' or a positive int, got 'many'"):
        compose(["data=x", "threads=many"])


@pytest.fixture(scope="module")
def tiny_world_files(tmp_path_factory):
    return save_world(tmp_path_factory.mktemp("worlds") / "w", fresh_world("tiny", 32, 32))


def _copy_world(src, dst):
    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("text, message", [
    ("{not json", "not readable as JSON"),
    ("[1, 2]", "must hold a JSON object"),
    ('{"height": 32, "width": 32, "size": "tiny", "colour": 1}', "unknown fields \\['colour'\\]"),
    ('{"height": -32, "width": 32, "size": "tiny"}', "field 'height' must be a positive int, got -32"),
    ('{"height": 32, "width": 32, "size": "huge"}', "field 'size' must be one of"),
    ('{"height": 32, "width": 32, "size": "tiny", "fov_deg": 200}', "field 'fov_deg' must be degrees in \\(0, 180\\)"),
])
def test_a_damaged_world_json_fails_with_its_path_and_field(tiny_world_files, tmp_path, text, message):
    folder = _copy_world(tiny_world_files, tmp_path / "w")
    (folder / "world.json").write_text(text)
    with pytest.raises(ValueError, match=message) as error:
        load_world(folder)
    assert str(folder / "world.json") in str(error.value)


def test_world_parts_of_the_wrong_kind_or_damaged_fail_with_their_path(tiny_world_files, tmp_path):
    folder = _copy_world(tiny_world_files, tmp_path / "w")
    shutil.copy(folder / "vae.safetensors", folder / "dit.safetensors")
    with pytest.raises(ValueError, match="dit.safetensors: holds a vae model, a dit was expected"):
        load_world(folder)
    (folder / "dit.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError, match="dit.safetensors: not a readable safetensors file"):
        load_world(folder)
    (folder / "dit.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="dit.safetensors"):
        load_world(folder)


def test_a_model_file_with_a_bad_header_config_fails_with_its_path(tiny_world_files, tmp_path):
    src = tiny_world_files / "vae.safetensors"
    with safe_open(str(src), framework="pt") as f:
        header, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    for config, message in (('{"latent_channels": 8, "colour": 1}', "config fields \\['colour'\\] are not VAEConfig fields"),
                            ('{"latent_channels": -8}', "bad VAEConfig in the header"),
                            ("{oops", "not JSON")):
        save_file(tensors, str(tmp_path / "vae.safetensors"), metadata={**header, "config": config})
        with pytest.raises(ValueError, match=message) as error:
            load_model(tmp_path / "vae.safetensors")
        assert str(tmp_path / "vae.safetensors") in str(error.value)


GOOD_CAMERA = "1000 0.5 0.9 0.5 0.5 0 0 1 0 0 0 0 1 0 0 0 0 1 0"


@pytest.mark.parametrize("text, message", [
    (GOOD_CAMERA + "\n", ":1: the first line must be the video's URL"),
    ("https://example.com/v\n", "no camera lines after the URL"),
    ("https://example.com/v\n" + GOOD_CAMERA.replace("0.9", "nan") + "\n", ":2: NaN or infinite values"),
    ("https://example.com/v\n" + GOOD_CAMERA.replace("0.9", "x") + "\n", ":2: not a number"),
    ("https://example.com/v\n" + GOOD_CAMERA.replace(" 1 0 0 0 0 1 0 0 0 0 1 0", " 2 0 0 0 0 1 0 0 0 0 1 0") + "\n", ":2: the pose is not rigid"),
    ("https://example.com/v\n" + GOOD_CAMERA.replace("0.5 0.9", "-0.5 0.9", 1) + "\n", ":2: focal lengths fx, fy must be positive"),
    ("https://example.com/v\n" + GOOD_CAMERA + "\n" + GOOD_CAMERA + "\n", "timestamps repeat"),
])
def test_a_damaged_realestate10k_camera_file_fails_with_its_path_and_line(tmp_path, text, message):
    from model.camera import read_re10k_cameras

    (tmp_path / "seq.txt").write_text(text)
    with pytest.raises(ValueError, match=message) as error:
        read_re10k_cameras(tmp_path / "seq.txt")
    assert str(tmp_path / "seq.txt") in str(error.value)


def test_clip_readers_refuse_a_window_of_no_frames(tmp_path):
    from model.clips import RealEstate10KDataset

    folder = _generate(tmp_path / "ds", 2)
    with pytest.raises(ValueError, match="clip_frames must be a positive int or None"):
        ClipDataset(folder, clip_frames=0)
    (tmp_path / "re" / "seq").mkdir(parents=True)
    (tmp_path / "re" / "seq.txt").write_text("https://example.com/v\n" + GOOD_CAMERA + "\n")
    with pytest.raises(ValueError, match="clip_frames must be a positive int or None"):
        RealEstate10KDataset(tmp_path / "re", clip_frames=-1)


def test_damaged_release_checkpoints_fail_with_their_path(tmp_path):
    from model.checkpoint_io import load_state_dict, reference_config

    (tmp_path / "config.json").write_text("{oops")
    with pytest.raises(ValueError, match="config.json: not readable as JSON"):
        reference_config(tmp_path / "config.json")
    (tmp_path / "config.json").write_text('{"num_layers": -2}')
    with pytest.raises(ValueError, match="config.json: bad config"):
        reference_config(tmp_path / "config.json")
    index = tmp_path / "diffusion_pytorch_model.safetensors.index.json"
    index.write_text('{"metadata": {}}')
    with pytest.raises(ValueError, match="index.json: needs a 'weight_map'"):
        load_state_dict(tmp_path)
    index.write_text('{"weight_map": {"a.weight": "part-1.safetensors"}}')
    with pytest.raises(FileNotFoundError, match="names the shard part-1.safetensors"):
        load_state_dict(tmp_path)
    (tmp_path / "part-1.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="part-1.safetensors: not a readable safetensors file"):
        load_state_dict(tmp_path)
    (tmp_path / "model.pth").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="model.pth: not a readable torch checkpoint"):
        load_state_dict(tmp_path / "model.pth")


def test_a_damaged_clip_shard_fails_with_its_path(tmp_path):
    folder = _generate(tmp_path / "ds", 2)
    good = ClipDataset(folder)[0]
    with safe_open(str(folder / "shard-00000.safetensors"), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys() if k != "c2w"}
    save_file(tensors, str(folder / "shard-00000.safetensors"))
    with pytest.raises(ValueError, match="shard-00000.safetensors: the shard has no \\['c2w'\\]"):
        ClipDataset(folder)[0]
    (folder / "shard-00000.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="shard-00000.safetensors: not a readable safetensors shard"):
        ClipDataset(folder)[0]
    assert good["frames"].shape == (5, 16, 16, 3)


def test_fault_injection_leaves_no_unclear_or_silent_case_and_loses_nothing(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "faults.json"
    subprocess.run([sys.executable, "benchmarks/faults.py", "--out", str(out)], check=True, capture_output=True,
                   cwd=Path(__file__).resolve().parent.parent, env={**os.environ, "OMP_NUM_THREADS": "1"})
    rows = json.loads(out.read_text())["rows"]
    assert len(rows) > 150
    bad = [f"{r['outcome']}: {r['case']}: {r['detail']}" for r in rows if r["outcome"] in ("unclear", "silent", "lost")]
    assert not bad, "\n".join(bad)
