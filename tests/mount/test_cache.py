"""ChunkCache: bounded by bytes (LRU), partial reads, survives a restart, never breaks a read;
chunks written past the page cache where the file system allows it."""

from __future__ import annotations

import ctypes
import errno
import mmap
import os

import pytest

from mounthelpers import small_tmpfs
from pachtray.mount.cache import DIRECT_BYTES, ChunkCache, content_key

pytestmark = pytest.mark.fast


def test_put_read_ranges(tmp_path):
    c = ChunkCache(tmp_path / "c", 1000)
    k = content_key("default", "images", "a" * 32, "/x.bin")
    assert c.read(k, 0, 0, 10) is None
    c.put(k, 0, b"0123456789")
    assert c.read(k, 0, 0, 10) == b"0123456789"
    assert c.read(k, 0, 3, 4) == b"3456"
    assert c.read(k, 0, 8, 100) == b"89"
    assert c.read(k, 1, 0, 10) is None
    assert c.total == 10


def test_keys_separate_commits_and_paths():
    keys = {content_key("p", "r", "c1", "/a"), content_key("p", "r", "c2", "/a"), content_key("p", "r", "c1", "/b"),
            content_key("p", "r2", "c1", "/a"), content_key("p2", "r", "c1", "/a")}
    assert len(keys) == 5


def test_evicts_least_recently_used_by_bytes(tmp_path):
    c = ChunkCache(tmp_path / "c", 250)
    for i in range(3):
        c.put("k", i, bytes([i]) * 100)
    assert c.total <= 250
    assert c.read("k", 0, 0, 1) is None  # oldest went first
    assert c.read("k", 1, 0, 1) == b"\x01"  # now most recently used
    c.put("k", 3, b"3" * 100)
    assert c.read("k", 2, 0, 1) is None
    assert c.read("k", 1, 0, 1) == b"\x01"
    assert c.read("k", 3, 0, 1) == b"3"
    c.flush()
    assert sum(1 for p in (tmp_path / "c").rglob("*") if p.is_file()) == 2


def test_an_evicted_chunk_put_again_is_kept(tmp_path):
    """Evicted files are deleted in the background: a chunk put again meanwhile is not."""
    c = ChunkCache(tmp_path / "c", 250)
    for _ in range(20):
        for i in range(3):
            c.put("k", i, bytes([i]) * 100)
    c.put("k", 0, b"0" * 100)
    c.flush()
    assert c.read("k", 0, 0, 100) == b"0" * 100 and c.read("k", 2, 0, 1) == b"\x02"
    assert sorted(p.name for p in (tmp_path / "c").rglob("*") if p.is_file()) == ["k.0", "k.2"]


def test_too_big_chunk_is_not_cached(tmp_path):
    c = ChunkCache(tmp_path / "c", 10)
    c.put("k", 0, b"x" * 11)
    assert c.read("k", 0, 0, 1) is None
    assert c.total == 0


def test_survives_restart_and_respects_a_smaller_bound(tmp_path):
    c = ChunkCache(tmp_path / "c", 1000)
    c.put("k", 0, b"a" * 300)
    c.put("k", 1, b"b" * 300)
    (tmp_path / "c" / "k." / "junk.tmp").parent.mkdir(exist_ok=True)
    (tmp_path / "c" / "k." / "junk.tmp").write_bytes(b"half written")
    (tmp_path / "c" / "k." / "k.7.3.gone").write_bytes(b"evicted, not yet deleted")
    again = ChunkCache(tmp_path / "c", 1000)
    assert again.read("k", 1, 0, 3) == b"bbb"
    assert again.total == 600
    assert not (tmp_path / "c" / "k." / "junk.tmp").exists()
    assert not (tmp_path / "c" / "k." / "k.7.3.gone").exists()
    smaller = ChunkCache(tmp_path / "c", 400)
    assert smaller.total <= 400


def test_a_vanished_chunk_file_is_a_miss(tmp_path):
    c = ChunkCache(tmp_path / "c", 1000)
    c.put("abc", 0, b"data")
    for f in (tmp_path / "c").rglob("abc.0"):
        f.unlink()
    assert c.read("abc", 0, 0, 4) is None
    assert c.total == 0
    c.put("abc", 0, b"data")
    assert c.read("abc", 0, 0, 4) == b"data"


def test_clear(tmp_path):
    c = ChunkCache(tmp_path / "c", 1000)
    c.put("k", 0, b"x" * 10)
    c.clear()
    assert c.total == 0 and c.read("k", 0, 0, 1) is None


