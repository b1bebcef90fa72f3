#!/usr/bin/env bash
# Regenerates lock files from their requirements files with a clean resolve (no cache) for
# Python 3.10 on Linux x86_64:
#   bash scripts/lock.sh                     # requirements, requirements-airflow, requirements-gpu
#   bash scripts/lock.sh requirements-gpu    # only the named ones
# requirements-gpu.lock is resolved with requirements.lock as constraints: the GPU set adds
# TensorFlow's CUDA libraries and changes no version of the CPU set. Run it only when a
# requirements file changes; commit them together.
set -euo pipefail
cd "$(dirname "$0")/.."
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(requirements requirements-airflow requirements-gpu)
for name in "${names[@]}"; do
  [ -f "$name.txt" ] || { echo "lock: $name.txt: no such requirements file" >&2; exit 2; }
done
python=$(bash scripts/find_python.sh)
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
"$python" -m pip install -q --disable-pip-version-check --target "$tools" uv==0.13.8
for name in "${names[@]}"; do
  constraints=()
  [ "$name" = requirements-gpu ] && constraints=(-c requirements.lock)
  UV_PYTHON_DOWNLOADS=never "$tools/bin/uv" pip compile "$name.txt" "${constraints[@]}" \
    --no-cache --python "$python" --python-platform x86_64-manylinux_2_28 --no-header \
    --no-annotate -o "$name.lock"
  echo "lock: $(grep -c '==' "$name.lock") packages pinned in $name.lock"
done
