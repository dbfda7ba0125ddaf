"""Open JupyterLab from the tray and the window.

The work (set-up, start, checks) is pachtray.jupyter's, on a worker. Progress shows in the tray
(menu entry with Cancel, tooltip) and, when the window is open, in a progress dialog with Cancel.
Each failure is shown once: as a dialog with its title, or, for a JupyterLab 4 of the user's, as
an offer to open Pachtray's JupyterLab instead.
"""

from __future__ import annotations

import threading
from typing import Callable

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QProgressDialog, QWidget

from pachtray import config
from pachtray.gui import dialogs
from pachtray.gui.controller import Controller
from pachtray.jupyter import Opened, open_jupyterlab, server
from pachtray.jupyter.environment import SetupCancelled
from pachtray.jupyter.user_jupyter import PanelWillNotLoad


class JupyterOpener(QObject):
    """One Open JupyterLab at a time; `progress(message, fraction|None)` while it runs."""

    progress = Signal(str, object)
    active_changed = Signal(bool)
    opened = Signal(object)  # pachtray.jupyter.Opened

    def __init__(self, controller: Controller, settings: Callable[[], config.Settings],
                 window: Callable[[], QWidget | None], open_url: Callable[[str], None],
                 parent: QObject | None = None):
        super().__init__(parent)
        self.controller = controller
        self._settings = settings  # the current settings (Save replaces them)
        self._window = window  # the main window when it is shown, else None
        self._open_url = open_url
        self._cancel = threading.Event()
        self.active = False
        self.message = ""
        self.fraction: float | None = None
        self.dialog: QProgressDialog | None = None
        self.progress.connect(self._on_progress)

    def describe(self) -> str:
        done = f" {self.fraction * 100:.0f}%" if self.fraction is not None else ""
        return f"JupyterLab:{done} {self.message}"

    def open(self, managed: bool | None = None) -> None:
        """Start opening (or, when already under way, show its progress)."""
        if self.active:
            self._show_dialog()
            return
        self.active, self.message, self.fraction = True, "Opening JupyterLab…", None
        self._cancel = cancel = threading.Event()
        settings = self._settings()
        mount_dir = self.controller.status.info.get("mount_dir") or ""

        def report(message: str, fraction: float | None) -> None:
            try:
                self.progress.emit(message, fraction)
            except RuntimeError:
                cancel.set()  # the app is closing: stop the set-up

        self.active_changed.emit(True)
        if self._window() is not None:
            self._show_dialog()
        self.controller.tasks.run(lambda: open_jupyterlab(settings, mount_dir, report, cancel, managed),
                                  self._opened, self._failed, busy=True)

    def cancel(self) -> None:
        if self.active and not self._cancel.is_set():
            self._cancel.set()
            self._on_progress("Cancelling…", self.fraction)

    def stop_managed(self, then: Callable[[], None]) -> None:
        """Stop Pachtray's JupyterLab (and its kernels) on a worker, then call `then` (quitting)."""
        self.cancel()
        self.controller.tasks.run(server.stop, lambda _lab: then(), lambda _error: then(), busy=True)

    # ------------------------------------------------------------- progress

    def _on_progress(self, message: str, fraction) -> None:
        self.message, self.fraction = message, fraction
        if self.dialog is not None:
            self.dialog.setLabelText(message)
            if fraction is None:
                self.dialog.setRange(0, 0)
            else:
                self.dialog.setRange(0, 100)
                self.dialog.setValue(int(fraction * 100))

    def _show_dialog(self) -> None:
        if self.dialog is None:
            dialog = QProgressDialog(self.message, "Cancel", 0, 0, self._window())
            dialog.setWindowTitle("Opening JupyterLab")
            dialog.setWindowModality(Qt.WindowModality.NonModal)
            dialog.setAutoClose(False)
            dialog.setAutoReset(False)
            dialog.setMinimumDuration(0)
            dialog.setMinimumWidth(460)
            dialog.canceled.connect(self.cancel)
            self.dialog = dialog
            self._on_progress(self.message, self.fraction)
        self.dialog.show()
        self.dialog.raise_()

    def _finish(self) -> None:
        self.active = False
        if self.dialog is not None:
            self.dialog.canceled.disconnect(self.cancel)
            self.dialog.close()
            self.dialog.deleteLater()
            self.dialog = None
        self.active_changed.emit(False)

    # ------------------------------------------------------------- outcome

    def _opened(self, opened: Opened) -> None:
        self._finish()
        if opened.url:
            self._open_url(opened.url)
            what = "is already running" if opened.reused else "is ready"
            self.controller.notify.emit("JupyterLab", f"Pachtray's JupyterLab {what}: {opened.url.split('?')[0]}", False)
        else:
            self.controller.notify.emit("JupyterLab starting", f"Your Jupyter is starting (PFS_MOUNT_DIR="
                                        f"{opened.env['PFS_MOUNT_DIR']}); log: {opened.log_path}", False)
        self.opened.emit(opened)

    def _failed(self, error: Exception) -> None:
        self._finish()
        if isinstance(error, SetupCancelled):
            self.controller.notify.emit(error.title, str(error), False)
        elif isinstance(error, PanelWillNotLoad):
            dialogs.confirm(self._window(), error.title, str(error), lambda: self.open(managed=True),
                            yes="Open Pachtray's JupyterLab",
                            informative="To use it every time, choose Pachtray's JupyterLab in Settings.")
        else:
            self.controller.notify.emit(getattr(error, "title", "Cannot open JupyterLab"), str(error), True)
