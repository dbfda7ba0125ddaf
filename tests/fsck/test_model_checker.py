"""The seeded model-based checker (fsmodel.py) on a rw mount of a real daemon with the real embedded
server, each commit through PUT /_commit and checked with the SDK.

CI runs the fixed seeds below (about a minute in all). More: PACHTRAY_FSCK_SEEDS=N runs seeds
1..N (or "a-b" for a range), PACHTRAY_FSCK_OPS the operations per seed. A failure names its seed
and the operations that led to it; rerun one with PACHTRAY_FSCK_SEEDS=s-s.
"""

from __future__ import annotations

import os

import pytest
from pachyderm_sdk.api import pfs

from conftest import wait_for
from fsmodel import Checker, seed_local

CI_SEEDS = list(range(1, 17))
START = {"/top.txt": b"top\n", "/dir/a": b"a" * 10, "/dir/sub/b": b"b" * 5000, "/e-1/c.txt": b""}


def seeds() -> list[int]:
    spec = os.environ.get("PACHTRAY_FSCK_SEEDS", "")
    if not spec:
        return CI_SEEDS
    if "-" in spec:
        lo, hi = spec.split("-", 1)
        return list(range(int(lo), int(hi) + 1))
    return list(range(1, int(spec) + 1))


def files_at_head(client, repo: str) -> dict[str, bytes]:
    head = pfs.Commit(repo=pfs.Repo(name=repo), branch=pfs.Branch(repo=pfs.Repo(name=repo), name="master"))
    out = {}
    for info in client.pfs.walk_file(file=pfs.File(commit=head, path="/")):
        if info.file_type == pfs.FileType.FILE:
            out[info.file.path] = client.pfs.pfs_file(pfs.File(commit=head, path=info.file.path)).read()
    return out


@pytest.fixture(scope="module")
def shared(tmp_path_factory, pachd):
    """One daemon for every seed (each seed mounts its own repo)."""
    from conftest import Daemon

    tmp = tmp_path_factory.mktemp("fsck")
    d = Daemon(tmp, pachd.address).start()
    yield d
    d.stop()


@pytest.mark.parametrize("seed", seeds())
def test_rw_mount_behaves_as_the_model(shared, client, tmp_path, unique_name, seed):
    daemon = shared
    repo = unique_name(f"fsck{seed}")
    client.pfs.create_repo(repo=pfs.Repo(name=repo))
    with client.pfs.commit(branch=pfs.Branch(repo=pfs.Repo(name=repo), name="master")) as c:
        for path, data in START.items():
            c.put_file_from_bytes(path=path, data=data)
    name = f"m{seed}"
    r = daemon.put("/_mount", {"mounts": [{"name": name, "repo": repo, "branch": "master", "mode": "rw"}]})
    assert r.status_code == 200, r.text
    mount_root = daemon.mount_dir / name
    wait_for(lambda: mount_root.is_dir(), 30, what="the rw mount")
    local_root = tmp_path / "model" / "root"  # its parent is empty: links that climb out lead nowhere
    seed_local(local_root, START)

    def commit() -> tuple[bool, str]:
        reply = daemon.put("/_commit", {"mount": name})
        return reply.status_code == 200, reply.text

    checker = Checker(seed, mount_root, local_root, commit, lambda: files_at_head(client, repo))
    try:
        checker.run(int(os.environ.get("PACHTRAY_FSCK_OPS", "600")))
    finally:
        daemon.put("/_unmount", {"mounts": [name]})
    assert checker.commits >= 2
