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
        self._on_desktop_click: dict[int, Callable[[], None]] = {}  # notification id -> action
        icon.messageClicked.connect(self._clicked)
        if desktop is not None:
            desktop.invoked.connect(self._desktop_clicked)

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
            sent = None
            if on_click is not None and self.desktop is not None:
                sent = self.desktop.notify(title, message, action, shown_ms, critical=is_error)
            if sent is not None:
                self._on_desktop_click[sent] = on_click
                while len(self._on_desktop_click) > KEPT_ACTIONS:
                    del self._on_desktop_click[next(iter(self._on_desktop_click))]
            else:
                icon = QSystemTrayIcon.MessageIcon.Critical if is_error else QSystemTrayIcon.MessageIcon.Information
                self._on_click = on_click
                self.icon.showMessage(title, message, icon, shown_ms)
            how = NOTIFICATION
        else:
            how = NOWHERE
        self.told.emit(title, message, is_error, how)
        return how

    def _clicked(self) -> None:
        action, self._on_click = self._on_click, None
        if action is not None:
            action()

    def _desktop_clicked(self, notification: int) -> None:
        action = self._on_desktop_click.pop(notification, None)
        if action is not None:
            action()
