"""The main window against a real daemon: browsing, lazy pages, mounting, the Mounts tab."""

from __future__ import annotations

import os

from guihelpers import make_app, make_repo, sdk, select_row as _select_row, shared_daemon, unmount_all  # noqa: F401 - fixtures
from PySide6.QtCore import QModelIndex, Qt

from pachtray.gui import dialogs
from guihelpers import commit_in_dialog
from pachtray.gui.models import PAGE

MANY = PAGE * 2 + 50


def _put_many(client, repo: str, folder: str, count: int) -> None:
    """One commit with `count` small files in one ModifyFile stream."""
    from pachyderm_sdk.api import pfs

    branch = pfs.Branch(repo=pfs.Repo(name=repo, type="user"), name="master")
    commit = client.pfs.start_commit(branch=branch, description=f"{count} files")

    def ops():
        yield pfs.ModifyFileRequest(set_commit=commit)
        for i in range(count):
            yield pfs.ModifyFileRequest(add_file=pfs.AddFile(path=f"{folder}/f{i:05d}.txt", raw=b"x"))

    client.pfs.modify_file(ops())
    client.pfs.finish_commit(commit=commit)


def test_browse_and_lazy_file_pages(make_app, shared_daemon, sdk, unique_name, qtbot):
    repo = unique_name("win")
    make_repo(sdk, repo, {"/readme.md": b"v1"}, description="browse me")
    make_repo(sdk, unique_name("other"))  # so that the filter below leaves some out, run alone too
    _put_many(sdk, repo, "/many", MANY)
    app = make_app(shared_daemon)
    window = app.window
    assert window.windowTitle().startswith("Pachtray")
    app.controller.refresh_repos()
    qtbot.waitUntil(lambda: window.browser.select_repo("default", repo), timeout=20000)
    index = window.browser.repo_model.index_of("default", repo)
    assert window.browser.repo_model.data(index.siblingAtColumn(3)) == "browse me"
    assert window.browser.repo_model.data(index.siblingAtColumn(1)).endswith("B")

    _select_row(qtbot, window.browser.branch_table, window.browser.branches_model, lambda r: r["name"] == "master")
    qtbot.waitUntil(lambda: window.browser.commits_model.rowCount() == 2 and not window.browser.commits_model.loading, timeout=20000)
    assert window.browser.commits_model.row(0)["description"] == f"{MANY} files"
    qtbot.waitUntil(lambda: not window.browser.files_model.loading, timeout=20000)
    assert {r["name"] for r in window.browser.files_model.rows()} == {"many", "readme.md"}, (window.browser.files_model.error, window.browser.folder_label.text())

    many = next(i for i, r in enumerate(window.browser.files_model.rows()) if r["name"] == "many")
    window.browser.file_table.doubleClicked.emit(window.browser.files_model.index(many, 0))
    qtbot.waitUntil(lambda: window.browser.files_model.rowCount() > 0 and not window.browser.files_model.loading, timeout=20000)
    assert window.browser.files_model.rowCount() == PAGE  # one page, not the whole folder
    assert window.browser.files_model.canFetchMore(QModelIndex())
    while window.browser.files_model.canFetchMore(QModelIndex()) or window.browser.files_model.loading:
        window.browser.files_model.fetchMore(QModelIndex())
        qtbot.waitUntil(lambda: not window.browser.files_model.loading, timeout=20000)
    names = [r["name"] for r in window.browser.files_model.rows()]
    assert len(names) == MANY and names == sorted(names) and len(set(names)) == MANY
    window.browser.folder_up()
    qtbot.waitUntil(lambda: window.browser.files_model.rowCount() == 2, timeout=20000)

    window.browser.filter_edit.setText(repo)
    assert window.browser.repo_model.total_repos() == 1
    assert window.browser.repos_label.text().startswith("1 of ")
    assert window.browser._repo["repo"] == repo and window.browser._branch == "master"  # still selected
    window.browser.filter_edit.setText("no-such-repo-anywhere")
    assert window.browser.repo_model.total_repos() == 0
    # the selected repo is filtered out: nothing hangs off it any more (branches, files, buttons)
    assert window.browser._repo is None and window.browser.branches_model.rowCount() == 0
    assert window.browser.folder_label.full_text() == "" and not window.browser.mount_ro_button.isEnabled()


