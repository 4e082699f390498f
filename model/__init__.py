"""The SanaWM world model: camera geometry, data readers, the SANA-WM DiT, refiner, VAEs, flow
matching and model files."""

from .camera_conditions import action_string_to_c2w, camera_conditions, parse_action_string
from .checkpoint import load_model, save_model
from .config import DIT_SIZES, DiTConfig, dit_config
from .dit import SanaWMDiT, StreamState
from .flow import FlowMatching, euler_sample
from .refiner import REFINER_SIZES, RefinerConfig, SanaWMRefiner
from .sizes import WORLD_SIZES, WorldSize, world_size
from .vae import VAE_SIZES, CausalVideoVAE, LTX2VideoVAE, VAEConfig

__all__ = [
    "DIT_SIZES",
    "REFINER_SIZES",
    "VAE_SIZES",
    "WORLD_SIZES",
    "CausalVideoVAE",
    "DiTConfig",
    "FlowMatching",
    "LTX2VideoVAE",
    "RefinerConfig",
    "SanaWMDiT",
    "SanaWMRefiner",
    "StreamState",
    "VAEConfig",
    "WorldSize",
    "action_string_to_c2w",
    "camera_conditions",
    "dit_config",
    "euler_sample",
    "load_model",
    "parse_action_string",
    "save_model",
    "world_size",
]
