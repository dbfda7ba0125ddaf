"""Lazy Qt models: views create rows only as the user scrolls (`canFetchMore`/`fetchMore`).

The repo tree holds the whole listing (one request) but hands rows to the view a page at a
time; commits and files fetch each page from the daemon on a worker thread, so a folder with
100,000 files costs one page until the user scrolls.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Callable

from PySide6.QtCore import QAbstractItemModel, QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QBrush, QColor

from pachtray.gui.tasks import Tasks

PAGE = 200
GREY = QBrush(QColor("#8a8f98"))
ROOT = QModelIndex()


def human_size(n: int | None) -> str:
    if n is None:
        return ""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return ""


def human_time(iso: str | None) -> str:
    if not iso:
        return ""
    try:
        when = dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone()
    except ValueError:
        return iso
    return when.strftime("%Y-%m-%d %H:%M:%S")


class RepoTreeModel(QAbstractItemModel):
    """Projects ▸ repos with size, access and description; filtered by a substring."""

    COLUMNS = ("Name", "Size", "Access", "Description")

    def __init__(self, parent=None, page: int = PAGE):
        super().__init__(parent)
        self._page = page
        self._projects: list[dict] = []
        self._repos: dict[str, list[dict]] = {}  # project -> filtered repos
        self._shown: dict[str, int] = {}  # project -> rows handed to the view
        self._all: dict = {"projects": [], "repos": []}
        self._filter = ""

    # -- data in

    def set_listing(self, listing: dict) -> None:
        self._all = listing
        self._rebuild()

    def set_filter(self, text: str) -> None:
        self._filter = text.strip().lower()
        self._rebuild()

    def _rebuild(self) -> None:
        self.beginResetModel()
        by_project: dict[str, list[dict]] = {p["name"]: [] for p in self._all.get("projects", [])}
        for r in self._all.get("repos", []):
            by_project.setdefault(r["project"], []).append(r)
        f = self._filter
        self._projects, self._repos = [], {}
        for name in sorted(by_project):
            repos = by_project[name]
            if f and f not in name.lower():
                repos = [r for r in repos if f in r["repo"].lower() or f in (r.get("description") or "").lower()]
                if not repos:
                    continue
            project = next((p for p in self._all.get("projects", []) if p["name"] == name), {"name": name})
            self._projects.append(project)
            self._repos[name] = repos
        self._shown = {name: 0 for name in self._repos}
        self.endResetModel()

    # -- lookups for the window

    def repo_at(self, index: QModelIndex) -> dict | None:
        if not index.isValid() or index.internalId() == 0:
            return None
        project = self._projects[index.internalId() - 1]["name"]
        return self._repos[project][index.row()]

    def project_at(self, index: QModelIndex) -> str | None:
        if not index.isValid():
            return None
        if index.internalId() == 0:
            return self._projects[index.row()]["name"]
        return self._projects[index.internalId() - 1]["name"]

    def index_of(self, project: str, repo: str) -> QModelIndex:
        """The repo's index, revealing rows up to it if needed."""
        for p_row, p in enumerate(self._projects):
            if p["name"] != project:
                continue
            for row, r in enumerate(self._repos[project]):
                if r["repo"] == repo:
                    parent = self.index(p_row, 0)
                    while self._shown[project] <= row:
                        self.fetchMore(parent)
                    return self.index(row, 0, parent)
        return QModelIndex()

    def total_repos(self) -> int:
        return sum(len(v) for v in self._repos.values())

    # -- Qt model

    def index(self, row: int, column: int, parent: QModelIndex = ROOT) -> QModelIndex:
        if not self.hasIndex(row, column, parent):
            return QModelIndex()
        if not parent.isValid():
            return self.createIndex(row, column, 0)
        return self.createIndex(row, column, parent.row() + 1)

    def parent(self, index: QModelIndex = ROOT) -> QModelIndex:  # type: ignore[override]
        if not index.isValid() or index.internalId() == 0:
            return QModelIndex()
        return self.createIndex(index.internalId() - 1, 0, 0)

    def rowCount(self, parent: QModelIndex = ROOT) -> int:
        if not parent.isValid():
            return len(self._projects)
        if parent.internalId() == 0 and parent.column() == 0:
            return self._shown[self._projects[parent.row()]["name"]]
        return 0

    def columnCount(self, parent: QModelIndex = ROOT) -> int:
        return len(self.COLUMNS)

    def hasChildren(self, parent: QModelIndex = ROOT) -> bool:
        if not parent.isValid():
            return bool(self._projects)
        return parent.internalId() == 0 and bool(self._repos[self._projects[parent.row()]["name"]])

    def canFetchMore(self, parent: QModelIndex) -> bool:
        if not parent.isValid() or parent.internalId() != 0:
            return False
        name = self._projects[parent.row()]["name"]
        return self._shown[name] < len(self._repos[name])

    def fetchMore(self, parent: QModelIndex) -> None:
        if not self.canFetchMore(parent):
            return
        name = self._projects[parent.row()]["name"]
        start = self._shown[name]
        end = min(start + self._page, len(self._repos[name]))
        self.beginInsertRows(parent, start, end - 1)
        self._shown[name] = end
        self.endInsertRows()

    def headerData(self, section: int, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.COLUMNS[section]
        return None

    def flags(self, index: QModelIndex):
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        repo = self.repo_at(index)
        if repo is not None and repo.get("authorization") == "none":
            return Qt.ItemFlag.ItemIsSelectable  # greyed: listed, not usable
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def data(self, index: QModelIndex, role=Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        col = index.column()
        if index.internalId() == 0:
            project = self._projects[index.row()]
            if role == Qt.ItemDataRole.DisplayRole:
                if col == 0:
                    return project["name"]
                if col == 1:
                    count = len(self._repos[project["name"]])
                    return f"{count} repo{'' if count == 1 else 's'}"
                if col == 3:
                    return project.get("description", "")
            return None
        repo = self.repo_at(index)
        access = repo.get("authorization", "off")
        if role == Qt.ItemDataRole.DisplayRole:
            return (repo["repo"], human_size(repo.get("size_bytes")),
                    {"off": "", "none": "no access", "read": "read", "write": "write"}.get(access, access),
                    repo.get("description", ""))[col]
        if role == Qt.ItemDataRole.ToolTipRole:
            return repo.get("access_reason") or repo.get("description") or None
        if role == Qt.ItemDataRole.ForegroundRole and access == "none":
            return GREY
        if role == Qt.ItemDataRole.TextAlignmentRole and col == 1:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None


class PagedTableModel(QAbstractTableModel):
    """Rows come from `load(cursor) -> (rows, next_cursor)` on a worker, one page per fetchMore."""

    COLUMNS: tuple[str, ...] = ()
    failed = Signal(str)
    reloaded = Signal()  # the rows were swapped for a changed listing (the view's selection is gone)

    def __init__(self, tasks: Tasks, parent=None):
        super().__init__(parent)
        self._tasks = tasks
        self._rows: list[dict] = []
        self._load: Callable[[Any], tuple[list[dict], Any]] | None = None
        self._cursor: Any = None
        self._more = False
        self._loading = False
        self._epoch = 0
        self.error = ""

    def reset(self, load: Callable[[Any], tuple[list[dict], Any]] | None) -> None:
        """Forget the rows and start over with a new source (None = empty)."""
        self.beginResetModel()
        self._epoch += 1
        self._rows, self._load, self._cursor = [], load, None
        self._more, self._loading, self.error = load is not None, False, ""
        self.endResetModel()
        if load is not None:
            self.fetchMore(QModelIndex())

    def reload(self) -> None:
        """Read the listing again on a worker (at least as many rows as are shown) and swap the
        rows in only when they changed, so an unchanged listing keeps the view's selection and
        scroll position; after a swap, `reloaded` lets the window select the same row again."""
        if self._load is None:
            return
        epoch, load, want = self._epoch, self._load, max(1, len(self._rows))

        def fetch():
            rows, cursor = [], None
            while True:
                page, cursor = load(cursor)
                rows.extend(page)
                if cursor is None or len(rows) >= want:
                    return rows, cursor

        self._tasks.run(fetch, lambda page: self._reloaded(epoch, page),
                        lambda e: self._page_failed(epoch, e) if not self._rows else None)

    def _reloaded(self, epoch: int, page: tuple[list[dict], Any]) -> None:
        if epoch != self._epoch:
            return  # the user chose another listing meanwhile
        rows, cursor = page
        if rows == self._rows and (cursor is not None) == self._more:
            return
        self.beginResetModel()
        self._epoch += 1  # a page still on its way belongs to the old rows
        self._rows, self._cursor = rows, cursor
        self._more, self._loading, self.error = cursor is not None, False, ""
        self.endResetModel()
        self.reloaded.emit()

    def find(self, column: str, value) -> int:
        """The first row whose ``column`` is ``value`` (-1: none among the rows loaded)."""
        return next((i for i, row in enumerate(self._rows) if row.get(column) == value), -1)

    @property
    def loading(self) -> bool:
        return self._loading

    def row(self, r: int) -> dict:
        return self._rows[r]

    def rows(self) -> list[dict]:
        return list(self._rows)

    def rowCount(self, parent: QModelIndex = ROOT) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QModelIndex = ROOT) -> int:
        return len(self.COLUMNS)

    def canFetchMore(self, parent: QModelIndex | QPersistentModelIndex = ROOT) -> bool:
        return not parent.isValid() and self._more and not self._loading

    def fetchMore(self, parent: QModelIndex | QPersistentModelIndex = ROOT) -> None:
        if not self.canFetchMore(parent) or self._load is None:
            return
        self._loading = True
        epoch, load, cursor = self._epoch, self._load, self._cursor
        self._tasks.run(lambda: load(cursor), lambda page: self._page_loaded(epoch, page),
                        lambda e: self._page_failed(epoch, e))

    def _page_loaded(self, epoch: int, page: tuple[list[dict], Any]) -> None:
        if epoch != self._epoch:
            return  # an answer for a listing the user has left
        rows, cursor = page
        self._loading = False
        self._cursor, self._more = cursor, cursor is not None
        if rows:
            self.beginInsertRows(QModelIndex(), len(self._rows), len(self._rows) + len(rows) - 1)
            self._rows.extend(rows)
            self.endInsertRows()

    def _page_failed(self, epoch: int, error: Exception) -> None:
        if epoch != self._epoch:
            return
        self._loading, self._more, self.error = False, False, str(error)
        self.failed.emit(self.error)

    def headerData(self, section: int, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.COLUMNS[section]
        return None

    def data(self, index: QModelIndex, role=Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self._rows):
            return None
        row = self._rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return self.cell(row, index.column())
        if role == Qt.ItemDataRole.ToolTipRole:
            return self.tooltip(row)
        if role == Qt.ItemDataRole.TextAlignmentRole and self.COLUMNS[index.column()] == "Size":
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def cell(self, row: dict, column: int) -> str:
        raise NotImplementedError

    def tooltip(self, row: dict) -> str | None:
        return None


class BranchesModel(PagedTableModel):
    COLUMNS = ("Branch", "Head", "Time", "Description")

    def cell(self, row: dict, column: int) -> str:
        return (row["name"], (row.get("head") or "")[:12], human_time(row.get("started")),
                row.get("description", ""))[column]

    def tooltip(self, row: dict) -> str | None:
        return f"head commit {row['head']}" if row.get("head") else "no commits yet"


class CommitsModel(PagedTableModel):
    COLUMNS = ("Commit", "Time", "Description", "Size")

    def cell(self, row: dict, column: int) -> str:
        return (row["id"][:12], human_time(row.get("started")), row.get("description", ""),
                human_size(row.get("size_bytes")))[column]

    def tooltip(self, row: dict) -> str | None:
        return row["id"] + (f"\nerror: {row['error']}" if row.get("error") else "")


class FilesModel(PagedTableModel):
    COLUMNS = ("Name", "Type", "Size")

    def cell(self, row: dict, column: int) -> str:
        is_dir = row["type"] == "dir"
        return (row["name"] + ("/" if is_dir else ""), "folder" if is_dir else "file",
                "" if is_dir else human_size(row.get("size_bytes")))[column]

    def tooltip(self, row: dict) -> str | None:
        return row["path"]
