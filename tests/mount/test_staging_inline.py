"""Small files' content kept in the staging journal (mount/staging.py: `Journal`, INLINE_MAX):
the move to a blob file at the size limit and after many pieces, kill -9 while small files are
being written and while one becomes a blob file, journals written before the `inline` table,
open handles across discard and the move, and fsync before a move of content a sync made durable.

Each test also checks where the content lives (journal or file), so it fails if the limits stop
working, not only if bytes go wrong.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

from conftest import force_unmount, stop_process
from pachtray.mount import staging
from pachtray.mount.staging import INLINE_MAX, INLINE_WRITES, RwView

from mounthelpers import cache, head_of, mount, pclient, put_commit, rw_mount_child, rw_view, tree  # noqa: F401 - fixtures


def inline_blobs(view: RwView) -> set[str]:
    return set(view.journal.load_inline())


def blob_files(stage: Path) -> set[str]:
    return {f.name for f in (stage / "files").iterdir()}


def blob_of(view: RwView, path: str) -> str:
    return view.rows[path].blob


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def test_files_move_from_the_journal_to_blob_files_at_the_limits(client, pclient, mount, cache, tmp_path,
                                                                 unique_name):
    repo = unique_name("inline")
    small_base, big_base = b"base\n" * 10, os.urandom(INLINE_MAX + 100)
    base = put_commit(client, repo, {"/small-base.txt": small_base, "/big-base.bin": big_base})
    stage = tmp_path / "stage"
    view = RwView(stage, lambda: pclient, "default", repo, "master", base, cache)
    mount.add_view("i", view)
    w = f"{mount.mount_dir}/i"
    expected = {}

    # exactly at the limit: still in the journal; one byte more: a blob file, same content
    at_limit = os.urandom(INLINE_MAX)
    with open(f"{w}/edge.bin", "wb") as f:
        f.write(at_limit)
    assert blob_of(view, "/edge.bin") in inline_blobs(view) and read(f"{w}/edge.bin") == at_limit
    with open(f"{w}/edge.bin", "ab") as f:
        f.write(b"!")
    assert blob_of(view, "/edge.bin") in blob_files(stage) - inline_blobs(view)
    assert read(f"{w}/edge.bin") == at_limit + b"!"
    fd = os.open(f"{w}/edge.bin", os.O_WRONLY)
    os.pwrite(fd, b"MID", 100)
    os.ftruncate(fd, 200)  # smaller again: it stays a file
    os.close(fd)
    expected["/edge.bin"] = at_limit[:100] + b"MID" + at_limit[103:200]
    assert read(f"{w}/edge.bin") == expected["/edge.bin"]

    # truncated past the limit
    with open(f"{w}/grown.bin", "wb") as f:
        f.write(b"head")
    os.truncate(f"{w}/grown.bin", INLINE_MAX + 5)
    assert blob_of(view, "/grown.bin") in blob_files(stage)
    expected["/grown.bin"] = b"head" + bytes(INLINE_MAX + 1)

    # a write far past the end of a small file (sparse)
    with open(f"{w}/sparse.bin", "wb") as f:
        f.write(b"start")
        f.seek(3 * INLINE_MAX)
        f.write(b"end")
    expected["/sparse.bin"] = b"start" + bytes(3 * INLINE_MAX - 5) + b"end"

    # holes inside the limit, overwrites in the middle: stays in the journal
    fd = os.open(f"{w}/holes.bin", os.O_CREAT | os.O_WRONLY, 0o644)
    os.pwrite(fd, b"B", 10)
    os.pwrite(fd, b"A", 0)
    os.pwrite(fd, b"xyz", 4)
    os.close(fd)
    expected["/holes.bin"] = b"A\0\0\0xyz\0\0\0B"
    assert blob_of(view, "/holes.bin") in inline_blobs(view)

    # many small pieces: a blob file after INLINE_WRITES of them
    pieces = [os.urandom(7) for _ in range(INLINE_WRITES + 3)]
    with open(f"{w}/pieces.log", "wb", buffering=0) as f:
        for i, p in enumerate(pieces):
            f.write(p)
            if i == INLINE_WRITES - 2:
                assert blob_of(view, "/pieces.log") in inline_blobs(view)
    assert blob_of(view, "/pieces.log") in blob_files(stage) - inline_blobs(view)
    expected["/pieces.log"] = b"".join(pieces)

    # base files: a small one is copied into the journal, a big one into a blob file
    with open(f"{w}/small-base.txt", "r+b") as f:
        f.seek(0)
        f.write(b"BASE")
    expected["/small-base.txt"] = b"BASE" + small_base[4:]
    assert blob_of(view, "/small-base.txt") in inline_blobs(view)
    with open(f"{w}/big-base.bin", "r+b") as f:
        f.write(b"BIG")
    expected["/big-base.bin"] = b"BIG" + big_base[3:]
    assert blob_of(view, "/big-base.bin") in blob_files(stage)

    # a hard link of a small file is a copy in the journal
    os.link(f"{w}/holes.bin", f"{w}/holes-link.bin")
    with open(f"{w}/holes-link.bin", "ab") as f:
        f.write(b"+")
    expected["/holes-link.bin"] = expected["/holes.bin"] + b"+"
    assert blob_of(view, "/holes-link.bin") in inline_blobs(view)

    for path, data in expected.items():
        assert read(w + path) == data, path
    new_id = view.commit()
    assert tree(client, repo, new_id) == expected
    assert inline_blobs(view) == set() and blob_files(stage) == set()
    view.close()


def test_small_files_survive_kill_9_mid_write(client, pclient, cache, tmp_path, pachd, unique_name):
    """Every write that returned is there after kill -9, in files still open at the kill."""
    repo = unique_name("kill")
    base = put_commit(client, repo, {"/a.txt": b"a"})
    mnt, stage = tmp_path / "mnt", tmp_path / "stage"
    child = rw_mount_child(mnt, stage, tmp_path / "c2", pachd.address, repo, base)
    fds = []
    try:
        c = f"{mnt}/c"
        fds.append(growing := os.open(f"{c}/growing.txt", os.O_CREAT | os.O_WRONLY, 0o644))
        for i in range(5):
            os.write(growing, f"line {i}\n".encode())
        fds.append(moved := os.open(f"{c}/moved.txt", os.O_CREAT | os.O_WRONLY, 0o644))
        os.write(moved, b"written, then renamed while open")
        os.rename(f"{c}/moved.txt", f"{c}/renamed.txt")
        fds.append(big := os.open(f"{c}/big.bin", os.O_CREAT | os.O_WRONLY, 0o644))
        os.write(big, b"x" * 100)
        os.pwrite(big, b"y" * INLINE_MAX, 100)  # past the limit while open
        os.write(big, b"tail")  # (the descriptor's own offset: 100)
        fds.append(edited := os.open(f"{c}/a.txt", os.O_WRONLY | os.O_APPEND))
        os.write(edited, b"+appended")
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        for fd in fds:
            with contextlib.suppress(OSError):  # the close goes to a dead FUSE
                os.close(fd)
        stop_process(child)
        force_unmount(mnt)
    view = RwView(stage, lambda: pclient, "default", repo, "master", None, cache)
    expected = {"/a.txt": b"a+appended", "/growing.txt": b"".join(f"line {i}\n".encode() for i in range(5)),
                "/renamed.txt": b"written, then renamed while open",
                "/big.bin": b"x" * 100 + b"tail" + b"y" * (INLINE_MAX - 4)}
    assert tree(client, repo, view.commit()) == expected
    view.close()


SPILL_KILLED = textwrap.dedent("""
    import os, signal, sys
    from pachtray.mount.cache import ChunkCache
    from pachtray.mount import staging
    from pachtray.pfs.client import connect
    stage, cache_dir, address, repo, base, small = sys.argv[1:]
    client = connect(address)
    view = staging.RwView(stage, lambda: client, "default", repo, "master", base, ChunkCache(cache_dir))
    h = view.create("/f.bin", 0o644, os.O_WRONLY | os.O_CREAT)
    h.write(small.encode(), 0)
    h.fsync()
    write = staging.Journal.write
    def killed_in_the_move(self, changes, meta=None, put=None, drop=()):
        if drop and not changes:  # the move to a blob file: its file is written, the row not yet deleted
            os.kill(os.getpid(), signal.SIGKILL)
        return write(self, changes, meta, put, drop)
    staging.Journal.write = killed_in_the_move
    h.write(b"z" * (staging.INLINE_MAX + 1), len(small))
