"""`sanawm train`: every stage runs on `tiny` from generated data and leaves a checkpoint and its
artefact; resume is exact; two processes (DDP, FSDP2 over gloo) equal one with the same global
batch; bad input fails with errors that name the key or the file."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from hydra.errors import ConfigCompositionException
from safetensors.torch import load_file, save_file

import sanawm_env  # noqa: F401
from model.training.stage import NonFiniteLoss
from model.training.trainer import train
from sanawm.train import compose
from sanawm_env.datagen import generate_clips

BASE = ["world=tiny", "num_workers=0", "progress=false", "latent_frames=7", "threads=1"]  # one thread: bitwise-comparable runs
ROOT = Path(__file__).resolve().parent.parent


def run(tmp: Path, stage: str, out: str, *extra: str) -> dict:
    return train(compose([*BASE, f"stage={stage}", f"out={tmp / out}", *extra]))


def params(path: Path, name: str = "dit") -> dict[str, torch.Tensor]:
    return torch.load(path / "checkpoint.pt", weights_only=False)["modules"][name]


# The recipe on tiny, in order: stage -> (its run folder, what it reads and starts from in the folders before it).
RECIPE = {
    "vae": ("vae", ["data={tmp}/clips"]),
    "latents": ("latents", ["data={tmp}/clips", "vae={tmp}/vae"]),
    "bidirectional": ("bi", ["data={tmp}/latents", "optim.ema_decay=0.9"]),
    "chunk_causal": ("cc", ["data={tmp}/latents", "init={tmp}/bi"]),
    "ode": ("ode", ["data={tmp}/latents", "teacher={tmp}/cc"]),
    "self_forcing": ("sf", ["data={tmp}/latents", "teacher={tmp}/cc", "init={tmp}/ode", "distill.generator_every=1"]),
    "refiner": ("ref", ["data={tmp}/latents", "init={tmp}/sf", "refiner.student_prob=1.0"]),
}


def recipe_inputs(tmp: Path, stage: str) -> list[str]:
    return [arg.format(tmp=tmp) for arg in RECIPE[stage][1]]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> Path:
    """clips -> vae -> latents -> bidirectional -> chunk_causal -> ode -> self_forcing -> refiner, 2 steps each."""
    tmp = tmp_path_factory.mktemp("train")
    generate_clips(tmp / "clips", clips=4, frames=25, size=(32, 32), seed=0, progress=False)
    for stage, (out, _) in RECIPE.items():
        run(tmp, stage, out, *recipe_inputs(tmp, stage), *([] if stage == "latents" else ["steps=2"]))
    return tmp


@pytest.mark.parametrize("stage", ["vae", "bi", "cc", "ode", "sf", "ref"])
def test_each_stage_writes_checkpoint_metrics_samples_and_export(pipeline, stage):
    out = pipeline / stage
    payload = torch.load(out / "checkpoint.pt", weights_only=False)
    assert payload["step"] == 2 and payload["world"] == "tiny"
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows and all(np.isfinite(v) for r in rows for v in r.values())
    assert "samples_per_s" in rows[-1]
    summary = json.loads((out / "summary.json").read_text())
    assert all(Path(v).stat().st_size > 0 for v in summary["samples"]) and summary["samples"]
    assert Path(summary["export"]).exists()


# No trajectory cache for ode on meta (it writes the teacher's values to disk, and meta tensors hold none); one
# substep keeps it short.
META_EXTRA = {"ode": ["distill.trajectory_cache=false", "distill.teacher_substeps=1"]}


@pytest.mark.parametrize("stage", [stage for stage in RECIPE if stage != "latents"])  # latents copies its values to the CPU
def test_every_stage_steps_on_the_device_of_its_weights(pipeline, meta_device, stage):
    """A step of each stage on a device that refuses CPU tensors, as a GPU does (``meta_device``):
    the noise levels, masks and samples a stage draws on the CPU reach the device before they meet
    the models, and every trained weight stays there."""
    from torch.utils.data import default_collate

    from model.training.distributed import Dist
    from model.training.trainer import make_stage

    extra = recipe_inputs(pipeline, stage) + META_EXTRA.get(stage, [])
    cfg = compose([*BASE, f"stage={stage}", f"out={pipeline / ('meta-' + stage)}", "batch_size=2", *extra])
    s = make_stage(cfg, Dist(rank=0, world=1, local_rank=0, device=meta_device))
    metrics = s.step(default_collate([s.dataset[i] for i in range(2)]), 0)
    assert any(key.endswith("grad_norm") for key in metrics)
    assert all(p.device == meta_device for module in s.plain.values() for p in module.parameters())


def test_vae_stage_stores_latent_statistics(pipeline):
    vae = load_file(str(pipeline / "vae" / "vae.safetensors"))
    assert not torch.allclose(vae["latent_std"], torch.ones_like(vae["latent_std"]))
    index = json.loads((pipeline / "latents" / "index.json").read_text())
    assert index["complete"] and index["num_clips"] == 4 and index["latent_frames"] == 7


def test_stages_change_their_weights(pipeline):
    before = params(pipeline / "cc")  # the teacher: the ode student starts from it
    after = params(pipeline / "ode")
    assert any(not torch.equal(before[k], after[k]) for k in before)
    critic = params(pipeline / "sf", "critic")
    assert any(not torch.equal(before[k], critic[k]) for k in before)


def test_self_forcing_student_moves_once_the_critic_differs_from_the_teacher(pipeline):
    rows = [json.loads(line) for line in (pipeline / "sf" / "metrics.jsonl").read_text().splitlines()]
    # Step 0 has fake == real (the critic starts as the teacher); step 1 must carry a DMD gradient.
    assert rows[-1]["dmd_loss"] > 0 and rows[-1]["dit/grad_norm"] > 0


def test_exported_world_runs_in_the_env(pipeline):
    env = gym.make("SanaWM-v0", checkpoint=str(pipeline / "ref" / "world"), size="tiny", height=32, width=32, refine_every=1)
    obs, _ = env.reset(seed=0)
    obs, *_ = env.step(env.action_space.sample())
    assert obs.shape == (32, 32, 3)
    info = json.loads((pipeline / "ref" / "world" / "world.json").read_text())
    assert info["trained"] and info["size"] == "tiny" and abs(info["fov_deg"] - 80.0) < 1e-3


def test_resume_is_exact(pipeline, tmp_path):
    lat = f"data={pipeline / 'latents'}"
    run(tmp_path, "chunk_causal", "straight", lat, "steps=4", "optim.ema_decay=0.5")
    run(tmp_path, "chunk_causal", "resumed", lat, "steps=2", "optim.ema_decay=0.5")
    run(tmp_path, "chunk_causal", "resumed", lat, "steps=4", "optim.ema_decay=0.5", "resume=true")
    a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=False)
    b = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=False)
    assert b["step"] == 4
    for part in ("modules", "emas"):
        assert all(torch.equal(a[part]["dit"][k], b[part]["dit"][k]) for k in a[part]["dit"])


def test_max_minutes_ends_the_run_early_as_at_its_last_step_and_resume_goes_on(pipeline, tmp_path):
    lat = f"data={pipeline / 'latents'}"
    summary = run(tmp_path, "chunk_causal", "timed", lat, "steps=50", "max_minutes=1e-6")
    assert summary["steps"] == 1 and summary["stopped_by_max_minutes"]
    assert torch.load(tmp_path / "timed" / "checkpoint.pt", weights_only=False)["step"] == 1
    assert (tmp_path / "timed" / "world" / "dit.safetensors").exists()
    summary = run(tmp_path, "chunk_causal", "timed", lat, "steps=3", "resume=true")
    assert summary["steps"] == 3 and summary["resumed_from"] == 1 and not summary["stopped_by_max_minutes"]


def test_samples_fall_back_to_gif_without_ffmpeg(tmp_path, monkeypatch):
    import numpy as np

    from model.training.stage import Stage

    assert Stage.write_sample(tmp_path, 3, np.zeros((2, 4, 8, 3), np.uint8)).name == "step-0000003.mp4"
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # as on a machine without imageio-ffmpeg
    gif = Stage.write_sample(tmp_path, 4, np.zeros((2, 4, 8, 3), np.uint8))
    assert gif.name == "step-0000004.gif" and gif.stat().st_size > 0


def _torchrun(args: list[str], tmp: Path, port: int) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port), "-m", "sanawm.train", *args]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


STAGE_ARGS = {
    "bidirectional": ["optim.ema_decay=0.9"],  # from scratch
    # The student's loss is taken chunk by chunk (DDP's no_sync until the last), the critic in one pass.
    "self_forcing": ["distill.generator_every=1", "init={bi}", "teacher={cc}"],
}


@pytest.mark.parametrize("stage, strategy", [("bidirectional", "ddp"), ("bidirectional", "fsdp"), ("self_forcing", "ddp"),
                                             ("self_forcing", "fsdp")])
def test_two_processes_equal_one_with_the_same_global_batch(pipeline, tmp_path, stage, strategy):
    # eps = 1e-6: Adam's default 1e-10 turns reduction-order noise in ~0 gradients into +-lr steps.
    common = [*BASE, f"stage={stage}", f"data={pipeline / 'latents'}", "steps=3", "optim.lr=1e-3", "optim.eps=1e-6",
              *(a.format(bi=pipeline / "bi", cc=pipeline / "cc") for a in STAGE_ARGS[stage])]
    train(compose([*common, f"out={tmp_path / 'one'}", "batch_size=2"]))
    port = 29400 + 2 * list(STAGE_ARGS).index(stage) + (strategy == "fsdp")
    _torchrun([*common, f"out={tmp_path / 'two'}", "batch_size=1", f"strategy={strategy}"], tmp_path, port)
    names = ["dit", "critic"] if stage == "self_forcing" else ["dit"]
    for name in names:
        a, b = params(tmp_path / "one", name), params(tmp_path / "two", name)
        assert sorted(a) == sorted(b)
        worst = max((a[k] - b[k]).abs().max().item() for k in a)
        assert worst < 5e-5, (name, worst)  # 3 steps of lr 1e-3: a wrong batch split or unsynced gradients moves weights by ~1e-3
        moments = torch.load(tmp_path / "one" / "checkpoint.pt", weights_only=False)["optimizers"][name]["state"]
        assert sum(bool(st["exp_avg"].abs().max() > 0) for st in moments.values()) > 20  # real gradients reached the weights
        if stage == "self_forcing":  # the student started from bi, the critic from the teacher: both moved
            start = load_file(str(pipeline / ("bi" if name == "dit" else "cc") / "world" / "dit.safetensors"))
            assert max((a["module." + k] - v).abs().max().item() for k, v in start.items()) > 1e-4
    assert (tmp_path / "two" / "world" / "world.json").exists()


# ---- bad input --------------------------------------------------------------------------------


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ValueError, match="stage must be one of"):
        compose(["stage=unknown", "data=x"])
    with pytest.raises(ValueError, match="world must be one of"):
        compose(["world=huge", "data=x"])
    with pytest.raises(ConfigCompositionException, match="bogus"):
        compose(["bogus=1", "data=x"])
    with pytest.raises(ConfigCompositionException, match="steps"):
        compose(["steps=many", "data=x"])
    with pytest.raises(ValueError, match="latent_frames must be 1 \\+ 3 k"):
        compose(["latent_frames=6", "data=x"])
    with pytest.raises(ValueError, match="max_minutes must be >= 0"):
        compose(["max_minutes=-1", "data=x"])
    with pytest.raises(ValueError, match="needs teacher="):
        compose(["stage=ode", "data=x"])


def test_cli_reports_errors_without_a_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "sanawm", "train", "stage=bidirectional", f"data={tmp_path}", f"out={tmp_path / 'o'}"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and "not a latent folder" in proc.stderr and "Traceback" not in proc.stderr


def test_data_errors_name_the_folder(pipeline, tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a clip folder"):
        run(tmp_path, "vae", "v", f"data={tmp_path}", "steps=1")  # images without poses, or nothing at all
    odd = tmp_path / "odd"
    generate_clips(odd, clips=1, frames=13, size=(36, 36), seed=0, progress=False)
    with pytest.raises(ValueError, match="not divisible by the VAE's spatial stride 8"):
        run(tmp_path, "vae", "v2", f"data={odd}", "steps=1", "latent_frames=4")
    with pytest.raises(ValueError, match="latent_frames=10 asked"):
        run(tmp_path, "bidirectional", "b", f"data={pipeline / 'latents'}", "steps=1", "latent_frames=10")
    with pytest.raises(ValueError, match="stages after `latents` read latent folders"):
        bad = tmp_path / "clipsidx"
        shutil.copytree(pipeline / "clips", bad)
        run(tmp_path, "bidirectional", "b2", f"data={bad}", "steps=1")


def test_checkpoint_of_another_stage_or_size_is_refused(pipeline, tmp_path):
    shutil.copytree(pipeline / "bi", tmp_path / "bi")
    with pytest.raises(ValueError, match="checkpoint.pt: a checkpoint of stage=bidirectional"):
        run(tmp_path, "chunk_causal", "bi", f"data={pipeline / 'latents'}", "steps=4", "resume=true")
    with pytest.raises(FileExistsError, match="resume=true"):
        run(tmp_path, "bidirectional", "bi", f"data={pipeline / 'latents'}", "steps=4")
    with pytest.raises(ValueError, match="latents/vae.safetensors: the latents were made by a VAE that is not the 'small' world's"):
        train(compose(["world=small", "num_workers=0", "stage=ode", f"data={pipeline / 'latents'}", f"teacher={pipeline / 'cc'}",
                       f"out={tmp_path / 'x'}"]))


def test_nan_loss_stops_and_keeps_the_last_checkpoint(pipeline, tmp_path):
    run(tmp_path, "bidirectional", "run", f"data={pipeline / 'latents'}", "steps=2", "ckpt_every=1")
    before = (tmp_path / "run" / "checkpoint.pt").read_bytes()
    poisoned = tmp_path / "poisoned"
    shutil.copytree(pipeline / "latents", poisoned)
    shard = poisoned / "shard-00000.safetensors"
    tensors = load_file(str(shard))
    tensors["latents"][:] = float("nan")
    save_file(tensors, str(shard))
    with pytest.raises(NonFiniteLoss, match="at step 2"):
        run(tmp_path, "bidirectional", "run", f"data={poisoned}", "steps=4", "resume=true")
    assert (tmp_path / "run" / "checkpoint.pt").read_bytes() == before


def test_truncated_checkpoint_is_named(pipeline, tmp_path):
    shutil.copytree(pipeline / "bi", tmp_path / "bi")
    path = tmp_path / "bi" / "checkpoint.pt"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ValueError, match="checkpoint.pt: not a readable training checkpoint"):
        run(tmp_path, "bidirectional", "bi", f"data={pipeline / 'latents'}", "steps=4", "resume=true")


def test_gradient_checkpointing_gives_the_same_gradients():
    from model import SanaWMDiT, SanaWMRefiner
    from model.sizes import world_size

    torch.manual_seed(0)
    size = world_size("tiny")
    for model, inputs in (
        (SanaWMDiT(size.dit), lambda: ((torch.randn(2, 8, 4, 4, 4), torch.rand(2, 4) * 1000), {})),
        (SanaWMRefiner(size.refiner), lambda: ((torch.randn(2, 8, 4, 4, 4), torch.rand(2, 4)), {})),
    ):
        for p in model.parameters():  # zero-initialised outputs would make every gradient but the last layer's zero
            p.data.add_(torch.randn_like(p) * 0.02)
        args, kwargs = inputs()
        grads = []
        for checkpointing in (False, True):
            model.gradient_checkpointing = checkpointing
            model.zero_grad()
            model(*args, **kwargs).square().mean().backward()
            grads.append({k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None})
        assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 10
        assert all(torch.allclose(grads[0][k], grads[1][k], atol=1e-6, rtol=1e-5) for k in grads[0])


def test_bf16_autocast_with_gradient_checkpointing_trains(pipeline, tmp_path):
    run(tmp_path, "chunk_causal", "bf16", f"data={pipeline / 'latents'}", "steps=1", "precision=bf16", "grad_checkpointing=true")
    assert params(tmp_path / "bf16")  # finite loss, a checkpoint: the guard would have stopped a NaN


def test_step_sampler_splits_the_global_batch_the_same_way_for_any_process_count():
    from model.training.data import StepSampler, clip_generator

    one = StepSampler(10, 4, 0, 1, seed=3, start=0, steps=8)
    two = [StepSampler(10, 2, r, 2, seed=3, start=0, steps=8) for r in range(2)]
    for step in range(8):  # crosses epochs: 32 positions over 10 clips
        assert sorted(one.indices(step)) == sorted(two[0].indices(step) + two[1].indices(step))
    assert list(StepSampler(10, 4, 0, 1, seed=3, start=5, steps=8)) == [one.indices(s) for s in range(5, 8)]
    assert one.indices(0) != StepSampler(10, 4, 0, 1, seed=4, start=0, steps=8).indices(0)
    epoch = [i for s in range(5) for i in StepSampler(10, 2, 0, 1, seed=3, start=0, steps=5).indices(s)]
    assert sorted(epoch) == list(range(10))  # every clip once per epoch
    a, b = clip_generator(0, 1, 2), clip_generator(0, 1, 2)
    assert torch.equal(torch.randn(3, generator=a), torch.randn(3, generator=b))
    assert not torch.equal(torch.randn(3, generator=clip_generator(0, 1, 3)), torch.randn(3, generator=clip_generator(0, 2, 2)))


def test_worker_processes_read_the_same_batches(pipeline, tmp_path):
    lat = f"data={pipeline / 'latents'}"
    run(tmp_path, "bidirectional", "w0", lat, "steps=2")
    train(compose(["world=tiny", "num_workers=2", "progress=false", "latent_frames=7", "stage=bidirectional", lat, "steps=2", f"out={tmp_path / 'w2'}"]))
    a, b = params(tmp_path / "w0"), params(tmp_path / "w2")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_vae_and_latents_stages_read_realestate10k_folders(tmp_path, re10k_folder):
    data = tmp_path / "re10k"
    data.mkdir()
    for name in ("a", "b"):
        re10k_folder(data, n=13, h=32, w=32, name=name)
    run(tmp_path, "vae", "vae", f"data={data}", "steps=1", "latent_frames=4")
    run(tmp_path, "latents", "latents", f"data={data}", f"vae={tmp_path / 'vae'}")
    index = json.loads((tmp_path / "latents" / "index.json").read_text())
    assert index["num_clips"] == 2 and index["latent_frames"] == 4 and index["image_size"] == [32, 32]


def test_a_failed_checkpoint_write_leaves_the_previous_one(tmp_path):
    from model.training import checkpoints

    path = checkpoints.save(tmp_path / "checkpoint.pt", {"stage": "vae", "world": "tiny", "step": 1})
    before = path.read_bytes()
    with pytest.raises(Exception):
        checkpoints.save(path, {"stage": "vae", "world": "tiny", "step": 2, "unpicklable": lambda: None})
    assert path.read_bytes() == before and not (tmp_path / "checkpoint.pt.tmp").exists()
    assert checkpoints.load(path, "vae", "tiny")["step"] == 1


def test_ode_keeps_one_teacher_trajectory_per_clip(pipeline, tmp_path):
    files = sorted((pipeline / "ode" / "trajectories").glob("clip-*.safetensors"))
    assert 1 <= len(files) <= 2  # 2 steps of one clip each
    traj = load_file(str(files[0]))["trajectory"]
    assert traj.shape == (5, 8, 7, 4, 4) and torch.isfinite(traj).all()  # 4 student levels + clean, C, T, h, w
    assert not torch.equal(traj[0], traj[-1])  # the teacher moved the noise
    run(tmp_path, "ode", "again", f"data={pipeline / 'latents'}", "steps=2", f"teacher={pipeline / 'cc'}")
    again = tmp_path / "again" / "trajectories" / files[0].name
    assert again.read_bytes() == files[0].read_bytes()


@pytest.mark.usefixtures("scalar_inductor_kernels")
def test_compiled_blocks_give_the_gradients_of_eager_blocks():
    from torch._dynamo.utils import counters

    from model import SanaWMDiT
    from model.camera import se3, so3_exp
    from model.sizes import world_size

    torch.manual_seed(0)
    model = SanaWMDiT(world_size("tiny").dit)
    for p in model.parameters():  # no zero-initialised branch may sit out of the gradients
        p.data.add_(torch.randn_like(p) * 0.02)
    b, t, cfg = 2, 4, model.config
    poses = se3(so3_exp(torch.randn(b, t, 3) * 0.2), torch.randn(b, t, 3))
    camera = torch.cat([poses.reshape(b, t, 16), torch.tensor([3.0, 3.0, 2.0, 2.0]).expand(b, t, 4)], dim=-1)
    args = (torch.randn(b, cfg.in_channels, t, 4, 4), torch.rand(b, t) * 1000)
    kwargs = dict(camera=camera, plucker=torch.randn(b, cfg.chunk_plucker_channels, t, 4, 4))
    grads = []
    for compiled in (False, True):
        if compiled:
            model.compile_blocks()
        graphs = counters["stats"]["unique_graphs"]
        model.zero_grad()
        model(*args, **kwargs).square().mean().backward()
        grads.append({k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None})
        assert (counters["stats"]["unique_graphs"] > graphs) == compiled  # the compiled blocks ran
    assert all(block.compiled_attn and block.compiled_mlp for block in model.blocks)
    assert grads[0].keys() == grads[1].keys() and any("conv_k_cam" in k for k in grads[0])
    for k in grads[0]:
        torch.testing.assert_close(grads[1][k], grads[0][k], atol=1e-6, rtol=1e-4, msg=k)


def test_compile_option_compiles_the_trained_dit(pipeline, tmp_path, monkeypatch):
    from model import SanaWMDiT

    compiled = []
    monkeypatch.setattr(SanaWMDiT, "compile_blocks", lambda self: compiled.append(self))
    run(tmp_path, "chunk_causal", "compiled", f"data={pipeline / 'latents'}", "steps=1", "compile=true")
    assert len(compiled) == 1
