"""Integrity of rw mounts through real FUSE and the real embedded server: a commit replaces what it
changes (never appends, also after a crash between the commit and the journal), paths change kind,
names pachd refuses are refused at once, links are committed as copies, unlinked open files stay
usable, folders stay until unmount and the kernel forgets what a commit changed."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from pachyderm_sdk.api import pfs

from pachtray.mount.staging import INLINE_MAX, CommitFailed, RwView
from pachtray.pfs import codec

from mounthelpers import cache, head_of, mount, pclient, put_commit, rw_view, tree  # noqa: F401 - fixtures

MiB = 1 << 20


@pytest.fixture
def rw(client, pclient, mount, cache, tmp_path, unique_name):
    """make(files) -> (view, folder): a rw view of a fresh repo whose master holds ``files``."""
    made = []

    def make(files: dict[str, bytes], name: str = "w"):
        view, folder = rw_view(client, pclient, mount, cache, tmp_path / f"stage-{name}", unique_name("rwi"), files, name)
        made.append(view)
        return view, folder

    yield make
    for v in made:
        v.close()


def errno_of(fn, *args) -> int:
    try:
        fn(*args)
    except OSError as e:
        return e.errno
    return 0


def write(path: str, data: bytes, mode: str = "wb") -> None:
    with open(path, mode) as f:
        f.write(data)


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


# --- item 5: a commit replaces, never appends ---------------------------------------------------

def test_a_path_that_appeared_upstream_is_replaced(client, rw):
    view, w = rw({"/base.txt": b"base"})
    write(f"{w}/x.txt", b"from mount\n")
    os.mkdir(f"{w}/made")
    write(f"{w}/made/f.txt", b"mine\n")
    put_commit(client, view.repo_name, {"/x.txt": b"from sdk\n", "/made/f.txt": b"theirs\n",
                                        "/made/other.txt": b"other\n"})
    new_id = view.commit()
    assert tree(client, view.repo_name, new_id) == {
        "/base.txt": b"base", "/x.txt": b"from mount\n", "/made/f.txt": b"mine\n", "/made/other.txt": b"other\n"}


def test_a_commit_on_its_base_deletes_only_what_the_base_has(client, rw, monkeypatch):
    """The commit's parent is the base (nothing landed since): a new path needs no DeleteFile (half
    the requests of a commit of new files), a path the base has still gets one (else an append).
    When the parent is not the base, every path gets one: the test above."""
    view, w = rw({"/base.txt": b"base", "/d/old.txt": b"old", "/was_dir/f.txt": b"f", "/r/in.txt": b"in"})
    view._upload.quiet = float("inf")  # nothing uploaded ahead: every request is the commit's
    write(f"{w}/new.txt", b"new")
    write(f"{w}/d/new2.txt", b"new2")
    write(f"{w}/base.txt", b"changed")
    os.unlink(f"{w}/was_dir/f.txt")
    os.rmdir(f"{w}/was_dir")
    write(f"{w}/was_dir", b"a file where the base has a folder")
    os.rename(f"{w}/r", f"{w}/r2")  # the stream copies /r to /r2 before it writes /r2/in.txt
    write(f"{w}/r2/in.txt", b"mine")
    deleted = []
    real = codec.ModifyFileEncoder.delete_file
    monkeypatch.setattr(codec.ModifyFileEncoder, "delete_file", lambda self, p: deleted.append(p) or real(self, p))
    new_id = view.commit()
    assert sorted(deleted) == ["/base.txt", "/r", "/r2", "/r2/in.txt", "/was_dir"]
    assert tree(client, view.repo_name, new_id) == {
        "/base.txt": b"changed", "/d/old.txt": b"old", "/new.txt": b"new", "/d/new2.txt": b"new2",
        "/was_dir": b"a file where the base has a folder", "/r2/in.txt": b"mine"}


CRASH_AFTER_COMMIT = textwrap.dedent("""
    import os, signal, sys
    from pachtray.mount.cache import ChunkCache
    from pachtray.mount.staging import RwView
    from pachtray.pfs.client import connect
    stage, cache_dir, address, repo, base, where = sys.argv[1:]
    client = connect(address)
    def die(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)
    if where == "after the upload":  # the commit is on the branch; the journal still says it is pending
        landed = client.pfs.finish_commit
        client.pfs.finish_commit = lambda **kw: (landed(**kw), die())
    elif where == "before the finish":  # the commit has every change but is still open
        from pachtray.pfs import client as pfs_client
        sent = pfs_client.modify_file
        pfs_client.modify_file = lambda client, requests: (sent(client, requests), die())
    else:  # ... and the journal reset starts
        RwView._apply_dropping_blobs = die
    RwView(stage, lambda: client, "default", repo, "master", base, ChunkCache(cache_dir)).commit()
