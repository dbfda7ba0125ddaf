"""Log in from the GUI against the embedded server in auth mode: browser login finishing by
itself, the user shown, repos without access greyed, cancel, timeout and log out."""

from __future__ import annotations

import threading
import uuid

import pytest
import requests
from guihelpers import find_action, isolated_env, make_app  # noqa: F401 - fixture
from PySide6.QtCore import Qt

from conftest import Daemon, LocalPachd

ROOT_TOKEN = "root-token-for-gui-tests"


@pytest.fixture(scope="module")
def auth_daemon(tmp_path_factory):
    """The embedded server in auth mode with three repos for user:alice (read, write, none) and a daemon
    that has no token yet (shared by this module; each test logs in or out itself)."""
    from pachyderm_sdk.api import auth, pfs

    tmp = tmp_path_factory.mktemp("auth")
    server = LocalPachd(tmp / "pachd", extra=["--auth", "--root-token", ROOT_TOKEN]).start()
    daemon = Daemon(tmp / "daemon", server.address, env=isolated_env(tmp / "home"))
    try:
        root = server.client(auth_token=ROOT_TOKEN)
        names = {key: f"{key}-{uuid.uuid4().hex[:8]}" for key in ("readable", "writable", "secret")}
        for key, name in names.items():
            root.pfs.create_repo(repo=pfs.Repo(name=name, type="user"))
            role = {"readable": "repoReader", "writable": "repoWriter"}.get(key)
            if role:
                root.auth.modify_role_binding(resource=auth.Resource(type=auth.ResourceType.REPO,
                                                                     name=f"default/{name}"),
                                              principal="user:alice", roles=[role])
        root._channel.close()
        daemon.tmp.mkdir(parents=True)
        daemon.start()
        yield daemon, names
    finally:
        daemon.stop()
        server.stop()


def browser_as(user: str, opened: list):
    """Stands in for the user's browser: follows the login URL and submits the user name."""
    def open_url(url: str) -> None:
        opened.append(url)
        threading.Thread(target=lambda: requests.get(url, params={"user": user}, timeout=30), daemon=True).start()

    return open_url


def test_login_shows_user_and_access_then_logout(make_app, auth_daemon, qtbot):
    daemon, names = auth_daemon
    app = make_app(daemon, wait_repos=False)
    qtbot.waitUntil(lambda: app.controller.status.auth == "unauthenticated", timeout=20000)
    app.tray.rebuild()
    assert find_action(app.tray.menu, ["Not logged in"]) is not None
    assert find_action(app.tray.menu, ["Log in…"]).isEnabled()
    assert app.window.user_label.text() == "Not logged in"

    opened = []
    app.open_url = browser_as("alice", opened)
    flow = app.start_login()
    with qtbot.waitSignal(flow.finished, timeout=60000) as result:
        pass
    assert result.args == [True, ""], result.args
    assert opened and "state=" in opened[0]
    qtbot.waitUntil(lambda: app.controller.status.user == "alice", timeout=20000)
    assert app.window.user_label.text() == "User: alice"
    app.tray.rebuild()
    assert find_action(app.tray.menu, ["Signed in as alice"]) is not None
    assert find_action(app.tray.menu, ["Log out (alice)"]) is not None

    qtbot.waitUntil(lambda: {r["repo"] for r in app.controller.repos["repos"]} >= set(names.values()), timeout=20000)
    access = {r["repo"]: r["authorization"] for r in app.controller.repos["repos"]}
    assert access[names["readable"]] == "read"
    assert access[names["writable"]] == "write"
    assert access[names["secret"]] == "none"
    model = app.window.browser.repo_model
    secret = model.index_of("default", names["secret"])
    assert not model.flags(secret) & Qt.ItemFlag.ItemIsEnabled
    assert "repoReader" in model.data(secret, Qt.ItemDataRole.ToolTipRole)
    assert model.data(secret.siblingAtColumn(2)) == "no access"
    app.tray.rebuild()
    assert not find_action(app.tray.menu, ["Mount", "default", names["secret"]]).isEnabled()
    read_only = find_action(app.tray.menu, ["Mount", "default", names["readable"], "master (new)", "Read-write"])
    assert read_only is not None and not read_only.isEnabled()

    find_action(app.tray.menu, ["Log out (alice)"]).trigger()
    qtbot.waitUntil(lambda: app.controller.status.auth == "unauthenticated", timeout=20000)
    assert app.window.user_label.text() == "Not logged in"


def test_login_cancel_and_timeout(make_app, auth_daemon, qtbot):
    from pachtray.gui.login import LoginFlow

    daemon, _ = auth_daemon
    app = make_app(daemon, wait_repos=False, show_window=False)
    opened = []
    flow = LoginFlow(app.controller, open_url=opened.append, token_wait=1.0)  # the user never finishes
    flow.start()
    qtbot.waitUntil(lambda: bool(opened) and flow.box is not None, timeout=20000)
    with qtbot.waitSignal(flow.finished, timeout=10000) as result:
        flow.box.button(flow.box.StandardButton.Cancel).click()
    assert result.args == [False, "Login cancelled."]

    timed = LoginFlow(app.controller, open_url=opened.append, timeout=1.5, token_wait=1.0)
    with qtbot.waitSignal(timed.finished, timeout=20000) as result:
        timed.start()
    assert result.args[0] is False and "not completed within 2 seconds" in result.args[1]
    assert app.controller.status.auth == "unauthenticated"
