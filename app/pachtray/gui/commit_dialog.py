"""The commit dialog (the tray's and the window's one way to commit a rw mount): it lists what the
commit would change (added, modified, deleted, with sizes; paths someone else changed on the
branch since the mount's base are marked), takes a commit message (the commit's description) and
discards selected single changes after a confirmation. Every call runs on a worker through the
controller; an error is shown once, in a dialog with a title."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import (QAbstractItemView, QDialog, QHBoxLayout, QHeaderView, QLabel, QPlainTextEdit,
                               QPushButton, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget)

from pachtray.gui import dialogs
from pachtray.gui.controller import Controller
from pachtray.gui.models import human_size

COLUMNS = ("Change", "Path", "Size", "Upstream")
UPSTREAM_MARK = "⚠ changed upstream"
WARN = QBrush(QColor("#b3261e"))
GENERIC_TITLES = ("", "Pachtray", "Request failed", "Action failed")  # gui.client's titles of unnamed routes
KIND_COLOURS = {"added": QColor("#1e7d32"), "modified": QColor("#8a5a00"), "deleted": QColor("#b3261e")}


class CommitDialog(QDialog):
    """Review and commit the changes of rw mount (or recovered changes) ``name``."""

    def __init__(self, controller: Controller, name: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.controller, self.name = controller, name
        m = controller.status.mount(name)
        target = f"{m.project}/{m.repo}@{m.branch or 'master'}" if m is not None and m.repo else name
        self.setWindowTitle("Commit changes")
        self.resize(640, 460)
        v = QVBoxLayout(self)
        self.heading = QLabel(f"Changes in <b>{name}</b> to commit to <b>{target}</b>:", self)
        v.addWidget(self.heading)
        self.list = QTreeWidget(self)
        self.list.setColumnCount(len(COLUMNS))
        self.list.setHeaderLabels(COLUMNS)
        self.list.setRootIsDecorated(False)
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        header = self.list.header()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setStretchLastSection(False)
        self.list.itemSelectionChanged.connect(self._update_buttons)
        v.addWidget(self.list, 1)
        self.summary = QLabel("Loading the changes…", self)
        self.summary.setWordWrap(True)
        v.addWidget(self.summary)
        self.upstream_note = QLabel("", self)
        self.upstream_note.setWordWrap(True)
        self.upstream_note.setStyleSheet("color: #b3261e")
        self.upstream_note.hide()
        v.addWidget(self.upstream_note)
        v.addWidget(QLabel("Commit message:", self))
        self.message = QPlainTextEdit(self)
        self.message.setPlaceholderText("What changed and why (stored as the commit's description)")
        self.message.setFixedHeight(72)
        v.addWidget(self.message)
        row = QHBoxLayout()
        self.discard_button = QPushButton("Discard selected…", self)
        self.discard_button.setToolTip("Put the selected files back as they are in the commit the mount is based on")
        self.discard_button.clicked.connect(self.confirm_discard)
        row.addWidget(self.discard_button)
        row.addStretch(1)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.clicked.connect(self.reject)
        row.addWidget(self.cancel_button)
        self.commit_button = QPushButton("Commit", self)
        self.commit_button.setDefault(True)
        self.commit_button.clicked.connect(self.commit)
        row.addWidget(self.commit_button)
        v.addLayout(row)
        self.changes: list[dict] = []
        self.review: str | None = None  # the token of the changes shown (GET changes)
        self._working = True
        self._closed = False  # answers arriving after the dialog closed are dropped
        self.finished.connect(self._on_closed)
        self._update_buttons()
        dialogs.keep_until_closed(self)
        self.load()

    # ------------------------------------------------------------- loading

    def load(self) -> None:
        self._set_working(True)
        self.controller.changes(self.name, self._show, self._listing_failed)

    def _on_closed(self, _result=None) -> None:
        self._closed = True

    def _show(self, answer: dict) -> None:
        if self._closed:
            return
        self.changes = answer.get("changes", [])
        self.review = answer.get("review")
        self.list.clear()
        bold = QFont()
        bold.setBold(True)
        for c in self.changes:
            item = QTreeWidgetItem([c["change"], c["path"], human_size(c.get("size")),
                                    UPSTREAM_MARK if c.get("upstream") else ""])
            item.setData(0, Qt.ItemDataRole.UserRole, c["path"])
            item.setForeground(0, QBrush(KIND_COLOURS.get(c["change"], QColor("black"))))
            item.setTextAlignment(2, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            if c.get("upstream"):
                item.setForeground(3, WARN)
                item.setFont(3, bold)
                item.setToolTip(3, "Someone changed this file on the branch since your mount's base: "
                                   "committing replaces their version with yours.")
            self.list.addTopLevelItem(item)
        counts = {k: sum(1 for c in self.changes if c["change"] == k) for k in ("added", "modified", "deleted")}
        self.summary.setText(", ".join(f"{n} {k}" for k, n in counts.items() if n) or
                             "Nothing to commit: every change was discarded or is a folder without files.")
        upstream = sum(1 for c in self.changes if c.get("upstream"))
        self.upstream_note.setText(f"⚠ {upstream} of these file(s) also changed on the branch since your mount's "
                                   "base: committing replaces their version with yours." if upstream else "")
        self.upstream_note.setVisible(bool(upstream))
        if not answer.get("upstream_checked", True):
            self.summary.setText(self.summary.text() + " (the cluster could not be asked what changed upstream)")
        self._set_working(False)

    def _listing_failed(self, error: Exception) -> None:
        if not self._closed:
            self.summary.setText(f"The changes could not be listed: {dialogs.fit_words(str(error))}")
        self._failed("Cannot list the changes", error)

    def _failed(self, title: str, error: Exception) -> None:
        if self._closed:
            return
        self._set_working(False)
        specific = getattr(error, "title", "")  # e.g. "Daemon not running", "Not logged in"
        dialogs.error(self, title if specific in GENERIC_TITLES else specific, str(error))

    # ------------------------------------------------------------- actions

    def selected_paths(self) -> list[str]:
        return [i.data(0, Qt.ItemDataRole.UserRole) for i in self.list.selectedItems()]

    def confirm_discard(self):
        paths = self.selected_paths()
        if not paths:
            return None
        what = paths[0] if len(paths) == 1 else f"{len(paths)} changes"
        return dialogs.confirm(self, "Discard changes", f"Discard {what}?", lambda: self.discard(paths),
                               yes="Discard", informative="The files go back to how they are in the commit the "
                               "mount is based on; this cannot be undone.", icon=dialogs.QMessageBox.Icon.Warning)

    def discard(self, paths: list[str]) -> None:
        self._set_working(True)
        self.controller.discard_paths(self.name, paths, then=lambda _r: self._closed or self.load(),
                                      failed_to=lambda e: self._failed("Discard failed", e))

    def commit(self) -> None:
        """Commit what the list shows: a program that wrote to the mount since makes it a 409, and the
        list is shown again (the message stays)."""
        self._set_working(True)
        self.controller.commit(self.name, self.message.toPlainText().strip(), review=self.review,
                               then=lambda _r: self._closed or self.accept(), failed_to=self._commit_failed)

    def _commit_failed(self, error: Exception) -> None:
        self._failed("Commit failed", error)
        if getattr(error, "status", None) == 409 and not self._closed:
            self.load()

    # ------------------------------------------------------------- state

    def _set_working(self, working: bool) -> None:
        self._working = working
        self._update_buttons()

    def _update_buttons(self) -> None:
        idle = not self._working
        self.commit_button.setEnabled(idle and bool(self.changes))
        self.discard_button.setEnabled(idle and bool(self.list.selectedItems()))


def open_commit_dialog(controller: Controller, name: str, parent: QWidget | None = None) -> CommitDialog:
    """Show the commit dialog of ``name`` (non-modal to the event loop: tests and the tray keep running)."""
    dialog = CommitDialog(controller, name, parent)
    dialog.open()
    return dialog
