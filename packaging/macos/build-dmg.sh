#!/usr/bin/env bash
# macOS (UNTESTED: written without a Mac to run it on; see docs/packaging.md).
# Builds dist/Pachtray.app with build.spec (a menu-bar-only app: LSUIElement) and wraps it in
# dist/Pachtray-<version>.dmg with an /Applications link for drag-and-drop installation.
#   bash packaging/macos/build-dmg.sh
# Optional: PACHTRAY_SIGN_IDENTITY="Developer ID Application: ..." signs the app (hardened runtime)
# before the dmg is made; notarize the dmg afterwards with `xcrun notarytool submit --wait`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
[ "$(uname -s)" = Darwin ] || { echo "build-dmg: run this on macOS" >&2; exit 2; }

py="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$py" -m venv .venv
.venv/bin/python -m pip install -q -c constraints.txt -e ".[build]"
export PACHTRAY_BUILD="$root/build"
.venv/bin/python -m PyInstaller --noconfirm --log-level WARN --distpath dist --workpath build/pyinstaller build.spec

app="dist/Pachtray.app"
if [ -n "${PACHTRAY_SIGN_IDENTITY:-}" ]; then
  codesign --force --deep --options runtime --timestamp --sign "$PACHTRAY_SIGN_IDENTITY" "$app"
fi

version="$(sed -n 's/^__version__ = "\(.*\)"/\1/p' app/pachtray/__init__.py)"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
cp -R "$app" "$stage/"
ln -s /Applications "$stage/Applications"
dmg="dist/Pachtray-$version.dmg"
rm -f "$dmg"
hdiutil create -volname "Pachtray $version" -srcfolder "$stage" -fs HFS+ -format UDZO -ov "$dmg"
echo "$dmg"
