"""FuseMount + CommitView: real FUSE at a tmp dir, real embedded server, lazy reads."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import force_unmount, stop_process, wait_for
from pachtray.mount import reader
from pachtray.mount.cache import content_key
from pachtray.mount import fs
from pachtray.mount.fs import CommitView, FuseMount, LocalDirView
from pachtray.pfs.client import connect

from mounthelpers import cache, mount, pclient, put_commit  # noqa: F401 - fixtures

MiB = 1024 * 1024


def pattern(size: int) -> bytes:
    """Position-dependent bytes, so a read at the wrong offset cannot pass."""
    block = b"".join(i.to_bytes(4, "big") for i in range(MiB // 4))
    return (block * (size // len(block) + 1))[:size]


def test_listing_nested_dirs_and_reads(client, pclient, mount, cache, unique_name):
    repo = unique_name("ls")
    head = put_commit(client, repo, {"/a.txt": b"hello", "/dir/b.txt": b"bee", "/dir/sub/c.txt": b"sea" * 10})
    mount.add_view("images", CommitView(lambda: pclient, "default", repo, head, ["/"], cache))
    root = mount.mount_dir
    assert os.listdir(root) == ["images"]
    assert sorted(os.listdir(f"{root}/images")) == ["a.txt", "dir"]
    assert sorted(os.listdir(f"{root}/images/dir")) == ["b.txt", "sub"]
    assert os.listdir(f"{root}/images/dir/sub") == ["c.txt"]
    assert os.path.isdir(f"{root}/images/dir/sub")
    assert os.stat(f"{root}/images/dir/sub/c.txt").st_size == 30
    with open(f"{root}/images/a.txt", "rb") as f:
        assert f.read() == b"hello"
    with open(f"{root}/images/dir/sub/c.txt", "rb") as f:
        f.seek(4)
        assert f.read(5) == b"easea"
    with pytest.raises(FileNotFoundError):
        os.stat(f"{root}/images/nope.txt")
    with pytest.raises(FileNotFoundError):
        os.stat(f"{root}/other")


def test_listing_is_paginated(client, pclient, mount, cache, unique_name, monkeypatch):
    monkeypatch.setattr(reader, "PAGE_SIZE", 3)
    repo = unique_name("pages")
    names = [f"f{i:02d}.txt" for i in range(10)]
    head = put_commit(client, repo, {f"/d/{n}": n.encode() for n in names} | {"/e.txt": b"e"})
    mount.add_view("p", CommitView(lambda: pclient, "default", repo, head, ["/"], cache))
    assert sorted(os.listdir(f"{mount.mount_dir}/p/d")) == names
    assert Path(f"{mount.mount_dir}/p/d/f09.txt").read_bytes() == b"f09.txt"


def test_reads_at_offsets_of_a_big_file(client, pclient, mount, cache, unique_name):
    repo = unique_name("big")
    data = pattern(11 * MiB + 123)
    head = put_commit(client, repo, {"/big.bin": data})
    mount.add_view("big", CommitView(lambda: pclient, "default", repo, head, ["/"], cache))
    path = f"{mount.mount_dir}/big/big.bin"
    fd = os.open(path, os.O_RDONLY)
    try:
        for offset, n in [(0, 10), (4 * MiB - 3, 10), (8 * MiB + 5, MiB), (11 * MiB, 1000), (len(data) - 7, 100)]:
            assert os.pread(fd, n, offset) == data[offset:offset + n], (offset, n)
    finally:
        os.close(fd)
    with open(path, "rb") as f:
        assert f.read() == data


def test_only_read_ranges_are_fetched(client, pclient, mount, cache, unique_name):
    repo = unique_name("lazy")
    size = 48 * MiB
    data = pattern(size)
    head = put_commit(client, repo, {"/huge.bin": data, "/small.txt": b"x"})
    mount.add_view("lazy", CommitView(lambda: pclient, "default", repo, head, ["/"], cache))
    path = f"{mount.mount_dir}/lazy/huge.bin"

    before = reader.STATS.bytes
    assert os.stat(path).st_size == size
    assert sorted(os.listdir(f"{mount.mount_dir}/lazy")) == ["huge.bin", "small.txt"]
    assert reader.STATS.bytes == before, "listing and stat must not download content"

    with open(path, "rb") as f:
        f.seek(30 * MiB)
        assert f.read(100) == data[30 * MiB:30 * MiB + 100]
    fetched = reader.STATS.bytes - before
    # the chunk holding the range, plus at most one more for the kernel's own read-ahead
    assert 100 <= fetched <= 2 * reader.CHUNK_SIZE
    assert fetched < size // 4

    with open(path, "rb") as f:  # a full read fetches the rest, the cached chunks are not fetched again
        assert f.read() == data
    assert reader.STATS.bytes - before <= size + reader.CHUNK_SIZE


def test_paths_subset(client, pclient, mount, cache, unique_name):
    repo = unique_name("sub")
    head = put_commit(client, repo, {"/keep/a.txt": b"a", "/keep/b.txt": b"b", "/deep/x/y.txt": b"y",
                                     "/deep/x/z.txt": b"z", "/top.txt": b"t", "/other/o.txt": b"o"})
    mount.add_view("s", CommitView(lambda: pclient, "default", repo, head, ["/keep", "deep/x/y.txt", "/top.txt"],
                                   cache))
    v = f"{mount.mount_dir}/s"
    assert sorted(os.listdir(v)) == ["deep", "keep", "top.txt"]
    assert sorted(os.listdir(f"{v}/keep")) == ["a.txt", "b.txt"]
    assert os.listdir(f"{v}/deep") == ["x"]
    assert os.listdir(f"{v}/deep/x") == ["y.txt"]
    assert Path(f"{v}/deep/x/y.txt").read_bytes() == b"y"
    for hidden in ("other", "other/o.txt", "deep/x/z.txt"):
        with pytest.raises(FileNotFoundError):
            os.stat(f"{v}/{hidden}")


def test_read_only_view_refuses_changes(client, pclient, mount, cache, unique_name):
    repo = unique_name("ro")
    head = put_commit(client, repo, {"/a.txt": b"a", "/d/b.txt": b"b"})
    mount.add_view("ro", CommitView(lambda: pclient, "default", repo, head, ["/"], cache))
    v = f"{mount.mount_dir}/ro"
    attempts = [
        lambda: open(f"{v}/a.txt", "wb"),
        lambda: open(f"{v}/a.txt", "ab"),
        lambda: open(f"{v}/new.txt", "wb"),
        lambda: os.mkdir(f"{v}/newdir"),
        lambda: os.unlink(f"{v}/a.txt"),
        lambda: os.rmdir(f"{v}/d"),
        lambda: os.rename(f"{v}/a.txt", f"{v}/b.txt"),
        lambda: os.truncate(f"{v}/a.txt", 0),
    ]
    for attempt in attempts:
        with pytest.raises(OSError) as info:
            attempt()
        assert info.value.errno == errno.EROFS
    assert not os.access(f"{v}/a.txt", os.W_OK)
    assert Path(f"{v}/a.txt").read_bytes() == b"a"
    with pytest.raises(PermissionError):
        os.mkdir(f"{mount.mount_dir}/not-a-mount")
    for too_long in ("x" * 256, "é" * 128):  # 256 bytes: a name no local file system takes either
        for attempt in (os.stat, lambda p: open(p, "wb")):
            with pytest.raises(OSError) as info:
                attempt(f"{v}/d/{too_long}")
            assert info.value.errno == errno.ENAMETOOLONG
    assert not os.path.exists(f"{v}/d/" + "x" * 255)  # 255 bytes is a name: just not there


def test_views_come_and_go(client, pclient, mount, cache, unique_name):
    repo = unique_name("views")
    first = put_commit(client, repo, {"/f.txt": b"first"})
    second = put_commit(client, repo, {"/f.txt": b"other"})  # same size: only invalidation can tell
    path = f"{mount.mount_dir}/v/f.txt"
    mount.add_view("v", CommitView(lambda: pclient, "default", repo, first, ["/"], cache))
    for _ in range(2):  # the second open finds the pages in the kernel's cache
        assert Path(path).read_bytes() == b"first"
    # same name, another commit: no stale pages from the kernel's cache (kept across opens)
    mount.remove_view("v")
    mount.add_view("v", CommitView(lambda: pclient, "default", repo, second, ["/"], cache))
    assert Path(path).read_bytes() == b"other"
    mount.remove_view("v")
    assert os.listdir(mount.mount_dir) == []
    with pytest.raises(FileNotFoundError):
        open(path, "rb")


def test_empty_commit_view_and_local_dir_view(pclient, mount, cache, tmp_path):
    mount.add_view("empty", CommitView(lambda: pclient, "default", "whatever", None, ["/"], cache))
    assert os.listdir(f"{mount.mount_dir}/empty") == []
    out = tmp_path / "out"
    mount.add_view("out", LocalDirView(out))
    with open(f"{mount.mount_dir}/out/result.txt", "w") as f:
        f.write("done")
    os.mkdir(f"{mount.mount_dir}/out/sub")
    os.rename(f"{mount.mount_dir}/out/result.txt", f"{mount.mount_dir}/out/sub/r.txt")
    assert (out / "sub" / "r.txt").read_text() == "done"
    assert sorted(os.listdir(f"{mount.mount_dir}/out")) == ["sub"]


def test_an_unexpected_error_in_an_operation_is_eio_not_einval(mount, tmp_path):
    """A bug in a view (anything but OSError) must not tell the program its arguments were wrong."""
    class Broken(LocalDirView):
        def mkdir(self, path, mode):
            raise RuntimeError("a bug")

    mount.add_view("broken", Broken(tmp_path / "local"))
    with pytest.raises(OSError) as info:
        os.mkdir(f"{mount.mount_dir}/broken/d")
    assert info.value.errno == errno.EIO
    with pytest.raises(FileNotFoundError):  # an OSError of a view still answers its own errno
        os.stat(f"{mount.mount_dir}/broken/missing")


def test_each_libfuse_thread_keeps_one_python_thread_state(mount, tmp_path):
    """Callbacks reuse their thread's Python state (fs._Fuse._wrapper): without it ctypes makes and
    deletes one per callback, and every callback here would count as a thread state kept."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "f.txt").write_text("x")
    mount.add_view("out", LocalDirView(out))
    before = fs.THREAD_STATES_KEPT[0]
    for i in range(300):
        assert os.stat(f"{mount.mount_dir}/out/f.txt").st_size == 1
        with open(f"{mount.mount_dir}/out/n{i % 7}.txt", "w") as f:  # (new names: lookups, creates)
            f.write("y")
    kept = fs.THREAD_STATES_KEPT[0] - before
    assert kept < 30, f"{kept} thread states made for ~1,500 callbacks"
    assert (out / "n6.txt").read_text() == "y"


