#!/usr/bin/env bash
# Regenerates requirements.lock from requirements.txt with a clean resolve (no cache) for
# Python 3.10 on Linux x86_64. Run it only when requirements.txt changes; commit both together.
set -euo pipefail
cd "$(dirname "$0")/.."
python=$(bash scripts/find_python.sh)
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
"$python" -m pip install -q --disable-pip-version-check --target "$tools" uv==0.13.8
UV_PYTHON_DOWNLOADS=never "$tools/bin/uv" pip compile requirements.txt --no-cache \
  --python "$python" --python-platform x86_64-manylinux_2_28 --no-header --no-annotate \
  -o requirements.lock
echo "lock: $(grep -c '==' requirements.lock) packages pinned in requirements.lock"
