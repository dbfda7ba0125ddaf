"""Small non-blocking dialogs: they open with `open()` and call back, so the event loop (and the
tray, and tests) keep running while they are shown."""

from __future__ import annotations

from typing import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QFormLayout, QLabel, QLineEdit, QMessageBox, QWidget

from pachtray.pfs.names import cut

_open: list[QWidget] = []  # keeps Python wrappers alive while a dialog is shown
WORD_MAX = 80  # characters of one word in a dialog (see fit_words)


def keep_until_closed(dialog: QWidget) -> None:
    """Hold the dialog while it is open, then delete it on the GUI thread.

    Left to Python's cycle collector, a widget could be destroyed on whatever thread happens to
    run the collection (a worker), which Qt does not allow.
    """
    def forget(*_):
        if dialog in _open:
            _open.remove(dialog)

    def closed(*_):
        forget()
        dialog.deleteLater()

    _open.append(dialog)
    dialog.finished.connect(closed)
    dialog.destroyed.connect(forget)  # deleted with its parent window before it was closed


def open_dialogs() -> list[QWidget]:
    """Dialogs currently shown (tests drive them through this)."""
    return list(_open)


def confirm(parent: QWidget | None, title: str, text: str, on_yes: Callable[[], None], *,
            yes: str = "OK", informative: str = "", icon=QMessageBox.Icon.Question,
            no: str = "", on_no: Callable[[], None] | None = None) -> QMessageBox:
    """Ask; `on_yes` runs on `yes`. With `no` that button replaces Cancel, and `on_no` runs on any
    answer but yes (the window closed too)."""
    box = QMessageBox(icon, title, fit_words(text), QMessageBox.StandardButton.NoButton, parent)
    box.setInformativeText(fit_words(informative))
    ok = box.addButton(yes, QMessageBox.ButtonRole.AcceptRole)
    if no:
        box.addButton(no, QMessageBox.ButtonRole.RejectRole)
    else:
        box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(ok)

    def done(_result):
        if box.clickedButton() is ok:
            on_yes()
        elif on_no is not None:
            on_no()

    box.finished.connect(done)
    keep_until_closed(box)
    box.open()
    return box


def confirm_unmount(parent: QWidget | None, controller, name: str, pending: int) -> QMessageBox | None:
    """Unmount `name`; with uncommitted changes only once the user agrees that they are committed
    first (the tray and the Mounts tab alike)."""
    if not pending:
        controller.unmount(name)
        return None
    return confirm(parent, "Unmount", f"{name} has {pending} uncommitted change(s). Unmounting commits them first.",
                   lambda: controller.unmount(name), yes="Commit and unmount",
                   informative="To review them or give the commit a message, use Commit… first.")


def confirm_discard(parent: QWidget | None, controller, name: str, pending: int) -> QMessageBox:
    return confirm(parent, "Discard changes", f"Discard {pending} uncommitted change(s) in {name}?",
                   lambda: controller.discard(name), yes="Discard",
                   informative="The files go back to the last commit; this cannot be undone.",
                   icon=QMessageBox.Icon.Warning)


def fit_words(text: str) -> str:
    """``text`` with each word longer than WORD_MAX characters cut in the middle with "…": a label
    wraps only between words, and a 255-character name in a message widened dialogs past the screen."""
    return " ".join(cut(w, WORD_MAX) for w in text.split(" "))


def error(parent: QWidget | None, title: str, message: str) -> QMessageBox:
    box = QMessageBox(QMessageBox.Icon.Warning, title, fit_words(message), QMessageBox.StandardButton.Ok, parent)
    box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)  # errors get copied and pasted
    if box.text() != message:
        box.setDetailedText(message)  # whole, to copy
    keep_until_closed(box)
    box.open()
    return box


class FormDialog(QDialog):
    """A few labelled text fields; `on_accept(values)` may return an error text to stay open, or
    `WAIT`: the dialog stays open, its buttons off, until `finish(problem)` says how the work it
    started ended (closed on None, else the problem shown and the fields kept for another try)."""

    WAIT = object()

    def __init__(self, parent: QWidget | None, title: str, fields: list[tuple[str, str, str]],
                 on_accept: Callable[[dict], str | None]):
        super().__init__(parent)
        self.setWindowTitle(title)
        self._on_accept = on_accept
        layout = QFormLayout(self)
        self.edits: dict[str, QLineEdit] = {}
        for key, label, value in fields:
            edit = QLineEdit(value, self)
            edit.setMinimumWidth(320)
            self.edits[key] = edit
            layout.addRow(label, edit)
        self.problem = QLabel("", self)
        self.problem.setStyleSheet("color: #d93025")
        self.problem.setWordWrap(True)
        layout.addRow(self.problem)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel,
                                        self)
        self.buttons.accepted.connect(self._accept)
        self.buttons.rejected.connect(self.reject)
        layout.addRow(self.buttons)
        keep_until_closed(self)

    def _accept(self) -> None:
        problem = self._on_accept({k: e.text().strip() for k, e in self.edits.items()})
        if problem is FormDialog.WAIT:
            self.problem.setText("")
            self.buttons.setEnabled(False)
            return
        if problem:
            self._show_problem(problem)
            return
        self.accept()

    def finish(self, problem: str | None) -> None:
        """The work `on_accept` started is over: close, or show why it failed and let the user retry."""
        self.buttons.setEnabled(True)
        if problem:
            self._show_problem(problem)
        else:
            self.accept()

    def _show_problem(self, problem: str) -> None:
        self.problem.setText(fit_words(problem))
        self.problem.setToolTip(problem)
        self.adjustSize()  # the wrapped lines get their height (they were cut off)