def test_eio_when_pachd_is_down_and_recovery(local_pachd_factory, mount, cache, unique_name):
    server = local_pachd_factory()
    port, data_dir = server.port, server.data_dir
    sdk = server.client()
    repo = unique_name("down")
    head = put_commit(sdk, repo, {"/cached.txt": b"still here", "/dir/uncached.txt": b"later", "/u.txt": b"u"})
    c = connect(server.address, rpc_timeout=3)
    mount.add_view("d", CommitView(lambda: c, "default", repo, head, ["/"], cache))
    v = f"{mount.mount_dir}/d"
    assert Path(f"{v}/cached.txt").read_bytes() == b"still here"
    assert sorted(os.listdir(v)) == ["cached.txt", "dir", "u.txt"]

    server.stop()
    with pytest.raises(OSError) as info:
        os.listdir(f"{v}/dir")
    assert info.value.errno == errno.EIO
    with pytest.raises(OSError) as info:
        Path(f"{v}/u.txt").read_bytes()
    assert info.value.errno == errno.EIO
    assert Path(f"{v}/cached.txt").read_bytes() == b"still here"

    local_pachd_factory(port=port, data_dir=data_dir)
    assert wait_for(lambda: os.listdir(f"{v}/dir"), 30, what="listing after restart") == ["uncached.txt"]
    assert Path(f"{v}/u.txt").read_bytes() == b"u"
    c.close()


