"""Read-write views: changes staged on disk, uploaded as one commit.

The staging dir holds the journal (mount.journal: `journal.sqlite` with one row per changed path
and the content of small written files, and the log of the changes not yet moved into it) and
`files/` (the content of the others). Rows overlay the base commit (the branch
head when the changes started):

- `file`: a file whose content is the blob `blob` (see `Journal`), or the base file `src` (a
  rename of a file that was never written, so nothing is downloaded);
- `dir`: a folder; with `src` its contents are the base folder `src` (a renamed folder), without
  it the folder is new and starts empty (PFS keeps no empty folders, so these stay local until
  a file appears in them; a commit adds such rows for the folders it empties, so every folder
  seen in the mount stays until unmount);
- `emptied`: a new folder where the base has something (a file, or a folder whose content went):
  a change of its own, committed as the deletion of that path;
- `symlink`: a symbolic link whose target text is `src`; every commit uploads a copy of the file
  it leads to at that moment (links to files of the same mount only), and the link stays a link
  in the mount until unmount (`clean` once committed: then it alone is no pending change);
- `gone`: the base path is deleted.

A hard link is made as a copy (a new row with a copy of the blob, or the same base file): with
libfuse's path-based API the kernel would cache each name as its own inode, so a write through
one name would not show through the other. libfuse renames a file unlinked while open to
`.fuse_hidden*` until it is closed: such rows are never listed nor committed.

A path without a row is what its nearest ancestor row says: nothing under a `gone`, a file, a
new `dir` or `emptied`; the base folder under a renamed `dir`; else the base commit itself. Rows are written
before an operation returns (a record appended to the journal's log survives kill -9, and the OS
writes it out within seconds) and so is a write to a small file (its content is in the journal)
or to a blob file, so a killed daemon finds every change on restart; an fsync() of a
file also syncs the journal, so what a program fsync'ed survives a power loss too. A commit sends
the rows, parents first, as one ModifyFile stream into a commit started on the branch (pfs.commits:
all or nothing), which pachd applies in order to the branch's head at that moment, which may have
moved on from the base.
So every changed path is deleted before it is written (PFS appends to a file that exists), a new
folder over nothing deletes nothing (files others put in it stay), and recommitting the same rows
(after a crash between the commit and the journal reset) gives the same result. Closed files may
have been uploaded ahead in idle time, with the same requests, into temporary file sets
(mount.upload_ahead, in memory only): the commit adds those still current before its stream, and
sends everything in the stream when it cannot use them.
"""

from __future__ import annotations

import collections
import errno
import hashlib
import logging
import os
import posixpath
import shutil
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from pachyderm_sdk.api import pfs

from pachtray.errors import PachtrayError
from pachtray.pfs import commits, errors, modify
from pachtray.pfs.errors import RPC_ERRORS
from pachtray.pfs.names import NAME_MAX, cut
from pachtray.pfs.paths import path_problem
from pachtray.mount.cache import ChunkCache
from pachtray.mount.journal import Journal
from pachtray.mount.upload_ahead import UploadAhead
from pachtray.mount.reader import (ClientFn, CommitTree, ReadState, attrs, make_commit, norm, reader_for,
                                   require_client)

log = logging.getLogger(__name__)

COPY_CHUNK = 4 * 1024 * 1024
FILE_MODE = 0o100644
DIR_MODE = 0o040755
LINK_MODE = 0o120777
MAX_LINK_HOPS = 40  # as Linux follows
LINKS_LISTED = 5  # links a refused commit names (it counts the rest)
HIDDEN_PREFIX = ".fuse_hidden"  # libfuse's name for a file unlinked while open
# A file's content stays in the journal while it is at most this big and was written in at most
# this many pieces (each rewrites the whole content there): a file written in many small pieces
# or past the size becomes a blob file (docs/benchmarks.md: why these two).
INLINE_MAX = 64 * 1024
INLINE_WRITES = 16
OPEN_COMMIT = "open_commit"  # journal meta: the commit a commit() started and has not yet seen finished
OPEN_PLAN = "open_plan"  # journal meta: what that commit was sent (`RwView._fingerprint`)


class CommitFailed(PachtrayError):
    """The upload did not happen; every change is still staged."""

    def __init__(self, message: str):
        super().__init__(message, "Commit failed")


ADDED, MODIFIED, DELETED = "added", "modified", "deleted"


class ChangedSinceReview(PachtrayError):
    """A commit given a review token found other changes than the ones reviewed."""


class Change(NamedTuple):
    """One file a commit would change; `size` is the new content's (a deleted file's: the base's)."""

    path: str
    change: str  # ADDED | MODIFIED | DELETED
    size: int | None


@dataclass(frozen=True)
class Row:
    kind: str  # "file" | "dir" | "emptied" | "symlink" | "gone"
    blob: str | None = None
    src: str | None = None  # base path of a renamed file or folder; a symlink's target
    clean: bool = False  # content already committed; a file is kept only while a handle has it open


@dataclass(frozen=True)
class Node:
    is_dir: bool
    row: Row | None = None
    base_path: str | None = None  # where the content comes from in the base commit
    size: int = 0
    mtime: float = 0.0

    @property
    def link(self) -> str | None:
        """The target of a symbolic link (None for files and folders)."""
        return self.row.src if self.row is not None and self.row.kind == "symlink" else None

    @property
    def mode(self) -> int:
        return DIR_MODE if self.is_dir else LINK_MODE if self.link is not None else FILE_MODE


def _parent(path: str) -> str:
    """The folder of a view path ("/a/b" form): posixpath.dirname for those, at a third of its cost."""
    return path[:path.rindex("/")] or "/"


def _name(path: str) -> str:
    return path[path.rindex("/") + 1:]


def _hidden(path: str) -> bool:
    return _name(path).startswith(HIDDEN_PREFIX)


def _under(path: str, top: str) -> bool:
    return top == "/" or path.startswith(top + "/")


def _disk_error(e: Exception, what: str, staging_dir: Path | None = None) -> OSError:
    full = isinstance(e, sqlite3.OperationalError) and (
        "full" in str(e) or (staging_dir is not None and os.statvfs(staging_dir).f_bavail == 0))
    if full:
        return OSError(errno.ENOSPC, f"{what}: staging disk full")
    if isinstance(e, OSError) and e.errno:
        return OSError(e.errno, f"{what}: {e.strerror}")
    return OSError(errno.EIO, f"{what}: {e}")


