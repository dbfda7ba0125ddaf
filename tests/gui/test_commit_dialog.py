"""The commit dialog with real widgets (pytest-qt, offscreen) against a real daemon, the embedded
server and a real FUSE rw mount: it lists the changes with their kinds and sizes and marks paths
changed upstream, the message lands as the commit's description (and in the window's commit
list), and a confirmed discard removes a change and restores the file."""

from __future__ import annotations

import os

from pachyderm_sdk.api import pfs
from PySide6.QtCore import Qt

from guihelpers import commit_in_dialog, make_app, make_repo, sdk, shared_daemon, unmount_all  # noqa: F401
from pachtray.gui import dialogs
from pachtray.gui.commit_dialog import UPSTREAM_MARK, CommitDialog, open_commit_dialog


def _rows(dialog: CommitDialog) -> list[tuple[str, ...]]:
    return [tuple(dialog.list.topLevelItem(i).text(c) for c in range(4)) for i in range(dialog.list.topLevelItemCount())]


def _rw_mount(app, qtbot, shared_daemon, repo: str) -> tuple[str, object]:
    name = app.controller.mount("default", repo, branch="master", mode="rw")
    qtbot.waitUntil(lambda: any(m.name == name and m.state == "mounted" for m in app.controller.status.mounted),
                    timeout=20000)
    return name, shared_daemon.mount_dir / name


def test_the_dialog_lists_changes_marks_upstream_and_commits_the_message(make_app, shared_daemon, sdk, unique_name,
                                                                          qtbot):
    repo = unique_name("cd")
    make_repo(sdk, repo, {"/mod.txt": b"old", "/del.txt": b"gone soon", "/theirs.txt": b"v1"})
    app = make_app(shared_daemon, show_window=True)
    try:
        name, root = _rw_mount(app, qtbot, shared_daemon, repo)
        (root / "new.txt").write_bytes(b"x" * 2048)
        (root / "mod.txt").write_bytes(b"newer")
        (root / "theirs.txt").write_bytes(b"mine")
        os.unlink(root / "del.txt")
        with sdk.pfs.commit(branch=pfs.Branch(repo=pfs.Repo(name=repo, type="user"), name="master")) as c:
            c.put_file_from_bytes("/theirs.txt", b"v2 by a colleague")
        app.controller.refresh()
        qtbot.waitUntil(lambda: app.window.select_mount(name) and app.window.mount_buttons["commit"].isEnabled(),
                        timeout=20000)
        dialog = app.window._mount_action("commit")
        assert isinstance(dialog, CommitDialog) and dialog in dialogs.open_dialogs()
        qtbot.waitUntil(lambda: dialog.list.topLevelItemCount() == 4, timeout=20000)
        assert _rows(dialog) == [("deleted", "/del.txt", "9 B", ""), ("modified", "/mod.txt", "5 B", ""),
                                 ("added", "/new.txt", "2.0 KB", ""), ("modified", "/theirs.txt", "4 B", UPSTREAM_MARK)]
        assert dialog.upstream_note.isVisibleTo(dialog) and "1 of these file(s)" in dialog.upstream_note.text()
        assert dialog.summary.text() == "1 added, 2 modified, 1 deleted"

        with qtbot.waitSignal(dialog.finished, timeout=30000):
            commit_in_dialog(qtbot, dialog, "Reviewed: four files")
        head = sdk.pfs.inspect_commit(commit=pfs.Commit(branch=pfs.Branch(repo=pfs.Repo(name=repo, type="user"),
                                                                          name="master")))
        assert head.description == "Reviewed: four files"
        # the window's commit list shows it
        app.controller.refresh_repos()
        qtbot.waitUntil(lambda: app.window.browser.select_repo("default", repo), timeout=20000)
        branches = app.window.browser.branches_model
        qtbot.waitUntil(lambda: branches.rowCount() > 0, timeout=20000)
        app.window.browser.branch_table.selectRow(0)
        commits = app.window.browser.commits_model
        qtbot.waitUntil(lambda: commits.rowCount() > 0, timeout=20000)
        assert commits.data(commits.index(0, 2)) == "Reviewed: four files"
    finally:
        unmount_all(shared_daemon)
        sdk.pfs.delete_repo(repo=pfs.Repo(name=repo, type="user"), force=True)


