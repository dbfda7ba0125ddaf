"""The GUI follows the cluster and tells what happened (issue 17): the window and the tray menu
keep up with commits made elsewhere, an upstream move of a mounted branch is announced once, the
Activity tab lists mounts, commits and errors, each error shown once. Real daemon, real embedded
server, real FUSE, real widgets; changes made with the SDK, as a colleague would."""

from __future__ import annotations

import re
import time

from guihelpers import (find_action, make_app, make_repo, sdk, select_row as _select_row, shared_daemon,  # noqa: F401
                        unmount_all)
from pachyderm_sdk.api import pfs

from pachtray.gui import dialogs
from pachtray.gui.client import EXTRAS, DaemonClient
from pachtray.gui.notices import DIALOG


def _commit(sdk, repo: str, files: dict[str, bytes], branch: str = "master") -> str:
    with sdk.pfs.commit(branch=pfs.Branch(repo=pfs.Repo(name=repo, type="user"), name=branch)) as c:
        for path, data in files.items():
            c.put_file_from_bytes(path, data)
    return c.id


def test_window_shows_a_commit_file_and_branch_made_elsewhere_without_refresh(make_app, shared_daemon, sdk,
                                                                               unique_name, qtbot):
    repo = unique_name("live")
    make_repo(sdk, repo, {"/a.txt": b"a"})
    app = make_app(shared_daemon)
    window = app.window
    qtbot.waitUntil(lambda: window.browser.select_repo("default", repo), timeout=20000)
    _select_row(qtbot, window.browser.branch_table, window.browser.branches_model, lambda r: r["name"] == "master")
    qtbot.waitUntil(lambda: window.browser.commits_model.rowCount() == 1 and window.browser.files_model.rowCount() == 1,
                    timeout=20000)
    first = window.browser.commits_model.row(0)["id"]
    window.browser.commit_table.setCurrentIndex(window.browser.commits_model.index(0, 0))  # the user looks at the first commit

    new = _commit(sdk, repo, {"/b.txt": b"b"})
    sdk.pfs.create_branch(branch=pfs.Branch(repo=pfs.Repo(name=repo, type="user"), name="dev"),
                          head=pfs.Commit(branch=pfs.Branch(repo=pfs.Repo(name=repo, type="user"), name="master")))
    qtbot.waitUntil(lambda: [r["id"] for r in window.browser.commits_model.rows()] == [new, first], timeout=20000)
    qtbot.waitUntil(lambda: {r["name"] for r in window.browser.branches_model.rows()} == {"master", "dev"}, timeout=20000)
    master = next(r for r in window.browser.branches_model.rows() if r["name"] == "master")
    assert master["head"] == new
    # The user's selection stays: branch master, the first commit (its files are still those of that commit).
    assert window.browser.branches_model.row(window.browser.branch_table.currentIndex().row())["name"] == "master"
    assert window.browser.commits_model.row(window.browser.commit_table.currentIndex().row())["id"] == first
    assert [r["name"] for r in window.browser.files_model.rows()] == ["a.txt"]
    # Looking at the branch head again shows the new file; the next commit shows up there by itself.
    window.browser.branch_table.setCurrentIndex(window.browser.branches_model.index(window.browser.branches_model.find("name", "dev"), 0))
    _select_row(qtbot, window.browser.branch_table, window.browser.branches_model, lambda r: r["name"] == "master")
    qtbot.waitUntil(lambda: [r["name"] for r in window.browser.files_model.rows()] == ["a.txt", "b.txt"], timeout=20000)
    _commit(sdk, repo, {"/c.txt": b"c"})
    qtbot.waitUntil(lambda: [r["name"] for r in window.browser.files_model.rows()] == ["a.txt", "b.txt", "c.txt"],
                    timeout=20000)
    # A branch deleted elsewhere while selected: it goes, and so do its commits and files.
    window.browser.branch_table.setCurrentIndex(window.browser.branches_model.index(window.browser.branches_model.find("name", "dev"), 0))
    qtbot.waitUntil(lambda: window.browser.commits_model.rowCount() == 2, timeout=20000)
    sdk.pfs.delete_branch(branch=pfs.Branch(repo=pfs.Repo(name=repo, type="user"), name="dev"))
    qtbot.waitUntil(lambda: [r["name"] for r in window.browser.branches_model.rows()] == ["master"], timeout=20000)
    qtbot.waitUntil(lambda: window.browser.commits_model.rowCount() == 0 and window.browser.files_model.rowCount() == 0,
                    timeout=20000)
    assert not window.browser.mount_ro_button.isEnabled()


def test_tray_mount_menu_lists_existing_repos_on_first_open(make_app, shared_daemon, sdk, unique_name, qtbot,
                                                             monkeypatch):
    """The repos answer comes after the menu opens: "Loading…", then the repos, never "No repos"."""
    repo = unique_name("0first")  # sorts first: the menu lists the first MENU_LIMIT repos
    make_repo(sdk, repo, {"/a.txt": b"a"})
    get = DaemonClient.get

    def slow_repos(self, route, timeout=None, **params):
        if route == EXTRAS + "/repos":
            time.sleep(2.0)  # a cluster slow to list its repos
        return get(self, route, timeout=timeout, **params)

    monkeypatch.setattr(DaemonClient, "get", slow_repos)
    app = make_app(shared_daemon, show_window=False, wait_repos=False)
    tray = app.tray
    tray.menu.aboutToShow.emit()
    texts = [a.text() for a in tray.mount_menu.actions()]
    assert "No repos" not in texts
    if not app.controller.repos_loaded:
        assert texts == ["Loading…"]
        qtbot.waitUntil(lambda: app.controller.repos_loaded, timeout=20000)
    # The answer arrives while the menu is open (it is refilled when shown) ...
    tray.mount_menu.aboutToShow.emit()
    assert find_action(tray.menu, ["Mount", "default", repo, "master", "Read-only"]) is not None


