"""Hydra configs: the YAML files of this folder and the structured config groups registered by
``register_configs``.

Registration is explicit (nothing is stored in Hydra's ConfigStore on import); call
``register_configs()`` before composing a config that picks ``model=<size>`` or ``configs/train``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore

from model.config import DIT_SIZES, DiTConfig, dit_config
from model.training.config import TrainConfig


@dataclass
class ModelConfig:
    """The ``model`` config group: which DiT size to build."""

    size: str = "small"  # a DIT_SIZES preset
    dit: DiTConfig = field(default_factory=lambda: dit_config("small"))  # its fields, overridable one by one


def register_configs() -> None:
    """Register every DiT preset as ``model=<size>`` and the schema of ``configs/train/train.yaml``
    (``train_schema``) with Hydra's ConfigStore (again on a repeat call)."""
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    for name in DIT_SIZES:
        cs.store(group="model", name=name, node=ModelConfig(size=name, dit=dit_config(name)))
