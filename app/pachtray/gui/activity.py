"""The window's Activity tab: mounts, unmounts, commits, uploads, upstream moves and errors with
their times, newest first. The daemon keeps the record (GET /pachtray/v1/activity: it also sees
what JupyterLab does); the GUI adds the errors only it saw (the daemon not answering, a failed
listing), each error once: a GUI error the daemon recorded too (same message) is shown once.

New upstream moves of a mounted branch become a notice ("2 new commits on images@master"),
once per move; a read-only mount can be refreshed from it (MountInfo.can_refresh)."""

from __future__ import annotations

import datetime as dt

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (QAbstractItemView, QHeaderView, QLabel, QTableWidget, QTableWidgetItem, QVBoxLayout,
                               QWidget)

from pachtray.gui.client import EXTRAS
from pachtray.gui.controller import Controller
from pachtray.gui.models import human_time

KEEP = 200
COLUMNS = ("Time", "What", "Details")


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Activity(QObject):
    """The entries shown: the daemon's and the GUI's own errors, merged, newest first, bounded.
    ``notices`` (gui.notices.Notices) is told about new upstream moves."""

    changed = Signal()

    def __init__(self, controller: Controller, notices, parent: QObject | None = None):
        super().__init__(parent)
        self.controller = controller
        self.notices = notices
        self._daemon: list[dict] = []  # newest first
        self._local: list[dict] = []  # the GUI's own errors, newest first
        self._last = -1  # newest daemon entry fetched (-1: none fetched yet)
        self._fetching = False
        self._again = False
        controller.activity_changed.connect(self.fetch)

    def entries(self) -> list[dict]:
        seen = {e["message"] for e in self._daemon if e["kind"] == "error"}
        local = [e for e in self._local if e["message"] not in seen]
        return sorted(self._daemon + local, key=lambda e: e["time"], reverse=True)[:KEEP]

    def add_error(self, title: str, message: str) -> None:
        """An error the GUI showed (gui.app routes every error here once)."""
        self._local.insert(0, {"time": _now(), "kind": "error", "title": title, "message": message, "mount": ""})
        del self._local[KEEP:]
        self.changed.emit()

    def fetch(self) -> None:
        """Read the daemon's entries newer than those shown (one request at a time, on a worker)."""
        if self._fetching:
            self._again = True
            return
        self._fetching = True
        client, after = self.controller.client, max(self._last, 0)
        self.controller.tasks.run(lambda: client.get(EXTRAS + "/activity", after=after), self._fetched,
                                  lambda _e: self._fetch_done())

    def _fetched(self, answer: dict) -> None:
        if answer["last"] < self._last:  # another daemon (restarted): read its log from the start
            self._daemon, self._last, self._again = [], -1, True
            self.changed.emit()
            self._fetch_done()
            return
        first = self._last < 0
        new = [e for e in answer["entries"] if e["id"] > max(self._last, 0)]
        self._last = answer["last"]
        if new:
            self._daemon = (new + self._daemon)[:KEEP]
            self.changed.emit()
        if not first:  # what happened before the app started is listed, not announced
            for entry in reversed(new):
                if entry["kind"] == "upstream":
                    self._announce(entry)
        self._fetch_done()

    def _fetch_done(self) -> None:
        self._fetching = False
        if self._again:
            self._again = False
            self.fetch()

    def _announce(self, entry: dict) -> None:
        """The daemon records a branch's move once, naming one of its mounts; a click updates every
        read-only mount that follows that branch (not those pinned to a commit)."""
        mount = self.controller.status.mount(entry["mount"])
        # (not `can_refresh`: the status polled last may not know yet that they are behind)
        following = [] if mount is None else [
            m for m in self.controller.status.mounted
            if (m.project, m.repo, m.branch) == (mount.project, mount.repo, mount.branch) and m.mode == "ro"
            and m.branch and not m.pinned and m.mounted]
        if following:
            what = "the mount" if len(following) == 1 else f"its {len(following)} mounts"

            def update(names=tuple(m.name for m in following)) -> None:
                for name in names:
                    self.controller.refresh_mount(name)
            self.notices.tell(entry["title"], f"{entry['message']} — click to update {what}", on_click=update,
                              action="Update the mount" if len(following) == 1 else "Update the mounts")
        else:
            self.notices.tell(entry["title"], entry["message"])


class ActivityPanel(QWidget):
    def __init__(self, activity: Activity, parent: QWidget | None = None):
        super().__init__(parent)
        self.activity = activity
        v = QVBoxLayout(self)
        self.table = QTableWidget(0, len(COLUMNS), self)
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(22)
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        header.resizeSection(0, 150)
        header.resizeSection(1, 190)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        v.addWidget(self.table)
        self.label = QLabel("", self)
        self.label.setStyleSheet("color: #5f6368")
        v.addWidget(self.label)
        activity.changed.connect(self.fill)
        self.fill()

    def fill(self) -> None:
        entries = self.activity.entries()
        self.table.setRowCount(len(entries))
        for row, e in enumerate(entries):
            for col, text in enumerate((human_time(e["time"]), e["title"], e["message"])):
                item = QTableWidgetItem(" ".join(text.split()))  # one line: a cell shows only the first
                item.setToolTip(e["message"])
                if e["kind"] == "error":
                    item.setForeground(Qt.GlobalColor.darkRed)
                self.table.setItem(row, col, item)
        self.label.setText("Mounts, commits, uploads and errors of this daemon since it started, newest first "
                           f"(the last {KEEP})." if entries else "Nothing happened yet.")