""")


def test_kill_9_while_a_small_file_becomes_a_blob_file(client, pclient, cache, tmp_path, pachd, unique_name):
    repo = unique_name("move")
    base = put_commit(client, repo, {"/a.txt": b"a"})
    stage = tmp_path / "stage"
    child = subprocess.run([sys.executable, "-c", SPILL_KILLED, str(stage), str(tmp_path / "c2"), pachd.address,
                            repo, base, "synced"], capture_output=True, text=True, timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert len(blob_files(stage)) == 1  # the half-made move: written, not yet the truth
    view = RwView(stage, lambda: pclient, "default", repo, "master", None, cache)
    assert blob_files(stage) == set() and inline_blobs(view) == {blob_of(view, "/f.bin")}
    h = view.open("/f.bin", os.O_WRONLY)  # and it can still grow
    h.write(b"!" * INLINE_MAX, 6)
    h.release()
    assert tree(client, repo, view.commit()) == {"/a.txt": b"a", "/f.bin": b"synced" + b"!" * INLINE_MAX}
    view.close()


OLD_SCHEMA = ["CREATE TABLE rows (path TEXT PRIMARY KEY, kind TEXT NOT NULL, blob TEXT, src TEXT,"
              " clean INTEGER NOT NULL DEFAULT 0)",
              "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)"]


def test_a_journal_from_before_inline_content_loads_and_commits(client, pclient, mount, cache, tmp_path,
                                                                unique_name):
    """A staging dir as the previous format left it (every blob a file, no `inline` table):
    each change shows, the old blob files keep working, new small files go to the journal."""
    repo = unique_name("oldjournal")
    base = put_commit(client, repo, {"/keep.txt": b"keep", "/edit.txt": b"old", "/gone.txt": b"g",
                                     "/move.txt": b"moved", "/d/x.txt": b"x"})
    stage = tmp_path / "stage"
    (stage / "files").mkdir(parents=True)
    blobs = {"/new.txt": b"new before the upgrade", "/edit.txt": b"edited before the upgrade"}
    with contextlib.closing(sqlite3.connect(stage / "journal.sqlite", isolation_level=None)) as db:
        db.execute("PRAGMA journal_mode=WAL")
        for statement in OLD_SCHEMA:
            db.execute(statement)
        for path, data in blobs.items():
            blob = uuid.uuid4().hex
            (stage / "files" / blob).write_bytes(data)
            db.execute("INSERT INTO rows VALUES (?, 'file', ?, NULL, 0)", (path, blob))
        db.execute("INSERT INTO rows VALUES ('/gone.txt', 'gone', NULL, NULL, 0)")
        db.execute("INSERT INTO rows VALUES ('/moved.txt', 'file', NULL, '/move.txt', 0)")
        db.execute("INSERT INTO rows VALUES ('/move.txt', 'gone', NULL, NULL, 0)")
        db.execute("INSERT INTO rows VALUES ('/e', 'dir', NULL, '/d', 0)")
        db.execute("INSERT INTO rows VALUES ('/d', 'gone', NULL, NULL, 0)")
        db.execute("INSERT INTO meta VALUES ('base_commit', ?)", (base,))
    put_commit(client, repo, {"/later.txt": b"the branch moved on"})

    view = RwView(stage, lambda: pclient, "default", repo, "master", head_of(client, repo), cache)
    assert view.base_commit_id == base and view.pending_count() == 7
    mount.add_view("o", view)
    w = f"{mount.mount_dir}/o"
    assert sorted(os.listdir(w)) == ["e", "edit.txt", "keep.txt", "moved.txt", "new.txt"]
    assert read(f"{w}/new.txt") == blobs["/new.txt"] and read(f"{w}/e/x.txt") == b"x"
    with open(f"{w}/edit.txt", "ab") as f:  # an old blob file keeps being written as a file
        f.write(b" and after")
    with open(f"{w}/fresh.txt", "wb") as f:
        f.write(b"after the upgrade")
    assert blob_of(view, "/fresh.txt") in inline_blobs(view)
    new_id = view.commit()
    assert tree(client, repo, new_id) == {
        "/keep.txt": b"keep", "/edit.txt": b"edited before the upgrade and after", "/moved.txt": b"moved",
        "/e/x.txt": b"x", "/new.txt": blobs["/new.txt"], "/fresh.txt": b"after the upgrade",
        "/later.txt": b"the branch moved on"}
    assert blob_files(stage) == set() and inline_blobs(view) == set()
    view.close()


def test_an_open_small_file_stays_usable_after_discard(client, pclient, mount, cache, tmp_path, unique_name):
    view, w = rw_view(client, pclient, mount, cache, tmp_path / "stage", unique_name("discard"), {"/a.txt": b"a"}, "d")
    fd = os.open(f"{w}/open.txt", os.O_CREAT | os.O_RDWR, 0o644)
    try:
        os.write(fd, b"before")
        view.discard()
        assert os.listdir(w) == ["a.txt"]
        assert os.pread(fd, 100, 0) == b"before"
        os.pwrite(fd, b"+after", 6)
        assert os.pread(fd, 100, 0) == b"before+after"
        assert len(inline_blobs(view)) == 1  # kept for the descriptor
    finally:
        os.close(fd)
    assert staging_settles(lambda: inline_blobs(view) == set())
    assert view.commit() is None
    view.close()


def staging_settles(check, timeout: float = 10) -> bool:
    """The release of a closed file reaches the daemon shortly after close() returns."""
    import time
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_a_reader_follows_a_small_file_into_its_blob_file(client, pclient, cache, tmp_path, unique_name):
    repo = unique_name("follow")
    base = put_commit(client, repo, {"/a.txt": b"a"})
    view = RwView(tmp_path / "stage", lambda: pclient, "default", repo, "master", base, cache)
    w = view.create("/f.bin", 0o644, os.O_WRONLY | os.O_CREAT)
    w.write(b"small", 0)
    r = view.open("/f.bin", os.O_RDONLY)
    assert r.read(100, 0) == b"small" and r.stat()["st_size"] == 5
    big = os.urandom(INLINE_MAX)
    w.write(big, 5)
    assert blob_of(view, "/f.bin") not in inline_blobs(view)
    assert r.read(10, 0) == b"small" + big[:5] and r.stat()["st_size"] == INLINE_MAX + 5
    assert view.getattr("/f.bin")["st_size"] == INLINE_MAX + 5
    r.release()
    w.release()
    view.close()


def test_a_move_after_fsync_syncs_the_blob_file(client, pclient, cache, tmp_path, unique_name, monkeypatch):
    """Content an fsync() made durable in the journal is made durable in its blob file before the
    journal lets go of it (a power loss must not lose it); without an fsync nothing waits."""
    repo = unique_name("sync")
    base = put_commit(client, repo, {"/a.txt": b"a"})
    view = RwView(tmp_path / "stage", lambda: pclient, "default", repo, "master", base, cache)
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append(os.path.basename(os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)
    monkeypatch.setattr(staging.os, "fsync", fsync)
    for name, sync in (("/synced.bin", True), ("/unsynced.bin", False)):
        h = view.create(name, 0o644, os.O_WRONLY | os.O_CREAT)
        h.write(b"durable", 0)
        if sync:
            h.fsync()
        h.write(b"x" * INLINE_MAX, 7)
        h.release()
    assert synced == [blob_of(view, "/synced.bin")]
    view.close()
