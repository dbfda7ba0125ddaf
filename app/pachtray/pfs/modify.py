"""Writing a commit: the ModifyFile requests that make a path hold exactly some content, shared by
rw mounts (mount.staging) and uploads (pachtray.uploads).

pachd applies a ModifyFile stream in order to the commit (or the branch head) it names, and PFS
appends to a file that exists: so every written path is deleted first, and a file is created
by sending its first chunk even when it is empty.
"""

from __future__ import annotations

from typing import Callable, Iterator

from pachyderm_sdk.api import pfs

CHUNK = 1024 * 1024


def delete(path: str) -> pfs.ModifyFileRequest:
    return pfs.ModifyFileRequest(delete_file=pfs.DeleteFile(path=path))


def replace_with_copy(path: str, src: pfs.File) -> Iterator[pfs.ModifyFileRequest]:
    """``path`` becomes a copy of ``src`` (a file of a commit: nothing is downloaded)."""
    yield delete(path)
    yield pfs.ModifyFileRequest(copy_file=pfs.CopyFile(dst=path, src=src))


def replace_with_file(path: str, local_path, *, chunk: int = CHUNK,
                      sent: Callable[[int], None] | None = None) -> Iterator[pfs.ModifyFileRequest]:
    """``path`` becomes the content of the local file ``local_path``, read a chunk at a time;
    ``sent(n)`` is told of each chunk's size as it goes (progress, or a cancel that raises)."""
    yield delete(path)
    with open(local_path, "rb") as f:
        data = f.read(chunk)  # sent even when empty: that creates an empty file
        while True:
            yield pfs.ModifyFileRequest(add_file=pfs.AddFile(path=path, raw=data))
            if sent is not None:
                sent(len(data))
            if not (data := f.read(chunk)):
                break
