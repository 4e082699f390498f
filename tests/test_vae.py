"""Video autoencoders: our causal VAE (streaming = full, causality, bad input) and the LTX-2 adapter."""

import pytest
import torch

from model.sizes import world_size
from model.vae import CausalVideoVAE, LTX2VideoVAE, VAEConfig


@pytest.fixture(scope="module")
def vae():
    torch.manual_seed(0)
    model = CausalVideoVAE(world_size("tiny").vae).eval()
    with torch.no_grad():  # wake the zero-initialised temporal convs so the test sees them
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


def test_shapes_follow_the_time_layout(vae):
    video = torch.rand(2, 3, 13, 32, 48) * 2 - 1
    with torch.no_grad():
        z = vae.encode(video)
        out, _ = vae.decode(z)
    assert z.shape == (2, 8, 4, 4, 6)  # (13 - 1) / 4 + 1 latent frames, 8x smaller
    assert out.shape == video.shape


def test_streaming_decode_equals_full_decode(vae):
    z = torch.randn(1, 8, 8, 4, 4)
    with torch.no_grad():
        full, _ = vae.decode(z)
        parts, cache = [], None
        for start, end in [(0, 1), (1, 4), (4, 7), (7, 8)]:
            frames, cache = vae.decode(z[:, :, start:end], cache)
            parts.append(frames)
    streamed = torch.cat(parts, dim=2)
    assert [p.shape[2] for p in parts] == [1, 12, 12, 4]
    err = ((streamed - full).norm() / full.norm()).item()
    print(f"streaming decode relative error {err:.2e}")
    assert err < 1e-5


def test_streaming_encode_equals_full_and_is_causal(vae):
    video = torch.rand(1, 3, 17, 16, 16) * 2 - 1
    with torch.no_grad():
        mean, _, _ = vae.moments(video)
        m1, _, cache = vae.moments(video[:, :, :9])
        m2, _, _ = vae.moments(video[:, :, 9:], cache)
        torch.testing.assert_close(torch.cat([m1, m2], dim=2), mean, rtol=1e-5, atol=1e-5)
        later = video.clone()
        later[:, :, 12:] = 0.0
        changed, _, _ = vae.moments(later)
    assert torch.equal(changed[:, :, :3], mean[:, :, :3]) and not torch.equal(changed[:, :, 3:], mean[:, :, 3:])


def test_sampling_and_normalisation(vae):
    video = torch.rand(1, 3, 5, 16, 16) * 2 - 1
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        a, b = vae.encode(video, sample=True, generator=g), vae.encode(video)
    assert not torch.equal(a, b)
    vae.latent_std.fill_(2.0)
    try:
        with torch.no_grad():
            torch.testing.assert_close(vae.encode(video), b / 2)
    finally:
        vae.latent_std.fill_(1.0)


def test_bad_input_and_configs(vae):
    with pytest.raises(ValueError, match="1 \\+ a multiple of temporal_stride=4"):
        vae.encode(torch.zeros(1, 3, 6, 16, 16))
    with pytest.raises(ValueError, match="divisible by spatial_stride=8"):
        vae.encode(torch.zeros(1, 3, 5, 12, 16))
    with pytest.raises(ValueError, match=r"video must have shape \(B, 3, F, H, W\)"):
        vae.encode(torch.zeros(1, 4, 5, 16, 16))
    with pytest.raises(ValueError, match=r"latents must have shape \(B, 8, T, h, w\)"):
        vae.decode(torch.zeros(1, 3, 2, 2, 2))
    with pytest.raises(ValueError, match="spatial_stride must be a power of two"):
        VAEConfig(spatial_stride=12)
    with pytest.raises(ValueError, match="latent_channels must be positive"):
        VAEConfig(latent_channels=0)


def test_temporal_stride_one_and_spatial_32():
    model = CausalVideoVAE(VAEConfig(latent_channels=4, temporal_stride=1, spatial_stride=32, base_channels=4, max_channels=8)).eval()
    with torch.no_grad():
        z = model.encode(torch.zeros(1, 3, 3, 64, 32))
        out, _ = model.decode(z)
    assert z.shape == (1, 4, 3, 2, 1) and out.shape == (1, 3, 3, 64, 32)


def test_ltx2_adapter(tmp_path):
    diffusers = pytest.importorskip("diffusers")
    torch.manual_seed(0)
    ref = diffusers.AutoencoderKLLTX2Video(
        block_out_channels=(8, 16, 32, 64), decoder_block_out_channels=(8, 16, 32), layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1), latent_channels=4, spatial_compression_ratio=32, temporal_compression_ratio=8,
    ).eval()
    with torch.no_grad():
        ref.latents_mean.copy_(torch.randn(4))
        ref.latents_std.copy_(torch.rand(4) + 0.5)
    ref.save_pretrained(tmp_path)
    vae = LTX2VideoVAE.from_pretrained(str(tmp_path), context=8).eval()
    assert (vae.temporal_stride, vae.spatial_stride, vae.latent_channels) == (8, 32, 4)
    video = torch.rand(1, 3, 17, 64, 64) * 2 - 1
    with torch.no_grad():
        z = vae.encode(video)
        raw = ref.encode(video).latent_dist.mode()
        torch.testing.assert_close(z, (raw - ref.latents_mean.view(1, -1, 1, 1, 1)) / ref.latents_std.view(1, -1, 1, 1, 1))
        full, _ = vae.decode(z)
        first, cache = vae.decode(z[:, :, :1])
        rest, _ = vae.decode(z[:, :, 1:], cache)
    assert full.shape == video.shape and first.shape[2] == 1 and rest.shape[2] == 16
    torch.testing.assert_close(torch.cat([first, rest], dim=2), full, rtol=1e-4, atol=1e-4)
