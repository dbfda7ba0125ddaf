"""The cold-read floor of a Python FUSE daemon: the smallest file system that streams one PFS file.

    .venv/bin/python benchmarks/stream_floor.py MOUNT_DIR PORT REPO@COMMIT:/PATH   # prints "ready", serves until stdin closes

Each open of the file starts one GetFile on the server at 127.0.0.1:PORT, on the daemon's own
channel (`pfs.client.connect`) and call (`pfs.client.get_file`: the SDK's message class, the
content a view of each received message), and
answers the kernel's reads from what has arrived, as Pachtray's mount answers reads from memory
(mount/replies.py, the same mount options). Nothing else: no disk cache, no seeking back, no
bookkeeping, no commit resolution. Benchmark 1 reads each cold commit through this too, so a run
shows, beside the mount's ratio to one SDK stream, the ratio that no daemon built on Python's gRPC
and libfuse can beat on the same machine (issue #13; docs/benchmarks.md, seventh round).
"""

from __future__ import annotations

import bisect
import errno
import os
import sys
import threading

os.environ.setdefault("FUSE_LIBRARY_NAME", "fuse3")  # before mfusepy is imported
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "app"))
from fuse_floor import ShowsOneFile, serve  # noqa: E402 - the same mount options and read-ahead
from pachtray.mount import replies  # noqa: E402 - the mount's own read replies
from pachtray.mount.fs import _Fuse  # noqa: E402 - the mount's read_buf path
from pachtray.pfs.client import PachClient, connect, get_file  # noqa: E402
from pachyderm_sdk.api import pfs  # noqa: E402

KEEP_BEHIND = 64 << 20  # content kept below the furthest read (the kernel's read-ahead runs in parallel)


class Stream:
    """One GetFile, received by a thread into views that readers wait for."""

    def __init__(self, client: PachClient, file: pfs.File):
        self.starts: list[int] = []
        self.views: list[memoryview] = []
        self.received = 0
        self.done = False
        self.error: BaseException | None = None
        self.furthest = 0
        self.cond = threading.Condition()
        self.call = get_file(client, file=file)
        threading.Thread(target=self._receive, daemon=True).start()

    def _receive(self) -> None:
        try:
            for message in self.call:
                view = message.value
                with self.cond:
                    self.starts.append(self.received)
                    self.views.append(view)
                    self.received += len(view)
                    self.cond.notify_all()
        except BaseException as e:  # noqa: BLE001 - handed to the reader as EIO
            self.error = e
        with self.cond:
            self.done = True
            self.cond.notify_all()

    def pieces(self, size: int, offset: int) -> list[tuple[memoryview, int, int]]:
        end = offset + size
        with self.cond:
            self.cond.wait_for(lambda: self.received >= end or self.done)
            if self.error is not None:
                raise OSError(errno.EIO, str(self.error))
            end = min(end, self.received)
            out = []
            i = max(bisect.bisect_right(self.starts, offset) - 1, 0)
            while offset < end and i < len(self.views):
                start, view = self.starts[i], self.views[i]
                n = min(end, start + len(view)) - offset
                if n > 0:
                    out.append((view, offset - start, n))
                    offset += n
                i += 1
            self.furthest = max(self.furthest, end)
            drop = 0
            while drop < len(self.views) - 1 and self.starts[drop + 1] + KEEP_BEHIND <= self.furthest:
                drop += 1
            if drop:  # the views already sent leave with their messages' memory
                del self.starts[:drop], self.views[:drop]
            return out

    def close(self) -> None:
        self.call.cancel()


class OneStream(ShowsOneFile):
    """`/<file name>`; each open a new GetFile."""

    def __init__(self, client: PachClient, file: pfs.File):
        self.client, self.file = client, file
        self.name = "/" + os.path.basename(file.path)
        self.size = client.pfs.inspect_file(file=file).size_bytes
        self.streams: dict[int, Stream] = {}
        self.next_fh = 1

    def open(self, path, fi):
        self.check(path)
        fi.fh, self.next_fh = self.next_fh, self.next_fh + 1
        self.streams[fi.fh] = Stream(self.client, self.file)
        return 0

    def read_buf(self, path, bufpp, size, offset, fi):
        replies.reply(bufpp, self.streams[fi.fh].pieces(size, offset))
        return 0

    def release(self, path, fi):
        stream = self.streams.pop(fi.fh, None)
        if stream is not None:
            stream.close()
        return 0


def main() -> int:
    mount_dir, port, uri = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    ops = OneStream(connect(f"grpc://127.0.0.1:{port}"), pfs.File.from_uri(uri))
    return serve(ops, mount_dir, "stream-floor", _Fuse)  # _Fuse: the mount's read_buf path


if __name__ == "__main__":
    raise SystemExit(main())
