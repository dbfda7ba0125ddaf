"""Fixtures shared by the FUSE-level tests of tests/mount: a chunk cache, a FuseMount at a temp
folder (always unmounted), and a Pachtray client of the session's embedded server."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import textwrap

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


@contextlib.contextmanager
def small_tmpfs(path, size: str):
    """A tmpfs of `size` (mount's `size=` option) at the new folder `path`, unmounted after: a disk
    that fills up. Skips the test where mounting is not allowed."""
    path.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True,
                       text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def put_commit(client, repo: str, files: dict[str, bytes], branch: str = "master") -> str:
    """Create `repo` if needed, write `files` in one commit on `branch`, return the commit id."""
    if repo not in [r.repo.name for r in client.pfs.list_repo()]:
        client.pfs.create_repo(repo=pfs.Repo(name=repo))
    with client.pfs.commit(branch=pfs.Branch.from_uri(f"{repo}@{branch}")) as c:
        for path, data in files.items():
            c.put_file_from_bytes(path=path, data=data)
    return client.pfs.inspect_branch(branch=pfs.Branch.from_uri(f"{repo}@{branch}")).head.id


def rw_view(client, pclient, mount, cache, stage, repo: str, files: dict[str, bytes], name: str):
    """(view, folder): a rw view, mounted as ``name``, of a new repo whose master holds ``files``."""
    from pachtray.mount.staging import RwView

    base = put_commit(client, repo, files) if files else None
    if base is None:
        client.pfs.create_repo(repo=pfs.Repo(name=repo))
    view = RwView(stage, lambda: pclient, "default", repo, "master", base, cache)
    mount.add_view(name, view)
    view.repo_name = repo
    return view, f"{mount.mount_dir}/{name}"


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


RW_MOUNT_CHILD = textwrap.dedent("""
    import os, sys
    from pachtray.mount.cache import ChunkCache
    from pachtray.mount.fs import FuseMount
    from pachtray.mount.staging import RwView
    from pachtray.pfs.client import connect
    mnt, stage, cache_dir, address, repo, base = sys.argv[1:]
    client = connect(address)
    view = RwView(stage, lambda: client, "default", repo, "master", base, ChunkCache(cache_dir))
    m = FuseMount(mnt)
    m.start()
    m.add_view("c", view)
    print("ready", flush=True)
    sys.stdin.readline()
""")


def rw_mount_child(mnt, stage, cache_dir, address: str, repo: str, base: str) -> subprocess.Popen:
    """Another process with a rw view of `repo` mounted at `mnt`/c, staged in `stage`, for a test
    to kill -9 (stop it with conftest.stop_process and force_unmount(mnt) afterwards)."""
    child = subprocess.Popen([sys.executable, "-c", RW_MOUNT_CHILD, str(mnt), str(stage), str(cache_dir), address,
                              repo, base], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    if child.stdout.readline().strip() != "ready":
        child.kill()
        raise RuntimeError("the rw mount child did not start")
    return child
