"""The app's Qt icons, from the resources folder `pachtray.frozen.resources_dir()` finds."""

from __future__ import annotations

from PySide6.QtGui import QIcon

from pachtray.frozen import resources_dir

TRAY_STATES = ("disconnected", "connected", "mounted", "busy", "error")


def app_icon() -> QIcon:
    return QIcon(str(resources_dir() / "pachtray.svg"))


def tray_icons() -> dict[str, QIcon]:
    folder = resources_dir()
    return {state: QIcon(str(folder / f"tray-{state}.svg")) for state in TRAY_STATES}
