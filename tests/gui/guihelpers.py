"""GUI test fixtures and helpers: one real daemon shared by the GUI modules (against the session's
embedded server), settings pointing the app at it, and a started PachtrayApp disposed at teardown.

Test modules import the fixtures from here: a second conftest.py would replace tests/conftest.py
in sys.modules (both are top-level `conftest`) and break `from conftest import ...` elsewhere.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from clusterhelpers import isolated_env, make_repo, mounted_repo, sdk, unmount_all  # noqa: F401 - re-exported
from conftest import Daemon, free_port, wait_for

if TYPE_CHECKING:
    from PySide6.QtGui import QAction
    from PySide6.QtWidgets import QMenu


_shared: dict[str, Daemon] = {}


@pytest.fixture(scope="session")
def shared_daemon(pachd, tmp_path_factory):
    """One daemon for all GUI test modules (each test uses its own repos and mount names).

    Every module that imports this fixture gets its own fixture definition, so the daemon is
    cached here to start it only once; the first session teardown stops it (stop is idempotent).
    """
    if pachd.address not in _shared:
        tmp = tmp_path_factory.mktemp("gui-daemon")
        _shared[pachd.address] = Daemon(tmp, pachd.address, env=isolated_env(tmp / "home")).start()
    yield _shared[pachd.address]
    daemon = _shared.pop(pachd.address, None)
    if daemon is not None:
        daemon.stop()


@pytest.fixture(scope="module")
def local_daemon(tmp_path_factory):
    """A daemon that runs its own embedded local server (repo management is allowed there)."""
    tmp = tmp_path_factory.mktemp("gui-local-daemon")
    d = Daemon(tmp, None, extra=["--local-pachd-port", str(free_port())], env=isolated_env(tmp / "home"))
    d.start(timeout=60)
    wait_for(lambda: d.get("/pachtray/v1/info").json()["connection"] == "connected", 60, what="local server")
    yield d
    d.stop()


def settings_for(daemon: Daemon):
    from pachtray import config

    settings = config.Settings(api_port=daemon.port, sock_path=daemon.sock_path, mount_dir=str(daemon.mount_dir),
                               restore_mounts=False)
    settings.save()
    return settings


@pytest.fixture
def make_app(qapp, qtbot):
    """Start PachtrayApp against a daemon; waits until it has the daemon's status."""
    from pachtray.gui.app import PachtrayApp

    started = []

    def make(daemon: Daemon, show_window: bool = True, wait_repos: bool = True) -> PachtrayApp:
        app = PachtrayApp(settings_for(daemon))
        started.append(app)
        app.start(show_window=show_window)
        qtbot.waitUntil(lambda: app.controller.status.connection == "connected" and app.attached == "attached",
                        timeout=30000)
        if wait_repos:
            qtbot.waitUntil(lambda: not app.controller.repos_error and bool(app.controller.repos.get("projects")),
                            timeout=30000)
        return app

    yield make
    from PySide6.QtCore import QCoreApplication, QEvent

    from pachtray.gui import dialogs

    for box in dialogs.open_dialogs():
        box.done(0)
    for app in started:
        app.dispose()
        app.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)


def commit_in_dialog(qtbot, dialog, message: str = "") -> None:
    """Commit through the commit dialog once it has listed the changes (real widgets, real clicks)."""
    from PySide6.QtCore import Qt

    qtbot.waitUntil(lambda: dialog.commit_button.isEnabled(), timeout=20000)
    if message:
        dialog.message.setPlainText(message)
    qtbot.mouseClick(dialog.commit_button, Qt.MouseButton.LeftButton)


def find_action(menu: QMenu, path: list[str]) -> QAction | None:
    """The action at a path of menu texts, e.g. ["Mount", "default", "images", "master", "Read-only"]."""
    head, rest = path[0], path[1:]
    for action in menu.actions():
        if action.text() != head:
            continue
        if not rest:
            return action
        sub = action.menu()
        if sub is not None:
            return find_action(sub, rest)
    return None


def select_row(qtbot, view, model, predicate, timeout=20000) -> int:
    """Wait until a row of a paged model matches, then make it the view's current row."""
    qtbot.waitUntil(lambda: not model.loading and any(predicate(r) for r in model.rows()), timeout=timeout)
    row = next(i for i, r in enumerate(model.rows()) if predicate(r))
    view.setCurrentIndex(model.index(row, 0))
    return row