def test_busy_holders_names_processes(pclient, mount, cache, tmp_path):
    mount.add_view("busy", LocalDirView(tmp_path / "busydir"))
    inside = f"{mount.mount_dir}/busy"
    with open(f"{inside}/held.txt", "w") as f:
        f.write("x")
    sleeper = subprocess.Popen(["sleep", "60"], cwd=inside)
    try:
        holder = open(f"{inside}/held.txt")
        try:
            holders = mount.busy_holders("busy")
            assert f"sleep (pid {sleeper.pid})" in holders
            assert any(f"(pid {os.getpid()})" in h for h in holders)
            assert mount.busy_holders("busy", writing=True) == []  # a cwd and a reader write nothing
            with open(f"{inside}/held.txt", "a") as writer:
                writer.write("y")
                assert [h for h in mount.busy_holders("busy", writing=True)] == [
                    h for h in holders if f"(pid {os.getpid()})" in h]
        finally:
            holder.close()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert mount.busy_holders("busy") == []


STALE_CHILD = textwrap.dedent("""
    import sys, time
    from pachtray.mount.fs import FuseMount
    FuseMount(sys.argv[1]).start()
    print("mounted", flush=True)
    time.sleep(120)
""")


def test_start_cleans_a_stale_mount(tmp_path):
    mnt = tmp_path / "stale"
    child = subprocess.Popen([sys.executable, "-c", STALE_CHILD, str(mnt)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "mounted"
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        with pytest.raises(OSError) as info:
            os.listdir(mnt)
        assert info.value.errno == errno.ENOTCONN
        m = FuseMount(mnt)
        m.start()
        try:
            assert os.listdir(mnt) == []
        finally:
            m.stop()
        assert not os.path.ismount(mnt)
    finally:
        stop_process(child)
        force_unmount(mnt)


def test_start_refuses_a_live_mount(tmp_path):
    first = FuseMount(tmp_path / "live")
    first.start()
    try:
        with pytest.raises(Exception, match="already a mount point"):
            FuseMount(tmp_path / "live").start()
    finally:
        first.stop()
        force_unmount(tmp_path / "live")


def test_a_sequential_read_fetches_runs_of_chunks_in_few_calls(client, pclient, mount, cache, unique_name):
    """Read-ahead claims several chunks and fetches them with one GetFile call, which the next
    runs continue: a call per 4 MiB chunk halved the throughput of a download, a call per run
    cost a third of it."""
    repo = unique_name("seq")
    size = 64 * MiB
    data = pattern(size)
    head = put_commit(client, repo, {"/big.bin": data})
    mount.add_view("seq", CommitView(lambda: pclient, "default", repo, head, ["/"], cache))
    calls, fetched = reader.STATS.requests, reader.STATS.bytes
    with open(f"{mount.mount_dir}/seq/big.bin", "rb", buffering=0) as f:
        got = b"".join(iter(lambda: f.read(MiB), b""))
    assert got == data
    calls, fetched = reader.STATS.requests - calls, reader.STATS.bytes - fetched
    chunks = size // reader.CHUNK_SIZE
    assert calls <= 3, f"{calls} GetFile calls for {chunks} chunks"  # chunks 0 and 1, then one call
    assert size <= fetched <= size + reader.CHUNK_SIZE
    reader.reader_for(cache).flush()  # chunks are written to the disk cache behind the reader
    assert all(cache.contains(content_key("default", repo, head, "/big.bin"), i) for i in range(chunks))


def test_looking_up_one_folder_does_not_list_its_siblings(client, pclient, mount, cache, unique_name):
    """`ls /pfs/repo/d150` asks for d150 alone, not for the listing of the 300 folders beside it."""
    repo = unique_name("probe")
    head = put_commit(client, repo, {f"/d{i:03d}/f{i}.txt": b"x" for i in range(300)})
    view = CommitView(lambda: pclient, "default", repo, head, ["/"], cache)
    mount.add_view("p", view)
    assert os.listdir(f"{mount.mount_dir}/p/d150") == ["f150.txt"]
    assert Path(f"{mount.mount_dir}/p/d151/f151.txt").read_bytes() == b"x"
    with pytest.raises(FileNotFoundError):
        os.stat(f"{mount.mount_dir}/p/d999")
    root = view.tree._listings.get("/")
    assert root.entries == [] and not root.complete, "the root was listed to look up one name"
    assert sorted(os.listdir(f"{mount.mount_dir}/p")) == [f"d{i:03d}" for i in range(300)]
    assert os.stat(f"{mount.mount_dir}/p/d150").st_mode & 0o040000
