"""A rw view's changes as a commit review sees them (RwView.changes) and discarding single changes
(RwView.discard_paths), through a real FUSE mount and the real embedded server: each discard
restores the base exactly at that path and keeps every other change."""

from __future__ import annotations

import os
import shutil

import pytest
from pachyderm_sdk.api import pfs

from pachtray.mount.staging import Change, CommitFailed

from conftest import folder_files
from mounthelpers import cache, mount, pclient, rw_view, tree  # noqa: F401 - fixtures

BASE = {"/keep.txt": b"keep", "/mod.txt": b"old", "/del.txt": b"del!", "/ren.txt": b"ren",
        "/d/a.txt": b"a", "/d/sub/b.txt": b"bb", "/e/x.txt": b"x", "/e/y.txt": b"yy"}


@pytest.fixture
def view(client, pclient, mount, cache, tmp_path, unique_name):
    v, v.folder = rw_view(client, pclient, mount, cache, tmp_path / "stage", unique_name("rev"), BASE, "w")
    yield v
    v.close()
    client.pfs.delete_repo(repo=pfs.Repo(name=v.repo_name), force=True)  # the session's server lists fewer repos


def write(path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)




def edit_everything(w) -> None:
    write(f"{w}/new.txt", b"brand new")
    write(f"{w}/mod.txt", b"changed!")
    os.unlink(f"{w}/del.txt")
    os.rename(f"{w}/ren.txt", f"{w}/renamed.txt")
    os.rename(f"{w}/d", f"{w}/d2")  # a folder renamed: its files deleted and added
    shutil.rmtree(f"{w}/e")  # a folder deleted


def test_changes_list_adds_modifies_deletes_and_renames_sorted(view):
    edit_everything(view.folder)
    assert view.changes() == [
        Change("/d/a.txt", "deleted", 1), Change("/d/sub/b.txt", "deleted", 2),
        Change("/d2/a.txt", "added", 1), Change("/d2/sub/b.txt", "added", 2),
        Change("/del.txt", "deleted", 4), Change("/e/x.txt", "deleted", 1), Change("/e/y.txt", "deleted", 2),
        Change("/mod.txt", "modified", 8), Change("/new.txt", "added", 9),
        Change("/ren.txt", "deleted", 3), Change("/renamed.txt", "added", 3)]
    assert len(view.changes()) >= view.pending_count()


def test_an_empty_new_folder_is_no_change_and_a_file_in_it_is(view):
    os.mkdir(f"{view.folder}/empty")
    assert view.changes() == []
    write(f"{view.folder}/empty/f.txt", b"f")
    assert view.changes() == [Change("/empty/f.txt", "added", 1)]


@pytest.mark.parametrize("discarded", [
    ["/new.txt"], ["/mod.txt"], ["/del.txt"], ["/ren.txt"], ["/renamed.txt"], ["/ren.txt", "/renamed.txt"],
    ["/d/sub/b.txt"], ["/d2/a.txt"], ["/e/y.txt"], ["/e"], ["/d", "/d2"]])
def test_discarding_a_change_restores_the_base_there_and_keeps_the_rest(client, view, discarded):
    edit_everything(view.folder)
    before = {c.path: c for c in view.changes()}
    shown = folder_files(view.folder)
    view.discard_paths(discarded)
    gone = {p for p in before if any(p == d or p.startswith(d + "/") for d in discarded)}
    assert {c.path: c for c in view.changes()} == {p: c for p, c in before.items() if p not in gone}
    expected = {p: data for p, data in shown.items() if p not in gone}
    expected.update({p: BASE[p] for p in gone if p in BASE})
    assert folder_files(view.folder) == expected  # through FUSE: exactly the base at the discarded paths
    assert tree(client, view.repo_name, view.commit("after a discard")) == expected


def test_discarding_everything_one_by_one_leaves_nothing_to_commit(view):
    edit_everything(view.folder)
    view.discard_paths([c.path for c in view.changes()])
    assert view.changes() == [] and view.pending_count() == 0
    assert folder_files(view.folder) == BASE
    assert view.commit() is None


def test_a_path_under_a_file_that_replaced_a_folder_is_refused(view):
    shutil.rmtree(f"{view.folder}/e")
    write(f"{view.folder}/e", b"now a file")
    with pytest.raises(OSError, match="discard /e first"):
        view.discard_paths(["/e/x.txt"])
    view.discard_paths(["/e"])
    assert folder_files(view.folder) == BASE


def test_a_commit_over_someone_elses_open_commit_fails_and_keeps_everything(client, view):
    """pfs.commits starts a commit: pachd refuses while another client's commit on the branch is
    open, so nothing half-lands in theirs; once it is finished, the same changes commit."""
    write(f"{view.folder}/mine.txt", b"mine")
    theirs = client.pfs.start_commit(branch=pfs.Branch.from_uri(f"{view.repo_name}@master"))
    with pytest.raises(CommitFailed, match="has not been finished"):
        view.commit("blocked")
    assert view.changes() == [Change("/mine.txt", "added", 4)]
    client.pfs.finish_commit(commit=theirs)
    landed = view.commit("after theirs")
    assert tree(client, view.repo_name, landed) == {**BASE, "/mine.txt": b"mine"}
    info = client.pfs.inspect_commit(commit=pfs.Commit.from_uri(f"{view.repo_name}@{landed}"))
    assert info.description == "after theirs" and info.parent_commit.id == theirs.id
