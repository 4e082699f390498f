#!/usr/bin/env bash
# The GPU checks of fast inference (issue 17) in one call of the device tool, about 9 minutes:
#   scripts/gpu_wheels.sh                          # here, once: the packages the GPU image lacks -> .whl/
#   run(command="bash scripts/gpu_check.sh", carry=[".whl"], timeout_s=600)
# PARTS (default: all) names the parts to run, for the minutes a session has left on a warm machine after
# another script, e.g. run(command="PARTS=gpu_tests bash scripts/gpu_check.sh", carry=[".whl"], timeout_s=180).
# Each part has its own time limit and writes its log and JSON; a part that fails or runs out of time does
# not stop the others. The device tool brings back at most 8 files, so after each part everything is packed
# into $OUT/gpu-check.tar.gz (outputs/gpu without the device tool). Record the numbers with
# the GPU's name in benchmarks/RESULTS.md.
set -uo pipefail
cd "$(dirname "$0")/.."
ALL_PARTS="gpu_tests gdn realtime_paper realtime_paper_quantized realtime_small_compiled"
PARTS=${PARTS:-$ALL_PARTS}
for name in $PARTS; do  # a misspelt part would otherwise spend the GPU's minutes running nothing
  [[ " $ALL_PARTS " == *" $name "* ]] || { echo "PARTS: unknown part $name (the parts: $ALL_PARTS)" >&2; exit 2; }
done
OUT="${OUT:-outputs/gpu}"
LOG="$(mktemp -d)"
mkdir -p "$OUT"
# shellcheck source=scripts/gpu_env.sh
source scripts/gpu_env.sh
gpu_wheels .whl
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$LOG/gpu.txt"
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" | tee -a "$LOG/gpu.txt"

part() {  # part NAME SECONDS COMMAND...: run with a time limit, keep the log, print its tail
  local name=$1 limit=$2; shift 2
  [[ " $ALL_PARTS " == *" $name "* ]] || { echo "part $name is missing from ALL_PARTS" >&2; exit 2; }
  [[ " $PARTS " == *" $name "* ]] || return 0
  local t0=$SECONDS
  timeout "$limit" "$@" > "$LOG/$name.log" 2>&1
  local rc=$?
  echo "== $name: rc=$rc ($((SECONDS - t0)) s of $limit)"
  tail -n 14 "$LOG/$name.log"
  tar czf "$OUT/gpu-check.tar.gz.tmp" -C "$LOG" . && mv "$OUT/gpu-check.tar.gz.tmp" "$OUT/gpu-check.tar.gz"
}

# The Triton kernels compiled and checked against the reference (bf16 included), NVFP4 against modelopt, the
# FP8 and INT8 layers' products against modelopt's fake quantization, the compiled stream's CUDA graphs.
part gpu_tests 110 python3 -m pytest -q -m gpu -p no:cacheprovider tests/test_kernels_gdn.py tests/test_quantize.py tests/test_compiled.py
# The scan at sizes up to the paper's: the fused and the three-phase Triton kernels against the PyTorch
# reference, fla's kernel (autotuned at its first call) and the floor; rows print and save as they finish.
part gdn 180 python3 benchmarks/gdn.py --out "$LOG/gdn.json"
# The paper's 2.6B DiT + LTX-2 VAE at 704x1280 in bf16: seconds for 60 s of video (eager: compiling it did not
# finish in 140 s on an H100 machine), then one chunk split into DiT and VAE decoder, and its slowest kernels.
part realtime_paper 80 python3 benchmarks/realtime.py --worlds paper --dtypes bfloat16 --chunks 5 --profile 20 --out "$LOG/realtime_paper.json"
# The paper world quantized (FP8 and INT8 layers multiplying in their format, model.quantization.low_precision)
# beside bf16: does a quantized world stream faster (issue 17)? Each row quantizes and calibrates on one chunk first.
part realtime_paper_quantized 100 python3 benchmarks/realtime.py --worlds paper --dtypes bfloat16 --quantize fp8 int8 --chunks 4 \
  --out "$LOG/realtime_paper_quantized.json"
# The small world streamed eager, then compiled (inductor with CUDA graphs, model.compiled) through the rollout
# as the env runs it: the state each chunk hands to the next is an output of the graph's previous replay, a
# flow only a GPU exercises. It compiles one DiT shape at the third chunk (four took over 2 minutes on an H100 machine).
part realtime_small_compiled 80 python3 benchmarks/realtime.py --worlds small --dtypes bfloat16 --compile --chunks 10 \
  --out "$LOG/realtime_small_compiled.json"
echo "logs and JSON in $OUT/gpu-check.tar.gz"
