#!/usr/bin/env bash
# README command 1: set up what is missing, then run Pachtray (tray + daemon + embedded server).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$here/scripts/setup.sh"
exec "$here/.venv/bin/pachtray" "$@"
