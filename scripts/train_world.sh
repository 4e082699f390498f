#!/usr/bin/env bash
# The shipped world's training recipe (docs/world-small.md): data, then every stage of `sanawm train` in order.
# Each stage resumes from its checkpoint and a finished one is skipped, so running the script again after an
# interruption continues where it stopped.
#
#   scripts/train_world.sh OUT                      # the recipe of the shipped small world (~3.5 h on 2 CPU cores)
#   WORLD=tiny SIZE="32 32" CLIPS=8 SCALE=0.002 scripts/train_world.sh /tmp/w   # a smoke run of every stage
#
# Environment: WORLD (small), SIZE ("64 64"), CLIPS (1024), ODE_CLIPS (512: the ODE stage makes one teacher
# trajectory per clip, the costly part on a CPU), BATCH (4), SCALE (1: multiplies every stage's steps, e.g. more
# on a GPU), SANAWM (the sanawm command; default: the one on PATH). The exported world is OUT/refiner/world.
set -euo pipefail
OUT=${1:?usage: scripts/train_world.sh OUT}
WORLD=${WORLD:-small} SIZE=${SIZE:-64 64} CLIPS=${CLIPS:-1024} ODE_CLIPS=${ODE_CLIPS:-512} BATCH=${BATCH:-4} SCALE=${SCALE:-1}
SANAWM=${SANAWM:-sanawm}
mkdir -p "$OUT"
cd "$OUT"

steps() {  # steps BASE: BASE * SCALE, at least 2
  python3 -c "import sys; print(max(2, round($1 * float(sys.argv[1]))))" "$SCALE"
}
stage() {  # stage NAME OUT STEPS ARGS...: run the stage, resume it, or skip it when finished
  local name=$1 out=$2 n=$3; shift 3
  if [ -f "$out/summary.json" ]; then echo "$name: done"; return; fi
  local resume=false
  [ -f "$out/checkpoint.pt" ] && resume=true
  $SANAWM train world="$WORLD" stage="$name" out="$out" resume=$resume steps="$(steps "$n")" batch_size="$BATCH" \
    latent_frames=7 num_workers=1 progress=false "$@"
}

if [ ! -f clips/index.json ] || ! grep -q '"complete": true' clips/index.json; then
  resume=""
  [ -f clips/index.json ] && resume=--resume
  # shellcheck disable=SC2086
  $SANAWM data generate --out clips --clips "$CLIPS" --frames 49 --size $SIZE --seed 1000 $resume
fi
stage vae vae 3000 data=clips log_every=25 ckpt_every=250
if ! grep -q '"complete": true' latents/index.json 2>/dev/null; then  # an interrupted encoding starts over
  rm -rf latents
  $SANAWM train world="$WORLD" stage=latents data=clips vae=vae out=latents progress=false
fi
# The first ODE_CLIPS clips of the latents (hard links and an index), for the ODE stage's trajectories.
python3 - "$ODE_CLIPS" <<'PY'
import json, os, sys
limit = int(sys.argv[1])
index = json.load(open("latents/index.json"))
os.makedirs("latents-ode", exist_ok=True)
shards, n = [], 0
for shard in index["shards"]:
    if n >= limit:
        break
    shards.append(shard)
    n += shard["clips"]
for name in [s["file"] for s in shards] + ["vae.safetensors"]:
    if not os.path.exists(f"latents-ode/{name}"):
        os.link(f"latents/{name}", f"latents-ode/{name}")
json.dump({**index, "shards": shards, "num_clips": n}, open("latents-ode/index.json", "w"), indent=1)
PY
# compile=true: 1.5 min of compiling for steps 13-17% shorter at batch 4 on 2 CPU cores (benchmarks/RESULTS.md).
stage bidirectional bi 2510 data=latents optim.lr=3e-4 log_every=25 ckpt_every=250 compile=true
stage chunk_causal teacher 1510 data=latents init=bi optim.lr=2e-4 log_every=25 ckpt_every=250 compile=true
stage ode ode 600 data=latents-ode teacher=teacher optim.lr=1e-4 log_every=25 ckpt_every=100 compile=true
stage self_forcing sf 400 data=latents teacher=teacher init=ode optim.lr=2e-5 distill.generator_every=2 log_every=10 ckpt_every=50
stage refiner refiner 300 data=latents init=sf log_every=25 ckpt_every=100
echo "world: $OUT/refiner/world"