def test_mount_commit_and_unmount_from_window(make_app, shared_daemon, sdk, unique_name, qtbot):
    from pachyderm_sdk.api import pfs

    repo = unique_name("win")
    make_repo(sdk, repo, {"/data.txt": b"old"})
    with sdk.pfs.commit(branch=pfs.Branch(repo=pfs.Repo(name=repo, type="user"), name="master")) as c:
        c.put_file_from_bytes("/data.txt", b"new")
    app = make_app(shared_daemon)
    window = app.window
    try:
        app.controller.refresh_repos()
        qtbot.waitUntil(lambda: window.browser.select_repo("default", repo), timeout=20000)
        _select_row(qtbot, window.browser.branch_table, window.browser.branches_model, lambda r: r["name"] == "master")
        qtbot.waitUntil(lambda: window.browser.commits_model.rowCount() == 2, timeout=20000)
        old = window.browser.commits_model.row(1)["id"]
        window.browser.commit_table.setCurrentIndex(window.browser.commits_model.index(1, 0))
        assert window.browser.mount_commit_button.isEnabled()
        window.browser.mount_commit_button.click()
        name = f"default_{repo}_{old[:8]}"
        qtbot.waitUntil(lambda: any(m.name == name and m.state == "mounted"
                                    for m in app.controller.status.mounted), timeout=20000)
        with open(shared_daemon.mount_dir / name / "data.txt", "rb") as f:
            assert f.read() == b"old"

        # the Mounts tab shows it; Unmount there
        qtbot.waitUntil(lambda: window.select_mount(name), timeout=10000)
        row = next(r for r in range(window.mount_table.rowCount()) if window.mount_table.item(r, 0).text() == name)
        assert window.mount_table.item(row, 2).text() == "ro"
        assert window.mount_table.item(row, 1).text() == f"default/{repo}@master={old[:12]}"
        assert window.mount_buttons["open"].isEnabled()
        window.mount_buttons["unmount"].click()
        qtbot.waitUntil(lambda: not any(m.name == name for m in app.controller.status.mounted), timeout=20000)
        assert window.mount_table.rowCount() == len(app.controller.status.mounted)
    finally:
        unmount_all(shared_daemon)


def test_rw_mount_pending_commit_and_discard_in_mounts_tab(make_app, shared_daemon, sdk, unique_name, qtbot):
    repo = unique_name("win")
    make_repo(sdk, repo, {"/keep.txt": b"k"})
    app = make_app(shared_daemon)
    window, controller = app.window, app.controller
    try:
        controller.refresh_repos()
        qtbot.waitUntil(lambda: window.browser.select_repo("default", repo), timeout=20000)
        _select_row(qtbot, window.browser.branch_table, window.browser.branches_model, lambda r: r["name"] == "master")
        window.browser.mount_rw_button.click()
        name = f"default_{repo}"
        qtbot.waitUntil(lambda: any(m.name == name and m.state == "mounted" for m in controller.status.mounted),
                        timeout=20000)
        mountpoint = shared_daemon.mount_dir / name
        (mountpoint / "scratch.txt").write_bytes(b"temporary")
        controller.refresh()
        qtbot.waitUntil(lambda: window.select_mount(name) and window.mount_buttons["discard"].isEnabled(),
                        timeout=20000)
        row = next(r for r in range(window.mount_table.rowCount()) if window.mount_table.item(r, 0).text() == name)
        assert window.mount_table.item(row, 5).text() == "1"
        box = window._mount_action("discard")
        assert box is not None and box in dialogs.open_dialogs()
        box.buttons()[0].click()
        qtbot.waitUntil(lambda: not os.path.exists(mountpoint / "scratch.txt"), timeout=20000)
        qtbot.waitUntil(lambda: not window.mount_buttons["discard"].isEnabled(), timeout=20000)
        assert (mountpoint / "keep.txt").read_bytes() == b"k"

        (mountpoint / "kept.txt").write_bytes(b"committed")
        controller.refresh()
        qtbot.waitUntil(lambda: window.mount_buttons["commit"].isEnabled(), timeout=20000)
        commit_in_dialog(qtbot, window._mount_action("commit"))
        qtbot.waitUntil(lambda: not window.mount_buttons["commit"].isEnabled(), timeout=30000)
        from pachyderm_sdk.api import pfs

        head = pfs.Commit(branch=pfs.Branch(repo=pfs.Repo(name=repo, type="user"), name="master"))
        assert b"".join(sdk.pfs.pfs_file(pfs.File(commit=head, path="/kept.txt"))) == b"committed"
        assert not sdk.pfs.path_exists(pfs.File(commit=head, path="/scratch.txt"))
    finally:
        unmount_all(shared_daemon)


