"""Quantized worlds (model.quantization, ``sanawm quantize``): the NVFP4 reference on hand-made tensors,
quantized tiny worlds saved, loaded by SanaWM-v0 and stepped, which layers are quantized, and the errors."""

import json
import shutil
import sys

import gymnasium as gym
import pytest
import torch

import sanawm_env  # noqa: F401  (registers the environments)
from model.quantization import (FORMATS, QUANTIZERS_FILE, is_quantized_layer, nvfp4_fake_quant, quantize_dit, quantize_world_model,
                                quantized_layers)
from model.quantization.nvfp4 import e2m1_round, e4m3_round
from model.world import fresh_world, load_world, save_world
from sanawm.cli import main as cli_main
from sanawm.quantize import calibration_rollouts, quantize_world

# Bounds on the relative output error of the tiny DiT (random weights) per format; measured 4.4%, 0.5% and 31%.
MAX_RELATIVE_ERROR = {"fp8": 0.1, "int8": 0.02, "nvfp4": 0.5}


# --- the NVFP4 reference, value by value -------------------------------------------------------------

def test_e2m1_rounds_to_the_nearest_grid_value_ties_to_even_and_saturates():
    magnitudes = torch.tensor([0.0, 0.25, 0.26, 0.5, 0.74, 0.75, 1.25, 1.3, 1.75, 2.5, 2.6, 3.4, 3.5, 5.0, 5.1, 6.0, 7.0, 1e9])
    want = torch.tensor([0.0, 0.0, 0.5, 0.5, 0.5, 1.0, 1.0, 1.5, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0, 6.0, 6.0, 6.0, 6.0])
    assert torch.equal(e2m1_round(magnitudes), want)


def test_e4m3_rounds_to_three_mantissa_bits_ties_to_even():
    x = torch.tensor([1.0, 1.0625, 1.07, 1.1875, 448.0, 0.001953125, 0.0009])
    assert torch.equal(e4m3_round(x), torch.tensor([1.0, 1.0, 1.125, 1.25, 448.0, 0.001953125, 0.0]))


# A global amax of 6 * 448 makes the per-tensor scale exactly 1, so a block's scale is e4m3(amax / 6).
UNIT = torch.tensor(6.0 * 448.0)


def test_a_block_with_amax_six_is_rounded_on_the_grid_itself_with_signs():
    block = torch.tensor([6.0, 3.2, -1.3, 0.2, -0.3, 2.6, -5.5, 0.75, 1.0, -2.0, 4.9, 0.0, -0.0, 1.74, -3.6, 0.1])
    want = torch.tensor([6.0, 3.0, -1.5, 0.0, -0.5, 3.0, -6.0, 1.0, 1.0, -2.0, 4.0, 0.0, 0.0, 1.5, -4.0, 0.0])
    assert torch.equal(nvfp4_fake_quant(block, UNIT), want)
    assert torch.equal(nvfp4_fake_quant(-block, UNIT), -want)


def test_the_block_scale_is_rounded_to_e4m3():
    # amax 6.6: scale 1.1 rounds to 1.125 in E4M3, so 6.6 -> e2m1(5.87) * 1.125 = 6.75 and 1.2 -> e2m1(1.07) * 1.125.
    block = torch.zeros(16)
    block[0], block[1] = 6.6, 1.2
    out = nvfp4_fake_quant(block, UNIT)
    assert out[0].item() == 6.75 and out[1].item() == 1.125 and not out[2:].any()
    # amax 6.375: scale 1.0625 is a tie between 1 and 1.125 and rounds to even, 1.
    block[0] = 6.375
    assert nvfp4_fake_quant(block, UNIT)[0].item() == 6.0


def test_the_global_scale_divides_the_block_scale_before_it_is_rounded():
    # Global amax 12 * 448: per-tensor scale 2; a block amax of 6.6 gives e4m3(0.55) = 0.5625, times 2 = 1.125.
    block = torch.zeros(16)
    block[0] = 6.6
    assert nvfp4_fake_quant(block, torch.tensor(12.0 * 448.0))[0].item() == 6.75
    # Block scales saturate at 448 per-tensor scales: a block beyond the global amax clips to it.
    block[0] = 1e6
    assert nvfp4_fake_quant(block, UNIT)[0].item() == 6.0 * 448.0


