"""Read replies (mount/replies.py): the pieces of a read, from memory and from disk cache files,
land in order in one buffer libfuse sends and frees; every descriptor is closed, and a cache file
shorter than its piece is EIO, never a short reply (the kernel would take it for the end of the file)."""

from __future__ import annotations

import ctypes
import errno
import os

import pytest
from pachtray.mount import replies

pytestmark = pytest.mark.fast


def call(pieces):
    """replies.reply as libfuse's read_buf calls it; the buffer's bytes and how many buffers, then freed."""
    bufpp = (ctypes.POINTER(ctypes.c_char) * 1)()
    replies.reply(bufpp, pieces)
    vec = replies._Bufvec.from_address(ctypes.cast(bufpp[0], ctypes.c_void_p).value)
    buf = vec.buf[0]
    data = ctypes.string_at(buf.mem, buf.size) if buf.size else b""
    count, flags = vec.count, buf.flags
    replies._libc.free(buf.mem)
    replies._libc.free(ctypes.cast(bufpp[0], ctypes.c_void_p).value)
    return data, count, flags


def cache_file(tmp_path, name, data):
    p = tmp_path / name
    p.write_bytes(data)
    return os.open(p, os.O_RDONLY)


def is_open(fd):
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


def test_memory_and_disk_pieces_land_in_order_in_one_buffer(tmp_path):
    chunk = bytes(range(256)) * 4096  # 1 MiB
    message = b"header" + chunk
    fd = cache_file(tmp_path, "c1", chunk)
    fd2 = cache_file(tmp_path, "c2", b"x" * 10)
    data, count, flags = call([(memoryview(message), 6 + 1000, 5000), (fd, 123, 700_000), (b"tail", 1, 2),
                               (fd2, 0, 0)])
    assert data == chunk[1000:6000] + chunk[123:700_123] + b"ai"
    assert count == 1 and flags == 0  # one memory buffer: libfuse writes it as it is, no copy, no splice
    assert not is_open(fd) and not is_open(fd2)


def test_end_of_file_is_one_empty_buffer():
    assert call([]) == (b"", 1, 0)


def test_a_cache_file_shorter_than_its_piece_is_eio_and_closes_every_descriptor(tmp_path):
    fd = cache_file(tmp_path, "short", b"a" * 100)
    later = cache_file(tmp_path, "later", b"b" * 100)
    bufpp = (ctypes.POINTER(ctypes.c_char) * 1)()
    with pytest.raises(OSError) as e:
        replies.reply(bufpp, [(b"memory", 0, 6), (fd, 50, 60), (later, 0, 10)])
    assert e.value.errno == errno.EIO
    assert not bufpp[0]  # nothing handed to libfuse
    assert not is_open(fd) and not is_open(later)
