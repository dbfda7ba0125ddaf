"""Reproducible notebooks in the GUI: "Pin data…" for each running kernel, "Open lock…", and the
Notebooks tab of the window showing the kernels and the pinned commits mounted from locks.

`Notebooks` holds the cached kernel list and the two flows (shared by the tray and the window);
every daemon call and file access runs on a worker; errors reach the user as one dialog with a
title (the controller's `notify`).
"""

from __future__ import annotations

import os

import shiboken6
from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QFileDialog, QGroupBox, QHBoxLayout, QLabel, QMenu, QPushButton, QTableWidget,
    QTableWidgetItem, QVBoxLayout, QWidget,
)

from pachtray.gui import dialogs
from pachtray.gui.client import EXTRAS
from pachtray.gui.controller import Controller
from pachtray.gui.tables import row_table
from pachtray.pfs import names
from pachtray.repro import lockfile
from pachtray.repro.cli import describe_mount

KERNELS_INTERVAL_MS = 10000  # while the Notebooks tab is shown
LOCK_FILTER = "Pachyderm locks (*.lock);;All files (*)"


def _title(kernel: dict) -> str:
    files = kernel.get("files_read", 0)
    return f"{os.path.basename(kernel['notebook'])} ({files} file{'s' if files != 1 else ''} read)"


class Notebooks(QObject):
    """Running notebook kernels (cached) and the pin / reproduce flows."""

    kernels_changed = Signal()
    pinned_changed = Signal()

    def __init__(self, controller: Controller, parent: QObject | None = None):
        super().__init__(parent)
        self.controller = controller
        self.kernels: list[dict] = []
        self.kernels_error = ""
        self.reproduced: list[dict] = []  # mounts made from locks: reproduce answers plus "lock" (the file)
        self._loading = False
        self._pin_menu: QMenu | None = None  # the tray's Pin data submenu, refilled when the list arrives

    # ------------------------------------------------------------- kernels

    def refresh(self) -> None:
        if self._loading:
            return
        self._loading = True
        client = self.controller.client
        self.controller.tasks.run(lambda: client.get(EXTRAS + "/kernels"), self._got_kernels, self._kernels_failed)

    def _got_kernels(self, answer: dict) -> None:
        self._loading = False
        self.kernels = [k for k in answer.get("kernels", []) if k.get("pid")]
        self.kernels_error = "; ".join(answer.get("problems", []))
        self._changed()

    def _kernels_failed(self, error: Exception) -> None:
        self._loading = False
        self.kernels, self.kernels_error = [], str(error)
        self._changed()

    def _changed(self) -> None:
        if self._pin_menu is not None and shiboken6.isValid(self._pin_menu):
            self._fill_pin_menu(self._pin_menu)  # the tray menu may be open: show the new list at once
        self.kernels_changed.emit()

    def add_to_menu(self, menu: QMenu, submenu) -> None:
        """The tray's entries: Pin data ▸ one per kernel, and Open lock…; `submenu(parent, title)`
        makes a submenu the tray deletes on its next rebuild."""
        self._pin_menu = submenu(menu, "Pin data")
        self._fill_pin_menu(self._pin_menu)
        menu.addAction("Open lock…").triggered.connect(lambda _checked=False: self.open_lock())

    def _fill_pin_menu(self, pin: QMenu) -> None:
        pin.clear()
        if not self.kernels:
            pin.addAction("Cannot list notebooks" if self.kernels_error else "No running notebooks").setEnabled(False)
        for kernel in self.kernels:
            action = pin.addAction(_title(kernel) + "…")
            action.setToolTip(kernel["notebook"])
            action.triggered.connect(lambda _checked=False, k=kernel: self.pin_data(k))

    # ------------------------------------------------------------- pin data

    def pin_data(self, kernel: dict, parent: QWidget | None = None) -> QFileDialog:
        """Ask where to write the lock (NOTEBOOK.pachyderm.lock beside the notebook), then write it."""
        dialog = _file_dialog(parent, f"Pin the data {os.path.basename(kernel['notebook'])} read",
                              QFileDialog.AcceptMode.AcceptSave, str(lockfile.default_path(kernel["notebook"])))
        dialog.fileSelected.connect(lambda path: self.write_lock(kernel, path))
        dialog.open()
        return dialog

    def write_lock(self, kernel: dict, path: str) -> None:
        client = self.controller.client

        def work():
            answer = client.get(EXTRAS + "/lock", pid=kernel["pid"])
            return answer, lockfile.write(path, answer["lock"])

        def done(result):
            answer, written = result
            lock = answer["lock"]
            files = sum(len(m["files"]) for m in lock["mounts"])
            text = (f"Pinned {len(lock['mounts'])} commit(s) and {files} file(s) read by "
                    f"{os.path.basename(kernel['notebook'])} in {written}")
            self.controller.notify.emit("Data pinned", "\n".join([text, *answer.get("warnings", [])]), False)

        title = f"Could not pin the data of {os.path.basename(kernel['notebook'])}"
        self.controller.tasks.run(work, done, lambda e: self._failed(title, e), busy=True)

    # ------------------------------------------------------------- open lock

    def open_lock(self, parent: QWidget | None = None) -> QFileDialog:
        dialog = _file_dialog(parent, "Open a lock and mount its commits", QFileDialog.AcceptMode.AcceptOpen, "")
        dialog.fileSelected.connect(lambda path: self.reproduce(path, parent=parent))
        dialog.open()
        return dialog

    def reproduce(self, path: str, rename: dict | None = None, parent: QWidget | None = None) -> None:
        """Check the lock; ask for other names when some are taken; then mount its commits."""
        client = self.controller.client
        title = f"Could not reproduce {os.path.basename(path)}"

        def check():
            lock = lockfile.read(path)
            return lock, client.put(EXTRAS + "/_reproduce", {"lock": lock, "rename": rename or {}, "check": True})

        def checked(result):
            lock, answer = result
            if answer["conflicts"]:
                self._ask_names(path, lock, answer["conflicts"], rename or {}, parent)
            else:
                self._mount(path, lock, rename or {}, title)

        self.controller.tasks.run(check, checked, lambda e: self._failed(title, e), busy=True)

    def _ask_names(self, path: str, lock: dict, conflicts: list[dict], rename: dict,
                   parent: QWidget | None) -> dialogs.FormDialog:
        fields = [(c["name"], f"'{c['taken']}' is used by {c['by']}; mount as", c["suggestion"]) for c in conflicts]

        def accept(values):
            for value in values.values():
                if (problem := names.mount_name_problem(value)) is not None:
                    return f"{names.quoted(value)} is not a mount name: {problem}."
            self._mount(path, lock, {**rename, **values}, f"Could not reproduce {os.path.basename(path)}")
            return None

        form = dialogs.FormDialog(parent, "Mount names in use", fields, accept)
        form.setToolTip("The notebook reads these mounts by name; another name changes its /pfs paths")
        form.open()
        return form

    def _mount(self, path: str, lock: dict, rename: dict, title: str) -> None:
        client = self.controller.client

        def done(answer):
            made = [dict(m, lock=path) for m in answer["mounts"]]
            taken = {m["name"] for m in made}
            self.reproduced = [m for m in self.reproduced if m["name"] not in taken] + made
            self.pinned_changed.emit()
            lines = [describe_mount(m) for m in made] + answer.get("warnings", [])
            self.controller.notify.emit("Lock reproduced", "\n".join(lines), False)
            self.controller.refresh()

        self.controller.tasks.run(lambda: client.put(EXTRAS + "/_reproduce", {"lock": lock, "rename": rename}),
                                  done, lambda e: self._failed(title, e), busy=True)

    def _failed(self, title: str, error: Exception) -> None:
        self.controller.notify.emit(title, error_text(error), True)


