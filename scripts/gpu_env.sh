# Sourced by the scripts that run on a lent GPU (gpu_check.sh, gpu_world.sh, gpu_ppo.sh), from the
# repository root: the repository on PYTHONPATH, unbuffered output, and `gpu_wheels DIR` to install the
# carried wheels in DIR (the packages the GPU image lacks) into /tmp/site, ahead on PYTHONPATH.
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

gpu_wheels() {
  [ -d "$1" ] || return 0
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$1"/*.whl \
    && export PYTHONPATH="/tmp/site:$PYTHONPATH"
}
