"""fio with --verify=crc32c on a rw mount of a real daemon (sequential, random and mixed writers, two
at a time), then /_commit: each file's sha256 through the SDK equals what the mount showed, and
fio verifies the committed files again through the rw mount and through a ro mount of the commit.
fio comes from scripts/setup.sh (apt-get install fio)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess

import pytest
from pachyderm_sdk.api import pfs

from conftest import wait_for

JOBS = {  # name -> fio options; each job writes its own files (numjobs of them)
    "seq": ["--rw=write", "--bs=64k", "--size=6m", "--numjobs=1"],
    "rand": ["--rw=randwrite", "--bs=4k", "--size=3m", "--numjobs=2"],
    "mixed": ["--rw=randrw", "--rwmixread=40", "--bs=16k", "--size=4m", "--numjobs=2"],
}
COMMON = ["--ioengine=psync", "--direct=0", "--fallocate=none", "--verify=crc32c", "--verify_fatal=1",
          "--do_verify=1", "--randrepeat=1", "--verify_state_save=0", "--output-format=json"]


def fio(directory, name: str, extra: list[str]) -> dict:
    cmd = ["fio", f"--name={name}", f"--directory={directory}", *JOBS[name], *COMMON, *extra]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    report = json.loads(r.stdout[r.stdout.index("{"):])
    errors = [(j["jobname"], j["error"]) for j in report["jobs"] if j["error"]]
    assert not errors, errors
    return report


def sha256s(folder) -> dict[str, str]:
    out = {}
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), "rb") as f:
            out["/" + name] = hashlib.file_digest(f, "sha256").hexdigest()
    return out


@pytest.fixture
def fio_daemon(daemon_factory, pachd):
    if shutil.which("fio") is None:
        pytest.skip("fio is not installed: run scripts/setup.sh as root (apt-get install fio)")
    return daemon_factory(pachd.address)


def test_fio_verifies_on_a_rw_mount_and_the_commit_has_the_same_bytes(fio_daemon, client, unique_name):
    d = fio_daemon
    repo = unique_name("fio")
    client.pfs.create_repo(repo=pfs.Repo(name=repo))
    r = d.put("/_mount", {"mounts": [{"name": "w", "repo": repo, "branch": "master", "mode": "rw"}]})
    assert r.status_code == 200, r.text
    w = d.mount_dir / "w"
    wait_for(w.is_dir, 30, what="the rw mount")
    for name in JOBS:
        report = fio(w, name, [])
        assert sum(j["write"]["io_bytes"] for j in report["jobs"]) > 0
    staged = sha256s(w)
    assert len(staged) == 5, sorted(staged)

    r = d.put("/_commit", {"mount": "w"})
    assert r.status_code == 200, r.text
    head = pfs.Commit(repo=pfs.Repo(name=repo), branch=pfs.Branch(repo=pfs.Repo(name=repo), name="master"))
    committed = {}
    for info in client.pfs.list_file(file=pfs.File(commit=head, path="/")):
        digest = hashlib.sha256()
        for chunk in client.pfs.get_file(file=pfs.File(commit=head, path=info.file.path)):
            digest.update(chunk.value)
        committed[info.file.path] = digest.hexdigest()
    assert committed == staged
    assert sha256s(w) == staged  # the rw mount now reads the committed files

    commit_id = client.pfs.inspect_branch(branch=head.branch).head.id
    r = d.put("/_mount", {"mounts": [{"name": "ro", "repo": repo, "commit": commit_id, "mode": "ro"}]})
    assert r.status_code == 200, r.text
    for folder in (w, d.mount_dir / "ro"):  # fio reads back from PFS and checks every block
        for name in ("seq", "rand"):  # (the mixed job left blocks unwritten, without checksums)
            report = fio(folder, name, ["--rw=read", "--readonly"])
            assert sum(j["read"]["io_bytes"] for j in report["jobs"]) == sum(
                os.path.getsize(folder / f) for f in os.listdir(folder) if f.startswith(name + "."))
    assert d.put("/_commit", {"mount": "w"}).status_code == 200  # reading changed nothing: no new commit
    assert client.pfs.inspect_branch(branch=head.branch).head.id == commit_id
