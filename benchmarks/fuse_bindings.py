"""The FUSE bindings' own cost per small file: a null in-memory file system, 1 KiB files written.

    .venv/bin/python benchmarks/fuse_bindings.py mfusepy 5000
    /usr/bin/python3 benchmarks/fuse_bindings.py pyfuse3 5000   # Debian: apt-get install python3-pyfuse3 python3-trio

Each file is a lookup, a create, a write and a release through the kernel and the binding, with no
work behind them: the floor of a rw mount's writes for that binding (issue #13 asked to measure
mfusepy against the alternatives before changing it). Measured on the benchmark machine (loaded,
2 cores): mfusepy 3.1.1 (high-level libfuse API, ctypes) 163-184 µs per file; pyfuse3 3.2.1
(low-level API, Cython, trio) 315-342 µs per file. Pachtray keeps mfusepy.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
import tempfile
import threading
import time


def mfusepy_mount(mnt: str) -> None:
    os.environ.setdefault("FUSE_LIBRARY_NAME", "fuse3")
    import mfusepy as fuse

    class Null(fuse.Operations):
        use_ns = True

        def __init__(self):
            self.files = {"/": (stat.S_IFDIR | 0o755, 0)}
            self.fh = 0

        def getattr(self, path, fh=None):
            if path not in self.files:
                raise OSError(errno.ENOENT, path)
            mode, size = self.files[path]
            return {"st_mode": mode, "st_size": size, "st_nlink": 1}

        def mkdir(self, path, mode):
            self.files[path] = (stat.S_IFDIR | 0o755, 0)
            return 0

        def create(self, path, mode, fi=None):
            self.files[path] = (stat.S_IFREG | 0o644, 0)
            self.fh += 1
            return self.fh

        def write(self, path, data, offset, fh):
            self.files[path] = (stat.S_IFREG | 0o644, offset + len(data))
            return len(data)

        def release(self, path, fh):
            return 0

    fuse.FUSE(Null(), mnt, foreground=True, attr_timeout=60, entry_timeout=60, negative_timeout=0)


def pyfuse3_mount(mnt: str) -> None:
    import pyfuse3
    import trio

    class Null(pyfuse3.Operations):
        def __init__(self):
            super().__init__()
            self.inodes = {pyfuse3.ROOT_INODE: [stat.S_IFDIR | 0o755, 0]}
            self.names = {}
            self.next = pyfuse3.ROOT_INODE + 1

        def _attr(self, ino):
            e = pyfuse3.EntryAttributes()
            mode, size = self.inodes[ino]
            e.st_ino, e.st_mode, e.st_size, e.st_nlink = ino, mode, size, 1
            e.attr_timeout = e.entry_timeout = 60
            return e

        async def getattr(self, inode, ctx=None):
            return self._attr(inode)

        async def lookup(self, parent, name, ctx=None):
            ino = self.names.get((parent, name))
            if ino is None:
                raise pyfuse3.FUSEError(errno.ENOENT)
            return self._attr(ino)

        def _new(self, parent, name, mode):
            ino, self.next = self.next, self.next + 1
            self.inodes[ino] = [mode, 0]
            self.names[(parent, name)] = ino
            return ino

        async def mkdir(self, parent, name, mode, ctx):
            return self._attr(self._new(parent, name, stat.S_IFDIR | 0o755))

        async def create(self, parent, name, mode, flags, ctx):
            ino = self._new(parent, name, stat.S_IFREG | 0o644)
            return pyfuse3.FileInfo(fh=ino), self._attr(ino)

        async def write(self, fh, off, buf):
            self.inodes[fh][1] = off + len(buf)
            return len(buf)

        async def release(self, fh):
            pass

        async def flush(self, fh):
            pass

    pyfuse3.init(Null(), mnt, set(pyfuse3.default_options))
    try:
        trio.run(pyfuse3.main)
    finally:
        pyfuse3.close(unmount=False)


def main() -> int:
    binding, n = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 5000
    mnt = tempfile.mkdtemp(prefix="fuse-binding-")
    serve = {"mfusepy": mfusepy_mount, "pyfuse3": pyfuse3_mount}[binding]
    threading.Thread(target=serve, args=(mnt,), daemon=True).start()
    while not os.path.ismount(mnt):
        time.sleep(0.05)
    try:
        data = os.urandom(1024)
        os.mkdir(os.path.join(mnt, "d"))
        cpu0, t0 = time.process_time(), time.perf_counter()
        for i in range(n):
            with open(os.path.join(mnt, "d", f"f{i}"), "wb") as f:
                f.write(data)
        took = time.perf_counter() - t0
        print(f"{binding}: {took / n * 1e6:.0f} µs per 1 KiB file written "
              f"(process CPU {(time.process_time() - cpu0) / n * 1e6:.0f} µs)")
    finally:
        os.system(f"fusermount3 -u {mnt}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
