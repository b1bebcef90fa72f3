#!/usr/bin/env bash
# Prints the path of a Python 3.10 interpreter: python3.10 on PATH first, then pyenv.
# TFX 1.16 supports Python 3.9-3.10 only (see BUILD_NOTES.md), so nothing else will do.
set -euo pipefail

is_310() { "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null; }

if [ -n "${NVAE_PYTHON:-}" ] && is_310 "$NVAE_PYTHON"; then echo "$NVAE_PYTHON"; exit 0; fi
for cand in python3.10 python3; do
  p=$(command -v "$cand" 2>/dev/null || true)
  # pyenv shims exist on PATH even when the shimmed version is not active; is_310 runs them.
  if [ -n "$p" ] && is_310 "$p"; then echo "$p"; exit 0; fi
done
pyenv_root=$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")
for p in $(ls -d "$pyenv_root"/versions/3.10.*/bin/python3.10 2>/dev/null | sort -V -r); do
  if is_310 "$p"; then echo "$p"; exit 0; fi
done
cat >&2 <<MSG
error: Python 3.10 not found (looked for python3.10 and python3 on PATH, and in $pyenv_root/versions/3.10.*).
TFX 1.16.0 runs on Python 3.9-3.10 only. Install Python 3.10, for example:
    pyenv install 3.10.13            # with pyenv
    apt-get install python3.10-venv  # on distributions that package it
or point NVAE_PYTHON at a Python 3.10 interpreter, then run this command again.
MSG
exit 1
