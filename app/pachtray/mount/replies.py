"""Read replies handed to libfuse as `struct fuse_bufvec` (the high-level API's read_buf), so the
bytes of a read are copied in C, without the GIL.

A read through mfusepy's `read` costs two copies under the GIL (a slice of the chunk, the bytes
object libfuse's buffer is filled from) besides the one into the kernel. With read_buf each piece
lands once in a buffer libfuse sends and frees: a piece in memory by `ctypes.memmove`, a piece in
the disk cache by `preadv` straight into it (both release the GIL).

Pieces in the disk cache are read into the reply rather than handed to libfuse as descriptors to
splice (what this module did until session 10): the same speed in the mount (re-reads from the disk
cache: 0.41-0.51 ms of CPU a MiB spliced, 0.44-0.53 read), one buffer for a read that spans chunks
(libfuse first copies several into one), and no descriptor outliving the call.
"""

from __future__ import annotations

import ctypes
import errno
import os

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


class _Bufvec(ctypes.Structure):
    """struct fuse_bufvec with one buffer: libfuse writes a single memory buffer to /dev/fuse as it
    is (more buffers it first copies into one)."""
    _fields_ = [("count", ctypes.c_size_t), ("idx", ctypes.c_size_t), ("off", ctypes.c_size_t), ("buf", _Buf * 1)]


def _fill(mem: int, src: bytes | memoryview | int, start: int, n: int) -> None:
    """Copy piece (src, start, n) to `mem`: from memory, or read from a descriptor."""
    if not isinstance(src, int):
        ctypes.memmove(mem, address(src) + start, n)
        return
    view = memoryview((ctypes.c_char * n).from_address(mem)).cast("B")
    done = 0
    while done < n:
        got = os.preadv(src, [view[done:]], start + done)
        if got == 0:
            raise OSError(errno.EIO, f"a disk cache chunk ended {n - done} bytes early")
        done += got


def reply(bufpp, pieces: list[tuple[bytes | memoryview | int, int, int]]) -> None:
    """Point `*bufpp` (read_buf's `struct fuse_bufvec **`) at one buffer holding `pieces` in order:
    (bytes or a view, start, n) copied from memory, (descriptor, position, n) read from the
    descriptor. Every descriptor is closed on return; libfuse frees the buffer once it has sent it."""
    try:
        total = sum(n for _, _, n in pieces)
        vec = _libc.calloc(1, ctypes.sizeof(_Bufvec))  # zeroed: an empty buffer is size 0, no memory
        mem = _libc.malloc(total) if total else None
        try:
            if not vec or (total and not mem):
                raise MemoryError("read reply")
            at = 0
            for src, start, n in pieces:
                _fill(mem + at, src, start, n)
                at += n
        except BaseException:
            _libc.free(mem)
            _libc.free(vec)
            raise
    finally:
        for src, _, _ in pieces:
            if isinstance(src, int):
                os.close(src)
    v = _Bufvec.from_address(vec)
    v.count = 1  # end of file: one empty buffer
    v.buf[0].size, v.buf[0].mem, v.buf[0].fd = total, mem, -1
    bufpp[0] = ctypes.cast(vec, type(bufpp[0]))
