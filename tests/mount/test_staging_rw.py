"""RwView: every change through real FUSE, staged on disk, committed as one commit and checked
with the SDK; resume after re-open and after kill -9; ENOSPC on a tiny tmpfs; failed commits."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import threading
from pathlib import Path

import pytest
from pachyderm_sdk.api import pfs

from conftest import force_unmount, stop_process, wait_for
from pachtray.mount import reader
from pachtray.mount.staging import CommitFailed, RwView
from pachtray.pfs.client import connect

from mounthelpers import (cache, head_of, mount, pclient, put_commit, rw_mount_child, rw_view, small_tmpfs,  # noqa: F401
                          tree)

MiB = 1024 * 1024


def commit_count(client, repo: str) -> int:
    return len(list(client.pfs.list_commit(repo=pfs.Repo(name=repo))))


def test_every_change_then_one_commit(client, pclient, mount, cache, tmp_path, unique_name):
    repo = unique_name("rw")
    base = put_commit(client, repo, {
        "/keep.txt": b"keep", "/append.txt": b"start", "/overwrite.txt": b"old content", "/gone.txt": b"bye",
        "/shrink.txt": b"0123456789", "/moved.txt": b"move me", "/olddir/a.txt": b"a", "/olddir/sub/b.txt": b"b",
        "/rmdir/x.txt": b"x", "/rmdir/deeper/y.txt": b"y", "/chmod.txt": b"c"})
    view = RwView(tmp_path / "stage", lambda: pclient, "default", repo, "master", base, cache)
    mount.add_view("w", view)
    w = f"{mount.mount_dir}/w"

    with open(f"{w}/new.txt", "w") as f:
        f.write("brand new")
    with open(f"{w}/append.txt", "a") as f:
        f.write("+more")
    with open(f"{w}/overwrite.txt", "w") as f:
        f.write("new")
    os.truncate(f"{w}/shrink.txt", 4)
    os.unlink(f"{w}/gone.txt")
    os.rename(f"{w}/moved.txt", f"{w}/renamed.txt")
    os.rename(f"{w}/olddir", f"{w}/newdir")
    with open(f"{w}/newdir/sub/c.txt", "w") as f:
        f.write("c in a renamed dir")
    shutil.rmtree(f"{w}/rmdir")
    os.makedirs(f"{w}/made/inner")
    with open(f"{w}/made/inner/z.txt", "w") as f:
        f.write("z")
    os.mkdir(f"{w}/empty")
    os.chmod(f"{w}/chmod.txt", 0o600)  # accepted, PFS has no modes
    with open(f"{w}/sparse.bin", "wb") as f:
        f.seek(3)
        f.write(b"end")

    expected = {
        "/keep.txt": b"keep", "/append.txt": b"start+more", "/overwrite.txt": b"new", "/shrink.txt": b"0123",
        "/renamed.txt": b"move me", "/newdir/a.txt": b"a", "/newdir/sub/b.txt": b"b",
        "/newdir/sub/c.txt": b"c in a renamed dir", "/new.txt": b"brand new", "/made/inner/z.txt": b"z",
        "/chmod.txt": b"c", "/sparse.bin": b"\0\0\0end"}
    seen = {}
    for dirpath, _, files in os.walk(w):
        for name in files:
            with open(os.path.join(dirpath, name), "rb") as f:
                seen[os.path.join(dirpath, name)[len(w):]] = f.read()
    assert seen == expected
    assert os.path.isdir(f"{w}/empty") and not os.path.exists(f"{w}/rmdir")
    assert view.pending_count() > 0

    commits_before = commit_count(client, repo)
    new_id = view.commit()
    assert new_id == head_of(client, repo)
    assert commit_count(client, repo) == commits_before + 1
    assert tree(client, repo, new_id) == expected
    assert view.pending_count() == 0
    assert view.base_commit_id == new_id
    # the view now shows the new head; the empty folder PFS cannot hold stays locally
    assert sorted(os.listdir(w)) == sorted(["keep.txt", "append.txt", "overwrite.txt", "shrink.txt", "renamed.txt",
                                            "newdir", "new.txt", "made", "chmod.txt", "sparse.bin", "empty"])
    assert Path(f"{w}/newdir/sub/c.txt").read_bytes() == b"c in a renamed dir"
    assert view.commit() is None  # nothing left: no empty commit
    assert commit_count(client, repo) == commits_before + 1
    view.close()


def test_commit_creates_a_missing_branch(client, pclient, mount, cache, tmp_path, unique_name):
    repo = unique_name("newbranch")
    client.pfs.create_repo(repo=pfs.Repo(name=repo))
    view = RwView(tmp_path / "stage", lambda: pclient, "default", repo, "feature", None, cache)
    mount.add_view("nb", view)
    assert os.listdir(f"{mount.mount_dir}/nb") == []
    with open(f"{mount.mount_dir}/nb/first.txt", "w") as f:
        f.write("1")
    new_id = view.commit()
    assert head_of(client, repo, "feature") == new_id
    assert tree(client, repo, new_id) == {"/first.txt": b"1"}
    view.close()


def test_renames_and_deletes_download_nothing(client, pclient, mount, cache, tmp_path, unique_name):
    repo = unique_name("noread")
    big = os.urandom(9 * MiB)
    base = put_commit(client, repo, {"/big.bin": big, "/dir/big2.bin": big[:MiB], "/del.bin": big[:2 * MiB]})
    view = RwView(tmp_path / "stage", lambda: pclient, "default", repo, "master", base, cache)
    mount.add_view("n", view)
    n = f"{mount.mount_dir}/n"
    before = reader.STATS.bytes
    with open(f"{n}/big.bin", "rb") as f:  # reading a base file through a rw mount is lazy too
        f.seek(5 * MiB)
        assert f.read(10) == big[5 * MiB:5 * MiB + 10]
    assert reader.STATS.bytes - before <= 2 * reader.CHUNK_SIZE
    before = reader.STATS.bytes
    os.rename(f"{n}/big.bin", f"{n}/moved.bin")
    os.rename(f"{n}/dir", f"{n}/dir2")
    os.unlink(f"{n}/del.bin")
    with open(f"{n}/dir2/big2.bin", "wb") as f:  # O_TRUNC: the old content is never needed
        f.write(b"small")
    new_id = view.commit()
    assert reader.STATS.bytes == before
    assert tree(client, repo, new_id) == {"/moved.bin": big, "/dir2/big2.bin": b"small"}
    view.close()


def test_resume_after_reopen_and_discard(client, pclient, mount, cache, tmp_path, unique_name):
    repo = unique_name("resume")
    base = put_commit(client, repo, {"/a.txt": b"a", "/b.txt": b"b"})
    stage = tmp_path / "stage"
    view = RwView(stage, lambda: pclient, "default", repo, "master", base, cache)
    mount.add_view("r", view)
    r = f"{mount.mount_dir}/r"
    with open(f"{r}/c.txt", "w") as f:
        f.write("c")
    os.unlink(f"{r}/a.txt")
    os.rename(f"{r}/b.txt", f"{r}/bb.txt")
    pending = view.pending_count()
    mount.remove_view("r")
    view.close()

    # the branch moved on meanwhile: the staged changes still apply to the base they were made on
    put_commit(client, repo, {"/other.txt": b"o"})
    again = RwView(stage, lambda: pclient, "default", repo, "master", head_of(client, repo), cache)
    assert again.base_commit_id == base
    assert again.pending_count() == pending
    mount.add_view("r", again)
    assert sorted(os.listdir(r)) == ["bb.txt", "c.txt"]
    again.discard()
    assert again.pending_count() == 0
    assert sorted(os.listdir(r)) == ["a.txt", "b.txt"]
    assert Path(f"{r}/a.txt").read_bytes() == b"a"
    with open(f"{r}/c.txt", "w") as f:
        f.write("c2")
    new_id = again.commit()
    assert tree(client, repo, new_id) == {"/a.txt": b"a", "/b.txt": b"b", "/c.txt": b"c2", "/other.txt": b"o"}
    again.close()


def test_failed_commit_keeps_everything(local_pachd_factory, mount, cache, tmp_path, unique_name):
    server = local_pachd_factory()
    port, data_dir = server.port, server.data_dir
    sdk = server.client()
    repo = unique_name("fail")
    base = put_commit(sdk, repo, {"/a.txt": b"a"})
    c = connect(server.address, rpc_timeout=3)
    view = RwView(tmp_path / "stage", lambda: c, "default", repo, "master", base, cache)
    mount.add_view("f", view)
    f_dir = f"{mount.mount_dir}/f"
    with open(f"{f_dir}/a.txt", "rb") as f:
        assert f.read() == b"a"
    with open(f"{f_dir}/new.txt", "w") as f:
        f.write("keep me")
    os.unlink(f"{f_dir}/a.txt")

    server.stop()
    with pytest.raises(CommitFailed, match="changes kept"):
        view.commit()
    assert view.pending_count() == 2
    assert os.listdir(f_dir) == ["new.txt"]
    with open(f"{f_dir}/new.txt", "a") as f:  # still usable
        f.write("!")

    server = local_pachd_factory(port=port, data_dir=data_dir)
    new_id = wait_for(lambda: view.commit(), 30, what="commit after restart")
    assert tree(server.client(), repo, new_id) == {"/new.txt": b"keep me!"}
    c.close()
    view.close()


@pytest.fixture
def tiny_tmpfs(tmp_path):
    with small_tmpfs(tmp_path / "tiny", "2m") as d:
        yield d


def test_full_staging_disk_gives_enospc_and_loses_nothing(client, pclient, mount, cache, tiny_tmpfs, unique_name):
    repo = unique_name("full")
    base = put_commit(client, repo, {"/base.txt": b"base"})
    view = RwView(tiny_tmpfs / "stage", lambda: pclient, "default", repo, "master", base, cache)
    mount.add_view("t", view)
    t = f"{mount.mount_dir}/t"
    with open(f"{t}/small.txt", "w") as f:
        f.write("precious")
    with pytest.raises(OSError) as info:
        with open(f"{t}/huge.bin", "wb") as f:
            for _ in range(8):
                f.write(b"x" * MiB)
                f.flush()
    assert info.value.errno == errno.ENOSPC
    assert Path(f"{t}/small.txt").read_text() == "precious"
    os.unlink(f"{t}/huge.bin")  # frees the space again
    new_id = view.commit()
    assert tree(client, repo, new_id) == {"/base.txt": b"base", "/small.txt": b"precious"}
    view.close()


def test_changes_survive_kill_9(client, pclient, cache, tmp_path, pachd, unique_name):
    repo = unique_name("crash")
    base = put_commit(client, repo, {"/a.txt": b"a", "/d/b.txt": b"b"})
    mnt, stage = tmp_path / "crashmnt", tmp_path / "stage"
    child = rw_mount_child(mnt, stage, tmp_path / "c2", pachd.address, repo, base)
    try:
        c = f"{mnt}/c"
        with open(f"{c}/written.txt", "w") as f:
            f.write("closed before the kill")
        fd = os.open(f"{c}/synced.txt", os.O_CREAT | os.O_WRONLY)
        os.write(fd, b"fsynced")
        os.fsync(fd)
        os.rename(f"{c}/d", f"{c}/d2")
        os.unlink(f"{c}/a.txt")
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        with contextlib.suppress(OSError):  # the flush of a close goes to a dead FUSE: ENOTCONN
            os.close(fd)
    finally:
        stop_process(child)
        force_unmount(mnt)
    view = RwView(stage, lambda: pclient, "default", repo, "master", None, cache)
    assert view.pending_count() == 5  # two new files, a deletion, a rename (old and new path)
    new_id = view.commit()
    assert tree(client, repo, new_id) == {"/written.txt": b"closed before the kill", "/synced.txt": b"fsynced",
                                          "/d2/b.txt": b"b"}
    view.close()


def test_writes_wait_while_a_commit_runs(client, pclient, mount, cache, tmp_path, unique_name):
    repo = unique_name("wait")
    base = put_commit(client, repo, {"/base.txt": b"base"})
    gate, hold = threading.Event(), {"next_call": False, "held": False}

    def client_fn():
        if hold["next_call"]:  # the commit's first call waits here, inside the commit
            hold["next_call"], hold["held"] = False, True
            gate.wait(60)
        return pclient

    view = RwView(tmp_path / "stage", client_fn, "default", repo, "master", base, cache)
    mount.add_view("wt", view)
    path = f"{mount.mount_dir}/wt/log.txt"
    with open(path, "w") as f:
        f.write("1")
    hold["next_call"] = True
    committer = threading.Thread(target=lambda: result.append(view.commit()))
    result: list = []
    committer.start()
    wait_for(lambda: hold["held"], 30, what="commit in progress")
    wrote = threading.Event()

    def append():
        with open(path, "a") as f:
            f.write("2")
        wrote.set()

    writer = threading.Thread(target=append)
    writer.start()
    gate.set()
    committer.join(60)
    writer.join(60)
    assert wrote.is_set()
    assert tree(client, repo, result[0]) == {"/base.txt": b"base", "/log.txt": b"1"}
    assert view.pending_count() == 1  # the append came after the commit's snapshot
    assert Path(path).read_text() == "12"
    view.close()


def test_a_file_kept_open_across_a_commit(client, pclient, mount, cache, tmp_path, unique_name):
    repo = unique_name("open")
    view, _ = rw_view(client, pclient, mount, cache, tmp_path / "stage", repo, {"/base.txt": b"b"}, "o")
    with open(f"{mount.mount_dir}/o/log.txt", "w") as log:
        log.write("1")
        log.flush()
        first = view.commit()
        assert view.pending_count() == 0
        log.write("2")  # the same handle keeps writing after the commit: a new change
        log.flush()
        assert view.pending_count() == 1
    with open(f"{mount.mount_dir}/o/idle.txt", "w") as idle:
        idle.write("x")
        idle.flush()
        second = view.commit()
    assert view.pending_count() == 0  # closed without writing after the commit: nothing new
    assert tree(client, repo, first)["/log.txt"] == b"1"
    assert tree(client, repo, second) == {"/base.txt": b"b", "/log.txt": b"12", "/idle.txt": b"x"}
    assert view.commit() is None
    assert list((tmp_path / "stage" / "files").iterdir()) == []  # nothing staged is left behind
    view.close()
