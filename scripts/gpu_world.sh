#!/usr/bin/env bash
# The shipped world trained further on a lent GPU, in one call of the device tool (issue 15): fresh clips
# rendered there, the teacher continued, then self-forcing of the shipped student against it, each stage
# under a wall-clock budget (sanawm train max_minutes). Three steps:
#
#   scripts/gpu_world.sh pack [TEACHER_WORLD]    # here: .whl-train (wheels) and, given a teacher, .carry/teacher in fp16 (both git-ignored)
#   run(command="bash scripts/gpu_world.sh train", carry=[".carry", ".whl-train"], timeout_s=600)
#   scripts/gpu_world.sh unpack FILES_DIR OUT    # here: OUT/teacher and OUT/student, whole world folders to evaluate
#
# The teacher stage continues .carry/teacher where one was packed, else the teacher kept in the repository
# (sanawm_env/assets/training/teacher-small, once a session keeps one), else the shipped world's DiT (the
# 4-step student, which flow matching turns back into a many-step teacher; the CPU rounds' teachers lived
# outside the repository and are gone).
#
# train's environment: WORLD (small), SIZE ("64 64"), CLIPS (4096), WORKERS (14, rendering processes),
# BATCH (32), TEACHER_MIN (4.5), STUDENT_MIN (2), STUDENT (the world self-forcing starts from: the
# shipped one), DEADLINE (540: seconds from the start by which both stages must be done; the device
# tool kills a call at 600 s, and the trained DiTs reach $OUT last). Whatever rendering and encoding leave before
# the deadline is shared 7 : 4 by the two stages, each at most its TEACHER_MIN / STUDENT_MIN (the teacher's cap
# lies above its expected share, about 4.2 minutes, so that it gets all of it: it may start from the student). The device
# tool brings back 8 files of at most 16 MiB: the two DiTs come back in fp16, split into parts, beside
# one archive of the logs and metrics.
set -uo pipefail
cd "$(dirname "$0")/.."
mode=${1:?usage: scripts/gpu_world.sh pack [TEACHER_WORLD] | train | unpack FILES_DIR OUT}

if [ "$mode" = pack ]; then
  rm -rf .carry/teacher && mkdir -p .carry
  if [ -n "${2:-}" ]; then
    python3 scripts/half_world.py "$2" .carry/teacher
    rm .carry/teacher/vae.safetensors  # the shipped world's VAE (unchanged since the first round) goes back in there
  fi
  bash scripts/gpu_wheels_train.sh
  du -sh .carry
  exit 0
fi

if [ "$mode" = unpack ]; then
  files=${2:?usage: scripts/gpu_world.sh unpack FILES_DIR OUT} out=${3:?usage: scripts/gpu_world.sh unpack FILES_DIR OUT}
  mkdir -p "$out"
  tar xzf "$files/gpu-world.tar.gz" -C "$out"
  for part in teacher student; do
    cat "$files/$part-dit.safetensors.part"* > "$out/$part/world/dit.safetensors"
    # Training exports no collision predictor: the shipped one (it reads the given first frame and poses, not the DiT) goes
    # in, so that the student world is whole where it replaces the shipped one.
    cp sanawm_env/assets/world-small/collision.safetensors "$out/$part/world/"
    echo "$out/$part/world"
  done
  exit 0
fi

[ "$mode" = train ] || { echo "unknown mode $mode: pack, train or unpack" >&2; exit 2; }
OUT=${OUT:-outputs/gpu-world}
WORK=${WORK:-/tmp/gpu-world}
WORLD=${WORLD:-small} SIZE=${SIZE:-64 64} CLIPS=${CLIPS:-4096} WORKERS=${WORKERS:-14} BATCH=${BATCH:-32}
TEACHER_MIN=${TEACHER_MIN:-4.5} STUDENT_MIN=${STUDENT_MIN:-2} STUDENT=${STUDENT:-sanawm_env/assets/world-small}
DEADLINE=${DEADLINE:-540}
# shellcheck source=scripts/gpu_env.sh
source scripts/gpu_env.sh
gpu_wheels .whl-train
mkdir -p "$OUT" "$WORK"
TEACHER=$STUDENT
[ -f sanawm_env/assets/training/teacher-small/dit.safetensors ] && TEACHER=sanawm_env/assets/training/teacher-small
if [ -f .carry/teacher/dit.safetensors ]; then
  TEACHER=.carry/teacher
  [ -f .carry/teacher/vae.safetensors ] || cp "$STUDENT/vae.safetensors" .carry/teacher/
fi
(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no GPU") | tee "$WORK/device.txt"
echo "teacher starts from $TEACHER" | tee -a "$WORK/device.txt"

step() {  # step NAME COMMAND...: run it, log it, print how long it took and the log's tail
  local name=$1 t0=$SECONDS; shift
  "$@" > "$WORK/$name.log" 2>&1
  local rc=$?
  echo "== $name: rc=$rc, $((SECONDS - t0)) s"
  tail -n 5 "$WORK/$name.log"
  return $rc
}
# shellcheck disable=SC2086
step clips python3 -m sanawm data generate --out "$WORK/clips" --clips "$CLIPS" --frames 49 --size $SIZE --seed 1000 --workers "$WORKERS" &&
step latents python3 -m sanawm train world="$WORLD" stage=latents data="$WORK/clips" vae="$STUDENT" out="$WORK/latents" progress=false
# Each stage also spends about 20 s loading and exporting outside its max_minutes: 45 s kept for both.
# At least 0.05 min each (max_minutes=0 would mean no limit at all).
read -r TEACHER_MIN STUDENT_MIN <<< "$(python3 -c "
left = max($DEADLINE - $SECONDS - 45, 0) / 60
print(round(max(0.05, min($TEACHER_MIN, left * 7 / 11)), 2), round(max(0.05, min($STUDENT_MIN, left * 4 / 11)), 2))")"
echo "== budgets: teacher $TEACHER_MIN min, student $STUDENT_MIN min ($SECONDS s gone of $DEADLINE)"
T=(python3 -m sanawm train world="$WORLD" data="$WORK/latents" batch_size="$BATCH" latent_frames=7 num_workers=4 progress=false
   steps=1000000 ckpt_every=1000000 log_every=25)
step teacher "${T[@]}" stage=chunk_causal out="$WORK/teacher" init="$TEACHER" max_minutes="$TEACHER_MIN" \
  optim.lr=1e-4 optim.ema_decay=0.998 &&
step student "${T[@]}" stage=self_forcing out="$WORK/student" init="$STUDENT" teacher="$WORK/teacher" max_minutes="$STUDENT_MIN" \
  optim.lr=2e-5 distill.generator_every=2

for part in teacher student; do  # fp16 DiTs in parts under 16 MiB; the rest of each run (not its checkpoint) in the archive
  if [ -f "$WORK/$part/world/dit.safetensors" ]; then
    python3 scripts/half_world.py "$WORK/$part/world" "$WORK/$part/world" > /dev/null &&
      split -b 15m -d "$WORK/$part/world/dit.safetensors" "$OUT/$part-dit.safetensors.part"
  fi
done
tar czf "$OUT/gpu-world.tar.gz" -C "$WORK" --exclude='*/checkpoint.pt' --exclude='*/dit.safetensors' --exclude=clips --exclude=latents \
  --exclude='trajectories' .
ls -la "$OUT"
