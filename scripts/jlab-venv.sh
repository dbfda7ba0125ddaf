#!/usr/bin/env bash
# Create .venv-jlab: a user's JupyterLab with jupyterlab-pachyderm 2.8.x, for the end-to-end tests.
# Idempotent: skipped when the stamp matches this script and the pins in tests/e2e/jlab-constraints.txt.
# Exit code 3 means PyPI is unreachable (the e2e tests skip on it); anything else non-zero is a failure.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"

venv="${JLAB_VENV:-$here/.venv-jlab}"
constraints="$here/tests/e2e/jlab-constraints.txt"
stamp="$(cat "$0" "$constraints" | sha256sum | cut -c1-16)"
if [ -x "$venv/bin/jupyter" ] && [ "$(cat "$venv/.jlab-stamp" 2>/dev/null)" = "$stamp" ]; then
  exit 0
fi

py="${PYTHON:-python3}"
pip_args=(-q --disable-pip-version-check -c "$constraints")
# pytest: to run the extension's own integration suite (tests/e2e/test_jlab_own_suite.py).
reqs=("jupyterlab-pachyderm==2.8.*" "jupyter-server<2.8" jupyterlab pytest)

rm -rf "$venv"
"$py" -m venv "$venv"
if ! "$venv/bin/python" -m pip install "${pip_args[@]}" --only-binary pycurl "${reqs[@]}"; then
  probe="$(mktemp -d)"
  if ! "$venv/bin/python" -m pip download -q --no-deps -d "$probe" "jupyterlab-pachyderm==2.8.*"; then
    rm -rf "$probe"
    echo "jlab-venv: the package index (PyPI) is unreachable" >&2
    exit 3
  fi
  rm -rf "$probe"
  # The index answers, so what failed is pycurl: no wheel here; build it against the system libcurl.
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "jlab-venv: building pycurl from source; installing libcurl4-openssl-dev libssl-dev" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null 2>&1 || apt-get update -qq
    apt-get install -y -qq --no-install-recommends libcurl4-openssl-dev libssl-dev >/dev/null
  fi
  "$venv/bin/python" -m pip install "${pip_args[@]}" "${reqs[@]}"
fi
"$venv/bin/python" -c "import pycurl, pytest, jupyterlab_pachyderm.handlers"
echo "$stamp" > "$venv/.jlab-stamp"