def test_recovered_changes_offer_commit_and_discard_not_unmount(make_app, daemon_factory, pachd, sdk, unique_name,
                                                                qtbot):
    """rw changes left by an earlier run are not mounted (GET /mounts does not list them): the GUI
    shows them from /pachtray/v1/mounts and offers Commit and Discard, and no Unmount."""
    from pachyderm_sdk.api import pfs

    from pachtray import config

    repo = unique_name("rec")
    make_repo(sdk, repo, {"/base.txt": b"base"})
    first = daemon_factory(pachd.address)
    assert first.put("/_mount", {"mounts": [{"name": repo, "repo": repo, "mode": "rw"}]}).ok
    (first.mount_dir / repo / "left.txt").write_bytes(b"left behind")
    first.stop()  # staged, not committed
    config.Settings(restore_mounts=False).save()
    again = daemon_factory(pachd.address, tmp=first.tmp)
    app = make_app(again)
    window, controller = app.window, app.controller
    qtbot.waitUntil(lambda: window.select_mount(repo), timeout=20000)
    (m,) = [m for m in controller.status.mounted if m.name == repo]
    assert m.state == "pending" and m.pending == 1
    assert "recovered from an earlier run" in window.mount_status.text()
    assert window.mount_buttons["commit"].isEnabled() and window.mount_buttons["discard"].isEnabled()
    assert not window.mount_buttons["unmount"].isEnabled() and not window.mount_buttons["open"].isEnabled()
    app.tray.menu.aboutToShow.emit()
    entry = next(a for a in app.tray.menu.actions() if a.text().startswith(f"{repo} (rw) — pending"))
    assert [a.text() for a in entry.menu().actions()] == ["Open folder", "Commit… (1 pending)", "Discard changes…"]
    quit_box = app.request_quit()  # kept changes are not an active mount, but are uncommitted
    assert "active" not in quit_box.informativeText() and f"{repo} (1)" in quit_box.informativeText()
    quit_box.reject()

    commit_in_dialog(qtbot, window._mount_action("commit"))
    qtbot.waitUntil(lambda: not any(m.name == repo for m in controller.status.mounted), timeout=30000)
    head = pfs.Commit(branch=pfs.Branch(repo=pfs.Repo(name=repo, type="user"), name="master"))
    assert b"".join(sdk.pfs.pfs_file(pfs.File(commit=head, path="/left.txt"))) == b"left behind"


