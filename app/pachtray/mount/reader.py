"""Lazy access to one commit: listings a folder at a time, file bytes a chunk at a time.

A listing fetches only that folder's entries, a page (ListFile call) at a time as far as it is
read; a read fetches only the chunks that cover the bytes asked for (GetFile from an offset,
cancelled once the chunk is complete), plus a few chunks ahead when a reader goes sequentially.
Chunks land in the shared on-disk ChunkCache; `STATS` counts every byte received so tests can
prove laziness.
"""

from __future__ import annotations

import collections
import errno
import logging
import os
import posixpath
import threading
import time
import weakref
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterator, NamedTuple

import grpc
from pachyderm_sdk import Client
from pachyderm_sdk.api import pfs

from pachtray import malloc
from pachtray.mount.cache import ChunkCache, content_key
from pachtray.pfs.client import get_file, list_file
from pachtray.pfs.errors import is_not_found, os_error

log = logging.getLogger(__name__)

CHUNK_SIZE = 4 * 1024 * 1024
READAHEAD_CHUNKS = 8  # 32 MiB window for a sequential reader
PAGE_SIZE = 1000
LISTINGS_KEPT = 4096
LISTED = ("file.path", "file_type", "size_bytes", "committed")  # what a listing reads of each FileInfo
PROBES_BEFORE_LISTING = 16  # single-name lookups in a folder before its first page is listed instead
HOT_CHUNKS = 8  # fetched chunks kept in memory (32 MiB) while reads go on, besides the disk cache
UNWRITTEN_MAX = 8  # fetched chunks not yet in the disk cache; past this the download waits for the disk
BUFFERED_AFTER_WAIT = 32  # chunks written through the page cache after the download waited for the disk
PARK_SECONDS = 2.0  # how long the rest of a read-ahead's GetFile call waits for the next run
PARKED_MAX = 8

ClientFn = Callable[[], Client | None]
Buffer = bytes | memoryview  # a chunk: a view into a GetFile message, or bytes
_PREFETCH = ThreadPoolExecutor(max_workers=2, thread_name_prefix="pfs-list-ahead")


