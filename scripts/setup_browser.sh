#!/usr/bin/env bash
# Installs the headless browser the report's browser test drives: the distribution's Chromium
# (/usr/bin/chromium, Debian's `chromium` package), from its package registry. Nothing is
# downloaded when the tests run. A re-run with Chromium present returns at once.
set -euo pipefail

CHROMIUM=/usr/bin/chromium
if [ -x "$CHROMIUM" ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "setup-browser: $CHROMIUM is missing and this system has no apt-get; install Chromium" \
       "so that $CHROMIUM runs it (the report's browser test needs it)" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
  sudo=sudo
fi
echo "setup-browser: installing the chromium package"
$sudo apt-get update -qq
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium
"$CHROMIUM" --version
