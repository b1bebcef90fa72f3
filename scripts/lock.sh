#!/usr/bin/env bash
# Regenerates requirements.lock (and requirements-airflow.lock) from requirements.txt (and
# requirements-airflow.txt) with a clean resolve (no cache) for Python 3.10 on Linux x86_64.
# Run it only when a requirements file changes; commit them together.
set -euo pipefail
cd "$(dirname "$0")/.."
python=$(bash scripts/find_python.sh)
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
"$python" -m pip install -q --disable-pip-version-check --target "$tools" uv==0.13.8
for name in requirements requirements-airflow; do
  UV_PYTHON_DOWNLOADS=never "$tools/bin/uv" pip compile "$name.txt" --no-cache \
    --python "$python" --python-platform x86_64-manylinux_2_28 --no-header --no-annotate \
    -o "$name.lock"
  echo "lock: $(grep -c '==' "$name.lock") packages pinned in $name.lock"
done
