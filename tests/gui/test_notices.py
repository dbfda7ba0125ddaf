"""The one rule of how the user is told (gui.notices): an error is a dialog over the shown window,
else a notification, a dialog only where the tray cannot notify; never both."""

from __future__ import annotations

from PySide6.QtWidgets import QMainWindow, QSystemTrayIcon

from pachtray.gui import dialogs, icons
from pachtray.gui.notices import DIALOG, NOTIFICATION, NOWHERE, Notices


def _close_dialogs():
    for box in dialogs.open_dialogs():
        box.done(0)


def test_an_error_is_a_dialog_over_the_shown_window_and_nothing_else(qapp, qtbot):
    window = QMainWindow()
    qtbot.addWidget(window)
    window.show()
    icon = QSystemTrayIcon(icons.app_icon())
    shown = []
    icon.messageClicked.connect(lambda: shown.append("clicked"))
    notices = Notices(icon, lambda: window if window.isVisible() else None)
    try:
        assert notices.tell("Mount failed", "no such branch", True) == DIALOG
        boxes = [d for d in dialogs.open_dialogs() if d.windowTitle() == "Mount failed"]
        assert len(boxes) == 1 and boxes[0].parent() is window and boxes[0].text() == "no such branch"
        _close_dialogs()
        window.hide()
        # No window, and (offscreen) no tray that can notify: the dialog is the only way left.
        expected = NOTIFICATION if notices.can_notify() else DIALOG
        assert notices.tell("Commit failed", "pachd is down", True) == expected
        if expected == DIALOG:
            assert [d.parent() for d in dialogs.open_dialogs() if d.windowTitle() == "Commit failed"] == [None]
        # News that is not an error never becomes a dialog.
        before = len(dialogs.open_dialogs())
        assert notices.tell("Mounted", "images", False) in (NOTIFICATION, NOWHERE)
        assert len(dialogs.open_dialogs()) == before
    finally:
        _close_dialogs()
        icon.deleteLater()


def test_clicking_a_notification_runs_its_action_once(qapp):
    icon = QSystemTrayIcon(icons.app_icon())
    ran = []
    notices = Notices(icon, lambda: None)
    try:
        notices._on_click = lambda: ran.append(1)  # what tell() leaves for a notification it showed
        icon.messageClicked.emit()
        icon.messageClicked.emit()
        assert ran == [1]
    finally:
        icon.deleteLater()
