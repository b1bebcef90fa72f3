#!/usr/bin/env bash
# Creates .venv (project-local) with exactly the packages in requirements.lock and installs
# this project into it in editable mode. A re-run with nothing changed returns in about a second.
#   bash scripts/setup.sh           # .venv: the pipeline, tests, Kubeflow compile
#   GPU=1 bash scripts/setup.sh     # .venv with requirements-gpu.lock instead (scripts/choose_lock.sh)
#   bash scripts/setup.sh airflow   # .venv-airflow: the same plus Airflow (requirements-airflow.txt)
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.8
case "${1:-main}" in
  main) VENV=.venv; LOCK=$(bash scripts/choose_lock.sh .venv) ;;
  airflow) VENV=.venv-airflow; LOCK=requirements-airflow.lock ;;
  *) echo "usage: $0 [main|airflow]" >&2; exit 2 ;;
esac
stamp_key=$(cat "$LOCK" pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
stamp="$VENV/.installed-$stamp_key"

if [ -f "$stamp" ]; then
  exit 0
fi

python=$(bash scripts/find_python.sh)
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))'; then
  echo "setup: creating $VENV with $python"
  rm -rf "$VENV"
  "$python" -m venv "$VENV"
fi
start=$(date +%s)
# uv installs the ~270 locked packages in parallel; pip is kept for TFX, which pip-installs
# user-module wheels at run time.
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "uv==$UV_VERSION"
export UV_PYTHON_DOWNLOADS=never
echo "setup: installing $LOCK into $VENV"
"$VENV/bin/uv" pip sync -q --python "$VENV/bin/python" "$LOCK"
"$VENV/bin/uv" pip install -q --python "$VENV/bin/python" "uv==$UV_VERSION" pip
"$VENV/bin/uv" pip install -q --python "$VENV/bin/python" --no-deps -e .
rm -f "$VENV"/.installed-*
echo "$LOCK" > "$VENV/.lock-file"
touch "$stamp"
echo "setup: done in $(( $(date +%s) - start ))s"
