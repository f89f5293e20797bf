#!/bin/bash
# Pasero's cluster workflow on Slurm: `sbatch [SBATCH OPTIONS] recipes/slurm/train.sh -c CONFIG.yaml [pasero-train
# options]` trains on the allocated GPUs and nodes through `accelerate launch` (one process per GPU; one CPU process
# when the job has no GPU).
#
#   sbatch --gpus-per-node 4 --nodes 2 recipes/slurm/train.sh -c examples/TED/training.yaml -s de -t en
#   scancel -b -s INT JOB     # save a checkpoint and exit (the job completes)
#   scancel -b -s USR1 JOB    # save a checkpoint and restart in place, rereading MODEL_DIR/training.yaml
#   sbatch --requeue ...      # a requeued job (preemption, `scontrol requeue JOB`) resumes from its last checkpoint
#
# Environment: PYTHON (default: python3), ACCELERATE_CONFIG (an accelerate config file for multi-GPU runs, e.g.
# accelerate_configs/fsdp.yaml), MAIN_PORT (rendezvous port of multi-node runs, default 29500).
#SBATCH --job-name=pasero-train
#SBATCH --output=slurm-%j.out
#SBATCH --open-mode=append
set -uo pipefail

PYTHON=${PYTHON:-python3}
[ $# -gt 0 ] || { echo "usage: sbatch recipes/slurm/train.sh -c CONFIG.yaml [pasero-train options]" >&2; exit 2; }
stopped=0
trap 'echo "[train.sh] SIGINT before the training started: exiting"; stopped=1' INT

model_dir=$("$PYTHON" -c 'import sys
from pasero_hf.training.config import ConfigError, load_training_config
try:
    print(load_training_config(sys.argv[1:]).model_dir)
except ConfigError as error:
    sys.exit(f"error: {error}")' "$@") || exit 2

gpus_per_node() {
  if [ -n "${SLURM_GPUS_ON_NODE:-}" ]; then echo "$SLURM_GPUS_ON_NODE"
  elif [ -n "${CUDA_VISIBLE_DEVICES:-}" ]; then echo "$CUDA_VISIBLE_DEVICES" | tr ',' '\n' | grep -c .
  else echo 0; fi
}

launch() {  # the training command, in the background; its PID in $child
  local nodes=${SLURM_JOB_NUM_NODES:-1} gpus
  gpus=$(gpus_per_node)
  local config=()
  [ -n "${ACCELERATE_CONFIG:-}" ] && config=(--config_file "$ACCELERATE_CONFIG")
  if [ "$nodes" -gt 1 ]; then
    local main_host
    main_host=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1)
    # one launcher per node; each starts one process per GPU of its node
    srun --ntasks-per-node=1 --kill-on-bad-exit=1 bash -c "exec $PYTHON -m accelerate.commands.launch ${config[*]} \
      --multi_gpu --num_machines $nodes --num_processes $((nodes * (gpus > 0 ? gpus : 1))) \
      --machine_rank \$SLURM_NODEID --main_process_ip $main_host --main_process_port ${MAIN_PORT:-29500} \
      -m pasero_hf.cli.train $(printf '%q ' "$@")" &
  elif [ "$gpus" -gt 1 ]; then
    "$PYTHON" -m accelerate.commands.launch "${config[@]}" --multi_gpu --num_processes "$gpus" \
      -m pasero_hf.cli.train "$@" &
  else
    "$PYTHON" -m pasero_hf.cli.train "$@" &
  fi
  child=$!
}

# Signals reach this batch shell (scancel -b); the training saves a checkpoint on SIGTERM (every rank, same step).
# A signal that arrives before the training has started stops (or restarts) it at once: there is nothing to save.
restart=0
stop_training() { [ -n "${child:-}" ] && kill -TERM "$child" 2>/dev/null; }
trap 'echo "[train.sh] SIGINT: saving and exiting"; stopped=1; restart=0; stop_training' INT
trap 'echo "[train.sh] SIGUSR1: saving, then restarting from $model_dir/training.yaml"; restart=1; stop_training' USR1
# Slurm signals every process of the job itself on requeue, preemption and time limits: the training gets that
# SIGTERM directly (forwarding another one would kill it before it saves), this shell waits for it to finish.
trap 'echo "[train.sh] SIGTERM: the training saves and exits"' TERM

args=("$@")
if [ "${SLURM_RESTART_COUNT:-0}" -gt 0 ] && [ -f "$model_dir/training.yaml" ]; then
  echo "[train.sh] requeued (restart ${SLURM_RESTART_COUNT}): resuming from $model_dir"
  args=(-c "$model_dir/training.yaml" --no-reset)
fi
while true; do
  [ "$stopped" = 1 ] && exit 0
  launch "${args[@]}"
  status=0
  while true; do  # `wait` returns early when a trapped signal arrives: wait again until the training exits
    wait "$child"; status=$?
    kill -0 "$child" 2>/dev/null || break
  done
  [ "$restart" = 1 ] || exit "$status"
  restart=0
  echo "[train.sh] restarting in place (exit status $status)"
  args=(-c "$model_dir/training.yaml" --no-reset)
done