def test_zero_and_vanishing_blocks_stay_zero_and_blocks_are_sixteen_wide():
    x = torch.zeros(2, 36)
    x[0, 16:32] = 1e-6  # its scale rounds to 0 in E4M3: quantized with scale 1, to zeros
    x[1, :16] = 6.0  # one block per 16 columns: its neighbour [16:32] keeps its own scale
    x[1, 16:32] = 0.3
    x[1, 32:] = torch.tensor([0.6, -0.2, 0.05, 0.0])  # a last block of 4, padded with zeros
    out = nvfp4_fake_quant(x, UNIT)
    assert not out[0].any()
    assert torch.equal(out[1, :16], torch.full((16,), 6.0))
    assert torch.allclose(out[1, 16:32], torch.full((16,), 0.3), rtol=0.05)
    assert torch.equal(out[1, 32:], nvfp4_fake_quant(torch.tensor([0.6, -0.2, 0.05, 0.0]), UNIT))
    assert nvfp4_fake_quant(x.bfloat16(), UNIT).dtype == torch.bfloat16


@pytest.mark.gpu
def test_the_reference_matches_modelopts_nvfp4_on_a_linear_layer():
    import modelopt.torch.quantization as mtq

    torch.manual_seed(0)
    layer = torch.nn.Linear(80, 48).cuda()
    x = torch.randn(64, 80, device="cuda") * 3
    mtq.quantize(layer, mtq.NVFP4_DEFAULT_CFG, lambda m: m(x))
    w_amax, x_amax = layer.weight_quantizer.amax, layer.input_quantizer.amax
    for tensor, amax, quantizer in ((layer.weight, w_amax, layer.weight_quantizer), (x * 1.5, x_amax, layer.input_quantizer)):
        native = quantizer(tensor.detach())
        for device in ("cuda", "cpu"):
            ours = nvfp4_fake_quant(tensor.detach().to(device), amax.to(device)).cuda()
            exact = (ours == native).float().mean().item()
            print(f"reference on {device}: {exact:.5f} of the values equal to modelopt's")
            assert exact > 0.999  # the kernel's fast fp32 division may round a value at a grid midpoint the other way
    want = torch.nn.functional.linear(nvfp4_fake_quant(x, x_amax), nvfp4_fake_quant(layer.weight, w_amax), layer.bias)
    got = layer(x)
    rel = ((got - want).norm() / want.norm()).item()
    print(f"layer output: relative error {rel:.2e} against the reference")
    assert rel < 1e-3


# --- quantized tiny worlds -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def source_world(tmp_path_factory):
    """A tiny world whose zero-initialised output layer is randomised, so the DiT's output shows the
    quantization (an untrained DiT predicts exactly zero)."""
    world = fresh_world("tiny", 32, 32, seed=0)
    torch.nn.init.normal_(world.dit.final_layer.linear.weight, std=0.1, generator=torch.Generator().manual_seed(0))
    return save_world(tmp_path_factory.mktemp("worlds") / "fp32", world)


@pytest.fixture(scope="module", params=sorted(FORMATS))
def quantized_world(request, source_world):
    """The source world quantized through the command line, with 2 calibration steps."""
    out = source_world.parent / request.param
    assert cli_main(["quantize", "--world", str(source_world), "--format", request.param, "--calib-steps", "2", "--out", str(out)]) == 0
    return request.param, out


def _dit_inputs(dit):
    g = torch.Generator().manual_seed(1)
    t = 5
    camera = torch.cat([torch.eye(4).flatten().expand(1, t, 16), torch.tensor([1.0, 1.0, 0.5, 0.5]).expand(1, t, 4)], dim=-1)
    return dict(latents=torch.randn(1, dit.config.in_channels, t, 4, 4, generator=g), timesteps=torch.full((1, t), 500.0), camera=camera,
                plucker=torch.randn(1, dit.config.chunk_plucker_channels, t, 4, 4, generator=g))


def test_a_quantized_world_loads_in_the_env_and_steps(quantized_world):
    fmt, path = quantized_world
    assert json.loads((path / "world.json").read_text())["quantization"] == fmt
    env = gym.make("SanaWM-v0", checkpoint=str(path), size="tiny", height=32, width=32)
    obs, _ = env.reset(seed=0)
    obs, *_ = env.step(env.action_space.sample())
    assert obs.shape == (32, 32, 3) and obs.dtype == "uint8"
    assert env.unwrapped.worlds.world.info.quantization == fmt


