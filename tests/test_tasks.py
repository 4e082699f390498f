"""Navigation tasks (issue 16): the floor grid, pointgoal and imagegoal in both worlds, SPL on
hand-made paths, Dict observations and bad input."""

import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import sanawm_env  # noqa: F401
from agents.policies import GoalExpert, RandomPolicy
from sanawm_env import SanaWMEnv, SanaWMGTEnv, generate_scene
from sanawm_env.navigation import FloorGrid, free_positions

TINY = dict(size="tiny", height=32, width=32)


pytestmark = pytest.mark.usefixtures("quiet_untrained")


def _episode(env, policy, seed, options=None):
    obs, info = env.reset(seed=seed, options=options)
    policy.reset(env)
    while True:
        obs, reward, terminated, truncated, info = env.step(policy(obs, info))
        if terminated or truncated:
            return info


def test_floor_grid_agrees_with_the_scene_and_measures_straight_lines():
    scene = generate_scene(5)
    points = np.random.default_rng(0).uniform(0, 24, (2000, 2))
    fast = free_positions(scene, points[:, 0], points[:, 1], -1.5, 0.25)
    assert np.array_equal(fast, [scene.is_free(np.array([x, -1.5, z]), 0.25) for x, z in points])
    grid = FloorGrid(scene, 0.25)
    rng = np.random.default_rng(1)
    for _ in range(1000):  # two floor points more than 4 m apart with nothing between them
        a, b = rng.uniform(0, 24, (2, 2))
        line = a + np.linspace(0, 1, 200)[:, None] * (b - a)
        if np.linalg.norm(b - a) > 4 and free_positions(scene, line[:, 0], line[:, 1], -1.5, 0.25).all():
            break
    straight = float(np.linalg.norm(b - a))
    assert straight - 1e-9 <= grid.lookup(grid.distance_field(a), b) <= 1.03 * straight  # 16 directions: within 2.7%
    walled = next(p for p in points if not scene.is_free(np.array([p[0], -1.5, p[1]]), 0.25) and grid.nearest_free(p, 0.1) is None)
    assert grid.nearest_free(walled, 0.1) is None


@pytest.mark.parametrize("task", ["pointgoal", "imagegoal"])
def test_goal_tasks_pass_the_checkers_with_dict_observations(task):
    for env in (SanaWMGTEnv(height=32, width=32, task=task), SanaWMEnv(**TINY, task=task)):
        assert isinstance(env.observation_space, gym.spaces.Dict) and "image" in env.observation_space.spaces
        check_env(env, skip_render_check=True)
        sb3_check_env(env)
    assert isinstance(SanaWMGTEnv(height=32, width=32, task="explore").observation_space, gym.spaces.Box)


def test_one_task_scores_both_worlds_alike():
    gt = gym.make("SanaWM-GT-v0", height=32, width=32, task="imagegoal")
    world = gym.make("SanaWM-v0", **TINY, task="imagegoal")
    (obs_gt, info_gt), (obs_w, info_w) = gt.reset(seed=3), world.reset(seed=3)
    assert np.array_equal(info_gt["goal"], info_w["goal"]) and info_gt["distance_to_goal"] == info_w["distance_to_goal"]
    assert np.array_equal(obs_gt["imagegoal"], obs_w["imagegoal"])  # the goal is photographed in the true world
    action = np.array([0, 0, 1, 0, 0, 0.2], np.float32)  # no wall within one step of a spawn: same motion in both
    (_, r_gt, *_), (_, r_w, *_) = gt.step(action), world.step(action)
    assert r_gt == pytest.approx(r_w)
    assert not np.array_equal(obs_gt["imagegoal"], gt.reset(seed=4)[0]["imagegoal"])


def test_pointgoal_observation_is_distance_and_turn_to_the_goal():
    env = SanaWMGTEnv(height=32, width=32, task="pointgoal")
    obs, info = env.reset(seed=1)
    pose = info["pose"].astype(np.float64)
    distance, turn = obs["pointgoal"]
    assert distance == pytest.approx(np.linalg.norm(info["goal"] - pose[[0, 2], 3]), rel=1e-5)
    # dyaw > 0 turns right: turning by the observed angle faces the goal.
    while abs(turn) > 1e-3:
        step = float(np.clip(turn / env.step_scale[5], -1, 1))
        obs, *_ = env.step(np.array([0, 0, 0, 0, 0, step], np.float32))
        assert abs(obs["pointgoal"][1]) < abs(turn)
        turn = obs["pointgoal"][1]


def _hand_made_goals():
    """(scene seed, start pose, goal): one in view across a room, one round a corner."""
    scene = generate_scene(5)
    grid = FloorGrid(scene, 0.25)
    pose = scene.spawn_pose(np.random.default_rng(0), 0.25).numpy()
    start = pose[[0, 2], 3]
    field = grid.distance_field(start)
    nodes = np.argwhere(grid.free & np.isfinite(field))
    positions = np.stack([grid.position(tuple(n)) for n in nodes])
    straight = np.linalg.norm(positions - start, axis=1)
    detour = field[tuple(nodes.T)] / np.maximum(straight, 1e-9)
    in_view = positions[np.argmax(np.where((detour < 1.02) & (straight > 2.0) & (straight < 4.0), straight, -1))]
    corner = positions[np.argmax(np.where((detour > 1.4) & (straight > 2.0) & (field[tuple(nodes.T)] < 9.0), detour, -1))]
    return [(5, pose, in_view), (5, pose, corner)]


