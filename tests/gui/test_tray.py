"""The tray menu drives real mounts: mount, commit and unmount through the daemon and FUSE."""

from __future__ import annotations

import os

from guihelpers import commit_in_dialog, find_action, make_app, make_repo, sdk, shared_daemon, unmount_all  # noqa: F401 - fixtures

from pachtray.gui import dialogs


def _menu_texts(menu) -> list[str]:
    return [a.text() for a in menu.actions() if not a.isSeparator()]


def test_menu_lists_cluster_and_entries(make_app, shared_daemon, sdk, unique_name):
    repo = unique_name("0tray")  # sorts first: the menu lists the first MENU_LIMIT repos of a project
    make_repo(sdk, repo, {"/a.txt": b"a"})
    app = make_app(shared_daemon, show_window=False)
    app.controller.refresh_repos()
    tray = app.tray
    tray.menu.aboutToShow.emit()
    texts = _menu_texts(tray.menu)
    assert texts[0].endswith("— connected"), texts
    for entry in ("Mount", "Open window", "Open JupyterLab", "Settings…", "Quit"):
        assert entry in texts
    assert "Log in…" in texts and not find_action(tray.menu, ["Log in…"]).isEnabled()  # auth is off
    assert find_action(tray.menu, ["Mount", "default", repo, "master", "Read-only"]) is not None
    assert "connected" in tray.icon.toolTip()
    assert tray.state == "connected" or tray.state == "mounted"


def test_mount_commit_unmount_from_menu(make_app, shared_daemon, sdk, unique_name, qtbot):
    from pachyderm_sdk.api import pfs

    repo = unique_name("0tray")
    make_repo(sdk, repo, {"/hello.txt": b"hello"})
    app = make_app(shared_daemon, show_window=False)
    tray, controller = app.tray, app.controller
    try:
        tray.rebuild()
        # read-only mount from Mount ▸ project ▸ repo ▸ branch ▸ Read-only
        with qtbot.waitSignal(controller.notify, timeout=30000) as note:
            find_action(tray.menu, ["Mount", "default", repo, "master", "Read-only"]).trigger()
        assert note.args[2] is False, note.args
        name = f"default_{repo}"
        qtbot.waitUntil(lambda: any(m.name == name and m.state == "mounted" for m in controller.status.mounted),
                        timeout=20000)
        mountpoint = shared_daemon.mount_dir / name
        with open(mountpoint / "hello.txt", "rb") as f:
            assert f.read() == b"hello"
        assert tray.state == "mounted"
        tray.menu.aboutToShow.emit()
        entry = next(a for a in tray.menu.actions() if a.text().startswith(f"{name} (ro)"))
        assert [a.text() for a in entry.menu().actions()] == ["Open folder", "Unmount"]

        # unmount it from the menu
        find_action(entry.menu(), ["Unmount"]).trigger()
        qtbot.waitUntil(lambda: not any(m.name == name for m in controller.status.mounted), timeout=20000)
        assert not os.path.exists(mountpoint / "hello.txt")

        # read-write mount, write a file, commit from the menu
        find_action(tray.menu, ["Mount", "default", repo, "master", "Read-write"]).trigger()
        qtbot.waitUntil(lambda: any(m.name == name and m.mode == "rw" and m.state == "mounted"
                                    for m in controller.status.mounted), timeout=20000)
        (mountpoint / "new.txt").write_bytes(b"new data")
        controller.refresh()
        qtbot.waitUntil(lambda: any(m.name == name and m.pending >= 1
                                    for m in controller.status.mounted), timeout=20000)
        tray.menu.aboutToShow.emit()
        entry = next(a for a in tray.menu.actions() if a.text().startswith(f"{name} (rw)"))
        commit = next(a for a in entry.menu().actions() if a.text().startswith("Commit…"))
        assert commit.text() == "Commit… (1 pending)" and commit.isEnabled()
        commit.trigger()
        box = next(d for d in dialogs.open_dialogs() if d.windowTitle() == "Commit changes")
        with qtbot.waitSignal(controller.notify, timeout=30000) as note:
            commit_in_dialog(qtbot, box)
        assert note.args == ["Committed", f"Changes in {name} committed", False], note.args
        head = sdk.pfs.inspect_branch(branch=pfs.Branch(repo=pfs.Repo(name=repo, type="user"), name="master")).head
        data = b"".join(sdk.pfs.pfs_file(pfs.File(commit=pfs.Commit(id=head.id, repo=pfs.Repo(name=repo, type="user")),
                                                  path="/new.txt")))
        assert data == b"new data"
        qtbot.waitUntil(lambda: all(not m.pending for m in controller.status.mounted), timeout=20000)

        # Unmount with uncommitted changes asks first (it would commit them without a review)
        (mountpoint / "more.txt").write_bytes(b"more")
        controller.refresh()
        qtbot.waitUntil(lambda: any(m.name == name and m.pending == 1 for m in controller.status.mounted),
                        timeout=20000)
        tray.menu.aboutToShow.emit()
        entry = next(a for a in tray.menu.actions() if a.text().startswith(f"{name} (rw)"))
        find_action(entry.menu(), ["Unmount"]).trigger()
        box = next(d for d in dialogs.open_dialogs() if d.windowTitle() == "Unmount")
        assert box.text() == f"{name} has 1 uncommitted change(s). Unmounting commits them first."
        box.reject()  # Cancel: still mounted, nothing committed
        controller.refresh()
        qtbot.wait(500)
        assert any(m.name == name and m.pending == 1 for m in controller.status.mounted)
        assert sdk.pfs.inspect_branch(branch=pfs.Branch(repo=pfs.Repo(name=repo, type="user"),
                                                        name="master")).head.id == head.id
    finally:
        unmount_all(shared_daemon)


