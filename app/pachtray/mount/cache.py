"""Bounded on-disk cache of file chunks, shared by every view of a mount.

Only immutable content is cached (a file in a finished commit), so an entry never goes stale;
it is keyed by (project, repo, commit id, path) and chunk index. Eviction is LRU by bytes.
"""

from __future__ import annotations

import collections
import errno
import hashlib
import itertools
import logging
import os
import threading
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_CACHE_BYTES = 2 * 1024**3


def content_key(project: str, repo: str, commit_id: str, path: str) -> str:
    return hashlib.sha256(f"{project}\0{repo}\0{commit_id}\0{path}".encode()).hexdigest()[:40]


class ChunkCache:
    """Chunks as files `<dir>/<key[:2]>/<key>.<index>`; the index survives restarts."""

    def __init__(self, directory: str | os.PathLike, max_bytes: int = DEFAULT_CACHE_BYTES):
        self.dir = Path(directory)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._lru: collections.OrderedDict[str, int] = collections.OrderedDict()
        self.total = 0
        # Evicted chunks are renamed to `*.gone` at once and deleted by a thread of their own: the
        # delete of a file whose pages are still being written out waits for the disk, and in the
        # writer's path that held a sequential read to the disk's speed once the cache was full.
        self._gone: collections.deque[Path] = collections.deque()
        self._deleter: threading.Thread | None = None
        self._tombstones = itertools.count()
        self.dir.mkdir(parents=True, exist_ok=True)
        self._load()

    def _load(self) -> None:
        found = []
        for sub in self.dir.iterdir():
            if not sub.is_dir():
                continue
            for f in sub.iterdir():
                if f.name.endswith((".tmp", ".gone")):
                    f.unlink(missing_ok=True)
                    continue
                st = f.stat()
                found.append((st.st_atime, f.name, st.st_size))
        for _, name, size in sorted(found):
            self._lru[name] = size
            self.total += size
        self._evict()

    def _path(self, name: str) -> Path:
        return self.dir / name[:2] / name

    @staticmethod
    def _name(key: str, index: int) -> str:
        return f"{key}.{index}"

    def read(self, key: str, index: int, offset: int, length: int) -> bytes | None:
        """`length` bytes at `offset` within the chunk, or None when the chunk is not cached."""
        fd = self._open(key, index)
        if fd is None:
            return None
        try:
            return os.pread(fd, length, offset)
        finally:
            os.close(fd)

    def open_chunk(self, key: str, index: int, end: int) -> int | None:
        """A read-only descriptor of a cached chunk of at least `end` bytes (the caller closes it),
        or None when the chunk is not cached."""
        fd = self._open(key, index)
        if fd is not None and os.fstat(fd).st_size < end:
            os.close(fd)
            return None
        return fd

    def _open(self, key: str, index: int) -> int | None:
        name = self._name(key, index)
        with self._lock:
            if name not in self._lru:
                return None
            self._lru.move_to_end(name)
        try:
            return os.open(self._path(name), os.O_RDONLY)
        except FileNotFoundError:
            self._forget(name)
            return None

    def contains(self, key: str, index: int) -> bool:
        with self._lock:
            return self._name(key, index) in self._lru

    def put(self, key: str, index: int, data: bytes) -> None:
        """Store a chunk; a full or failing cache disk only means the chunk is not cached."""
        name = self._name(key, index)
        if len(data) > self.max_bytes:
            return
        path = self._path(name)
        tmp = path.with_name(name + f".{threading.get_ident()}.tmp")
        try:
            path.parent.mkdir(exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            if e.errno != errno.ENOSPC:
                log.warning("chunk cache write failed: %s", e)
            return
        with self._lock:
            self.total += len(data) - self._lru.pop(name, 0)
            self._lru[name] = len(data)
            self._evict()

    def _forget(self, name: str) -> None:
        with self._lock:
            self.total -= self._lru.pop(name, 0)

    def _evict(self) -> None:
        """Drop the least recently used chunks beyond max_bytes (caller holds the lock)."""
        while self.total > self.max_bytes and self._lru:
            name, size = self._lru.popitem(last=False)
            self.total -= size
            self._bury(name)

    def _bury(self, name: str) -> None:
        """Take a chunk's file out of the cache now and delete it in the background (caller holds the lock)."""
        path = self._path(name)
        gone = path.with_name(f"{name}.{next(self._tombstones)}.gone")
        try:
            os.rename(path, gone)
        except FileNotFoundError:
            return
        self._gone.append(gone)
        if self._deleter is None:
            self._deleter = threading.Thread(target=self._delete_gone, name="chunk-cache-delete", daemon=True)
            self._deleter.start()

    def flush(self) -> None:
        """Wait until the files of evicted chunks are deleted."""
        with self._lock:
            deleter = self._deleter
        if deleter is not None:
            deleter.join()

    def _delete_gone(self) -> None:
        while True:
            with self._lock:
                if not self._gone:
                    self._deleter = None
                    return
                path = self._gone.popleft()
            path.unlink(missing_ok=True)

    def clear(self) -> None:
        with self._lock:
            for name in self._lru:
                self._bury(name)
            self._lru.clear()
            self.total = 0
