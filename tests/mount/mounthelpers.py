"""Fixtures shared by the FUSE-level tests of tests/mount: a chunk cache, a FuseMount at a temp
folder (always unmounted), and a Pachtray client of the session's embedded server."""

from __future__ import annotations

import pytest
from pachyderm_sdk.api import pfs

from conftest import force_unmount
from pachtray.mount.cache import ChunkCache
from pachtray.mount.fs import FuseMount
from pachtray.pfs.client import connect

MiB = 1 << 20


@pytest.fixture
def cache(tmp_path):
    return ChunkCache(tmp_path / "cache", 256 * MiB)


@pytest.fixture
def mount(tmp_path):
    m = FuseMount(tmp_path / "pfs")
    m.start()
    try:
        yield m
    finally:
        m.stop()
        force_unmount(tmp_path / "pfs")


@pytest.fixture
def pclient(pachd):
    c = connect(pachd.address, rpc_timeout=10)
    yield c
    c.close()


def put_commit(client, repo: str, files: dict[str, bytes], branch: str = "master") -> str:
    """Create `repo` if needed, write `files` in one commit on `branch`, return the commit id."""
    if repo not in [r.repo.name for r in client.pfs.list_repo()]:
        client.pfs.create_repo(repo=pfs.Repo(name=repo))
    with client.pfs.commit(branch=pfs.Branch.from_uri(f"{repo}@{branch}")) as c:
        for path, data in files.items():
            c.put_file_from_bytes(path=path, data=data)
    return client.pfs.inspect_branch(branch=pfs.Branch.from_uri(f"{repo}@{branch}")).head.id


def head_of(client, repo: str, branch: str = "master") -> str:
    return client.pfs.inspect_branch(branch=pfs.Branch.from_uri(f"{repo}@{branch}")).head.id


def tree(client, repo: str, commit_id: str) -> dict[str, bytes]:
    """Every file of a commit with its content (read with the SDK, not through our code)."""
    out = {}
    for info in client.pfs.walk_file(file=pfs.File.from_uri(f"{repo}@{commit_id}:/")):
        if info.file_type == pfs.FileType.FILE:
            out[info.file.path] = b"".join(
                m.value for m in client.pfs.get_file(file=pfs.File.from_uri(f"{repo}@{commit_id}:{info.file.path}")))
    return out