class FetchStats:
    """Bytes and GetFile calls actually received from pachd (process-wide)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.bytes = 0
        self.requests = 0

    def add(self, nbytes: int = 0, requests: int = 0) -> None:
        with self._lock:
            self.bytes += nbytes
            self.requests += requests


STATS = FetchStats()


def attrs(mode: int, size: int, mtime: float) -> dict:
    """A stat dict for mfusepy (times in ns), owned by whoever runs the mount."""
    ns = int(mtime * 1e9)
    return {"st_mode": mode, "st_nlink": 2 if mode & 0o040000 else 1, "st_size": size,
            "st_blocks": (size + 511) // 512, "st_mtime": ns, "st_ctime": ns, "st_atime": ns,
            "st_uid": os.getuid(), "st_gid": os.getgid()}


def norm(path: str) -> str:
    """'/a/b' form of a path inside a view ('' and '.' mean the root)."""
    p = posixpath.normpath("/" + (path or "").strip("/"))
    return "/" if p in ("/", "//") else p


class Entry(NamedTuple):
    """One name in a folder (a tuple: a listing makes one per entry, fast)."""

    name: str
    is_dir: bool
    size: int = 0
    mtime: float = 0.0


def make_commit(project: str, repo: str, commit_id: str) -> pfs.Commit:
    return pfs.Commit(repo=pfs.Repo(name=repo, type="user", project=pfs.Project(name=project)), id=commit_id)


def require_client(client_fn: ClientFn, what: str) -> Client:
    c = client_fn()
    if c is None:
        raise OSError(errno.EIO, f"{what}: cluster unreachable")  # the daemon's health checks say so
    return c


@dataclass
class ReadState:
    """Per open file: where the last read ended, to spot sequential readers."""

    next_offset: int = 0
    streak: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Run:
    """A read-ahead run in progress: the chunks it has still to fill, in order; while `open`,
    the next run of the same file is added to its end instead of making a call of its own."""

    def __init__(self, pending: collections.deque):
        self.pending = pending
        self.end = pending[-1][0] + 1  # the chunk after its last one
        self.open = True
        self.park = True  # False once a reader of the file closed it: the call ends with the run


class ChunkReader:
    """Fetches and caches chunks; one fetch per chunk however many readers want it."""

    def __init__(self, cache: ChunkCache, chunk_size: int = CHUNK_SIZE, readahead: int = READAHEAD_CHUNKS):
        self.cache = cache
        self.chunk_size = chunk_size
        self.readahead = readahead
        self._lock = threading.Lock()
        self._written = threading.Condition(self._lock)  # told when the cache writer finishes a chunk
        self._inflight: dict[tuple[str, int], Future] = {}
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="pfs-readahead")
        # Chunks just fetched stay in memory while a single writer puts them in the disk cache, so
        # neither the download nor the reader waits for the disk.
        self._hot: collections.OrderedDict[tuple[str, int], Buffer] = collections.OrderedDict()
        self._unwritten: set[tuple[str, int]] = set()
        # Chunks go to the disk cache past the page cache (less CPU) while the disk keeps up; once
        # the download had to wait for the disk, the next BUFFERED_AFTER_WAIT go through the page
        # cache, so a slow disk holds a read back little more than a buffered write would.
        self._buffered_next = 0
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pfs-cache-writer")
        # A read-ahead run asks GetFile for the rest of the file and, when its chunks are in,
        # parks the call where the next run of the same reader will start: one call per
        # sequential read, not one per run (a new call cost the server ~0.3 ms of CPU per MiB
        # and cut the stream's speed by a third: set-up, flow-control ramp, data sent past the run).
        self._parked: dict[tuple[str, int], tuple[Iterator[Buffer], float]] = {}
        self._janitor: threading.Thread | None = None
        self._runs: dict[str, _Run] = {}  # the read-ahead run of a file that later runs join

    def read(self, client_fn: ClientFn, commit: pfs.Commit, path: str, size: int, offset: int, length: int,
             state: ReadState | None = None) -> bytes:
        if offset >= size or length <= 0:
            return b""
        length = min(length, size - offset)
        key = content_key(commit.repo.project.name, commit.repo.name, commit.id, path)
        cs = self.chunk_size
        if state is not None:
            self._maybe_readahead(client_fn, commit, path, key, size, offset, length, state)
        parts = []
        pos, end = offset, offset + length
        while pos < end:
            idx, within = divmod(pos, cs)
            n = min(end - pos, cs - within)
            hot = self._hot_get(key, idx)
            data = hot[within:within + n] if hot is not None else self.cache.read(key, idx, within, n)
            if data is None or len(data) < n:
                chunk = self._chunk(client_fn, commit, path, key, idx, size)
                data = chunk[within:within + n]
            if not data:
                break
            parts.append(data)
            pos += len(data)
        return b"".join(parts)

    def sources(self, client_fn: ClientFn, commit: pfs.Commit, path: str, size: int, offset: int, length: int,
                state: ReadState | None = None) -> list[tuple[Buffer | int, int, int]]:
        """What `read` would join, without copying it: in order, (chunk, start, n) for a chunk in
        memory, (descriptor of its cache file, start, n) for one already in the disk cache (the
        caller closes the descriptor)."""
        if offset >= size or length <= 0:
            return []
        length = min(length, size - offset)
        key = content_key(commit.repo.project.name, commit.repo.name, commit.id, path)
        cs = self.chunk_size
        if state is not None:
            self._maybe_readahead(client_fn, commit, path, key, size, offset, length, state)
        out: list[tuple[Buffer | int, int, int]] = []
        pos, end = offset, offset + length
        try:
            while pos < end:
                idx, within = divmod(pos, cs)
                n = min(end - pos, cs - within)
                # memory first: the disk cache is written past the page cache (ChunkCache.put), so
                # its descriptor means a disk read
                data = self._hot_get(key, idx)
                if data is None or len(data) < within + n:
                    fd = self.cache.open_chunk(key, idx, within + n)
                    if fd is not None:
                        out.append((fd, within, n))
                        pos += n
                        continue
                    data = self._chunk(client_fn, commit, path, key, idx, size)
                n = min(n, len(data) - within)
                if n <= 0:
                    break
                out.append((data, within, n))
                pos += n
        except BaseException:
            for src, _, _ in out:
                if isinstance(src, int):
                    os.close(src)
            raise
        return out

    def _maybe_readahead(self, client_fn, commit, path, key, size, offset, length, state: ReadState) -> None:
        with state.lock:
            # The kernel reads ahead with several requests at once, which FUSE threads may answer
            # out of order: a read near the last one's end (within a chunk) goes on the streak.
            near = abs(offset - state.next_offset) <= self.chunk_size
            state.streak = state.streak + length if near else length
            state.next_offset = max(state.next_offset, offset + length) if near else offset + length
            # more than one chunk in a row: more than the kernel's own read-ahead of one small read
            sequential = state.streak > self.chunk_size
        if not sequential:
            return
        # Read ahead in runs: once fewer than half the window is fetched or on its way, claim the
        # rest of the window and fetch it with ONE GetFile call (a new call per chunk halves the
        # throughput of a stream: its set-up and flow-control ramp are paid again each time).
        first = (offset + length) // self.chunk_size + 1
        last = min(first + self.readahead, (size + self.chunk_size - 1) // self.chunk_size)
        ahead = [idx for idx in range(first, last) if not self._covered(key, idx)]
        if len(ahead) < max(1, self.readahead // 2) and first + self.readahead // 2 < last:
            return
        run: list[tuple[int, Future]] = []
        for idx in ahead:
            fut, owner = self._claim(key, idx)
            if not owner:
                continue
            if run and idx != run[-1][0] + 1:
                self._start_run(run, client_fn, commit, path, key, size)
                run = []
            run.append((idx, fut))
        if run:
            self._start_run(run, client_fn, commit, path, key, size)

    def _start_run(self, run: list[tuple[int, Future]], client_fn, commit, path, key, size) -> None:
        """Fill a read-ahead run: by the run of this file in progress if it ends where this one
        starts (its GetFile call goes on), else by a call of its own."""
        if not self._join(key, run):
            self._pool.submit(self._fill_run, run, client_fn, commit, path, key, size, True)

    def _join(self, key: str, run: list[tuple[int, Future]]) -> bool:
        """Add `run` to the end of the file's read-ahead run in progress, if it ends where `run` starts."""
        with self._lock:
            active = self._runs.get(key)
            if active is None or not active.open or active.end != run[0][0]:
                return False
            active.pending.extend(run)
            active.end = run[-1][0] + 1
            return True

    def _covered(self, key: str, idx: int) -> bool:
        with self._lock:
            if (key, idx) in self._inflight:
                return True
        return self._has(key, idx)

    def _has(self, key: str, idx: int) -> bool:
        with self._lock:
            if (key, idx) in self._hot:
                return True
        return self.cache.contains(key, idx)

    def _hot_get(self, key: str, idx: int) -> Buffer | None:
        with self._lock:
            data = self._hot.get((key, idx))
            if data is not None:
                self._hot.move_to_end((key, idx))
            return data

    def _store(self, key: str, idx: int, data: Buffer) -> None:
        with self._lock:
            # A download faster than the disk waits for the cache writer, so the chunks held in
            # memory stay bounded (a 1 GiB read left the daemon at ~380 MiB otherwise).
            if len(self._unwritten) >= UNWRITTEN_MAX:
                self._buffered_next = BUFFERED_AFTER_WAIT
                self._written.wait_for(lambda: len(self._unwritten) < UNWRITTEN_MAX, timeout=30)
            self._hot[(key, idx)] = data
            self._unwritten.add((key, idx))
            self._trim_hot()
        self._writer.submit(self._write, key, idx, data)

    def _write(self, key: str, idx: int, data: Buffer) -> None:
        with self._lock:
            direct = self._buffered_next == 0
            self._buffered_next = max(0, self._buffered_next - 1)
        try:
            self.cache.put(key, idx, data, direct=direct)
        finally:
            with self._lock:
                self._unwritten.discard((key, idx))
                self._trim_hot()
                self._written.notify_all()
                idle = self._release_if_idle()
            if idle:  # the last chunk of a burst is on disk: hand the buffers' memory back
                malloc.trim()

    def _trim_hot(self) -> None:
        """Drop the oldest chunks already on disk beyond HOT_CHUNKS (caller holds the lock)."""
        excess = len(self._hot) - HOT_CHUNKS
        for k in [k for k in self._hot if k not in self._unwritten][:max(0, excess)]:
            del self._hot[k]

    def _release_if_idle(self) -> bool:
        """When nothing is fetched, written or parked any more, drop the chunks already on disk and
        say so (the caller then trims malloc outside the lock); caller holds the lock. Each end of
        work calls it: the last write, the end of a run, and the last parked call going (a run that
        parked a call its reader never used left 32 MiB in memory until the next read)."""
        idle = not self._unwritten and not self._inflight and not self._parked
        if idle:
            self._drop_hot_on_disk()
        return idle

    def _drop_hot_on_disk(self) -> None:
        """Idle: the chunks already on disk need no copy in memory (they are in the disk cache, and
        in the kernel's page cache if they were read); caller holds the lock."""
        for k in [k for k in self._hot if k not in self._unwritten]:
            del self._hot[k]

    def flush(self) -> None:
        """Wait until every chunk fetched so far is in the disk cache."""
        self._writer.submit(lambda: None).result()

    def _claim(self, key: str, idx: int) -> tuple[Future, bool]:
        """The future of chunk `idx`; True if the caller must fill it."""
        with self._lock:
            fut = self._inflight.get((key, idx))
            if fut is not None:
                return fut, False
            fut = self._inflight[(key, idx)] = Future()
            return fut, True

    def _chunk(self, client_fn: ClientFn, commit: pfs.Commit, path: str, key: str, idx: int, size: int) -> Buffer:
        fut, owner = self._claim(key, idx)
        if owner and not self._join(key, [(idx, fut)]):
            self._fill_run([(idx, fut)], client_fn, commit, path, key, size)
        return fut.result()

    def _fill_run(self, run: list[tuple[int, Future]], client_fn: ClientFn, commit: pfs.Commit, path: str,
                  key: str, size: int, ahead: bool = False) -> None:
        """Fill consecutive chunks from one GetFile call; each future is answered as soon as its
        chunk is complete, so a reader waits for its chunk, not for the whole run. A read-ahead
        run (`ahead`) continues a parked call or asks for the rest of the file, and parks the call
        after its chunks."""
        cs = self.chunk_size
        pending = collections.deque(run)
        pieces: Iterator[Buffer] | None = None
        active: _Run | None = None
        try:
            while pending and self._has(key, pending[0][0]):  # cached while queued
                idx, fut = pending.popleft()
                data = self._hot_get(key, idx)
                if data is None:
                    data = self.cache.read(key, idx, 0, min(cs, size - idx * cs))
                self._done(key, idx, fut, result=data)
            if not pending:
                return
            start = pending[0][0] * cs
            pieces = self._unpark(key, start)
            follow = pieces is not None or ahead
            if follow:
                with self._lock:
                    if key not in self._runs:  # the next read-ahead runs of this file join this one
                        active = self._runs[key] = _Run(pending)
            if pieces is None:
                end = size if follow else min(size, (pending[-1][0] + 1) * cs)
                pieces = self._fetch(client_fn, commit, path, start, end - start, cs)
            stale: list[Iterator[Buffer]] = []
            for data in pieces:
                with self._lock:
                    idx, fut = pending.popleft()
                self._store(key, idx, data)
                self._done(key, idx, fut, result=data)
                with self._lock:
                    if not pending:  # done; a run joining from now on finds the call parked
                        park = follow and (idx + 1) * cs < size
                        if active is not None:
                            park = park and active.park
                            active.open = False
                            del self._runs[key]
                            active = None
                        if park:
                            stale = self._park(key, (idx + 1) * cs, pieces)
                            pieces = None
                        break
            for p in stale:
                p.close()
            if pending:
                raise OSError(errno.EIO, f"read {commit.repo.name}@{commit.id}:{path}: file shorter than listed")
        except BaseException as e:
            with self._lock:
                if active is not None:
                    active.open = False
                    del self._runs[key]
                failed = list(pending)
                pending.clear()
            for idx, fut in failed:
                self._done(key, idx, fut, error=e)
            if not isinstance(e, Exception):
                raise
        finally:
            if pieces is not None:
                pieces.close()  # (cancels the call)
            with self._lock:
                idle = self._release_if_idle()
            if idle:  # the end of a burst of 1-4 MiB buffers: hand their memory back
                malloc.trim()

    def _park(self, key: str, offset: int, pieces: Iterator[Buffer]) -> list[Iterator[Buffer]]:
        """Keep a call for the run that starts at `offset` (caller holds the lock); returns the
        calls it displaced, for the caller to close outside the lock."""
        done = [self._parked.pop((key, offset))[0]] if (key, offset) in self._parked else []
        self._parked[(key, offset)] = (pieces, time.monotonic())
        while len(self._parked) > PARKED_MAX:
            done.append(self._parked.pop(next(iter(self._parked)))[0])
        if self._janitor is None:
            self._janitor = threading.Thread(target=self._expire_parked, name="pfs-parked", daemon=True)
            self._janitor.start()
        return done

    def _unpark(self, key: str, offset: int) -> Iterator[Buffer] | None:
        with self._lock:
            found = self._parked.pop((key, offset), None)
        return None if found is None else found[0]

    def _expire_parked(self) -> None:
        """Cancel the parked calls no run continued within PARK_SECONDS (each holds a server
        stream); ends when none is left."""
        while True:
            time.sleep(PARK_SECONDS / 2)
            now = time.monotonic()
            with self._lock:
                old = [k for k, (_, when) in self._parked.items() if now - when > PARK_SECONDS]
                done = [self._parked.pop(k)[0] for k in old]
                last = not self._parked
                if last:
                    self._janitor = None
                idle = last and self._release_if_idle()
            for p in done:
                p.close()
            if idle:
                malloc.trim()
            if last:
                return

    def drop_parked(self, commit: pfs.Commit, path: str) -> None:
        """A reader of a file closed it: its parked calls are cancelled, and the run in progress
        ends its call when done instead of parking it."""
        key = content_key(commit.repo.project.name, commit.repo.name, commit.id, path)
        with self._lock:
            done = [self._parked.pop(k)[0] for k in [k for k in self._parked if k[0] == key]]
            if key in self._runs:
                self._runs[key].park = False
            idle = bool(done) and self._release_if_idle()
        for p in done:
            p.close()
        if idle:
            malloc.trim()

    def _done(self, key: str, idx: int, fut: Future, result: Buffer | None = None,
              error: BaseException | None = None) -> None:
        with self._lock:
            self._inflight.pop((key, idx), None)
        if error is not None:
            fut.set_exception(error)
        else:
            fut.set_result(result)

    def _fetch(self, client_fn: ClientFn, commit: pfs.Commit, path: str, offset: int, want: int, piece: int):
        """Yield `want` bytes from `offset` in pieces of `piece` bytes (the last may be shorter),
        from one GetFile call that is cancelled as soon as they are in (nothing more is downloaded
        than the run asked for, and no server stream is left open)."""
        what = f"read {commit.repo.name}@{commit.id}:{path}"
        client = require_client(client_fn, what)
        STATS.add(requests=1)
        stream = get_file(client, file=pfs.File(commit=commit, path=path), offset=offset)
        parts: list[Buffer] = []
        held = got = 0
        try:
            for msg in stream:
                value = msg.value
                STATS.add(len(value))
                if len(value) > want - got:
                    value = value[:want - got]
                got += len(value)
                while held + len(value) >= piece:  # complete a piece, keep the rest
                    cut = piece - held
                    parts.append(value[:cut])
                    yield _piece(parts)
                    parts, held, value = [], 0, value[cut:]
                if value:
                    parts.append(value)
                    held += len(value)
                if got >= want:
                    break
        except (grpc.RpcError, ConnectionError) as e:
            raise os_error(e, what) from None
        finally:
            stream.cancel()
        if parts:
            yield _piece(parts)


