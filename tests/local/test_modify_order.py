"""The embedded server applies a ModifyFile stream's operations in order, as pachd does: a path may
change between file and folder within one stream, and folders hold exactly what is in them."""

from __future__ import annotations

import grpc
import pytest
from pachyderm_sdk.api import pfs


def _repo(client, name):
    repo = pfs.Repo(name=name)
    client.pfs.create_repo(repo=repo)
    return repo


def _modify(client, repo, *ops):
    """One ModifyFile stream on master: ("add", path, data) | ("delete", path)."""
    def requests():
        yield pfs.ModifyFileRequest(set_commit=pfs.Commit(repo=repo, branch=pfs.Branch(repo=repo, name="master")))
        for op in ops:
            if op[0] == "add":
                yield pfs.ModifyFileRequest(add_file=pfs.AddFile(path=op[1], raw=op[2]))
            else:
                yield pfs.ModifyFileRequest(delete_file=pfs.DeleteFile(path=op[1]))
    client.pfs.modify_file(requests())


def _walk(client, repo):
    """path -> size of every file and folder at the head of master."""
    commit = pfs.Commit(repo=repo, branch=pfs.Branch(repo=repo, name="master"))
    return {i.file.path: i.size_bytes for i in client.pfs.walk_file(file=pfs.File(commit=commit, path="/"))}


def _list(client, repo, path):
    commit = pfs.Commit(repo=repo, branch=pfs.Branch(repo=repo, name="master"))
    return {i.file.path: i.size_bytes for i in client.pfs.list_file(file=pfs.File(commit=commit, path=path))}


def _read(client, repo, path):
    commit = pfs.Commit(repo=repo, branch=pfs.Branch(repo=repo, name="master"))
    return client.pfs.pfs_file(pfs.File(commit=commit, path=path)).read()


def test_a_folder_replaced_by_a_file_in_one_stream(client, unique_name):
    repo = _repo(client, unique_name("dir2file"))
    _modify(client, repo, ("add", "/c/x", b"xx"), ("add", "/c/d/y", b"yyy"), ("add", "/keep", b"k"))
    _modify(client, repo, ("delete", "/c"), ("add", "/c", b"now a file"))
    assert _read(client, repo, "/c") == b"now a file"
    assert _walk(client, repo) == {"/": 11, "/c": 10, "/keep": 1}
    # and back: the file replaced by a folder, again in one stream
    _modify(client, repo, ("delete", "/c"), ("add", "/c/z", b"z"))
    assert _walk(client, repo) == {"/": 2, "/c/": 1, "/c/z": 1, "/keep": 1}
    assert _list(client, repo, "/c") == {"/c/z": 1}


def test_a_file_where_a_folder_stays_is_refused(client, unique_name):
    repo = _repo(client, unique_name("dirfile"))
    _modify(client, repo, ("add", "/c/x", b"xx"))
    with pytest.raises(grpc.RpcError, match="a directory exists"):
        _modify(client, repo, ("add", "/c", b"file"))
    with pytest.raises(grpc.RpcError, match="cannot write file"):  # /c/x is deleted, /c/y stays
        _modify(client, repo, ("add", "/c/y", b"y"), ("delete", "/c/x"), ("add", "/c", b"file"))
    assert _walk(client, repo) == {"/": 2, "/c/": 2, "/c/x": 2}


def test_no_phantom_folder_after_a_file_became_a_folder(client, unique_name):
    repo = _repo(client, unique_name("phantom"))
    _modify(client, repo, ("add", "/a/b", b"x" * 100))
    _modify(client, repo, ("delete", "/a/b"), ("add", "/a/b/b", b"y" * 100))
    assert _walk(client, repo) == {"/": 100, "/a/": 100, "/a/b/": 100, "/a/b/b": 100}
    _modify(client, repo, ("delete", "/a/b"))
    assert _walk(client, repo) == {"/": 0}
    assert _list(client, repo, "/") == {}
