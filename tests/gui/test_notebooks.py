"""Pin data… and Open lock… in the tray and the window, against a real daemon, a real Jupyter server
with a real ipykernel, real FUSE mounts and real Qt widgets."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from guihelpers import find_action, make_app  # noqa: F401 - fixtures

from pachtray.gui import dialogs
from pachtray.repro import lockfile

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "repro"))
from reprohelpers import Jupyter, mount, mounted, pinned_read, put_commit, unmount  # noqa: E402

FILES = {"a.txt": b"alpha\n", "b.txt": b"bravo\n"}


@pytest.fixture
def jupyter(tmp_path, jlab_venv):
    j = Jupyter(tmp_path / "jupyter", jlab_venv)
    yield j
    j.stop()


def _dialog(qtbot, kind):
    def shown():
        return [d for d in dialogs.open_dialogs() if isinstance(d, kind) and d.isVisible()]

    qtbot.waitUntil(lambda: bool(shown()), timeout=20000)
    return shown()[-1]


def test_tray_pin_data_for_a_running_kernel_writes_the_lock_beside_the_notebook(
        make_app, daemon, client, unique_name, jupyter, qtbot):
    from PySide6.QtWidgets import QFileDialog

    repo = unique_name("gui")
    commit = put_commit(client, repo, FILES)
    mount(daemon, "data", repo)
    nb, kernel_id = jupyter.open_notebook("analysis.ipynb")
    jupyter.run(kernel_id, f"open({str(daemon.mount_dir / 'data' / 'b.txt')!r}).read()")

    app = make_app(daemon, show_window=False, wait_repos=False)
    tray = app.tray
    tray.menu.aboutToShow.emit()  # the kernel list is fetched on a worker and fills the open menu
    qtbot.waitUntil(lambda: find_action(tray.menu, ["Pin data", "analysis.ipynb (1 file read)…"]) is not None,
                    timeout=30000)
    assert find_action(tray.menu, ["Open lock…"]) is not None
    find_action(tray.menu, ["Pin data", "analysis.ipynb (1 file read)…"]).trigger()

    dialog = _dialog(qtbot, QFileDialog)
    assert dialog.acceptMode() == QFileDialog.AcceptMode.AcceptSave
    assert Path(dialog.directory().absolutePath()) == nb.parent
    assert dialog.selectedFiles() == [str(nb.parent / "analysis.pachyderm.lock")]
    with qtbot.waitSignal(app.controller.notify, timeout=30000) as note:
        dialog.accept()
    assert note.args[0] == "Data pinned", note.args
    assert note.args[2] is False
    assert f"Pinned 1 commit(s) and 1 file(s) read by analysis.ipynb in {nb.parent / 'analysis.pachyderm.lock'}" \
        in note.args[1]
    entry = lockfile.read(nb.parent / "analysis.pachyderm.lock")["mounts"][0]
    assert (entry["name"], entry["commit"], [f["path"] for f in entry["files"]]) == ("data", commit, ["/b.txt"])


def test_window_open_lock_asks_for_another_name_when_taken_and_shows_how_far_behind(
        make_app, daemon, client, unique_name, qtbot, tmp_path):
    from PySide6.QtWidgets import QFileDialog

    from pachtray.gui.notebooks import NotebooksPanel

    repo = unique_name("gui")
    old = put_commit(client, repo, FILES)
    lock_path = tmp_path / "run.pachyderm.lock"
    pinned_read(daemon, repo, lock_path)
    put_commit(client, repo, {"a.txt": b"changed\n"})
    unmount(daemon, "data")
    mount(daemon, "data", repo)  # the name is taken by the branch head now

    app = make_app(daemon, show_window=True, wait_repos=False)
    window = app.window
    panel = next(window.tabs.widget(i) for i in range(window.tabs.count())
                 if isinstance(window.tabs.widget(i), NotebooksPanel))
    window.tabs.setCurrentWidget(panel)
    panel.open_button.click()
    dialog = _dialog(qtbot, QFileDialog)
    assert dialog.acceptMode() == QFileDialog.AcceptMode.AcceptOpen
    dialog.selectFile(str(lock_path))
    dialog.accept()

    form = _dialog(qtbot, dialogs.FormDialog)
    assert form.windowTitle() == "Mount names in use"
    edit = form.edits["data"]
    assert edit.text() == f"data_{old[:8]}"
    edit.setText("bad/name")
    form._accept()
    assert "is not a mount name" in form.problem.text() and form.isVisible()
    edit.setText("data_then")
    with qtbot.waitSignal(app.controller.notify, timeout=30000) as note:
        form._accept()
    assert note.args[:1] == ["Lock reproduced"] and note.args[2] is False, note.args
    assert f"mounted data_then (was data): default/{repo}@{old} (1 commit behind master)" in note.args[1]
    states = mounted(daemon)
    assert states["data_then"]["commit"] == old and states["data"]["commit"] != old
    qtbot.waitUntil(lambda: panel.pinned_table.rowCount() == 1 and panel.pinned_table.item(0, 3).text()
                    == "1 behind master", timeout=20000)
    assert [panel.pinned_table.item(0, c).text() for c in (0, 1, 2, 4)] == [
        "data_then", f"default/{repo}", old[:12], str(lock_path)]


def test_a_file_that_is_not_a_lock_is_one_dialog_with_a_title(make_app, daemon, qtbot, tmp_path):
    from PySide6.QtWidgets import QMessageBox

    bad = tmp_path / "notes.lock"
    bad.write_text(json.dumps({"version": 7}))
    app = make_app(daemon, show_window=True, wait_repos=False)
    with qtbot.waitSignal(app.controller.notify, timeout=30000) as note:
        app.notebooks.reproduce(str(bad))
    assert note.args == ["Could not reproduce notes.lock",
                         "This is not a Pachtray lock: lock: unsupported version 7 (this Pachtray reads version 1)",
                         True]
    boxes = [d for d in dialogs.open_dialogs() if isinstance(d, QMessageBox)]
    assert [(b.windowTitle(), b.text()) for b in boxes] == [(note.args[0], note.args[1])]