def _piece(parts: list) -> Buffer:
    """The bytes of `parts` (memoryviews into GetFile messages, see `get_file`): the one view itself
    when it is most of its message (no copy, and it keeps little else alive), else a copy."""
    if len(parts) == 1 and isinstance(parts[0], memoryview) and 2 * len(parts[0]) >= len(parts[0].obj):
        return parts[0]
    return b"".join(parts)


_readers: "weakref.WeakKeyDictionary[ChunkCache, ChunkReader]" = weakref.WeakKeyDictionary()
_readers_lock = threading.Lock()


def reader_for(cache: ChunkCache) -> ChunkReader:
    """The one ChunkReader of a cache, so views of the same data share fetches in flight."""
    with _readers_lock:
        reader = _readers.get(cache)
        if reader is None:
            reader = _readers[cache] = ChunkReader(cache)
        return reader


class Listing:
    """One folder's entries, in pachd's order, as its pages arrive; `complete` once all are in."""

    def __init__(self):
        self.entries: list[Entry] = []
        self.by_name: dict[str, Entry] = {}
        self.probed: dict[str, Entry | None] = {}  # names looked up one by one before their page came
        self.marker: str | None = None  # path of the last entry received, as pachd sent it
        self.complete = False
        self.lock = threading.Lock()  # guards all of it; not held while a page is on its way
        self.fetched = threading.Condition(self.lock)  # a page fetch ended
        self.fetching = False  # one page fetch at a time
        self.prefetching = False  # pages are being fetched ahead of the reader
        self.read_upto = 0  # entries given to readers so far


