"""Files of a rw mount uploaded before the commit (mount.upload_ahead, pachd's temporary file sets),
through real FUSE and the real embedded server: a commit that uses the sets lands exactly what a
commit without them does, a set whose files changed since is not used, and a commit whose sets
fail lands complete without them. Trees are read back with the SDK."""

from __future__ import annotations

import logging
import os
import time

import pytest
from pachyderm_sdk.api import pfs

from conftest import wait_for
from pachtray.mount.staging import INLINE_MAX

from mounthelpers import cache, head_of, mount, pclient, put_commit, rw_view, tree  # noqa: F401 - fixtures

USED = "uploaded ahead in"


@pytest.fixture
def rw(client, pclient, mount, cache, tmp_path, unique_name):
    """make(files, ahead=True) -> (view, folder): a rw view of a fresh repo whose master holds
    ``files``, uploading ahead at once (or never)."""
    made = []

    def make(files: dict[str, bytes], name: str = "w", ahead: bool = True):
        view, folder = rw_view(client, pclient, mount, cache, tmp_path / f"stage-{name}", unique_name("upa"), files, name)
        view._upload.quiet = 0.0 if ahead else 1e9
        made.append(view)
        return view, folder

    yield make
    for v in made:
        v.close()


def write(path: str, data: bytes, mode: str = "wb") -> None:
    with open(path, mode) as f:
        f.write(data)


def settle(view) -> None:
    """Wait until the view has uploaded what it can."""
    time.sleep(0.1)
    wait_for(view._upload.idle, 20, what="upload ahead idle")


def uploaded(view) -> set[str]:
    return {p for s in view._upload.sets for p in s.entries}


def sets_used(caplog) -> int:
    found = [r for r in caplog.records if USED in r.getMessage()]
    assert found, "no commit was logged"
    return found[-1].args[-1]


BASE = {"/base.txt": b"base", "/keep/k.txt": b"kept", "/old.txt": b"old content"}


