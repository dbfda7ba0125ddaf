"""One tray app per user and settings file: a second launch hands over and exits.

A QLocalServer named after the uid and the settings path; the second launch connects, says
"show" and exits, and the first one raises its window.
"""

from __future__ import annotations

import hashlib
import os

from PySide6.QtCore import QObject, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

from pachtray import config

SHOW = b"show\n"


def server_name() -> str:
    digest = hashlib.sha1(str(config.settings_path()).encode()).hexdigest()[:12]
    return f"pachtray-{os.getuid()}-{digest}"


class SingleInstance(QObject):
    """`claim()` is True for the first instance; later launches trigger `activated` in it."""

    activated = Signal()

    def __init__(self, name: str | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.name = name or server_name()
        self._server: QLocalServer | None = None

    def notify_running(self, timeout_ms: int = 1000) -> bool:
        """Tell a running instance to show itself; False when there is none."""
        sock = QLocalSocket()
        sock.connectToServer(self.name)
        if not sock.waitForConnected(timeout_ms):
            return False
        sock.write(SHOW)
        sock.flush()
        sock.waitForBytesWritten(timeout_ms)
        sock.disconnectFromServer()
        return True

    def claim(self) -> bool:
        """Become the instance, unless one is already running (then it was told to show)."""
        if self.notify_running():
            return False
        QLocalServer.removeServer(self.name)  # a crashed instance's leftover socket file
        self._server = QLocalServer(self)
        self._server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        if not self._server.listen(self.name):
            raise RuntimeError(f"cannot listen on local socket {self.name}: {self._server.errorString()}")
        self._server.newConnection.connect(self._on_connection)
        return True

    def _on_connection(self) -> None:
        while self._server is not None and self._server.hasPendingConnections():
            conn = self._server.nextPendingConnection()
            conn.readyRead.connect(lambda c=conn: self._on_message(c))
            conn.disconnected.connect(conn.deleteLater)
            if conn.bytesAvailable():
                self._on_message(conn)

    def _on_message(self, conn: QLocalSocket) -> None:
        if bytes(conn.readAll().data()).startswith(SHOW.strip()):
            self.activated.emit()

    def release(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
