"""Open JupyterLab from the tray and the window, and its Settings: progress with Cancel, each error
shown once, a JupyterLab 4 of the user's answered with an offer, kernels, quitting."""

from __future__ import annotations

import dataclasses
import os
import socket

import pytest
from PySide6.QtWidgets import QPushButton
from guihelpers import find_action, make_app, shared_daemon  # noqa: F401 - fixtures

from conftest import free_port
from fake_envs import fake_env, fake_jupyter, pip_index_only
from pachtray import config
from pachtray.gui import dialogs
from pachtray.jupyter import environment, server


def settings_without_daemon(tmp_path, **kw) -> config.Settings:
    """Settings the extension could use; Open JupyterLab itself does not need the daemon to answer."""
    return config.Settings(api_port=free_port(), sock_path=str(tmp_path / "s.sock"), mount_dir=str(tmp_path / "pfs"),
                           **kw)


@pytest.fixture
def silent_index(monkeypatch):
    """pip's only index accepts connections and never answers: the set-up waits there until cancelled."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    pip_index_only(monkeypatch, silent.getsockname()[1])
    monkeypatch.setenv("PIP_TIMEOUT", "600")
    yield
    silent.close()


def dialog_titled(title: str):
    return [d for d in dialogs.open_dialogs() if d.windowTitle() == title]


def test_setup_progress_in_tray_and_window_and_cancel(qapp, qtbot, tmp_path, monkeypatch, silent_index):
    from pachtray.gui.app import PachtrayApp

    monkeypatch.setenv(environment.ENV_VAR, str(tmp_path / "env"))
    app = PachtrayApp(settings_without_daemon(tmp_path))
    opener = app.jupyter
    try:
        app.show_window()
        app.open_jupyterlab()
        assert opener.active and opener.dialog is not None and opener.dialog.isVisible()
        qtbot.waitUntil(lambda: opener.message == "Downloading JupyterLab and the Pachyderm extension", timeout=120000)
        assert opener.dialog.labelText() == opener.message and opener.dialog.value() == 3

        app.tray.rebuild()
        texts = [a.text() for a in app.tray.menu.actions() if not a.isSeparator()]
        assert opener.describe() in texts and "Open JupyterLab" not in texts
        assert "JupyterLab: 3% Downloading JupyterLab" in app.tray.icon.toolTip()
        pending = app.controller.tasks.pending
        find_action(app.tray.menu, ["Open window"]).trigger()
        app.open_jupyterlab()  # a second Open while it runs shows the same progress, starts nothing
        assert app.controller.tasks.pending == pending

        with qtbot.waitSignal(app.controller.notify, timeout=20000) as note:  # far below pip's timeout
            next(b for b in opener.dialog.findChildren(QPushButton) if b.text() == "Cancel").click()
        assert note.args[0] == "JupyterLab set-up cancelled" and note.args[2] is False
        assert not opener.active and opener.dialog is None
        assert not (tmp_path / "env").exists()  # nothing half-made is kept
        assert not dialog_titled("JupyterLab set-up cancelled")  # a cancel is no error dialog
        app.tray.rebuild()
        assert find_action(app.tray.menu, ["Open JupyterLab"]) is not None
    finally:
        app.dispose()


def test_cancel_from_the_tray_menu(qapp, qtbot, tmp_path, monkeypatch, silent_index):
    from pachtray.gui.app import PachtrayApp

    monkeypatch.setenv(environment.ENV_VAR, str(tmp_path / "env"))
    app = PachtrayApp(settings_without_daemon(tmp_path))
    try:
        app.open_jupyterlab()  # no window: the tray alone shows the progress
        assert app.jupyter.dialog is None
        qtbot.waitUntil(lambda: app.jupyter.message.startswith("Downloading"), timeout=120000)
        app.tray.rebuild()
        with qtbot.waitSignal(app.jupyter.active_changed, timeout=20000):
            find_action(app.tray.menu, ["Cancel opening JupyterLab"]).trigger()
        assert not (tmp_path / "env").exists()
    finally:
        app.dispose()


def test_own_jupyterlab_4_offers_pachtrays_and_an_unreachable_index_is_shown_once(qapp, qtbot, tmp_path,
                                                                                 monkeypatch):
    from pachtray.gui.app import PachtrayApp

    python = fake_env(tmp_path / "lab4", {"jupyterlab": "4.2.5", "jupyterlab-pachyderm": "2.8.5"},
                      ("jupyterlab", "jupyterlab_pachyderm"))
    jupyter = fake_jupyter(tmp_path, python)
    pip_index_only(monkeypatch, free_port())  # nobody listens there
    monkeypatch.setenv(environment.ENV_VAR, str(tmp_path / "env"))
    app = PachtrayApp(settings_without_daemon(tmp_path, jupyter_path=str(jupyter)))
    try:
        app.open_jupyterlab()
        qtbot.waitUntil(lambda: bool(dialog_titled("The Pachyderm panel will not load")), timeout=60000)
        offer = dialog_titled("The Pachyderm panel will not load")[0]
        assert "JupyterLab 4.2.5" in offer.text()
        assert not (tmp_path / "ran.json").exists()  # the user's Jupyter was not started
        accept = next(b for b in offer.buttons() if b.text() == "Open Pachtray's JupyterLab")
        with qtbot.waitSignal(app.controller.notify, timeout=240000,
                              check_params_cb=lambda title, _m, is_error: is_error) as note:
            accept.click()
        title, message, _ = note.args
        assert title == "Cannot download JupyterLab" and "Connection refused" in message
        assert len(dialog_titled(title)) == 1
        assert not (tmp_path / "env").exists()
    finally:
        for box in dialogs.open_dialogs():
            box.done(0)
        app.dispose()


# ----------------------------------------------------------------- Settings


def _run_now(fn, on_result, on_error):
    try:
        result = fn()
    except Exception as e:  # noqa: BLE001
        on_error(e)
    else:
        on_result(result)


def test_settings_choose_jupyter_and_what_quitting_does(qapp, tmp_path):
    from pachtray.gui.settings_dialog import SettingsDialog

    saved = []
    dialog = SettingsDialog(config.Settings(), _run_now, lambda old, new: saved.append(new))
    assert dialog.managed_radio.isChecked() and not dialog.jupyter_edit.isEnabled()
    assert "Python 3 (ipykernel) of Pachtray's JupyterLab" in dialog.kernels_label.text()
    dialog.own_radio.setChecked(True)
    assert dialog.jupyter_edit.isEnabled()
    dialog.jupyter_edit.setText("")
    dialog.save()
    assert not saved and "choose the jupyter program" in dialog.problems["jupyter_path"].text()

    jupyter = fake_jupyter(tmp_path, "/usr/bin/python3")
    dialog.jupyter_edit.setText(str(jupyter))
    dialog.stop_jupyter_check.setChecked(True)
    dialog.save()
    stored = config.Settings.load()
    assert stored.jupyter_path == str(jupyter) and stored.stop_jupyter_on_quit

    dialog = SettingsDialog(stored, _run_now, lambda old, new: saved.append(new))
    assert dialog.own_radio.isChecked() and dialog.stop_jupyter_check.isChecked()
    dialog.managed_radio.setChecked(True)
    dialog.save()
    assert config.Settings.load().jupyter_path == ""  # Pachtray's JupyterLab again


def test_settings_add_python_environment_as_kernel(qapp, tmp_path):
    from pachtray.gui.settings_dialog import SettingsDialog

    dialog = SettingsDialog(config.Settings(), _run_now, lambda old, new: None)
    bare = fake_env(tmp_path / "bare")
    dialog.add_kernel(str(tmp_path / "bare"))
    box = dialog_titled("ipykernel missing")
    assert len(box) == 1 and f"{bare} -m pip install ipykernel" in box[0].text()
    box[0].done(0)
    assert not dialog.kernels_added

    fake_env(tmp_path / "analysis", modules=("ipykernel",))
    dialog.add_kernel(str(tmp_path / "analysis"))
    assert [k.name for k in dialog.kernels_added] == [dialog.kernels_added[0].name]
    assert dialog.kernels_added[0].display_name in dialog.kernels_label.text()
    assert dialog.add_kernel_button.isEnabled()


# ----------------------------------------------------------------- the real thing


def open_and_wait(app, qtbot):
    """Open JupyterLab from the app; the Opened it reports (fails with the error it showed, if any)."""
    outcome = []
    app.jupyter.opened.connect(outcome.append)
    app.controller.notify.connect(lambda title, message, is_error: outcome.append(f"{title}: {message}")
                                  if is_error else None)
    app.open_jupyterlab()
    qtbot.waitUntil(lambda: bool(outcome), timeout=600000)
    assert not isinstance(outcome[0], str), outcome[0]
    return outcome[0]


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.timeout(1200)
def test_open_reuse_and_quit_with_pachtrays_jupyterlab(make_app, shared_daemon, jlab_venv, qtbot, monkeypatch,
                                                       tmp_path):
    monkeypatch.setenv(environment.ENV_VAR, str(jlab_venv))
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # JupyterLab's root folder: not the real home
    urls: list[str] = []
    try:
        first = make_app(shared_daemon, show_window=False, wait_repos=False)
        first.open_url = urls.append
        opened = open_and_wait(first, qtbot)
        assert opened.kind == "managed" and not opened.reused
        assert len(urls) == 1 and urls[0].startswith("http://127.0.0.1:")
        lab = server.running()
        assert lab is not None and lab.url == urls[0]
        assert lab.wiring["sock_path"] == shared_daemon.sock_path

        with qtbot.waitSignal(first.quit_requested, timeout=60000):
            first.quit(stop_daemon=False)  # the default: Pachtray's JupyterLab keeps running
        assert lab.answering()

        second = make_app(shared_daemon, show_window=False, wait_repos=False)
        second.open_url = urls.append
        second.settings = dataclasses.replace(second.settings, stop_jupyter_on_quit=True)
        assert open_and_wait(second, qtbot).reused and urls[-1] == urls[0]  # found, not started again
        with qtbot.waitSignal(second.quit_requested, timeout=60000):
            second.quit(stop_daemon=False)
        assert not lab.answering() and server.load_record() is None
    finally:
        server.stop()
