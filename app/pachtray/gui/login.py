"""Log in through the cluster's identity provider, finishing by itself.

PUT /auth/_login gives the login URL and an OIDC state; we open the browser there and keep
asking PUT /auth/_login_token with that state until the daemon has a session token (pachd's
Authenticate answers once the user completed the login), the user cancels, or time runs out.
"""

from __future__ import annotations

from typing import Callable

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QMessageBox, QWidget

from pachtray.errors import ApiError
from pachtray.gui import desktop_open
from pachtray.gui.client import DaemonTimeout
from pachtray.gui.controller import Controller

LOGIN_TIMEOUT = 300.0
TOKEN_WAIT = 10.0  # one /auth/_login_token call waits this long for the browser, then we ask again
RETRY_MS = 1000


def open_in_browser(url: str) -> None:
    desktop_open.open_address(None, url)


class LoginFlow(QObject):
    """One login attempt; `finished(ok, message)` when it ends for any reason."""

    finished = Signal(bool, str)

    def __init__(self, controller: Controller, parent: QWidget | None = None,
                 open_url: Callable[[str], None] = open_in_browser, timeout: float = LOGIN_TIMEOUT,
                 token_wait: float = TOKEN_WAIT):
        super().__init__(parent)
        self.controller = controller
        self._parent = parent
        self._open_url = open_url
        self._timeout = timeout
        self._token_wait = token_wait
        self._state = ""
        self.auth_url = ""
        self.active = False
        self.box: QMessageBox | None = None
        self._retry = QTimer(self)
        self._retry.setSingleShot(True)
        self._retry.setInterval(RETRY_MS)
        self._retry.timeout.connect(self._ask_token)
        self._deadline = QTimer(self)
        self._deadline.setSingleShot(True)
        self._deadline.timeout.connect(
            lambda: self._end(False, f"The login was not completed within {self._timeout:.0f} seconds."))

    def start(self) -> None:
        self.active = True
        self._deadline.start(int(self._timeout * 1000))
        client = self.controller.client
        self.controller.tasks.run(lambda: client.put("/auth/_login", {}), self._got_url,
                                  lambda e: self._end(False, f"Could not start the login: {e}"), busy=True)

    def _got_url(self, answer: dict) -> None:
        if not self.active:
            return
        self.auth_url, self._state = answer["auth_url"], answer["oidc_state"]
        self.box = QMessageBox(QMessageBox.Icon.Information, "Log in to Pachyderm",
                               "Finish the login in your browser; Pachtray continues by itself.",
                               QMessageBox.StandardButton.Cancel, self._parent)
        self.box.setInformativeText(f'If no browser opened, visit:\n{self.auth_url}')
        self.box.rejected.connect(self.cancel)
        self.box.open()
        self._open_url(self.auth_url)
        self._ask_token()

    def _ask_token(self) -> None:
        if not self.active:
            return
        client, state, wait = self.controller.client, self._state, self._token_wait

        def attempt() -> bool:
            """True once logged in. A call that timed out may still have finished the login in the
            daemon while a later one lost the race for the state, so failures ask who we are."""
            try:
                client.put("/auth/_login_token", {"oidc": state}, timeout=wait)
                return True
            except (DaemonTimeout, ApiError) as e:
                if isinstance(e, ApiError) and e.status not in (401, 500):
                    raise
            return client.info().get("auth") == "on"

        self.controller.tasks.run(attempt, self._attempted, self._attempt_failed)

    def _attempted(self, logged_in: bool) -> None:
        if not self.active:
            return
        if logged_in:
            self._end(True, "")
        else:
            self._retry.start()  # not finished in the browser yet

    def _attempt_failed(self, error: Exception) -> None:
        if self.active:
            self._end(False, f"Login failed: {error}")

    def cancel(self) -> None:
        if self.active:
            self._end(False, "Login cancelled.")

    def _end(self, ok: bool, message: str) -> None:
        self.active = False
        self._retry.stop()
        self._deadline.stop()
        if self.box is not None:
            self.box.rejected.disconnect(self.cancel)
            self.box.done(0)
            self.box.deleteLater()
            self.box = None
        self.controller.refresh()
        self.controller.refresh_repos()
        if ok:
            self.controller.tasks.run(self.controller.client.info, self._logged_in)
        elif message != "Login cancelled.":
            self.controller.notify.emit("Login failed", message, True)
        self.finished.emit(ok, message)

    def _logged_in(self, info: dict) -> None:
        user = info.get("user", "").removeprefix("user:") or "unknown user"
        self.controller.notify.emit("Logged in", f"Logged in as {user}", False)
