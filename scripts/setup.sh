#!/usr/bin/env bash
# Idempotent set-up shared by the README's two commands: system packages (FUSE 3, Qt's xcb
# libraries, Xvfb; for the tests fio, debootstrap, appstream's validator, desktop-file-utils,
# Debian's chromium for the JupyterLab browser test, trayer, dbus-daemon, dunst and libxtst6 for the
# real click on a notification) via apt-get when root, then the virtualenv .venv with pinned Python deps
# (Playwright drives that chromium; it downloads no browser). The tests make Pachtray's JupyterLab
# environment themselves (scripts/jlab-venv.sh).
# Quick the second time: each step is skipped when what it makes is already there.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"

sys_pkgs=(fuse3 libfuse3-3 libxcb-cursor0 libxkbcommon-x11-0 libxcb-icccm4 libxcb-keysyms1
  libxcb-shape0 libxcb-xinerama0 libxcb-image0 libxcb-render-util0 libegl1 libgl1
  libfontconfig1 libdbus-1-3 xvfb xauth debootstrap zstd appstream desktop-file-utils fio chromium
  fonts-dejavu-core trayer libxtst6 dbus-daemon dunst)
missing=()
for p in "${sys_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing system packages: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null 2>&1 || apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: missing system packages: ${missing[*]}" >&2
    echo "setup: run as root:  sudo apt-get install ${missing[*]}" >&2
    case " ${missing[*]} " in *" fuse3 "*|*" libfuse3-3 "*) exit 1 ;; esac
  fi
fi

py="${PYTHON:-python3}"
stamp_src="$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)"
if [ ! -x .venv/bin/python ] || [ "$(cat .venv/.pachtray-stamp 2>/dev/null)" != "$stamp_src" ]; then
  echo "setup: creating .venv and installing Python dependencies" >&2
  [ -x .venv/bin/python ] || "$py" -m venv .venv
  .venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[test]"
  echo "$stamp_src" > .venv/.pachtray-stamp
fi
