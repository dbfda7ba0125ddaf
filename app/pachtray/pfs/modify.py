"""Writing a commit: the ModifyFile requests that make a path hold exactly some content, shared by
rw mounts (mount.staging) and uploads (pachtray.uploads).

pachd applies a ModifyFile stream in order to the commit (or the branch head) it names, and PFS
appends to a file that exists: so every written path is deleted first (``delete=False`` only where
the caller knows the commit has nothing there: a rw commit whose parent is its base, at a path the
base lacks), and a file is created by sending its first chunk even when it is empty.

The DeleteFile and AddFile requests are given already encoded (bytes equal to the SDK message's,
by `codec.ModifyFileEncoder`: building two betterproto messages per file cost more than sending
them); a Pachtray client's channel passes them on (`codec.serialize`).
"""

from __future__ import annotations

import threading
from typing import Callable, Iterator

from pachyderm_sdk.api import pfs

from pachtray.pfs import codec

CHUNK = 1024 * 1024

_encoders = threading.local()  # one per thread: an encoder refills its messages


def _encoder() -> codec.ModifyFileEncoder:
    found = getattr(_encoders, "encoder", None)
    if found is None:
        found = _encoders.encoder = codec.ModifyFileEncoder()
    return found


def delete(path: str) -> bytes:
    return _encoder().delete_file(path)


def replace_with_copy(path: str, src: pfs.File) -> Iterator[pfs.ModifyFileRequest | bytes]:
    """``path`` becomes a copy of ``src`` (a file of a commit: nothing is downloaded)."""
    yield delete(path)
    yield pfs.ModifyFileRequest(copy_file=pfs.CopyFile(dst=path, src=src))


def replace_with_bytes(path: str, data: bytes, *, delete: bool = True) -> Iterator[bytes]:
    """``path`` becomes ``data`` (a small file's content, held in memory)."""
    if delete:
        yield _encoder().delete_file(path)
    yield _encoder().add_file(path, data)


def replace_with_file(path: str, local_path, *, chunk: int = CHUNK, delete: bool = True,
                      sent: Callable[[int], None] | None = None) -> Iterator[bytes]:
    """``path`` becomes the content of the local file ``local_path``, read a chunk at a time;
    ``sent(n)`` is told of each chunk's size as it goes (progress, or a cancel that raises)."""
    with open(local_path, "rb") as f:  # (opened first: a file that is gone sends nothing, not a lone delete)
        if delete:
            yield _encoder().delete_file(path)
        data = f.read(chunk)  # sent even when empty: that creates an empty file
        while True:
            yield _encoder().add_file(path, data)
            if sent is not None:
                sent(len(data))
            if not (data := f.read(chunk)):
                break
