"""The SanaWM world model: camera geometry, data readers, and the SANA-WM DiT."""

from .camera_conditions import action_string_to_c2w, camera_conditions, parse_action_string
from .config import DIT_SIZES, DiTConfig, dit_config
from .dit import SanaWMDiT

__all__ = [
    "DIT_SIZES",
    "DiTConfig",
    "SanaWMDiT",
    "action_string_to_c2w",
    "camera_conditions",
    "dit_config",
    "parse_action_string",
]
