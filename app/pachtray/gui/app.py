"""`pachtray [--window] [--headless]`: the tray app (attaches to or starts the daemon).

With no display (or `--headless`) it runs the daemon in the foreground instead and says so on
stderr. A second launch asks the first to show its window and exits.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import signal
import subprocess
import sys

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QApplication, QMessageBox, QSystemTrayIcon

from pachtray import config, frozen
from pachtray.errors import PachtrayError
from pachtray.gui import daemon_process, dialogs, icons
from pachtray.gui.activity import Activity, ActivityPanel
from pachtray.gui.client import DaemonClient
from pachtray.gui.controller import Controller
from pachtray.gui.daemon_process import FOREIGN, HUNG, OURS
from pachtray.gui.desktop_notifications import DesktopNotifications
from pachtray.gui.jupyter import JupyterOpener
from pachtray.gui.login import LoginFlow, open_in_browser
from pachtray.gui.notices import Notices
from pachtray.gui.notebooks import Notebooks, NotebooksPanel
from pachtray.gui.settings_dialog import RESTART_FIELDS, SettingsDialog, needs_restart, save_settings
from pachtray.gui.tray import Tray
from pachtray.gui.window import MainWindow


class ForeignServer(PachtrayError):
    """The daemon's port or socket is held by something that is not Pachtray."""


