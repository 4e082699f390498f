#!/usr/bin/env bash
# PPO trained only in the learned world, on a lent GPU in one call of the device tool: row b of "Trained or
# planned in imagination" in benchmarks/RESULTS.md (136 minutes on one CPU thread there) with the shipped
# world's 16 worlds batched on the GPU, the same task, rollout size (512 steps an update) and budget (20,480
# steps) as PPO in the true world (row c), under a wall-clock budget.
#
#   scripts/gpu_wheels_train.sh                                   # here, once: .whl-train
#   run(command="bash scripts/gpu_ppo.sh", carry=[".whl-train"], timeout_s=600)
#   python -m agents.evaluate policy=FILES_DIR/model.zip episodes=50 seed=1000 video_episodes=0 \
#       max_episode_steps=30 +task_kwargs.max_distance=3 +env_kwargs.frames_per_step=2   # here, in SanaWM-GT-v0
#
# Environment: NUM_ENVS (16), N_STEPS (32: NUM_ENVS x N_STEPS steps an update), STEPS (20480), MINUTES (7),
# DEVICE (cuda), ENV_KWARGS (more +env_kwargs.K=V overrides, e.g. a checkpoint).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-outputs/gpu-ppo} WORK=${WORK:-/tmp/gpu-ppo}
NUM_ENVS=${NUM_ENVS:-16} N_STEPS=${N_STEPS:-32} STEPS=${STEPS:-20480} MINUTES=${MINUTES:-7} DEVICE=${DEVICE:-cuda} ENV_KWARGS=${ENV_KWARGS:-}
# shellcheck source=scripts/gpu_env.sh
source scripts/gpu_env.sh
gpu_wheels .whl-train
mkdir -p "$OUT" "$WORK"
t0=$SECONDS
# shellcheck disable=SC2086
python3 -m agents.train_ppo env=SanaWM-v0 exp_name=ppo_imagined num_envs="$NUM_ENVS" n_steps="$N_STEPS" total_timesteps="$STEPS" \
  max_minutes="$MINUTES" max_episode_steps=30 +task_kwargs.max_distance=3 +env_kwargs.device="$DEVICE" device="$DEVICE" \
  out="$WORK" $ENV_KWARGS 2>&1 | tee "$WORK/train_ppo.log" | tail -n 3
echo "== train_ppo: $((SECONDS - t0)) s"
run=$(ls -d "$WORK"/SanaWM-v0__* | tail -n 1)
cat "$run/summary.json"
cp "$run/model.zip" "$run/summary.json" "$run/config.json" "$OUT/"
tar czf "$OUT/tb.tar.gz" -C "$run" tb
ls -la "$OUT"
