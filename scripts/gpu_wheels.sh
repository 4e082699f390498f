#!/usr/bin/env bash
# The Python packages scripts/gpu_check.sh needs that the GPU machine's image lacks (it holds torch,
# triton, numpy, safetensors, scipy, rich, tqdm, pytest, hypothesis and the like), downloaded here into
# .whl/ (git-ignored) for Python 3.12 on x86-64 Linux (fla-core: flash-linear-attention's kernels, the GPU anchor
# row of benchmarks/gdn.py); the device tool carries the folder (about 29 MB,
# which with the working tree stays under its 64 MiB a call).
set -euo pipefail
cd "$(dirname "$0")/.."
PIP="${PIP:-python3 -m pip}"
PLATFORMS="--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any"
mkdir -p .whl
$PIP download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp $PLATFORMS -d .whl \
  gymnasium==1.4.0 farama-notifications==0.0.6 diffusers==0.42.1 importlib_metadata==10.2.0 lazy-importer \
  hydra-core==1.3.8 omegaconf==2.3.1 nvidia-modelopt==0.47.0 pydantic==2.14.4 pydantic-core==2.50.5 \
  annotated-types==0.8.0 typing-inspection==0.4.5 pulp==3.3.2 stable-baselines3==2.9.2 \
  fla-core==0.6.0 einops==0.8.2
# antlr4's runtime (hydra's parser) exists only as a source archive: built into a wheel here (pure Python).
$PIP wheel -q --no-deps -w .whl antlr4-python3-runtime==4.9.3
du -sh .whl