def error_text(error: Exception) -> str:
    """What went wrong, in words for the dialog (the daemon's message, or the file's problem)."""
    if isinstance(error, lockfile.LockFormatError):
        return f"This is not a Pachtray lock: {error}"
    if isinstance(error, OSError):
        where = f" {error.filename}" if error.filename else ""
        return f"Cannot use the file{where}: {error.strerror or error}"
    return getattr(error, "message", "") or str(error)


def _file_dialog(parent, caption: str, mode, selected: str) -> QFileDialog:
    dialog = QFileDialog(parent, caption)
    dialog.setOption(QFileDialog.Option.DontUseNativeDialog, True)  # no blocking platform dialog; testable
    dialog.setAcceptMode(mode)
    dialog.setNameFilter(LOCK_FILTER)
    if mode == QFileDialog.AcceptMode.AcceptOpen:
        dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
    if selected:
        dialog.setDirectory(os.path.dirname(selected))
        dialog.selectFile(os.path.basename(selected))
    dialogs.keep_until_closed(dialog)
    return dialog


KERNEL_COLUMNS = ("Notebook", "Kernel pid", "Files read", "Jupyter server")
PINNED_COLUMNS = ("Mount", "Source", "Commit", "Behind", "Lock")


def _fill(table: QTableWidget, rows: list[tuple[str, ...]], tips: list[str]) -> None:
    table.setRowCount(len(rows))
    for r, (values, tip) in enumerate(zip(rows, tips)):
        for c, value in enumerate(values):
            item = QTableWidgetItem(value)
            item.setToolTip(tip)
            table.setItem(r, c, item)


