"""gui.desktop_notifications against a notification server on a private session bus: `notify`
never waits for the server (it is called on the GUI thread), a click comes back as the token
`notify` gave, and what the server refuses or leaves unanswered comes back as `failed`."""

from __future__ import annotations

import time

import pytest
from desktophelpers import NotificationServer, session_bus  # noqa: F401 - fixture

from pachtray.gui.desktop_notifications import CALL_TIMEOUT, DesktopNotifications


@pytest.fixture
def notifier(session_bus, monkeypatch, qapp):
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", session_bus)
    made = []

    def make(mode: str):
        server = NotificationServer(session_bus, mode)
        notifications = DesktopNotifications("Pachtray tests")
        made.append((notifications, server))
        return notifications, server
    yield make
    for notifications, server in made:
        notifications.close()
        server.close()


def test_a_click_is_reported_as_the_token_notify_gave(notifier, qtbot):
    notifications, server = notifier("answer")
    first = notifications.notify("New commits upstream", "images@master", "Update the mount", 8000)
    second = notifications.notify("Mounted", "edits", "Open", 4000, critical=True)
    assert first != second
    sent = [server.next_call(5), server.next_call(5)]
    assert [(c[3], c[4], c[5]) for c in sent] == [("New commits upstream", "images@master", ["default", "Update the mount"]),
                                                 ("Mounted", "edits", ["default", "Open"])]
    assert sent[1][2] == "dialog-error" and sent[0][7] == 8000
    with qtbot.waitSignal(notifications.invoked, timeout=5000) as clicked:
        server.click(102)  # the server's id of the second
    assert clicked.args == [second]
    with qtbot.assertNotEmitted(notifications.invoked, wait=500):
        server.click(999)  # another program's notification
    with qtbot.waitSignal(notifications.invoked, timeout=5000) as clicked:
        server.click(101)
    assert clicked.args == [first]


@pytest.mark.parametrize("mode", ["silent", "refuse"])
def test_notify_never_waits_and_reports_what_the_server_did_not_take(notifier, qtbot, mode):
    notifications, server = notifier(mode)
    started = time.monotonic()
    with qtbot.waitSignal(notifications.failed, timeout=int((CALL_TIMEOUT + 5) * 1000)) as failed:
        token = notifications.notify("Commit failed", "pachd is down", "Open", 8000)
        returned = time.monotonic() - started
    assert returned < CALL_TIMEOUT / 4  # the GUI thread went on (a hung server held it 1 s)
    assert failed.args == [token]
    assert server.next_call(5)[3] == "Commit failed"
    if mode == "silent":
        assert time.monotonic() - started >= CALL_TIMEOUT * 0.9  # it waited for the answer, off the GUI thread