""")


@pytest.mark.parametrize("where", ["after the upload", "in the journal reset"])
def test_recommit_after_a_crash_between_commit_and_journal(client, pclient, mount, cache, tmp_path, pachd,
                                                           unique_name, where):
    repo = unique_name("window")
    base = put_commit(client, repo, {"/keep.txt": b"k", "/gone.txt": b"g", "/old/a.txt": b"a"})
    stage = tmp_path / "stage"
    view = RwView(stage, lambda: pclient, "default", repo, "master", base, cache)
    mount.add_view("c", view)
    c = f"{mount.mount_dir}/c"
    big = os.urandom(3 * MiB + 17)
    write(f"{c}/big.bin", big)
    write(f"{c}/keep.txt", b"+more", "ab")
    os.unlink(f"{c}/gone.txt")
    os.rename(f"{c}/old", f"{c}/new")
    mount.remove_view("c")
    view.close()
    child = subprocess.run([sys.executable, "-c", CRASH_AFTER_COMMIT, str(stage), str(tmp_path / "c2"),
                            pachd.address, repo, base, where], capture_output=True, text=True, timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr
    expected = {"/keep.txt": b"k+more", "/big.bin": big, "/new/a.txt": b"a"}
    landed = head_of(client, repo)
    assert landed != base and tree(client, repo, landed) == expected
    again = RwView(stage, lambda: pclient, "default", repo, "master", None, cache)
    assert again.pending_count() > 0  # the journal could not know the commit had landed
    assert again.commit() == landed == head_of(client, repo)  # taken as the commit, not made twice
    assert again.pending_count() == 0 and tree(client, repo, landed) == expected
    again.close()
    assert list((stage / "files").iterdir()) == []  # no blob left behind either


def test_recommit_after_a_crash_before_the_finish_drops_the_open_commit(client, pclient, cache, tmp_path, pachd,
                                                                         unique_name):
    """A kill between the upload and the finish leaves an open commit on the branch, which pachd
    would not start a new commit over: the next commit drops it and lands the same changes."""
    repo = unique_name("open")
    base = put_commit(client, repo, {"/keep.txt": b"k", "/gone.txt": b"g"})
    stage = tmp_path / "stage"
    view = RwView(stage, lambda: pclient, "default", repo, "master", base, cache)
    handle = view.create("/new.txt", 0o644, os.O_WRONLY)
    view._write(handle, b"new", 0)
    handle.release()
    view.unlink("/gone.txt")
    view.close()
    child = subprocess.run([sys.executable, "-c", CRASH_AFTER_COMMIT, str(stage), str(tmp_path / "c2"),
                            pachd.address, repo, base, "before the finish"], capture_output=True, text=True,
                           timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr
    left_open = head_of(client, repo)
    assert left_open != base
    assert client.pfs.inspect_commit(commit=pfs.Commit.from_uri(f"{repo}@{left_open}")).finished.timestamp() <= 0
    again = RwView(stage, lambda: pclient, "default", repo, "master", None, cache)
    landed = again.commit("after a crash")
    again.close()
    assert tree(client, repo, landed) == {"/keep.txt": b"k", "/new.txt": b"new"}
    info = client.pfs.inspect_commit(commit=pfs.Commit.from_uri(f"{repo}@{landed}"))
    assert info.description == "after a crash" and info.parent_commit.id == base  # the open one is gone
    client.pfs.delete_repo(repo=pfs.Repo(name=repo), force=True)


def test_a_commit_reported_failed_that_landed_is_not_made_twice(client, pclient, cache, tmp_path, pachd,
                                                                unique_name):
    """The finish reaches pachd but its answer does not come back (a cluster frozen mid-commit), and
    the clean-up fails too: the user is told it failed, the changes stay staged. Committing again
    takes the landed commit instead of making a second one; a change made after the failure is
    committed, over the landed commit."""
    from pachtray.pfs.client import connect

    repo = unique_name("lost")
    base = put_commit(client, repo, {"/keep.txt": b"k", "/gone.txt": b"g"})
    faulty = connect(pachd.address)
    finish, drop = faulty.pfs.finish_commit, faulty.pfs.drop_commit_set

    def answer_lost(**kw):
        finish(**kw)
        if not kw.get("error"):
            raise ConnectionError("the answer was lost")
    faulty.pfs.finish_commit = answer_lost
    faulty.pfs.drop_commit_set = lambda **kw: (_ for _ in ()).throw(ConnectionError("no answer"))
    for later_change in (False, True):
        name = f"{repo}-{later_change}"
        stage = tmp_path / f"stage-{later_change}"
        client.pfs.create_branch(branch=pfs.Branch.from_uri(f"{repo}@{name}"),
                                 head=pfs.Commit.from_uri(f"{repo}@{base}"))
        view = RwView(stage, lambda: faulty, "default", repo, name, base, cache)
        handle = view.create("/new.txt", 0o644, os.O_WRONLY)
        view._write(handle, b"new", 0)
        handle.release()
        view.unlink("/gone.txt")
        with pytest.raises(CommitFailed):
            view.commit("first try")
        landed = head_of(client, repo, name)
        assert landed != base and tree(client, repo, landed) == {"/keep.txt": b"k", "/new.txt": b"new"}
        faulty.pfs.finish_commit, faulty.pfs.drop_commit_set = finish, drop
        if later_change:
            handle = view.create("/later.txt", 0o644, os.O_WRONLY)
            view._write(handle, b"later", 0)
            handle.release()
            second = view.commit("second try")
            assert second != landed
            assert client.pfs.inspect_commit(commit=pfs.Commit.from_uri(f"{repo}@{second}")).parent_commit.id == landed
            assert tree(client, repo, second) == {"/keep.txt": b"k", "/new.txt": b"new", "/later.txt": b"later"}
        else:
            assert view.commit("second try") == landed == head_of(client, repo, name)
        assert view.pending_count() == 0
        view.close()
        faulty.pfs.finish_commit = answer_lost
        faulty.pfs.drop_commit_set = lambda **kw: (_ for _ in ()).throw(ConnectionError("no answer"))
    client.pfs.delete_repo(repo=pfs.Repo(name=repo), force=True)


def test_closing_a_view_stops_its_commit_in_progress_and_keeps_the_changes(client, pclient, cache, tmp_path,
                                                                            unique_name):
    """A daemon asked to stop does not wait for a long upload (here 4 GiB of a sparse file): the
    commit stops at its next chunk, nothing lands, and the changes are there at the next start."""
    repo = unique_name("closing")
    base = put_commit(client, repo, {"/a.txt": b"a"})
    stage = tmp_path / "stage"
    view = RwView(stage, lambda: pclient, "default", repo, "master", base, cache)
    handle = view.create("/huge.bin", 0o644, os.O_WRONLY)
    view._write(handle, b"x", 4 << 30)
    handle.release()
    outcome = []

    def commit():
        try:
            outcome.append(view.commit())
        except CommitFailed as e:
            outcome.append(e)
    t = threading.Thread(target=commit)
    t.start()
    time.sleep(0.5)
    started = time.monotonic()
    view.close()
    t.join(30)
    assert not t.is_alive() and time.monotonic() - started < 10
    assert isinstance(outcome[0], CommitFailed) and "stopped: the mount is closing" in str(outcome[0])
    assert head_of(client, repo) == base
    again = RwView(stage, lambda: pclient, "default", repo, "master", None, cache)
    assert again.pending_count() == 1 and again.getattr("/huge.bin")["st_size"] == (4 << 30) + 1
    again.discard()
    again.close()
    client.pfs.delete_repo(repo=pfs.Repo(name=repo), force=True)


def test_fallocate_grows_a_file_and_the_modes_it_cannot_do_are_refused(client, rw):
    """`fallocate -l` (what `posix_fallocate` tries first) makes the file that long, zeros past
    the old end; --keep-size changes nothing; punching a hole is EOPNOTSUPP, the file unchanged."""
    view, w = rw({"/f.bin": b"abc"})
    for args in (["-l", "65536", f"{w}/new.bin"], ["-o", "1", "-l", "10", f"{w}/f.bin"],
                 ["-n", "-l", "1000000", f"{w}/f.bin"]):
        assert subprocess.run(["fallocate", *args], capture_output=True).returncode == 0, args
    assert read(f"{w}/new.bin") == bytes(65536) and read(f"{w}/f.bin") == b"abc" + bytes(8)
    punched = subprocess.run(["fallocate", "-p", "-o", "0", "-l", "2", f"{w}/f.bin"], capture_output=True, text=True)
    assert punched.returncode != 0 and "unsupported" in punched.stderr  # util-linux words EOPNOTSUPP so
    assert read(f"{w}/f.bin") == b"abc" + bytes(8)
    assert tree(client, view.repo_name, view.commit()) == {"/new.bin": bytes(65536), "/f.bin": b"abc" + bytes(8)}


# --- item 6: a path changes kind --------------------------------------------------------------------

def test_a_committed_folder_replaced_by_a_file(client, rw):
    view, w = rw({"/c/x.txt": b"x", "/c/d/y.txt": b"y", "/f": b"file"})
    for p in ("/c/x.txt", "/c/d/y.txt"):
        os.unlink(w + p)
    os.rmdir(f"{w}/c/d")
    os.rmdir(f"{w}/c")
    write(f"{w}/c", b"now a file")
    os.unlink(f"{w}/f")
    os.mkdir(f"{w}/f")
    write(f"{w}/f/inside", b"now a folder")
    first = view.commit()
    assert tree(client, view.repo_name, first) == {"/c": b"now a file", "/f/inside": b"now a folder"}
    write(f"{w}/later.txt", b"later")  # and the mount keeps committing
    assert tree(client, view.repo_name, view.commit())["/later.txt"] == b"later"


def test_a_file_replaced_by_an_empty_folder(client, rw):
    """An empty folder where a committed file was is a change: the commit deletes the file (also
    inside a renamed folder, whose content the commit copies first)."""
    view, w = rw({"/f": b"file", "/r/g": b"g", "/r/h": b"h"})
    os.unlink(f"{w}/f")
    os.mkdir(f"{w}/f")
    assert view.pending_count() == 1
    assert tree(client, view.repo_name, view.commit()) == {"/r/g": b"g", "/r/h": b"h"}
    os.rename(f"{w}/r", f"{w}/r2")
    os.unlink(f"{w}/r2/g")
    os.mkdir(f"{w}/r2/g")
    os.unlink(f"{w}/r2/h")
    os.rename(f"{w}/f", f"{w}/r2/h")  # an empty folder moved where a file was: that file goes too
    assert tree(client, view.repo_name, view.commit()) == {}
    assert sorted(os.listdir(f"{w}/r2")) == ["g", "h"]


# --- items 8, 9: names -------------------------------------------------------------------------------

BAD_NAMES = [f"a{c}b" for c in "*?[]{}!()@+^"] + ["caf\u00e9", "tab\there", "bell\x07", "\u65e5\u672c"]


def test_names_pachd_refuses_are_einval(client, rw):
    view, w = rw({"/ok.txt": b"ok"})
    os.mkdir(f"{w}/d")
    for name in BAD_NAMES:
        p = f"{w}/d/{name}"
        assert errno_of(lambda: os.close(os.open(p, os.O_CREAT | os.O_WRONLY))) == errno.EINVAL, name
        assert errno_of(os.mkdir, p) == errno.EINVAL, name
        assert errno_of(os.rename, f"{w}/ok.txt", p) == errno.EINVAL, name
        assert errno_of(os.link, f"{w}/ok.txt", p) == errno.EINVAL, name
        assert errno_of(os.symlink, "../ok.txt", p) == errno.EINVAL, name
        assert errno_of(os.mkdir, f"{w}/{name}") == errno.EINVAL, name
    raw = os.fsencode(f"{w}/d/") + b"bad\xff"  # not UTF-8 at all
    assert errno_of(os.mkdir, raw) == errno.EINVAL
    assert os.listdir(f"{w}/d") == []
    write(f"{w}/d/fine name, (not) a glob.txt".replace("(not) ", ""), b"1")
    assert tree(client, view.repo_name, view.commit()) == {"/ok.txt": b"ok", "/d/fine name, a glob.txt": b"1"}


def test_special_files_are_eperm(client, rw):
    view, w = rw({"/a.txt": b"a"})
    assert errno_of(os.mkfifo, f"{w}/fifo") == errno.EPERM
    assert errno_of(os.mknod, f"{w}/sock", 0o600 | 0o140000) == errno.EPERM
    assert os.listdir(w) == ["a.txt"] and view.pending_count() == 0


def test_names_over_255_bytes_are_enametoolong(client, rw):
    view, w = rw({"/ok.txt": b"ok"})
    assert os.statvfs(w).f_namemax == 255
    long, longest = "n" * 256, "n" * 255
    assert errno_of(lambda: os.close(os.open(f"{w}/{long}", os.O_CREAT | os.O_WRONLY))) == errno.ENAMETOOLONG
    assert errno_of(os.mkdir, f"{w}/{long}") == errno.ENAMETOOLONG
    assert errno_of(os.rename, f"{w}/ok.txt", f"{w}/{long}") == errno.ENAMETOOLONG
    assert errno_of(os.link, f"{w}/ok.txt", f"{w}/{long}") == errno.ENAMETOOLONG
    assert errno_of(os.symlink, "ok.txt", f"{w}/{long}") == errno.ENAMETOOLONG
    write(f"{w}/{longest}", b"fits")
    assert tree(client, view.repo_name, view.commit()) == {"/ok.txt": b"ok", f"/{longest}": b"fits"}


# --- item 4: links ------------------------------------------------------------------------------------

def test_links_are_committed_as_copies(client, rw):
    view, w = rw({"/dir/foo": b"bar\n", "/base.txt": b"base"})
    os.link(f"{w}/dir/foo", f"{w}/dir/bar")  # made as a copy, by reference to the base file
    os.symlink(f"{w}/dir/foo", f"{w}/dir/buzz")  # absolute, into the mount (the reference's TestWrite)
    os.symlink("../base.txt", f"{w}/dir/rel")
    os.symlink("rel", f"{w}/dir/chain")
    assert os.readlink(f"{w}/dir/buzz") == f"{w}/dir/foo"
    assert os.readlink(f"{w}/dir/rel") == "../base.txt"
    assert os.lstat(f"{w}/dir/rel").st_size == len("../base.txt")
    assert os.path.islink(f"{w}/dir/buzz") and not os.path.islink(f"{w}/dir/bar")
    assert os.stat(f"{w}/dir/foo").st_nlink == 1 and os.stat(f"{w}/dir/bar").st_nlink == 1  # two files
    assert read(f"{w}/dir/chain") == b"base"
    write(f"{w}/dir/foo", b"more\n", "ab")  # the symlink shows it, the hard link (a copy) does not
    write(f"{w}/new.txt", b"staged")
    os.link(f"{w}/new.txt", f"{w}/new-link.txt")  # a staged file: its content is copied
    write(f"{w}/new.txt", b"!", "ab")
    assert (read(f"{w}/new.txt"), read(f"{w}/new-link.txt")) == (b"staged!", b"staged")
    os.link(f"{w}/dir/rel", f"{w}/dir/rel-link")  # a link to a symlink is that symlink again
    assert os.readlink(f"{w}/dir/rel-link") == "../base.txt"
    assert errno_of(os.link, f"{w}/dir", f"{w}/dirlink") == errno.EPERM
    assert errno_of(os.link, f"{w}/dir/foo", f"{w}/new.txt") == errno.EEXIST
    assert errno_of(os.readlink, f"{w}/dir/foo") == errno.EINVAL
    new_id = view.commit()
    assert tree(client, view.repo_name, new_id) == {
        "/dir/foo": b"bar\nmore\n", "/dir/bar": b"bar\n", "/dir/buzz": b"bar\nmore\n", "/dir/rel": b"base",
        "/dir/chain": b"base", "/base.txt": b"base", "/new.txt": b"staged!", "/new-link.txt": b"staged",
        "/dir/rel-link": b"base"}
    # symbolic links stay links until unmount; each commit stores a copy of what they lead to then
    assert os.readlink(f"{w}/dir/buzz") == f"{w}/dir/foo" and view.pending_count() == 0
    assert view.commit() is None
    write(f"{w}/dir/foo", b"changed\n")
    assert view.pending_count() == 1
    assert tree(client, view.repo_name, view.commit())["/dir/buzz"] == b"changed\n"
    os.unlink(f"{w}/dir/buzz")
    assert "/dir/buzz" not in tree(client, view.repo_name, view.commit())


def test_a_link_that_cannot_be_copied_fails_the_commit_and_keeps_everything(client, rw, tmp_path):
    view, w = rw({"/a.txt": b"a"})
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"secret")
    assert errno_of(os.symlink, str(outside), f"{w}/out") == errno.EPERM
    os.symlink("missing.txt", f"{w}/dangling")
    write(f"{w}/new.txt", b"new")
    with pytest.raises(CommitFailed, match="dangling"):
        view.commit()
    os.mkdir(f"{w}/folder")
    os.symlink("folder", f"{w}/to-folder")
    with pytest.raises(CommitFailed) as both:  # every link that cannot be committed, named at once
        view.commit()
    assert "/dangling -> missing.txt (it is dangling" in str(both.value)
    assert "/to-folder -> folder (it leads to a folder)" in str(both.value)
    os.unlink(f"{w}/dangling")
    os.unlink(f"{w}/to-folder")
    os.symlink("../a.txt", f"{w}/up")  # relative, but above the mount's top
    with pytest.raises(CommitFailed, match="outside the mount"):
        view.commit()
    os.unlink(f"{w}/up")
    os.symlink("loop", f"{w}/loop")
    with pytest.raises(CommitFailed, match="loop"):
        view.commit()
    os.unlink(f"{w}/loop")
    for i in range(7):  # many, to long targets: the message names five, each cut, and counts the rest
        os.symlink("t" * 4000 + str(i), f"{w}/long{i}")
    with pytest.raises(CommitFailed) as many:
        view.commit()
    assert "and 2 more cannot be committed" in str(many.value) and len(str(many.value)) < 1200, str(many.value)
    for i in range(7):
        os.unlink(f"{w}/long{i}")
    assert tree(client, view.repo_name, view.commit()) == {"/a.txt": b"a", "/new.txt": b"new"}


# --- item 10: an unlinked open file -----------------------------------------------------------------

def test_an_unlinked_open_file_stays_usable_and_is_not_committed(client, rw, caplog):
    view, w = rw({"/base.txt": b"base", "/d/keep.txt": b"k"})
    write(f"{w}/d/tmp.bin", b"0123456789")
    fd = os.open(f"{w}/d/tmp.bin", os.O_RDWR)
    try:
        os.unlink(f"{w}/d/tmp.bin")
        assert sorted(os.listdir(f"{w}/d")) == ["keep.txt"]
        assert os.pwrite(fd, b"AB", 8) == 2
        assert os.fstat(fd).st_size == 10
        os.ftruncate(fd, 4)
        assert os.fstat(fd).st_size == 4
        assert os.pread(fd, 100, 0) == b"0123"
        assert os.fstat(fd).st_nlink == 0
        os.unlink(f"{w}/d/keep.txt")
        assert os.listdir(f"{w}/d") == []
        new_id = view.commit()
        assert tree(client, view.repo_name, new_id) == {"/base.txt": b"base"}
        assert os.pread(fd, 100, 0) == b"0123"
        os.pwrite(fd, b"!", 4)
        assert os.fstat(fd).st_size == 5
        os.ftruncate(fd, 2)
        assert os.fstat(fd).st_size == 2 and view.pending_count() == 0
        os.rmdir(f"{w}/d")  # only the unlinked file is left in it: the folder is empty
        assert os.pread(fd, 100, 0) == b"01"  # (fstat needs the folder: libfuse answers ESTALE now)
        assert os.pwrite(fd, b"23", 2) == 2 and os.pread(fd, 100, 0) == b"0123"
        assert errno_of(os.ftruncate, fd, 1) in (0, errno.ESTALE)
    finally:
        os.close(fd)
    assert sorted(os.listdir(w)) == ["base.txt"]
    assert view.pending_count() == 0
    base_fd = os.open(f"{w}/base.txt", os.O_RDONLY)  # a base file read while it is unlinked and committed
    try:
        os.unlink(f"{w}/base.txt")
        assert os.fstat(base_fd).st_size == 4
        assert tree(client, view.repo_name, view.commit()) == {}
        assert os.pread(base_fd, 10, 0) == b"base"
    finally:
        os.close(base_fd)
    assert os.listdir(w) == [] and view.pending_count() == 0
    assert list((view.journal.files).iterdir()) == []
    assert [r.getMessage() for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")] == []


# --- item 11: folders stay until unmount; the kernel forgets what a commit changed --------------------

def test_folders_stay_until_unmount(client, rw):
    view, w = rw({"/d/only.txt": b"1", "/e/sub/deep.txt": b"2", "/u/f.txt": b"3"})
    os.unlink(f"{w}/d/only.txt")
    os.unlink(f"{w}/e/sub/deep.txt")
    os.makedirs(f"{w}/new/inner")
    assert os.path.isdir(f"{w}/u")  # the kernel caches this entry
    put_commit(client, view.repo_name, {"/other.txt": b"o"})
    view.commit()
    listed = {f: os.listdir(f"{w}/{f}") for f in ("d", "e", "e/sub", "new", "new/inner")}
    assert listed == {"d": [], "e": ["sub"], "e/sub": [], "new": ["inner"], "new/inner": []}
    assert sorted(os.listdir(w)) == ["d", "e", "new", "other.txt", "u"]
    write(f"{w}/d/again.txt", b"again")
    assert tree(client, view.repo_name, view.commit()) == {"/d/again.txt": b"again", "/other.txt": b"o",
                                                           "/u/f.txt": b"3"}
    assert sorted(os.listdir(w)) == ["d", "e", "new", "other.txt", "u"]


@pytest.mark.parametrize("busy", [False, True])
def test_the_kernel_forgets_a_folder_removed_upstream(client, rw, busy):
    view, w = rw({"/u/f.txt": b"3", "/u/g/h.txt": b"4", "/keep.txt": b"k"})
    assert os.path.isdir(f"{w}/u") and os.listdir(f"{w}/u") == ["f.txt", "g"]  # cached entries
    assert os.path.isfile(f"{w}/u/g/h.txt")
    holder = subprocess.Popen(["sleep", "60"], cwd=w) if busy else None  # a shell sitting in the mount
    try:
        with client.pfs.commit(branch=pfs.Branch.from_uri(f"{view.repo_name}@master")) as c:
            c.delete_file(path="/u")
        write(f"{w}/mine.txt", b"m")
        view.commit()
        for path in ("u", "u/g", "u/g/h.txt", "u/f.txt"):
            assert errno_of(os.stat, f"{w}/{path}") == errno.ENOENT, path
        assert errno_of(os.listdir, f"{w}/u") == errno.ENOENT
        assert errno_of(os.open, f"{w}/u", os.O_RDONLY | os.O_DIRECTORY) == errno.ENOENT
        assert errno_of(os.open, f"{w}/u/g/h.txt", os.O_RDONLY) == errno.ENOENT
        assert sorted(os.listdir(w)) == ["keep.txt", "mine.txt"]
    finally:
        if holder is not None:
            holder.kill()
            holder.wait()


# --- item 12: a listing is never silently empty -----------------------------------------------------

def test_an_unlistable_base_is_eio(client, pclient, mount, cache, tmp_path, unique_name):
    repo = unique_name("gone")
    put_commit(client, repo, {"/a.txt": b"a"})
    view = RwView(tmp_path / "stage", lambda: pclient, "default", repo, "master", "0" * 32, cache)
    mount.add_view("g", view)
    assert errno_of(os.listdir, f"{mount.mount_dir}/g") == errno.EIO
    assert errno_of(os.stat, f"{mount.mount_dir}/g/a.txt") == errno.EIO
    view.close()


def test_create_of_a_name_made_meanwhile_opens_it(client, rw):
    """Two processes may both find a name missing and both create it: the second must not truncate."""
    view, w = rw({"/a.txt": b"base"})
    write(f"{w}/raced.txt", b"first writer")
    handle = view.create("/raced.txt", 0o644, os.O_WRONLY | os.O_CREAT)
    handle.release()
    assert read(f"{w}/raced.txt") == b"first writer"
    with pytest.raises(OSError) as e:
        view.create("/raced.txt", 0o644, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    assert e.value.errno == errno.EEXIST
    view.create("/raced.txt", 0o644, os.O_WRONLY | os.O_CREAT | os.O_TRUNC).release()
    assert read(f"{w}/raced.txt") == b""


def test_reopening_drops_what_a_kill_left_half_made(client, pclient, cache, tmp_path, unique_name):
    """A blob written before its row (a file, or content in the journal), a file libfuse had hidden
    while open, and the file of a small file that was becoming a blob file (its content still in the
    journal) do not outlive a restart."""
    repo = unique_name("half")
    base = put_commit(client, repo, {"/a.txt": b"a"})
    stage = tmp_path / "stage"
    view = RwView(stage, lambda: pclient, "default", repo, "master", base, cache)
    h = view.create("/kept.txt", 0o644, os.O_WRONLY | os.O_CREAT)
    h.write(b"kept", 0)
    h.release()
    view.rename("/kept.txt", "/.fuse_hidden0000000100000002")  # what libfuse does to an unlinked open file
    h = view.create("/real.txt", 0o644, os.O_WRONLY | os.O_CREAT)
    h.write(b"real", 0)
    h.release()
    big = os.urandom(INLINE_MAX + 1)
    h = view.create("/big.bin", 0o644, os.O_WRONLY | os.O_CREAT)
    h.write(big, 0)
    h.release()
    real_blob, big_blob = view.rows["/real.txt"].blob, view.rows["/big.bin"].blob
    view.close()
    (stage / "files" / "0123456789abcdef0123456789abcdef").write_bytes(b"orphan")
    (stage / "files" / real_blob).write_bytes(b"half")  # killed before the journal said it is a file
    with contextlib.closing(sqlite3.connect(stage / "journal.sqlite")) as db:
        db.execute("INSERT INTO inline VALUES (?, ?, 0)", ("f" * 32, b"no row"))
        db.commit()
    again = RwView(stage, lambda: pclient, "default", repo, "master", base, cache)
    assert set(again.rows) == {"/real.txt", "/big.bin"} and again.pending_count() == 2
    assert [f.name for f in (stage / "files").iterdir()] == [big_blob]
    assert set(again.journal.load_inline()) == {real_blob}
    assert tree(client, repo, again.commit()) == {"/a.txt": b"a", "/real.txt": b"real", "/big.bin": big}
    again.close()