def test_access_column_and_greyed_rows_follow_authorization(qapp):
    from pachtray.gui.models import RepoTreeModel

    model = RepoTreeModel()
    model.set_listing({"projects": [{"name": "default", "description": ""}], "repos": [
        {"project": "default", "repo": "open", "authorization": "write", "access_reason": ""},
        {"project": "default", "repo": "secret", "authorization": "none",
         "access_reason": "no access: ask the repo owner for the repoReader role"}]})
    parent = model.index(0, 0)
    assert model.data(parent.siblingAtColumn(1)) == "2 repos"
    model.fetchMore(parent)
    secret = model.index(1, 0, parent)
    assert model.data(secret) == "secret"
    assert model.data(secret.siblingAtColumn(2)) == "no access"
    assert not model.flags(secret) & Qt.ItemFlag.ItemIsEnabled
    assert "repoReader" in model.data(secret, Qt.ItemDataRole.ToolTipRole)
    assert model.flags(model.index(0, 0, parent)) & Qt.ItemFlag.ItemIsEnabled


def test_repo_tree_reveals_ten_thousand_repos_lazily(qapp):
    from pachtray.gui.models import RepoTreeModel

    model = RepoTreeModel()
    model.set_listing({"projects": [{"name": "default", "description": ""}, {"name": "one", "description": ""}],
                       "repos": [{"project": "default", "repo": f"r{i:05d}", "size_bytes": i} for i in range(10000)]
                       + [{"project": "one", "repo": "only"}]})
    assert model.data(model.index(1, 1)) == "1 repo"
    parent = model.index(0, 0)
    assert model.rowCount(parent) == 0 and model.canFetchMore(parent)
    model.fetchMore(parent)
    assert model.rowCount(parent) == PAGE
    assert model.index_of("default", "r09999").isValid()
    assert model.rowCount(parent) == 10000
    model.set_filter("r0999")
    assert model.total_repos() == 10


def test_a_new_branch_keeps_the_selection_and_long_names_do_not_widen_the_window(make_app, shared_daemon, sdk,
                                                                                 unique_name, qtbot):
    """A branch made elsewhere is listed at a refresh and the branch the user had selected stays
    selected (actions still name it); a 200-character branch shown above the files is cut to the window, which does not grow;
    choosing another repo clears the folder shown."""
    from pachyderm_sdk.api import pfs

    repo, other = unique_name("keep"), unique_name("keep2")
    make_repo(sdk, repo, {"/a.txt": b"a"})
    make_repo(sdk, other, {"/b.txt": b"b"})
    long_branch = "b" * 200
    sdk.pfs.create_branch(branch=pfs.Branch(repo=pfs.Repo(name=repo, type="user"), name=long_branch),
                          head=pfs.Commit(branch=pfs.Branch(repo=pfs.Repo(name=repo, type="user"), name="master")))
    app = make_app(shared_daemon)
    window, browser = app.window, app.window.browser
    window.resize(1000, 700)
    app.controller.refresh_repos()
    qtbot.waitUntil(lambda: browser.select_repo("default", repo), timeout=20000)
    _select_row(qtbot, browser.branch_table, browser.branches_model, lambda r: r["name"] == "master")
    qtbot.waitUntil(lambda: browser.folder_label.full_text().startswith(f"{repo}@master"), timeout=20000)

    def selected_branch() -> str | None:
        rows = browser.branch_table.selectionModel().selectedRows()
        return browser.branches_model.row(rows[0].row())["name"] if rows else None

    sdk.pfs.create_branch(branch=pfs.Branch(repo=pfs.Repo(name=repo, type="user"), name="dev"),
                          head=pfs.Commit(branch=pfs.Branch(repo=pfs.Repo(name=repo, type="user"), name="master")))
    browser.reload()  # Refresh (as after New branch, Delete branch or an upload)
    qtbot.waitUntil(lambda: browser.branches_model.find("name", "dev") >= 0, timeout=20000)
    assert selected_branch() == "master" and browser._branch == "master"

    _select_row(qtbot, browser.branch_table, browser.branches_model, lambda r: r["name"] == long_branch)
    qtbot.waitUntil(lambda: long_branch in browser.folder_label.full_text(), timeout=20000)
    qtbot.wait(200)
    assert window.width() <= 1000 and window.minimumSizeHint().width() < 1000
    assert browser.folder_label.text() != browser.folder_label.full_text() and "…" in browser.folder_label.text()

    qtbot.waitUntil(lambda: browser.select_repo("default", other), timeout=20000)
    qtbot.waitUntil(lambda: browser.folder_label.full_text() == "", timeout=20000)


