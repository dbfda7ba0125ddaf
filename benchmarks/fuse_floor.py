"""The kernel's FUSE floor for re-reads: the smallest FUSE file system that shows one local file.

    .venv/bin/python benchmarks/fuse_floor.py MOUNT_DIR FILE     # prints "ready", serves until stdin closes

It answers reads with pread() of FILE and lets the kernel keep the pages across opens (keep_cache),
with the mount options of Pachtray's mount (attribute and entry timeouts, max_read, read-ahead).
Re-reading a file the kernel already holds sends the daemon an open and a release and no read, so
a warm re-read through it costs what the kernel's FUSE path costs and nothing of any daemon:
benchmark 2 compares Pachtray's warm re-read with this (issue #13: "as close to the local page
cache as the kernel's FUSE path allows (measure what it allows)").
"""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
import threading

os.environ.setdefault("FUSE_LIBRARY_NAME", "fuse3")
import mfusepy as fuse  # noqa: E402 - needs FUSE_LIBRARY_NAME first

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "app"))
from pachtray.mount.fs import ATTR_TIMEOUT, MAX_READ, READ_AHEAD_KB  # noqa: E402 - the same options


class ShowsOneFile(fuse.Operations):
    """A root folder with one read-only file `name` of `size` bytes (mtime `mtime_ns`)."""

    use_ns = True
    name, size, mtime_ns = "/", 0, 0

    def init_with_config(self, conn, config) -> None:
        conn.max_read = MAX_READ  # must match the max_read mount option

    def getattr(self, path, fh=None):
        if path == "/":
            return {"st_mode": stat.S_IFDIR | 0o555, "st_nlink": 2}
        self.check(path)
        return {"st_mode": stat.S_IFREG | 0o444, "st_nlink": 1, "st_size": self.size,
                "st_mtime": self.mtime_ns, "st_ctime": self.mtime_ns, "st_atime": self.mtime_ns}

    def readdir(self, path, fh):
        return [".", "..", self.name[1:]]

    def check(self, path: str) -> None:
        if path != self.name:
            raise OSError(errno.ENOENT, path)


class OneFile(ShowsOneFile):
    """`/<name of FILE>`, from a descriptor of FILE, its pages kept by the kernel across opens."""

    def __init__(self, source: str):
        self.name = "/" + os.path.basename(source)
        self.fd = os.open(source, os.O_RDONLY)
        st = os.fstat(self.fd)
        self.size, self.mtime_ns = st.st_size, st.st_mtime_ns

    def open(self, path, fi):
        self.check(path)
        fi.keep_cache = 1
        return 0

    def read(self, path, size, offset, fi):
        return os.pread(self.fd, size, offset)

    def release(self, path, fi):
        return 0


def raise_read_ahead(mount_dir: str) -> None:
    dev = os.stat(mount_dir).st_dev
    try:
        with open(f"/sys/class/bdi/{os.major(dev)}:{os.minor(dev)}/read_ahead_kb", "w") as f:
            f.write(str(READ_AHEAD_KB))
    except OSError:
        pass


def serve(ops: fuse.Operations, mount_dir: str, fsname: str, fuse_class=fuse.FUSE) -> int:
    """Mount `ops` with Pachtray's mount options, print "ready", serve until stdin closes, unmount."""
    threading.Thread(target=lambda: fuse_class(ops, mount_dir, raw_fi=True, foreground=True, fsname=fsname,
                                               attr_timeout=ATTR_TIMEOUT, entry_timeout=ATTR_TIMEOUT,
                                               max_read=MAX_READ), daemon=True).start()
    while not os.path.ismount(mount_dir):
        threading.Event().wait(0.02)
    raise_read_ahead(mount_dir)
    print("ready", flush=True)
    sys.stdin.read()  # until the benchmark closes our stdin
    subprocess.run(["fusermount3", "-u", mount_dir], check=False)
    return 0


def main() -> int:
    return serve(OneFile(sys.argv[2]), sys.argv[1], "fuse-floor")


if __name__ == "__main__":
    raise SystemExit(main())
