#!/usr/bin/env bash
# Prepares here, before the call, what bench/gpu_run.sh needs on a lent GPU machine (docs/gpu.md),
# which has Python 3.12, JAX and PyTorch, but no TensorFlow, Keras or network:
#   .whl/           wheels for its Python of what it lacks: Keras at this project's pin with its
#                   namex and optree, and tensorboardX and lmdb, which the official code imports;
#   official-nvae/  the official NVAE source, from a git directory of NVlabs/NVAE.
# Both are ignored by git (.gitignore): the official source never enters this repository.
#   bash bench/prepare_gpu_run.sh NVAE_GIT_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
git_dir=${1:?usage: bash bench/prepare_gpu_run.sh NVAE_GIT_DIR (a git directory of NVlabs/NVAE)}
if ! git --git-dir="$git_dir" cat-file -e HEAD:train.py 2>/dev/null; then
  echo "prepare_gpu_run: $git_dir: not a git directory of NVlabs/NVAE (no train.py at HEAD)" >&2
  exit 2
fi
pin() { grep -i "^$1==" requirements.lock | cut -d= -f3; }
rm -rf .whl official-nvae
mkdir -p .whl official-nvae
python3 -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
  --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
  "keras==$(pin keras)" "namex==$(pin namex)" "optree==$(pin optree)" \
  tensorboardX==2.6.5 lmdb==1.8.1
git --git-dir="$git_dir" archive HEAD | tar -x -C official-nvae
echo "prepare_gpu_run: $(ls .whl | wc -l) wheels in .whl/;" \
  "NVlabs/NVAE $(git --git-dir="$git_dir" rev-parse --short HEAD) in official-nvae/"
