"""The embedded server stores exactly the file paths pachd 2.8 stores (its ValidateFilename)."""

from __future__ import annotations

import grpc
import pytest
from pachyderm_sdk.api import pfs

from pachtray.pfs.paths import path_problem

REFUSED = [f"/a{c}b" for c in "*?[]{}!()@+^"] + ["/caf\u00e9", "/a\x01b", "/a\x7fb", "/tab\there", "/x/../y",
                                                "/./x", "/\u65e5\u672c"]
ACCEPTED = ["/a b", "/a,b;c=d%e#f~g$h&i'j", "/-_.~`|<>\"\\:", "/.hidden", "/..x", "/x/.y./z"]


@pytest.fixture
def repo(client, unique_name):
    r = pfs.Repo(name=unique_name("names"))
    client.pfs.create_repo(repo=r)
    return r


def test_the_rule():
    assert [p for p in REFUSED if path_problem(p) is None] == []
    assert [p for p in ACCEPTED if path_problem(p) is not None] == []


@pytest.mark.parametrize("path", REFUSED)
def test_refused_paths(client, repo, path):
    with pytest.raises(grpc.RpcError) as e:
        client.pfs.put_file_from_bytes(commit=pfs.Commit(repo=repo, branch=pfs.Branch(repo=repo, name="master")),
                                       path=path, data=b"1")
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert path_problem(path) in e.value.details()


def test_accepted_paths(client, repo):
    master = pfs.Branch(repo=repo, name="master")
    with client.pfs.commit(branch=master) as c:
        for path in ACCEPTED:
            c.put_file_from_bytes(path=path, data=path.encode())
    commit = pfs.Commit(repo=repo, branch=master)
    for path in ACCEPTED:
        assert client.pfs.pfs_file(pfs.File(commit=commit, path=path)).read() == path.encode()
