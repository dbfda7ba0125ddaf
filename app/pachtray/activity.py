"""The activity log: what happened to mounts, commits and uploads, and which actions failed, with
the time, newest first. The daemon owns it (it also sees what JupyterLab and other REST clients
do); GET /pachtray/v1/activity serves it and the GUI's Activity tab shows it.

Bounded and in memory: it tells what happened lately, it is not an audit log. Each event is
recorded once, where it happens (the mount manager, the upload jobs, the API's dispatch for a
failed action)."""

from __future__ import annotations

import datetime as dt
import threading
from collections import deque
from dataclasses import asdict, dataclass
from typing import Callable

KEEP = 200
KINDS = ("mount", "unmount", "commit", "upload", "upstream", "error")


@dataclass(frozen=True)
class Entry:
    id: int  # increasing; GET /activity?after=<id> answers only newer entries
    time: str  # ISO 8601, UTC
    kind: str  # one of KINDS
    title: str  # short: "Mounted", "Commit failed"
    message: str  # what and where: "default/images@master mounted read-only as images"
    mount: str = ""  # the mount it is about, if any (the GUI offers "Refresh" on upstream moves)


class Activity:
    def __init__(self, keep: int = KEEP):
        self._entries: deque[Entry] = deque(maxlen=keep)
        self._lock = threading.Lock()
        self._last = 0
        self.on_record: Callable[[], None] = lambda: None  # the daemon wakes the change feed with it

    @property
    def last(self) -> int:
        """The id of the newest entry (0 when there is none)."""
        return self._last

    def record(self, kind: str, title: str, message: str, mount: str = "") -> Entry:
        if kind not in KINDS:
            raise ValueError(f"unknown activity kind {kind!r}")
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        with self._lock:
            self._last += 1
            entry = Entry(self._last, now, kind, title, message, mount)
            self._entries.append(entry)
        self.on_record()
        return entry

    def entries(self, after: int = 0) -> list[dict]:
        """Entries newer than ``after``, newest first."""
        with self._lock:
            return [asdict(e) for e in reversed(self._entries) if e.id > after]
