"""The FUSE file system: one mount, each top-level folder a view (a commit, a branch, a folder).

libfuse3's high-level API through mfusepy. Immutable commit views let the kernel keep file pages
across opens (`keep_cache`) and cache attributes and entries for a long time; when a view goes
away or its content changes, the kernel's cached attributes, pages and names under it are invalidated.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import itertools
import logging
import os
import posixpath
import shutil
import subprocess
import threading
import time

os.environ.setdefault("FUSE_LIBRARY_NAME", "fuse3")
import mfusepy as fuse  # noqa: E402 - needs FUSE_LIBRARY_NAME first

from pachtray import malloc  # noqa: E402
from pachtray.mount import replies  # noqa: E402
from pachtray.errors import PachtrayError  # noqa: E402
from pachtray.pfs.names import NAME_MAX  # noqa: E402
from pachtray.mount.cache import ChunkCache  # noqa: E402
from pachtray.mount.reader import ClientFn, CommitTree, ReadState, attrs, norm, reader_for  # noqa: E402
from pachtray.mount.staging import RwView, _BaseHandle, _BlobHandle  # noqa: E402

__all__ = ["FuseMount", "CommitView", "RwView", "LocalDirView", "MountError", "clean_stale_mount"]

log = logging.getLogger(__name__)

ATTR_TIMEOUT = 60.0
MAX_READ = 1024 * 1024
FALLOC_FL_KEEP_SIZE = 1  # linux/falloc.h
READ_AHEAD_KB = 4096
RO_FILE, RO_DIR = 0o100444, 0o040555
SEEN_PATHS_KEPT = 200_000


class MountError(PachtrayError):
    def __init__(self, message: str):
        super().__init__(message, "Mount failed")


def _fusermount() -> str:
    return shutil.which("fusermount3") or shutil.which("fusermount") or "fusermount3"


def clean_stale_mount(mount_dir: str) -> None:
    """Unmount a dead FUSE left at `mount_dir` by a killed process; refuse a live mount.

    A dead FUSE answers ENOTCONN, but only to calls the kernel does not serve from its caches
    (a stat may still succeed), so the probe is a directory listing.
    """
    try:
        os.listdir(mount_dir)
    except FileNotFoundError:
        return
    except OSError as e:
        if e.errno != errno.ENOTCONN:
            raise MountError(f"cannot use mount dir {mount_dir}: {e.strerror}") from None
        cmd = [_fusermount(), "-uz", mount_dir]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0 and os.path.ismount(mount_dir):
            raise MountError(f"a stale mount is left at {mount_dir} and could not be removed "
                             f"({r.stderr.strip()}); run: {' '.join(cmd)}") from None
        log.info("removed a stale mount at %s", mount_dir)
        return
    if os.path.ismount(mount_dir):
        raise MountError(f"{mount_dir} is already a mount point (another Pachtray or mount-server?); "
                         f"unmount it with: {_fusermount()} -u {mount_dir}")


def _erofs(*_args, **_kw):
    raise OSError(errno.EROFS, "read-only mount")


class _ReadOnly:
    """Every change to a read-only view fails with EROFS; PFS has no symbolic links."""

    writable = False
    invalidate = None
    create = mkdir = unlink = rmdir = rename = truncate = chmod = utimens = link = symlink = _erofs

    def readlink(self, path: str) -> str:
        self.getattr(path)
        raise OSError(errno.EINVAL, f"{path} is not a symbolic link")

    def statfs(self) -> dict:
        return {"f_bsize": 4096, "f_frsize": 4096, "f_blocks": 0, "f_bfree": 0, "f_bavail": 0,
                "f_files": 0, "f_ffree": 0, "f_favail": 0, "f_namemax": 255}


class _TreeHandle:
    def __init__(self, tree: CommitTree, path: str, size: int, mtime: float):
        self.tree, self.path, self.size, self.mtime = tree, path, size, mtime
        self.state = ReadState()

    def read(self, size: int, offset: int) -> bytes:
        return self.tree.read(self.path, self.size, offset, size, self.state)

    def sources(self, size: int, offset: int) -> list:
        return self.tree.sources(self.path, self.size, offset, size, self.state)

    def stat(self) -> dict:
        return attrs(RO_FILE, self.size, self.mtime)

    def write(self, data, offset):
        _erofs()

    def fsync(self) -> None:
        pass

    def release(self) -> None:
        if self.state.next_offset > MAX_READ:  # a big read ends: its call goes, its buffers' memory back
            self.tree.closed(self.path)
            malloc.trim()


class CommitView(_ReadOnly):
    """A finished commit, read-only and lazy; `paths` limits what is visible (their parents show too)."""

    keep_cache = True

    def __init__(self, client_fn: ClientFn, project: str, repo: str, commit_id: str | None,
                 paths: list[str] | tuple[str, ...] = ("/",), cache: ChunkCache | None = None):
        if cache is None:
            raise TypeError("CommitView needs the mount's ChunkCache")
        self.tree = CommitTree(client_fn, project, repo, commit_id, reader_for(cache))
        self.paths = sorted({norm(p) for p in paths} or {"/"})
        self._everything = "/" in self.paths
        self._allowed = set(self.paths)
        self._ancestors = {a for p in self.paths for a in self._parents(p)}

    @staticmethod
    def _parents(path: str):
        while path != "/":
            path = posixpath.dirname(path)
            yield path

    def _visible(self, path: str) -> bool:
        if self._everything or path in self._allowed or path in self._ancestors:
            return True
        return any(a in self._allowed for a in self._parents(path))

    def _entry(self, path: str):
        e = self.tree.stat(path) if self._visible(path) else None
        if e is None:
            raise OSError(errno.ENOENT, path)
        return e

    def getattr(self, path: str, handle=None) -> dict:
        if handle is not None:
            return handle.stat()
        e = self._entry(path)
        return attrs(RO_DIR if e.is_dir else RO_FILE, 0 if e.is_dir else e.size, e.mtime)

    def readdir_from(self, path: str, start: int):
        """(index, name, mode) of the entries from the `start`-th on, in the commit's order;
        pages are fetched as the kernel asks for more, never the whole folder in one call."""
        if not self._entry(path).is_dir:
            raise OSError(errno.ENOTDIR, path)
        entries = enumerate(self.tree.entries_from(path, start), start)
        if self._everything:
            for i, e in entries:
                yield i, e.name, RO_DIR if e.is_dir else RO_FILE
            return
        for i, e in entries:
            if self._visible(posixpath.join(path, e.name)):
                yield i, e.name, RO_DIR if e.is_dir else RO_FILE

    def prepare(self) -> None:
        """Fetch the root's first page, so the mount answers at once when it appears (OSError if it cannot)."""
        next(iter(self.tree.entries_from("/", 0)), None)

    def open(self, path: str, flags: int) -> _TreeHandle:
        if (flags & os.O_ACCMODE) != os.O_RDONLY or flags & os.O_TRUNC:
            _erofs()
        e = self._entry(path)
        if e.is_dir:
            raise OSError(errno.EISDIR, path)
        return _TreeHandle(self.tree, path, e.size, e.mtime)


