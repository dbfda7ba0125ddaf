"""Icons from resources/ (source tree, installed package data, or the frozen bundle)."""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtGui import QIcon

TRAY_STATES = ("disconnected", "connected", "mounted", "busy", "error")


def resources_dir() -> Path:
    candidates = []
    if getattr(sys, "frozen", False):
        candidates.append(Path(getattr(sys, "_MEIPASS", Path(sys.executable).parent)) / "resources")
    here = Path(__file__).resolve()
    candidates += [here.parents[3] / "resources", here.parents[1] / "resources"]
    for c in candidates:
        if (c / "pachtray.svg").is_file():
            return c
    raise FileNotFoundError("Pachtray's icons are missing; looked in: " + ", ".join(map(str, candidates)))


def app_icon() -> QIcon:
    return QIcon(str(resources_dir() / "pachtray.svg"))


def tray_icons() -> dict[str, QIcon]:
    folder = resources_dir()
    return {state: QIcon(str(folder / f"tray-{state}.svg")) for state in TRAY_STATES}
