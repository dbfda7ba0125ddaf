"""How the GUI tells the user something, one rule for all: an error is a dialog over the window
while the window is shown (the user is working there), else a tray notification; only where the
tray cannot show notifications does it become a dialog without the window. Never both at once.
News that is not an error is a notification (nothing where the tray cannot show one); a notice
may carry one action, run when the user clicks the notification (over D-Bus where the desktop's
tray uses it: gui.desktop_notifications)."""

from __future__ import annotations

from typing import Callable

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QSystemTrayIcon, QWidget

from pachtray.gui import dialogs
from pachtray.gui.desktop_notifications import DesktopNotifications

DIALOG, NOTIFICATION, NOWHERE = "dialog", "notification", "nowhere"
KEPT_ACTIONS = 16  # the actions of the newest notifications sent over D-Bus


class Notices(QObject):
    """``window()`` answers the main window when it is shown, else None."""

    told = Signal(str, str, bool, str)  # title, message, is_error, how (DIALOG / NOTIFICATION / NOWHERE)

    def __init__(self, icon: QSystemTrayIcon, window: Callable[[], QWidget | None], parent: QObject | None = None,
                 desktop: DesktopNotifications | None = None):
        super().__init__(parent)
        self.icon = icon
        self.window = window
        self.desktop = desktop  # notices with an action go there: Qt's D-Bus tray drops their click
        self._on_click: Callable[[], None] | None = None
        # notifications sent over D-Bus, by token: what a click runs, and what Qt shows if the
        # server does not take them
        self._sent: dict[int, tuple[Callable[[], None], str, str, bool, int]] = {}
        icon.messageClicked.connect(self._clicked)
        if desktop is not None:
            desktop.invoked.connect(self._desktop_clicked)
            desktop.failed.connect(self._desktop_failed)

    def can_notify(self) -> bool:
        return self.icon.isVisible() and QSystemTrayIcon.supportsMessages()

    def tell(self, title: str, message: str, is_error: bool = False,
             on_click: Callable[[], None] | None = None, action: str = "Open") -> str:
        """Show it the one way the rule says; returns how it was shown. `on_click` runs when the
        notification is clicked (`action` names it where the desktop shows a button)."""
        window = self.window()
        if is_error and (window is not None or not self.can_notify()):
            dialogs.error(window, title, message)
            how = DIALOG
        elif self.can_notify():
            shown_ms = 8000 if is_error or on_click else 4000
            if on_click is not None and self.desktop is not None:
                token = self.desktop.notify(title, message, action, shown_ms, critical=is_error)
                self._sent[token] = (on_click, title, message, is_error, shown_ms)
                while len(self._sent) > KEPT_ACTIONS:
                    del self._sent[next(iter(self._sent))]
            else:
                self._show(title, message, is_error, shown_ms, on_click)
            how = NOTIFICATION
        else:
            how = NOWHERE
        self.told.emit(title, message, is_error, how)
        return how

    def _show(self, title: str, message: str, is_error: bool, shown_ms: int,
              on_click: Callable[[], None] | None) -> None:
        """Qt's own notification (clickable except on D-Bus trays: see gui.desktop_notifications)."""
        icon = QSystemTrayIcon.MessageIcon.Critical if is_error else QSystemTrayIcon.MessageIcon.Information
        self._on_click = on_click
        self.icon.showMessage(title, message, icon, shown_ms)

    def _clicked(self) -> None:
        action, self._on_click = self._on_click, None
        if action is not None:
            action()

    def _desktop_clicked(self, token: int) -> None:
        sent = self._sent.pop(token, None)
        if sent is not None:
            sent[0]()

    def _desktop_failed(self, token: int) -> None:
        sent = self._sent.pop(token, None)
        if sent is not None:  # the server did not take it: Qt's, which is seen at least
            on_click, title, message, is_error, shown_ms = sent
            self._show(title, message, is_error, shown_ms, on_click)
