"""Temporary file sets (CreateFileSet, AddFileSet, RenewFileSet) of the embedded server, through the
SDK over gRPC: adding a set to an open commit does what the same ModifyFile stream does there."""

from __future__ import annotations

import hashlib
import time

import grpc
import pytest
from pachyderm_sdk.api import pfs


def _repo(client, name):
    repo = pfs.Repo(name=name)
    client.pfs.create_repo(repo=repo)
    return repo


def _ops(*ops):
    for op in ops:
        if op[0] == "add":
            yield pfs.ModifyFileRequest(add_file=pfs.AddFile(path=op[1], raw=op[2]))
        elif op[0] == "copy":
            yield pfs.ModifyFileRequest(copy_file=pfs.CopyFile(dst=op[1], src=op[2]))
        else:
            yield pfs.ModifyFileRequest(delete_file=pfs.DeleteFile(path=op[1]))


def _modify(client, commit, *ops):
    client.pfs.modify_file(iter([pfs.ModifyFileRequest(set_commit=commit), *_ops(*ops)]))


def _create(client, *ops) -> str:
    return client.pfs.create_file_set(_ops(*ops)).file_set_id


def _tree(client, commit):
    """path -> content of every file of a commit."""
    return {i.file.path: client.pfs.pfs_file(pfs.File(commit=commit, path=i.file.path)).read()
            for i in client.pfs.walk_file(file=pfs.File(commit=commit, path="/")) if i.file_type == pfs.FileType.FILE}


def _master(repo):
    return pfs.Branch(repo=repo, name="master")


def _seed(client, repo, *ops):
    c = client.pfs.start_commit(branch=_master(repo))
    _modify(client, c, *ops)
    client.pfs.finish_commit(commit=c)
    return c


OPS = (("delete", "/a"), ("add", "/a", b"new a"), ("delete", "/d"), ("add", "/d", b"folder became a file"),
       ("add", "/n/x", b"x1"), ("add", "/n/x", b"x2"), ("add", "/big", b"B" * 100_000), ("delete", "/gone"),
       ("add", "/empty", b""))
SEED = (("add", "/a", b"old a"), ("add", "/d/1", b"one"), ("add", "/d/2", b"two"), ("add", "/gone", b"g"),
        ("add", "/keep", b"kept"), ("add", "/n/x", b"x0"))


def test_add_file_set_equals_the_same_modify_file_stream(client, unique_name):
    by_stream, by_set = _repo(client, unique_name("fsa")), _repo(client, unique_name("fsb"))
    for repo in (by_stream, by_set):
        _seed(client, repo, *SEED)
    c = client.pfs.start_commit(branch=_master(by_stream))
    _modify(client, c, *OPS)
    client.pfs.finish_commit(commit=c)
    fid = _create(client, *OPS)
    c2 = client.pfs.start_commit(branch=_master(by_set))
    client.pfs.add_file_set(commit=c2, file_set_id=fid)
    client.pfs.finish_commit(commit=c2)
    expected = _tree(client, c)
    assert expected["/a"] == b"new a" and expected["/n/x"] == b"x0x1x2" and "/gone" not in expected
    assert _tree(client, c2) == expected


def test_sets_layer_in_order_and_a_later_delete_replaces(client, unique_name):
    repo = _repo(client, unique_name("fsl"))
    _seed(client, repo, ("add", "/p", b"upstream"))
    first = _create(client, ("delete", "/p"), ("add", "/p", b"first"), ("add", "/q", b"q1"))
    second = _create(client, ("delete", "/p"), ("add", "/p", b"second"), ("add", "/q", b"q2"))
    c = client.pfs.start_commit(branch=_master(repo))
    _modify(client, c, ("add", "/q", b"q0"))
    client.pfs.add_file_set(commit=c, file_set_id=first)
    client.pfs.add_file_set(commit=c, file_set_id=second)
    _modify(client, c, ("add", "/r", b"r"))
    client.pfs.finish_commit(commit=c)
    # /p: each delete removed the earlier layers' content (never appended); /q had no delete: appended
    assert _tree(client, c) == {"/p": b"second", "/q": b"q0q1q2", "/r": b"r"}