class _FdHandle:
    def __init__(self, fd: int):
        self.fd = fd

    def read(self, size: int, offset: int) -> bytes:
        return os.pread(self.fd, size, offset)

    def write(self, data: bytes, offset: int) -> int:
        return os.pwrite(self.fd, data, offset)

    def stat(self) -> dict:
        st = os.fstat(self.fd)
        return attrs(st.st_mode, st.st_size, st.st_mtime)

    def fsync(self) -> None:
        os.fsync(self.fd)

    def release(self) -> None:
        os.close(self.fd)


class LocalDirView:
    """A local folder shown as is (the datum `out` folder)."""

    writable = True
    keep_cache = False
    invalidate = None

    def __init__(self, path: str | os.PathLike):
        self.root = os.path.abspath(path)
        os.makedirs(self.root, exist_ok=True)

    def _real(self, path: str) -> str:
        return self.root + norm(path) if norm(path) != "/" else self.root

    def getattr(self, path: str, handle=None) -> dict:
        if handle is not None:
            return handle.stat()
        st = os.lstat(self._real(path))
        return attrs(st.st_mode, st.st_size, st.st_mtime)

    def readdir(self, path: str) -> list[tuple[str, dict]]:
        with os.scandir(self._real(path)) as it:
            return [(e.name, {"st_mode": e.stat(follow_symlinks=False).st_mode}) for e in it]

    def open(self, path: str, flags: int) -> _FdHandle:
        return _FdHandle(os.open(self._real(path), flags & ~os.O_CREAT))

    def create(self, path: str, mode: int, flags: int) -> _FdHandle:
        return _FdHandle(os.open(self._real(path), flags | os.O_CREAT, mode & 0o7777))

    def truncate(self, path: str, length: int) -> None:
        os.truncate(self._real(path), length)

    def mkdir(self, path: str, mode: int) -> None:
        os.mkdir(self._real(path), mode & 0o7777)

    def unlink(self, path: str) -> None:
        os.unlink(self._real(path))

    def rmdir(self, path: str) -> None:
        os.rmdir(self._real(path))

    def rename(self, old: str, new: str) -> None:
        os.rename(self._real(old), self._real(new))

    def link(self, old: str, new: str) -> None:
        os.link(self._real(old), self._real(new))

    def symlink(self, path: str, target: str) -> None:
        os.symlink(target, self._real(path))

    def readlink(self, path: str) -> str:
        return os.readlink(self._real(path))

    def chmod(self, path: str, mode: int) -> None:
        os.chmod(self._real(path), mode & 0o7777)

    def utimens(self, path: str, times) -> None:
        if times is None:
            os.utime(self._real(path))
        else:
            os.utime(self._real(path), ns=times)

    def statfs(self) -> dict:
        st = os.statvfs(self.root)
        return {k: getattr(st, k) for k in ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail",
                                             "f_files", "f_ffree", "f_favail", "f_namemax")}