class NotebooksPanel(QWidget):
    """The window's Notebooks tab: running kernels (Pin data…), and the commits mounted from locks
    with how far each is behind its branch's head (live from the mount states)."""

    def __init__(self, notebooks: Notebooks, parent: QWidget | None = None):
        super().__init__(parent)
        self.notebooks = notebooks
        v = QVBoxLayout(self)
        box = QGroupBox("Running notebooks", self)
        bv = QVBoxLayout(box)
        self.kernel_table = row_table(KERNEL_COLUMNS, box)
        self.kernel_table.itemSelectionChanged.connect(self._update_buttons)
        self.kernel_table.doubleClicked.connect(lambda _index: self.pin_selected())
        bv.addWidget(self.kernel_table)
        self.kernels_label = QLabel("", box)
        self.kernels_label.setWordWrap(True)
        bv.addWidget(self.kernels_label)
        row = QHBoxLayout()
        self.refresh_button = QPushButton("Refresh", box)
        self.refresh_button.clicked.connect(notebooks.refresh)
        self.pin_button = QPushButton("Pin data…", box)
        self.pin_button.setToolTip("Write a lock file with the exact commits and files this notebook's kernel read")
        self.pin_button.clicked.connect(self.pin_selected)
        self.open_button = QPushButton("Open lock…", box)
        self.open_button.setToolTip("Mount the commits of a lock file read-only under the same names")
        self.open_button.clicked.connect(lambda: notebooks.open_lock(self))
        for b in (self.refresh_button, self.pin_button, self.open_button):
            row.addWidget(b)
        row.addStretch(1)
        bv.addLayout(row)
        v.addWidget(box, 3)
        box = QGroupBox("Pinned commits mounted from locks", self)
        pv = QVBoxLayout(box)
        self.pinned_table = row_table(PINNED_COLUMNS, box)
        self.pinned_table.setTextElideMode(Qt.TextElideMode.ElideLeft)  # lock paths: keep the file name
        pv.addWidget(self.pinned_table)
        v.addWidget(box, 2)

        self._timer = QTimer(self)
        self._timer.setInterval(KERNELS_INTERVAL_MS)
        self._timer.timeout.connect(notebooks.refresh)
        notebooks.kernels_changed.connect(self._show_kernels)
        notebooks.pinned_changed.connect(self._show_pinned)
        notebooks.controller.status_changed.connect(self._show_pinned)
        self._show_kernels()
        self._show_pinned()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.notebooks.refresh()
        self._timer.start()

    def hideEvent(self, event) -> None:
        self._timer.stop()
        super().hideEvent(event)

    def selected_kernel(self) -> dict | None:
        rows = self.kernel_table.selectionModel().selectedRows()
        if not rows or rows[0].row() >= len(self.notebooks.kernels):
            return None
        return self.notebooks.kernels[rows[0].row()]

    def pin_selected(self):
        kernel = self.selected_kernel()
        return self.notebooks.pin_data(kernel, self) if kernel else None

    def _update_buttons(self) -> None:
        self.pin_button.setEnabled(self.selected_kernel() is not None)

    def _show_kernels(self) -> None:
        selected = self.selected_kernel()
        kernels = self.notebooks.kernels
        _fill(self.kernel_table, [(k["notebook"], str(k["pid"]), str(k.get("files_read", 0)), k["server"])
                                  for k in kernels], [k["notebook"] for k in kernels])
        for r, k in enumerate(kernels):
            if selected and k["kernel_id"] == selected["kernel_id"] or (selected is None and r == 0):
                self.kernel_table.selectRow(r)
        if self.notebooks.kernels_error:
            self.kernels_label.setText(f"Some Jupyter servers did not answer: {self.notebooks.kernels_error}")
        else:
            self.kernels_label.setText("" if kernels else "No running notebook kernels were found.")
        self._update_buttons()

    def _show_pinned(self) -> None:
        status = self.notebooks.controller.status
        rows, tips = [], []
        for m in self.notebooks.reproduced:
            state = status.mount(m["name"])
            if state is None or state.commit != m["commit"]:
                behind = "unmounted"
            elif not state.branch:
                behind = "branch gone"
            else:
                behind = f"{state.behind} behind {state.branch}" if state.behind else f"head of {state.branch}"
            rows.append((m["name"], f"{m['project']}/{m['repo']}", m["commit"][:12], behind, m["lock"]))
            tips.append(state.status if state is not None else "")
        _fill(self.pinned_table, rows, tips)