@dataclass(slots=True)
class _Inline:
    """What the view keeps in memory of a blob held in the journal."""
    size: int
    mtime: float
    since: int  # the journal's sync count when it was made: a later sync() may have made it durable
    writes: int = 0


class _BlobHandle:
    """An open file whose content is a blob: read and written in the journal while it is inline,
    through a descriptor of its file once it is one."""

    def __init__(self, view: "RwView", blob: str, writable: bool):
        self.view = view
        self.blob = blob
        self.writable = writable
        self.fd: int | None = None if blob in view._inline else self._open()

    def _open(self) -> int:
        return os.open(self.view.journal.blob_path(self.blob), os.O_RDWR if self.writable else os.O_RDONLY)

    def file(self) -> int:
        """The descriptor of the blob's file, opened when first needed (the blob is a file now)."""
        if self.fd is None:
            self.fd = self._open()
        return self.fd

    def read(self, size: int, offset: int) -> bytes:
        if self.fd is None:
            data = self.view.journal.inline_read(self.blob, size, offset)
            if data is not None:
                return data
        return os.pread(self.file(), size, offset)  # (it may have become a file meanwhile)

    def write(self, data: bytes, offset: int) -> int:
        return self.view._write(self, data, offset)

    def stat(self) -> dict:
        info = self.view._inline.get(self.blob)
        if info is not None:
            size, mtime = info.size, info.mtime
        else:
            st = os.fstat(self.file())
            size, mtime = st.st_size, st.st_mtime
        return self.view._attrs(FILE_MODE, size, mtime, self.view._names(self.blob))

    def fsync(self) -> None:
        if self.blob not in self.view._inline:
            os.fsync(self.file())
        self.view.journal.sync()

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
        self.view._released(self.blob)


class _BaseHandle:
    """A file read straight from the base commit (opened read-only and never written); it keeps
    reading the commit it was opened on when a commit moves the view to a new base."""

    def __init__(self, view: "RwView", base_path: str, size: int, mtime: float):
        self.view, self.tree, self.base_path, self.size, self.mtime = view, view.base, base_path, size, mtime
        self.state = ReadState()

    def read(self, size: int, offset: int) -> bytes:
        return self.tree.read(self.base_path, self.size, offset, size, self.state)

    def sources(self, size: int, offset: int) -> list:
        return self.tree.sources(self.base_path, self.size, offset, size, self.state)

    def write(self, data: bytes, offset: int) -> int:
        raise OSError(errno.EBADF, "file not open for writing")

    def stat(self) -> dict:
        return self.view._attrs(FILE_MODE, self.size, self.mtime)

    def fsync(self) -> None:
        pass

    def release(self) -> None:
        self.tree.closed(self.base_path)


