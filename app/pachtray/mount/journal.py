"""The staging journal of a rw view: its rows, its meta and the content of its small files.

Every change is first one record appended to a log file (`ops-<n>.log`: one write() per change, so
it survives kill -9 the moment the call returns), and a thread moves the logged changes into
`journal.sqlite` in big transactions. One SQLite transaction per change cost a small file's
create and write ~95 µs of the daemon's CPU, most of a rw mount's time per file (docs/benchmarks.md).

What this keeps:
- kill -9: every change whose call returned is in a log or in SQLite; on open, the logs left are
  applied in order (an applied change applied again gives the same state: each sets or deletes
  keys), then deleted.
- power loss: as SQLite's WAL with synchronous=NORMAL, recent changes may be lost, and what
  survives is a prefix of them: a log is synced before the next one is started, records carry a
  checksum and replay stops at the first bad one, and a log is deleted only after SQLite has its
  changes durably. `sync()` (a program's fsync) makes everything so far durable.
- reads see every change: the content and meta the applier has not moved yet are kept in memory.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import marshal
import os
import re
import sqlite3
import struct
import threading
import time
import zlib
from pathlib import Path

log = logging.getLogger(__name__)

APPLY_OPS = 16384  # logged changes that make the applier move them into SQLite
APPLY_BYTES = 16 * 1024 * 1024  # (or this much logged content)
APPLY_IDLE = 0.3  # seconds without a change after which it moves what there is
_RECORD = struct.Struct("<II")  # payload length, crc32 of the payload; the payload is marshal'ed
_LOG_NAME = re.compile(r"ops-(\d+)\.log")


class Journal:
    """The rows, meta and inline blobs of one staging dir; see the module docstring.

    A blob is the content of one file: a row of the `inline` table while the file is small (no
    file to create: on ext4 that cost 20-200 µs, more than all the rest of writing a small file),
    else the file `files/<blob>`. The `inline` row is the truth: a blob becomes a file by writing
    the file first and then deleting its row. Journals from before the `inline` table load as they
    are (every blob a file).
    """

    def __init__(self, staging_dir: str | os.PathLike):
        self.dir = Path(staging_dir)
        self.files = self.dir / "files"
        self.files.mkdir(parents=True, exist_ok=True)
        self._files = str(self.files)
        self.syncs = 0
        self.db = self._connect()  # reads (under _lock)
        self.db.execute("CREATE TABLE IF NOT EXISTS rows (path TEXT PRIMARY KEY, kind TEXT NOT NULL, blob TEXT,"
                        " src TEXT, clean INTEGER NOT NULL DEFAULT 0)")
        self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        self.db.execute("CREATE TABLE IF NOT EXISTS inline (blob TEXT PRIMARY KEY, data BLOB NOT NULL,"
                        " mtime REAL NOT NULL)")
        self._writer = self._connect()  # the applier's; FULL: a log goes only once SQLite has it durably
        self._writer.execute("PRAGMA synchronous=FULL")
        self._writer.execute("PRAGMA wal_autocheckpoint=0")  # (checkpoints run after each application)
        self._lock = threading.RLock()  # the log, the pending changes, the overlay and reads
        self._apply_lock = threading.Lock()  # one application at a time
        self._pending: list[tuple] = []  # logged changes not yet in SQLite, in order
        self._pending_bytes = 0
        self._seq = 0  # changes logged so far
        self._blobs: dict[str, tuple[int, tuple[bytes, float] | None]] = {}  # blob -> (seq, (data, mtime) or gone)
        self._metas: dict[str, tuple[int, str | None]] = {}
        self._last_change = time.monotonic()
        self._holds = 0  # `held()` blocks under way
        logs = self._logs()
        self._done_logs: list[str] = []  # logs whose changes SQLite may lack
        self._number = logs[-1][0] + 1 if logs else 0
        if logs:
            self._replay([p for _, p in logs])
        self._log_path, self._fd = self._open_log()
        self._log_size = 0
        self._due = threading.Condition(self._lock)
        self._closing = False
        self._applier = threading.Thread(target=self._applies, name="staging-journal", daemon=True)
        self._applier.start()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.dir / "journal.sqlite", check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    # --- the log --------------------------------------------------------------------------------
    def _logs(self) -> list[tuple[int, Path]]:
        found = [(int(m.group(1)), p) for p in self.dir.iterdir() if (m := _LOG_NAME.fullmatch(p.name))]
        return sorted(found)

    def _open_log(self) -> tuple[str, int]:
        """A new, empty log whose name is on disk (the folder synced): a later fdatasync of it is enough."""
        path = str(self.dir / f"ops-{self._number}.log")
        self._number += 1
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
        try:
            folder = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)
        except OSError:
            os.close(fd)
            os.unlink(path)
            raise
        return path, fd

    def _replay(self, paths: list[str]) -> None:
        """Apply the logs a kill left (in order, up to the first torn or damaged record), then delete them."""
        ops: list[tuple] = []
        for path in paths:
            data = Path(path).read_bytes()
            pos = 0
            while pos + _RECORD.size <= len(data):
                size, crc = _RECORD.unpack_from(data, pos)
                payload = data[pos + _RECORD.size:pos + _RECORD.size + size]
                if len(payload) != size or zlib.crc32(payload) != crc:
                    break
                ops.append(marshal.loads(payload))
                pos += _RECORD.size + size
            if pos != len(data):
                log.warning("staging journal %s: %d bytes at the end of %s are incomplete; the changes"
                            " before them are kept", self.dir, len(data) - pos, path)
                break
        _apply_ops(self._writer, ops)
        for path in paths:
            os.unlink(path)

    def _append(self, op: tuple) -> int:
        """Log one change (caller holds _lock); its sequence number. A failed write leaves no part of it."""
        payload = marshal.dumps(op)
        record = _RECORD.pack(len(payload), zlib.crc32(payload)) + payload
        try:
            written = os.write(self._fd, record)
            if written != len(record):
                raise OSError(errno.ENOSPC, "staging journal: short write")
        except OSError:
            try:
                os.ftruncate(self._fd, self._log_size)
            except OSError as e:
                log.warning("staging journal %s: cannot cut a failed record: %s", self.dir, e)
            raise
        self._log_size += len(record)
        self._pending.append(op)
        self._pending_bytes += _op_bytes(op)
        self._seq += 1
        self._last_change = time.monotonic()
        if len(self._pending) in (1, APPLY_OPS) or self._pending_bytes >= APPLY_BYTES:
            self._due.notify()  # (the first starts the idle timer)
        return self._seq

    # --- changes --------------------------------------------------------------------------------
    def write(self, changes: dict, meta: dict[str, str] | None = None,
              put: dict[str, tuple[bytes, float]] | None = None, drop=()) -> None:
        """Apply {path: row or None (delete)}, `meta`, the inline blobs `put` ({blob: (content,
        mtime)}) and the deletion of the inline blobs `drop`, all or nothing."""
        rows = [(p,) if r is None else (p, r.kind, r.blob, r.src, int(r.clean)) for p, r in changes.items()]
        metas = list(meta.items()) if meta else []
        puts = [(b, bytes(data), mtime) for b, (data, mtime) in put.items()] if put else []
        drops = list(drop)
        with self._lock:
            seq = self._append(("w", rows, metas, puts, drops))
            for key, value in metas:
                self._metas[key] = (seq, value)
            for blob, data, mtime in puts:
                self._blobs[blob] = (seq, (data, mtime))
            for blob in drops:
                self._blobs[blob] = (seq, None)

    def set_meta(self, key: str, value: str | None) -> None:
        self.write({}, meta={key: value})

    def set_inline(self, blob: str, content: bytes, mtime: float) -> None:
        """Replace an inline blob's content."""
        content = bytes(content)
        with self._lock:
            seq = self._append(("i", blob, content, mtime))
            if (found := self._blobs.get(blob)) is None or found[1] is not None:
                self._blobs[blob] = (seq, (content, mtime))

    def sync(self) -> None:
        """Make every change so far durable against power loss (SQLite's are already)."""
        with self._lock:
            try:
                os.fdatasync(self._fd)
            except OSError as e:
                raise OSError(errno.EIO, f"staging journal: the sync could not complete ({e.strerror})") from None
            self.syncs += 1

    # --- reads ----------------------------------------------------------------------------------
    def load(self) -> dict[str, tuple[str, str | None, str | None, bool]]:
        """path -> (kind, blob, src, clean) of every row (all changes applied first)."""
        self.apply()
        with self._lock:
            return {p: (k, b, s, bool(c)) for p, k, b, s, c in self.db.execute(
                "SELECT path, kind, blob, src, clean FROM rows")}

    def load_inline(self) -> dict[str, tuple[int, float]]:
        """blob -> (size, mtime) of the blobs held in the journal."""
        self.apply()
        with self._lock:
            return {b: (n, m) for b, n, m in self.db.execute("SELECT blob, length(data), mtime FROM inline")}

    def meta(self, key: str) -> str | None:
        with self._lock:
            if (found := self._metas.get(key)) is not None:
                return found[1]
            row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def inline_data(self, blob: str) -> bytes | None:
        """An inline blob's content (None: not inline, or gone)."""
        with self._lock:
            if (found := self._blobs.get(blob)) is not None:
                return None if found[1] is None else found[1][0]
            row = self.db.execute("SELECT data FROM inline WHERE blob=?", (blob,)).fetchone()
        return row[0] if row else None

    def inline_many(self, blobs: list[str]) -> dict[str, bytes]:
        """The content of those of `blobs` that are inline (a query per 500, not per blob)."""
        found: dict[str, bytes] = {}
        rest = []
        with self._lock:
            for blob in blobs:
                if (hit := self._blobs.get(blob)) is None:
                    rest.append(blob)
                elif hit[1] is not None:
                    found[blob] = hit[1][0]
        for i in range(0, len(rest), 500):
            part = rest[i:i + 500]
            with self._lock:
                rows = self.db.execute(f"SELECT blob, data FROM inline WHERE blob IN ({','.join('?' * len(part))})",
                                       part).fetchall()
                for b, d in rows:
                    hit = self._blobs.get(b)  # (changed meanwhile: the newer content)
                    if hit is None:
                        found[b] = d
                    elif hit[1] is not None:
                        found[b] = hit[1][0]
        return found

    def inline_read(self, blob: str, size: int, offset: int) -> bytes | None:
        with self._lock:
            if (found := self._blobs.get(blob)) is not None:
                return None if found[1] is None else found[1][0][offset:offset + size]
            row = self.db.execute("SELECT substr(data, ?, ?) FROM inline WHERE blob=?",
                                  (offset + 1, size, blob)).fetchone()
        return row[0] if row else None

    @contextlib.contextmanager
    def held(self):
        """Changes stay in the log meanwhile (unless past APPLY_OPS or APPLY_BYTES): a commit's
        stream gets the CPU their move into SQLite would take."""
        with self._lock:
            self._holds += 1
        try:
            yield
        finally:
            with self._lock:
                self._holds -= 1
                self._last_change = time.monotonic()  # (idle from now on)
                self._due.notify()

    # --- moving the log into SQLite ------------------------------------------------------------
    def apply(self) -> None:
        """Move every logged change into SQLite, durably, then delete the logs that held them."""
        with self._apply_lock:
            with self._lock:
                if not self._pending and not self._done_logs:
                    return
            new_path, new_fd = self._open_log()  # (only this method moves to a new log)
            try:
                os.fdatasync(self._fd)  # (most of it, before holding up changes for the rest)
                with self._lock:
                    os.fdatasync(self._fd)  # a log is whole on disk before the next one has anything
                    old_fd = self._fd
                    self._done_logs.append(self._log_path)
                    self._log_path, self._fd, self._log_size = new_path, new_fd, 0
                    batch, upto, logs = self._pending, self._seq, list(self._done_logs)
                    self._pending, self._pending_bytes = [], 0
            except OSError:
                os.close(new_fd)
                os.unlink(new_path)
                raise
            try:
                os.close(old_fd)
            except OSError:
                pass
            try:
                _apply_ops(self._writer, batch)
            except BaseException:
                with self._lock:  # kept in memory and in their logs; the next application retries
                    self._pending[:0] = batch
                    self._pending_bytes += sum(_op_bytes(op) for op in batch)
                raise
            for path in logs:
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
            with self._lock:
                self._done_logs = [p for p in self._done_logs if p not in logs]
                self._blobs = {b: v for b, v in self._blobs.items() if v[0] > upto}
                self._metas = {k: v for k, v in self._metas.items() if v[0] > upto}
            try:
                self._writer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error as e:
                log.warning("checkpoint of %s failed: %s", self.dir, e)

    def _applies(self) -> None:
        failing = False
        while True:
            with self._lock:
                if not self._closing:
                    self._due.wait(APPLY_IDLE if self._pending else None)
                if self._closing:
                    return
                idle = time.monotonic() - self._last_change >= APPLY_IDLE
                due = len(self._pending) >= APPLY_OPS or self._pending_bytes >= APPLY_BYTES
                if not self._pending or not (due or (idle and not self._holds)):
                    continue
            try:
                self.apply()
                failing = False
            except (sqlite3.Error, OSError) as e:  # (a full disk: the changes stay logged)
                if not failing:
                    log.warning("staging journal %s: cannot move changes into SQLite yet: %s", self.dir, e)
                failing = True
                time.sleep(1)

    # --- blob files -----------------------------------------------------------------------------
    def blob_path(self, blob: str) -> str:
        return f"{self._files}/{blob}"

    @staticmethod
    def new_id() -> str:
        return os.urandom(16).hex()

    def new_blob(self) -> str:
        """A new, empty blob file."""
        blob = self.new_id()
        fd = os.open(self.blob_path(blob), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        os.close(fd)
        return blob

    def drop_blob(self, blob: str) -> None:
        """Delete a blob's file (an inline blob goes with `write(drop=...)`)."""
        try:
            os.unlink(self.blob_path(blob))
        except FileNotFoundError:
            pass

    def close(self) -> None:
        if self._fd < 0:
            return
        with self._lock:
            self._closing = True
            self._due.notify()
        self._applier.join(30)
        try:
            self.apply()
            os.unlink(self._log_path)  # (empty: everything is in SQLite)
        except (sqlite3.Error, OSError) as e:  # the logs stay: the next open applies them
            log.warning("staging journal %s: changes left in its log for the next start: %s", self.dir, e)
        finally:
            os.close(self._fd)
            self._fd = -1
        self._writer.close()
        self.db.close()  # (the last connection to close checkpoints the rest)


def _op_bytes(op: tuple) -> int:
    return sum(len(p[1]) for p in op[3]) if op[0] == "w" else len(op[2])


def _apply_ops(db: sqlite3.Connection, ops: list[tuple]) -> None:
    """Logged changes into SQLite, in order, in one transaction."""
    if not ops:
        return
    run, many = db.execute, db.executemany
    run("BEGIN IMMEDIATE")
    try:
        for op in ops:
            if op[0] == "i":
                run("UPDATE inline SET data=?, mtime=? WHERE blob=?", (op[2], op[3], op[1]))
                continue
            _, rows, metas, puts, drops = op
            if metas:
                many("INSERT OR REPLACE INTO meta VALUES (?, ?)", metas)
            for put in puts:
                run("INSERT OR REPLACE INTO inline VALUES (?, ?, ?)", put)
            for row in rows:
                if len(row) == 1:
                    run("DELETE FROM rows WHERE path=?", row)
                else:
                    run("INSERT OR REPLACE INTO rows VALUES (?, ?, ?, ?, ?)", row)
            for blob in drops:
                run("DELETE FROM inline WHERE blob=?", (blob,))
        run("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