_libfuse = fuse._libfuse
_libfuse.fuse_invalidate_path.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
_libfuse.fuse_invalidate_path.restype = ctypes.c_int
_libfuse.fuse_get_session.argtypes = [ctypes.c_void_p]
_libfuse.fuse_get_session.restype = ctypes.c_void_p
_libfuse.fuse_lowlevel_notify_inval_entry.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_char_p,
                                                      ctypes.c_size_t]
_libfuse.fuse_lowlevel_notify_inval_entry.restype = ctypes.c_int
ROOT_NODE_ID = 1


def _track_read(reads, pid: int, name: str, path: str, handle) -> None:
    """Tell the read tracker (mount/reads.py) which commit's file a process opened for reading.

    `commit is None`, never `not commit`: a protobuf message's truth test walks all its fields.
    """
    if isinstance(handle, _TreeHandle):
        commit, modified, size = handle.tree.commit, False, handle.size
    elif isinstance(handle, _BaseHandle):
        commit, modified, size = handle.view.base.commit, False, handle.size
    elif isinstance(handle, _BlobHandle):
        commit, modified, size = handle.view.base.commit, True, handle.stat()["st_size"]
    else:
        return  # a local folder (the datum `out`): nothing of Pachyderm's
    reads.opened(pid, name, path, "" if commit is None else commit.id, modified, size)


_kept = threading.local()
_gil_state_ensure = ctypes.pythonapi.PyGILState_Ensure
THREAD_STATES_KEPT = [0]  # libfuse threads given a lasting Python thread state (tests read it)


def _eio_on_surprise(operation):
    """`operation` (a FUSE method of mfusepy's) answering EIO, with the traceback in the log, for an
    exception that is not an OSError: mfusepy would answer EINVAL, which tells a program its
    arguments were wrong (rsync: "mkdir failed: Invalid argument")."""
    @functools.wraps(operation)
    def guarded(self, *args, **kwargs):
        try:
            return operation(self, *args, **kwargs)
        except OSError:
            raise
        except Exception as e:
            if operation.__name__ == "init":
                raise
            log.exception("FUSE operation %s failed", operation.__name__)
            raise OSError(errno.EIO, f"{operation.__name__}: internal error ({type(e).__name__})") from e
    return guarded