def test_a_copy_in_a_set_reads_its_source_when_the_set_is_made(client, unique_name):
    repo = _repo(client, unique_name("fsc"))
    base = _seed(client, repo, ("add", "/src", b"source"))
    fid = _create(client, ("delete", "/dst"), ("copy", "/dst", pfs.File(commit=base, path="/src")))
    c = client.pfs.start_commit(branch=_master(repo))
    client.pfs.add_file_set(commit=c, file_set_id=fid)
    client.pfs.finish_commit(commit=c)
    assert _tree(client, c) == {"/src": b"source", "/dst": b"source"}


def test_unknown_and_expired_sets_are_not_found_and_renew_extends(client, unique_name, pachd):
    repo = _repo(client, unique_name("fse"))
    big = b"E" * 100_000 + unique_name().encode()
    blob = pachd.data_dir / "blobs" / hashlib.sha256(big).hexdigest()[:2] / hashlib.sha256(big).hexdigest()
    expiring = _create(client, ("add", "/x", big))
    kept = _create(client, ("add", "/y", b"y"))
    assert blob.exists()
    client.pfs.renew_file_set(file_set_id=expiring, ttl_seconds=1)
    client.pfs.renew_file_set(file_set_id=kept, ttl_seconds=60)
    time.sleep(1.3)
    c = client.pfs.start_commit(branch=_master(repo))
    for fid in (expiring, "0" * 32, "not-an-id"):
        with pytest.raises(grpc.RpcError) as e:
            client.pfs.add_file_set(commit=c, file_set_id=fid)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND and "not found" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        client.pfs.renew_file_set(file_set_id=expiring, ttl_seconds=60)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert not blob.exists()  # an expired set's content no commit holds is deleted
    client.pfs.add_file_set(commit=c, file_set_id=kept)
    client.pfs.finish_commit(commit=c)
    assert _tree(client, c) == {"/y": b"y"}
    with pytest.raises(grpc.RpcError) as e:
        client.pfs.renew_file_set(file_set_id=kept, ttl_seconds=0)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_set_is_not_added_to_a_finished_commit(client, unique_name):
    repo = _repo(client, unique_name("fsf"))
    c = _seed(client, repo, ("add", "/a", b"a"))
    fid = _create(client, ("add", "/b", b"b"))
    with pytest.raises(grpc.RpcError) as e:
        client.pfs.add_file_set(commit=c, file_set_id=fid)
    with pytest.raises(grpc.RpcError) as m:
        _modify(client, c, ("add", "/b", b"b"))
    assert e.value.code() == m.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "has already finished" in e.value.details()
    assert _tree(client, c) == {"/a": b"a"}


def test_a_committed_set_keeps_its_content_through_garbage_collection(client, unique_name):
    """A set's contents are kept while it lives even if no commit holds them (deleting a repo
    collects garbage), and a commit that added it keeps them after it expires."""
    repo = _repo(client, unique_name("fsg"))
    big = b"G" * 70_000 + unique_name().encode()
    fid = _create(client, ("add", "/big", big), ("add", "/small", b"s" + unique_name().encode()))
    other = _repo(client, unique_name("fsgy"))
    client.pfs.delete_repo(repo=other)  # collects garbage
    c = client.pfs.start_commit(branch=_master(repo))
    client.pfs.add_file_set(commit=c, file_set_id=fid)
    client.pfs.finish_commit(commit=c)
    client.pfs.renew_file_set(file_set_id=fid, ttl_seconds=1)
    time.sleep(1.3)
    _create(client, ("add", "/z", b"z"))  # sweeps expired sets
    assert _tree(client, c)["/big"] == big
