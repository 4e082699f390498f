"""Collisions in imagination (issue 16, item 6): the collision predictor as a world part, SanaWM-v0
stopping the camera where it predicts contact and reporting it as SanaWM-GT-v0 does, the labelled
ground-truth data it learns from, and its training script. No trained predictor is needed."""

import json
import shutil

import numpy as np
import pytest
import torch

from agents.train_collision import TrainCollisionConfig, train
from model.checkpoint import load_model
from model.camera import camera_delta
from model.collision import CollisionConfig, CollisionPredictor, mirror
from model.world import WorldModel, fresh_world, load_world, save_world
from sanawm_env import SanaWMEnv, SanaWMGTEnv
from sanawm_env.collision_data import CollisionDataConfig, collision_walk, generate_collision_data, read_collision_data
from sanawm_env.scene import generate_scene
from sanawm_env.trajectories import move_camera

pytestmark = pytest.mark.usefixtures("quiet_untrained")
TINY = dict(size="tiny", height=32, width=32)
FORWARD_AND_TURN = np.array([0.0, 0.0, 1.0, 0.0, 0.0, 0.5], np.float32)


def _forced(collides: bool, free: float = 0.5) -> CollisionPredictor:
    """A predictor whose answer is fixed: collision probability ~1 (or ~0) and the free fraction ``free``."""
    predictor = CollisionPredictor(CollisionConfig(32, 32, (4, 4, 4, 4), 8))
    torch.nn.init.zeros_(predictor.head[-1].weight)
    predictor.head[-1].bias.data = torch.tensor([10.0 if collides else -10.0, float(np.log(free / (1 - free)))])
    return predictor


def _world(predictor: CollisionPredictor | None) -> WorldModel:
    world = fresh_world("tiny", 32, 32, seed=1)
    return WorldModel(world.dit, world.vae, world.refiner, world.info, predictor).eval()


def _step(world: WorldModel, action=FORWARD_AND_TURN, **kwargs) -> dict:
    env = SanaWMEnv(checkpoint=world, **TINY, **kwargs)
    env.reset(seed=0)
    return env.step(action)[4]


def test_the_predictor_stops_the_motion_where_it_predicts_contact():
    free = _step(_world(None))
    stopped = _step(_world(_forced(True, free=0.5)))
    frames = len(free["poses"])
    moving = round(0.5 * frames)
    assert stopped["collision"] is True and free["collision"] is False
    np.testing.assert_allclose(stopped["poses"][:moving], free["poses"][:moving], atol=1e-6)  # the same path up to the contact
    centres = stopped["poses"][:, :3, 3]
    np.testing.assert_allclose(centres[moving:], np.broadcast_to(centres[moving - 1], centres[moving:].shape), atol=1e-6)  # then it stays
    np.testing.assert_allclose(stopped["poses"][-1, :3, :3], free["poses"][-1, :3, :3], atol=1e-5)  # and goes on turning
    no_contact = _step(_world(_forced(False)))
    assert no_contact["collision"] is False and np.allclose(no_contact["poses"], free["poses"])
    off = _step(_world(_forced(True)), collisions=False)
    assert off["collision"] is False and np.allclose(off["poses"], free["poses"])


def test_collision_info_and_rewards_as_the_ground_truth_reports_them():
    gt = SanaWMGTEnv(height=32, width=32, frames_per_step=12)
    gt.reset(seed=0)
    for _ in range(20):  # walk forward until a wall stops the camera
        _, gt_reward, _, _, gt_info = gt.step(np.array([0, 0, 1, 0, 0, 0], np.float32))
        if gt_info["collision"]:
            break
    assert gt_info["collision"] is True
    learned = SanaWMEnv(checkpoint=_world(_forced(True)), **TINY)
    learned.reset(seed=0)
    _, reward, _, _, info = learned.step(FORWARD_AND_TURN)
    assert type(info["collision"]) is type(gt_info["collision"]) is bool
    assert set(gt_info) - {"scene_seed"} <= set(info)  # the GT's step info keys (the learned world names its scene at reset)
    assert reward == pytest.approx(info["visited_cells"] - 1 - 0.1)  # explore's collision penalty, as in the true world


def test_a_world_without_the_predictor_behaves_as_before(tmp_path):
    folder = save_world(tmp_path / "plain", fresh_world("tiny", 32, 32, seed=1))
    assert not (folder / "collision.safetensors").exists() and load_world(folder).collision is None
    info = _step(str(folder), np.array([0, 0, 1, 0, 0, 0], np.float32))
    assert info["collision"] is False
    distance = np.linalg.norm(info["poses"][-1, [0, 2], 3] - _step(str(folder), np.zeros(6, np.float32))["poses"][-1, [0, 2], 3])
    assert distance == pytest.approx(0.5, abs=1e-5)  # the whole commanded step (max_translation), through anything
    with pytest.raises(ValueError, match="collisions=True needs a world with a collision predictor"):
        SanaWMEnv(checkpoint=str(folder), **TINY, collisions=True)
    with pytest.raises(ValueError, match="collisions must be None"):
        SanaWMEnv(checkpoint=str(folder), **TINY, collisions="yes")


