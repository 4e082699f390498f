"""``sanawm train`` (also ``python -m sanawm.train``; under ``torchrun`` for several processes): one
stage of the training recipe, configured by Hydra overrides of ``configs/train/train.yaml``.

    sanawm train stage=vae world=small data=clips/ out=runs/vae steps=3000
    sanawm train stage=latents world=small data=clips/ vae=runs/vae out=runs/latents
    sanawm train stage=bidirectional world=small data=runs/latents out=runs/s1 steps=20000
    sanawm train --cfg stage=ode        # print the resolved config and stop
"""

from __future__ import annotations

import sys

from omegaconf import DictConfig, OmegaConf

from model.training.config import TrainConfig


def _compose(overrides: list[str]) -> DictConfig:
    from hydra import compose, initialize_config_module

    from configs import register_configs

    register_configs()
    with initialize_config_module(config_module="configs.train", version_base=None):
        return compose(config_name="train", overrides=overrides)


def compose(overrides: list[str]) -> TrainConfig:
    """The typed config of ``overrides``: Hydra rejects unknown keys and wrong types, the schema
    checks ranges (``TrainConfig.__post_init__``)."""
    return OmegaConf.to_object(_compose(overrides))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--cfg" in argv:
        print(OmegaConf.to_yaml(_compose([a for a in argv if a != "--cfg"])))
        return 0
    from model.training.trainer import train

    from .errors import run_reporting

    return run_reporting("train", lambda: train(compose(argv)))


if __name__ == "__main__":
    sys.exit(main())
