"""Storage of the local server: metadata in SQLite (WAL), file contents content-addressed.

File trees are per-commit change sets: a commit's `entries` rows hold only the files and
directories it changed (tombstones for deletions). Reading a commit resolves each path to the
newest row among a short list of layers (see `Store._seal`), so a commit that changes one file of
a 100,000-file repo writes one file row plus one row per ancestor directory; directory rows carry
the aggregate size and file count, so listing and sizing never scan subtrees. Parents are always
finished before a child starts, so the layers a reader uses never change under it.

Writes of one ModifyFile stream are applied in one short SQLite transaction after their large
blobs are on disk, so a reader sees all of a stream's changes or none of them.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import io
import json
import os
import sqlite3
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pachtray.local.rpc import already_exists, not_found, precondition, unknown

SCHEMA = """
CREATE TABLE IF NOT EXISTS projects(
  name TEXT PRIMARY KEY, description TEXT NOT NULL DEFAULT '', created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS repos(
  id INTEGER PRIMARY KEY, project TEXT NOT NULL, name TEXT NOT NULL, type TEXT NOT NULL,
  description TEXT NOT NULL DEFAULT '', created REAL NOT NULL, UNIQUE(project, name, type));
CREATE TABLE IF NOT EXISTS commits(
  seq INTEGER PRIMARY KEY AUTOINCREMENT, repo_id INTEGER NOT NULL, id TEXT NOT NULL, branch TEXT NOT NULL,
  parent_seq INTEGER, origin INTEGER NOT NULL, description TEXT NOT NULL DEFAULT '',
  started REAL NOT NULL, finishing REAL, finished REAL, error TEXT NOT NULL DEFAULT '',
  UNIQUE(repo_id, id));
CREATE INDEX IF NOT EXISTS commits_parent ON commits(parent_seq);
CREATE TABLE IF NOT EXISTS branches(
  repo_id INTEGER NOT NULL, name TEXT NOT NULL, head_seq INTEGER NOT NULL,
  PRIMARY KEY(repo_id, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS entries(
  commit_seq INTEGER NOT NULL, dir TEXT NOT NULL, name TEXT NOT NULL, is_dir INTEGER NOT NULL,
  blob TEXT, size INTEGER NOT NULL, nfiles INTEGER NOT NULL, deleted INTEGER NOT NULL,
  PRIMARY KEY(commit_seq, dir, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS commit_layers(
  seq INTEGER PRIMARY KEY, layers TEXT NOT NULL, nrows INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS inline_blobs(hash TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS role_bindings(
  resource_type INTEGER NOT NULL, resource TEXT NOT NULL, principal TEXT NOT NULL, role TEXT NOT NULL,
  PRIMARY KEY(resource_type, resource, principal, role)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tokens(
  hash TEXT PRIMARY KEY, subject TEXT NOT NULL, expiration REAL);
CREATE TABLE IF NOT EXISTS filesets(id TEXT PRIMARY KEY, expires REAL NOT NULL, ops TEXT NOT NULL);
"""

ORIGIN_USER = 1
ORIGIN_AUTO = 2
CHUNK = 1 << 20
INLINE_MAX = 64 << 10
DISK_RESERVE = 1 << 30  # bytes of the data dir's disk a file being taken in leaves free, for everything else
SPACE_CHECK_EVERY = 64 << 20  # bytes written between two looks at the free space
FILESET_TTL = 600.0  # seconds a temporary file set lives unless renewed (pachd's DefaultTTL)
FILESET_TTL_MAX = 1800.0  # the longest renewal pachd allows (its maxTTL)


def new_commit_id() -> str:
    """32 hex digits of a UUID4, the shape pachd (and the SDK's URI parser) expect."""
    return uuid.uuid4().hex


@dataclass(frozen=True)
class RepoRow:
    id: int
    project: str
    name: str
    type: str
    description: str
    created: float

    def __str__(self) -> str:
        base = f"{self.project}/{self.name}"
        return base if self.type == "user" else f"{base}.{self.type}"


@dataclass(frozen=True)
class CommitRow:
    seq: int
    repo_id: int
    id: str
    branch: str
    parent_seq: int | None
    origin: int
    description: str
    started: float
    finishing: float | None
    finished: float | None
    error: str


@dataclass(frozen=True)
class Entry:
    """A resolved path: a file (blob) or a directory (aggregate size and file count)."""

    path: str  # "/a/b.txt" for files, "/a/" for directories, "/" for the root
    is_dir: bool
    blob: str | None
    size: int
    nfiles: int


def split_path(path: str) -> tuple[str, str]:
    """Clean absolute path -> (parent dir key, name). Dir keys end in '/'; the root is ("", "")."""
    if path == "/":
        return "", ""
    parent, _, name = path.rpartition("/")
    return parent + "/", name


def dir_key(path: str) -> str:
    """Clean directory path -> the `dir` value of its children's rows."""
    return "/" if path == "/" else path + "/"


def ancestors(path: str) -> Iterator[str]:
    """Directories containing ``path``, innermost first, ending with '/'."""
    while path != "/":
        path = path.rpartition("/")[0] or "/"
        yield path


class BlobWriter:
    """Hashes content as it streams in. Content up to INLINE_MAX stays in memory and is stored in
    SQLite with the commit's metadata (creating a file per small blob would dominate commits of
    many small files); larger content spills to a temp file that `finish()` renames into the store.
    """

    def __init__(self, store: "Store"):
        self.store = store
        self.buffer = bytearray()
        self.file = None
        self.tmp = ""
        self.hasher = hashlib.sha256()
        self.size = 0
        self.next_check = 0

    def write(self, data: bytes) -> None:
        if self.file is None and len(self.buffer) + len(data) > INLINE_MAX:
            fd, self.tmp = tempfile.mkstemp(dir=self.store.tmp_dir)
            self.file = os.fdopen(fd, "wb")
            self.file.write(self.buffer)
            self.buffer = bytearray()
        if self.file is None:
            self.buffer += data
        else:
            if self.size >= self.next_check:
                self._check_space()
            self.file.write(data)
        self.hasher.update(data)
        self.size += len(data)

    def _check_space(self) -> None:
        """Refuse to take the disk's last DISK_RESERVE bytes: a huge file (a sparse one is easy to
        make) would otherwise fill the user's disk before the write fails."""
        st = os.statvfs(self.store.tmp_dir)
        free = st.f_bavail * st.f_frsize
        if free < DISK_RESERVE:
            raise OSError(errno.ENOSPC, f"the local server's disk is nearly full ({free >> 20} MiB free; it keeps "
                                        f"{DISK_RESERVE >> 20} MiB free for the rest of the system)")
        self.next_check = self.size + SPACE_CHECK_EVERY

    def write_blob(self, blob: str, size: int) -> None:
        with self.store.open_blob(blob, size) as f:
            while chunk := f.read(CHUNK):
                self.write(chunk)

    def finish(self) -> tuple[str, int, bytes | None]:
        """(digest, size, inline content or None once the content is a file in the store)."""
        digest = self.hasher.hexdigest()
        if self.file is None:
            return digest, self.size, bytes(self.buffer)
        self.file.close()
        dest = self.store.blob_path(digest)
        if os.path.exists(dest):
            os.unlink(self.tmp)
        else:
            os.replace(self.tmp, dest)
        return digest, self.size, None

    def abort(self) -> None:
        if self.file is not None:
            self.file.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.tmp)


class Store:
    def __init__(self, data_dir: str | os.PathLike):
        self.root = Path(data_dir)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(self.root / "lock", "w")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            raise OSError(f"data dir {self.root} is in use by another local server") from None
        self.blob_dir = self.root / "blobs"
        self.tmp_dir = self.root / "tmp"
        for i in range(256):
            (self.blob_dir / f"{i:02x}").mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        for stale in self.tmp_dir.iterdir():
            stale.unlink()
        self.db_path = self.root / "meta.sqlite"
        self._local = threading.local()
        self.changed = threading.Condition()
        self._commit_locks: dict[int, threading.Lock] = defaultdict(threading.Lock)
        self._gc_lock = threading.Lock()
        self._writers = 0
        self._locks_guard = threading.Lock()
        conn = self.conn()
        conn.executescript(SCHEMA)
        with self.write() as c:
            c.execute("INSERT OR IGNORE INTO projects(name, description, created) VALUES ('default', '', ?)",
                      (time.time(),))
            # Stores written before commits recorded their layers: seal them, parents first.
            for seq, parent, error in c.execute(
                    "SELECT seq, parent_seq, error FROM commits WHERE finishing IS NOT NULL"
                    " AND seq NOT IN (SELECT seq FROM commit_layers) ORDER BY seq").fetchall():
                self._seal(c, seq, parent, error)
        self.expire_filesets()

    def close(self) -> None:
        """Release the data dir (another server may open it afterwards)."""
        self._lock_file.close()

    # --- connections and transactions -------------------------------------------------------
    def conn(self) -> sqlite3.Connection:
        c = getattr(self._local, "conn", None)
        if c is None:
            c = sqlite3.connect(self.db_path, isolation_level=None, timeout=60, check_same_thread=False)
            c.execute("PRAGMA journal_mode=WAL")
            c.execute("PRAGMA synchronous=NORMAL")
            c.execute("PRAGMA busy_timeout=60000")
            self._local.conn = c
        return c

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A short write transaction; waiters are woken after it commits."""
        c = self.conn()
        c.execute("BEGIN IMMEDIATE")
        try:
            yield c
        except BaseException:
            c.execute("ROLLBACK")
            raise
        c.execute("COMMIT")
        with self.changed:
            self.changed.notify_all()

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A consistent snapshot over several statements."""
        c = self.conn()
        c.execute("BEGIN")
        try:
            yield c
        finally:
            c.execute("COMMIT")

    def wait_change(self, timeout: float) -> None:
        with self.changed:
            self.changed.wait(timeout)

    def commit_lock(self, seq: int) -> threading.Lock:
        with self._locks_guard:
            return self._commit_locks[seq]

    # --- blobs --------------------------------------------------------------------------------
    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Marks a write stream in flight: its blobs are not yet referenced, so no garbage collection."""
        with self._gc_lock:
            self._writers += 1
        try:
            yield
        finally:
            with self._gc_lock:
                self._writers -= 1

    def collect_garbage(self) -> int:
        """Delete contents no commit and no live file set refers to (after repos are deleted);
        skipped while writes stream in."""
        with self._gc_lock:
            if self._writers:
                return 0
            c = self.conn()
            held = self._fileset_blobs(c, live=True)
            referenced = {r[0] for r in c.execute(
                "SELECT DISTINCT blob FROM entries WHERE blob IS NOT NULL AND size>?", (INLINE_MAX,))} | held
            removed = 0
            for sub in os.scandir(self.blob_dir):
                for f in os.scandir(sub.path):
                    if f.name not in referenced:
                        os.unlink(f.path)
                        removed += 1
            with self.write() as w:
                unused = [h for (h,) in w.execute("SELECT hash FROM inline_blobs WHERE hash NOT IN"
                                                  " (SELECT blob FROM entries WHERE blob IS NOT NULL)") if h not in held]
                w.executemany("DELETE FROM inline_blobs WHERE hash=?", ((h,) for h in unused))
                removed += len(unused)
            return removed

    # --- temporary file sets (pfs CreateFileSet / AddFileSet / RenewFileSet) --------------------
    def create_fileset(self, ops: list, inline: dict[str, bytes], ttl: float = FILESET_TTL) -> str:
        """Store a file set's operations (see local.filesets) and its small contents; returns its id
        (128 random bits, the shape of pachd's). Its other contents are already blob files."""
        fid = os.urandom(16).hex()
        with self.write() as c:
            c.executemany("INSERT OR IGNORE INTO inline_blobs(hash, data) VALUES (?,?)", inline.items())
            c.execute("INSERT INTO filesets(id, expires, ops) VALUES (?,?,?)",
                      (fid, time.time() + ttl, json.dumps(ops, separators=(",", ":"))))
        return fid

    def fileset(self, fid: str) -> list:
        """A live file set's operations; NOT_FOUND when it is unknown or expired."""
        row = self.conn().execute("SELECT ops FROM filesets WHERE id=? AND expires>?", (fid, time.time())).fetchone()
        if row is None:
            raise not_found(f"file set {fid} not found (unknown, or expired: file sets live {FILESET_TTL:.0f} s"
                            " unless renewed)")
        return json.loads(row[0])

    def renew_fileset(self, fid: str, ttl: float) -> None:
        now = time.time()
        with self.write() as c:
            renewed = c.execute("UPDATE filesets SET expires=? WHERE id=? AND expires>?", (now + ttl, fid, now)).rowcount
        if not renewed:
            self.fileset(fid)  # raises NOT_FOUND

    def expire_filesets(self) -> int:
        """Delete expired file sets and the contents only they held; skipped while writes stream in
        (a stream may be about to refer to a content it found stored). Returns the sets deleted."""
        now = time.time()
        c = self.conn()
        if c.execute("SELECT 1 FROM filesets WHERE expires<=? LIMIT 1", (now,)).fetchone() is None:
            return 0
        with self._gc_lock:
            if self._writers:
                return 0
            dead = self._fileset_blobs(c, live=False, now=now)
            dead -= self._fileset_blobs(c, live=True, now=now)
            dead -= {r[0] for r in c.execute("SELECT DISTINCT blob FROM entries WHERE blob IS NOT NULL")}
            with self.write() as w:
                w.executemany("DELETE FROM inline_blobs WHERE hash=?", ((h,) for h in dead))
                gone = w.execute("DELETE FROM filesets WHERE expires<=?", (now,)).rowcount
            for h in dead:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.blob_path(h))
            return gone

    @staticmethod
    def _fileset_blobs(c: sqlite3.Connection, live: bool, now: float | None = None) -> set[str]:
        """The contents the live (or the expired) file sets refer to."""
        now = time.time() if now is None else now
        found: set[str] = set()
        for (ops,) in c.execute(f"SELECT ops FROM filesets WHERE expires{'>' if live else '<='}?", (now,)):
            found.update(op[2] for op in json.loads(ops) if len(op) > 2)
        return found

    def blob_path(self, digest: str) -> str:
        return os.path.join(self.blob_dir, digest[:2], digest)

    def open_blob(self, digest: str, size: int):
        """A binary file object over the content; where it lives depends only on its size."""
        if size > INLINE_MAX:
            return open(self.blob_path(digest), "rb")
        row = self.conn().execute("SELECT data FROM inline_blobs WHERE hash=?", (digest,)).fetchone()
        if row is None:
            raise FileNotFoundError(f"blob {digest} is missing from the store")
        return io.BytesIO(row[0])

    def put_inline(self, blobs: dict[str, bytes]) -> None:
        """Store small contents ahead of the metadata that will refer to them."""
        with self.write() as c:
            c.executemany("INSERT OR IGNORE INTO inline_blobs(hash, data) VALUES (?,?)", blobs.items())

    def blob_writer(self) -> BlobWriter:
        return BlobWriter(self)

    # --- projects -----------------------------------------------------------------------------
    def create_project(self, name: str, description: str, update: bool) -> None:
        with self.write() as c:
            row = c.execute("SELECT 1 FROM projects WHERE name=?", (name,)).fetchone()
            if row and not update:
                raise already_exists(f"project {name} already exists")
            if row:
                c.execute("UPDATE projects SET description=? WHERE name=?", (description, name))
            else:
                c.execute("INSERT INTO projects(name, description, created) VALUES (?,?,?)",
                          (name, description, time.time()))

    def get_project(self, name: str) -> tuple[str, str, float]:
        row = self.conn().execute("SELECT name, description, created FROM projects WHERE name=?", (name,)).fetchone()
        if row is None:
            raise not_found(f'project "{name}" not found')
        return row

    def list_projects(self) -> list[tuple[str, str, float]]:
        return self.conn().execute("SELECT name, description, created FROM projects ORDER BY name").fetchall()

    def delete_project(self, name: str, force: bool) -> None:
        self.get_project(name)
        repos = self.list_repos({name}, "")
        if repos and not force:
            listing = ", ".join(f"repo {r} still exists" for r in repos)
            raise precondition(f"cannot delete project {name}: {listing}")
        for r in repos:
            self.delete_repo(r)
        with self.write() as c:
            c.execute("DELETE FROM projects WHERE name=?", (name,))
            c.execute("DELETE FROM role_bindings WHERE resource_type=? AND resource=?", (RESOURCE_PROJECT, name))

    # --- repos --------------------------------------------------------------------------------
    def create_repo(self, project: str, name: str, type_: str, description: str, update: bool) -> bool:
        """Create (or with ``update`` describe) a repo; returns True when it was created."""
        with self.write() as c:
            if c.execute("SELECT 1 FROM projects WHERE name=?", (project,)).fetchone() is None:
                raise not_found(f'cannot find project "{project}": project "{project}" not found')
            row = c.execute("SELECT id FROM repos WHERE project=? AND name=? AND type=?",
                            (project, name, type_)).fetchone()
            if row and not update:
                raise already_exists(f"repo {project}/{name} already exists")
            if row:
                c.execute("UPDATE repos SET description=? WHERE id=?", (description, row[0]))
                return False
            c.execute("INSERT INTO repos(project, name, type, description, created) VALUES (?,?,?,?,?)",
                      (project, name, type_, description, time.time()))
            return True

    def get_repo(self, project: str, name: str, type_: str = "user") -> RepoRow:
        row = self.conn().execute(
            "SELECT id, project, name, type, description, created FROM repos WHERE project=? AND name=? AND type=?",
            (project, name, type_ or "user")).fetchone()
        if row is None:
            suffix = "" if type_ in ("", "user") else f".{type_}"
            raise not_found(f"repo {project}/{name}{suffix} not found")
        return RepoRow(*row)

    def list_repos(self, projects: set[str] | None, type_: str) -> list[RepoRow]:
        rows = self.conn().execute(
            "SELECT id, project, name, type, description, created FROM repos ORDER BY created DESC, id DESC").fetchall()
        out = [RepoRow(*r) for r in rows]
        if projects:
            out = [r for r in out if r.project in projects]
        if type_:
            out = [r for r in out if r.type == type_]
        return out

    def delete_repo(self, repo: RepoRow) -> None:
        with self.write() as c:
            seqs = [r[0] for r in c.execute("SELECT seq FROM commits WHERE repo_id=?", (repo.id,))]
            for seq in seqs:
                c.execute("DELETE FROM entries WHERE commit_seq=?", (seq,))
                c.execute("DELETE FROM commit_layers WHERE seq=?", (seq,))
            c.execute("DELETE FROM commits WHERE repo_id=?", (repo.id,))
            c.execute("DELETE FROM branches WHERE repo_id=?", (repo.id,))
            c.execute("DELETE FROM repos WHERE id=?", (repo.id,))
            c.execute("DELETE FROM role_bindings WHERE resource_type=? AND resource=?",
                      (RESOURCE_REPO, f"{repo.project}/{repo.name}"))

    # --- branches -----------------------------------------------------------------------------
    def branch_head(self, repo_id: int, name: str) -> int | None:
        row = self.conn().execute("SELECT head_seq FROM branches WHERE repo_id=? AND name=?", (repo_id, name)).fetchone()
        return row[0] if row else None

    def list_branches(self, repo_id: int) -> list[tuple[str, int]]:
        """(name, head seq) newest-head first, as pachd orders branches."""
        return self.conn().execute(
            "SELECT b.name, b.head_seq FROM branches b JOIN commits c ON c.seq=b.head_seq "
            "WHERE b.repo_id=? ORDER BY c.started DESC, b.name", (repo_id,)).fetchall()

    def set_branch(self, repo_id: int, name: str, head_seq: int | None) -> None:
        """Point a branch at ``head_seq``; None creates the branch with a new empty commit as pachd does."""
        with self.write() as c:
            if head_seq is None:
                if self._branch_head(c, repo_id, name) is not None:
                    return
                head_seq = self._insert_commit(c, repo_id, name, None, ORIGIN_AUTO, "", finished=True)
            c.execute("INSERT OR REPLACE INTO branches(repo_id, name, head_seq) VALUES (?,?,?)",
                      (repo_id, name, head_seq))

    def delete_branch(self, repo_id: int, name: str) -> None:
        with self.write() as c:
            c.execute("DELETE FROM branches WHERE repo_id=? AND name=?", (repo_id, name))

    @staticmethod
    def _branch_head(c: sqlite3.Connection, repo_id: int, name: str) -> int | None:
        row = c.execute("SELECT head_seq FROM branches WHERE repo_id=? AND name=?", (repo_id, name)).fetchone()
        return row[0] if row else None

    # --- commits ------------------------------------------------------------------------------
    _COMMIT_COLS = "seq, repo_id, id, branch, parent_seq, origin, description, started, finishing, finished, error"

    def _insert_commit(self, c: sqlite3.Connection, repo_id: int, branch: str, parent_seq: int | None,
                       origin: int, description: str, finished: bool = False) -> int:
        now = time.time()
        cur = c.execute(
            "INSERT INTO commits(repo_id, id, branch, parent_seq, origin, description, started, finishing, finished)"
            " VALUES (?,?,?,?,?,?,?,?,?)",
            (repo_id, new_commit_id(), branch, parent_seq, origin, description, now,
             now if finished else None, now if finished else None))
        if finished:
            self._seal(c, cur.lastrowid, parent_seq, "")
        return cur.lastrowid

    @staticmethod
    def _sealed(c: sqlite3.Connection, seq: int | None) -> tuple[list[int], int]:
        """A finished commit's layers (newest last) and its own layer's row count."""
        if seq is None:
            return [], 0
        row = c.execute("SELECT layers, nrows FROM commit_layers WHERE seq=?", (seq,)).fetchone()
        if row is None:
            raise unknown(f"commit #{seq} is not finished")
        return [int(x) for x in row[0].split(",") if x], row[1]

    def _seal(self, c: sqlite3.Connection, seq: int, parent_seq: int | None, error: str) -> None:
        """Record which layers a finished commit reads, folding older layers into its own.

        Every commit's own change set is a layer. When a commit finishes, the newest older layer is
        folded into it (rows it lacks are copied in) while that layer is at most twice its size,
        like a binary counter: chains stay O(log n) layers long and each row is copied O(log n)
        times, while one small change to a huge repo copies nothing (the big layer is never folded
        into a small one). Only this commit's own layer is written: ancestors' layers stay shared.
        """
        layers, _ = self._sealed(c, parent_seq)
        nrows = c.execute("SELECT COUNT(*) FROM entries WHERE commit_seq=?", (seq,)).fetchone()[0]
        if not error and nrows:
            while layers:
                older = layers[-1]
                older_rows = c.execute("SELECT nrows FROM commit_layers WHERE seq=?", (older,)).fetchone()[0]
                if nrows * 2 < older_rows:
                    break
                c.execute("INSERT OR IGNORE INTO entries(commit_seq, dir, name, is_dir, blob, size, nfiles, deleted)"
                          " SELECT ?, dir, name, is_dir, blob, size, nfiles, deleted FROM entries WHERE commit_seq=?",
                          (seq, older))
                layers.pop()
                if not layers:  # nothing older: tombstones hide nothing
                    c.execute("DELETE FROM entries WHERE commit_seq=? AND deleted=1", (seq,))
                nrows = c.execute("SELECT COUNT(*) FROM entries WHERE commit_seq=?", (seq,)).fetchone()[0]
            layers.append(seq)
        c.execute("INSERT OR REPLACE INTO commit_layers(seq, layers, nrows) VALUES (?,?,?)",
                  (seq, ",".join(map(str, layers)), nrows))

    def start_commit(self, repo: RepoRow, branch: str, parent_seq: int | None, description: str,
                     origin: int = ORIGIN_USER) -> CommitRow:
        """New open commit on ``branch`` (created if missing); its parent must be finished."""
        with self.write() as c:
            if parent_seq is None and branch:
                parent_seq = self._branch_head(c, repo.id, branch)
            if parent_seq is not None:
                parent = self._commit(c, parent_seq)
                if parent.finishing is None:
                    raise unknown(f"parent commit {repo}@{parent.id} has not been finished")
            seq = self._insert_commit(c, repo.id, branch, parent_seq, origin, description)
            if branch:
                c.execute("INSERT OR REPLACE INTO branches(repo_id, name, head_seq) VALUES (?,?,?)",
                          (repo.id, branch, seq))
            return self._commit(c, seq)

    def finish_commit(self, repo: RepoRow, seq: int, description: str | None, error: str) -> None:
        with self.commit_lock(seq), self.write() as c:
            commit = self._commit(c, seq)
            if commit.finishing is not None:
                raise precondition(f"commit {repo}@{commit.id} has already finished")
            now = time.time()
            if description is not None:
                c.execute("UPDATE commits SET description=? WHERE seq=?", (description, seq))
            c.execute("UPDATE commits SET finishing=?, finished=?, error=? WHERE seq=?", (now, now, error, seq))
            self._seal(c, seq, commit.parent_seq, error)

    def _commit(self, c: sqlite3.Connection, seq: int) -> CommitRow:
        row = c.execute(f"SELECT {self._COMMIT_COLS} FROM commits WHERE seq=?", (seq,)).fetchone()
        if row is None:
            raise not_found(f"commit #{seq} not found")
        return CommitRow(*row)

    def commit(self, seq: int) -> CommitRow:
        return self._commit(self.conn(), seq)

    def commit_by_id(self, repo: RepoRow, commit_id: str) -> CommitRow:
        row = self.conn().execute(f"SELECT {self._COMMIT_COLS} FROM commits WHERE repo_id=? AND id=?",
                                  (repo.id, commit_id)).fetchone()
        if row is None:
            raise not_found(f"commit {repo}@{commit_id} not found")
        return CommitRow(*row)

    def children(self, seq: int) -> list[CommitRow]:
        rows = self.conn().execute(f"SELECT {self._COMMIT_COLS} FROM commits WHERE parent_seq=? ORDER BY seq",
                                   (seq,)).fetchall()
        return [CommitRow(*r) for r in rows]

    def repo_commits(self, repo_id: int, newest_first: bool = True) -> list[CommitRow]:
        order = "DESC" if newest_first else "ASC"
        rows = self.conn().execute(f"SELECT {self._COMMIT_COLS} FROM commits WHERE repo_id=? ORDER BY seq {order}",
                                   (repo_id,)).fetchall()
        return [CommitRow(*r) for r in rows]

    def commits_by_id(self, commit_id: str) -> list[CommitRow]:
        """Every repo's commit with this id (a commit set)."""
        rows = self.conn().execute(f"SELECT {self._COMMIT_COLS} FROM commits WHERE id=? ORDER BY seq",
                                   (commit_id,)).fetchall()
        return [CommitRow(*r) for r in rows]

    def drop_commit(self, repo: RepoRow, seq: int) -> None:
        """Delete a childless commit and its changes; branches on it fall back to its parent, as pachd does."""
        with self.commit_lock(seq), self.write() as c:
            commit = self._commit(c, seq)
            if c.execute("SELECT 1 FROM commits WHERE parent_seq=?", (seq,)).fetchone():
                raise unknown(f"cannot drop a commit that has children: {repo}@{commit.id}")
            branches = [r[0] for r in c.execute("SELECT name FROM branches WHERE head_seq=?", (seq,))]
            for name in branches:
                head = commit.parent_seq
                if head is None:
                    head = self._insert_commit(c, repo.id, name, None, ORIGIN_AUTO, "", finished=True)
                c.execute("UPDATE branches SET head_seq=? WHERE repo_id=? AND name=?", (head, repo.id, name))
            c.execute("DELETE FROM entries WHERE commit_seq=?", (seq,))
            c.execute("DELETE FROM commit_layers WHERE seq=?", (seq,))
            c.execute("DELETE FROM commits WHERE seq=?", (seq,))

    def has_entries(self, seq: int) -> bool:
        """Whether commit ``seq`` has changes of its own (an open commit before its first write has none)."""
        return self.conn().execute("SELECT 1 FROM entries WHERE commit_seq=? LIMIT 1", (seq,)).fetchone() is not None

    def chain(self, seq: int) -> tuple[int, ...]:
        """The layers to read commit ``seq`` from, newest first (see `_seal`).

        An open (or errored) commit reads its own change set over its parent's layers.
        """
        c = self.conn()
        row = c.execute("SELECT c.parent_seq, c.error, l.layers FROM commits c LEFT JOIN commit_layers l"
                        " ON l.seq=c.seq WHERE c.seq=?", (seq,)).fetchone()
        if row is None:
            raise not_found(f"commit #{seq} not found")
        parent, error, layers = row
        if layers is not None and not error:
            return tuple(reversed([int(x) for x in layers.split(",") if x]))
        return (seq, *reversed(self._sealed(c, parent)[0]))

    # --- file trees ---------------------------------------------------------------------------
    def lookup(self, chain: tuple[int, ...], path: str) -> Entry | None:
        d, n = split_path(path)
        q = ",".join("?" * len(chain))
        row = self.conn().execute(
            f"SELECT is_dir, blob, size, nfiles, deleted FROM entries WHERE commit_seq IN ({q}) AND dir=? AND name=?"
            " ORDER BY commit_seq DESC LIMIT 1", (*chain, d, n)).fetchone()
        if path == "/":
            return Entry("/", True, None, row[2] if row else 0, row[3] if row else 0)
        if row is None or row[4]:
            return None
        is_dir = bool(row[0])
        return Entry(path + "/" if is_dir else path, is_dir, row[1], row[2], row[3])

    def list_dir(self, chain: tuple[int, ...], path: str) -> list[Entry]:
        """Children of directory ``path`` (clean), sorted as pachd sorts paths."""
        key = dir_key(path)
        q = ",".join("?" * len(chain))
        rows = self.conn().execute(
            f"SELECT name, is_dir, blob, size, nfiles, deleted, MAX(commit_seq) FROM entries"
            f" WHERE commit_seq IN ({q}) AND dir=? GROUP BY name", (*chain, key)).fetchall()
        out = [Entry(key + name + ("/" if is_dir else ""), bool(is_dir), blob, size, nfiles)
               for name, is_dir, blob, size, nfiles, deleted, _ in rows if not deleted]
        out.sort(key=lambda e: e.path)
        return out

    def walk(self, chain: tuple[int, ...], path: str) -> list[Entry]:
        """Every directory and file strictly below ``path``, sorted by path (dirs before their contents)."""
        key = dir_key(path)
        upper = key[:-1] + chr(ord("/") + 1)
        q = ",".join("?" * len(chain))
        rows = self.conn().execute(
            f"SELECT dir, name, is_dir, blob, size, nfiles, deleted, MAX(commit_seq) FROM entries"
            f" WHERE commit_seq IN ({q}) AND dir>=? AND dir<? GROUP BY dir, name", (*chain, key, upper)).fetchall()
        out = [Entry(d + name + ("/" if is_dir else ""), bool(is_dir), blob, size, nfiles)
               for d, name, is_dir, blob, size, nfiles, deleted, _ in rows if not deleted]
        out.sort(key=lambda e: e.path)
        return out

    def apply(self, repo: RepoRow, seq: int, changes: dict[str, tuple[str, int] | None],
              inline: dict[str, bytes]) -> None:
        """Apply file changes (path -> (blob, size), or None to delete) to open commit ``seq`` atomically.

        ``changes`` is the end state of a stream whose operations were applied in order, so a path
        may turn from a folder into a file (its files deleted, a file written) or back. A file is
        refused only where a folder still holds files in the end, or under a path that is a file.
        Caller holds ``commit_lock(seq)``; file blobs are already in the store, ``inline`` ones are
        written in the same transaction.
        """
        chain = self.chain(seq)
        rows: dict[tuple[str, str], tuple] = {}  # (dir, name) -> row; a later row for a key replaces an earlier
        deltas: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        found: dict[str, Entry | None] = {}

        def lookup(path: str) -> Entry | None:
            if path not in found:
                found[path] = self.lookup(chain, path)
            return found[path]

        written = [path for path, new in changes.items() if new is not None]
        for path, new in changes.items():
            old = lookup(path)
            if old is not None and old.is_dir:  # a folder's files change through their own paths
                old = None
            if old is None and new is None:
                continue
            if old is not None and new is not None and old.blob == new[0]:
                continue
            d, n = split_path(path)
            if new is None:
                rows[(d, n)] = (seq, d, n, 0, None, 0, 0, 1)
            else:
                rows[(d, n)] = (seq, d, n, 0, new[0], new[1], 1, 0)
            dsize = (new[1] if new else 0) - (old.size if old else 0)
            dcount = (1 if new else 0) - (1 if old else 0)
            for a in ancestors(path):
                deltas[a][0] += dsize
                deltas[a][1] += dcount

        def files_in(path: str) -> int:
            """Files under folder ``path`` once the changes are applied (0 if it is not a folder)."""
            old = lookup(path)
            before = old.nfiles if old is not None and old.is_dir else 0
            return before + (deltas[path][1] if path in deltas else 0)

        for path in written:
            if files_in(path) > 0:
                raise unknown(f"cannot write file {path}: a directory exists at that path")
            for d in ancestors(path):
                if d == "/":
                    break
                if d in changes:
                    if changes[d] is not None:
                        raise unknown(f"cannot write file {path}: {d} is a file")
                    continue
                e = lookup(d)
                if e is not None and not e.is_dir:
                    raise unknown(f"cannot write file {path}: {d} is a file")
        for path, (dsize, _) in deltas.items():
            old = lookup(path)
            if old is not None and not old.is_dir:  # a file here before: the folder starts empty
                old = None
            nfiles = files_in(path)
            if nfiles == 0 and changes.get(path) is not None:
                continue  # the folder is gone and a file took its place
            d, n = split_path(path)
            rows[(d, n)] = (seq, d, n, 1, None, (old.size if old else 0) + dsize, nfiles,
                            int(nfiles == 0 and path != "/"))
        with self.write() as c:
            if self._commit(c, seq).finishing is not None:
                raise precondition(f"commit {repo}@{self._commit(c, seq).id} has already finished")
            c.executemany("INSERT OR IGNORE INTO inline_blobs(hash, data) VALUES (?,?)", inline.items())
            c.executemany("INSERT OR REPLACE INTO entries(commit_seq, dir, name, is_dir, blob, size, nfiles, deleted)"
                          " VALUES (?,?,?,?,?,?,?,?)", rows.values())

    # --- auth ---------------------------------------------------------------------------------
    def role_bindings(self, resource_type: int, resource: str) -> dict[str, set[str]]:
        out: dict[str, set[str]] = defaultdict(set)
        for principal, role in self.conn().execute(
                "SELECT principal, role FROM role_bindings WHERE resource_type=? AND resource=?",
                (resource_type, resource)):
            out[principal].add(role)
        return dict(out)

    def set_roles(self, resource_type: int, resource: str, principal: str, roles: Iterable[str]) -> None:
        with self.write() as c:
            c.execute("DELETE FROM role_bindings WHERE resource_type=? AND resource=? AND principal=?",
                      (resource_type, resource, principal))
            c.executemany("INSERT INTO role_bindings(resource_type, resource, principal, role) VALUES (?,?,?,?)",
                          [(resource_type, resource, principal, r) for r in roles])

    def add_token(self, token_hash: str, subject: str, expiration: float | None) -> None:
        with self.write() as c:
            c.execute("INSERT OR REPLACE INTO tokens(hash, subject, expiration) VALUES (?,?,?)",
                      (token_hash, subject, expiration))

    def token(self, token_hash: str) -> tuple[str, float | None] | None:
        return self.conn().execute("SELECT subject, expiration FROM tokens WHERE hash=?", (token_hash,)).fetchone()

    def revoke_token(self, token_hash: str) -> int:
        with self.write() as c:
            return c.execute("DELETE FROM tokens WHERE hash=?", (token_hash,)).rowcount

    def revoke_subject(self, subject: str) -> int:
        with self.write() as c:
            return c.execute("DELETE FROM tokens WHERE subject=?", (subject,)).rowcount


# auth_v2.ResourceType values stored in role_bindings (CLUSTER=1, REPO=2, SPEC_REPO=3, PROJECT=4).
RESOURCE_CLUSTER = 1
RESOURCE_REPO = 2
RESOURCE_PROJECT = 4
