"""Model core: frame-wise GDN properties, configs, initialisation, and input checks."""

import pytest
import torch

from model import SanaWMDiT, dit_config
from model.camera import se3, so3_exp
from model.config import DiTConfig
from model.chunks import chunk_bounds
from model.gdn import frame_gdn

torch.manual_seed(0)


def _gdn_inputs(b=2, h=3, t=7, s=5, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, k, qr, kr = (torch.rand(b, h, t, s, d, generator=g) for _ in range(4))
    k, kr = k / (d * s) ** 0.5, kr / (d * s) ** 0.5
    v = torch.randn(b, h, t, s, d, generator=g)
    beta = torch.rand(b, h, t, s, generator=g)
    gamma = torch.rand(b, h, t, generator=g) * 0.5 + 0.5
    return q, k, v, qr, kr, beta, gamma


def test_gdn_matches_the_reference_chunked_scan():
    ref = pytest.importorskip("diffusers.models.transformers.transformer_sana_wm")
    q, k, v, qr, kr, beta, gamma = _gdn_inputs()
    b, h, t, s, d = q.shape
    flat = lambda x: x.permute(0, 1, 4, 2, 3).reshape(b, h, d, t * s)  # noqa: E731
    num, den = ref.torch_chunk_sana_gdn(flat(q), flat(k), flat(v), flat(qr), flat(kr), beta, gamma, chunk_size=3, return_components=True)
    want = (num / (den + 1e-15)).reshape(b, h, d, t, s).permute(0, 1, 3, 4, 2)
    got, _ = frame_gdn(q, k, v, qr, kr, beta, gamma, mode="causal")
    assert ((got - want).norm() / want.norm()) < 1e-5


def test_causal_gdn_is_causal_and_streams_with_a_carried_state():
    q, k, v, qr, kr, beta, gamma = _gdn_inputs()
    full, final = frame_gdn(q, k, v, qr, kr, beta, gamma, mode="causal")
    first, state = frame_gdn(*(x[:, :, :3] for x in (q, k, v, qr, kr, beta, gamma)), mode="causal")
    rest, final2 = frame_gdn(*(x[:, :, 3:] for x in (q, k, v, qr, kr, beta, gamma)), mode="causal", state=state)
    torch.testing.assert_close(torch.cat([first, rest], dim=2), full, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(final2.kv, final.kv)
    torch.testing.assert_close(final2.z, final.z)
    assert final.kv.shape == (2, 3, 8, 8) and final.z.shape == (2, 3, 8)
    changed = v.clone()
    changed[:, :, 5] += 1.0
    out2, _ = frame_gdn(q, k, changed, qr, kr, beta, gamma, mode="causal")
    assert torch.equal(out2[:, :, :5], full[:, :, :5]) and not torch.equal(out2[:, :, 5], full[:, :, 5])


def test_chunk_causal_gdn_sees_its_own_chunk_only():
    q, k, v, qr, kr, beta, gamma = _gdn_inputs(t=10)
    chunks = chunk_bounds(10, 4, 3)
    assert chunks == [(0, 4), (4, 7), (7, 10)]
    assert chunk_bounds(9, 4, 3) == [(0, 4), (4, 9)] and chunk_bounds(3, 4, 3) == [(0, 3)] and chunk_bounds(5, 4, 3) == [(0, 5)]
    out, _ = frame_gdn(q, k, v, qr, kr, beta, gamma, mode="chunk_causal", chunks=chunks)
    changed = v.clone()
    changed[:, :, 6] += 1.0  # inside the second chunk
    out2, _ = frame_gdn(q, k, changed, qr, kr, beta, gamma, mode="chunk_causal", chunks=chunks)
    assert torch.equal(out2[:, :, :4], out[:, :, :4])
    assert not torch.allclose(out2[:, :, 4], out[:, :, 4])  # earlier frame of the same chunk sees it
    one_chunk, _ = frame_gdn(q, k, v, qr, kr, beta, gamma, mode="chunk_causal", chunks=[(0, 10)])
    bidir, _ = frame_gdn(q, k, v, qr, kr, beta, gamma, mode="bidirectional")
    torch.testing.assert_close(one_chunk, bidir)


def test_gdn_rejects_bad_modes():
    args = _gdn_inputs(t=2)
    with pytest.raises(ValueError, match="mode must be one of"):
        frame_gdn(*args, mode="sideways")
    with pytest.raises(ValueError, match="needs chunks"):
        frame_gdn(*args, mode="chunk_causal")


def test_sizes_and_bad_configs():
    tiny = SanaWMDiT(dit_config("tiny"))
    n = sum(p.numel() for p in tiny.parameters())
    print(f"tiny: {n} parameters")
    assert n < 1_000_000
    for kwargs, match in [
        (dict(hidden_size=66), "hidden_size .* divisible by num_attention_heads"),
        (dict(linear_head_dim=18, hidden_size=72, num_attention_heads=4), "linear_head_dim must be divisible by 4"),
        (dict(patch_size=(2, 1, 1)), "patch_size"),
        (dict(chunk_plucker_channels=13), "multiple of 6"),
    ]:
        with pytest.raises(ValueError, match=match):
            dit_config("tiny", **kwargs)
    with pytest.raises(ValueError, match="size must be one of"):
        dit_config("huge")
    with pytest.raises(ValueError, match="unknown DiTConfig field"):
        dit_config("tiny", hiden_size=3)
    with pytest.raises(ValueError, match="in_channels must be positive"):
        DiTConfig(in_channels=0)


def _camera(t):
    poses = se3(so3_exp(torch.randn(1, t, 3) * 0.3), torch.randn(1, t, 3))
    return torch.cat([poses.reshape(1, t, 16), torch.tensor([4.0, 4.0, 2.0, 2.0]).expand(1, t, 4)], dim=-1)


def test_camera_branches_are_inert_at_init_and_learn_in_one_step():
    torch.manual_seed(1)
    model = SanaWMDiT(dit_config("tiny"))
    torch.nn.init.normal_(model.final_layer.linear.weight, std=0.1)  # see through the zeroed output layer
    x, ts = torch.randn(1, 8, 5, 4, 4), torch.full((1, 5), 300.0)
    cam, pl = _camera(5), torch.randn(1, 24, 5, 4, 4)
    with torch.no_grad():
        torch.testing.assert_close(model(x, ts, camera=cam, plucker=pl), model(x, ts), rtol=0, atol=0)
    target = torch.randn(1, 8, 5, 4, 4) * cam[..., :1, None, None].abs().mean()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss = (model(x, ts, camera=cam, plucker=pl) - target).pow(2).mean()
    loss.backward()
    assert model.blocks[0].attn.out_proj_cam.weight.grad.abs().sum() > 0
    assert model.plucker_embedder.proj.weight.grad.abs().sum() > 0
    opt.step()
    with torch.no_grad():
        diff = (model(x, ts, camera=cam, plucker=pl) - model(x, ts)).abs().max()
    assert diff > 1e-4


def test_forward_shapes_modes_and_input_errors():
    model = SanaWMDiT(dit_config("tiny")).eval()
    x, ts = torch.randn(2, 8, 6, 4, 6), torch.rand(2, 6) * 1000
    with torch.no_grad():
        for mode in ("bidirectional", "chunk_causal"):
            out = model(x, ts, mode=mode)
            assert out.shape == x.shape and out.dtype == torch.float32
    cases = [
        (dict(latents=torch.randn(2, 7, 6, 4, 6)), r"latents must have shape \(B, 8, T, H, W\)"),
        (dict(timesteps=torch.rand(2, 5)), r"timesteps must have shape \(B, T\)"),
        (dict(camera=torch.randn(2, 6, 19)), r"camera must have shape \(B, T, 20\)"),
        (dict(plucker=torch.randn(2, 12, 6, 4, 6)), r"plucker must have shape \(B, 24, T, H, W\)"),
        (dict(prompt_embeds=torch.randn(2, 3, 31)), r"prompt_embeds must have shape \(B, L, 32\)"),
        (dict(mode="causal"), "mode must be one of"),
    ]
    for override, match in cases:
        kwargs = dict(latents=x, timesteps=ts) | override
        with pytest.raises(ValueError, match=match):
            model(**kwargs)


def test_chunk_causal_forward_is_causal_across_chunks():
    torch.manual_seed(2)
    model = SanaWMDiT(dit_config("tiny")).eval()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.05) if p.ndim > 1 else None
    x, ts = torch.randn(1, 8, 7, 4, 4), torch.full((1, 7), 500.0)
    cam = _camera(7)
    with torch.no_grad():
        a = model(x, ts, camera=cam, mode="chunk_causal")
        x2 = x.clone()
        x2[:, :, 5] += 1.0  # second chunk (frames 4..6)
        b = model(x2, ts, camera=cam, mode="chunk_causal")
    assert torch.allclose(a[:, :, :4], b[:, :, :4], atol=1e-6)
    assert not torch.allclose(a[:, :, 4:], b[:, :, 4:], atol=1e-4)


@pytest.mark.parametrize("mode", ["stream", "chunk_causal"])
def test_softmax_attention_runs_in_the_models_precision(mode, monkeypatch):
    """A bf16 model attends in bf16 (a GPU's flash kernel), an fp32 one in fp32, in both branches."""
    import model.attention as attention

    torch.manual_seed(3)
    dit = SanaWMDiT(dit_config("tiny")).eval()
    for p in dit.parameters():
        torch.nn.init.normal_(p, std=0.05) if p.ndim > 1 else None
    seen, functional = [], attention.F

    class Spy:  # the self-attention's torch.nn.functional, recording what its softmax attention gets
        def __getattr__(self, name):
            return getattr(functional, name)

        def scaled_dot_product_attention(self, q, k, v, **kwargs):
            seen.append((q.dtype, k.dtype, v.dtype))
            return functional.scaled_dot_product_attention(q, k, v, **kwargs)

    monkeypatch.setattr(attention, "F", Spy())
    x, ts, cam = torch.randn(1, 8, 4, 4, 4), torch.full((1, 4), 500.0), _camera(4)
    outs = {}
    for dtype in (torch.float32, torch.bfloat16):
        seen.clear()
        model = dit.to(dtype)
        with torch.no_grad():
            if mode == "stream":
                outs[dtype] = model.stream(x.to(dtype), ts, model.empty_stream(), camera=cam.to(dtype))[0].float()
            else:
                outs[dtype] = model(x.to(dtype), ts, camera=cam.to(dtype), mode=mode).float()
        softmax_blocks = sum(dit.config.is_softmax_block(i) for i in range(dit.config.num_layers))
        assert len(seen) == 2 * softmax_blocks and all(d == (dtype,) * 3 for d in seen), seen
    err = (outs[torch.bfloat16] - outs[torch.float32]).norm() / outs[torch.float32].norm()
    assert err < 0.05, err


def test_cross_attention_to_one_prompt_token_skips_the_product_and_gives_the_same_velocity():
    """Without gradients, attention to a one-token prompt (the null prompt of a world without a text
    encoder) is its value, computed without the queries; the same as the product computes under autograd
    and as a one-token prompt with its mask given."""
    torch.manual_seed(4)
    dit = SanaWMDiT(dit_config("tiny")).eval()
    for p in dit.parameters():
        torch.nn.init.normal_(p, std=0.05) if p.ndim > 1 else None
    queries = []
    for block in dit.blocks:
        block.cross_attn.q_linear.register_forward_hook(lambda *_: queries.append(1))
    x, ts, cam = torch.randn(1, 8, 4, 4, 4), torch.full((1, 4), 500.0), _camera(4)
    with torch.no_grad():
        fast = dit(x, ts, camera=cam)
        assert not queries
        masked = dit(x, ts, dit.null_prompt, torch.ones(1, 1), camera=cam)  # a mask given: the product runs
    product = dit(x, ts, camera=cam)  # autograd records: the product runs
    assert len(queries) == 2 * dit.config.num_layers
    torch.testing.assert_close(fast, product.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fast, masked, rtol=1e-5, atol=1e-6)
