"""Model files: exact round trip, atomic writes, and clear errors for missing, corrupt or mismatched files."""

import pytest
import torch
from safetensors.torch import save_file

from model import SanaWMDiT, dit_config
from model.checkpoint import load_model, read_header, save_model


def test_round_trip_rebuilds_the_exact_model(tmp_path):
    torch.manual_seed(0)
    model = SanaWMDiT(dit_config("tiny")).eval()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.05)
    path = save_model(tmp_path / "m.safetensors", model, metadata={"step": 7})
    assert not list(tmp_path.glob("*.tmp"))
    assert read_header(path)["metadata"] == {"step": 7}
    loaded = load_model(path).eval()
    assert loaded.config == model.config
    x, ts = torch.randn(1, 8, 3, 4, 4), torch.full((1, 3), 200.0)
    with torch.no_grad():
        assert torch.equal(loaded(x, ts), model(x, ts))


def test_bad_files_fail_with_the_path(tmp_path):
    model = SanaWMDiT(dit_config("tiny"))
    path = save_model(tmp_path / "m.safetensors", model)
    with pytest.raises(FileNotFoundError, match="nope.safetensors: no such model file"):
        load_model(tmp_path / "nope.safetensors")
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="corrupt.safetensors: not a readable safetensors file"):
        load_model(corrupt)
    with pytest.raises(ValueError, match=r"config does not match.*'num_layers': \(4, 2\)"):
        load_model(path, expected_config=dit_config("tiny", num_layers=2))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    header = read_header(path)
    import json

    meta = {"format": "sanawm-model", "version": "1", "kind": "dit", "config": json.dumps(header["config"]), "metadata": "{}"}
    del state["final_layer.linear.bias"]
    state["extra.weight"] = torch.zeros(1)
    save_file(state, str(tmp_path / "keys.safetensors"), metadata=meta)
    with pytest.raises(ValueError, match=r"keys.safetensors does not match SanaWMDiT: missing \['final_layer.linear.bias'\], unexpected \['extra.weight'\]"):
        load_model(tmp_path / "keys.safetensors")
    save_file({"a": torch.zeros(1)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(ValueError, match="not a sanawm-model file"):
        load_model(tmp_path / "foreign.safetensors")


def test_every_model_kind_round_trips(tmp_path):
    from model import CausalVideoVAE, SanaWMRefiner, world_size

    size = world_size("tiny")
    for model in (CausalVideoVAE(size.vae), SanaWMRefiner(size.refiner)):
        path = save_model(tmp_path / f"{type(model).__name__}.safetensors", model)
        loaded = load_model(path)
        assert type(loaded) is type(model) and loaded.config == model.config
        for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
            assert torch.equal(a, b), name