_GUARDED: dict = {}  # mfusepy's FUSE method -> it with _eio_on_surprise


class _Fuse(fuse.FUSE):
    """mfusepy's FUSE that keeps a Python thread state per libfuse thread, and whose read_buf,
    like its read, passes a path libfuse lost on as None (a file unlinked while open, in a folder
    that went too: the handle answers)."""

    def _wrapper(self, func, *args, **kwargs):
        # ctypes makes a thread state for each callback from a thread Python did not start and
        # deletes it on return: a mapped and unmapped frame stack, page faults, TLB shootdowns,
        # ~60 µs of a small file's ~200 in a rw mount (docs/benchmarks.md). One extra
        # PyGILState_Ensure, never released, keeps the thread's state for its next callbacks (a
        # thread that ends leaves its few KiB behind; libfuse 3.14 keeps its workers: 10 states
        # kept through six bursts of 20 concurrent readers).
        if not getattr(_kept, "state", False):
            _gil_state_ensure()
            _kept.state = True
            THREAD_STATES_KEPT[0] += 1
        guarded = _GUARDED.get(func.__func__)
        if guarded is None:
            guarded = _GUARDED.setdefault(func.__func__, _eio_on_surprise(func.__func__))
        return super()._wrapper(guarded.__get__(self), *args, **kwargs)

    def read_buf(self, path, bufpp, size, offset, fip):
        fh = fip.contents if self.raw_fi else fip.contents.fh
        return self.operations.read_buf(None if path is None else path.decode(self.encoding, self.errors),
                                        bufpp, size, offset, fh)