def test_discarding_a_selected_change_after_confirmation(make_app, shared_daemon, sdk, unique_name, qtbot):
    repo = unique_name("cdd")
    make_repo(sdk, repo, {"/keep.txt": b"base"})
    app = make_app(shared_daemon, show_window=False)
    try:
        name, root = _rw_mount(app, qtbot, shared_daemon, repo)
        (root / "keep.txt").write_bytes(b"scribbled")
        (root / "wanted.txt").write_bytes(b"yes")
        app.controller.refresh()
        qtbot.waitUntil(lambda: (m := app.controller.status.mount(name)) is not None and m.pending == 2,
                        timeout=20000)
        app.tray.menu.aboutToShow.emit()
        entry = next(a for a in app.tray.menu.actions() if a.text().startswith(f"{name} (rw)"))
        next(a for a in entry.menu().actions() if a.text().startswith("Commit…")).trigger()
        dialog = next(d for d in dialogs.open_dialogs() if isinstance(d, CommitDialog))
        qtbot.waitUntil(lambda: dialog.list.topLevelItemCount() == 2, timeout=20000)
        assert not dialog.discard_button.isEnabled()  # nothing selected yet
        dialog.list.topLevelItem(0).setSelected(True)  # /keep.txt
        assert dialog.discard_button.isEnabled()
        qtbot.mouseClick(dialog.discard_button, Qt.MouseButton.LeftButton)
        box = next(d for d in dialogs.open_dialogs() if d.windowTitle() == "Discard changes")
        assert box.text() == "Discard /keep.txt?"
        box.buttons()[0].click()
        qtbot.waitUntil(lambda: _rows(dialog) == [("added", "/wanted.txt", "3 B", "")], timeout=20000)
        assert (root / "keep.txt").read_bytes() == b"base"
        commit_in_dialog(qtbot, dialog)
        qtbot.waitUntil(lambda: not app.controller.status.mount(name).pending, timeout=30000)
        head = pfs.Commit(branch=pfs.Branch(repo=pfs.Repo(name=repo, type="user"), name="master"))
        assert b"".join(sdk.pfs.pfs_file(pfs.File(commit=head, path="/keep.txt"))) == b"base"
        assert b"".join(sdk.pfs.pfs_file(pfs.File(commit=head, path="/wanted.txt"))) == b"yes"
    finally:
        unmount_all(shared_daemon)
        sdk.pfs.delete_repo(repo=pfs.Repo(name=repo, type="user"), force=True)


def test_a_failed_listing_is_one_titled_error_dialog(make_app, shared_daemon, qtbot):
    app = make_app(shared_daemon, show_window=False)
    notes = []
    app.controller.notify.connect(lambda *args: notes.append(args))
    dialog = CommitDialog(app.controller, "no_such_mount")
    qtbot.waitUntil(lambda: any(d.windowTitle() == "Cannot list the changes" for d in dialogs.open_dialogs()),
                    timeout=20000)
    errors = [d for d in dialogs.open_dialogs() if d.windowTitle() == "Cannot list the changes"]
    assert len(errors) == 1 and "no mount named 'no_such_mount'" in errors[0].text()
    assert notes == [] and not dialog.commit_button.isEnabled()
    assert dialog.summary.text().startswith("The changes could not be listed: ")  # not "Loading…" for ever
    for d in errors + [dialog]:
        d.reject()


def test_a_file_written_after_the_review_is_not_committed_unseen(make_app, shared_daemon, sdk, unique_name, qtbot):
    """The dialog commits what it shows: a program that wrote to the mount meanwhile makes the commit
    refused with the reason, the list shown again (the message kept), and the next Commit lands both."""
    repo = unique_name("cdl")
    make_repo(sdk, repo, {"/base.txt": b"base"})
    app = make_app(shared_daemon, show_window=False)
    try:
        name, root = _rw_mount(app, qtbot, shared_daemon, repo)
        (root / "first.txt").write_bytes(b"1")
        dialog = open_commit_dialog(app.controller, name)
        qtbot.waitUntil(lambda: _rows(dialog) == [("added", "/first.txt", "1 B", "")], timeout=20000)
        head = pfs.Commit(branch=pfs.Branch(repo=pfs.Repo(name=repo, type="user"), name="master"))
        before = sdk.pfs.inspect_commit(commit=head).commit.id
        (root / "late.txt").write_bytes(b"late")  # after the review
        dialog.message.setPlainText("only what I saw")
        qtbot.mouseClick(dialog.commit_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: any(d.windowTitle() == "Commit failed" for d in dialogs.open_dialogs()), timeout=20000)
        box = next(d for d in dialogs.open_dialogs() if d.windowTitle() == "Commit failed")
        assert "changed since they were reviewed" in box.text() and "nothing was committed" in box.text()
        box.done(0)
        assert sdk.pfs.inspect_commit(commit=head).commit.id == before
        qtbot.waitUntil(lambda: [r[1] for r in _rows(dialog)] == ["/first.txt", "/late.txt"], timeout=20000)
        assert dialog.message.toPlainText() == "only what I saw"
        commit_in_dialog(qtbot, dialog)
        qtbot.waitUntil(lambda: sdk.pfs.inspect_commit(commit=head).commit.id != before, timeout=30000)
        landed = sdk.pfs.inspect_commit(commit=head)
        assert landed.description == "only what I saw"
        assert b"".join(sdk.pfs.pfs_file(pfs.File(commit=landed.commit, path="/late.txt"))) == b"late"
    finally:
        unmount_all(shared_daemon)
        sdk.pfs.delete_repo(repo=pfs.Repo(name=repo, type="user"), force=True)
