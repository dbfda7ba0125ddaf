"""The read path of ro mounts (mount/reader.py, mount/replies.py): reads answered through libfuse's
read_buf from chunks in memory and from the disk cache, one GetFile call per sequential read,
no call left open by a closed reader, and a disk slower than the download holding the download,
not the daemon's memory, and written through the page cache once it fell behind."""

from __future__ import annotations

import os
import threading

from conftest import wait_for
from pachtray.mount import reader, replies
from pachtray.mount.cache import ChunkCache, content_key
from pachtray.mount.fs import CommitView
from pachtray.mount.reader import ChunkReader, ReadState, make_commit

from mounthelpers import cache, mount, pclient, put_commit  # noqa: F401 - fixtures

MiB = 1 << 20
CS = reader.CHUNK_SIZE


def pattern(size: int) -> bytes:
    block = b"".join(i.to_bytes(4, "big") for i in range(MiB // 4))
    return (block * (size // len(block) + 1))[:size]


def test_reads_come_from_memory_then_from_the_disk_cache(client, pclient, mount, cache, unique_name, monkeypatch):
    repo = unique_name("readbuf")
    size = 2 * CS + CS // 2 + 17
    data = pattern(size)
    head = put_commit(client, repo, {"/f.bin": data})
    kinds: list[str] = []
    real_reply = replies.reply

    def reply(bufpp, pieces):
        kinds.extend("fd" if isinstance(src, int) else "memory" for src, _, _ in pieces)
        return real_reply(bufpp, pieces)
    monkeypatch.setattr(replies, "reply", reply)

    mount.add_view("a", CommitView(lambda: pclient, "default", repo, head, ["/"], cache))
    with open(f"{mount.mount_dir}/a/f.bin", "rb", buffering=0) as f:
        assert b"".join(iter(lambda: f.read(MiB), b"")) == data
    assert "memory" in kinds
    reader.reader_for(cache).flush()
    kinds.clear()
    mount.add_view("b", CommitView(lambda: pclient, "default", repo, head, ["/"], cache))  # other inodes: cold pages
    calls = reader.STATS.requests
    fd = os.open(f"{mount.mount_dir}/b/f.bin", os.O_RDONLY)
    try:
        for offset, n in ((0, MiB), (CS - 100, MiB), (2 * CS - 5, 10), (size - 3, 100), (size, 10), (size + MiB, 1)):
            assert os.pread(fd, n, offset) == data[offset:offset + n], (offset, n)
    finally:
        os.close(fd)
    assert reader.STATS.requests == calls  # all from the disk cache
    assert kinds and set(kinds) == {"fd"}


def test_a_sequential_read_is_one_call_and_a_closed_reader_leaves_none_open(client, pclient, mount, cache,
                                                                           unique_name, monkeypatch):
    # Parked calls must end because the file was closed, not because they expired. (The kernel
    # sends the release after close() returns, so the run may park before it arrives.)
    monkeypatch.setattr(reader, "PARK_SECONDS", 600.0)
    repo = unique_name("onecall")
    size = 24 * CS
    data = pattern(size)
    head = put_commit(client, repo, {"/f.bin": data})
    mount.add_view("s", CommitView(lambda: pclient, "default", repo, head, ["/"], cache))
    r = reader.reader_for(cache)
    calls = reader.STATS.requests
    with open(f"{mount.mount_dir}/s/f.bin", "rb", buffering=0) as f:
        assert f.read(6 * CS) == data[:6 * CS]  # half: the read-ahead's call is still going
        with r._lock:
            assert r._runs or r._parked or r._inflight
    # The run in progress fills what it claimed, then ends its call instead of parking it (a
    # parked call would wait PARK_SECONDS for a reader that is gone, holding a server stream).
    wait_for(lambda: not r._runs and not r._inflight and not r._parked, 30,
             what="the read-ahead of a closed reader to end")
    # the first two chunks are read before the reader counts as sequential; the rest is one call
    assert reader.STATS.requests - calls <= 3


class SlowDisk(ChunkCache):
    """A cache whose writes wait until the test lets them through."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.gate = threading.Event()
        self.direct: list[bool] = []  # how each chunk was asked to be written

    def put(self, key, index, data, direct=True):
        self.direct.append(direct)
        self.gate.wait(30)
        super().put(key, index, data, direct)


def test_a_disk_slower_than_the_download_holds_the_download_not_the_memory(client, pclient, tmp_path,
                                                                           unique_name):
    repo = unique_name("slowdisk")
    cs = 64 * 1024
    size = 6 * reader.HOT_CHUNKS * cs
    data = pattern(size)
    head = put_commit(client, repo, {"/f.bin": data})
    disk = SlowDisk(tmp_path / "cache", 1 << 30)
    r = ChunkReader(disk, chunk_size=cs, readahead=2 * reader.HOT_CHUNKS)
    commit = make_commit("default", repo, head)
    state, got = ReadState(), []

    def read_all():
        for offset in range(0, size, cs // 2):
            got.append(r.read(lambda: pclient, commit, "/f.bin", size, offset, cs // 2, state))
    t = threading.Thread(target=read_all)
    t.start()
    wait_for(lambda: len(r._unwritten) >= reader.UNWRITTEN_MAX, 30, what="the cache writer to fall behind")
    t.join(1)
    assert t.is_alive()  # the download waits for the disk ...
    with r._lock:
        assert len(r._unwritten) <= reader.UNWRITTEN_MAX and len(r._hot) <= reader.HOT_CHUNKS + reader.UNWRITTEN_MAX
    disk.gate.set()
    t.join(60)
    assert b"".join(got) == data
    r.flush()
    key = content_key("default", repo, head, "/f.bin")
    assert all(disk.contains(key, i) for i in range(size // cs))
    # Past the page cache until the download had to wait, then through it for a while: a disk
    # slower than the download is not made slower still by direct writes.
    after = reader.BUFFERED_AFTER_WAIT
    assert disk.direct[0] and disk.direct[1:1 + after] == [False] * after, disk.direct
    # Idle with every chunk on disk: no copy is kept in memory (the daemon's RSS after a big read),
    # and a read again comes from the disk cache, right.
    wait_for(lambda: not r._hot, 10, what="the chunks held in memory to be dropped")
    fetched = reader.STATS.bytes
    assert r.read(lambda: pclient, commit, "/f.bin", size, size - cs - 5, cs, ReadState()) == data[-cs - 5:-5]
    assert reader.STATS.bytes == fetched