def test_exactly_the_block_linear_layers_are_quantized(quantized_world, source_world):
    fmt, path = quantized_world
    dit, plain = load_world(path).dit, load_world(source_world).dit
    layers = quantized_layers(dit)
    want = {name for name, module in plain.named_modules() if is_quantized_layer(name, module)}
    assert set(layers) == want and set(layers.values()) == {fmt}
    assert {name.split(".")[2] for name in want if name.startswith("blocks.")} == {"attn", "cross_attn"}
    assert not any(name.startswith(("t_embedder", "t_block", "x_embedder", "y_embedder", "final_layer")) or "cam" in name
                   or "plucker" in name for name in layers)
    # Fake quantization keeps the weights as they were; the embedders and the final layer compute as before.
    weights = {k: v for k, v in dit.state_dict().items() if not k.endswith("_amax")}
    assert weights.keys() == plain.state_dict().keys()
    assert all(torch.equal(v, plain.state_dict()[k]) for k, v in weights.items())
    with torch.no_grad():
        t = torch.tensor([250.0])
        assert torch.equal(dit.t_embedder(t), plain.t_embedder(t))
        h = torch.randn(3, dit.config.hidden_size)
        assert torch.equal(dit.final_layer.linear(h), plain.final_layer.linear(h))


def test_quantized_outputs_differ_from_full_precision_by_a_bounded_nonzero_amount(quantized_world, source_world):
    fmt, path = quantized_world
    dit, plain = load_world(path).dit, load_world(source_world).dit
    with torch.no_grad():
        inputs = _dit_inputs(dit)
        want, got = plain(**inputs), dit(**inputs)
    rel = ((got - want).norm() / want.norm()).item()
    print(f"{fmt}: the tiny DiT's output is {rel:.3%} off full precision")
    assert 1e-4 < rel < MAX_RELATIVE_ERROR[fmt]


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_saving_and_loading_keeps_the_quantized_dit_exactly(fmt, source_world, tmp_path):
    world = load_world(source_world)
    quantize_world_model(world, fmt, lambda _: calibration_rollouts(world, 1))
    loaded = load_world(save_world(tmp_path / "w", world)).dit
    with torch.no_grad():
        inputs = _dit_inputs(world.dit)
        assert torch.equal(world.dit(**inputs), loaded(**inputs))


# --- errors ----------------------------------------------------------------------------------------------

def test_bad_arguments_are_refused_with_the_accepted_range(source_world, tmp_path):
    with pytest.raises(ValueError, match=r"format must be one of \['fp8', 'int8', 'nvfp4'\], got 'fp4'"):
        quantize_world(source_world, "fp4", 2, tmp_path / "q")
    with pytest.raises(ValueError, match="calib_steps must be a positive number of env steps, got 0"):
        quantize_world(source_world, "fp8", 0, tmp_path / "q")
    with pytest.raises(FileNotFoundError, match="not a world folder"):
        quantize_world(tmp_path / "missing", "fp8", 2, tmp_path / "q")
    with pytest.raises(ValueError, match="--out must differ from --world"):
        quantize_world(source_world, "fp8", 2, source_world)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="exists and is not a world folder"):
        quantize_world(source_world, "fp8", 2, tmp_path / "notes")


def test_the_command_line_reports_bad_input_in_one_line(source_world, tmp_path, capsys):
    assert cli_main(["quantize", "--world", str(tmp_path / "missing"), "--format", "int8", "--out", str(tmp_path / "q")]) == 2
    assert "sanawm quantize: error:" in capsys.readouterr().err
    for bad in (["--format", "int4"], ["--format", "fp8", "--calib-steps", "0"]):
        with pytest.raises(SystemExit) as e:
            cli_main(["quantize", "--world", str(source_world), "--out", str(tmp_path / "q"), *bad])
        assert e.value.code == 2


def test_a_quantized_world_is_not_quantized_again(quantized_world, tmp_path):
    fmt, path = quantized_world
    with pytest.raises(ValueError, match=f"is already quantized \\({fmt}\\)"):
        quantize_world(path, "fp8", 2, tmp_path / "again")


