#!/usr/bin/env bash
# One command for the Linux artifacts: the PyInstaller bundle dist/pachtray/ and the .deb in dist/.
#   bash packaging/build.sh
# Needs .venv (scripts/setup.sh) and installs PyInstaller into it (the `build` extra) if missing.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

[ -x .venv/bin/python ] || bash scripts/setup.sh
if ! .venv/bin/python -c "import PyInstaller" 2>/dev/null; then
  echo "build: installing PyInstaller into .venv" >&2
  .venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[build]"
fi

dist="${PACHTRAY_DIST:-$root/dist}"
export PACHTRAY_BUILD="${PACHTRAY_BUILD:-$root/build}"
work="$PACHTRAY_BUILD"
mkdir -p "$dist" "$work"
# build.spec renders the icons into $PACHTRAY_BUILD/icons (for macOS/Windows); the .deb uses them too.
.venv/bin/python -m PyInstaller --noconfirm --log-level WARN --distpath "$dist" --workpath "$work/pyinstaller" build.spec
bash packaging/linux/build-deb.sh "$dist/pachtray" "$work/icons" "$dist"
