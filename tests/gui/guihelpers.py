"""GUI test fixtures and helpers: one real daemon shared by the GUI modules (against the session's
embedded server), settings pointing the app at it, and a started PachtrayApp disposed at teardown.

Test modules import the fixtures from here: a second conftest.py would replace tests/conftest.py
in sys.modules (both are top-level `conftest`) and break `from conftest import ...` elsewhere.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING
from pathlib import Path

import pytest

from conftest import Daemon, free_port, wait_for

if TYPE_CHECKING:
    from PySide6.QtGui import QAction
    from PySide6.QtWidgets import QMenu


def isolated_env(home: Path) -> dict:
    return {
        "PACH_CONFIG": str(home / "pachctl-config.json"),
        "PACHTRAY_DATA_DIR": str(home / "data"),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_DATA_HOME": str(home / "share"),
        "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
    }


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


@pytest.fixture
def sdk(pachd):
    c = pachd.client()
    yield c
    with contextlib.suppress(Exception):
        c.close()


def make_repo(client, name: str, files: dict[str, bytes] | None = None, branch: str = "master",
              description: str = "") -> None:
    from pachyderm_sdk.api import pfs

    repo = pfs.Repo(name=name, type="user")
    client.pfs.create_repo(repo=repo, description=description)
    if files:
        with client.pfs.commit(branch=pfs.Branch(repo=repo, name=branch)) as c:
            for path, data in files.items():
                c.put_file_from_bytes(path, data)


def unmount_all(daemon: Daemon) -> None:
    with contextlib.suppress(Exception):
        daemon.put("/_unmount_all", {})


@contextlib.contextmanager
def mounted_repo(daemon: Daemon, client, repo: str, files: dict[str, bytes]):
    """A new repo holding `files`, mounted read-only for the block (yields the mount name);
    every mount of the daemon is gone after it."""
    make_repo(client, repo, files)
    name = f"m_{repo}"
    try:
        assert daemon.put("/_mount", {"mounts": [{"name": name, "repo": repo}]}).ok
        yield name
    finally:
        unmount_all(daemon)


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
