"""The GUI's only way to the daemon: its REST API over TCP on 127.0.0.1 (no Qt here).

Every method blocks, so the GUI calls them from worker threads (see tasks.py). Each thread
gets its own `requests.Session` because sessions are not safe to share between threads.
"""

from __future__ import annotations

import threading

import requests

from pachtray.errors import ApiError, PachtrayError

EXTRAS = "/pachtray/v1"


class DaemonUnavailable(PachtrayError):
    """Nothing answers on the daemon's port (not started yet, or stopped)."""


class DaemonTimeout(DaemonUnavailable):
    """The daemon took longer than the request's timeout to answer."""


class DaemonClient:
    """Blocking JSON client of one daemon; `timeout` bounds every request but long polls."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 30.0):
        self.port = port
        self.base = f"http://{host}:{port}"
        self.timeout = timeout
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.trust_env = False  # a proxy setting must never reroute loopback calls
        return session

    def request(self, method: str, route: str, *, params: dict | None = None, body: dict | None = None,
                timeout: float | None = None):
        try:
            resp = self._session().request(method, self.base + route, params=params,
                                           json=body if method != "GET" else None,
                                           timeout=timeout or self.timeout)
        except requests.ConnectionError:
            raise DaemonUnavailable(f"The Pachtray daemon is not answering on {self.base}.",
                                    title="Daemon not running") from None
        except requests.Timeout:
            raise DaemonTimeout(f"The Pachtray daemon on {self.base} did not answer within "
                                f"{timeout or self.timeout:g} s.", title="Daemon not responding") from None
        if resp.status_code >= 400:
            message = resp.text.strip() or f"HTTP {resp.status_code}"
            raise ApiError(resp.status_code, message, title=_title(method, route, resp.status_code))
        if not resp.content:
            return None
        return resp.json()

    def get(self, route: str, timeout: float | None = None, **params):
        return self.request("GET", route, params={k: v for k, v in params.items() if v is not None},
                            timeout=timeout)

    def put(self, route: str, body: dict | None = None, timeout: float | None = None):
        return self.request("PUT", route, body={} if body is None else body, timeout=timeout)

    # -- the calls the GUI makes, named after what they do

    def info(self) -> dict:
        return self.get(EXTRAS + "/info", timeout=10)

    def config(self) -> dict:
        return self.get("/config")

    def mounts(self) -> list[dict]:
        return self.get(EXTRAS + "/mounts")["mounted"]

    def wait_change(self, since: int, timeout: float) -> int:
        """Long poll: the new generation, or `since` again when nothing changed in `timeout` s."""
        answer = self.request("GET", EXTRAS + "/events", params={"since": since, "timeout": timeout},
                              timeout=timeout + 10)
        return answer["generation"]


def _title(method: str, route: str, status: int) -> str:
    if status == 401:
        return "Not logged in"
    if status == 403:
        return "Not allowed"
    action = {
        "/_mount": "Mount failed", "/_unmount": "Unmount failed", "/_commit": "Commit failed",
        "/_unmount_all": "Unmount failed", "/config": "Cluster connection failed", EXTRAS + "/_commit": "Commit failed",
        "/auth/_login": "Login failed", "/auth/_login_token": "Login failed", "/auth/_logout": "Logout failed",
        EXTRAS + "/_discard": "Discard failed", EXTRAS + "/_upload": "Upload failed",
        EXTRAS + "/_create_repo": "Could not create repo", EXTRAS + "/_delete_repo": "Could not delete repo",
        EXTRAS + "/_create_branch": "Could not create branch", EXTRAS + "/_delete_branch": "Could not delete branch",
        EXTRAS + "/_refresh": "Refresh failed",
    }.get(route)
    return action or ("Request failed" if method == "GET" else "Action failed")