def test_the_predictor_is_a_world_part_and_a_damaged_one_is_named(tmp_path):
    predictor = _forced(True, free=0.25)
    predictor.config.threshold = 0.7
    folder = save_world(tmp_path / "w", _world(predictor))
    loaded = load_world(folder).collision
    assert isinstance(loaded, CollisionPredictor) and loaded.config == predictor.config
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), predictor.state_dict().values()))
    assert _step(str(folder))["collision"] is True  # on by default when the folder has the file
    (folder / "collision.safetensors").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="collision.safetensors: not a readable safetensors file"):
        load_world(folder)
    shutil.copy(folder / "vae.safetensors", folder / "collision.safetensors")
    with pytest.raises(ValueError, match="collision.safetensors: holds a vae model, a collision was expected"):
        load_world(folder)
    big = fresh_world("tiny", 64, 64)
    big = save_world(tmp_path / "big", WorldModel(big.dit, big.vae, big.refiner, big.info, CollisionPredictor(CollisionConfig(64, 64))))
    wrong = save_world(tmp_path / "wrong", _world(None))
    shutil.copy(big / "collision.safetensors", wrong)
    with pytest.raises(ValueError, match="the collision predictor reads 64 x 64 frames, the world makes 32 x 32"):
        load_world(wrong)
    with pytest.raises(ValueError, match="multiples of 2 \\*\\* len\\(channels\\) = 16"):
        CollisionConfig(40, 40)


def test_the_mirror_augmentation_is_the_mirror_image_of_the_motion():
    images, gravity, motion = torch.randint(0, 256, (2, 32, 32, 3), dtype=torch.uint8), torch.randn(2, 3), torch.randn(2, 3, 6) * 0.3
    pose = camera_delta(torch.randn(2, 6).double() * 0.5).float()
    flipped = mirror(images, pose, gravity, motion)
    assert torch.equal(flipped[0].flip(-2), images) and not torch.equal(flipped[0], images)
    s = torch.diag(torch.tensor([-1.0, 1.0, 1.0, 1.0], dtype=torch.float64))  # x -> -x in the camera frame
    torch.testing.assert_close(camera_delta(flipped[3].double()), s @ camera_delta(motion.double()) @ s)
    torch.testing.assert_close(flipped[1].double(), s @ pose.double() @ s)
    torch.testing.assert_close(flipped[2], gravity * torch.tensor([-1.0, 1.0, 1.0]))
    assert all(torch.equal(a, b) for a, b in zip(mirror(*flipped), (images, pose, gravity, motion)))


class _Recording(CollisionPredictor):
    """A predictor that never foresees contact and keeps what the env asked it."""

    def __init__(self) -> None:
        super().__init__(CollisionConfig(32, 32, (4, 4, 4, 4), 8))
        self.asked: list[tuple[torch.Tensor, ...]] = []

    def forward(self, first, pose, gravity, motion):
        self.asked.append((first.clone(), pose.clone(), gravity.clone(), motion.clone()))
        return torch.full((*motion.shape[:2], 2), -10.0)


def test_the_env_asks_with_the_first_frame_and_the_pose_relative_to_it():
    predictor = _Recording()
    env = SanaWMEnv(checkpoint=_world(predictor), **TINY)
    first, info = env.reset(seed=0)
    start = info["pose"].astype(np.float64)
    obs, poses = first, [start]
    for action in (FORWARD_AND_TURN, np.array([0.3, 0, 0.5, 0, 0.2, -0.4], np.float32)):
        obs, _, _, _, info = env.step(action)
        poses.append(info["pose"].astype(np.float64))
    assert len(predictor.asked) == 2 and not np.array_equal(obs, first)
    for (seen, pose, gravity, motion), before, action in zip(predictor.asked, poses, (FORWARD_AND_TURN, [0.3, 0, 0.5, 0, 0.2, -0.4])):
        assert np.array_equal(seen[0].numpy(), first)  # frame 0 at every step, never the imagined frame
        np.testing.assert_allclose(pose[0].numpy(), np.linalg.solve(start, before), atol=1e-5)
        np.testing.assert_allclose(gravity[0].numpy(), before[1, :3], atol=1e-6)
        np.testing.assert_allclose(motion[0, 0].numpy(), np.array(action) * env.unwrapped.step_scale, atol=1e-6)
    assert not np.allclose(predictor.asked[1][1].numpy(), np.eye(4), atol=1e-3)  # the second step starts away from frame 0


