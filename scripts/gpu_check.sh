#!/usr/bin/env bash
# The GPU checks of fast inference (issue 17) in one call of the device tool, about 9 minutes:
#   scripts/gpu_wheels.sh                          # here, once: the packages the GPU image lacks -> .whl/
#   run(command="bash scripts/gpu_check.sh", carry=[".whl"], timeout_s=600)
# Each part has its own time limit and writes its log and JSON under $OUT (outputs/gpu without the
# device tool); a part that fails or runs out of time does not stop the others. Record the numbers with
# the GPU's name in benchmarks/RESULTS.md.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-outputs/gpu}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="/tmp/site:$PYTHONPATH"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" | tee -a "$OUT/gpu.txt"

part() {  # part NAME SECONDS COMMAND...: run with a time limit, keep the log, print its tail
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  echo "== $name: rc=$rc ($((SECONDS - t0)) s of $limit)"
  tail -n 14 "$OUT/$name.log"
}

# The Triton kernels compiled and checked against the reference (bf16 included), NVFP4 against modelopt.
part gpu_tests 120 python3 -m pytest -q -m gpu -p no:cacheprovider tests/test_kernels_gdn.py tests/test_quantize.py
# The scan at sizes up to the paper's: Triton against the PyTorch reference, fla's kernel and the floor.
part gdn 80 python3 benchmarks/gdn.py --out "$OUT/gdn.json"
# The small DiT's forward and streaming pass: eager against compiled (CUDA graphs) and diffusers.
part forward 100 python3 benchmarks/forward.py --frames 4 13 --batches 1 16 --repeats 10 --out "$OUT/forward.json"
# The paper's 2.6B DiT + LTX-2 VAE at 704x1280 in bf16: seconds for 60 s of video, eager and compiled.
part realtime_paper 140 python3 benchmarks/realtime.py --worlds paper --dtypes bfloat16 --compile --chunks 6 --out "$OUT/realtime_paper.json"
# The small world: one world against 16 in one batched step.
part realtime_small 70 bash -c "python3 benchmarks/realtime.py --worlds small --dtypes float32 bfloat16 --chunks 20 --out '$OUT/realtime_small.json' && \
  python3 benchmarks/realtime.py --worlds small --dtypes bfloat16 --chunks 20 --num-worlds 16 --out '$OUT/realtime_small16.json'"
echo "logs and JSON in $OUT"
