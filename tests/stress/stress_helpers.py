"""Helpers for the stress, fuzz and edge-case tests: mounting through the REST API and /proc counts."""

from __future__ import annotations

import os
import subprocess

import pytest
from pachyderm_sdk.api import pfs

from conftest import wait_for


@pytest.fixture(autouse=True)
def no_leftover_mounts(tmp_path):
    """Set up first, torn down last: after the daemons stop, unmount any FUSE mount they left under
    tmp_path, dead ones included (os.path.ismount is False for those, /proc/self/mounts is not)."""
    yield
    with open("/proc/self/mounts") as f:
        left = [line.split()[1] for line in f if line.split()[1].startswith(str(tmp_path) + "/")]
    for path in left:
        subprocess.run(["fusermount3", "-uz", path], capture_output=True)
    assert not left, f"FUSE mounts left after the test (now unmounted): {left}"


def mounts(daemon) -> dict[str, dict]:
    r = daemon.get("/mounts")
    assert r.status_code == 200, r.text
    return {m["name"]: m for m in r.json()["mounted"]}


def mount(daemon, name: str, repo: str, mode: str = "ro", branch: str = "master", **extra) -> str:
    """Mount through the API and wait until usable; returns the mount's folder."""
    r = daemon.put("/_mount", {"mounts": [{"name": name, "repo": repo, "branch": branch, "mode": mode, **extra}]})
    assert r.status_code == 200, f"mount {name}: {r.status_code} {r.text}"
    wait_for(lambda: mounts(daemon).get(name, {}).get("state") == "mounted", 60, what=f"mount {name}")
    path = os.path.join(daemon.mount_dir, name)
    wait_for(lambda: os.path.isdir(path), 30, what=f"folder of mount {name}")
    return path


def unmount(daemon, name: str) -> None:
    r = daemon.put("/_unmount", {"mounts": [name]})
    assert r.status_code == 200, f"unmount {name}: {r.status_code} {r.text}"
    wait_for(lambda: name not in mounts(daemon), 60, what=f"unmount {name}")


def commit(daemon, name: str, timeout: float = 600) -> None:
    r = daemon.put("/_commit", {"mount": name}, timeout=timeout)
    assert r.status_code == 200, f"commit {name}: {r.status_code} {r.text}"
    wait_for(lambda: mounts(daemon)[name]["state"] == "mounted", 120, what=f"commit of {name} to finish")


def create_repo(client, repo: str, files: dict[str, bytes] | None = None) -> str:
    """A repo whose master holds ``files`` (one commit, one ModifyFile stream)."""
    client.pfs.create_repo(repo=pfs.Repo.from_uri(repo))
    if files:
        put_files(client, repo, files)
    return repo


def put_files(client, repo: str, files: dict[str, bytes], branch: str = "master") -> pfs.Commit:
    commit = client.pfs.start_commit(branch=pfs.Branch.from_uri(f"{repo}@{branch}"))

    def ops():
        yield pfs.ModifyFileRequest(set_commit=commit)
        for path, data in files.items():
            yield pfs.ModifyFileRequest(add_file=pfs.AddFile(path=path, raw=data))

    client.pfs.modify_file(ops())
    client.pfs.finish_commit(commit=commit)
    client.pfs.wait_commit(commit)
    return commit


def read_pfs(client, repo: str, path: str, branch: str = "master") -> bytes:
    return b"".join(m.value for m in client.pfs.get_file(file=pfs.File.from_uri(f"{repo}@{branch}:{path}")))


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))