def test_an_open_tray_menu_follows_a_repo_made_elsewhere(make_app, shared_daemon, sdk, unique_name, qtbot):
    app = make_app(shared_daemon, show_window=False)
    tray = app.tray
    tray.menu.aboutToShow.emit()  # the menu is open: the cluster is followed (the 30-s repo timer is not needed)
    repo = unique_name("0made")  # sorts first: the menu lists the first MENU_LIMIT repos
    make_repo(sdk, repo, {"/a.txt": b"a"})
    # (with its branch: a listing taken between CreateRepo and the commit has the repo alone)
    qtbot.waitUntil(lambda: any(r["repo"] == repo and "master" in (r.get("branches") or [])
                                for r in app.controller.repos["repos"]), timeout=15000)
    tray.mount_menu.aboutToShow.emit()
    assert find_action(tray.menu, ["Mount", "default", repo, "master", "Read-only"]) is not None
    tray.menu.aboutToHide.emit()


def test_upstream_move_of_a_mounted_branch_is_announced_once(make_app, shared_daemon, sdk, unique_name, qtbot):
    repo = unique_name("move")
    make_repo(sdk, repo, {"/a.txt": b"a"})
    app = make_app(shared_daemon, show_window=False)
    told = []
    app.notices.told.connect(lambda *args: told.append(args))
    name = f"mv_{repo}"
    try:
        assert shared_daemon.put("/_mount", {"mounts": [{"name": name, "repo": repo}]}).ok
        qtbot.waitUntil(lambda: app.controller.status.mount(name) is not None, timeout=20000)
        _commit(sdk, repo, {"/b.txt": b"b"})
        _commit(sdk, repo, {"/c.txt": b"c"})

        def moves():
            return [t for t in told if t[0] == "New commits upstream"]

        def announced():
            return sum(int(re.match(r"(\d+) new commits? on ", t[1]).group(1)) for t in moves())

        qtbot.waitUntil(lambda: announced() >= 2, timeout=30000)
        assert all(f" on {repo}@master" in t[1] and not t[2] for t in moves())
        qtbot.wait(6000)  # the daemon's next refresh rounds and the GUI's polls: nothing is announced again
        assert announced() == 2, moves()
        qtbot.waitUntil(lambda: app.controller.status.mount(name).can_refresh, timeout=20000)
    finally:
        unmount_all(shared_daemon)


def test_activity_lists_a_mount_a_commit_and_an_error_once(make_app, shared_daemon, sdk, unique_name, qtbot):
    repo = unique_name("act")
    make_repo(sdk, repo, {"/a.txt": b"a"})
    app = make_app(shared_daemon)
    controller, window = app.controller, app.window
    panel = next(window.tabs.widget(i) for i in range(window.tabs.count()) if window.tabs.tabText(i) == "Activity")
    told = []
    app.notices.told.connect(lambda *args: told.append(args))
    try:
        name = controller.mount("default", repo, branch="master", mode="rw")
        qtbot.waitUntil(lambda: (m := controller.status.mount(name)) is not None and m.mounted, timeout=20000)
        (shared_daemon.mount_dir / name / "b.txt").write_bytes(b"b")
        qtbot.waitUntil(lambda: controller.status.mount(name).pending == 1, timeout=20000)
        controller.commit(name)
        qtbot.waitUntil(lambda: controller.status.mount(name).pending == 0, timeout=20000)
        controller.mount("default", repo, branch="no-such-branch")

        def rows():
            return [(panel.table.item(r, 1).text(), panel.table.item(r, 2).text())
                    for r in range(panel.table.rowCount())]

        def mine():  # the shared daemon's log also holds other tests' entries
            return [t for t, m in rows() if repo in m]

        qtbot.waitUntil(lambda: mine()[:3] == ["Mount failed", "Committed", "Mounted"], timeout=20000)  # newest first
        qtbot.wait(1500)  # the daemon's record of the failure and the GUI's own arrive: still one row
        failures = [m for t, m in rows() if t == "Mount failed" and repo in m]
        assert len(failures) == 1, rows()
        # Shown once: a dialog over the visible window, no notification besides.
        errors = [t for t in told if t[2]]
        assert [(t[0], t[3]) for t in errors] == [("Mount failed", DIALOG)], told
        boxes = [d for d in dialogs.open_dialogs() if d.windowTitle() == "Mount failed"]
        assert len(boxes) == 1 and boxes[0].parent() is window
        # a message of several lines is one line in its cell (a cell shows only the first), whole in the tooltip
        app.activity.add_error("Two lines", f"{repo}: first line\n  second line")
        qtbot.waitUntil(lambda: ("Two lines", f"{repo}: first line second line") in rows(), timeout=5000)
        row = next(r for r in range(panel.table.rowCount()) if panel.table.item(r, 1).text() == "Two lines")
        assert panel.table.item(row, 2).toolTip() == f"{repo}: first line\n  second line"
    finally:
        unmount_all(shared_daemon)