def test_rest_initiated_mount_shows_in_tray(make_app, shared_daemon, sdk, unique_name, qtbot):
    """A mount made through the REST API (as JupyterLab does) reaches the tray via the change feed."""
    repo = unique_name("rest")
    make_repo(sdk, repo, {"/x": b"x"})
    app = make_app(shared_daemon, show_window=False)
    name = f"jl_{repo}"
    try:
        resp = shared_daemon.put("/_mount", {"mounts": [{"name": name, "repo": repo, "branch": "master"}]})
        assert resp.status_code == 200, resp.text
        app.controller._timer.stop()  # no periodic refresh: only the change feed can bring it
        qtbot.waitUntil(lambda: any(m.name == name for m in app.controller.status.mounted), timeout=30000)
        app.tray.menu.aboutToShow.emit()
        assert any(a.text().startswith(f"{name} (ro)") for a in app.tray.menu.actions())
        assert "1 mount" in app.tray.icon.toolTip()
    finally:
        unmount_all(shared_daemon)


def test_quit_keep_mounts_leaves_daemon_running(make_app, shared_daemon, qtbot):
    app = make_app(shared_daemon, show_window=False)
    box = app.request_quit()
    assert box.text() == "Keep your mounts running after quitting?"
    keep = next(b for b in box.buttons() if b.text() == "Keep mounts running")
    with qtbot.waitSignal(app.quit_requested, timeout=10000) as quit_code:
        keep.click()
    assert quit_code.args == [0]
    assert shared_daemon.get("/health").ok


def test_failed_mount_notifies_and_shows_error_dialog(make_app, shared_daemon, sdk, unique_name, qtbot):
    repo = unique_name("err")
    make_repo(sdk, repo, {"/f": b"f"})
    app = make_app(shared_daemon, show_window=False)
    with qtbot.waitSignal(app.controller.notify, timeout=30000) as note:
        app.controller.mount("default", repo, branch="no-such-branch")
    title, message, is_error = note.args
    assert is_error and title == "Mount failed"
    assert "no-such-branch" in message
    box = next(d for d in dialogs.open_dialogs() if d.windowTitle() == "Mount failed")
    assert box.text() == message