class PachtrayApp(QObject):
    """Ties the controller, tray, window and dialogs together."""

    quit_requested = Signal(int)  # exit code; main() quits the event loop on it

    def __init__(self, settings: config.Settings, parent: QObject | None = None):
        super().__init__(parent)
        self.settings = settings
        self.controller = Controller(DaemonClient(settings.api_port), self)
        self.app_icon = icons.app_icon()
        self.window: MainWindow | None = None
        self.login: LoginFlow | None = None
        self.settings_dialog: SettingsDialog | None = None
        self.quit_box: QMessageBox | None = None
        self.open_url = open_in_browser  # the login flow opens the identity provider's page with it
        self.attached = ""  # "attached" to a running daemon or "started" one
        self.jupyter = JupyterOpener(self.controller, lambda: self.settings, self._visible_window,
                                     lambda url: self.open_url(url), self)
        self.window_actions = {
            "jupyter": self._qaction("Open JupyterLab", self.open_jupyterlab),
            "settings": self._qaction("Settings…", self.open_settings),
            "login": self._qaction("Log in…", self.start_login),
            "start": self._qaction("Start the daemon", self.start_daemon),
        }
        self._starting = False  # a find-or-start of the daemon is on its way
        self._start_after_settings = False  # Settings opened because no daemon could start
        self.notebooks = Notebooks(self.controller, self)
        self.tray = Tray(self.controller, icons.tray_icons(), {
            "window": self.show_window, "jupyter": self.open_jupyterlab, "login": self.start_login,
            "settings": self.open_settings, "quit": self.request_quit, "start": self.start_daemon,
        }, self, jupyter=self.jupyter, notebooks=self.notebooks)
        self.desktop_notifications = DesktopNotifications.for_session("Pachtray", self)
        self.notices = Notices(self.tray.icon, self._visible_window, self, desktop=self.desktop_notifications)
        self.activity = Activity(self.controller, self.notices, self)
        self.controller.notify.connect(self._on_notify)
        self.controller.status_changed.connect(self._sync_login_action)
        self.controller.status_changed.connect(self._sync_start_action)
        self._sync_start_action()

    def _qaction(self, text: str, slot) -> QAction:
        action = QAction(text, self)
        action.triggered.connect(lambda _checked=False: slot())
        return action

    # ------------------------------------------------------------- start

    def start(self, show_window: bool = False, fuse_check=frozen.check_fuse_prerequisite) -> None:
        """Show the tray, then find or start the daemon on a worker."""
        missing_fuse = fuse_check()
        if missing_fuse:  # browsing still works; mounting would fail deep inside with no advice
            dialogs.error(None, "FUSE is not installed", missing_fuse)
        if QSystemTrayIcon.isSystemTrayAvailable():
            self.tray.show()
        else:
            show_window = True  # no tray host: the window is the only way in
        if show_window:
            self.show_window()
        self.start_daemon()

    def start_daemon(self) -> None:
        """Attach to the daemon, or start it (at start, and from "Start the daemon" once it is gone)."""
        if self._starting:
            return
        self._starting = True
        self._sync_start_action()
        self.controller.tasks.run(self._find_or_start_daemon, self._daemon_ready, self._daemon_failed, busy=True)

    def _find_or_start_daemon(self) -> str:
        found = daemon_process.probe(self.settings.api_port, self.settings.sock_path)
        if found.state == FOREIGN:
            raise ForeignServer(daemon_process.foreign_message(found), title="Another server is in the way")
        if found.state == HUNG:  # not quit over: the user resumes or ends it and starts again
            raise PachtrayError(daemon_process.hung_message(found), title="The daemon does not answer")
        if found.state == OURS:
            return "attached"
        daemon_process.start_daemon(self.settings)
        return "started"

    def _daemon_ready(self, how: str) -> None:
        self._starting = False
        self.attached = how
        self.controller.start()

    def _daemon_failed(self, error: Exception) -> None:
        self._starting = False
        self._sync_start_action()
        box = dialogs.error(self.window, getattr(error, "title", "Pachtray"), str(error))
        if isinstance(error, ForeignServer):  # the way out is another port: Settings, or quit
            box.finished.connect(lambda _r: self._settings_instead_of_daemon())
        else:
            self.controller.start()  # keep trying: the user may start the daemon or fix Settings

    # ------------------------------------------------------------- window and notifications

    def show_window(self) -> MainWindow:
        if self.window is None:
            self.window = MainWindow(self.controller, self.app_icon, self.window_actions)
            self.window.tabs.addTab(NotebooksPanel(self.notebooks, self.window), "Notebooks")
            self.window.tabs.addTab(ActivityPanel(self.activity, self.window), "Activity")
        self.window.show()
        self.window.raise_()
        self.window.activateWindow()
        return self.window

    def _on_notify(self, title: str, message: str, is_error: bool) -> None:
        """Every notice once, the way gui.notices says; errors also go in the Activity tab."""
        if is_error:
            self.activity.add_error(title, message)
        self.notices.tell(title, message, is_error)

    def launched_again(self) -> None:
        """The user launched Pachtray while it runs: show the window, and start the daemon if it is gone."""
        self.show_window()
        if not self.controller.status.reachable:
            self.start_daemon()

    def _sync_start_action(self) -> None:
        """"Start the daemon" is offered while no daemon answers (it died, or was stopped)."""
        self.window_actions["start"].setVisible(not self.controller.status.reachable)
        self.window_actions["start"].setEnabled(not self._starting)

    def _sync_login_action(self) -> None:
        status = self.controller.status
        action = self.window_actions["login"]
        if status.auth == "on":
            action.setText(f"Log out ({status.user})")
        else:
            action.setText("Log in…")
        action.setEnabled(status.auth in ("on", "unauthenticated"))

    # ------------------------------------------------------------- login

    def start_login(self) -> LoginFlow | None:
        if self.controller.status.auth == "on":
            self.controller.logout()
            return None
        if self.login is not None and self.login.active:
            return self.login
        self.login = LoginFlow(self.controller, self.window, open_url=self.open_url)
        self.login.start()
        return self.login

    # ------------------------------------------------------------- JupyterLab

    def open_jupyterlab(self) -> None:
        """Pachtray's JupyterLab (set up the first time) or the Jupyter chosen in Settings; see gui/jupyter.py."""
        self.jupyter.open()

    def _visible_window(self) -> MainWindow | None:
        return self.window if self.window is not None and self.window.isVisible() else None

    # ------------------------------------------------------------- settings

    def _settings_instead_of_daemon(self) -> None:
        """No daemon could start where the settings say: the user picks other ports (the daemon then
        starts with them), or closes Settings and the app quits."""
        self._start_after_settings = True
        dialog = self.open_settings()
        dialog.rejected.connect(lambda: self.quit_requested.emit(1))

    def open_settings(self) -> SettingsDialog:
        if self.settings_dialog is not None and self.settings_dialog.isVisible():
            self.settings_dialog.raise_()
            return self.settings_dialog
        self.settings_dialog = SettingsDialog(self.settings, self.controller.tasks.run, self._settings_saved, self.window)
        self.settings_dialog.open()
        return self.settings_dialog

    def _settings_saved(self, old: config.Settings, new: config.Settings) -> None:
        self.settings = new
        if self._start_after_settings:  # no daemon runs: nothing to restart, start one with them
            self._start_after_settings = False
            self.controller.set_client(DaemonClient(new.api_port))
            self.start_daemon()
            return
        if not needs_restart(old, new):
            self.controller.notify.emit("Settings saved", "Your settings are saved.", False)
            return
        dialogs.confirm(self.window, "Restart the daemon?",
                        "The new cluster, folder, port or cache settings take effect when the daemon restarts.",
                        lambda: self.restart_daemon(old), yes="Restart now",
                        no="Keep the daemon as it runs", on_no=lambda: self._keep_daemon_settings(old, tell=True),
                        informative=("Mounts are unmounted and mounted again" if new.restore_mounts else
                                     "Mounts are unmounted") + "; uncommitted read-write changes stay staged and "
                                    "come back (changes made on one cluster wait for it: they are never committed "
                                    "to another).")

    def _keep_daemon_settings(self, running: config.Settings, *, tell: bool) -> None:
        """The daemon goes on as it runs: the settings only a restart applies go back to its values
        (else the next start of the app would look for it where it is not)."""
        kept = dataclasses.replace(self.settings, **{f: getattr(running, f) for f in RESTART_FIELDS})
        self.settings = kept
        said = ("The daemon's cluster, folder, port and cache settings are kept as it runs them; your other "
                "changes are saved.")
        self.controller.tasks.run(
            lambda: save_settings(kept),
            lambda _: self.controller.notify.emit("Settings saved", said, False) if tell else None,
            lambda e: self.controller.notify.emit("Settings not saved", str(e), True))

    def restart_daemon(self, running: config.Settings) -> None:
        """Stop the daemon that runs with ``running`` and start one with the settings saved now; nothing
        is stopped when what the new one needs (its ports) is taken."""
        settings, client = self.settings, self.controller.client
        self.controller.stop()  # the daemon is away on purpose for a moment

        def restart():
            daemon_process.check_ports_free(running, settings)
            if daemon_process.probe(running.api_port, timeout=2.0).state in (OURS, HUNG):  # (else none runs)
                try:
                    client.put("/pachtray/v1/_shutdown", {})
                except PachtrayError:
                    pass  # already gone
                if not daemon_process.wait_stopped(running.api_port):
                    raise PachtrayError(f"The daemon on port {running.api_port} did not stop within a minute.",
                                        title="Restart failed")
            daemon_process.start_daemon(settings)

        def restarted(_):
            self.controller.set_client(DaemonClient(settings.api_port))
            self.controller.start()
            self.controller.notify.emit("Daemon restarted", "The daemon runs with your new settings.", False)

        def failed(error):
            if isinstance(error, daemon_process.PortTaken):  # the old daemon runs on, as before
                self._keep_daemon_settings(running, tell=False)  # (the refusal says why)
            self.controller.start()  # shows what is there now
            self.controller.notify.emit(getattr(error, "title", "Restart failed"), str(error), True)

        self.controller.tasks.run(restart, restarted, failed, busy=True)

    # ------------------------------------------------------------- quit

    def request_quit(self) -> QMessageBox:
        """Ask: keep the mounts running in the daemon, or stop everything (warns about rw changes)."""
        status = self.controller.status
        box = QMessageBox(QMessageBox.Icon.Question, "Quit Pachtray", "Keep your mounts running after quitting?",
                          QMessageBox.StandardButton.NoButton, self.window)
        details = []
        active = [m for m in status.mounted if m.state != "pending"]  # (not kept changes waiting outside)
        if active:
            details.append(f"{len(active)} mount(s) are active in {status.info.get('mount_dir', 'the mount folder')}.")
        dirty = [m for m in status.mounted if m.dirty]
        if dirty:
            names = ", ".join(f"{m.name} ({m.pending})" for m in dirty)
            details.append(f"Uncommitted read-write changes: {names}. Stopping keeps them staged (not uploaded); "
                           "they are offered again next time. Commit them first to upload them.")
            box.setIcon(QMessageBox.Icon.Warning)
        box.setInformativeText("\n\n".join(details) or "No mounts are active.")
        keep = box.addButton("Keep mounts running", QMessageBox.ButtonRole.AcceptRole)
        stop = box.addButton("Stop everything", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(keep)

        def chosen(_result):
            self.quit_box = None
            if box.clickedButton() is keep:
                self.quit(stop_daemon=False)
            elif box.clickedButton() is stop:
                self.quit(stop_daemon=True)

        box.finished.connect(chosen)
        dialogs.keep_until_closed(box)
        self.quit_box = box
        box.open()
        return box

    def quit(self, stop_daemon: bool, jupyter_done: bool = False) -> None:
        """Leave; with stop_daemon the daemon unmounts and exits first, and no dead mount stays."""
        if not jupyter_done and self.settings.stop_jupyter_on_quit:  # Pachtray's JupyterLab goes first
            self.jupyter.stop_managed(lambda: self.quit(stop_daemon, jupyter_done=True))
            return
        if self.login is not None:
            self.login.cancel()
        if not stop_daemon:
            self._leave()
            return
        port, client = self.settings.api_port, self.controller.client
        mount_dir = self.controller.status.info.get("mount_dir", "")
        self.controller.stop()  # the daemon going away is what we asked for

        def stop():
            try:
                client.put("/pachtray/v1/_shutdown", {})
            except PachtrayError:
                pass  # not running: nothing to stop
            stopped = daemon_process.wait_stopped(port)
            if stopped and mount_dir and os.path.ismount(mount_dir):
                _lazy_unmount(mount_dir)  # the daemon died without unmounting: never leave a dead mount
            return stopped

        def done(stopped):
            if not stopped:
                dialogs.error(self.window, "Daemon still running",
                              f"The daemon on port {port} did not stop within a minute; it keeps serving its mounts.")
            self._leave()

        self.controller.tasks.run(stop, done, lambda e: self._leave(), busy=True)

    def _leave(self) -> None:
        self.controller.stop()
        self.tray.hide()
        if self.window is not None:
            self.window.close()
        self.quit_requested.emit(0)

    def dispose(self) -> None:
        """Stop background work and delete the widgets on the GUI thread (exit, tests)."""
        self.jupyter.cancel()
        self.controller.stop()
        self.controller.tasks.close(20000)
        self.tray.hide()
        self.tray.dispose()
        if self.desktop_notifications is not None:
            self.desktop_notifications.close()
        for widget in (self.window, self.settings_dialog):
            if widget is not None:
                widget.close()
                widget.deleteLater()
        self.window = self.settings_dialog = None


def _lazy_unmount(path: str) -> None:
    for cmd in (["fusermount3", "-uz", path], ["fusermount", "-uz", path]):
        if shutil.which(cmd[0]):
            subprocess.run(cmd, capture_output=True, timeout=30)
            if not os.path.ismount(path):
                return


# ----------------------------------------------------------------- command line

def _quit_on_signals(qapp: QApplication) -> None:
    """SIGTERM/SIGINT end the tray app cleanly (the daemon keeps running, like "Keep mounts running").

    Python runs signal handlers only between bytecodes, so a timer gives it a chance while Qt waits.
    """
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: qapp.exit(0))
    wake = QTimer(qapp)
    wake.timeout.connect(lambda: None)
    wake.start(500)


