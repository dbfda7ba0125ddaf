"""ChunkCache: bounded by bytes (LRU), partial reads, survives a restart, never breaks a read."""

from __future__ import annotations

import pytest

from pachtray.mount.cache import ChunkCache, content_key

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
