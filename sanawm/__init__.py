"""The ``sanawm`` command line. The library lives in ``sanawm_env`` (environments), ``model`` (world
model), ``kernels`` and ``agents``."""
