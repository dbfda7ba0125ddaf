"""Read replies handed to libfuse as `struct fuse_bufvec` (the high-level API's read_buf), so the
bytes of a read are copied in C, without the GIL, or not at all.

A read through mfusepy's `read` costs two copies under the GIL (a slice of the chunk, the bytes
object libfuse's buffer is filled from) besides the one into the kernel. With read_buf a piece in
memory is copied once into a buffer libfuse frees (`ctypes.memmove` releases the GIL), and a
piece in the disk cache is given as a file descriptor and position: libfuse splices it from the
page cache into /dev/fuse (FUSE_CAP_SPLICE_WRITE) with no copy in this process.

libfuse uses a descriptor after read_buf returns (when it sends the reply) and never closes it.
A worker thread sends its reply before it takes its next request, so the descriptors a thread
handed over are closed when that thread hands over its next reply (or when the mount stops).
"""

from __future__ import annotations

import ctypes
import os
import threading

IS_FD = 1 << 1  # enum fuse_buf_flags (fuse_common.h, libfuse 3)
FD_SEEK = 1 << 2
CAP_SPLICE_WRITE = 1 << 7  # fuse_conn_info.want
CAP_SPLICE_MOVE = 1 << 8

_libc = ctypes.CDLL(None)
_libc.malloc.argtypes = [ctypes.c_size_t]
_libc.malloc.restype = ctypes.c_void_p
_libc.calloc.argtypes = [ctypes.c_size_t, ctypes.c_size_t]
_libc.calloc.restype = ctypes.c_void_p
_libc.free.argtypes = [ctypes.c_void_p]
_libc.free.restype = None


class _Buf(ctypes.Structure):
    """struct fuse_buf."""
    _fields_ = [("size", ctypes.c_size_t), ("flags", ctypes.c_int), ("mem", ctypes.c_void_p),
                ("fd", ctypes.c_int), ("pos", ctypes.c_int64)]


class _PyBuffer(ctypes.Structure):
    """Py_buffer (the buffer protocol's view of an object's memory)."""
    _fields_ = [("buf", ctypes.c_void_p), ("obj", ctypes.c_void_p), ("len", ctypes.c_ssize_t),
                ("itemsize", ctypes.c_ssize_t), ("readonly", ctypes.c_int), ("ndim", ctypes.c_int),
                ("format", ctypes.c_char_p), ("shape", ctypes.c_void_p), ("strides", ctypes.c_void_p),
                ("suboffsets", ctypes.c_void_p), ("internal", ctypes.c_void_p)]


_get_buffer = ctypes.pythonapi.PyObject_GetBuffer
_get_buffer.argtypes = [ctypes.py_object, ctypes.POINTER(_PyBuffer), ctypes.c_int]
_get_buffer.restype = ctypes.c_int
_release_buffer = ctypes.pythonapi.PyBuffer_Release
_release_buffer.argtypes = [ctypes.POINTER(_PyBuffer)]
_release_buffer.restype = None


def address(data: bytes | memoryview) -> int:
    """Where `data`'s bytes start in memory; valid while the caller holds `data` (bytes and views
    of bytes never move or change)."""
    if type(data) is bytes:
        return ctypes.cast(data, ctypes.c_void_p).value
    view = _PyBuffer()
    if _get_buffer(data, ctypes.byref(view), 0):  # PyBUF_SIMPLE: contiguous bytes
        raise BufferError("not a contiguous buffer")
    try:
        return view.buf
    finally:
        _release_buffer(ctypes.byref(view))


_vec_types: dict[int, type] = {}


def _vec_type(count: int) -> type:
    """struct fuse_bufvec with `count` buffers (C declares `struct fuse_buf buf[1]` and allocates more)."""
    found = _vec_types.get(count)
    if found is None:
        found = _vec_types[count] = type(f"_Bufvec{count}", (ctypes.Structure,), {"_fields_": [
            ("count", ctypes.c_size_t), ("idx", ctypes.c_size_t), ("off", ctypes.c_size_t),
            ("buf", _Buf * max(count, 1))]})
    return found


_lock = threading.Lock()
_handed: dict[int, list[int]] = {}  # worker thread -> descriptors in its last reply


def _close(fds: list[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def reply(bufpp, pieces: list[tuple[bytes | memoryview | int, int, int]]) -> None:
    """Point `*bufpp` (read_buf's `struct fuse_bufvec **`) at `pieces`, in order: (bytes or a view, start, n)
    is copied into a buffer libfuse frees; (descriptor, position, n) is read by libfuse, and the
    descriptor is closed after this thread's next reply."""
    me = threading.get_ident()
    with _lock:
        done = _handed.pop(me, [])
    _close(done)
    vec_type = _vec_type(len(pieces))
    vec = _libc.calloc(1, ctypes.sizeof(vec_type))  # zeroed: an empty buffer is size 0, no memory
    if not vec:
        _close([src for src, _, _ in pieces if isinstance(src, int)])
        raise MemoryError("read reply")
    v = vec_type.from_address(vec)
    v.count = max(len(pieces), 1)  # end of file: one empty buffer
    fds = []
    try:
        for i, (src, start, n) in enumerate(pieces):
            b = v.buf[i]
            b.size = n
            if isinstance(src, int):
                b.flags, b.mem, b.fd, b.pos = IS_FD | FD_SEEK, None, src, start
                fds.append(src)
                continue
            mem = _libc.malloc(n or 1)
            if not mem:
                raise MemoryError("read reply")
            b.flags, b.mem, b.fd, b.pos = 0, mem, -1, 0
            ctypes.memmove(mem, address(src) + start, n)
    except BaseException:
        for j in range(len(pieces)):
            if not v.buf[j].flags & IS_FD and v.buf[j].mem:
                _libc.free(v.buf[j].mem)
        _libc.free(vec)
        _close([src for src, _, _ in pieces if isinstance(src, int)])
        raise
    with _lock:
        _handed[me] = fds
    bufpp[0] = ctypes.cast(vec, type(bufpp[0]))


def close_all() -> None:
    """Close every descriptor still held for a reply (the mount has stopped)."""
    with _lock:
        held = [fd for fds in _handed.values() for fd in fds]
        _handed.clear()
    _close(held)