def test_quit_stop_everything_stops_daemon_and_unmounts(make_app, daemon_factory, pachd, sdk, unique_name, qtbot):
    daemon = daemon_factory(pachd.address)
    repo = unique_name("quit")
    make_repo(sdk, repo, {"/f": b"f"})
    name = f"q_{repo}"
    assert daemon.put("/_mount", {"mounts": [{"name": name, "repo": repo, "mode": "rw"}]}).ok
    (daemon.mount_dir / name / "unsaved.txt").write_bytes(b"pending")
    app = make_app(daemon, show_window=False)
    qtbot.waitUntil(lambda: any(m.pending > 0 for m in app.controller.status.mounted),
                    timeout=20000)
    box = app.request_quit()
    assert f"Uncommitted read-write changes: {name} (1)" in box.informativeText()
    assert box.icon() == box.Icon.Warning
    stop = next(b for b in box.buttons() if b.text() == "Stop everything")
    with qtbot.waitSignal(app.quit_requested, timeout=90000) as code:
        stop.click()
    assert code.args == [0]
    daemon.proc.wait(30)
    assert daemon.proc.returncode == 0
    assert not os.path.ismount(daemon.mount_dir)
    from pachyderm_sdk.api import pfs

    head = pfs.Commit(branch=pfs.Branch(repo=pfs.Repo(name=repo, type="user"), name="master"))
    assert not sdk.pfs.path_exists(pfs.File(commit=head, path="/unsaved.txt"))  # stays staged, never auto-committed


def test_menu_stays_small_with_ten_thousand_repos(qapp):
    from pachtray.gui import icons
    from pachtray.gui.client import DaemonClient
    from pachtray.gui.controller import Controller, Status
    from pachtray.gui.tray import MENU_LIMIT, Tray

    controller = Controller(DaemonClient(1))
    controller.status = Status(reachable=True, info={"connection": "connected", "local": True})
    long_name = "L" * 120 + "end"
    controller.repos = {"projects": [{"name": "default", "description": ""}],
                        "repos": [{"project": "default", "repo": long_name, "branches": ["master"],
                                   "authorization": "off"}] +
                                 [{"project": "default", "repo": f"r{i:05d}", "branches": ["master"],
                                   "authorization": "off"} for i in range(10000 - 1)]}
    controller.repos_loaded = True
    opened = []
    tray = Tray(controller, icons.tray_icons(), {k: (lambda k=k: opened.append(k)) for k in
                                                 ("window", "jupyter", "login", "settings", "quit")})
    try:
        tray.rebuild()
        default = find_action(tray.menu, ["Mount", "default"]).menu()
        texts = [a.text() for a in default.actions()]
        assert len(texts) == MENU_LIMIT + 1 and texts[-1] == f"{10000 - MENU_LIMIT} more… (open window)"
        # a 123-character repo name is cut in the middle (the menu stays on the screen), whole in its tooltip
        assert texts[0] == "L" * 29 + "…" + "L" * 27 + "end" and default.actions()[0].toolTip() == long_name
        default.actions()[-1].trigger()
        find_action(tray.menu, ["Settings…"]).trigger()
        assert opened == ["window", "settings"]
        assert tray.state == "connected"
        assert tray.icon.toolTip() == "Pachtray — Local (embedded), connected\n0 mounts"
    finally:
        tray.dispose()
        controller.tasks.close()


def test_the_tray_says_why_its_icon_shows_an_error_and_keeps_mounts_in_name_order(make_app, shared_daemon, sdk,
                                                                                 unique_name, qtbot):
    repo = unique_name("why")
    make_repo(sdk, repo, {"/x": b"x"})
    app = make_app(shared_daemon, show_window=False)
    tray, controller = app.tray, app.controller
    try:
        for name, mode in (("zz_" + repo, "rw"), ("aa_" + repo, "ro")):
            assert shared_daemon.put("/_mount", {"mounts": [{"name": name, "repo": repo, "mode": mode}]}).ok
        rw = "zz_" + repo
        os.symlink("missing.txt", shared_daemon.mount_dir / rw / "dangling")  # a commit must refuse it
        failed = []
        controller.commit(rw, failed_to=failed.append)
        qtbot.waitUntil(lambda: bool(failed), timeout=30000)
        controller.refresh()
        qtbot.waitUntil(lambda: any(m.name == rw and m.error for m in controller.status.mounted), timeout=20000)
        ours = [m.name for m in controller.status.mounted if m.name.endswith(repo)]
        assert ours == sorted(ours) == ["aa_" + repo, rw]
        assert tray.state == "error"
        tray.update_icon()
        assert f"{rw}: symbolic link /dangling -> missing.txt" in tray.icon.toolTip()
        tray.menu.aboutToShow.emit()
        entry = next(a for a in tray.menu.actions() if a.text().startswith(f"{rw} (rw)"))
        first = entry.menu().actions()[0]
        assert first.text().startswith("⚠ ") and not first.isEnabled() and "dangling" in first.toolTip()
        os.unlink(shared_daemon.mount_dir / rw / "dangling")  # so the unmount's commit goes through
    finally:
        unmount_all(shared_daemon)


