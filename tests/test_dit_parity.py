"""SanaWMDiT against the public SANA-WM implementation (diffusers 0.42.1) at tiny sizes, in fp32."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from model import SanaWMDiT, action_string_to_c2w, camera_conditions, dit_config
from model.camera import se3, so3_exp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from dit_pair import fp32_reference_softmax  # noqa: E402  (the benchmarks' reference-side switch, shared)

diffusers = pytest.importorskip("diffusers")
cam_utils = pytest.importorskip("diffusers.pipelines.sana_wm.cam_utils")

REF_KW = dict(in_channels=8, num_layers=4, hidden_size=64, num_attention_heads=4, linear_head_dim=16,
              caption_channels=24, chunk_plucker_channels=12, chunk_plucker_post_attn_blocks=4)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    torch.manual_seed(0)
    ref = diffusers.SanaWMTransformer3DModel(**REF_KW).eval()
    with torch.no_grad():  # perturb every parameter, so no zero-initialised branch hides
        for p in ref.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    folder = tmp_path_factory.mktemp("ref")
    ref.save_pretrained(folder)
    return ref, SanaWMDiT.from_pretrained(folder).eval()


def _camera(b, t, intr=(5.0, 5.0, 3.0, 2.0), seed=0):
    g = torch.Generator().manual_seed(seed)
    poses = se3(so3_exp(torch.randn(b, t, 3, generator=g) * 0.2), torch.randn(b, t, 3, generator=g))
    return torch.cat([poses.reshape(b, t, 16), torch.tensor(intr).expand(b, t, 4)], dim=-1)


def _rel(a, b):
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.parametrize("t,h,w,use_camera", [(5, 4, 6, False), (5, 4, 6, True), (23, 2, 3, True), (1, 3, 3, True)])
def test_forward_matches_reference(pair, t, h, w, use_camera):
    ref, ours = pair
    g = torch.Generator().manual_seed(t * 100 + h)
    b = 2
    x = torch.randn(b, 8, t, h, w, generator=g)
    ts = torch.randint(0, 1000, (b, t), generator=g).float()
    y = torch.randn(b, 7, 24, generator=g)
    mask = torch.ones(b, 7, dtype=torch.long)
    mask[1, 4:] = 0  # the second prompt is padded
    cam = _camera(b, t) if use_camera else None
    pl = torch.randn(b, 12, t, h, w, generator=g) if use_camera else None
    with torch.no_grad(), fp32_reference_softmax():
        want = ref(x, ts[:, None], y[:, None], encoder_attention_mask=mask, camera_conditions=cam, chunk_plucker=pl).sample
        got = ours(x, ts, y, mask, camera=cam, plucker=pl)
    err = _rel(got, want)
    print(f"T={t} {h}x{w} camera={use_camera}: relative L2 error {err:.2e}")
    assert err < 1e-4


def test_camera_branches_change_the_output(pair):
    _, ours = pair
    x, ts = torch.randn(1, 8, 5, 4, 4), torch.full((1, 5), 500.0)
    with torch.no_grad():
        plain = ours(x, ts)
        with_cam = ours(x, ts, camera=_camera(1, 5), plucker=torch.randn(1, 12, 5, 4, 4))
    assert _rel(with_cam, plain) > 1e-2


def test_paper_size_parameter_count_matches_reference():
    with torch.device("meta"):
        ref = diffusers.SanaWMTransformer3DModel()
        ours = SanaWMDiT(dit_config("paper"))
    n_ref = sum(p.numel() for p in ref.parameters())
    n_ours = sum(p.numel() for n, p in ours.named_parameters() if n != "null_prompt")
    print(f"paper size: {n_ours / 1e9:.3f}B parameters")
    assert n_ours == n_ref and 2.5e9 < n_ours < 2.8e9
    assert set(ours.state_dict()) - {"null_prompt"} == set(ref.state_dict())


def test_loading_is_strict(pair, tmp_path):
    ref, _ = pair
    state = ref.state_dict()
    state["blocks.0.extra"] = torch.zeros(1)
    del state["blocks.1.attn.qkv.weight"]
    model = SanaWMDiT(dit_config("tiny", in_channels=8, caption_channels=24, chunk_plucker_channels=12))
    with pytest.raises(ValueError, match=r"missing \[.blocks.1.attn.qkv.weight.\], unexpected \[.blocks.0.extra.\]"):
        model.load_reference_state_dict(state)
    from safetensors.torch import save_file

    good = {k: v.contiguous() for k, v in ref.state_dict().items()}
    save_file(good, str(tmp_path / "official.safetensors"))
    loaded = SanaWMDiT.from_pretrained(tmp_path / "official.safetensors", config=model.config)
    assert torch.equal(loaded.blocks[1].attn.qkv.weight, good["blocks.1.attn.qkv.weight"])
    torch.save({"state_dict": dict(good, pos_embed=torch.zeros(3))}, tmp_path / "official.pth")
    SanaWMDiT.from_pretrained(tmp_path / "official.pth", config=model.config)
    with pytest.raises(FileNotFoundError, match="no config.json"):
        SanaWMDiT.from_pretrained(tmp_path)
    import json

    from model.checkpoint_io import reference_config

    for field, value in (("cam_attn_compress", 2), ("ffn_type", "mlp"), ("mlp_acts", ["gelu", "silu", None]), ("colour", 1)):
        (tmp_path / "config.json").write_text(json.dumps({"num_layers": 4, field: value}))
        with pytest.raises(ValueError, match=field):
            reference_config(tmp_path / "config.json")


def test_camera_conditions_match_prepare_camera():
    poses = cam_utils.action_string_to_c2w("w-12,jl-5,ik-3,d-4")[:21]
    rng = np.random.default_rng(0)
    poses[:, :3, 3] += rng.normal(size=(21, 3)).astype(np.float32)  # off the keyboard grid too
    k = np.tile(np.array([[40.0, 42.0, 31.5, 23.5]], np.float32), (21, 1))
    for stride in [(8, 16, 16), (4, 8, 8), (1, 16, 16)]:
        want = cam_utils.prepare_camera(poses, k, target_size=(48, 64), vae_stride=stride)
        cam, pl = camera_conditions(poses, k, (48, 64), stride)
        torch.testing.assert_close(cam, want["raymap"], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(pl, want["chunk_plucker"], atol=1e-5, rtol=1e-5)


def test_action_strings_match_the_release():
    for s in ["w-30,jl-12,none-8", "i-100,k-3,sd-7,a-2", "WASD-5，l-9"]:
        np.testing.assert_allclose(action_string_to_c2w(s), cam_utils.action_string_to_c2w(s), atol=1e-6)
    for bad, match in [("", "empty"), ("w30", "'<keys>-<frames>'"), ("w-0", "positive integer"), ("wx-3", r"unknown keys \['x'\]")]:
        with pytest.raises(ValueError, match=match):
            action_string_to_c2w(bad)


def test_streamed_camera_conditions_equal_the_whole_video():
    poses = cam_utils.action_string_to_c2w("w-20,jl-10,ik-9")[:37]
    k = np.tile(np.array([[40.0, 42.0, 31.5, 23.5]], np.float32), (37, 1))
    full_cam, full_pl = camera_conditions(poses, k, (48, 64), (4, 16, 16))
    cams, pls = [], []
    for start, end in [(0, 13), (13, 25), (25, 37)]:  # chunk 0: raw 0..12 (latents 0..3); then 12 raw frames
        cam, pl = camera_conditions(poses[start:end], k[start:end], (48, 64), (4, 16, 16),
                                    first_c2w=None if start == 0 else poses[0], start_frame=start)
        cams.append(cam)
        pls.append(pl)
    torch.testing.assert_close(torch.cat(cams), full_cam, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.cat(pls, dim=1), full_pl, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="first_c2w is needed"):
        camera_conditions(poses[4:8], k[4:8], (48, 64), (4, 16, 16), start_frame=4)