def resident_bytes(path) -> int:
    """How much of a file is in the kernel's page cache (mincore of a mapping of it)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    size = os.path.getsize(path)
    if not size:
        return 0
    page = mmap.PAGESIZE
    with open(path, "rb") as f, mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY) as m:
        pages = -(-size // page)
        vec = ctypes.create_string_buffer(pages)
        anchor = ctypes.c_char.from_buffer(m)
        try:
            assert libc.mincore(ctypes.addressof(anchor), size, vec) == 0, os.strerror(ctypes.get_errno())
        finally:
            del anchor
        return sum(b & 1 for b in vec.raw) * page


def chunk_file(root, key, index):
    return next(p for p in root.rglob(f"{key}.{index}"))


@pytest.mark.parametrize("size", [1, 4095, 4096, 4097, 3 * 4096 + 5, DIRECT_BYTES - 1, DIRECT_BYTES])
def test_direct_writes_pass_the_page_cache_and_read_back_exactly(tmp_path, size):
    """A chunk is written past the page cache (a buffered write and its writeback cost a cold read
    ~0.3 ms of CPU a MiB), whole blocks then cut to its length; from bytes and from a view."""
    c = ChunkCache(tmp_path / "c", 1 << 30)
    data = os.urandom(size + 7)
    c.put("d", 0, data[:size], direct=True)
    c.put("d", 1, memoryview(data)[7:], direct=True)  # a view at an unaligned address
    c.put("b", 0, data[:size], direct=False)
    for key, index in (("d", 0), ("d", 1)):
        path = chunk_file(tmp_path / "c", key, index)
        assert path.stat().st_size == size
        assert resident_bytes(path) == 0, "a direct write left the chunk in the page cache"
    assert resident_bytes(chunk_file(tmp_path / "c", "b", 0)) > 0  # the check can tell
    assert c.read("d", 0, 0, size) == data[:size]
    assert c.read("d", 1, 0, size) == data[7:]
    assert c.read("b", 0, 0, size) == data[:size]
    assert c.total == 3 * size
    assert not [p for p in (tmp_path / "c").rglob("*.tmp")]


def test_a_chunk_bigger_than_the_direct_buffer_is_written_buffered(tmp_path):
    c = ChunkCache(tmp_path / "c", 1 << 30, direct_bytes=8192)
    data = os.urandom(8192 + 1)
    c.put("k", 0, data)
    assert c.read("k", 0, 0, len(data)) == data
    assert resident_bytes(chunk_file(tmp_path / "c", "k", 0)) > 0


def test_a_file_system_without_direct_writes_gets_buffered_ones(tmp_path, monkeypatch):
    """Where O_DIRECT is refused (EINVAL: older tmpfs, FUSE home folders, ecryptfs), chunks are
    written through the page cache, and the cache stops asking."""
    real_open, refused = os.open, []

    def no_direct(path, flags, *args, **kwargs):
        if flags & os.O_DIRECT and str(path).startswith(str(tmp_path)):
            refused.append(path)
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, *args, **kwargs)
    monkeypatch.setattr(os, "open", no_direct)
    c = ChunkCache(tmp_path / "c", 1 << 30)
    for i in range(3):
        c.put("k", i, bytes([i]) * 5000)
    assert len(refused) == 1
    monkeypatch.undo()
    assert [c.read("k", i, 0, 5000) for i in range(3)] == [bytes([i]) * 5000 for i in range(3)]
    assert not [p for p in (tmp_path / "c").rglob("*.tmp")]


@pytest.fixture
def tiny_disk(tmp_path):
    with small_tmpfs(tmp_path / "tiny", "1m") as d:
        yield d


@pytest.mark.parametrize("direct", [True, False])
def test_a_full_cache_disk_only_means_a_chunk_is_not_cached(tiny_disk, direct):
    c = ChunkCache(tiny_disk / "c", 1 << 30)
    small, big = os.urandom(300 * 1024), os.urandom(900 * 1024)
    c.put("k", 0, small, direct=direct)
    c.put("k", 1, big, direct=direct)  # does not fit beside the first
    assert c.read("k", 0, 0, len(small)) == small
    assert c.read("k", 1, 0, 1) is None and c.total == len(small)
    assert not [p for p in (tiny_disk / "c").rglob("*.tmp")]  # the half-written file is gone
    c.clear()
    c.flush()
    c.put("k", 1, big, direct=direct)  # room again
    assert c.read("k", 1, 0, len(big)) == big
