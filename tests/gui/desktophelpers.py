"""A private D-Bus session bus, and a notification server stand-in on it that records what it is
sent and answers, refuses, or stays silent as a test says (dunst is the real one, in
test_desktops.py)."""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import threading

import pytest

HEADER_MEMBER, HEADER_SENDER = 3, 7  # jeepney's HeaderFields
NOTIFICATIONS = "org.freedesktop.Notifications"


@pytest.fixture
def session_bus():
    """The address of a dbus-daemon of this test's own."""
    if shutil.which("dbus-daemon") is None:
        pytest.skip("needs dbus-daemon (scripts/setup.sh installs it)")
    out = subprocess.run(["dbus-daemon", "--session", "--fork", "--print-address=1", "--print-pid=1"],
                         capture_output=True, text=True, check=True, timeout=30).stdout.split()
    address, bus_pid = out[0], int(out[1])
    try:
        yield address
    finally:
        try:
            os.kill(bus_pid, 15)
        except ProcessLookupError:
            pass


class BusService:
    """A program on the bus that owns `name` and answers each method call sent to it with
    `answer(call, member)` on a thread of its own."""

    def __init__(self, address: str, name: str):
        from jeepney import MatchRule
        from jeepney.bus_messages import message_bus
        from jeepney.io.threading import DBusRouter, open_dbus_connection

        self._conn = open_dbus_connection(bus=address)
        self.router = DBusRouter(self._conn)
        self._incoming = self.router.filter(MatchRule(type="method_call"), bufsize=100)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        owned = self.router.send_and_get_reply(message_bus.RequestName(name), timeout=10)
        assert owned.body == (1,), owned.body

    def answer(self, call, member: str) -> None:
        raise NotImplementedError

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                call = self._incoming.queue.get(timeout=0.2)
            except queue.Empty:
                continue
            self.answer(call, call.header.fields.get(HEADER_MEMBER))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._incoming.close()
        self.router.close()
        self._conn.close()


class NotificationServer(BusService):
    """Owns org.freedesktop.Notifications. `mode`: "answer" (ids from 101 up), "refuse" (an error
    reply) or "silent" (no reply at all, as a hung server). `calls` holds each Notify's body."""

    def __init__(self, address: str, mode: str = "answer"):
        self.mode = mode
        self.calls: queue.Queue = queue.Queue()
        self._next_id = 100
        super().__init__(address, NOTIFICATIONS)

    def answer(self, call, member: str) -> None:
        from jeepney import new_error, new_method_return

        if member != "Notify":
            self.router.send(new_method_return(call, "as", ([],)) if member == "GetCapabilities"
                             else new_method_return(call))
            return
        self.calls.put(call.body)
        if self.mode == "answer":
            self._next_id += 1
            self.router.send(new_method_return(call, "u", (self._next_id,)))
        elif self.mode == "refuse":
            self.router.send(new_error(call, "org.freedesktop.DBus.Error.Failed", "s", ("no",)))

    def next_call(self, timeout: float) -> tuple:
        """The body of the next Notify (app, replaces, icon, title, message, actions, hints, timeout)."""
        return self.calls.get(timeout=timeout)

    def click(self, notification: int, action: str = "default") -> None:
        """What the server sends when the user clicks notification `notification`."""
        from jeepney import DBusAddress, new_signal

        emitter = DBusAddress("/org/freedesktop/Notifications", interface=NOTIFICATIONS)
        self.router.send(new_signal(emitter, "ActionInvoked", "us", (notification, action)))
