"""Uploading a rw view's finished files before the commit, into pachd's temporary file sets.

A file whose row is a plain file (a blob, or a copy of a base file), with no handle open, is sent
once the daemon's rw mounts have had no change for `QUIET` seconds and no commit is under way:
idle time only. Sending costs the daemon about what the commit's stream costs (~90 µs of CPU a
small file, under the GIL the FUSE callbacks need), so uploading while files were being written
made writing 10,000 small files 1.5x slower, more than the commit saved (docs/benchmarks.md). A
background thread sends them a batch at a time with CreateFileSet, stopping at the next file when
a change comes: the same requests a commit sends (pfs.modify: a DeleteFile, then the content), so
the set replaces the path wherever it is added. What each set holds is remembered in memory
only, per path: the row and the blob's content generation (`changed` bumps it after every write
and truncate) read before its content. Nothing of it is in the journal: after a restart the
commit sends everything, as it always did.

At the commit (`plan`), a set is used only if every path of it still has that row and generation,
and no change the commit still sends deletes a path at or above one of the set's paths (the sets
are added before that stream, so such a delete would take their file away). Otherwise the set is
left to expire on the server (pachd's TTL) and its files go in the commit's stream. Sets pending
for more than half their TTL are renewed.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import grpc

from pachtray.mount.reader import require_client
from pachtray.pfs.errors import RPC_ERRORS

if TYPE_CHECKING:
    from pachtray.mount.staging import Row, RwView

log = logging.getLogger(__name__)

_changed_at = [0.0]  # monotonic time of the last change in any rw view of this process
_commits = [0]  # commits under way in this process (under _commits_lock): no upload competes with them
_commits_lock = threading.Lock()

QUIET = float(os.environ.get("PACHTRAY_UPLOAD_QUIET", "0.3"))  # seconds; tests set ~0
BATCH_FILES = 1000
BATCH_BYTES = 4 << 20
TTL = 600  # seconds, pachd's default for a file set; renewed past half of it
RETRY_AFTER = (1.0, 60.0)  # seconds before uploading again after a failure: first, most


@dataclass
class FileSet:
    id: str
    base: str | None  # the base commit its copies of base files name
    entries: dict[str, tuple["Row", int]]  # path -> (row, generation of its blob) when read
    renewed: float = field(default_factory=time.monotonic)


class UploadAhead:
    """The background uploader of one RwView (see the module docstring). The view calls `noticed`
    when a path's row changes or a file is closed, `changed` after a blob's content changes;
    `plan` at its commit (holding the view's `_mut`, inside `paused()`), `forget` after a commit
    or a discard."""

    def __init__(self, view: "RwView", quiet: float = QUIET):
        self.view = view
        self.quiet = quiet
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self.generation: dict[str, int] = {}  # blob -> count of content changes
        self._pending: dict[str, float] = {}  # path -> when last noticed (oldest first)
        self.sets: list[FileSet] = []  # in creation order
        self._holder: dict[str, FileSet] = {}  # path -> the newest set holding it
        self._epoch = 0  # bumped by forget(): an upload started before belongs to no set
        self._closing = False
        self._busy = False  # a batch is being collected or uploaded
        self._backoff = 0.0
        self._thread = threading.Thread(target=self._run, name="upload-ahead", daemon=True)
        self._thread.start()

    # --- told by the view (FUSE callbacks: cheap) -----------------------------------------------
    def noticed(self, path: str) -> None:
        _changed_at[0] = now = time.monotonic()
        pending = self._pending
        pending.pop(path, None)  # (to the end: oldest first)
        pending[path] = now
        if len(pending) == 1:
            with self._wake:
                self._wake.notify()

    def changed(self, blob: str) -> None:
        """After a change of the blob's content (so an upload that read it earlier is stale)."""
        self.generation[blob] = self.generation.get(blob, 0) + 1
        _changed_at[0] = time.monotonic()

    # --- the commit --------------------------------------------------------------------------------
    def plan(self, plan: list[tuple[str, "Row"]], base: str | None) -> tuple[list[str], list[tuple[str, "Row"]]]:
        """(the sets to add, in order; the rest of ``plan`` to send in the stream after them)."""
        rows = dict(plan)
        with self._lock:
            sets = list(self.sets)
        gen = self.generation
        usable = [s for s in sets if s.base == base and all(
            rows.get(p) == row and gen.get(row.blob, 0) == g for p, (row, g) in s.entries.items())]
        covered = {p for s in usable for p in s.entries}
        rest = [(p, r) for p, r in plan if p not in covered]
        deletes = {p for p, r in rest if r.kind != "file" and (r.kind != "dir" or r.src is not None)}
        if deletes and any(a in deletes for p in covered for a in _self_and_ancestors(p)):
            return [], plan
        return [s.id for s in usable], rest

    def forget(self) -> None:
        """Drop every set (committed, or discarded: they expire on the server)."""
        with self._lock:
            self._epoch += 1
            self.sets, self._holder = [], {}
            self.generation.clear()  # (no set of an earlier epoch is ever used)
            self._backoff = 0.0

    def close(self) -> None:
        with self._wake:
            self._closing = True
            self._wake.notify()
        self._thread.join(10)

    # --- the background thread -----------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._wake:
                self._wake.wait(min(max(self.quiet, 0.05), 5.0) if self._pending else min(5.0, TTL / 4))
                if self._closing:
                    return
            if not self._idle():
                continue
            if self._backoff:
                time.sleep(self._backoff)
            self._busy = True
            try:
                self._renew()
                while (batch := self._batch()) and not self._closing:
                    self._upload(*batch)
            except Exception:  # noqa: BLE001 - the commit sends whatever was not uploaded
                log.exception("upload ahead of the commit failed")
                self._backoff = min(max(self._backoff * 2, RETRY_AFTER[0]), RETRY_AFTER[1])
            finally:
                self._busy = False

    def _idle(self) -> bool:
        """Whether no rw view of the daemon changed for `quiet` seconds, and no commit is under way."""
        return not _commits[0] and not self._closing and time.monotonic() - _changed_at[0] >= self.quiet

    @staticmethod
    @contextlib.contextmanager
    def paused():
        """No upload of any view while the block runs (a commit: an upload in flight stops at its
        next file, or between two chunks of a big file)."""
        with _commits_lock:
            _commits[0] += 1
        try:
            yield
        finally:
            with _commits_lock:
                _commits[0] -= 1

    def idle(self) -> bool:
        """Nothing waiting to be uploaded and nothing being uploaded (tests wait for this)."""
        return not self._pending and not self._busy

    def _batch(self) -> tuple[int, str | None, list[tuple[str, "Row"]]] | None:
        """Pending paths that are quiet, closed plain files, oldest first, up to a batch."""
        view = self.view
        if not self._idle():
            return None
        ready_before = time.monotonic() - self.quiet
        batch, size = [], 0
        with view._lock, self._lock:
            epoch, base = self._epoch, view.base_commit_id
            while len(batch) < BATCH_FILES and size < BATCH_BYTES:
                chunk = list(itertools.islice(self._pending.items(), 1024))  # (not a copy of them all)
                for path, when in chunk:
                    if when > ready_before or len(batch) >= BATCH_FILES or size >= BATCH_BYTES:
                        break
                    self._pending.pop(path, None)
                    row = view.rows.get(path)
                    held = self._holder.get(path)
                    if held is not None:
                        if row is not None and held.entries.get(path) == (row, self.generation.get(row.blob, 0)):
                            continue  # uploaded, and still current (a file opened only to read, say)
                        self._drop(held, ready_before)
                    if row is None or not view._plain_file(path, row) or (row.blob and view._open.get(row.blob)):
                        continue  # gone, or not a plain file, or open (its release notices it again)
                    batch.append((path, row))
                    size += view._staged_size(row) + 256
                else:
                    if chunk:
                        continue
                break
        return (epoch, base, batch) if batch else None

    def _drop(self, s: FileSet, when: float) -> None:
        """A set with a path that changed since is of no use: its other files go again (caller holds _lock)."""
        self.sets.remove(s)
        for path in s.entries:
            if self._holder.get(path) is s:
                del self._holder[path]
                self._pending.setdefault(path, when)

    def _upload(self, epoch: int, base: str | None, batch: list[tuple[str, "Row"]]) -> None:
        view = self.view
        entries: dict[str, tuple[Row, int]] = {}
        stopped: list[bool] = []

        def still_idle(_n: int = 0) -> None:
            """Between chunks of a big file: a change or a commit abandons the whole set."""
            if not self._idle():
                stopped.append(True)
                raise _Stopped

        def requests():
            # Each generation is read before the content: a write after it makes the entry stale.
            gens = [self.generation.get(row.blob, 0) for _, row in batch]
            inline = view.journal.inline_many([row.blob for _, row in batch if row.blob in view._inline])
            for (path, row), gen in zip(batch, gens):
                if not self._idle():  # writing again: the rest waits for the next quiet moment
                    break
                file = view._replace(path, row, inline.get(row.blob), sent=still_idle)
                try:
                    first = next(file)
                except OSError:  # deleted meanwhile (nothing of it sent): its row is gone too
                    continue
                yield first
                yield from file  # (an error past the first request abandons the whole set)
                entries[path] = (row, gen)

        try:
            fid = require_client(view.client_fn, "upload ahead").pfs.create_file_set(requests()).file_set_id
        except (*RPC_ERRORS, OSError, _Stopped) as e:
            if stopped:
                with self._lock:
                    for path, _ in batch:
                        self._pending.setdefault(path, time.monotonic())
                return
            if isinstance(e, grpc.RpcError) and e.code() == grpc.StatusCode.UNIMPLEMENTED:
                log.info("the cluster has no temporary file sets: the commit sends every file")
                self.quiet = float("inf")
            log.info("upload ahead of the commit failed (the commit will send these %d files): %s", len(batch), e)
            with self._lock:
                for path, _ in batch:  # to try again later (the commit sends them anyway)
                    self._pending.setdefault(path, time.monotonic())
            self._backoff = min(max(self._backoff * 2, RETRY_AFTER[0]), RETRY_AFTER[1])
            return
        self._backoff = 0.0
        with self._lock:
            for path, _ in batch:
                if path not in entries:  # not sent (stopped, or gone): noticed again
                    self._pending.setdefault(path, time.monotonic())
            if epoch != self._epoch or not entries:
                return  # committed or discarded meanwhile, or nothing sent
            s = FileSet(fid, base, entries)
            self.sets.append(s)
            for path in entries:
                self._holder[path] = s

    def _renew(self) -> None:
        due = time.monotonic() - TTL / 2
        with self._lock:
            old = [s for s in self.sets if s.renewed < due]
        if not old:
            return
        client = self.view.client_fn()
        if client is None:
            return
        for s in old:
            try:
                client.pfs.renew_file_set(file_set_id=s.id, ttl_seconds=TTL)
                s.renewed = time.monotonic()
            except RPC_ERRORS as e:
                log.info("file set %s could not be renewed (its files are uploaded again): %s", s.id, e)
                with self._lock:
                    if s in self.sets:
                        self._drop(s, time.monotonic())


class _Stopped(Exception):
    """An upload abandoned mid-file (the view changed, or a commit started)."""


class _QuietStops(logging.Filter):
    """gRPC logs the exception that ends a request iterator: not worth a traceback for a _Stopped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], _Stopped))


logging.getLogger("grpc._channel").addFilter(_QuietStops())


def _self_and_ancestors(path: str):
    yield path
    while path != "/":
        path = path[:path.rindex("/")] or "/"
        yield path
