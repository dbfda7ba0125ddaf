"""Bounded on-disk cache of file chunks, shared by every view of a mount.

Only immutable content is cached (a file in a finished commit), so an entry never goes stale;
it is keyed by (project, repo, commit id, path) and chunk index. Eviction is LRU by bytes.
"""

from __future__ import annotations

import collections
import ctypes
import errno
import hashlib
import itertools
import logging
import mmap
import os
import threading
from pathlib import Path

from pachtray.mount.replies import address

log = logging.getLogger(__name__)

DEFAULT_CACHE_BYTES = 2 * 1024**3
DIRECT_BYTES = 4 * 1024**2  # chunks up to this size are written past the page cache
DIRECT_ALIGN = 4096  # what direct writes need of memory, offset and length on common disks
DIRECT_WRITES = hasattr(os, "O_DIRECT") and os.environ.get("PACHTRAY_CACHE_DIRECT", "1") != "0"


def content_key(project: str, repo: str, commit_id: str, path: str) -> str:
    return hashlib.sha256(f"{project}\0{repo}\0{commit_id}\0{path}".encode()).hexdigest()[:40]


class ChunkCache:
    """Chunks as files `<dir>/<key[:2]>/<key>.<index>`; the index survives restarts."""

    def __init__(self, directory: str | os.PathLike, max_bytes: int = DEFAULT_CACHE_BYTES,
                 direct_bytes: int = DIRECT_BYTES):
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
        self._direct_bytes = direct_bytes if DIRECT_WRITES else 0  # 0: every write buffered
        self._direct: mmap.mmap | None = None  # the aligned buffer a chunk is copied into for a direct write
        self._direct_lock = threading.Lock()
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

    def put(self, key: str, index: int, data: bytes | memoryview, direct: bool = True) -> None:
        """Store a chunk; a full or failing cache disk only means the chunk is not cached.
        `direct`: past the page cache if the file system allows (see `_write_file`)."""
        name = self._name(key, index)
        if len(data) > self.max_bytes:
            return
        path = self._path(name)
        tmp = path.with_name(name + f".{threading.get_ident()}.tmp")
        try:
            path.parent.mkdir(exist_ok=True)
            self._write_file(tmp, data, direct)
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

    def _write_file(self, path: Path, data: bytes | memoryview, direct: bool) -> None:
        """Write a chunk's file, if `direct` past the page cache where the file system allows
        (O_DIRECT from an aligned copy): a buffered write cost ~0.45 ms of CPU a MiB with its
        writeback, against ~0.1 for the copy and a direct write, and a cold read through the mount
        is short of CPU."""
        if direct and len(data) <= self._direct_bytes:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_DIRECT, 0o600)
            except OSError as e:
                if e.errno != errno.EINVAL:
                    raise
                fd = None
            if fd is not None:
                try:
                    with self._direct_lock:
                        self._direct_write(fd, data)
                    return
                except OSError as e:
                    if e.errno != errno.EINVAL:
                        raise
                finally:
                    os.close(fd)
            log.info("chunk cache: %s takes no direct writes; writing through the page cache", self.dir)
            self._direct_bytes = 0
        with open(path, "wb") as f:
            f.write(data)

    def _direct_write(self, fd: int, data: bytes | memoryview) -> None:
        n = len(data)
        whole = -(-n // DIRECT_ALIGN) * DIRECT_ALIGN  # direct writes are whole blocks
        if self._direct is None:
            self._direct = mmap.mmap(-1, self._direct_bytes)  # page-aligned
            self._direct_at = ctypes.addressof(ctypes.c_char.from_buffer(self._direct))
        buf = self._direct
        ctypes.memmove(self._direct_at, address(data), n)  # without the GIL
        if whole > n:
            buf[n:whole] = bytes(whole - n)
        view = memoryview(buf)[:whole]
        try:
            done = 0
            while done < whole:
                done += os.write(fd, view[done:])
        finally:
            view.release()
        if whole > n:
            os.ftruncate(fd, n)

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
