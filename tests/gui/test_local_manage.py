"""On the embedded local server the window creates and deletes repos and branches, and uploads
dropped files and folders to a branch as one commit."""

from __future__ import annotations

import os

from guihelpers import local_daemon, make_app  # noqa: F401 - fixtures
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from conftest import wait_for
from pachtray.gui import dialogs

V1 = "/pachtray/v1"


def _drop(view, row: int, paths: list[str]) -> None:
    """Deliver a real QDropEvent with file URLs on a row of the view."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(p) for p in paths])
    pos = QPointF(view.visualRect(view.model().index(row, 0)).center())
    event = QDropEvent(pos, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    view.dropEvent(event)
    assert event.isAccepted()


def test_create_upload_and_delete_on_local_server(make_app, local_daemon, unique_name, qtbot, tmp_path):
    app = make_app(local_daemon)
    window, controller = app.window, app.controller
    qtbot.waitUntil(lambda: controller.status.local and window.browser.new_repo_button.isEnabled(), timeout=20000)
    repo = unique_name("local")

    # New repo… dialog: a bad name is refused in the dialog, a good one creates the repo
    dialog = window.browser.new_repo()
    dialog.edits["repo"].setText("bad name!")
    dialog._accept()
    assert dialog.isVisible() and "letters, digits" in dialog.problem.text()
    dialog.edits["repo"].setText(repo)
    dialog.edits["description"].setText("made in the window")
    dialog._accept()
    qtbot.waitUntil(lambda: window.browser.select_repo("default", repo), timeout=20000)
    assert any(r["repo"] == repo and r["description"] == "made in the window"
               for r in local_daemon.get("/pachtray/v1/repos").json()["repos"])

    # drop a file and a folder on the (not yet existing) master branch via the branch table
    src = tmp_path / "drop"
    (src / "folder" / "deep").mkdir(parents=True)
    (src / "one.txt").write_bytes(b"1" * 1000)
    (src / "folder" / "two.txt").write_bytes(b"2" * 2000)
    (src / "folder" / "deep" / "three.txt").write_bytes(b"3")
    qtbot.waitUntil(lambda: window.browser.branch_table.uploads_enabled, timeout=10000)
    window.browser.upload("master", [str(src / "one.txt"), str(src / "folder")])
    qtbot.waitUntil(lambda: window.browser.uploads.running, timeout=5000)
    qtbot.waitUntil(lambda: not window.browser.uploads.running, timeout=30000)
    qtbot.waitUntil(lambda: any(r["name"] == "master" for r in window.browser.branches_model.rows()), timeout=20000)
    window.browser.branch_table.setCurrentIndex(window.browser.branches_model.index(0, 0))
    qtbot.waitUntil(lambda: {r["name"] for r in window.browser.files_model.rows()} == {"one.txt", "folder"}, timeout=20000)
    listing = local_daemon.get("/pachtray/v1/files", params={"repo": repo, "branch": "master",
                                                            "path": "/folder/deep"}).json()
    assert [f["path"] for f in listing["files"]] == ["/folder/deep/three.txt"]

    # New branch… from master, then drop onto it through a real drop event
    dialog = window.browser.new_branch()
    dialog.edits["branch"].setText("dev")
    dialog._accept()
    qtbot.waitUntil(lambda: any(r["name"] == "dev" for r in window.browser.branches_model.rows()), timeout=20000)
    assert not any(d.windowTitle() == "New branch" for d in dialogs.open_dialogs())  # closed once it was made

    # a name only the server can refuse (it exists): said in the dialog, which keeps what was typed
    before = len(dialogs.open_dialogs())
    dialog = window.browser.new_branch()
    dialog.edits["branch"].setText("dev")
    dialog._accept()
    assert not dialog.buttons.isEnabled()  # waiting for the server
    qtbot.waitUntil(lambda: "already exists" in dialog.problem.text(), timeout=20000)
    assert dialog.isVisible() and dialog.buttons.isEnabled() and dialog.edits["branch"].text() == "dev"
    assert len(dialogs.open_dialogs()) == before + 1  # no second dialog with the same error
    dialog.reject()
    dev_row = next(i for i, r in enumerate(window.browser.branches_model.rows()) if r["name"] == "dev")
    (tmp_path / "extra.csv").write_text("a,b\n")
    _drop(window.browser.branch_table, dev_row, [str(tmp_path / "extra.csv")])
    qtbot.waitUntil(lambda: not window.browser.uploads.running, timeout=30000)
    qtbot.waitUntil(lambda: local_daemon.get("/pachtray/v1/commits", params={
        "repo": repo, "branch": "dev"}).json()["commits"][0]["description"].startswith("Uploaded 1 file"), timeout=20000)
    files = local_daemon.get("/pachtray/v1/files", params={"repo": repo, "branch": "dev"}).json()["files"]
    assert {f["name"] for f in files} == {"one.txt", "folder", "extra.csv"}

    # Delete branch… and Delete repo… (confirmations)
    qtbot.waitUntil(lambda: any(r["name"] == "dev" for r in window.browser.branches_model.rows()), timeout=20000)
    dev_row = next(i for i, r in enumerate(window.browser.branches_model.rows()) if r["name"] == "dev")
    window.browser.branch_table.setCurrentIndex(window.browser.branches_model.index(dev_row, 0))
    def confirmation(title: str):
        qtbot.waitUntil(lambda: any(d.windowTitle() == title for d in dialogs.open_dialogs()), timeout=20000)
        return next(d for d in dialogs.open_dialogs() if d.windowTitle() == title)

    # a mounted branch: the daemon's refusal comes first, not after a confirmation
    name = controller.mount("default", repo, branch="dev", mode="ro")
    qtbot.waitUntil(lambda: (m := controller.status.mount(name)) is not None and m.mounted, timeout=20000)
    window.browser.delete_branch()
    refusal = confirmation("Cannot delete branch")
    assert "is mounted; unmount it first" in refusal.text()
    assert not any(d.windowTitle() == "Delete branch" for d in dialogs.open_dialogs())
    refusal.done(0)
    local_daemon.put("/_unmount", json={"mounts": [name]})
    qtbot.waitUntil(lambda: controller.status.mount(name) is None, timeout=20000)

    window.browser.delete_branch()
    confirmation("Delete branch").buttons()[0].click()
    qtbot.waitUntil(lambda: [r["name"] for r in window.browser.branches_model.rows()] == ["master"], timeout=20000)
    window.browser.delete_repo()
    confirmation("Delete repo").buttons()[0].click()
    qtbot.waitUntil(lambda: not any(r["repo"] == repo for r in controller.repos["repos"]), timeout=20000)
    assert not window.browser.select_repo("default", repo)


def test_local_repo_branch_lifecycle_and_upload(local_daemon, unique_name, tmp_path):
    repo = unique_name("api")
    assert local_daemon.get(V1 + "/info").json()["local"] is True
    assert local_daemon.put(V1 + "/_create_repo", json={"repo": repo, "description": "d"}).status_code == 200
    again = local_daemon.put(V1 + "/_create_repo", json={"repo": repo})
    assert again.status_code == 409, again.text
    assert local_daemon.put(V1 + "/_create_repo", json={"repo": "bad name"}).status_code == 400

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "big.bin").write_bytes(b"z" * (5 * 1024 * 1024))
    job = local_daemon.put(V1 + "/_upload", json={"repo": repo, "branch": "master", "paths": [str(tmp_path / "a")],
                                                 "dest": "/in"}).json()
    assert job["files_total"] == 1 and job["bytes_total"] == 5 * 1024 * 1024
    done = wait_for(lambda: (s := local_daemon.get(V1 + "/upload", params={"job": job["job"]}).json())["state"] != "running"
                    and s, 30, what="upload")
    assert done["state"] == "done" and done["bytes_done"] == done["bytes_total"] and len(done["commit"]) == 32
    files = local_daemon.get(V1 + "/files", params={"repo": repo, "branch": "master", "path": "/in/a"}).json()
    assert files["files"] == [{"path": "/in/a/big.bin", "name": "big.bin", "type": "file", "size_bytes": 5242880}]

    assert local_daemon.put(V1 + "/_create_branch", json={"repo": repo, "branch": "dev", "from": "master"}).ok
    dup = local_daemon.put(V1 + "/_create_branch", json={"repo": repo, "branch": "dev"})
    assert dup.status_code == 409 and "already exists" in dup.text
    bad = local_daemon.put(V1 + "/_create_branch", json={"repo": repo, "branch": "x", "head": "123"})
    assert bad.status_code == 400 and "invalid head commit id" in bad.text
    heads = {b["name"]: b["head"] for b in local_daemon.get(V1 + "/branches", params={"repo": repo}).json()["branches"]}
    assert heads["dev"] == heads["master"] == done["commit"]
    # `check` says whether it would be deleted, and deletes nothing
    assert local_daemon.put(V1 + "/_delete_branch", json={"repo": repo, "branch": "dev", "check": True}).ok
    assert local_daemon.put(V1 + "/_delete_repo", json={"repo": repo, "check": True}).ok
    missing = local_daemon.put(V1 + "/_delete_branch", json={"repo": repo, "branch": "nope", "check": True})
    assert missing.status_code == 404, missing.text
    assert local_daemon.put(V1 + "/_delete_repo", json={"repo": repo, "check": "yes"}).status_code == 400
    assert {b["name"] for b in local_daemon.get(V1 + "/branches", params={"repo": repo}).json()["branches"]} == {
        "dev", "master"}
    assert local_daemon.put(V1 + "/_delete_branch", json={"repo": repo, "branch": "dev"}).ok
    assert local_daemon.put(V1 + "/_delete_repo", json={"repo": repo}).ok
    gone = local_daemon.get(V1 + "/branches", params={"repo": repo})
    assert gone.status_code == 404, gone.text


def test_an_upload_of_names_pfs_cannot_store_is_refused_before_it_starts(local_daemon, unique_name, tmp_path):
    """pachd stores printable ASCII paths only: a dropped folder with other names would upload every
    file and then be refused whole (a name that is not UTF-8 left the job `running` for good)."""
    repo = unique_name("names")
    assert local_daemon.put(V1 + "/_create_repo", json={"repo": repo}).ok
    folder = tmp_path / "drop"
    folder.mkdir()
    (folder / "fine.txt").write_bytes(b"1")
    with open(os.fsencode(folder) + b"/x\xff.txt", "wb") as f:
        f.write(b"2")
    (folder / "caf\u00e9.txt").write_bytes(b"3")
    r = local_daemon.put(V1 + "/_upload", json={"repo": repo, "paths": [str(folder)]})
    assert r.status_code == 400, r.text
    assert r.text.startswith("2 of 3 file(s) cannot be stored in PFS, e.g. ") and "only printable ASCII" in r.text
    assert "rename them or leave them out" in r.text
    assert local_daemon.get(V1 + "/branches", params={"repo": repo}).json()["branches"] == []


def test_an_upload_can_be_cancelled_through_the_api(local_daemon, unique_name, tmp_path):
    repo = unique_name("cx")
    assert local_daemon.put(V1 + "/_create_repo", json={"repo": repo}).ok
    (tmp_path / "f.txt").write_bytes(b"f")
    job = local_daemon.put(V1 + "/_upload", json={"repo": repo, "paths": [str(tmp_path / "f.txt")]}).json()
    r = local_daemon.put(V1 + "/_cancel_upload", json={"job": job["job"]})
    assert r.status_code == 200 and r.json()["job"] == job["job"]
    final = wait_for(lambda: (s := local_daemon.get(V1 + "/upload", params={"job": job["job"]}).json())["state"]
                     != "running" and s, 30, what="upload ended")
    # Cancelled in flight, or done before the cancel arrived: never half of it.
    assert final["state"] in ("cancelled", "done")
    listed = local_daemon.get(V1 + "/files", params={"repo": repo, "branch": "master"}).json()["files"]
    assert [f["name"] for f in listed] == (["f.txt"] if final["state"] == "done" else [])
    missing = local_daemon.put(V1 + "/_cancel_upload", json={"job": "nope"})
    assert missing.status_code == 404 and "no upload job 'nope'" in missing.text


def test_the_window_cancels_a_running_upload(make_app, local_daemon, unique_name, qtbot, tmp_path):
    repo = unique_name("wc")
    assert local_daemon.put(V1 + "/_create_repo", json={"repo": repo}).ok
    app = make_app(local_daemon)
    window = app.window
    qtbot.waitUntil(lambda: window.browser.select_repo("default", repo), timeout=20000)
    qtbot.waitUntil(lambda: window.browser.branch_table.uploads_enabled, timeout=10000)
    (tmp_path / "big.bin").write_bytes(b"\0" * (96 << 20))
    notes = []
    app.controller.notify.connect(lambda title, message, error: notes.append(title))
    window.browser.upload("master", [str(tmp_path / "big.bin")])
    qtbot.waitUntil(lambda: window.browser.uploads.job is not None, timeout=10000)
    assert window.browser.uploads.cancel_button.isVisible()
    window.browser.uploads.cancel_button.click()
    qtbot.waitUntil(lambda: not window.browser.uploads.running, timeout=30000)
    assert not window.browser.uploads.cancel_button.isVisible()
    ended = "Upload cancelled" if "Upload cancelled" in notes else "Upload finished"
    assert ended in notes
    files = local_daemon.get(V1 + "/files", params={"repo": repo, "branch": "master"}).json()["files"]
    assert [f["name"] for f in files] == (["big.bin"] if ended == "Upload finished" else [])


def test_names_of_255_characters_stay_inside_the_screen(make_app, local_daemon, qtbot):
    """A repo named with the longest name PFS allows: the New repo dialog that says it exists, the
    error dialog and the Mounts tab stay inside an 800-pixel screen; the whole message stays copyable."""
    from pachtray.gui.tables import COLUMN_MAX

    app = make_app(local_daemon)
    window, controller = app.window, app.controller
    screen = window.screen().availableGeometry().width()
    qtbot.waitUntil(lambda: controller.status.local and window.browser.new_repo_button.isEnabled(), timeout=20000)
    repo = "L" * 250 + "-tail"
    local_daemon.put(V1 + "/_create_repo", json={"project": "default", "repo": repo}).raise_for_status()

    dialog = window.browser.new_repo()
    dialog.edits["repo"].setText(repo)
    dialog._accept()
    qtbot.waitUntil(lambda: dialog.buttons.isEnabled() and dialog.problem.text() != "", timeout=20000)
    assert "exists" in dialog.problem.toolTip() and repo in dialog.problem.toolTip()
    assert "…" in dialog.problem.text() and dialog.width() <= screen, (dialog.width(), screen)
    dialog.reject()

    box = dialogs.error(window, "Create repo failed", dialog.problem.toolTip())
    qtbot.waitUntil(box.isVisible)
    assert box.width() <= screen and box.sizeHint().width() <= screen
    assert box.detailedText() == dialog.problem.toolTip()
    box.done(0)

    name = controller.mount("default", repo, mode="rw")
    qtbot.waitUntil(lambda: controller.status.mount(name) is not None, timeout=20000)
    table = window.mounts_tab.table
    qtbot.waitUntil(lambda: table.rowCount() == 1 and table.item(0, 0).text() == name, timeout=20000)
    header = table.horizontalHeader()
    assert all(header.sectionSize(c) <= COLUMN_MAX for c in range(table.columnCount()) if c != 1)
    local_daemon.put("/_unmount_all", json={}).raise_for_status()