class CommitListings:
    """The folder listings of one commit, shared by every CommitTree of it (a ro mount and a rw
    mount of the same head list a big folder once): a commit never changes."""

    def __init__(self):
        self.lock = threading.Lock()
        self.by_dir: collections.OrderedDict[str, Listing] = collections.OrderedDict()

    def get(self, directory: str) -> Listing:
        with self.lock:
            found = self.by_dir.get(directory)
            if found is None:
                found = self.by_dir[directory] = Listing()
                while len(self.by_dir) > LISTINGS_KEPT:
                    self.by_dir.popitem(last=False)
            else:
                self.by_dir.move_to_end(directory)
            return found


_commit_listings: "weakref.WeakValueDictionary[tuple[str, str, str], CommitListings]" = weakref.WeakValueDictionary()
_commit_listings_lock = threading.Lock()


def listings_of(project: str, repo: str, commit_id: str) -> CommitListings:
    """The listings of a commit while some CommitTree of it is alive (commit ids are UUIDs)."""
    with _commit_listings_lock:
        found = _commit_listings.get((project, repo, commit_id))
        if found is None:
            found = _commit_listings[(project, repo, commit_id)] = CommitListings()
        return found


class CommitTree:
    """Listings and reads of one commit; None id = empty.

    A folder is listed a page (ListFile call) at a time and only as far as someone needs, so the
    first entries of a 100,000-entry folder come after one page, and every call has its own deadline.
    Pages are kept (the commit is immutable), so no page is fetched or decoded twice.
    """

    def __init__(self, client_fn: ClientFn, project: str, repo: str, commit_id: str | None, reader: ChunkReader,
                 probe: bool = True):
        self.client_fn = client_fn
        self.probe = probe
        self.commit = make_commit(project, repo, commit_id) if commit_id else None
        self.reader = reader
        self.mtime = time.time()
        self._listings = listings_of(project, repo, commit_id) if commit_id else CommitListings()

    def _listing(self, directory: str) -> Listing:
        return self._listings.get(directory)

    def list(self, directory: str) -> dict[str, Entry]:
        """The entries of `directory` ({} if it does not exist or is a file); do not modify."""
        directory = norm(directory)
        if self.commit is None:
            return {}
        listing = self._listing(directory)
        with listing.lock:
            while not listing.complete:
                self._fetch_page(listing, directory)
            return listing.by_name

    def entries_from(self, directory: str, start: int):
        """The entries of `directory` from the `start`-th on, fetching pages only as they are reached."""
        directory = norm(directory)
        if self.commit is None:
            return
        listing = self._listing(directory)
        i = start
        while True:
            with listing.lock:
                if i >= len(listing.entries) and not listing.complete:
                    self._fetch_page(listing, directory)
                batch = listing.entries[i:i + 256]
                listing.read_upto = max(listing.read_upto, i + len(batch))
                ahead = not listing.complete and not listing.prefetching and \
                    len(listing.entries) - (i + len(batch)) < PAGE_SIZE
                if ahead:
                    listing.prefetching = True
            if ahead:  # the next page comes while the kernel takes this one
                _PREFETCH.submit(self._prefetch, listing, directory)
            if not batch:
                return
            yield from batch
            i += len(batch)

    def _prefetch(self, listing: Listing, directory: str) -> None:
        """Fetch pages while the reader is less than two pages behind (it keeps going: a page takes
        longer to fetch than the kernel to take it)."""
        try:
            with listing.lock:
                while not listing.complete and len(listing.entries) - listing.read_upto < 2 * PAGE_SIZE:
                    self._fetch_page(listing, directory)
        except OSError:
            pass  # the reader fetches it again when it gets there, and sees the error
        finally:
            listing.prefetching = False

    def _fetch_page(self, listing: Listing, directory: str) -> None:
        """Append the next page to `listing` (caller holds its lock, released while the page comes, so
        readers take the entries already there); when another thread is fetching, wait for its page
        instead. A timed-out page is asked again once, unless pachd no longer answers health checks."""
        if listing.fetching:
            had = len(listing.entries)
            while listing.fetching:
                listing.fetched.wait()
            if len(listing.entries) > had or listing.complete:
                return
        what = f"list {self.commit.repo.name}@{self.commit.id}:{directory}"
        client = require_client(self.client_fn, what)
        marker = None if listing.marker is None else pfs.File(commit=self.commit, path=listing.marker)
        listing.fetching = True
        listing.lock.release()
        try:
            page = self._page(client, what, directory, marker)
        finally:
            listing.lock.acquire()
            listing.fetching = False
            listing.fetched.notify_all()
        fresh = 0
        committed = mtime = None  # answers share one decoded time: convert it once
        entries, by_name, folder = listing.entries, listing.by_name, pfs.FileType.DIR
        for path, file_type, size, when in page:
            parent, _, name = path.rstrip("/").rpartition("/")
            if (parent or "/") != directory or not name or name in by_name:
                continue
            fresh += 1
            if when is not committed:
                committed = when
                mtime = committed.timestamp() if committed else self.mtime
            e = Entry(name, file_type == folder, size, mtime)
            entries.append(e)
            by_name[name] = e
        if page:
            listing.marker = page[-1][0]
        if len(page) < PAGE_SIZE or not fresh:
            listing.complete = True

    def _page(self, client, what: str, directory: str, marker) -> list[tuple]:
        for attempt in (1, 2):
            try:
                return list(list_file(client, file=pfs.File(commit=self.commit, path=directory),
                                      pagination_marker=marker, number=PAGE_SIZE, fields=LISTED))
            except (grpc.RpcError, ConnectionError) as e:
                if is_not_found(e):  # pachd lists a missing path as empty: the commit itself is gone
                    log.warning("%s failed: %s", what, e.details() if isinstance(e, grpc.RpcError) else e)
                    raise OSError(errno.EIO, f"{what}: commit not found") from None
                timed_out = isinstance(e, grpc.RpcError) and e.code() == grpc.StatusCode.DEADLINE_EXCEEDED
                if attempt == 2 or not timed_out:
                    raise os_error(e, what) from None
                client = require_client(self.client_fn, what)  # none: the health checks found pachd gone meanwhile
        raise AssertionError("unreachable")

    def stat(self, path: str) -> Entry | None:
        path = norm(path)
        if path == "/":
            return Entry("", True, 0, self.mtime)
        if self.commit is None:
            return None
        directory, name = posixpath.split(path)
        listing = self._listing(directory)
        with listing.lock:
            # Looking up one name asks for that name alone (one small answer) until a folder has
            # been probed often enough that listing its first page is cheaper: `ls /pfs/repo/d0500`
            # must not list the 1,000 folders next to d0500 first. Without `probe` (the base of a rw
            # mount) the folder is listed at once, so new names can be created while offline.
            if not listing.entries and not listing.complete and (
                    not self.probe or len(listing.probed) >= PROBES_BEFORE_LISTING):
                self._fetch_page(listing, directory)
            found = listing.by_name.get(name)
            if found is not None or listing.complete:
                return found
            if name in listing.probed:
                return listing.probed[name]
        found = listing.probed[name] = self._inspect(path, name)
        return found

    def known_absent(self, path: str) -> bool:
        """Whether what is already known of this commit (no call made) says nothing is at `path`:
        an empty commit, or a folder on the way whose listing or lookup says the next name is not
        there (or is a file). False when unknown."""
        if self.commit is None:
            return True
        directory = "/"
        for name in norm(path).strip("/").split("/"):
            with self._listings.lock:
                listing = self._listings.by_dir.get(directory)
            if listing is None:
                return False
            with listing.lock:
                found = listing.by_name.get(name, listing.probed.get(name, False))
                if found is False and listing.complete:
                    found = None
            if found is None:
                return True
            if found is False or not found.is_dir:
                return False  # unknown; or a file there (PFS keeps nothing under a file either, but say no)
            directory = posixpath.join(directory, name)
        return False

    def _inspect(self, path: str, name: str) -> Entry | None:
        """One entry of a folder whose listing has not reached it yet (one call, not the pages before it)."""
        what = f"stat {self.commit.repo.name}@{self.commit.id}:{path}"
        client = require_client(self.client_fn, what)
        try:
            info = client.pfs.inspect_file(file=pfs.File(commit=self.commit, path=path))
        except (grpc.RpcError, ConnectionError) as e:
            if is_not_found(e):
                return None
            raise os_error(e, what) from None
        mtime = info.committed.timestamp() if info.committed else self.mtime
        return Entry(name, info.file_type == pfs.FileType.DIR, info.size_bytes, mtime)

    def read(self, path: str, size: int, offset: int, length: int, state: ReadState | None = None) -> bytes:
        if self.commit is None:
            return b""
        return self.reader.read(self.client_fn, self.commit, norm(path), size, offset, length, state)

    def sources(self, path: str, size: int, offset: int, length: int,
                state: ReadState | None = None) -> list[tuple[Buffer | int, int, int]]:
        """`read` as `ChunkReader.sources` gives it (nothing copied)."""
        if self.commit is None:
            return []
        return self.reader.sources(self.client_fn, self.commit, norm(path), size, offset, length, state)

    def closed(self, path: str) -> None:
        """A reader of `path` closed it: its read-ahead call, if parked, is cancelled."""
        if self.commit is not None:
            self.reader.drop_parked(self.commit, norm(path))

    def walk_files(self, directory: str):
        """Every file path under `directory` (metadata only)."""
        for name, e in self.list(directory).items():
            p = posixpath.join(directory, name)
            if e.is_dir:
                yield from self.walk_files(p)
            else:
                yield p