def test_labels_are_the_true_worlds_and_held_out_scenes_lie_apart(tmp_path):
    config = CollisionDataConfig(height=16, width=16, views_per_walk=3, motions_per_view=3)
    walk = collision_walk(config, 0)
    scene = generate_scene(int(walk["scene_seed"]))
    for view in range(3):
        for j in range(3):
            _, collided = move_camera(scene, walk["poses"][view].astype(np.float64), walk["motion"][view, j].astype(np.float64), 12)
            assert collided == walk["collision"][view, j]
            assert (walk["free"][view, j] < 1) == collided
    assert walk["scene_seed"] < 2**31 and collision_walk(CollisionDataConfig(**{**config.__dict__, "held_out": True}), 0)["scene_seed"] >= 2**31
    folder = generate_collision_data(tmp_path / "c", 3, config, walks_per_shard=2, progress=False)
    found, data = read_collision_data(folder)
    assert found == config and data["images"].shape == (9, 16, 16, 3) and data["motion"].shape == (9, 3, 6)
    assert np.array_equal(data["images"][:3].numpy(), walk["images"]) and int(data["scene_seed"][0]) == walk["scene_seed"]


def test_the_training_script_writes_a_predictor_and_held_out_numbers(tmp_path):
    from agents.train_collision import _inputs, _with_views

    data = {"height": 32, "width": 32, "views_per_walk": 3, "motions_per_view": 2}
    cfg = TrainCollisionConfig(out=str(tmp_path / "run"), train_walks=4, eval_walks=2, epochs=1, channels=[4, 4, 4, 4], hidden=8, progress=False, data=data,
                               eval_views=5)
    metrics = json.loads((train(cfg) / "metrics.json").read_text())
    assert set(metrics) >= {"predictor", "never", "always", "frame_free", "train", "held_out"}
    assert metrics["predictor"]["views 1-3"]["motions"] == 2 * 3 * 2 and metrics["predictor"]["view 0"]["motions"] == 2 * 2  # held-out walks of 5 views
    assert metrics["predictor"]["views 4-7"]["motions"] == 2 * 1 * 2 and metrics["held_out"]["views"] == 2 * 5
    assert metrics["never"]["all"]["recall"] == 0 and metrics["always"]["all"]["precision"] == pytest.approx(metrics["always"]["all"]["base_rate"])
    predictor = load_model(tmp_path / "run" / "collision.safetensors", kind="collision")
    assert predictor.config.threshold == metrics["predictor"]["threshold"]
    _, walks = read_collision_data(tmp_path / "run" / "data" / "eval")
    walks = _with_views(walks, 5)
    first, pose, _, _ = _inputs(walks, torch.arange(5, 10))
    assert torch.equal(first, walks["images"][[5] * 5])  # walk 1's first frame at each of its views
    torch.testing.assert_close(pose[0], torch.eye(4))
    moved = torch.linalg.solve(walks["poses"][5].double(), walks["poses"][8].double()).float()
    torch.testing.assert_close(pose[3], moved)
    assert not torch.allclose(moved, torch.eye(4), atol=1e-3)
    again, pose, _, _ = _inputs(walks, torch.tensor([8]), torch.tensor([7]))  # re-anchored at view 2 of walk 1
    assert torch.equal(again[0], walks["images"][7])
    torch.testing.assert_close(pose[0], torch.linalg.solve(walks["poses"][7].double(), walks["poses"][8].double()).float())
    with pytest.raises(ValueError, match="holds 4 walks .* this run wants 5"):
        train(TrainCollisionConfig(**{**cfg.__dict__, "train_walks": 5}))


@pytest.mark.parametrize("anchor_prob", [0.0, 1.0])
def test_training_rereads_views_from_earlier_frames_of_their_walk(tmp_path, monkeypatch, anchor_prob):
    import agents.train_collision as tc

    walks = tc._with_views(collision_walk(CollisionDataConfig(height=32, width=32, views_per_walk=8, motions_per_view=2), 0), 8)
    walks = {key: torch.as_tensor(v) for key, v in walks.items() if key not in ("scene_seed", "style")}
    asked = []
    inputs = tc._inputs

    def spy(data, rows, anchors=None):
        asked.append((rows.clone(), None if anchors is None else anchors.clone()))
        return inputs(data, rows, anchors)

    monkeypatch.setattr(tc, "_inputs", spy)
    cfg = TrainCollisionConfig(epochs=3, batch_size=8, channels=[4, 4, 4, 4], hidden=8, progress=False, anchor_prob=anchor_prob)
    tc._fit(CollisionPredictor(CollisionConfig(32, 32, (4, 4, 4, 4), 8)), walks, cfg, "test")
    rows, anchors = torch.cat([a[0] for a in asked]), torch.cat([a[1] for a in asked])
    assert bool((anchors <= rows).all())  # never a later view
    assert bool((anchors == 0).all()) == (anchor_prob == 0.0)  # one walk: its first view is row 0


def test_bad_training_settings_are_named():
    with pytest.raises(ValueError, match="anchor_prob in \\[0, 1\\]; got .*, 1.5"):
        TrainCollisionConfig(anchor_prob=1.5)
    with pytest.raises(ValueError, match="eval_views must be positive, got 0"):
        TrainCollisionConfig(eval_views=0)