def test_damaged_quantized_worlds_fail_naming_the_file_and_the_fault(quantized_world, tmp_path):
    fmt, path = quantized_world
    folder = shutil.copytree(path, tmp_path / "w")
    quantizers = folder / QUANTIZERS_FILE
    info = json.loads((folder / "world.json").read_text())
    (folder / "world.json").write_text(json.dumps({**info, "quantization": "int4"}))
    with pytest.raises(ValueError, match=r"world.json: field 'quantization' must be null or one of \['fp8', 'int8', 'nvfp4'\], got 'int4'"):
        load_world(folder)
    other = "int8" if fmt != "int8" else "fp8"
    (folder / "world.json").write_text(json.dumps({**info, "quantization": other}))
    with pytest.raises(ValueError, match=f"{QUANTIZERS_FILE}: holds {fmt} quantizers, but world.json says the world is quantized to {other}"):
        load_world(folder)
    (folder / "world.json").write_text(json.dumps(info))
    quantizers.write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match=f"{QUANTIZERS_FILE}: not a readable modelopt state"):
        load_world(folder)
    quantizers.unlink()
    with pytest.raises(FileNotFoundError, match=f"{QUANTIZERS_FILE}: missing; a world quantized to {fmt} keeps its quantizers there"):
        load_world(folder)
    # A full-precision world.json over a quantized DiT: its quantizers' ranges are weights the DiT lacks.
    (folder / "world.json").write_text(json.dumps({**info, "quantization": None}))
    with pytest.raises(ValueError, match=r"dit.safetensors does not match SanaWMDiT: .*unexpected \[.*_quantizer._amax"):
        load_world(folder)


def test_a_quantized_world_without_modelopt_says_what_it_needs(quantized_world, monkeypatch):
    _, path = quantized_world
    monkeypatch.setitem(sys.modules, "modelopt.torch.opt", None)
    with pytest.raises(ImportError, match=r"quantized worlds need nvidia-modelopt \(pip install nvidia-modelopt\)"):
        load_world(path)


def test_a_quantized_dit_is_saved_only_under_its_format(source_world, tmp_path):
    world = load_world(source_world)
    quantize_dit(world.dit, "int8", lambda _: calibration_rollouts(world, 1))
    with pytest.raises(ValueError, match="info.quantization is None, but its DiT is quantized to int8"):
        save_world(tmp_path / "w", world)
    assert not (tmp_path / "w").exists()


# --- layers that multiply in their format (model.quantization.low_precision) ------------------------------

def _fake_quantized_linear(fmt, in_features=48, out_features=40, scale=3.0, device="cpu"):
    import modelopt.torch.quantization as mtq

    from model.quantization.formats import quant_config

    torch.manual_seed(0)
    layer = torch.nn.Sequential(torch.nn.Linear(in_features, out_features)).to(device)
    x = torch.randn(64, in_features, device=device) * scale
    mtq.quantize(layer, quant_config(fmt), lambda m: m(x))
    return layer, x


@pytest.mark.parametrize("fmt", ["fp8", "int8"])
def test_low_precision_layer_rounds_as_modelopt_and_multiplies_in_the_format(fmt, monkeypatch):
    from model.quantization.low_precision import LowPrecisionLinear, _dequantize, _round, low_precision_linears

    layer, x = _fake_quantized_linear(fmt)
    x = x * 1.3  # beyond the calibrated range somewhere: the clamp matters
    with torch.no_grad():
        want = layer(x)
        q = layer[0]
        fake_w, fake_x = q.weight_quantizer(q.weight), q.input_quantizer(x)
        assert low_precision_linears(layer) == 1 and isinstance(layer[0], LowPrecisionLinear)
        ours = layer[0]
        # The stored weight and the rounded input are modelopt's grid values, value for value (its
        # dequantized values, put back on the grid, are ours; dequantized, ours are its up to the last bit).
        x_mult, x_step, w_mult, w_step = ours._scales()
        for q_ours, fake, mult in ((ours.weight_q, fake_w, w_mult[:, None]), (_round(x, x_mult, fmt), fake_x, x_mult)):
            assert torch.equal(_round(fake, mult, fmt).float(), q_ours.float())
            assert torch.allclose(_dequantize(q_ours, mult, fmt), fake, rtol=1e-6, atol=0)
        assert torch.equal(torch.nn.functional.linear(fake_x, fake_w, q.bias), want)
        calls = []
        for name in ("_scaled_mm", "_int_mm"):  # which product ran
            real = getattr(torch, name)
            monkeypatch.setattr(torch, name, lambda *a, _real=real, _name=name, **kw: calls.append(_name) or _real(*a, **kw))
        got = layer(x)
    assert calls == (["_int_mm"] if fmt == "int8" else [])  # FP8 on the CPU: the dequantized product
    rel = ((got - want).norm() / want.norm()).item()
    print(f"{fmt}: relative difference to modelopt's fake quantization {rel:.1e}")
    assert rel < 1e-5


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fp8_product_in_the_format_equals_the_dequantized_one(dtype, monkeypatch):
    """The FP8 layer's GPU branch (torch._scaled_mm, bias fused for a half-precision model) run on the
    CPU's _scaled_mm at a small size: modelopt's outputs."""
    from model.quantization.low_precision import LowPrecisionLinear, low_precision_linears

    layer, x = _fake_quantized_linear("fp8")
    with torch.no_grad():
        want = layer.to(dtype)(x.to(dtype)).float()
        low_precision_linears(layer)
        monkeypatch.setattr(LowPrecisionLinear, "_kernel", lambda self, x: True)
        got = layer(x.to(dtype))
    assert got.dtype == dtype
    assert ((got.float() - want).norm() / want.norm()).item() < (1e-5 if dtype == torch.float32 else 1e-2)


