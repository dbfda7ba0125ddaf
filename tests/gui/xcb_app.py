"""The real tray app on an X display, for tests that drive it with real input (an X server, a tray
host, XTEST clicks): `python xcb_app.py API_PORT SOCK_PATH MOUNT_DIR`. Prints one JSON line per
event: `started`, each change of the Activity entries, each notice (`told`), where each
notification balloon is on the screen, and the main window's first showing (`window`)."""

from __future__ import annotations

import json
import os
import sys
import time

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from pachtray import config
from pachtray.gui.app import PachtrayApp
from pachtray.gui.notices import NOTIFICATION


def say(**event) -> None:
    print(json.dumps(event), flush=True)


def slow_repo_listings(seconds: float) -> None:
    """PACHTRAY_TEST_SLOW_REPOS: the daemon's repo listing answers `seconds` late (a slow cluster)."""
    from pachtray.gui.client import EXTRAS, DaemonClient

    get = DaemonClient.get

    def slow(self, route, timeout=None, **params):
        if route == EXTRAS + "/repos":
            time.sleep(seconds)
        return get(self, route, timeout=timeout, **params)
    DaemonClient.get = slow


def main() -> int:
    port, sock, mount_dir = sys.argv[1:4]
    if os.environ.get("PACHTRAY_TEST_SLOW_REPOS"):
        slow_repo_listings(float(os.environ["PACHTRAY_TEST_SLOW_REPOS"]))
    qapp = QApplication(sys.argv[:1])
    qapp.setQuitOnLastWindowClosed(False)
    app = PachtrayApp(config.Settings(api_port=int(port), sock_path=sock, mount_dir=mount_dir, restore_mounts=False))

    def balloon(title: str) -> None:
        shown = [w for w in qapp.topLevelWidgets() if w.metaObject().className() == "QBalloonTip" and w.isVisible()]
        if not shown:
            QTimer.singleShot(100, lambda: balloon(title))
            return
        g = shown[0].frameGeometry()
        say(balloon=title, x=g.x(), y=g.y(), w=g.width(), h=g.height())

    def told(title: str, message: str, is_error: bool, how: str) -> None:
        say(told=title, message=message, how=how)
        if how == NOTIFICATION:
            QTimer.singleShot(300, lambda: balloon(title))  # shown, and placed by the window manager-less X server

    app.notices.told.connect(told)
    app.activity.changed.connect(lambda: say(activity=len(app.activity.entries())))
    app.quit_requested.connect(qapp.exit)
    shown = [False]

    def window_shown() -> None:  # told once, when the main window first shows
        if not shown[0] and app.window is not None and app.window.isVisible():
            shown[0] = True
            say(window=app.window.windowTitle())
    watch = QTimer(qapp)
    watch.timeout.connect(window_shown)
    watch.start(100)
    app.start(show_window=False)
    QTimer.singleShot(0, lambda: say(started=True, tray=app.tray.icon.isVisible()))
    code = qapp.exec()
    app.dispose()
    return code


if __name__ == "__main__":
    sys.exit(main())
