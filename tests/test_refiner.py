"""SanaWMRefiner against the public stage-2 refiner (diffusers 0.42.1): plain and cached forwards."""

import pytest
import torch

from model.refiner import RefinerConfig, SanaWMRefiner, refiner_config_from_reference
from model.sizes import world_size

diffusers_refiner = pytest.importorskip("diffusers.models.transformers.transformer_sana_wm_refiner")

REF_KW = dict(in_channels=8, out_channels=8, num_attention_heads=2, attention_head_dim=16, cross_attention_dim=32,
              caption_channels=24, num_layers=2, vae_scale_factors=(4, 8, 8), audio_in_channels=4, audio_out_channels=4,
              audio_num_attention_heads=2, audio_attention_head_dim=8, audio_cross_attention_dim=16)


def _pack(x):
    b, c, t, h, w = x.shape
    return x.permute(0, 2, 3, 4, 1).reshape(b, t * h * w, c)


def _unpack(tokens, t, h, w):
    b = tokens.shape[0]
    return tokens.reshape(b, t, h, w, -1).permute(0, 4, 1, 2, 3)


@pytest.fixture(scope="module", params=["interleaved", "split"])
def pair(request):
    torch.manual_seed(0)
    ref = diffusers_refiner.SanaWMLTX2RefinerTransformer3DModel(**REF_KW, rope_type=request.param).eval()
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    cfg = refiner_config_from_reference(dict(ref.config))
    ours = SanaWMRefiner(cfg).eval()
    ours.load_reference_state_dict(ref.state_dict())
    return ref, ours


def _rel(a, b):
    return ((a - b).norm() / b.norm()).item()


def test_plain_forward_matches(pair):
    ref, ours = pair
    g = torch.Generator().manual_seed(1)
    b, t, h, w = 2, 3, 4, 5
    x = torch.randn(b, 8, t, h, w, generator=g)
    y = torch.randn(b, 6, 24, generator=g)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1]])
    sigma = torch.tensor([[0.9, 0.9, 0.9], [0.4, 0.4, 0.4]])
    frames = torch.arange(5, 5 + t)
    with torch.no_grad():
        rope = ref.build_rotary_emb_for_absolute_positions(b, frames.tolist(), h, w, torch.device("cpu"), fps=16.0)
        ts = (sigma * 1000).repeat_interleave(h * w, dim=1)
        want = _unpack(ref(_pack(x), y, ts, rope, encoder_attention_mask=mask, return_dict=False)[0], t, h, w)
        got = ours(x, sigma, frames, 16.0, y, mask)
    err = _rel(got, want)
    print(f"refiner plain forward ({ref.config.rope_type}): relative L2 error {err:.2e}")
    assert err < 1e-4


def test_cached_window_matches(pair):
    ref, ours = pair
    g = torch.Generator().manual_seed(2)
    b, h, w, fps = 1, 3, 4, 12.0
    z = torch.randn(b, 8, 7, h, w, generator=g)
    y = torch.randn(b, 5, 24, generator=g)
    dev = torch.device("cpu")

    def rope(frames):
        return ref.build_rotary_emb_for_absolute_positions(b, list(frames), h, w, dev, fps=fps)

    def run(x, frames, sigma, cache, mode):
        ts = torch.full((b, x.shape[2] * h * w), sigma * 1000.0)
        return ref(_pack(x), y, ts, rope(frames), kv_cache=cache, kv_cache_mode=mode, return_dict=False)[0]

    with torch.no_grad():
        cache = diffusers_refiner.SanaWMRefinerKVCache(len(ref.transformer_blocks))
        run(z[:, :, :1], [0], 0.0, cache, "capture_pre_rope")
        for i in range(len(cache)):
            cache.get(i).store_sink(*cache.get(i).get_captured_pre_rope())
        ours_cache = ours.capture_sink(z[:, :, :1], fps, y)
        history = 0
        for start in (1, 4):  # two blocks of 3 frames, window of 5 frames: the second block sees 1 + 3
            frames = list(range(start, start + 3))
            offset = start - history - 1
            cache.sink_pe = rope(range(offset, offset + 1))
            x = z[:, :, start : start + 3]
            want = _unpack(run(x, frames, 0.7, cache, "inject"), 3, h, w)
            got = ours(x, torch.full((b, 3), 0.7), torch.tensor(frames), fps, y, cache=ours_cache)
            err = _rel(got, want)
            print(f"refiner cached block at {start} ({ref.config.rope_type}): relative L2 error {err:.2e}")
            assert err < 1e-4
            run(x, frames, 0.0, cache, "inject_and_capture_post_rope")
            for i in range(len(cache)):
                layer = cache.get(i)
                k, v = layer.get_captured_post_rope()
                old = layer.get_history()
                k, v = (k, v) if old is None else (torch.cat([old[0], k], 1), torch.cat([old[1], v], 1))
                keep = min(history + 3, 4) * h * w
                layer.store_history(k[:, -keep:], v[:, -keep:])
            history = min(history + 3, 4)
            ours_cache = ours.commit(x, torch.tensor(frames), ours_cache, max_frames=5, fps=fps, prompt_embeds=y)
            assert ours_cache.history_frames == history


def test_refine_keeps_the_sink_and_is_seeded():
    torch.manual_seed(0)
    model = SanaWMRefiner(world_size("tiny").refiner).eval()
    z = torch.randn(1, 8, 7, 2, 3)
    a = model.refine(z, generator=torch.Generator().manual_seed(0))
    b = model.refine(z, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and torch.equal(a[:, :, :1], z[:, :, :1]) and a.shape == z.shape
    with pytest.raises(ValueError, match="need more than sink_frames"):
        model.refine(z[:, :, :1])


def test_paper_refiner_size_and_bad_configs():
    with torch.device("meta"):
        ours = SanaWMRefiner(RefinerConfig())  # the defaults are the release's size
    n = sum(p.numel() for name, p in ours.named_parameters() if name != "null_prompt")
    print(f"paper refiner (video stream): {n / 1e9:.2f}B parameters")
    assert 10e9 < n < 16e9
    with pytest.raises(ValueError, match="rope_type"):
        RefinerConfig(rope_type="spiral")
    with pytest.raises(ValueError, match="gated_attn=True is not supported"):
        refiner_config_from_reference({"gated_attn": True})
