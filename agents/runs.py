"""What the agent scripts share: Hydra composition against a schema, run names and folders."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

ENVS = ("SanaWM-v0", "SanaWM-GT-v0")


def compose(config_name: str, schema: type[T], overrides: list[str]) -> T:
    """``configs/agents/<config_name>.yaml`` with Hydra ``overrides``, checked against ``schema`` (a
    dataclass): unknown keys and wrong types fail with Hydra's message."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    ConfigStore.instance().store(name=f"{config_name}_schema", node=schema)
    with initialize_config_module(config_module="configs.agents", version_base=None):
        cfg = hydra_compose(config_name=config_name, overrides=overrides)
    return schema(**OmegaConf.to_container(cfg, resolve=True))


def check_common(env: str, seed: int, positive: dict[str, int]) -> None:
    """Checks every agent config shares: a SanaWM env id, a seed >= 0, counts > 0."""
    if env not in ENVS:
        raise ValueError(f"env must be one of {list(ENVS)}, got {env!r}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    for name, value in positive.items():
        if value <= 0:
            raise ValueError(f"{name} must be positive, got {value}")


def run_folder(out: str, env: str, task: str, exp_name: str, seed: int, config: Any) -> Path:
    """``out/<env>__<task>__<exp_name>__<seed>__<unix time>`` (CleanRL's run names; ``-1``, ``-2``, ...
    after it for runs started within the same second), created with the resolved config in ``config.json``."""
    name = f"{env}__{task}__{exp_name}__{seed}__{int(time.time())}"
    Path(out).mkdir(parents=True, exist_ok=True)
    for k in range(1000):
        folder = Path(out) / (name if k == 0 else f"{name}-{k}")
        try:
            folder.mkdir()
            break
        except FileExistsError:
            continue
    (folder / "config.json").write_text(json.dumps(asdict(config), indent=2))
    return folder
