#!/usr/bin/env bash
# Build the .deb from the PyInstaller bundle:
#   bash packaging/linux/build-deb.sh BUNDLE_DIR ICONS_DIR OUT_DIR
# BUNDLE_DIR is dist/pachtray (from build.spec), ICONS_DIR the output of packaging/render_icons.py.
# Layout: the bundle in /usr/lib/pachtray; /usr/bin/pachtray and /usr/bin/mount-server are links to
# its one binary (which dispatches on the name it was run under); menu entry, hicolor icons, the
# AppStream metadata software centres show, and an autostart entry for the app's "Start at login"
# to copy into ~/.config/autostart.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bundle="$(cd "$1" && pwd)"
icons="$(cd "$2" && pwd)"
out="$3"
mkdir -p "$out"

version="$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$root/app/pachtray/__init__.py")"
arch="$(dpkg --print-architecture)"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
pkg="$stage/pachtray"

install -d "$pkg/DEBIAN" "$pkg/usr/lib" "$pkg/usr/bin" "$pkg/usr/share/applications" \
  "$pkg/usr/share/icons/hicolor/scalable/apps" "$pkg/usr/share/pachtray" "$pkg/usr/share/doc/pachtray" \
  "$pkg/usr/share/metainfo"
cp -a "$bundle" "$pkg/usr/lib/pachtray"
ln -s ../lib/pachtray/pachtray "$pkg/usr/bin/pachtray"
ln -s ../lib/pachtray/pachtray "$pkg/usr/bin/mount-server"

install -m 0644 "$here/pachtray.desktop" "$pkg/usr/share/applications/pachtray.desktop"
install -m 0644 "$here/pachtray-autostart.desktop" "$pkg/usr/share/pachtray/pachtray-autostart.desktop"
install -m 0644 "$here/io.github.pachtray.Pachtray.metainfo.xml" "$pkg/usr/share/metainfo/"
install -m 0644 "$root/resources/pachtray.svg" "$pkg/usr/share/icons/hicolor/scalable/apps/pachtray.svg"
for png in "$icons"/hicolor/*/apps/pachtray.png; do
  size="$(basename "$(dirname "$(dirname "$png")")")"
  install -D -m 0644 "$png" "$pkg/usr/share/icons/hicolor/$size/apps/pachtray.png"
done
cat > "$pkg/usr/share/doc/pachtray/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: pachtray
License: Apache-2.0
 Bundled third-party components (Python, Qt/PySide6, gRPC, pachyderm-sdk, ...) keep their own
 licenses; see /usr/lib/pachtray/_internal/*.dist-info.
EOF

for script in postinst prerm postrm; do
  install -m 0755 "$here/$script" "$pkg/DEBIAN/$script"
done
installed_size="$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)"
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@INSTALLED_SIZE@/$installed_size/" \
  "$here/control.in" > "$pkg/DEBIAN/control"

# Files root-owned and not group/world-writable, whoever builds. zstd: fast to build, read by dpkg
# since 1.21.18 (Debian 12, Ubuntu 21.10).
chmod -R u=rwX,go=rX "$pkg/usr"
deb="$out/pachtray_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zzstd -z3 --build "$pkg" "$deb" >/dev/null
echo "$deb"