class RwView:
    """A branch, writable; see the module docstring for how changes are kept."""

    writable = True
    keep_cache = False

    def __init__(self, staging_dir: str | os.PathLike, client_fn: ClientFn, project: str, repo: str, branch: str,
                 base_commit_id: str | None, cache: ChunkCache):
        self.client_fn = client_fn
        self.project, self.repo, self.branch = project, repo, branch
        self.journal = Journal(staging_dir)
        self.reader = reader_for(cache)
        self._mut = threading.RLock()  # held by every change and for a whole commit: writes wait
        self._closing = threading.Event()  # close() stops a commit in progress (the daemon is stopping)
        self._lock = threading.RLock()  # guards the in-memory rows
        self.rows: dict[str, Row] = {}
        self._children: dict[str, set[str]] = collections.defaultdict(set)
        self._open: collections.Counter[str] = collections.Counter()
        self._clean_blobs: set[str] = set()
        self._blob_paths: dict[str, str] = {}  # blob -> the one path whose row holds it
        self._inline: dict[str, _Inline] = {b: _Inline(n, m, -1) for b, (n, m) in self.journal.load_inline().items()}
        self._orphans: set[str] = set()  # inline blobs without a row, kept until their last handle closes
        self._upload: UploadAhead | None = None  # (rows loaded from the journal are sent by the commit)
        self._apply_in_memory({p: Row(*r) for p, r in self.journal.load().items()})
        # No handle survives a restart: files unlinked while open are gone now, and so are blobs a
        # kill -9 left without a row (written before their row, or not yet deleted after it), and
        # files of inline blobs (written before the row that made them files was deleted).
        leftover = {p: None for p in self.rows if _hidden(p)}
        if leftover:
            self._apply_dropping_blobs(leftover)
        held = {r.blob for r in self.rows.values() if r.blob}
        unheld = [b for b in self._inline if b not in held]
        if unheld:
            self._apply({}, drop=unheld)
        for f in os.scandir(self.journal.files):
            if f.name not in held or f.name in self._inline:
                self.journal.drop_blob(f.name)
        # Changes are relative to the base they were made on, so a resumed journal keeps its own.
        stored = self.journal.meta("base_commit")
        if stored is not None and self.rows:
            base_commit_id = stored or None
        if stored != (base_commit_id or ""):
            self.journal.set_meta("base_commit", base_commit_id or "")
        self.base = CommitTree(client_fn, project, repo, base_commit_id, self.reader, probe=False)
        self.invalidate = None  # set by FuseMount: drops the kernel's cached view of this mount
        self.mountpoint: str | None = None  # set by FuseMount: where absolute symlink targets point into the view
        self._upload = UploadAhead(self)

    @property
    def base_commit_id(self) -> str | None:
        return self.base.commit.id if self.base.commit is not None else None

    # --- resolution ---------------------------------------------------------------------------
    @staticmethod
    def _attrs(mode: int, size: int, mtime: float, nlink: int | None = None) -> dict:
        found = attrs(mode, 0 if mode == DIR_MODE else size, mtime)
        if nlink is not None:
            found["st_nlink"] = nlink
        return found

    def _names(self, blob: str) -> int:
        """Links to a blob's file: 0 once its name is unlinked (libfuse's hidden name) or gone."""
        with self._lock:
            path = self._blob_paths.get(blob)
        return 0 if path is None or _hidden(path) else 1

    def _base_path(self, path: str) -> str | None:
        """Where `path` comes from in the base when it has no row itself (None: hidden)."""
        a = path
        while a != "/":
            a = _parent(a)
            row = self.rows.get(a)
            if row is None:
                continue
            if row.kind == "dir" and row.src is not None:
                return norm(row.src + path[len(a):])
            return None
        return path

    def _node(self, path: str) -> Node | None:
        if path == "/":
            return Node(True, None, "/", 0, self.base.mtime)
        with self._lock:
            row = self.rows.get(path)
            base_path = self._base_path(path) if row is None else row.src
        if row is not None:
            if row.kind == "gone":
                return None
            if row.kind in ("dir", "emptied"):
                return Node(True, row, row.src, 0, self.base.mtime)
            if row.kind == "symlink":
                return Node(False, row, None, len(os.fsencode(row.src)), self.base.mtime)
            if row.blob is not None:
                info = self._inline.get(row.blob)
                if info is not None:
                    return Node(False, row, None, info.size, info.mtime)
                try:
                    st = os.stat(self.journal.blob_path(row.blob))
                except FileNotFoundError:
                    return None
                return Node(False, row, None, st.st_size, st.st_mtime)
        if base_path is None:
            return None
        e = self.base.stat(base_path)
        if e is None or (row is not None and e.is_dir):
            return None
        return Node(e.is_dir, row, base_path, e.size, e.mtime)

    def _need(self, path: str) -> Node:
        node = self._node(path)
        if node is None:
            raise OSError(errno.ENOENT, path)
        return node

    def _need_dir(self, path: str) -> Node:
        node = self._need(path)
        if not node.is_dir:
            raise OSError(errno.ENOTDIR, path)
        return node

    def _list(self, path: str, node: Node) -> dict[str, int]:
        """name -> mode of the entries of folder `path` (files unlinked while open are not listed)."""
        names = {}
        if node.base_path is not None:
            names = {n: DIR_MODE if e.is_dir else FILE_MODE for n, e in self.base.list(node.base_path).items()}
        with self._lock:
            staged = list(self._children.get(path, ()))
        for name in staged:
            child = self._node(posixpath.join(path, name))
            if child is None or name.startswith(HIDDEN_PREFIX):
                names.pop(name, None)
            else:
                names[name] = child.mode
        return names

    # --- view interface: reading --------------------------------------------------------------
    def prepare(self) -> None:
        """Fetch the root's first page, so the mount answers at once when it appears (OSError if it cannot)."""
        next(iter(self.base.entries_from("/", 0)), None)

    def getattr(self, path: str, handle=None) -> dict:
        if handle is not None:
            return handle.stat()
        node = self._need(path)
        return self._attrs(node.mode, node.size, node.mtime, 0 if _hidden(path) else None)  # unlinked: no name

    def readdir(self, path: str) -> list[tuple[str, dict]]:
        node = self._need_dir(path)
        return [(n, {"st_mode": mode}) for n, mode in sorted(self._list(path, node).items())]

    def readlink(self, path: str) -> str:
        target = self._need(path).link
        if target is None:
            raise OSError(errno.EINVAL, f"{path} is not a symbolic link")
        return target

    def open(self, path: str, flags: int):
        writing = (flags & os.O_ACCMODE) != os.O_RDONLY or flags & os.O_TRUNC
        if not writing:
            node = self._need(path)
            if node.is_dir:
                raise OSError(errno.EISDIR, path)
            if node.row is not None and node.row.blob is not None:
                return self._blob_handle(node.row.blob, False)
            return _BaseHandle(self, node.base_path, node.size, node.mtime)
        with self._mut:
            blob = self._materialize(path, truncate_to=0 if flags & os.O_TRUNC else None)
            return self._blob_handle(blob, True)

    def _blob_handle(self, blob: str, writable: bool) -> _BlobHandle:
        with self._lock:
            self._open[blob] += 1
        try:
            return _BlobHandle(self, blob, writable)
        except OSError:
            self._released(blob)
            raise

    def _released(self, blob: str) -> None:
        with self._lock:
            self._open[blob] -= 1
            if self._open[blob] > 0:
                return
            del self._open[blob]
            if self._upload is not None and (path := self._blob_paths.get(blob)) is not None:
                self._upload.noticed(path)
            orphan = blob in self._orphans
            if not orphan and blob not in self._clean_blobs:  # the usual case: no scan of every row per close
                return
            clean = [] if orphan else [p for p, r in self.rows.items() if r.blob == blob and r.clean]
            if not orphan and not clean:
                return
        with self._mut:
            if orphan:
                self._orphans.discard(blob)
                if blob in self._inline:
                    self._apply({}, drop=[blob])
                self.journal.drop_blob(blob)  # it may have become a file while orphaned
            elif clean:
                self._apply_dropping_blobs({p: None for p in clean})

    def statfs(self) -> dict:
        st = os.statvfs(self.journal.dir)
        found = {k: getattr(st, k) for k in ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail",
                                              "f_files", "f_ffree", "f_favail")}
        found["f_namemax"] = NAME_MAX
        return found

    # --- view interface: changing -------------------------------------------------------------
    def _apply(self, changes: dict[str, Row | None], freeable: set[str] = frozenset(),
               meta: dict[str, str] | None = None, put: dict[str, bytes] | None = None, drop=()) -> None:
        """Journal first (with `meta`, the new inline blobs `put` and the deletion of the inline
        blobs `drop`, in one transaction), then memory: a failed journal write changes nothing.

        On a full disk the blob files in `freeable` (content being deleted anyway) are emptied to
        make room for the journal, so deleting a file that is not inline is always possible.
        """
        now = time.time() if put else 0.0
        puts = {b: (data, now) for b, data in put.items()} if put else None
        try:
            self.journal.write(changes, meta, puts, drop)
        except (sqlite3.Error, OSError) as e:
            err = _disk_error(e, "staging journal", self.journal.dir)
            if err.errno != errno.ENOSPC or not freeable:
                raise err from None
            for b in freeable:
                os.truncate(self.journal.blob_path(b), 0)
            try:
                self.journal.write(changes, meta, puts, drop)
            except (sqlite3.Error, OSError) as e2:
                raise _disk_error(e2, "staging journal", self.journal.dir) from None
        if put or drop:
            with self._lock:
                for b in drop:
                    self._inline.pop(b, None)
                for b, data in (put or {}).items():
                    self._inline[b] = _Inline(len(data), now, self.journal.syncs)
        self._apply_in_memory(changes)

    def _apply_in_memory(self, changes: dict[str, Row | None]) -> None:
        upload = self._upload
        with self._lock:
            for path, row in changes.items():
                if upload is not None:
                    upload.noticed(path)
                old = self.rows.get(path)
                if old is not None and old.blob and self._blob_paths.get(old.blob) == path:
                    del self._blob_paths[old.blob]
                if row is None:
                    self.rows.pop(path, None)
                    kids = self._children.get(_parent(path))
                    if kids is not None:
                        kids.discard(_name(path))
                    continue
                self.rows[path] = row
                self._children[_parent(path)].add(_name(path))
                if row.blob:
                    self._blob_paths[row.blob] = path
                if row.clean and row.blob:
                    self._clean_blobs.add(row.blob)
                elif row.blob:
                    self._clean_blobs.discard(row.blob)

    def _rows_under(self, path: str) -> list[str]:
        """Paths with a row at or under `path` (caller holds `_lock`), found through the folders
        that have rows, so deleting or moving one of 100,000 staged files does not scan them all."""
        found = [path] if path in self.rows else []
        for d, names in self._children.items():
            if d == path or _under(d, path):
                found.extend(p for p in (posixpath.join(d, n) for n in names) if p in self.rows)
        return found

    def _hide(self, path: str, changes: dict[str, Row | None]) -> None:
        """Add to `changes` what removes `path` (and everything under it) from the view."""
        with self._lock:
            for p in self._rows_under(path):
                changes[p] = None
            base_path = self._base_path(path)  # depends on ancestors' rows only
        if base_path is not None and self.base.stat(base_path) is not None:
            changes[path] = Row("gone")

    def _check_parent(self, path: str) -> None:
        if path == "/":
            raise OSError(errno.EEXIST, path)
        self._need_dir(_parent(path))

    def _check_new(self, path: str) -> None:
        """A name about to be made: one pachd can store (EINVAL, ENAMETOOLONG), in a folder that exists."""
        if len(os.fsencode(_name(path))) > NAME_MAX:
            raise OSError(errno.ENAMETOOLONG, path)
        if (problem := path_problem(path)) is not None:
            raise OSError(errno.EINVAL, problem)
        self._check_parent(path)

    def _materialize(self, path: str, truncate_to: int | None) -> str:
        """The blob holding `path`'s content, copying it from the base on first write."""
        node = self._need(path)
        if node.is_dir:
            raise OSError(errno.EISDIR, path)
        if node.link is not None:
            raise OSError(errno.ELOOP, path)
        row = node.row
        if row is not None and row.blob is not None:
            if row.clean:
                self._apply({path: Row("file", row.blob)})
            if truncate_to is not None:
                self._truncate_blob(row.blob, truncate_to)
            return row.blob
        size = node.size if truncate_to is None else truncate_to
        if size <= INLINE_MAX:  # into the journal, with its row: nothing to fsync
            content = b"" if truncate_to == 0 else b"".join(self._base_pieces(node))[:size]
            blob = self.journal.new_id()
            self._apply({path: Row("file", blob)}, put={blob: content + bytes(size - len(content))})
            return blob
        blob = self.journal.new_blob()
        try:
            if truncate_to != 0:
                self._copy_from_base(node, blob)
            if truncate_to:
                os.truncate(self.journal.blob_path(blob), truncate_to)
            self._apply({path: Row("file", blob)})
        except BaseException as e:
            self.journal.drop_blob(blob)
            if isinstance(e, OSError) and e.errno == errno.ENOSPC:
                raise OSError(errno.ENOSPC, f"{path}: staging disk full") from None
            raise
        return blob

    def _base_pieces(self, node: Node):
        """The content of a base file, COPY_CHUNK at a time."""
        state, pos = ReadState(), 0
        while pos < node.size:
            data = self.base.read(node.base_path, node.size, pos, COPY_CHUNK, state)
            if not data:
                break
            yield data
            pos += len(data)

    def _truncate_blob(self, blob: str, length: int) -> None:
        info = self._inline.get(blob)
        if info is None or length > INLINE_MAX:
            if info is not None:
                self._spill(blob, info)
            os.truncate(self.journal.blob_path(blob), length)
        else:
            old = b"" if length == 0 else (self.journal.inline_data(blob) or b"")[:length]
            self._set_inline(blob, info, old + bytes(length - len(old)), "truncate")
        self._upload.changed(blob)

    def _set_inline(self, blob: str, info: _Inline, content: bytes, what: str) -> None:
        mtime = time.time()
        try:
            self.journal.set_inline(blob, content, mtime)
        except (sqlite3.Error, OSError) as e:
            raise _disk_error(e, what, self.journal.dir) from None
        info.size, info.mtime, info.writes = len(content), mtime, info.writes + 1

    def _spill(self, blob: str, info: _Inline) -> None:
        """Make an inline blob a file: the file is written (and synced when a sync() since the blob
        was made may have made its content durable), then the blob's inline row is deleted."""
        content = self.journal.inline_data(blob) or b""
        path = self.journal.blob_path(blob)
        try:
            with open(path, "wb") as f:
                f.write(content)
                if content and info.since != self.journal.syncs:
                    f.flush()
                    os.fsync(f.fileno())
            self._apply({}, drop=[blob])
        except (sqlite3.Error, OSError) as e:
            self.journal.drop_blob(blob)
            if isinstance(e, OSError) and e.errno == errno.ENOSPC:
                raise OSError(errno.ENOSPC, "write: staging disk full") from None
            raise _disk_error(e, "write", self.journal.dir) from None

    def _copy_from_base(self, node: Node, blob: str) -> None:
        with open(self.journal.blob_path(blob), "r+b") as f:
            for data in self._base_pieces(node):
                f.write(data)
            f.flush()
            os.fsync(f.fileno())

    def _write(self, handle: _BlobHandle, data: bytes, offset: int) -> int:
        with self._mut:
            try:
                return self._write_locked(handle, data, offset)
            finally:
                self._upload.changed(handle.blob)  # after the content changed (see upload_ahead)

    def _write_locked(self, handle: _BlobHandle, data: bytes, offset: int) -> int:
        """(caller holds _mut)"""
        blob = handle.blob
        if blob in self._clean_blobs:
            with self._lock:
                dirty = {p: Row("file", r.blob) for p, r in self.rows.items() if r.blob == blob}
            self._apply(dirty)
        info = self._inline.get(blob)
        if info is not None:
            end = offset + len(data)
            if end <= INLINE_MAX and info.writes < INLINE_WRITES:
                if offset == 0 and end >= info.size:
                    content = bytes(data)
                else:
                    old = self.journal.inline_data(blob) or b""
                    content = old[:offset] + bytes(max(0, offset - len(old))) + data + old[end:]
                self._set_inline(blob, info, content, "write")
                return len(data)
            self._spill(blob, info)
        try:
            return os.pwrite(handle.file(), data, offset)
        except OSError as e:
            raise _disk_error(e, "write", self.journal.dir) from None

    def create(self, path: str, mode: int, flags: int):
        with self._mut:
            existing = self._node(path)
            if existing is not None:  # created meanwhile by another process: O_CREAT opens it
                if flags & os.O_EXCL:
                    raise OSError(errno.EEXIST, path)
                return self._blob_handle(self._materialize(path, 0 if flags & os.O_TRUNC else None), True)
            self._check_new(path)
            blob = self.journal.new_id()
            self._apply({path: Row("file", blob)}, put={blob: b""})
            return self._blob_handle(blob, True)

    def truncate(self, path: str, length: int) -> None:
        with self._mut:
            blob = self._materialize(path, truncate_to=length)
            if blob not in self._inline:  # (an inline blob's mtime was set)
                os.utime(self.journal.blob_path(blob))
            self._upload.noticed(path)  # (no release may follow)

    def mkdir(self, path: str, mode: int) -> None:
        with self._mut:
            self._check_new(path)
            if self._node(path) is not None:
                raise OSError(errno.EEXIST, path)
            self._apply({path: self._new_folder(path, {})})

    def _new_folder(self, path: str, changes: dict[str, Row | None]) -> Row:
        """The row of a new empty folder at `path`, given the `changes` about to be applied with it."""
        with self._lock:
            prior = changes[path] if path in changes else self.rows.get(path)
        return Row("emptied") if prior is not None and prior.kind == "gone" else Row("dir")

    def link(self, old: str, new: str) -> None:
        """A hard link, made as a copy (see the module docstring); a base file is not downloaded."""
        with self._mut:
            self._check_new(new)
            src = self._need(old)
            if src.is_dir:
                raise OSError(errno.EPERM, f"{old} is a folder")
            if self._node(new) is not None:
                raise OSError(errno.EEXIST, new)
            if src.link is not None:
                self._apply({new: Row("symlink", src=src.link)})
            elif src.row is None or src.row.blob is None:
                self._apply({new: Row("file", src=src.base_path)})
            elif src.row.blob in self._inline:
                blob = self.journal.new_id()
                self._apply({new: Row("file", blob)}, put={blob: self.journal.inline_data(src.row.blob) or b""})
            else:
                blob = self.journal.new_blob()
                try:
                    shutil.copyfile(self.journal.blob_path(src.row.blob), self.journal.blob_path(blob))
                    self._apply({new: Row("file", blob)})
                except BaseException as e:
                    self.journal.drop_blob(blob)
                    if isinstance(e, OSError):
                        raise _disk_error(e, "link", self.journal.dir) from None
                    raise

    def symlink(self, path: str, target: str) -> None:
        with self._mut:
            self._check_new(path)
            if self._node(path) is not None:
                raise OSError(errno.EEXIST, path)
            if target.startswith("/") and self._view_path(target) is None:
                raise OSError(errno.EPERM, f"{path} -> {target}: a link to outside this mount cannot be committed")
            self._apply({path: Row("symlink", src=target)})

    def _view_path(self, target: str) -> str | None:
        """The path in this view an absolute symlink target names (None: outside the mount)."""
        top = self.mountpoint
        if top is None or not (target == top or target.startswith(top + "/")):
            return None
        return norm(target[len(top):])

    def unlink(self, path: str) -> None:
        with self._mut:
            if self._need(path).is_dir:
                raise OSError(errno.EISDIR, path)
            self._remove(path)

    def rmdir(self, path: str) -> None:
        with self._mut:
            node = self._need_dir(path)
            if path == "/":
                raise OSError(errno.EBUSY, path)
            if self._list(path, node):
                raise OSError(errno.ENOTEMPTY, path)
            self._remove(path)

    def _remove(self, path: str) -> None:
        changes: dict[str, Row | None] = {}
        self._hide(path, changes)
        self._apply_dropping_blobs(changes)

    def _apply_dropping_blobs(self, changes: dict[str, Row | None], meta: dict[str, str] | None = None) -> None:
        """Apply `changes` and delete the blobs no row refers to any more (no two rows share one):
        inline ones in the same transaction, unless a handle still has them open (then when the
        last one closes), files after it (an open descriptor keeps reading and writing its file)."""
        with self._lock:
            before = {self.rows[p].blob for p in changes if p in self.rows and self.rows[p].blob}
            freed = before - {r.blob for r in changes.values() if r is not None and r.blob}
            inline = {b for b in freed if b in self._inline}
            still_open = {b for b in inline if self._open.get(b)}
        self._apply(changes, freeable=freed - inline, meta=meta, drop=inline - still_open)
        self._orphans |= still_open
        for b in freed - inline:
            self.journal.drop_blob(b)

    def rename(self, old: str, new: str) -> None:
        if old == new:
            return
        if _under(new, old):
            raise OSError(errno.EINVAL, f"cannot move {old} into itself")
        with self._mut:
            src = self._need(old)
            dst = self._node(new)
            if dst is None:
                self._check_new(new)
            else:
                if src.is_dir and not dst.is_dir:
                    raise OSError(errno.ENOTDIR, new)
                if not src.is_dir and dst.is_dir:
                    raise OSError(errno.EISDIR, new)
                if dst.is_dir and self._list(new, dst):
                    raise OSError(errno.ENOTEMPTY, new)
            changes: dict[str, Row | None] = {}
            if dst is not None:
                self._hide(new, changes)
            with self._lock:
                moved = {new + p[len(old):]: Row(r.kind, r.blob, r.src)
                         for p, r in ((p, self.rows[p]) for p in self._rows_under(old)) if p != old}
            if src.row is not None and src.is_dir and src.row.src is None:
                top = self._new_folder(new, changes)
            elif src.row is not None:
                top = Row(src.row.kind, src.row.blob, src.row.src)
            elif src.is_dir:
                top = Row("dir", src=src.base_path)
            else:
                top = Row("file", src=src.base_path)
            self._hide(old, changes)
            changes.update(moved)
            changes[new] = top
            self._apply_dropping_blobs(changes)

    def chmod(self, path: str, mode: int) -> None:
        self._need(path)  # PFS has no modes

    def utimens(self, path: str, times) -> None:
        self._need(path)

    # --- commit -------------------------------------------------------------------------------
    @staticmethod
    def _uploaded(path: str, row: Row) -> bool:
        """Whether a commit sends this row (new empty folders and unlinked open files stay local)."""
        return not row.clean and not _hidden(path) and (row.kind != "dir" or row.src is not None)

    def pending_count(self) -> int:
        """Changed paths that a commit would upload."""
        with self._lock:
            return sum(1 for p, r in self.rows.items() if self._uploaded(p, r))

    def changes(self) -> list[Change]:
        """The files a commit would change, sorted by path (folders are implied): each compares
        what the view shows with the base at that path. A renamed file is a delete and an add; a
        file whose content is the base's own file at that path is unchanged."""
        with self._mut:
            with self._lock:
                changed = {p for p, r in self.rows.items() if self._uploaded(p, r)}
            tops = [p for p in changed if not any(a in changed for a in _ancestors(p))]
            new: dict[str, Node] = {}
            old: dict[str, int] = {}
            for top in tops:
                self._view_files(top, new)
                self._base_files(top, old)
            out = []
            for path in sorted(new.keys() | old.keys()):
                node = new.get(path)
                if node is None:
                    out.append(Change(path, DELETED, old[path]))
                    continue
                if node.row is None and node.base_path == path:
                    continue  # the base's own file, untouched
                if node.link is not None:
                    try:
                        _, node = self._follow(path)
                    except OSError:
                        node = None
                size = node.size if node is not None and not node.is_dir else None
                out.append(Change(path, MODIFIED if path in old else ADDED, size))
            return out

    def _view_files(self, path: str, found: dict[str, Node]) -> None:
        """Every file (or link) at or under `path` in the view."""
        node = self._node(path)
        if node is None or _hidden(path):
            return
        if not node.is_dir:
            found[path] = node
            return
        for name in self._list(path, node):
            self._view_files(posixpath.join(path, name), found)

    def _base_files(self, path: str, found: dict[str, int]) -> None:
        """Every file at or under `path` in the base, with its size."""
        entry = self.base.stat(path)
        if entry is None:
            return
        if not entry.is_dir:
            found[path] = entry.size
            return
        for name, e in self.base.list(path).items():
            child = posixpath.join(path, name)
            if e.is_dir:
                self._base_files(child, found)
            else:
                found[child] = e.size

    def discard_paths(self, paths: list[str]) -> None:
        """Revert each path (and what is under it) to the base: a changed file shows the base's
        content again, a deleted one comes back, an added one goes; every other path stays as it
        is. A path inside a deleted, emptied or renamed folder is restored by re-expressing that
        folder's rows per entry, so its other changes stay. Raises OSError(EINVAL) for a path
        under a file the view made from a base folder (discard that file's change instead)."""
        with self._mut:
            for path in paths:
                self._discard_one(norm(path))
        if self.invalidate is not None:
            self.invalidate()

    def _discard_one(self, path: str) -> None:
        if path == "/":
            raise OSError(errno.EINVAL, "discard of / : use discard() to drop every change")
        for a in reversed([a for a in _ancestors(path) if a != "/"]):
            with self._lock:
                row = self.rows.get(a)
            if row is None:
                continue
            if row.kind in ("file", "symlink"):
                raise OSError(errno.EINVAL, f"{path} is inside {a}, which is a file now: discard {a} first")
            base_dir = (e := self.base.stat(a)) is not None and e.is_dir
            if not base_dir:  # the base has nothing under `a`, so nothing at `path` to bring back
                break
            self._expand(a, path[len(a) + 1:].split("/", 1)[0])
        changes: dict[str, Row | None] = {}
        with self._lock:
            for p in self._rows_under(path):
                changes[p] = None
        self._apply_dropping_blobs(changes)
        base_path = self._base_path(path)
        if base_path != path and base_path is not None and self.base.stat(base_path) is not None:
            self._apply({path: Row("gone")})  # still shown from a renamed folder's source: hide it
            self._tidy(path)

    def _tidy(self, path: str) -> None:
        """A renamed folder above `path` that shows no file any more (each hidden by a row) becomes
        what it looks like: new empty folders (local only; over something of the base, the deletion
        of it), without the rows that hid its files, so it is no pending change any more."""
        for a in (a for a in _ancestors(path) if a != "/"):
            with self._lock:
                row = self.rows.get(a)
            if row is None or row.kind != "dir" or row.src is None:
                continue
            files: dict[str, Node] = {}
            self._view_files(a, files)
            if files:
                return
            folders: list[str] = []
            self._view_folders(a, folders)
            with self._lock:
                changes: dict[str, Row | None] = {p: None for p in self._rows_under(a)}
            changes.update({f: Row("dir") for f in folders})
            changes[a] = Row("dir") if self.base.stat(a) is None else Row("emptied")
            self._apply_dropping_blobs(changes)

    def _view_folders(self, path: str, found: list[str]) -> None:
        """Every folder under `path` in the view."""
        node = self._node(path)
        for name, mode in self._list(path, node).items():
            if mode == DIR_MODE:
                found.append(posixpath.join(path, name))
                self._view_folders(found[-1], found)

    def _expand(self, folder: str, keep: str) -> None:
        """Replace `folder`'s row by rows of its entries that show the same, except the entry `keep`,
        which is left to show the base's (the view then takes `folder` itself from the base)."""
        node = self._node(folder)
        with self._lock:
            row = self.rows[folder]
        shown = self._list(folder, node) if node is not None and node.is_dir else {}
        source = row.src if row.kind == "dir" else None
        from_source = self.base.list(source) if source is not None else {}
        changes: dict[str, Row | None] = {folder: None}
        for name in (shown.keys() | self.base.list(folder).keys()) - {keep}:
            child = posixpath.join(folder, name)
            with self._lock:
                if child in self.rows:
                    continue  # a row of its own: stays as it is
            if name in shown and name in from_source:
                kind = "dir" if from_source[name].is_dir else "file"
                changes[child] = Row(kind, src=posixpath.join(source, name))
            else:
                changes[child] = Row("gone")
        self._apply(changes)

    def _follow(self, path: str) -> tuple[str, Node | None]:
        """Where the symlink at `path` leads in this view, following links as the kernel does;
        OSError(EXDEV) for a target outside the view, ELOOP for a cycle."""
        hops = 0
        todo = [c for c in path.split("/") if c]
        here = "/"
        node: Node | None = self._node("/")
        while todo:
            name = todo.pop(0)
            if name == ".":
                continue
            if name == "..":
                if here == "/":
                    raise OSError(errno.EXDEV, "outside the mount")
                here = _parent(here)
                node = self._node(here)
                continue
            here = posixpath.join(here, name)
            node = self._node(here)
            if node is None or node.link is None:
                if node is None or (todo and not node.is_dir):
                    return here, None
                continue
            hops += 1
            if hops > MAX_LINK_HOPS:
                raise OSError(errno.ELOOP, "too many levels of symbolic links")
            target = node.link
            if target.startswith("/"):
                inside = self._view_path(target)
                if inside is None:
                    raise OSError(errno.EXDEV, "outside the mount")
                here, target = "/", inside
            else:
                here = _parent(here)
            todo[:0] = [c for c in target.split("/") if c]
            node = self._node(here)
        return here, node

    def _link_target(self, path: str) -> tuple[Node | None, str | None]:
        """The file a symlink leads to, or why it cannot be committed (None, reason)."""
        try:
            _, node = self._follow(path)
        except OSError as e:
            return None, {errno.EXDEV: "it leads outside the mount", errno.ELOOP: "it is a loop"}.get(e.errno, str(e))
        if node is None:
            return None, "it is dangling (nothing is there)"
        if node.is_dir:
            return None, "it leads to a folder"
        return node, None

    def _copies_of_links(self, plan: list[tuple[str, Row]]) -> list[tuple[str, Row]]:
        """`plan` with each symlink as the row it is committed as, a copy of the file it leads to;
        CommitFailed naming every link that cannot be."""
        out, refused = [], []
        for p, r in plan:
            if r.kind == "symlink":
                node, why = self._link_target(p)
                if why is not None:
                    refused.append(f"{cut(p)} -> {cut(r.src)} ({why})")
                    continue
                r = Row("file", node.row.blob) if node.row is not None and node.row.blob is not None \
                    else Row("file", src=node.base_path)
            out.append((p, r))
        if refused:
            listed = ", ".join(refused[:LINKS_LISTED]) + (f" and {len(refused) - LINKS_LISTED} more"
                                                          if len(refused) > LINKS_LISTED else "")
            raise CommitFailed(f"symbolic link{'s' if len(refused) > 1 else ''} {listed} cannot be "
                               "committed: only links to files of the same mount are committed (as copies). "
                               "Changes kept.")
        return out

    def _requests(self, plan: list[tuple[str, Row]], on_base: list[bool]):
        """The stream of a commit; ``on_base`` is [True] once the commit is known to start from the
        base itself (see `_send`)."""
        copies = {p for p, r in plan if r.src is not None and r.kind in ("dir", "file")}
        for path, row in plan:
            self._stop_if_closing()
            if row.kind == "dir" and row.src is None:  # a new folder over nothing: nothing to send
                continue
            # Every other change replaces the path: the branch may have a file there that the base
            # had not (PFS would append to it), or the commit may be the same one again after a crash.
            if row.kind in ("gone", "emptied"):
                yield modify.delete(path)
            else:
                yield from self._replace(path, row, delete=not (on_base and self._empty_at(path, copies)),
                                         sent=self._stop_if_closing)

    def _empty_at(self, path: str, copies: set[str]) -> bool:
        """Whether a commit started from the base has nothing at `path` when its stream gets there:
        the base has nothing there as far as is known without a call (the writes looked it up; a
        call per path would cost more than the DeleteFile it spares), and no copy earlier in the
        stream (a renamed folder, a copied base file: sorted parents first) put something at it or
        above it."""
        if path in copies or any(a in copies for a in _ancestors(path)):
            return False
        return self.base.known_absent(path)

    def _replace(self, path: str, row: Row, data: bytes | None = None, sent=None, delete: bool = True):
        """The requests that make `path` hold a file row's content (`data`: its inline content, read
        already; `sent`: told of each chunk of a blob file; `delete`: False where the commit is known
        to have nothing at `path`); OSError before any request if its blob is gone."""
        if row.blob is None:
            yield from modify.replace_with_copy(path, pfs.File(commit=self.base.commit, path=row.src))
        elif data is not None or (
                (data := self.journal.inline_data(row.blob) if row.blob in self._inline else None) is not None):
            yield from modify.replace_with_bytes(path, data, delete=delete)
        else:
            yield from modify.replace_with_file(path, self.journal.blob_path(row.blob), sent=sent, delete=delete)

    @staticmethod
    def _plain_file(path: str, row: Row) -> bool:
        """A file row a commit sends as its content alone (a blob, or a copy of a base file)."""
        return row.kind == "file" and not row.clean and not _hidden(path)

    def _staged_size(self, row: Row) -> int:
        """The size of a file row's blob (0 for a copy of a base file, or a blob that is gone)."""
        if row.blob is None:
            return 0
        info = self._inline.get(row.blob)
        if info is not None:
            return info.size
        try:
            return os.stat(self.journal.blob_path(row.blob)).st_size
        except OSError:
            return 0

    def _plan(self) -> list[tuple[str, Row]]:
        """The rows a commit sends, sorted by path."""
        with self._lock:
            return sorted((p, r) for p, r in self.rows.items() if (not r.clean or r.kind == "symlink") and not _hidden(p))

    def review_token(self) -> str:
        """What a commit would send now, as a token: a commit given it sends exactly that or nothing."""
        with self._mut:
            return self._fingerprint(self._plan())

    def commit(self, description: str = "", review: str | None = None) -> str | None:
        """Upload every change as one commit on the branch, with ``description``; returns its id
        (None: nothing to do).

        pfs.commits makes it all or nothing: a failure leaves the branch as it was and the changes
        staged. The started commit is noted in the journal first, so a commit a kill interrupted
        before its finish is dropped by the next one (pachd starts no commit over an open head), and
        one that finished although its attempt failed is taken as this commit, not made twice.
        With ``review`` (a `review_token`), nothing is committed unless the changes are still those.
        """
        with self._mut, self._upload.paused(), self.journal.held():
            plan = self._plan()
            fingerprint = self._fingerprint(plan)
            if review is not None and review != fingerprint:
                raise ChangedSinceReview("the files changed since they were reviewed (a program wrote to the mount "
                                         "meanwhile): review them again; nothing was committed")
            if not any(self._uploaded(p, r) for p, r in plan):
                return None
            sets, rest = self._upload.plan(plan, self.base_commit_id)
            where = f"{self.project}/{self.repo}@{self.branch}"
            branch = pfs.Branch(repo=make_commit(self.project, self.repo, "").repo, name=self.branch)
            try:
                client = require_client(self.client_fn, f"commit to {where}")
                head = landed = self._landed_before(client, fingerprint)
                if landed is None:
                    try:
                        head = self._send(client, branch, rest, sets, description, fingerprint)
                    except (*RPC_ERRORS, OSError, sqlite3.Error) as e:
                        if not sets:
                            raise
                        log.warning("commit to %s with %d uploaded file sets failed (%s): committing again without "
                                    "them", where, len(sets), errors.details(e))
                        self._upload.forget()
                        head = self._send(client, branch, plan, [], description, fingerprint)
            except (*RPC_ERRORS, OSError, sqlite3.Error) as e:
                reason = e.strerror if isinstance(e, OSError) and e.strerror else errors.details(e)
                reason = reason.removeprefix(f"commit to {where}: ")  # (require_client's words start so)
                raise CommitFailed(f"commit to {where} failed, changes kept: {reason}") from None
            if landed is not None:
                log.info("commit %s to %s had landed although its attempt failed: its %d changes are not sent again",
                         landed, where, len(plan))
            else:
                log.info("committed %d changes to %s as %s (%d of them uploaded ahead in %d file sets)",
                         len(plan), where, head, len(plan) - len(rest), len(sets))
            self._upload.forget()
            self._reset(head)
        if self.invalidate is not None:  # outside the lock: the kernel may wait for a write that waits for it
            self.invalidate()
        return head

    def _fingerprint(self, plan: list[tuple[str, Row]]) -> str:
        """What a commit of `plan` sends, as a digest: its rows and their content's size and mtime."""
        h = hashlib.sha256()
        for p, r in plan:
            if r.blob is None:
                content = None
            elif (info := self._inline.get(r.blob)) is not None:
                content = (info.size, info.mtime)
            else:
                try:
                    st = os.stat(self.journal.blob_path(r.blob))
                    content = (st.st_size, st.st_mtime_ns)
                except OSError:
                    content = "gone"
            h.update(repr((p, r.kind, r.blob, r.src, content)).encode())
        return h.hexdigest()

    def _landed_before(self, client, fingerprint: str) -> str | None:
        """The commit an earlier attempt started with exactly these changes, if it finished without
        error although that attempt failed (its finish was answered too late, or a kill came before
        the journal heard of it): committing again would make a second, identical commit."""
        started = self.journal.meta(OPEN_COMMIT)
        if not started or self.journal.meta(OPEN_PLAN) != fingerprint:
            return None
        try:
            info = client.pfs.inspect_commit(commit=make_commit(self.project, self.repo, started))
        except RPC_ERRORS as e:
            if errors.is_not_found(e):
                return None
            raise
        if commits.timestamp_set(info.finished) and not info.error:
            return started
        return None

    def _send(self, client, branch: pfs.Branch, plan: list[tuple[str, Row]], sets: list[str],
              description: str, fingerprint: str) -> str:
        """One commit: the file sets added in order, then `plan` (symbolic links as copies) in one
        stream; a commit an earlier attempt left open is dropped first."""
        if interrupted := self.journal.meta(OPEN_COMMIT):
            commits.drop_if_open(client, pfs.Commit(id=interrupted, branch=branch, repo=branch.repo))
        plan = self._copies_of_links(plan)
        on_base: list[bool] = []

        def started(new: pfs.Commit) -> None:
            self.journal.set_meta(OPEN_PLAN, fingerprint)
            self.journal.set_meta(OPEN_COMMIT, new.id)
            # The commit's parent is the base the rows overlay (nobody committed since, and this is
            # not a recommit after a crash): a path the base lacks is empty in it, and the stream
            # needs no DeleteFile there (half the requests of a commit of new files).
            parent = getattr(client.pfs.inspect_commit(commit=new).parent_commit, "id", "") or ""
            if parent == (self.base_commit_id or ""):
                on_base.append(True)

        return commits.commit(client, branch, self._requests(plan, on_base), description=description,
                              file_sets=sets, started=started).id

    def _reset(self, base_commit_id: str | None) -> None:
        """Drop the staged rows (the base now has them), except open files, files unlinked while
        open, symbolic links, and a new empty row for every folder that was seen and is not in the
        new base."""
        with self._lock:
            rows = dict(self.rows)
            open_blobs = {b for b, n in self._open.items() if n > 0}
        # A folder can vanish only where this commit removed something or made a folder of its own.
        maybe_emptied = {a for p, r in rows.items() if r.kind in ("gone", "dir", "emptied")
                         for a in (p, *_ancestors(p)) if a != "/"}
        seen = {p for p in maybe_emptied if (n := self._node(p)) is not None and n.is_dir}
        self.base = CommitTree(self.client_fn, self.project, self.repo, base_commit_id, self.reader, probe=False)
        changes: dict[str, Row | None] = {}
        for p, r in rows.items():
            if _hidden(p):
                changes[p] = r if r.blob else None  # a base file cannot follow the base to the next commit
            elif r.kind == "file" and r.blob in open_blobs:
                changes[p] = Row("file", r.blob, clean=True)
            elif r.kind == "symlink":
                changes[p] = Row("symlink", src=r.src, clean=True)
            else:
                changes[p] = None
        for p in seen:
            if not self._base_has(p, unknown=True):
                changes[p] = Row("dir")
        # The rows and the base they are relative to change together: a kill -9 in between must not
        # leave the old rows over the new base.
        self._apply_dropping_blobs(changes, meta={"base_commit": base_commit_id or "", OPEN_COMMIT: "", OPEN_PLAN: ""})

    def _base_has(self, path: str, unknown: bool) -> bool:
        """Whether the base commit has something at `path`; `unknown` when that cannot be told."""
        try:
            return self.base.stat(path) is not None
        except OSError:
            return unknown

    def discard(self) -> None:
        """Forget every staged change; the view shows the base again."""
        with self._mut:
            with self._lock:
                changes = {p: None for p in self.rows if not _hidden(p)}
            self._upload.forget()
            self._apply_dropping_blobs(changes)
        if self.invalidate is not None:
            self.invalidate()

    def _stop_if_closing(self, _sent: int = 0) -> None:
        if self._closing.is_set():
            raise CommitFailed(f"commit to {self.project}/{self.repo}@{self.branch} stopped: the mount is closing "
                               "(the daemon is stopping); changes kept for the next start")

    def close(self) -> None:
        """Close the journal; a commit in progress stops at its next chunk and is dropped (its changes
        stay staged), so a daemon asked to stop does not wait for a long upload."""
        self._closing.set()
        self._upload.close()
        with self._mut:
            self.journal.close()


def _ancestors(path: str):
    while path != "/":
        path = _parent(path)
        yield path
