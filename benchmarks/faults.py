"""Fault injection: bad arguments, bad files and interrupted writes, each tried and classified.

    python benchmarks/faults.py          # about a minute on a 2-core CPU; prints a table, writes JSON

Every case is something a user can do wrong (or a run that dies half-way). Outcomes:
  clear   an error of the kinds we raise for bad input, whose message names the argument or file
  unclear an error, but another kind (a crash deep in a library) or one that does not say what
  silent  accepted without a word (the goal is none)
  kept    an interrupted write left the old data whole (for the write cases)
  lost    an interrupted write damaged or mixed what was there (must be none)
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sanawm import errors  # noqa: E402  (after the repository root is on the path)

# The errors the command line reports as a user's mistake, and TypeError, which the envs raise for an
# argument of the wrong kind (an action that is no array, a snapshot that is no snapshot).
USER_ERRORS = (*errors.USER_ERRORS, TypeError)


class Interrupt(BaseException):
    """A kill in the middle of a write (BaseException, as KeyboardInterrupt is)."""


def _expect_error(fn: Callable[[], object], names: str) -> tuple[str, str]:
    """Run ``fn``; classify what it raised against ``names`` (text the message must contain)."""
    from gymnasium.error import ResetNeeded
    from hydra.errors import ConfigCompositionException

    try:
        fn()
    except (*USER_ERRORS, ResetNeeded, ConfigCompositionException) as e:
        message = errors.reason(e)  # what the command line prints
        return ("clear" if names in message else "unclear"), f"{type(e).__name__}: {message[:140]}"
    except Exception as e:  # noqa: BLE001  (anything else is the finding)
        return "unclear", f"{type(e).__name__}: {str(e).splitlines()[0][:140] if str(e) else ''}"
    return "silent", "accepted"


# ---- the cases ------------------------------------------------------------------------------------

def env_argument_cases() -> list[tuple[str, Callable, str]]:
    from sanawm_env import SanaWMEnv, SanaWMVectorEnv
    from sanawm_env.gt_env import SanaWMGTEnv

    base = dict(size="tiny", height=32, width=32)
    bad = {
        "height": [0, -32, 31.5, "32"], "width": [0, -8, 2.5], "steps": [0, -1, 1.5], "window": [-1, 1.5],
        "refine_every": [-1, 0.5], "refine_window": [-2], "max_translation": [0, -1, math.nan, math.inf],
        "max_rotation": [0, math.nan], "fov_deg": [0, -10, 180, 270, math.nan], "dtype": ["float64", "int8"],
        "device": ["tpu"], "task": ["nope"], "task_kwargs": [{"bogus": 1}], "size": ["huge"], "checkpoint": ["/no/such"],
        "render_mode": ["human"], "threads": [0, "many"], "compile": ["yes", 1],
    }
    cases = []
    for name, values in bad.items():
        for value in values:
            names = "/no/such" if name == "checkpoint" else name  # a missing world is named by its path
            cases.append((f"SanaWM-v0 {name}={value!r}", lambda n=name, v=value: SanaWMEnv(**{**base, n: v}), names))
    for name, values in {"height": [0, -1], "fov_deg": [0, 200], "max_translation": [math.nan], "task": ["nope"]}.items():
        for value in values:
            cases.append((f"SanaWM-GT-v0 {name}={value!r}", lambda n=name, v=value: SanaWMGTEnv(**{"height": 32, "width": 32, n: v}), name))
    cases += [
        ("vector num_envs=0", lambda: SanaWMVectorEnv(num_envs=0, **base), "num_envs"),
        ("vector unknown kwarg", lambda: SanaWMVectorEnv(num_envs=2, colour=1, **base), "colour"),
        ("vector max_episode_steps=0", lambda: SanaWMVectorEnv(num_envs=2, max_episode_steps=0, **base), "max_episode_steps"),
        ("vector autoreset_mode='Disabled'", lambda: SanaWMVectorEnv(num_envs=2, autoreset_mode="Disabled", **base), "autoreset_mode"),
    ]
    bad_task_kwargs = {"success_radius": [0, -1, math.nan], "min_distance": [0, math.inf], "max_distance": [-2.0],
                       "success_reward": [math.nan, "big"], "slack_reward": [math.inf]}
    for task in ("pointgoal", "imagegoal"):
        for name, values in bad_task_kwargs.items():
            for value in values:
                cases.append((f"SanaWM-GT-v0 {task} {name}={value!r}",
                              lambda t=task, n=name, v=value: SanaWMGTEnv(height=32, width=32, task=t, task_kwargs={n: v}), name))
        cases.append((f"SanaWM-v0 {task} min_distance > max_distance",
                      lambda t=task: SanaWMEnv(**base, task=t, task_kwargs={"min_distance": 5.0, "max_distance": 2.0}), "min_distance"))
    return cases


def env_call_cases(tmp: Path) -> list[tuple[str, Callable, str]]:
    from sanawm_env import SanaWMEnv, SanaWMVectorEnv
    from sanawm_env.gt_env import SanaWMGTEnv
    from sanawm_env.scene import generate_scene

    env = SanaWMEnv(size="tiny", height=32, width=32)
    gt = SanaWMGTEnv(height=32, width=32)
    vec = SanaWMVectorEnv(num_envs=2, size="tiny", height=32, width=32)
    image = np.zeros((32, 32, 3), np.uint8)
    scene = generate_scene(5)
    inside = next(p for p in np.random.default_rng(0).uniform(-8, 8, (2000, 3)) if not scene.is_free(np.array([p[0], -1.0, p[2]]), 0.25))
    wall = np.eye(4)
    wall[:3, 3] = [inside[0], -1.0, inside[2]]
    skew = np.eye(4)
    skew[0, 0] = 2.0
    nan_pose = np.eye(4)
    nan_pose[0, 3] = math.nan
    cases = [("step before reset", lambda: SanaWMEnv(size="tiny", height=32, width=32).step(np.zeros(6, np.float32)), "reset")]
    options = {
        "unknown option": ({"colour": 1}, "colour"),
        "image float": ({"image": image.astype(np.float32)}, "image"),
        "image 2-D": ({"image": image[..., 0]}, "image"),
        "image RGBA": ({"image": np.zeros((32, 32, 4), np.uint8)}, "image"),
        "image other size": ({"image": np.zeros((16, 16, 3), np.uint8)}, "image"),
        "pose NaN": ({"scene_seed": 5, "pose": nan_pose}, "pose"),
        "pose 3x3": ({"scene_seed": 5, "pose": np.eye(3)}, "pose"),
        "pose not rigid": ({"scene_seed": 5, "pose": skew}, "pose"),
        "pose inside a wall": ({"scene_seed": 5, "pose": wall}, "pose"),
        "scene_seed -1": ({"scene_seed": -1}, "scene_seed"),
        "scene_seed 1.5": ({"scene_seed": 1.5}, "scene_seed"),
        "scene_seed True": ({"scene_seed": True}, "scene_seed"),
        "scene_seed '7'": ({"scene_seed": "7"}, "scene_seed"),
        "prompt without a text encoder": ({"prompt": "a room"}, "prompt"),
    }
    for name, (opts, names) in options.items():
        cases.append((f"SanaWM-v0 reset {name}", lambda o=opts: env.reset(seed=0, options=o), names))
        if not name.startswith(("image", "prompt")):
            cases.append((f"SanaWM-GT-v0 reset {name}", lambda o=opts: gt.reset(seed=0, options=o), names))
    env.reset(seed=0)
    gt.reset(seed=0)
    vec.reset(seed=0)
    actions = {"NaN": np.full(6, math.nan), "inf": np.full(6, math.inf), "shape (5,)": np.zeros(5), "shape (6, 1)": np.zeros((6, 1)),
               "a string": "forward", "None": None, "a dict": {"dx": 1}}
    for name, action in actions.items():
        cases.append((f"SanaWM-v0 step action {name}", lambda a=action: env.step(a), "action"))
        cases.append((f"SanaWM-GT-v0 step action {name}", lambda a=action: gt.step(a), "action"))
    cases += [
        ("vector step actions (3, 6) for 2 worlds", lambda: vec.step(np.zeros((3, 6), np.float32)), "actions"),
        ("vector step NaN action", lambda: vec.step(np.full((2, 6), math.nan)), "action"),
        ("vector reset 3 seeds for 2 worlds", lambda: vec.reset(seed=[1, 2, 3]), "seed"),
        ("vector restore a snapshot of another size", lambda: vec.restore_state(0, _reset(SanaWMVectorEnv(num_envs=1, size="tiny", height=48, width=48)).clone_state(0)), "snapshot"),
        ("restore a snapshot of another resolution", lambda: env.restore_state(_reset(SanaWMEnv(size="tiny", height=48, width=48)).clone_state()), "snapshot"),
        ("restore something that is no snapshot", lambda: env.restore_state({"obs": 1}), "snapshot"),
    ]
    goal_env, goal_gt = SanaWMEnv(size="tiny", height=32, width=32, task="pointgoal"), SanaWMGTEnv(height=32, width=32, task="imagegoal")
    goals = {"inside a wall": [wall[0, 3], wall[2, 3]], "outside the scene": [-5.0, 3.0], "NaN": [math.nan, 1.0],
             "3-D": [1.0, 2.0, 3.0], "a string": "kitchen"}
    for name, goal in goals.items():
        cases.append((f"SanaWM-v0 pointgoal goal {name}", lambda g=goal: goal_env.reset(seed=0, options={"scene_seed": 5, "goal": g}), "goal"))
        cases.append((f"SanaWM-GT-v0 imagegoal goal {name}", lambda g=goal: goal_gt.reset(seed=0, options={"scene_seed": 5, "goal": g}), "goal"))
    cases += [
        ("SanaWM-v0 pointgoal from a user image (no floor plan)", lambda: goal_env.reset(seed=0, options={"image": image}), "scene_seed"),
        ("SanaWM-GT-v0 pointgoal no goal that far", lambda: SanaWMGTEnv(height=32, width=32, task="pointgoal",
                                                                        task_kwargs={"min_distance": 80.0, "max_distance": 90.0}).reset(seed=0), "min_distance"),
    ]
    return cases


def _reset(env):
    env.reset(seed=0)
    return env


def file_cases(tmp: Path) -> list[tuple[str, Callable, str]]:
    from agents.rollout_data import RolloutDataset
    from agents.rollouts import collect_rollouts
    from model.camera import read_re10k_cameras
    from model.checkpoint import load_model
    from model.checkpoint_io import load_state_dict, reference_config
    from model.clips import ClipDataset
    from model.training.latents import LatentDataset
    from model.world import fresh_world, load_world, save_world
    from sanawm_env.datagen import generate_clips

    world = save_world(tmp / "world", fresh_world("tiny", 32, 32))
    clips = generate_clips(tmp / "clips", clips=2, frames=5, size=(16, 16), seed=0, clips_per_shard=2, progress=False)
    cases = []

    def damaged(src: Path, edit: Callable[[Path], None], read: Callable[[Path], object]) -> Callable[[], object]:
        """Read a copy of ``src`` after ``edit`` damaged it."""
        def run():
            folder = tmp / f"copy-{len(list(tmp.iterdir()))}"
            shutil.copytree(src, folder)
            edit(folder)
            return read(folder)
        return run

    def damaged_world(name: str, edit: Callable[[Path], None]) -> Callable[[], object]:
        return damaged(world, edit, load_world)

    info = json.loads((world / "world.json").read_text())
    for field, value in (("height", -32), ("height", "32"), ("width", 0), ("fps", 0), ("fps", "fast"), ("fov_deg", 200), ("size", "huge"),
                         ("trained", "yes")):
        cases.append((f"world.json {field}={value!r}", damaged_world(field, lambda f, k=field, v=value: (f / "world.json").write_text(json.dumps({**info, k: v}))), "world.json"))
    cases += [
        ("world.json not JSON", damaged_world("j", lambda f: (f / "world.json").write_text("{oops")), "world.json"),
        ("world.json unknown field", damaged_world("u", lambda f: (f / "world.json").write_text(json.dumps({**info, "colour": 1}))), "world.json"),
        ("world.json missing", damaged_world("m", lambda f: (f / "world.json").unlink()), "world.json"),
        ("world dit.safetensors missing", damaged_world("d", lambda f: (f / "dit.safetensors").unlink()), "dit.safetensors"),
        ("world dit.safetensors truncated", damaged_world("t", lambda f: _truncate(f / "dit.safetensors")), "dit.safetensors"),
        ("world dit.safetensors holds the VAE", damaged_world("k", lambda f: shutil.copy(f / "vae.safetensors", f / "dit.safetensors")), "dit.safetensors"),
        ("world refiner.safetensors holds the DiT", damaged_world("r", lambda f: shutil.copy(f / "dit.safetensors", f / "refiner.safetensors")), "refiner.safetensors"),
        ("world collision.safetensors not a model", damaged_world("c", lambda f: _write(f / "collision.safetensors", b"junk")), "collision.safetensors"),
        ("world collision.safetensors holds the VAE", damaged_world("v", lambda f: shutil.copy(f / "vae.safetensors", f / "collision.safetensors")), "collision.safetensors"),
        ("world of another size's VAE", damaged_world("s", lambda f: save_world(tmp / "small-vae", fresh_world("small", 32, 32, refiner=False))
                                                       and shutil.copy(tmp / "small-vae" / "vae.safetensors", f / "vae.safetensors")), str(tmp)),
        ("model file not safetensors", lambda: load_model(_write(tmp / "junk.safetensors", b"junk")), "junk.safetensors"),
    ]

    def damaged_clips(edit: Callable[[Path], None]) -> Callable[[], object]:
        return damaged(clips, edit, lambda f: ClipDataset(f)[1])

    index = json.loads((clips / "index.json").read_text())
    for field, value in (("frames", 0), ("height", "16"), ("num_clips", 9), ("shards", "all"), ("complete", "yes"), ("format", "mp4")):
        cases.append((f"clip index.json {field}={value!r}", damaged_clips(lambda f, k=field, v=value: (f / "index.json").write_text(json.dumps({**index, k: v}))), "index.json"))
    cases += [
        ("clip index.json names a missing shard", damaged_clips(lambda f: (f / "shard-00000.safetensors").unlink()), "shard-00000"),
        ("clip shard truncated", damaged_clips(lambda f: _truncate(f / "shard-00000.safetensors")), "shard-00000"),
        ("clip index says 32 x 32, shard holds 16 x 16", damaged_clips(lambda f: (f / "index.json").write_text(json.dumps({**index, "height": 32, "width": 32}))), "shard-00000"),
        ("clip folder interrupted (complete=false)", damaged_clips(lambda f: (f / "index.json").write_text(json.dumps({**index, "complete": False}))), str(tmp)),
        ("clip window of 0 frames", lambda: ClipDataset(clips, clip_frames=0), "clip_frames"),
        ("clip frame_stride 0", lambda: ClipDataset(clips, frame_stride=0), "frame_stride"),
        ("latent folder given a clip folder", lambda: LatentDataset(clips), "index.json"),
        ("latent folder missing", lambda: LatentDataset(tmp / "nothing"), "nothing"),
    ]

    def damaged_rollouts(edit: Callable[[Path], None]) -> Callable[[], object]:
        return damaged(rollouts, edit, lambda f: RolloutDataset(f)[1])

    rollouts = collect_rollouts(tmp / "rollouts", "random", 2, env="SanaWM-GT-v0", task="explore", num_worlds=2, max_steps=2,
                                env_kwargs={"height": 16, "width": 16, "frames_per_step": 2}, progress=False)
    rollout_index = json.loads((rollouts / "index.json").read_text())
    for field, value in (("version", 2), ("num_episodes", 9), ("observation", "image"), ("complete", False)):
        cases.append((f"rollout index.json {field}={value!r}",
                      damaged_rollouts(lambda f, k=field, v=value: (f / "index.json").write_text(json.dumps({**rollout_index, k: v}))), str(tmp)))
    cases += [
        ("rollout data set with no episodes",
         damaged_rollouts(lambda f: (f / "index.json").write_text(json.dumps({**rollout_index, "num_episodes": 0, "shards": []}))), "index.json"),
        ("rollout shard truncated", damaged_rollouts(lambda f: _truncate(f / "shard-00000.safetensors")), "shard-00000"),
        ("rollout folder missing", lambda: RolloutDataset(tmp / "nothing"), "nothing"),
    ]
    good_camera = "1000 0.5 0.9 0.5 0.5 0 0 1 0 0 0 0 1 0 0 0 0 1 0"
    re10k = {
        "no URL line": good_camera,
        "only the URL": "https://example.com/v",
        "17 numbers": "https://example.com/v\n" + good_camera.rsplit(" ", 2)[0],
        "NaN": "https://example.com/v\n" + good_camera.replace("0.9", "nan"),
        "non-rigid pose": "https://example.com/v\n" + good_camera.replace(" 1 0 0 0 0 1", " 3 0 0 0 0 1", 1),
        "a word for a number": "https://example.com/v\n" + good_camera.replace("0.9", "wide"),
        "zero focal length": "https://example.com/v\n" + good_camera.replace("0.5 0.9", "0 0.9", 1),
        "repeated timestamps": "https://example.com/v\n" + good_camera + "\n" + good_camera,
        "empty": "",
    }
    for name, text in re10k.items():
        cases.append((f"RealEstate10K camera file: {name}", lambda t=text, n=name: read_re10k_cameras(_write(tmp / f"cam-{abs(hash(n))}.txt", t.encode())), "cam-"))
    pretrained = tmp / "pretrained"
    pretrained.mkdir()
    cases += [
        ("release config.json not JSON", lambda: reference_config(_write(pretrained / "config.json", b"{oops")), "config.json"),
        ("release config.json unknown field", lambda: reference_config(_write(pretrained / "config.json", b'{"colour": 1}')), "config.json"),
        ("release folder without weights", lambda: load_state_dict(pretrained), "pretrained"),
        ("release shard index without weight_map", lambda: load_state_dict(_index(pretrained, b"{}")), "index.json"),
        ("release .pth not a checkpoint", lambda: load_state_dict(_write(tmp / "x.pth", b"junk")), "x.pth"),
        ("release .ckpt (unknown suffix)", lambda: load_state_dict(_write(tmp / "x.ckpt", b"junk")), "x.ckpt"),
    ]
    return cases


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _index(folder: Path, data: bytes) -> Path:
    _write(folder / "diffusion_pytorch_model.safetensors.index.json", data)
    return folder


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def cli_cases() -> list[tuple[str, Callable, str]]:
    from sanawm.cli import _compose_demo, compose_eval
    from sanawm.train import compose

    cases = []
    for name, fn, names in (
        ("train unknown key", lambda: compose(["data=x", "colour=red"]), "colour"),
        ("train steps=abc", lambda: compose(["data=x", "steps=abc"]), "steps"),
        ("train steps=0", lambda: compose(["data=x", "steps=0"]), "steps"),
        ("train stage=nope", lambda: compose(["data=x", "stage=nope"]), "stage"),
        ("train world=huge", lambda: compose(["data=x", "world=huge"]), "world"),
        ("train latent_frames=5", lambda: compose(["data=x", "latent_frames=5"]), "latent_frames"),
        ("train optim.lr=-1", lambda: compose(["data=x", "optim.lr=-1"]), "lr"),
        ("train batch_size=-4", lambda: compose(["data=x", "batch_size=-4"]), "batch_size"),
        ("train flow.shift=0", lambda: compose(["data=x", "flow.shift=0"]), "shift"),
        ("train distill.student_sigmas=[0.5,1.0]", lambda: compose(["data=x", "distill.student_sigmas=[0.5,1.0]"]), "student_sigmas"),
        ("demo steps=abc", lambda: _compose_demo(["steps=abc"]), "steps"),
        ("demo env=Nope-v0", lambda: _compose_demo(["env=Nope-v0"]), "env"),
        ("eval splits.smooth=abc", lambda: compose_eval(["splits.smooth=abc"]), "smooth"),
        ("eval splits.smooth=61", lambda: compose_eval(["splits.smooth=61"]), "smooth"),
        ("eval scenes=[5]", lambda: compose_eval(["scenes=[5]"]), "scenes"),
        ("eval camera_seconds=-1", lambda: compose_eval(["camera_seconds=-1"]), "camera_seconds"),
    ):
        cases.append((f"CLI {name}", fn, names))
    return cases


def interrupted_write_cases(tmp: Path) -> list[tuple[str, Callable[[], str]]]:
    """Each returns 'kept' or 'lost' (plus a note) after killing a write half-way."""
    import model.world as world_module
    import sanawm_env.datagen as datagen
    from model.clips import ClipDataset
    from model.training import checkpoints
    from model.world import fresh_world, load_world, save_world

    def same(a, b) -> bool:
        return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))

    def world_save(part: str) -> Callable[[], str]:
        def run():
            folder = tmp / f"ws-{part}"
            old = fresh_world("tiny", 32, 32, seed=0)
            save_world(folder, old)
            real = world_module.save_model

            def dying(path, module):
                if path.name == part:
                    raise Interrupt
                return real(path, module)

            world_module.save_model = dying
            try:
                save_world(folder, fresh_world("tiny", 32, 32, seed=1, refiner=False))
            except Interrupt:
                pass
            finally:
                world_module.save_model = real
            back = load_world(folder)
            return "kept" if same(back.dit, old.dit) and same(back.vae, old.vae) and back.refiner is not None else "lost"
        return run

    def checkpoint_save() -> str:
        path = tmp / "ckpt" / "checkpoint.pt"
        checkpoints.save(path, {"stage": "vae", "world": "tiny", "step": 1, "x": torch.ones(3)})
        real = torch.save

        def dying(obj, f, *a, **k):
            f.write(b"half a checkpoint")
            raise Interrupt

        torch.save = dying
        try:
            checkpoints.save(path, {"stage": "vae", "world": "tiny", "step": 2, "x": torch.zeros(3)})
        except Interrupt:
            pass
        finally:
            torch.save = real
        back = checkpoints.load(path, "vae", "tiny")
        return "kept" if back["step"] == 1 and torch.equal(back["x"], torch.ones(3)) else "lost"

    def data_generate() -> str:
        whole = ClipDataset(datagen.generate_clips(tmp / "dg-whole", clips=5, frames=5, size=(16, 16), seed=3, clips_per_shard=2, progress=False))
        real, calls = datagen.render, []

        def dying(*a, **k):
            calls.append(1)
            if len(calls) == 4:
                raise Interrupt
            return real(*a, **k)

        datagen.render = dying
        try:
            datagen.generate_clips(tmp / "dg-cut", clips=5, frames=5, size=(16, 16), seed=3, clips_per_shard=2, progress=False)
        except Interrupt:
            pass
        finally:
            datagen.render = real
        resumed = ClipDataset(datagen.generate_clips(tmp / "dg-cut", clips=5, frames=5, size=(16, 16), seed=3, clips_per_shard=2,
                                                     progress=False, resume=True))
        ok = len(resumed) == 5 and all(torch.equal(resumed[i]["frames"], whole[i]["frames"]) for i in range(5))
        return "kept" if ok else "lost"

    def data_generate_over_user_files() -> str:
        folder = tmp / "users"
        folder.mkdir()
        (folder / "shard-00000.safetensors").write_text("the user's own file")
        try:
            datagen.generate_clips(folder, clips=2, frames=5, size=(16, 16), progress=False)
        except FileExistsError:
            pass
        return "kept" if (folder / "shard-00000.safetensors").read_text() == "the user's own file" else "lost"

    return [(f"save_world killed while writing {p}", world_save(p)) for p in ("dit.safetensors", "vae.safetensors")] + [
        ("training checkpoint killed mid-write", checkpoint_save),
        ("sanawm data generate killed mid-shard, then --resume", data_generate),
        ("sanawm data generate into a folder of the user's files", data_generate_over_user_files),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="outputs/bench/faults.json")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        groups = {"env arguments": env_argument_cases(), "env calls": env_call_cases(tmp), "files": file_cases(tmp), "CLI": cli_cases()}
        for group, cases in groups.items():
            for name, fn, names in cases:
                outcome, detail = _expect_error(fn, names)
                rows.append({"group": group, "case": name, "outcome": outcome, "detail": detail})
        for name, fn in interrupted_write_cases(tmp):
            rows.append({"group": "interrupted writes", "case": name, "outcome": fn(), "detail": ""})
    counts = Counter((r["group"], r["outcome"]) for r in rows)
    outcomes = ("clear", "unclear", "silent", "kept", "lost")
    print(f"{'group':<20} {'cases':>6} " + " ".join(f"{o:>8}" for o in outcomes))
    for group in dict.fromkeys(r["group"] for r in rows):
        n = sum(1 for r in rows if r["group"] == group)
        print(f"{group:<20} {n:>6} " + " ".join(f"{counts[(group, o)]:>8}" for o in outcomes))
    for r in rows:
        if r["outcome"] in ("unclear", "silent", "lost"):
            print(f"  {r['outcome']:>7}  {r['case']}: {r['detail']}")
    out = ROOT / args.out if not Path(args.out).is_absolute() else Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "faults", "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
