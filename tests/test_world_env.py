"""SanaWM-v0: the Gymnasium contract, determinism, forking, the batched vector env, the refiner
and bad input. The tiny untrained world at 32 x 32 keeps it fast; frames are noise, behaviour is not."""


import gymnasium as gym
import numpy as np
import pytest
from gymnasium.error import ResetNeeded
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import sanawm_env  # noqa: F401
from model.world import fresh_world, load_world, save_world
from sanawm_env import SanaWMEnv

TINY = dict(size="tiny", height=32, width=32)


pytestmark = pytest.mark.usefixtures("quiet_untrained")


def _actions(n, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, 6)).astype(np.float32)


def test_env_checkers_pass():
    check_env(gym.make("SanaWM-v0", render_mode="rgb_array", **TINY).unwrapped, skip_render_check=False)
    sb3_check_env(SanaWMEnv(size="tiny", height=64, width=64), warn=True)


def test_untrained_default_warns():
    with pytest.warns(UserWarning, match="no trained 'tiny' world"):
        SanaWMEnv(**TINY)


def test_spaces_steps_and_info():
    env = gym.make("sanawm_env:SanaWM-v0", **TINY)
    assert env.spec.max_episode_steps == 80
    obs, info = env.reset(seed=0)
    assert obs.shape == (32, 32, 3) and obs.dtype == np.uint8 and info["frames"].shape == (1, 32, 32, 3)
    obs, reward, terminated, truncated, info = env.step(_actions(1)[0])
    assert obs in env.observation_space and isinstance(reward, float) and not terminated and not truncated
    assert info["frames"].shape == (12, 32, 32, 3) and np.array_equal(info["frames"][-1], obs)
    assert info["poses"].shape == (12, 4, 4) and info["refined"] is False and "seconds" not in info
    assert env.unwrapped.step_seconds == 0.75
    timed = SanaWMEnv(**TINY, timings=True)
    timed.reset(seed=0)
    assert timed.step(_actions(1)[0])[4]["seconds"] > 0


def _rollout(env, seed, actions, options=None):
    obs, _ = env.reset(seed=seed, options=options)
    frames = [obs]
    for a in actions:
        frames.append(env.step(a)[0])
    return np.stack(frames)


def test_same_seed_same_frames():
    a = _rollout(SanaWMEnv(**TINY), 3, _actions(4))
    b = _rollout(SanaWMEnv(**TINY), 3, _actions(4))
    c = _rollout(SanaWMEnv(**TINY), 4, _actions(4))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_clone_and_restore_reproduce_frames():
    env = SanaWMEnv(**TINY)
    env.reset(seed=1)
    for a in _actions(2):
        env.step(a)
    snap = env.clone_state()
    first = [env.step(a)[0] for a in _actions(3, seed=5)]
    env.restore_state(snap)
    second = [env.step(a)[0] for a in _actions(3, seed=5)]
    assert all(np.array_equal(x, y) for x, y in zip(first, second))
    env.restore_state(snap)  # a snapshot can be used again
    assert np.array_equal(env.step(_actions(3, seed=5)[0])[0], first[0])


def test_state_size_is_constant():
    env = SanaWMEnv(**TINY, window=1)
    env.reset(seed=0)
    sizes = []
    for a in _actions(6):
        env.step(a)
        sizes.append(env.worlds.slots[0].state.dit.nbytes())
    assert len(set(sizes[2:])) == 1, sizes


def test_vector_env_equals_single_envs_and_autoresets():
    vec = gym.make_vec("SanaWM-v0", num_envs=4, **TINY, max_episode_steps=2)
    assert isinstance(vec.unwrapped, sanawm_env.SanaWMVectorEnv)
    singles = [SanaWMEnv(**TINY) for _ in range(4)]
    obs, _ = vec.reset(seed=[0, 1, 2, 3])
    assert all(np.array_equal(obs[i], singles[i].reset(seed=i)[0]) for i in range(4))
    actions = _actions(8).reshape(2, 4, 6)
    for batch in actions:
        obs, rewards, terminated, truncated, infos = vec.step(batch)
        for i in range(4):
            assert np.array_equal(obs[i], singles[i].step(batch[i])[0])
    assert truncated.all()  # the time limit of 2 steps
    obs, rewards, terminated, truncated, infos = vec.step(_actions(4))  # next-step autoreset
    assert (rewards == 0).all() and not truncated.any() and (infos["step"] == 0).all()


def test_vector_env_worlds_out_of_step_still_match():
    vec = sanawm_env.SanaWMVectorEnv(num_envs=2, **TINY)
    vec.reset(seed=[0, 1])
    a = _actions(2)
    vec.step(a)
    snap = vec.clone_state(1)
    vec.reset(seed=[0, 1])
    vec.restore_state(1, snap)  # world 1 is now a chunk ahead of world 0
    obs, *_ = vec.step(a)
    single = SanaWMEnv(**TINY)
    single.reset(seed=1)
    single.step(a[1])
    assert np.array_equal(obs[1], single.step(a[1])[0])


