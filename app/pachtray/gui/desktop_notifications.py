"""Notifications that can be clicked on desktops whose tray speaks D-Bus (StatusNotifierItem: KDE
Plasma, GNOME with the AppIndicator extension, most panels today).

There Qt sends a tray icon's messages to org.freedesktop.Notifications and gives only critical ones
a "default" action, so a click on an ordinary notification never reaches `messageClicked` (seen
with dunst: the click is answered by nothing). A notice that carries an action is sent here
instead, with the "default" action (what a click on the notification invokes) and a named one;
the server's ActionInvoked signal comes back on a listener thread and is handed to the GUI thread
as `invoked`. Linux only; everywhere else Qt's own notifications are clickable.

`notify` returns at once: the call goes out on a sender thread, so a notification server that
does not answer never holds the GUI up; what it refuses or leaves unanswered comes back as `failed`
(the caller then shows Qt's own notification).
"""

from __future__ import annotations

import collections
import itertools
import logging
import os
import queue
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

from PySide6.QtCore import QObject, Signal

log = logging.getLogger(__name__)

SERVICE = "org.freedesktop.Notifications"
PATH = "/org/freedesktop/Notifications"
WATCHER = "org.kde.StatusNotifierWatcher"  # its presence is what makes Qt's tray use D-Bus
CALL_TIMEOUT = 1.0  # seconds; a local bus answers in milliseconds
KEPT_IDS = 64  # the newest notifications whose click is still reported


class DesktopNotifications(QObject):
    """One session-bus connection: servers may send ActionInvoked only to the connection that
    asked for the notification (dunst does), so the same one sends and listens."""

    invoked = Signal(int)  # the token (from `notify`) of a notification whose action the user chose
    failed = Signal(int)  # the token of a notification the server refused or did not answer

    def __init__(self, app_name: str, parent: QObject | None = None):
        super().__init__(parent)
        from jeepney import DBusAddress, MatchRule
        from jeepney.bus_messages import message_bus
        from jeepney.io.threading import DBusRouter, open_dbus_connection

        self.app_name = app_name
        self._address = DBusAddress(PATH, bus_name=SERVICE, interface=SERVICE)
        self._conn = open_dbus_connection(bus="SESSION")
        self._router = DBusRouter(self._conn)  # its thread receives; replies and signals are dispatched
        # the bus matches the well-known sender; locally the signal carries the owner's unique name
        bus_rule = MatchRule(type="signal", sender=SERVICE, interface=SERVICE, member="ActionInvoked", path=PATH)
        self._router.send_and_get_reply(message_bus.AddMatch(bus_rule), timeout=CALL_TIMEOUT)
        self._actions = self._router.filter(MatchRule(type="signal", interface=SERVICE, member="ActionInvoked",
                                                      path=PATH), bufsize=64)
        self._tokens = itertools.count(1)
        self._lock = threading.Lock()
        self._ids: collections.OrderedDict[int, int] = collections.OrderedDict()  # server's id -> token
        self._sending = False  # a Notify is out: its reply may be dispatched but not yet recorded
        self._recorded = threading.Condition(self._lock)
        self._sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="notifications")
        self._stop = threading.Event()
        self._listener = threading.Thread(target=self._listen, name="notification-actions", daemon=True)
        self._listener.start()

    @classmethod
    def for_session(cls, app_name: str, parent: QObject | None = None) -> "DesktopNotifications | None":
        """The notifier when this session's tray uses D-Bus and a notification server runs, else None
        (Qt's notifications are then the clickable ones)."""
        if not sys.platform.startswith("linux") or not os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
            return None
        try:
            from jeepney.bus_messages import message_bus
            from jeepney.io.blocking import open_dbus_connection

            with open_dbus_connection(bus="SESSION") as conn:
                owned = [conn.send_and_get_reply(message_bus.NameHasOwner(name), timeout=CALL_TIMEOUT).body[0]
                         for name in (WATCHER, SERVICE)]
            return cls(app_name, parent) if all(owned) else None
        except Exception as e:  # no bus, a bus that does not answer, no jeepney: Qt's own path
            log.info("desktop notifications over D-Bus not used: %s", e)
            return None

    def notify(self, title: str, message: str, action: str, timeout_ms: int, critical: bool = False) -> int:
        """Send a notification whose click (and whose button `action`) is reported by `invoked`;
        returns its token at once (`failed` reports it if the server does not take it)."""
        from jeepney import new_method_call

        token = next(self._tokens)
        call = new_method_call(self._address, "Notify", "susssasa{sv}i", (
            self.app_name, 0, "dialog-error" if critical else "dialog-information", title, message,
            ["default", action], {}, timeout_ms))
        self._sender.submit(self._send, token, call)
        return token

    def _send(self, token: int, call) -> None:
        with self._lock:
            self._sending = True
        reply = None
        try:
            reply = self._router.send_and_get_reply(call, timeout=CALL_TIMEOUT)
        except Exception as e:  # no answer in time, or the bus went away
            log.warning("notification over D-Bus failed: %s", e)
        finally:
            taken = reply is not None and reply.header.message_type.name == "method_return"
            with self._lock:
                if taken:
                    self._ids[int(reply.body[0])] = token
                    while len(self._ids) > KEPT_IDS:
                        self._ids.popitem(last=False)
                self._sending = False
                self._recorded.notify_all()
        if reply is not None and not taken:
            log.warning("notification over D-Bus refused: %s", reply.body)
        if not taken:
            self.failed.emit(token)

    def _token_of(self, notification: int) -> int | None:
        """Our token for the server's id, or None for another program's or an old notification.
        The router dispatches a Notify's reply before a click on it, but the sender thread records
        the id after it wakes: a click that comes at once waits for that."""
        with self._lock:
            self._recorded.wait_for(lambda: notification in self._ids or not self._sending, timeout=CALL_TIMEOUT)
            return self._ids.pop(notification, None)

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                signal = self._actions.queue.get(timeout=0.5)
            except queue.Empty:
                continue
            token = self._token_of(int(signal.body[0]))
            if token is not None:  # (other clients' notifications and old ones are not ours to report)
                self.invoked.emit(token)

    def close(self) -> None:
        self._stop.set()
        self._sender.shutdown(wait=True, cancel_futures=True)
        self._listener.join(2)
        self._actions.close()
        self._router.close()
        self._conn.close()