def test_a_listing_that_fails_keeps_the_last_one_of_the_same_cluster_and_user_only(qapp):
    """The window keeps showing what was listed while the cluster does not answer, but never another
    cluster's or another user's repos."""
    from pachtray.gui.client import DaemonClient
    from pachtray.gui.controller import Controller, Status

    controller = Controller(DaemonClient(1))
    listing = {"projects": [{"name": "default"}], "repos": [{"project": "default", "repo": "images"}]}

    def answered(address: str, user: str) -> None:
        controller._apply_status(Status(reachable=True, config={"pachd_address": address},
                                        info={"connection": "connected", "user": user}))
    try:
        answered("grpc://a:30650", "user:alice")
        controller._apply_repos(listing)
        controller._repos_failed(ConnectionError("the cluster does not answer"))
        assert controller.repos == listing and controller.repos_error == "the cluster does not answer"
        controller._status_failed(ConnectionError("daemon restarting"))
        answered("grpc://a:30650", "user:alice")  # the same cluster and user after a daemon restart
        assert controller.repos == listing
        answered("grpc://a:30650", "user:bob")
        assert controller.repos == {"projects": [], "repos": []} and not controller.repos_loaded
        controller._apply_repos(listing)
        controller._status_failed(ConnectionError("daemon restarting"))
        answered("grpc://b:30650", "user:bob")
        assert controller.repos == {"projects": [], "repos": []}
    finally:
        controller.stop()
        controller.tasks.close()


def test_an_older_repo_listing_that_answers_last_does_not_replace_a_newer_one(qapp, qtbot):
    """Listings run on four workers: the first answer may come last, and it must not undo the second
    (a repo made meanwhile vanished from the tray until the 30-s timer)."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from conftest import free_port
    from pachtray.gui.client import DaemonClient
    from pachtray.gui.controller import Controller

    listings = [{"projects": [{"name": "default"}], "repos": []},
                {"projects": [{"name": "default"}], "repos": [{"project": "default", "repo": "new"}]}]
    second_answered = threading.Event()
    asked = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            with lock:
                n = len(asked)
                asked.append(n)
            if n == 0:
                second_answered.wait(10)  # the first asked answers after the second
            body = json.dumps(listings[n]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            if n == 1:
                second_answered.set()

        def log_message(self, *args):
            pass

    lock = threading.Lock()
    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    controller = Controller(DaemonClient(port))
    try:
        controller.refresh_repos()
        qtbot.waitUntil(lambda: len(asked) == 1, timeout=5000)
        controller.refresh_repos()
        qtbot.waitUntil(lambda: controller.repos == listings[1], timeout=10000)
        qtbot.waitUntil(lambda: controller.tasks.pending == 0, timeout=15000)  # the older answer too
        qtbot.wait(200)
        assert controller.repos == listings[1]
    finally:
        controller.stop()
        controller.tasks.close()
        server.shutdown()
        server.server_close()


def test_why_the_daemon_has_no_cluster_is_told_once(qapp):
    """The embedded server could not start (its port taken): said in a dialog or notification, not
    only in the Repositories tab's footer."""
    from pachtray.gui.client import DaemonClient
    from pachtray.gui.controller import Controller, Status

    controller = Controller(DaemonClient(1))
    told = []
    controller.notify.connect(lambda *args: told.append(args))
    why = "the embedded local server cannot listen on 127.0.0.1:30650: another program uses that port"
    try:
        for _ in range(2):
            controller._apply_status(Status(reachable=True, info={"connection": "unconnected", "connection_error": why}))
        assert told == [("Not connected to a cluster", why, True)]
    finally:
        controller.stop()
        controller.tasks.close()