def test_while_the_cluster_does_not_answer_the_actions_that_need_it_wait(make_app, daemon_factory, qtbot):
    """A frozen embedded server: New repo and the mount buttons are disabled with the reason (they
    would only wait for a deadline), the repo, branch and commit the user selected stay shown with
    a line saying the listing is old, and all comes back when it answers again."""
    import signal

    from conftest import free_port

    d = daemon_factory(None, extra=["--local-pachd-port", str(free_port())])
    d.put("/pachtray/v1/_create_repo", {"project": "default", "repo": "kept"}).raise_for_status()
    d.put("/_mount", {"mounts": [{"name": "kept", "repo": "kept", "mode": "rw"}]}).raise_for_status()
    (d.mount_dir / "kept" / "a.txt").write_text("a")
    d.put("/pachtray/v1/_commit", {"mount": "kept"}).raise_for_status()
    app = make_app(d, show_window=True, wait_repos=False)
    tab = app.window.browser
    qtbot.waitUntil(lambda: tab.new_repo_button.isEnabled(), timeout=30000)
    qtbot.waitUntil(lambda: tab.select_repo("default", "kept"), timeout=20000)
    _select_row(qtbot, tab.branch_table, tab.branches_model, lambda r: r["name"] == "master")
    _select_row(qtbot, tab.commit_table, tab.commits_model, lambda r: True)
    qtbot.waitUntil(lambda: tab.files_model.rowCount() == 1, timeout=20000)
    server = next(int(p) for p in os.listdir("/proc") if p.isdigit() and _parent_of(p) == d.proc.pid
                  and b"local-pachd" in open(f"/proc/{p}/cmdline", "rb").read())
    os.kill(server, signal.SIGSTOP)
    try:
        qtbot.waitUntil(lambda: app.controller.status.connection != "connected", timeout=40000)
        qtbot.waitUntil(lambda: not tab.new_repo_button.isEnabled(), timeout=10000)
        assert tab.new_repo_button.toolTip() == "The cluster does not answer"
        assert not tab.mount_ro_button.isEnabled() and not tab.mount_rw_button.isEnabled()
        app.controller.refresh_repos()
        tab.follow_cluster()
        qtbot.waitUntil(lambda: tab.repos_label.text().startswith("Cannot list repos"), timeout=40000)
        assert tab.repos_label.text().endswith("The last listing is shown.")
        assert tab._repo["repo"] == "kept" and tab._branch == "master" and tab._commit is not None
        assert tab.branches_model.rowCount() == 1 and tab.files_model.rowCount() == 1
        assert app.window.select_mount("kept")
        qtbot.waitUntil(lambda: app.window.mount_status.text().endswith(
            "(as last seen: the cluster does not answer)"), timeout=10000)
    finally:
        os.kill(server, signal.SIGCONT)
    qtbot.waitUntil(lambda: tab.new_repo_button.isEnabled(), timeout=40000)
    assert tab.new_repo_button.toolTip() == ""
    qtbot.waitUntil(lambda: tab.repos_label.text() == "1 repo in 1 project", timeout=40000)
    assert tab._repo["repo"] == "kept" and tab._branch == "master"
    qtbot.waitUntil(lambda: "the cluster does not answer" not in app.window.mount_status.text(), timeout=10000)
    d.put("/_unmount_all", {}).raise_for_status()


def _parent_of(pid: str) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except OSError:
        return -1