def test_refiner_runs_every_k_chunks():
    env = SanaWMEnv(**TINY, refine_every=2, refine_window=3)
    env.reset(seed=0)
    refined = [env.step(a)[4]["refined"] for a in _actions(4)]
    assert refined == [False, True, False, True]


def test_world_folders_round_trip(tmp_path):
    world = fresh_world("tiny", 32, 32, seed=3)
    save_world(tmp_path / "w", world)
    a = _rollout(SanaWMEnv(checkpoint=world, **TINY), 0, _actions(2))
    b = _rollout(SanaWMEnv(checkpoint=str(tmp_path / "w"), **TINY), 0, _actions(2))
    assert np.array_equal(a, b)
    assert load_world(tmp_path / "w").info.size == "tiny"
    with pytest.raises(ValueError, match=r"w: the checkpoint is a 'tiny' world, but size='small'"):
        SanaWMEnv(checkpoint=str(tmp_path / "w"), size="small", height=32, width=32)
    (tmp_path / "w" / "dit.safetensors").write_bytes(b"broken")
    with pytest.raises(ValueError, match="dit.safetensors: not a readable safetensors file"):
        SanaWMEnv(checkpoint=str(tmp_path / "w"), **TINY)


def test_bad_input():
    env = SanaWMEnv(**TINY)
    with pytest.raises(ResetNeeded):
        env.step(_actions(1)[0])
    with pytest.raises(ValueError, match=r"options\['image'\] must be 32 x 32 .* resize"):
        env.reset(seed=0, options={"image": np.zeros((16, 16, 3), np.uint8)})
    obs, _ = env.reset(seed=0, options={"image": np.full((16, 24, 3), 200, np.uint8), "resize": True})
    assert obs.shape == (32, 32, 3) and (obs == 200).all()
    with pytest.raises(ValueError, match=r"options\['image'\] must be a uint8 array"):
        env.reset(seed=0, options={"image": np.zeros((32, 32, 3), np.float32)})
    with pytest.raises(ValueError, match="no text encoder"):
        env.reset(seed=0, options={"prompt": "a red room"})
    with pytest.raises(ValueError, match=r"unknown reset option\(s\) \['fov'\]"):
        env.reset(seed=0, options={"fov": 3})
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(6,\)"):
        env.step(np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="finite"):
        env.step(np.full(6, np.nan, np.float32))
    with pytest.raises(FileNotFoundError, match="nowhere: not a world folder"):
        SanaWMEnv(checkpoint="nowhere", **TINY)
    with pytest.raises(ValueError, match="height must be a positive int"):
        SanaWMEnv(size="tiny", height=0, width=32)
    with pytest.raises(ValueError, match="generates 32 x 32 frames, but height=64"):
        SanaWMEnv(checkpoint=fresh_world("tiny", 32, 32), size="tiny", height=64, width=64)
    with pytest.raises(ValueError, match="size must be one of"):
        SanaWMEnv(size="huge")
    with pytest.raises(ValueError, match=r"dtype must be one of \['bfloat16', 'float16', 'float32'\] or 'auto', got 'float64'"):
        SanaWMEnv(**TINY, dtype="float64")
    with pytest.raises(ValueError, match=r"compile must be False, True or 'all', got 1"):
        SanaWMEnv(**TINY, compile=1)
    vec = sanawm_env.SanaWMVectorEnv(num_envs=2, **TINY)
    vec.reset(seed=0)
    with pytest.raises(ValueError, match=r"actions must have shape \(num_envs, 6\) = \(2, 6\)"):
        vec.step(np.zeros((3, 6), np.float32))
    with pytest.raises(ValueError, match=r"unknown keyword argument\(s\) \['colour'\]"):
        sanawm_env.SanaWMVectorEnv(num_envs=2, colour="red")


@pytest.mark.parametrize("amx", [True, False])
def test_auto_dtype_is_bfloat16_on_cpus_with_amx_and_float32_elsewhere(monkeypatch, amx):
    """``dtype="auto"`` picks bf16 only where the CPU multiplies it natively (several times slower elsewhere)."""
    import torch

    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    env = SanaWMEnv(**TINY, dtype="auto")
    want = torch.bfloat16 if amx else torch.float32
    assert env.unwrapped.worlds.dtype == want and next(env.unwrapped.worlds.world.dit.parameters()).dtype == want
    env.reset(seed=0)
    assert env.observation_space.contains(env.step(env.action_space.sample())[0])
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")  # oneDNN told not to use the tiles
    assert SanaWMEnv(**TINY, dtype="auto").unwrapped.worlds.dtype == torch.float32