def make_changes(w: str) -> None:
    write(f"{w}/small.txt", b"small\n")
    write(f"{w}/empty.txt", b"")
    write(f"{w}/big.bin", bytes(range(256)) * (INLINE_MAX * 3 // 256))
    os.makedirs(f"{w}/deep/er")
    for i in range(30):
        write(f"{w}/deep/er/f{i}.txt", b"x" * i)
    write(f"{w}/old.txt", b"rewritten")
    os.link(f"{w}/base.txt", f"{w}/base-copy.txt")  # a copy of a base file (nothing downloaded)


def test_a_commit_with_sets_equals_one_without(client, rw, caplog):
    caplog.set_level(logging.INFO, "pachtray.mount.staging")
    ahead, wa = rw(BASE, "a")
    plain, wp = rw(BASE, "p", ahead=False)
    for w in (wa, wp):
        make_changes(w)
    settle(ahead)
    assert "/big.bin" in uploaded(ahead) and "/base-copy.txt" in uploaded(ahead) and not plain._upload.sets
    with_sets = tree(client, ahead.repo_name, ahead.commit())
    assert sets_used(caplog) >= 1
    without = tree(client, plain.repo_name, plain.commit())
    assert sets_used(caplog) == 0
    assert with_sets == without
    assert without["/old.txt"] == b"rewritten" and without["/base-copy.txt"] == b"base"
    assert not ahead._upload.sets  # forgotten after the commit


@pytest.mark.parametrize("wait", [True, False], ids=["reuploaded", "sent-by-the-commit"])
def test_a_file_changed_after_its_upload_commits_its_new_content(client, rw, caplog, wait):
    caplog.set_level(logging.INFO, "pachtray.mount.staging")
    view, w = rw({"/base.txt": b"base"})
    files = {"/a.txt": b"a" * 100, "/b.txt": b"b" * 100, "/c.txt": b"c" * 100, "/big": b"B" * (INLINE_MAX + 10),
             "/same.txt": b"unchanged"}
    for p, data in files.items():
        write(w + p, data)
    settle(view)
    assert set(files) <= uploaded(view)
    write(f"{w}/a.txt", b"rewritten")
    os.truncate(f"{w}/b.txt", 10)
    write(f"{w}/c.txt", b"+appended", "ab")
    with open(f"{w}/big", "r+b") as f:
        f.seek(5)
        f.write(b"middle")
    if wait:
        settle(view)
    got = tree(client, view.repo_name, view.commit())
    assert got == {"/base.txt": b"base", "/a.txt": b"rewritten", "/b.txt": b"b" * 10, "/c.txt": b"c" * 100 + b"+appended",
                   "/big": b"BBBBBmiddle" + b"B" * (INLINE_MAX - 1), "/same.txt": b"unchanged"}
    if wait:
        assert sets_used(caplog) >= 1


def test_an_uploaded_file_deleted_or_renamed_is_not_committed(client, rw):
    view, w = rw({"/base.txt": b"base"})
    for name in ("x", "y", "z"):
        write(f"{w}/{name}.txt", name.encode())
    os.mkdir(f"{w}/d")
    write(f"{w}/d/in.txt", b"in d")
    settle(view)
    os.unlink(f"{w}/x.txt")
    os.rename(f"{w}/y.txt", f"{w}/moved.txt")
    os.rename(f"{w}/d", f"{w}/e")
    got = tree(client, view.repo_name, view.commit())
    assert got == {"/base.txt": b"base", "/z.txt": b"z", "/moved.txt": b"y", "/e/in.txt": b"in d"}


def test_an_upstream_path_is_replaced_through_a_set(client, rw, caplog):
    caplog.set_level(logging.INFO, "pachtray.mount.staging")
    view, w = rw({"/base.txt": b"base"})
    write(f"{w}/x.txt", b"from mount\n")
    os.mkdir(f"{w}/made")
    write(f"{w}/made/f.txt", b"mine\n")
    settle(view)
    assert {"/x.txt", "/made/f.txt"} <= uploaded(view)
    put_commit(client, view.repo_name, {"/x.txt": b"from sdk\n", "/made/f.txt": b"theirs\n",
                                        "/made/other.txt": b"other\n"})
    got = tree(client, view.repo_name, view.commit())
    assert sets_used(caplog) >= 1
    assert got == {"/base.txt": b"base", "/x.txt": b"from mount\n", "/made/f.txt": b"mine\n",
                   "/made/other.txt": b"other\n"}


def test_a_deleted_folder_made_again_does_not_use_sets_under_it(client, rw, caplog):
    """The commit deletes /d after adding the sets: a set holding a file under /d is not used."""
    caplog.set_level(logging.INFO, "pachtray.mount.staging")
    view, w = rw({"/d/old.txt": b"old", "/other.txt": b"o"})
    os.unlink(f"{w}/d/old.txt")
    os.rmdir(f"{w}/d")
    os.mkdir(f"{w}/d")
    write(f"{w}/d/new.txt", b"new")
    settle(view)
    assert "/d/new.txt" in uploaded(view)
    got = tree(client, view.repo_name, view.commit())
    assert sets_used(caplog) == 0
    assert got == {"/d/new.txt": b"new", "/other.txt": b"o"}


@pytest.mark.parametrize("how", ["unknown", "expired"])
def test_a_commit_whose_sets_fail_lands_complete_without_them(client, pclient, rw, caplog, how):
    caplog.set_level(logging.INFO, "pachtray.mount.staging")
    view, w = rw({"/base.txt": b"base", "/x.txt": b"upstream x"})
    before = head_of(client, view.repo_name)
    files = {f"/f{i}.txt": f"file {i}".encode() for i in range(20)} | {"/x.txt": b"mine"}
    for p, data in files.items():
        write(w + p, data)
    settle(view)
    assert set(files) <= uploaded(view)
    for s in view._upload.sets:
        if how == "unknown":
            s.id = "0" * 32
        else:
            pclient.pfs.renew_file_set(file_set_id=s.id, ttl_seconds=1)
    if how == "expired":
        time.sleep(1.3)
    head = view.commit()
    assert any("committing again without them" in r.getMessage() for r in caplog.records)
    assert tree(client, view.repo_name, head) == {"/base.txt": b"base", **files}
    info = client.pfs.inspect_commit(commit=pfs.Commit.from_uri(f"{view.repo_name}@{head}"))
    assert info.parent_commit.id == before  # one commit on the branch: the failed one was dropped
    assert view.pending_count() == 0


def test_a_file_still_open_is_not_uploaded(client, rw):
    view, w = rw({})
    write(f"{w}/closed.txt", b"closed")
    f = open(f"{w}/open.txt", "wb")
    try:
        f.write(b"written, not closed")
        f.flush()
        settle(view)
        time.sleep(0.3)
        assert "/closed.txt" in uploaded(view) and "/open.txt" not in uploaded(view)
    finally:
        f.close()
    settle(view)
    assert "/open.txt" in uploaded(view)
    assert tree(client, view.repo_name, view.commit()) == {"/closed.txt": b"closed", "/open.txt": b"written, not closed"}


def test_a_read_does_not_make_an_upload_stale(client, rw, caplog):
    caplog.set_level(logging.INFO, "pachtray.mount.staging")
    view, w = rw({})
    write(f"{w}/r.txt", b"read me")
    settle(view)
    sets = list(view._upload.sets)
    assert open(f"{w}/r.txt", "rb").read() == b"read me"
    settle(view)
    assert view._upload.sets == sets
    assert tree(client, view.repo_name, view.commit()) == {"/r.txt": b"read me"}
    assert sets_used(caplog) == 1


def test_nothing_is_uploaded_while_files_are_being_written(client, rw):
    """Uploads wait for a quiet moment: they would compete with the writes for the daemon's CPU."""
    view, w = rw({})
    view._upload.quiet = 1.0
    write(f"{w}/first.txt", b"first")
    end = time.monotonic() + 1.5
    i = 0
    while time.monotonic() < end:
        write(f"{w}/busy{i}.txt", b"busy")
        i += 1
        time.sleep(0.05)
    assert not view._upload.sets
    wait_for(lambda: "/first.txt" in uploaded(view) and f"/busy{i - 1}.txt" in uploaded(view), 20,
             what="upload in the quiet moment after the writes")


def test_pending_sets_are_renewed(client, pclient, rw, caplog, monkeypatch):
    from pachtray.mount import upload_ahead

    monkeypatch.setattr(upload_ahead, "TTL", 2)
    caplog.set_level(logging.INFO, "pachtray.mount.staging")
    view, w = rw({})
    write(f"{w}/r.txt", b"renewed")
    settle(view)
    for s in view._upload.sets:  # would expire in a second without the view's renewals
        pclient.pfs.renew_file_set(file_set_id=s.id, ttl_seconds=1)
    time.sleep(3)
    assert tree(client, view.repo_name, view.commit()) == {"/r.txt": b"renewed"}
    assert sets_used(caplog) == 1
    assert not any("committing again without them" in r.getMessage() for r in caplog.records)


def test_discard_forgets_the_sets(client, rw):
    view, w = rw({"/base.txt": b"base"})
    write(f"{w}/a.txt", b"a")
    settle(view)
    assert view._upload.sets
    view.discard()
    assert not view._upload.sets
    write(f"{w}/b.txt", b"b")
    assert tree(client, view.repo_name, view.commit()) == {"/base.txt": b"base", "/b.txt": b"b"}


def test_a_set_that_cannot_be_renewed_is_uploaded_again(client, rw, caplog, monkeypatch):
    from pachtray.mount import upload_ahead

    monkeypatch.setattr(upload_ahead, "TTL", 2)
    caplog.set_level(logging.INFO, "pachtray.mount.staging")
    view, w = rw({})
    write(f"{w}/lost.txt", b"uploaded twice")
    settle(view)
    lost = view._upload.sets[0]
    lost.id = "0" * 32  # gone on the server
    wait_for(lambda: view._upload.sets and view._upload.sets[0] is not lost, 20, what="a new set")
    assert tree(client, view.repo_name, view.commit()) == {"/lost.txt": b"uploaded twice"}
    assert sets_used(caplog) == 1
    assert not any("committing again without them" in r.getMessage() for r in caplog.records)