@pytest.mark.parametrize("case", [0, 1], ids=["in-view", "round-a-corner"])
def test_expert_reaches_hand_made_goals_with_spl_near_one_and_random_does_not(case):
    seed, pose, goal = _hand_made_goals()[case]
    options = {"scene_seed": seed, "pose": pose, "goal": goal}
    env = gym.make("SanaWM-GT-v0", height=32, width=32, task="pointgoal", frames_per_step=4)
    info = _episode(env, GoalExpert(), 0, options)
    assert info["success"] and info["spl"] > 0.9, info
    if case == 1:
        assert env.unwrapped.task.shortest > 1.3 * np.linalg.norm(goal - pose[[0, 2], 3])  # the path bends
    random = [_episode(env, RandomPolicy(seed=k), k, options) for k in range(3)]
    assert np.mean([i["spl"] for i in random]) < 0.3


def test_spl_counts_the_walked_detour():
    seed, pose, goal = _hand_made_goals()[0]
    env = SanaWMGTEnv(height=32, width=32, task="pointgoal", frames_per_step=4)
    env.reset(seed=0, options={"scene_seed": seed, "pose": pose, "goal": goal})
    expert = GoalExpert()
    expert.reset(env)
    _, _, _, _, info = env.step(np.array([0, 0, 0, 0, 0, 1], np.float32))  # a turn walks nothing
    for _ in range(2):
        _, _, _, _, info = env.step(np.array([0, 0, -1, 0, 0, 0], np.float32))  # walk away, then come back
    while not info["success"]:
        _, _, _, _, info = env.step(expert(None, info))
    task = env.task
    assert task.walked > task.shortest + 0.5 and info["spl"] == pytest.approx(task.shortest / task.walked)


def test_reaching_the_goal_terminates_with_the_success_reward():
    env = SanaWMGTEnv(height=32, width=32, task="pointgoal", task_kwargs={"success_reward": 10.0})
    _, info = env.reset(seed=2)
    expert = GoalExpert()
    expert.reset(env)
    rewards = []
    while True:
        _, reward, terminated, _, info = env.step(expert(None, info))
        rewards.append(reward)
        if terminated:
            break
    assert info["success"] and info["distance_to_goal"] <= 0.5 and rewards[-1] > 10.0 and max(rewards[:-1]) < 1.0


def test_snapshots_carry_the_task():
    env = gym.make("SanaWM-v0", **TINY, task="pointgoal")
    env.reset(seed=0)
    snapshot = sanawm_env.clone_state(env)
    after = [env.step(np.full(6, 0.3, np.float32))[1:] for _ in range(2)]
    sanawm_env.restore_state(env, snapshot)
    again = [env.step(np.full(6, 0.3, np.float32))[1:] for _ in range(2)]
    assert [a[0] for a in after] == [a[0] for a in again]
    assert env.unwrapped.task._grid is snapshot["world"]["task"]._grid  # the floor grid is shared, not copied


def test_bad_goals_and_task_arguments_are_named():
    env = SanaWMGTEnv(height=32, width=32, task="pointgoal")
    scene = generate_scene(5)
    wall = next((x + 0.5, z + 0.5) for z in range(24) for x in range(24) if scene.walls[z, x] > 0)
    with pytest.raises(ValueError, match="goal.*off the free floor"):
        env.reset(seed=0, options={"scene_seed": 5, "goal": wall})
    with pytest.raises(ValueError, match="goal"):
        env.reset(seed=0, options={"scene_seed": 5, "goal": [1.0, 2.0, 3.0]})
    with pytest.raises(ValueError, match="min_distance"):
        SanaWMGTEnv(task="pointgoal", task_kwargs={"min_distance": 5.0, "max_distance": 2.0})
    with pytest.raises(ValueError, match="min_distance, max_distance"):
        SanaWMGTEnv(height=32, width=32, task="pointgoal", task_kwargs={"min_distance": 90.0, "max_distance": 99.0}).reset(seed=0)
    world = SanaWMEnv(**TINY, task="pointgoal")
    with pytest.raises(ValueError, match="scene_seed"):
        world.reset(seed=0, options={"image": np.zeros((32, 32, 3), np.uint8)})
    with pytest.raises(ValueError, match="task must be one of"):
        SanaWMGTEnv(task="objectgoal")


def test_vector_env_stacks_dict_observations_and_resets_in_the_same_step():
    vec = sanawm_env.SanaWMVectorEnv(num_envs=2, **TINY, task="pointgoal", max_episode_steps=2,
                                     autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    obs, _ = vec.reset(seed=[0, 1])
    assert obs["image"].shape == (2, 32, 32, 3) and obs["pointgoal"].shape == (2, 2)
    assert vec.single_observation_space == SanaWMEnv(**TINY, task="pointgoal").observation_space
    for _ in range(2):
        obs, rewards, terminated, truncated, info = vec.step(np.zeros((2, 6), np.float32))
    assert truncated.all() and info["_final_obs"].all() and (info["step"] == 0).all()
    assert set(info["final_obs"][0]) == {"image", "pointgoal"} and (info["final_info"]["step"] == 2).all()
    with pytest.raises(ValueError, match="autoreset_mode"):
        sanawm_env.SanaWMVectorEnv(num_envs=1, **TINY, autoreset_mode="Disabled")
