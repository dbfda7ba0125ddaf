#!/usr/bin/env bash
# Create .venv-jlab: Pachtray's own JupyterLab environment (the pins in app/pachtray/jupyter/pins.py),
# made by the app's set-up itself (`pachtray jupyter --setup-only`) and cached in the checkout for the
# tests (they point PACHTRAY_JUPYTER_ENV at it), plus pytest there for running jupyterlab-pachyderm's
# own integration suite (tests/e2e/test_jlab_own_suite.py; never part of a user's environment).
# Idempotent: reused in seconds while its stamp matches the pins. Exit code 3 means the package index
# is unreachable (the e2e tests skip on it).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
[ -x .venv/bin/python ] || bash scripts/setup.sh
venv="${JLAB_VENV:-$here/.venv-jlab}"
export PACHTRAY_JUPYTER_ENV="$venv"
.venv/bin/python -m pachtray jupyter --setup-only
# The same pytest as the project's own tests (constraints.txt pins it and what it needs).
if ! "$venv/bin/python" -c "import pytest" 2>/dev/null; then
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -c constraints.txt pytest
fi