class _Ops(fuse.Operations):
    """FUSE callbacks: route a path to its view, keep the table of open handles.

    There is deliberately no `flush`: the kernel then never makes close() wait for this process
    (a forced, unkillable wait that deadlocks a process closing a file of its own mount while
    holding the GIL, e.g. at interpreter exit).
    """

    use_ns = True

    def __init__(self, mount: "FuseMount"):
        self.m = mount
        self._handles: dict[int, tuple[object, object]] = {}
        self._dir_listings: dict[int, list] = {}  # open folder handle -> listing taken at offset 0
        self._ids = itertools.count(1)

    def _route(self, path: str | None):
        if path is None:  # libfuse lost the name of an unlinked open file (its folder went too)
            raise OSError(errno.ESTALE, "the file has no name any more")
        last = path[path.rfind("/") + 1:]
        if len(last) > NAME_MAX // 4 and len(os.fsencode(last)) > NAME_MAX:  # (4 bytes a character at most)
            raise OSError(errno.ENAMETOOLONG, path)  # as a local file system says; the kernel allows 1024
        name, _, rest = path.lstrip("/").partition("/")
        view = self.m._views.get(name)
        if view is None:
            raise OSError(errno.ENOENT, path)
        return name, view, "/" + rest

    def _handle(self, fi):
        try:
            return self._handles[fi.fh][1]
        except KeyError:
            raise OSError(errno.EBADF, "unknown file handle") from None

    def _register(self, view, handle, fi) -> int:
        fh = next(self._ids)
        self._handles[fh] = (view, handle)
        fi.fh = fh
        fi.keep_cache = 1 if view.keep_cache else 0
        return 0

    def init_with_config(self, conn, config) -> None:
        conn.max_read = MAX_READ  # must match the max_read mount option
        self.m._fuse_ptr = _libfuse.fuse_get_context().contents.fuse

    def getattr(self, path, fh=None):
        if fh is not None and fh.fh in self._handles:
            return self._handle(fh).stat()
        if path == "/":
            return attrs(0o040755, 0, self.m.started)
        name, view, sub = self._route(path)
        found = view.getattr(sub)
        self.m._seen_path(name, path)
        return found

    def opendir(self, path):
        if path != "/":  # a name the kernel still caches may be gone: as stat says
            _, view, sub = self._route(path)
            if not view.getattr(sub)["st_mode"] & 0o040000:
                raise OSError(errno.ENOTDIR, path)
        return next(self._ids)

    def releasedir(self, path, fh):
        self._dir_listings.pop(fh, None)
        return 0

    def readdir_with_offset(self, path, offset, fh):
        """Entries from `offset` on, each with the offset after it, as the kernel's buffer takes them
        (attributes: a stat dict, or just the mode, which is all a directory entry carries).

        A view with `readdir_from` is listed lazily; other views' listings are taken once per
        open folder (offset 0) and kept until it is closed, so a big folder costs O(n), not O(n²).
        """
        dot = {"st_mode": 0o040755}
        for off, name in ((1, "."), (2, "..")):
            if offset < off:
                yield name, dot, off
        start = max(offset - 2, 0)
        if path == "/":
            items = enumerate((n, dot) for n in sorted(self.m.views()))
        else:
            _, view, sub = self._route(path)
            if hasattr(view, "readdir_from"):
                for i, name, st in view.readdir_from(sub, start):
                    yield name, st, i + 3
                return
            listing = self._dir_listings.get(fh) if offset else None
            if listing is None:
                listing = self._dir_listings[fh] = view.readdir(sub)
            items = enumerate(listing)
        for i, (name, st) in items:
            if i >= start:
                yield name, st, i + 3

    def access(self, path, amode):
        if path == "/":
            return 0
        _, view, sub = self._route(path)
        view.getattr(sub)
        if amode & os.W_OK and not view.writable:
            raise OSError(errno.EROFS, path)
        return 0

    def open(self, path, fi):
        name, view, sub = self._route(path)
        handle = view.open(sub, fi.flags)
        if self.m.reads is not None and fi.flags & os.O_ACCMODE != os.O_WRONLY:
            _track_read(self.m.reads, fuse.fuse_get_context()[2], name, sub, handle)
        return self._register(view, handle, fi)

    def create(self, path, mode, fi):
        view, sub = self._writable_route(path)
        return self._register(view, view.create(sub, mode, fi.flags), fi)

    def read_buf(self, path, bufpp, size, offset, fi):
        """A read, answered as one buffer filled in C (mount/replies.py); handles
        with `sources` give their pieces uncopied, the others their bytes."""
        handle = self._handle(fi)
        if hasattr(handle, "sources"):
            pieces = handle.sources(size, offset)
        else:
            data = handle.read(size, offset)
            pieces = [(data, 0, len(data))] if data else []
        replies.reply(bufpp, pieces)
        return 0

    def write(self, path, data, offset, fi):
        return self._handle(fi).write(data, offset)

    def fsync(self, path, datasync, fi):
        self._handle(fi).fsync()
        return 0

    def release(self, path, fi):
        entry = self._handles.pop(fi.fh, None)
        if entry is not None:
            entry[1].release()
        return 0

    def _writable_route(self, path: str | None):
        if path is not None and posixpath.dirname(path) == "/":
            if path.lstrip("/") in self.m._views:
                raise OSError(errno.EBUSY, f"{path} is a mount")
            raise OSError(errno.EACCES, "only mounts live at the top of the mount dir")
        _, view, sub = self._route(path)
        return view, sub

    def truncate(self, path, length, fh=None):
        view, sub = self._writable_route(path)
        view.truncate(sub, length)
        return 0

    def fallocate(self, path, mode, offset, length, fi):
        """`fallocate -l` and posix_fallocate, as a file system that reserves no blocks: the file grows
        to `offset + length` (with KEEP_SIZE: nothing to do); punching holes and the other modes are
        not supported."""
        if mode & ~FALLOC_FL_KEEP_SIZE:
            raise OSError(errno.EOPNOTSUPP, "only plain fallocate is supported")
        view, sub = self._writable_route(path)
        if not mode & FALLOC_FL_KEEP_SIZE and offset + length > self._handle(fi).stat()["st_size"]:
            view.truncate(sub, offset + length)
        return 0

    def mkdir(self, path, mode):
        view, sub = self._writable_route(path)
        view.mkdir(sub, mode)
        return 0

    def unlink(self, path):
        view, sub = self._writable_route(path)
        view.unlink(sub)
        return 0

    def rmdir(self, path):
        view, sub = self._writable_route(path)
        view.rmdir(sub)
        return 0

    def _one_view(self, a: str, b: str):
        """(view, sub_a, sub_b) of two writable paths of the same view (EXDEV across mounts)."""
        view, sub_a = self._writable_route(a)
        other, sub_b = self._writable_route(b)
        if view is not other:
            raise OSError(errno.EXDEV, "not within one mount")
        return view, sub_a, sub_b

    def rename(self, old, new):
        view, sub_old, sub_new = self._one_view(old, new)
        view.rename(sub_old, sub_new)
        return 0

    def mknod(self, path, mode, dev):
        self._writable_route(path)
        raise OSError(errno.EPERM, "PFS holds files and folders only: no devices, fifos or sockets")

    def link(self, target, source):
        """`ln source target` (mfusepy's names)."""
        view, sub_new, sub_old = self._one_view(target, source)
        view.link(sub_old, sub_new)
        return 0

    def symlink(self, target, source):
        """`ln -s source target`: the link `target` holds the text `source`."""
        view, sub = self._writable_route(target)
        view.symlink(sub, source)
        return 0

    def readlink(self, path):
        if path == "/":
            raise OSError(errno.EINVAL, path)
        _, view, sub = self._route(path)
        return view.readlink(sub)

    def chmod(self, path, mode):
        view, sub = self._writable_route(path)
        view.chmod(sub, mode)
        return 0

    def chown(self, path, uid, gid):
        return 0

    def utimens(self, path, times=None):
        view, sub = self._writable_route(path)
        view.utimens(sub, times)
        return 0

    def statfs(self, path):
        if path == "/":
            return _ReadOnly().statfs()
        _, view, _ = self._route(path)
        return view.statfs()


