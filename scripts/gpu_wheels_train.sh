#!/usr/bin/env bash
# The few packages that training (sanawm train, agents.train_ppo) needs and the GPU machine's image lacks,
# downloaded here into .whl-train/ (git-ignored, under 1.1 MB) for scripts/gpu_world.sh and scripts/gpu_ppo.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl-train
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp --platform any -d .whl-train \
  gymnasium==1.4.0 farama-notifications==0.0.6 hydra-core==1.3.8 omegaconf==2.3.1 stable-baselines3==2.9.2
# antlr4's runtime (hydra's parser) exists only as a source archive: built into a wheel here (pure Python).
python3 -m pip wheel -q --no-deps -w .whl-train antlr4-python3-runtime==4.9.3
du -sh .whl-train
