"""Reliability: what a user writes is never lost or silently mixed (issue 19)."""

import json
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch

import model.world as world_module
import sanawm_env
import sanawm_env.datagen as datagen
from model.camera import intrinsics_from_fov
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