class FuseMount:
    """One FUSE mount at `mount_dir` whose top-level folders are the views.

    libfuse installs handlers for SIGTERM, SIGINT and SIGHUP where they are at their default,
    so a process that wants its own must install them before `start()`.
    """

    def __init__(self, mount_dir: str | os.PathLike, *, allow_other: bool = False, reads=None):
        self.mount_dir = os.path.abspath(mount_dir)
        self.allow_other = allow_other
        self.reads = reads  # a mount.reads.ReadTracker told of every open for reading, or None
        self.started = time.time()
        self._views: dict[str, object] = {}
        self._seen: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._fuse_ptr: int | None = None

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        clean_stale_mount(self.mount_dir)
        os.makedirs(self.mount_dir, exist_ok=True)
        self._error = None
        self._thread = threading.Thread(target=self._run, name="fuse", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not os.path.ismount(self.mount_dir):
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise MountError(f"could not mount FUSE at {self.mount_dir}: {self._error or 'timed out'}")
            time.sleep(0.02)
        self._raise_read_ahead()

    def _run(self) -> None:
        # Not hard_remove: libfuse renames a file unlinked while open to `.fuse_hidden*` until it is
        # closed, so fstat and ftruncate on its descriptor keep working (RwView never lists nor
        # commits those names).
        options = {"fsname": "pachtray", "subtype": "pachtray", "attr_timeout": ATTR_TIMEOUT,
                   "entry_timeout": ATTR_TIMEOUT, "negative_timeout": 0, "max_read": MAX_READ}
        if self.allow_other:
            options["allow_other"] = True
        try:
            _Fuse(_Ops(self), self.mount_dir, raw_fi=True, foreground=True, **options)
        except BaseException as e:  # reported by start() or seen as the mount going away
            self._error = e
            log.error("FUSE loop at %s ended: %s", self.mount_dir, e)

    def _raise_read_ahead(self) -> None:
        """Let the kernel read ahead in big requests (1 MiB instead of 128 KiB per round trip)."""
        dev = os.stat(self.mount_dir).st_dev
        knob = f"/sys/class/bdi/{os.major(dev)}:{os.minor(dev)}/read_ahead_kb"
        try:
            with open(knob, "w") as f:
                f.write(str(READ_AHEAD_KB))
        except OSError as e:
            log.info("cannot raise %s: %s", knob, e)

    def stop(self) -> None:
        """Unmount; a busy mount is detached lazily so stopping never hangs."""
        if self._thread is None:
            return
        if os.path.ismount(self.mount_dir):
            r = subprocess.run([_fusermount(), "-u", self.mount_dir], capture_output=True, text=True)
            if r.returncode != 0:
                log.warning("unmount of %s failed (%s); detaching it lazily", self.mount_dir, r.stderr.strip())
                subprocess.run([_fusermount(), "-uz", self.mount_dir], capture_output=True)
        self._thread.join(15)
        self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # --- views --------------------------------------------------------------------------------
    def add_view(self, name: str, view) -> None:
        if not name or "/" in name or name in (".", "..") or "\0" in name:
            raise ValueError(f"bad mount name {name!r}")
        with self._lock:
            self._views[name] = view
        view.invalidate = lambda: self._invalidate(name)
        view.mountpoint = os.path.join(self.mount_dir, name)
        self._invalidate(name)

    def remove_view(self, name: str):
        with self._lock:
            view = self._views.pop(name, None)
        self._invalidate(name)
        return view

    def views(self) -> dict[str, object]:
        with self._lock:
            return dict(self._views)

    def _seen_path(self, name: str, path: str) -> None:
        seen = self._seen.setdefault(name, set())
        if len(seen) < SEEN_PATHS_KEPT:
            seen.add(path)

    def _invalidate(self, name: str) -> None:
        """Make the kernel forget what it cached under /name (never call this from a FUSE op).

        Attributes and pages of every path looked up there are dropped; the entries (names)
        too, unless a process has its cwd or a file there: forgetting the entry of a folder in
        use would break that process's getcwd().
        """
        ptr = self._fuse_ptr
        paths = self._seen.pop(name, set()) | {"/" + name}
        if ptr is None or not self.running:
            return
        for p in paths:
            _libfuse.fuse_invalidate_path(ptr, p.encode("utf-8", "surrogateescape"))
        if not self.busy_holders(name):
            raw = name.encode("utf-8", "surrogateescape")
            _libfuse.fuse_lowlevel_notify_inval_entry(_libfuse.fuse_get_session(ptr), ROOT_NODE_ID, raw, len(raw))

    def busy_holders(self, name: str, writing: bool = False) -> list[str]:
        """Processes with an open file or their cwd under the view, as 'bash (pid 123)'; with
        `writing`, only those with a file open for writing there."""
        top = os.path.join(self.mount_dir, name)
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            if self._holds(pid, top, writing):
                try:
                    with open(f"/proc/{pid}/comm") as f:
                        comm = f.read().strip()
                except OSError:
                    continue
                found.append(f"{comm} (pid {pid})")
        return found

    @staticmethod
    def _holds(pid: str, top: str, writing: bool) -> bool:
        def inside(link: str) -> bool:
            try:
                target = os.readlink(link)
            except OSError:
                return False
            return target == top or target.startswith(top + "/")

        def for_writing(fd: str) -> bool:
            try:
                with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                    flags = next(int(line.split()[1], 8) for line in f if line.startswith("flags:"))
            except (OSError, StopIteration, ValueError):
                return False
            return flags & os.O_ACCMODE != os.O_RDONLY

        if not writing and (inside(f"/proc/{pid}/cwd") or inside(f"/proc/{pid}/root")):
            return True
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            return False
        return any(inside(f"/proc/{pid}/fd/{fd}") and (not writing or for_writing(fd)) for fd in fds)
