"""What a software centre and a desktop menu read about Pachtray, checked from the sources (no build):
the AppStream metainfo (appstreamcli), the desktop entries (desktop-file-validate), and that they, the
package's control fields and the screenshots tell the same story."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET

import pytest

from conftest import ROOT
from pachtray import __version__

LINUX = ROOT / "packaging" / "linux"
APP_ID = "io.github.pachtray.Pachtray"
METAINFO = LINUX / f"{APP_ID}.metainfo.xml"
DESKTOP_FILES = [LINUX / "pachtray.desktop", LINUX / "pachtray-autostart.desktop"]


def need(tool: str) -> str:
    path = shutil.which(tool)
    if not path:
        pytest.skip(f"{tool} is not installed (scripts/setup.sh installs it when run as root)")
    return path


def desktop_key(path, key: str) -> str:
    return re.search(rf"^{key}=(.*)$", path.read_text(), re.M)[1]


def control_field(name: str) -> str:
    return re.search(rf"^{name}: (.*)$", (LINUX / "control.in").read_text(), re.M)[1]


def test_metainfo_is_valid_appstream():
    proc = subprocess.run([need("appstreamcli"), "validate", "--no-net", "--strict", "--explain", str(METAINFO)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("path", DESKTOP_FILES, ids=lambda p: p.name)
def test_desktop_entries_are_valid(path):
    proc = subprocess.run([need("desktop-file-validate"), str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr  # no errors, no hints


def test_metainfo_agrees_with_the_desktop_entry_the_control_file_and_the_version():
    root = ET.parse(METAINFO).getroot()
    assert root.findtext("id") == APP_ID
    launchable = root.find("launchable[@type='desktop-id']").text
    menu_entry = LINUX / launchable
    assert menu_entry in DESKTOP_FILES
    assert root.findtext("icon[@type='stock']") == desktop_key(menu_entry, "Icon") == "pachtray"
    categories = [c.text for c in root.iter("category")]
    assert categories == desktop_key(menu_entry, "Categories").rstrip(";").split(";")
    assert root.findtext("summary") == control_field("Description")  # the one-line summary, wherever shown
    assert root.findtext("url[@type='homepage']") == control_field("Homepage")
    assert root.find("releases/release").get("version") == __version__  # newest release first


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_screenshots_are_the_ones_in_docs():
    """Each screenshot URL names a picture in docs/screenshots (published with the repository), with its size."""
    images = ET.parse(METAINFO).getroot().findall("screenshots/screenshot/image")
    assert len(images) >= 2
    homepage = control_field("Homepage")
    raw = homepage.replace("https://github.com/", "https://raw.githubusercontent.com/") + "/main/"
    for image in images:
        assert image.text.startswith(raw), image.text
        local = ROOT / image.text[len(raw):]
        assert local.parent == ROOT / "docs" / "screenshots" and local.is_file(), image.text
        assert png_size(local.read_bytes()) == (int(image.get("width")), int(image.get("height"))), image.text
