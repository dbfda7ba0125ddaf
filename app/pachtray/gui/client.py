"""The GUI's only way to the daemon: its REST API over TCP on 127.0.0.1 (no Qt here).

Every method blocks, so the GUI calls them from worker threads (see tasks.py). Each thread
gets its own `requests.Session` because sessions are not safe to share between threads.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import requests

from pachtray.errors import ApiError, PachtrayError

EXTRAS = "/pachtray/v1"


BUSY_STATES = frozenset({"mounting", "committing", "unmounting"})
RECOVERED = "pending"  # rw changes kept outside the mount dir (an earlier run's, or a repo deleted upstream)


@dataclass(frozen=True)
class MountInfo:
    """One entry of /pachtray/v1/mounts, typed; the rules of what can be done with it are here so
    the tray and the window offer the same actions."""

    name: str
    project: str = "default"
    repo: str = ""
    branch: str = ""
    commit: str = ""
    paths: tuple[str, ...] = ("/",)
    mode: str = "ro"
    state: str = ""
    status: str = ""
    mountpoint: str = ""
    latest_commit: str = ""
    behind: int = 0
    pending: int = 0
    error: str = ""
    pinned: bool = False  # shows one commit (mounted by commit, or from a lock): never moved to a head

    @classmethod
    def from_json(cls, d: dict) -> "MountInfo":
        return cls(name=d["name"], project=d.get("project") or "default", repo=d.get("repo") or "",
                   branch=d.get("branch") or "", commit=d.get("commit") or "", paths=tuple(d.get("paths") or ["/"]),
                   mode=d.get("mode") or "ro", state=d.get("state") or "", status=d.get("status") or "",
                   mountpoint=d.get("mountpoint") or "", latest_commit=d.get("latest_commit") or "",
                   behind=int(d.get("how_many_commits_behind") or 0), pending=int(d.get("pending_changes") or 0),
                   error=d.get("error") or "", pinned=bool(d.get("pinned")))

    @property
    def recovered(self) -> bool:
        return self.state == RECOVERED

    @property
    def busy(self) -> bool:
        return self.state in BUSY_STATES

    @property
    def mounted(self) -> bool:
        return self.state == "mounted"

    @property
    def dirty(self) -> bool:
        """Has changes that are not in a commit yet."""
        return self.pending > 0 or self.recovered

    @property
    def can_commit(self) -> bool:
        return (self.mode == "rw" or self.recovered) and self.dirty

    @property
    def can_discard(self) -> bool:
        return self.can_commit

    @property
    def can_refresh(self) -> bool:
        """A read-only mount that follows a branch that moved on: remount it at the head."""
        return self.mode == "ro" and bool(self.branch) and not self.pinned and self.behind > 0 and self.mounted

    @property
    def can_unmount(self) -> bool:
        return not self.recovered  # recovered changes are not mounted: commit or discard them

    @property
    def can_open(self) -> bool:
        return bool(self.mountpoint) and self.mounted

    @property
    def source(self) -> str:
        """`project/repo@branch=commit` (Pachyderm's notation; either part may be missing)."""
        ref = "=".join(x for x in (self.branch, self.commit[:12]) if x)
        return f"{self.project}/{self.repo}@{ref}"

    @property
    def message(self) -> str:
        """What to tell about it: why something failed or changes were kept, else its status (in words
        for people where the reference's status reads "1 commits behind latest; current = … (2'th)")."""
        if self.error:
            return self.error
        if self.mounted and self.behind > 0 and self.branch:
            return (f"{'pinned to' if self.pinned else 'at'} {self.commit[:8]}, {self.behind} "
                    f"commit{'s' if self.behind != 1 else ''} behind the head of {self.branch} ({self.latest_commit[:8]})")
        return self.status


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

    def mounts(self) -> list[MountInfo]:
        """The mounts by name: the tray and the Mounts tab keep their order between refreshes."""
        return sorted((MountInfo.from_json(m) for m in self.get(EXTRAS + "/mounts")["mounted"]), key=lambda m: m.name)


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
        EXTRAS + "/_create_repo": "Create repo failed", EXTRAS + "/_delete_repo": "Delete repo failed",
        EXTRAS + "/_create_branch": "Create branch failed", EXTRAS + "/_delete_branch": "Delete branch failed",
        EXTRAS + "/_refresh": "Refresh failed",
    }.get(route)
    return action or ("Request failed" if method == "GET" else "Action failed")