def test_low_precision_layer_names_the_formats_it_takes():
    from model.quantization.low_precision import LowPrecisionLinear

    with pytest.raises(ValueError, match="fmt must be 'fp8' or 'int8', got 'nvfp4'"):
        LowPrecisionLinear(torch.zeros(4, 4), torch.ones(1), torch.ones(1), None, "nvfp4")


def test_low_precision_layers_keep_their_bits_through_a_dtype_change():
    from model.quantization.low_precision import low_precision_linears

    for fmt in ("fp8", "int8"):
        layer, x = _fake_quantized_linear(fmt)
        low_precision_linears(layer)
        before = {k: v.clone() for k, v in layer.state_dict().items()}
        layer.to(torch.bfloat16)
        after = layer.state_dict()
        assert all(torch.equal(after[k], v) for k, v in before.items() if k != "0.bias") and after["0.bias"].dtype == torch.bfloat16
        with torch.no_grad():
            y = layer(x.bfloat16())
            want = layer.float()(x)
        assert y.dtype == torch.bfloat16 and ((y.float() - want).norm() / want.norm()).item() < 0.02


def test_a_quantized_worlds_rollout_multiplies_in_the_format(quantized_world):
    """The env's rollout swaps FP8 and INT8 layers for ones that multiply in the format (NVFP4 stays
    fake quantized), and the swapped DiT computes what modelopt's does."""
    from model.quantization.low_precision import LowPrecisionLinear, low_precision_linears

    fmt, path = quantized_world
    dit = load_world(path).dit
    # Never called in a rollout, so never calibrated: the GDN gates of softmax blocks, and the cross-attention's
    # queries when the prompt is the one-token null prompt (attention to one key needs no query).
    unused = {f"blocks.{i}.attn.{p}" for i in range(len(dit.blocks)) if dit.config.is_softmax_block(i) for p in ("beta_proj", "gate_proj")}
    if dit.config.null_prompt_length == 1:
        unused |= {f"blocks.{i}.cross_attn.q_linear" for i in range(len(dit.blocks))}
    quantized = len(set(quantized_layers(dit)) - unused)
    env = gym.make("SanaWM-v0", checkpoint=str(path), size="tiny", height=32, width=32)
    env.reset(seed=0)
    env.step(env.action_space.sample())
    swapped = sum(isinstance(m, LowPrecisionLinear) for m in env.unwrapped.worlds.world.dit.modules())
    assert swapped == (0 if fmt == "nvfp4" else quantized) and quantized > 0
    fake, real = load_world(path).dit, load_world(path).dit
    low_precision_linears(real)
    with torch.no_grad():
        inputs = _dit_inputs(fake)
        want, got = fake(**inputs), real(**inputs)
    rel = ((got - want).norm() / want.norm()).item()
    print(f"{fmt}: multiplying in the format moves the tiny DiT's output by {rel:.1e} of modelopt's")
    assert rel < 1e-4


@pytest.mark.gpu
@pytest.mark.parametrize("fmt", ["fp8", "int8"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_low_precision_layers_run_the_formats_product(fmt, dtype, monkeypatch):
    from model.quantization.low_precision import low_precision_linears

    layer, x = _fake_quantized_linear(fmt, in_features=256, out_features=384, device="cuda")
    layer, x = layer.to(dtype), torch.cat([x] * 4).to(dtype)  # 256 rows: above _int_mm's 16
    with torch.no_grad():
        want = layer(x).float()
        low_precision_linears(layer)
        calls = []
        for name in ("_scaled_mm", "_int_mm"):
            real = getattr(torch, name)
            monkeypatch.setattr(torch, name, lambda *a, _real=real, _name=name, **kw: calls.append(_name) or _real(*a, **kw))
        got = layer(x).float()
    assert calls == ["_scaled_mm" if fmt == "fp8" else "_int_mm"]
    assert ((got - want).norm() / want.norm()).item() < (1e-5 if dtype == torch.float32 else 1e-2)
