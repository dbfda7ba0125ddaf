"""Temporary file sets of the local server (pfs CreateFileSet, AddFileSet, RenewFileSet), as
pachd 2.8 has them: a ModifyFile stream without a commit, stored for a TTL, then added to open
commits, each time layered after what the commit already has.

A set is kept as its operations in stream order, each naming stored content (blobs, as a
ModifyFile stream stores them): ``["d", path]`` deletes (a file, or a folder and all under it),
``["a", path, blob, size]`` appends a content (an AddFile, consecutive ones of a path joined;
a CopyFile with append), ``["p", path, blob, size]`` makes the path that content (a CopyFile,
its source read when the set is made, as pachd does). Adding a set to a commit replays these
operations into a `ModifyBatch` of that commit: exactly what the same ModifyFile stream would have
done there, so a DeleteFile of the set removes what earlier layers had at that path.
"""

from __future__ import annotations

from collections.abc import Iterator

import betterproto
from pachyderm_sdk.api import pfs

from pachtray.local import pfs_service  # (which imports this module: names used at call time only)
from pachtray.local.rpc import invalid, unknown


class FileSetWriter:
    """The operations and small contents of one CreateFileSet stream (`write` them, then `ops`)."""

    def __init__(self, service):
        self.service = service
        self.store = service.store
        self.ops: list[list] = []
        self.inline: dict[str, bytes] = {}
        self._path: str | None = None  # the path whose AddFile content is being written
        self._writer = None

    def consume(self, requests: Iterator[pfs.ModifyFileRequest], ctx) -> None:
        try:
            for req in requests:
                kind, body = betterproto.which_one_of(req, "body")
                if kind == "add_file":
                    src, _ = betterproto.which_one_of(body, "source")
                    if src == "url":
                        raise unknown("AddFile from a URL is not supported by the Pachtray local server")
                    self._add(pfs_service.validate_file_path(body.path), body.raw)
                    continue
                self._settle()
                if kind == "delete_file":
                    self.ops.append(["d", pfs_service.validate_path_or_root(body.path)])
                elif kind == "copy_file":
                    self._copy(body, ctx)
                elif kind == "set_commit":
                    raise invalid("CreateFileSet: a file set belongs to no commit (no set_commit request)")
            self._settle()
        except BaseException:
            if self._writer is not None:
                self._writer.abort()
            raise

    def _add(self, path: str, raw: bytes) -> None:
        if path != self._path:
            self._settle()
            self._path, self._writer = path, self.store.blob_writer()
        if raw:
            self._writer.write(raw)

    def _settle(self) -> None:
        if self._writer is None:
            return
        digest, size, inline = self._writer.finish()
        if inline is not None:
            self.inline[digest] = inline
        self.ops.append(["a", self._path, digest, size])
        self._path = self._writer = None

    def _copy(self, copy: pfs.CopyFile, ctx) -> None:
        op = "a" if copy.append else "p"
        for target, e in self.service.copy_sources(ctx, copy):
            self.ops.append([op, target, e.blob, e.size])


def replay(ops: list[list], batch) -> None:
    """Apply a set's operations to ``batch`` (a ModifyBatch of an open commit) in order."""
    fresh: set[str] = set()  # deleted in this replay and not written since: an append is the content
    for op in ops:
        kind, path = op[0], op[1]
        if kind == "d":
            batch.delete_file(path)
            fresh.add(path)
        elif kind == "a" and path in fresh:
            fresh.discard(path)
            batch.settle(path)
            batch.put(path, (op[2], op[3]))
        elif kind == "a":
            batch.writer_for(path).write_blob(op[2], op[3])
        else:
            fresh.discard(path)
            batch.settle(path)
            batch.put(path, (op[2], op[3]))