def has_display() -> bool:
    """Whether Qt can show anything here (an explicit non-X11/Wayland platform counts)."""
    if sys.platform in ("darwin", "win32"):
        return True
    platform = os.environ.get("QT_QPA_PLATFORM", "").split(":")[0].split(";")[0]
    if platform.startswith("xcb"):
        return bool(os.environ.get("DISPLAY"))
    if platform.startswith("wayland"):
        return bool(os.environ.get("WAYLAND_DISPLAY"))
    if platform:
        return True  # offscreen, vnc, eglfs, ...: the user chose a display of another kind
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def headless(settings: config.Settings, reason: str) -> int:
    """Run the daemon in the foreground (no GUI)."""
    found = daemon_process.probe(settings.api_port, settings.sock_path)
    if found.state == OURS:
        print(f"pachtray: {reason}; a Pachtray daemon is already running on {found.where}; nothing to do.",
              file=sys.stderr)
        return 0
    if found.state in (FOREIGN, HUNG):
        message = daemon_process.foreign_message(found) if found.state == FOREIGN else daemon_process.hung_message(found)
        print(f"pachtray: {message}", file=sys.stderr)
        return 1
    print(f"pachtray: {reason}: running the daemon only (API on 127.0.0.1:{settings.api_port}"
          f"{' and ' + settings.sock_path if settings.sock_path else ''}). Stop it with Ctrl-C.", file=sys.stderr)
    from pachtray.daemon import daemon_main

    argv = daemon_process.daemon_command(settings)
    return daemon_main(argv[argv.index("daemon") + 1:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pachtray", description="Pachyderm in your tray: mounts, browser, API.")
    parser.add_argument("--window", action="store_true", help="open the main window at start")
    parser.add_argument("--headless", action="store_true", help="run the daemon only (no GUI)")
    args = parser.parse_args(argv)
    settings, problem = config.Settings.load_or_default()
    if problem:
        print(f"pachtray: {problem}", file=sys.stderr)
    if args.headless:
        return headless(settings, "--headless given")
    if not has_display():
        return headless(settings, "no display (neither DISPLAY nor WAYLAND_DISPLAY is set)")

    qapp = QApplication.instance() or QApplication(sys.argv[:1])
    qapp.setApplicationName("Pachtray")
    qapp.setQuitOnLastWindowClosed(False)
    from pachtray.gui.single_instance import SingleInstance

    instance = SingleInstance()
    if not instance.claim():
        print("pachtray: already running; asked it to show its window.", file=sys.stderr)
        return 0
    app = PachtrayApp(settings)
    qapp.setWindowIcon(app.app_icon)
    instance.activated.connect(app.launched_again)
    app.quit_requested.connect(qapp.exit)
    if not QSystemTrayIcon.isSystemTrayAvailable():
        print("pachtray: no system tray found; showing the window instead (closing it quits the tray app, "
              "the daemon keeps running).", file=sys.stderr)
        qapp.setQuitOnLastWindowClosed(True)
    app.start(show_window=args.window)
    _quit_on_signals(qapp)
    code = qapp.exec()
    instance.release()
    app.dispose()
    return code
