#!/usr/bin/env bash
# Prints the lock file .venv is to hold, and on stderr why when it is the GPU set:
#   GPU=1: requirements-gpu.lock (TensorFlow's CUDA libraries); GPU=0: requirements.lock;
#   GPU unset: the set VENV already holds, else the GPU set where nvidia-smi lists a GPU.
#   bash scripts/choose_lock.sh VENV
set -euo pipefail
venv=${1:?usage: choose_lock.sh VENV}
cpu=requirements.lock
gpu=requirements-gpu.lock
has_gpu() { nvidia-smi -L 2>/dev/null | grep -q '^GPU '; }

case "${GPU:-}" in
  1)
    has_gpu || echo "setup: GPU=1, but nvidia-smi lists no GPU: TensorFlow will run on the CPU" >&2
    echo "$gpu" ;;
  0) echo "$cpu" ;;
  '')
    if [ -f "$venv/.lock-file" ]; then
      cat "$venv/.lock-file"
    elif has_gpu; then
      echo "setup: nvidia-smi lists a GPU: installing $gpu (GPU=0 for the CPU set)" >&2
      echo "$gpu"
    else
      echo "$cpu"
    fi ;;
  *) echo "setup: GPU=${GPU}: expected GPU=1 (TensorFlow's CUDA libraries) or GPU=0" >&2; exit 2 ;;
esac
