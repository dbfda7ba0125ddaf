#!/usr/bin/env bash
# Create .venv-jlab: Pachtray's own JupyterLab environment (the pins in app/pachtray/jupyter/pins.py),
# made by the app's set-up itself (`pachtray jupyter --setup-only`) and cached in the checkout for the
# tests (they point PACHTRAY_JUPYTER_ENV at it). Idempotent: reused in seconds while its stamp matches
# the pins. Exit code 3 means the package index is unreachable (the e2e tests skip on it).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
[ -x .venv/bin/python ] || bash scripts/setup.sh
export PACHTRAY_JUPYTER_ENV="${JLAB_VENV:-$here/.venv-jlab}"
exec .venv/bin/python -m pachtray jupyter --setup-only
