"""model.sizes: world sizes name their three presets together and hand out copies; Hydra's ``model``
group is registered only on request (configs.register_configs)."""

import subprocess
import sys

import pytest

from model.config import DIT_SIZES, dit_config
from model.refiner import REFINER_SIZES
from model.sizes import WORLD_SIZES, world_size
from model.vae import VAE_SIZES
from model.world import fresh_world


@pytest.mark.parametrize("name", sorted(WORLD_SIZES))
def test_world_size_is_a_copy_of_the_presets(name):
    size = world_size(name)
    assert (size.dit, size.vae, size.refiner) == (DIT_SIZES[name], VAE_SIZES[name], REFINER_SIZES[name])
    assert size.dit is not DIT_SIZES[name] and size.vae is not VAE_SIZES[name] and size.refiner is not REFINER_SIZES[name]
    size.dit.num_layers += 1
    size.vae.latent_channels += 1
    size.refiner.num_layers += 1
    assert world_size(name) == WORLD_SIZES[name] and world_size(name).dit.num_layers == DIT_SIZES[name].num_layers


@pytest.mark.parametrize("name", sorted(WORLD_SIZES))
def test_a_world_sizes_models_fit_together(name):
    size = world_size(name)
    assert size.dit.in_channels == size.vae.latent_channels == size.refiner.in_channels
    assert size.dit.temporal_stride == size.vae.temporal_stride
    assert size.refiner.vae_scale_factors == (size.vae.temporal_stride, size.vae.spatial_stride, size.vae.spatial_stride)


def test_unknown_world_size_lists_the_names():
    with pytest.raises(ValueError, match=r"size must be one of \['small', 'tiny'\], got 'paper'"):
        world_size("paper")


def test_built_modules_never_share_a_preset():
    config = dit_config("tiny", num_layers=2)
    assert config.num_layers == 2 and DIT_SIZES["tiny"].num_layers == 4 and dit_config("tiny") is not DIT_SIZES["tiny"]
    world = fresh_world("tiny", 32, 32)
    assert world.dit.config == DIT_SIZES["tiny"] and world.dit.config is not DIT_SIZES["tiny"]
    assert world.vae.config is not VAE_SIZES["tiny"] and world.refiner.config is not REFINER_SIZES["tiny"]


def test_hydra_model_group_is_registered_explicitly():
    script = (
        "from hydra.core.config_store import ConfigStore\n"
        "import model.world, model.config\n"
        "assert 'model' not in ConfigStore.instance().repo, 'importing model registers nothing'\n"
        "from configs import register_configs\n"
        "register_configs()\n"
        "node = ConfigStore.instance().load('model/tiny.yaml').node\n"
        "assert node.size == 'tiny' and node.dit.num_layers == 4, node\n"
        "print(sorted(ConfigStore.instance().list('model')))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["['base.yaml',", "'paper.yaml',", "'small.yaml',", "'tiny.yaml']"]
