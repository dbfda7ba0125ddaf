"""Mounting through the REST API, over TCP and the socket, with the files read through real FUSE."""

from __future__ import annotations

import os

from apihelpers import commit_files as _commit, new_repo as _repo, shared_daemon, unix_request  # noqa: F401 - fixture
from conftest import wait_for
from pachyderm_sdk.api import pfs


def _files(client, repo: pfs.Repo, branch: str = "master") -> dict[str, bytes]:
    out = {}
    for fi in client.pfs.walk_file(file=pfs.File(commit=pfs.Commit(branch=pfs.Branch(repo=repo, name=branch)), path="/")):
        if fi.file_type == pfs.FileType.FILE:
            out[fi.file.path] = b"".join(m.value for m in client.pfs.get_file(file=fi.file))
    return out


def _state(listing: dict, name: str) -> dict:
    return next(m for m in listing["mounted"] if m["name"] == name)


def _pending(d, name: str) -> int:
    return _state(d.get("/pachtray/v1/mounts").json(), name)["pending_changes"]


def test_ro_mounts_of_branch_commit_and_paths_over_the_socket(shared_daemon, client, unique_name):
    d = shared_daemon
    name = unique_name("ro")
    repo = _repo(client, name)
    first = _commit(client, repo, {"/a.txt": b"alpha", "/dir/b.txt": b"beta", "/other/c.txt": b"gamma"})
    second = _commit(client, repo, {"/a.txt": b"ALPHA"})
    body = {"mounts": [
        {"name": f"{name}-head", "repo": name},
        {"name": f"{name}-old", "repo": name, "commit": first},
        {"name": f"{name}-sub", "repo": name, "branch": "master", "paths": ["/dir"]},
    ]}
    reply = unix_request(d.sock_path, "PUT", "/_mount", body=body)
    assert reply.status == 200, reply.text
    try:
        head = _state(reply.json(), f"{name}-head")
        assert head["state"] == "mounted" and head["mode"] == "ro" and head["branch"] == "master"
        assert head["commit"] == second and head["latest_commit"] == second
        assert head["status"] == f"up to date on latest commit {second[:8]}"
        assert head["how_many_commits_behind"] == 0
        assert head["mountpoint"] == ""  # the reference declares it and never sets it
        extras = {m["name"]: m for m in d.get("/pachtray/v1/mounts").json()["mounted"]}
        assert extras[f"{name}-head"]["mountpoint"] == str(d.mount_dir / f"{name}-head")
        assert (d.mount_dir / f"{name}-head" / "a.txt").read_bytes() == b"ALPHA"
        assert (d.mount_dir / f"{name}-old" / "a.txt").read_bytes() == b"alpha"
        assert sorted(os.listdir(d.mount_dir / f"{name}-sub")) == ["dir"]
        assert (d.mount_dir / f"{name}-sub" / "dir" / "b.txt").read_bytes() == b"beta"

        _commit(client, repo, {"/new.txt": b"n"})
        listing = d.get("/mounts").json()
        assert _state(listing, f"{name}-head")["how_many_commits_behind"] == 1
        # Same name, same source: a no-op; same name, another source: 500.
        assert d.put("/_mount", json={"mounts": [{"name": f"{name}-head", "repo": name}]}).status_code == 200
        clash = d.put("/_mount", json={"mounts": [{"name": f"{name}-head", "repo": name, "mode": "rw"}]})
        assert clash.status_code == 500 and f"{name}-head" in clash.text
        # A read-only mount has nothing to commit: the reference answers 200 and does nothing;
        # Pachtray's own route says why.
        before = client.pfs.inspect_branch(branch=pfs.Branch.from_uri(f"{name}@master")).head.id
        assert d.put("/_commit", json={"mount": f"{name}-head"}).status_code == 200
        assert client.pfs.inspect_branch(branch=pfs.Branch.from_uri(f"{name}@master")).head.id == before
        own = d.put("/pachtray/v1/_commit", json={"mount": f"{name}-head"})
        assert own.status_code == 400 and "mounted read-only" in own.text
    finally:
        reply = d.put("/_unmount", json={"mounts": [f"{name}-head", f"{name}-old", f"{name}-sub"]})
    assert reply.status_code == 200, reply.text
    assert not [m for m in reply.json()["mounted"] if m["name"].startswith(name)]
    assert not (d.mount_dir / f"{name}-head").exists()


def test_mount_errors_use_the_reference_status_codes(shared_daemon, client, unique_name):
    d = shared_daemon
    name = unique_name("err")
    _commit(client, _repo(client, name), {"/a": b"a"})
    missing_repo = d.put("/_mount", json={"mounts": [{"name": "x", "repo": unique_name("nope")}]})
    assert missing_repo.status_code == 400 and "not found" in missing_repo.text
    missing_branch = d.put("/_mount", json={"mounts": [{"name": "x", "repo": name, "branch": "nobranch"}]})
    assert missing_branch.status_code == 400 and "nobranch" in missing_branch.text
    assert d.put("/_unmount", json={"mounts": ["never-mounted"]}).status_code == 500
    assert d.put("/_mount", json={"mounts": [{"name": f"{name}-m", "repo": name}]}).status_code == 200
    refused = d.put("/_unmount", json={"mounts": [f"{name}-m", "never-mounted"]})
    assert refused.status_code == 500 and "never-mounted" in refused.text
    assert any(m["name"] == f"{name}-m" for m in d.get("/mounts").json()["mounted"])  # a refusal changes nothing
    assert d.put("/_unmount", json={"mounts": [f"{name}-m", f"{name}-m"]}).status_code == 200
    assert d.put("/_commit", json={"mount": "never-mounted"}).status_code == 500


def test_rw_mount_commit_unmount_and_discard(shared_daemon, client, unique_name):
    d = shared_daemon
    name = unique_name("rw")
    repo = _repo(client, name)
    _commit(client, repo, {"/keep.txt": b"k", "/gone.txt": b"g"})
    reply = d.put("/_mount", json={"mounts": [{"name": name, "repo": name, "branch": "master", "mode": "rw"}]})
    assert reply.status_code == 200, reply.text
    root = d.mount_dir / name
    (root / "new.txt").write_bytes(b"fresh")
    (root / "gone.txt").unlink()
    wait_for(lambda: _pending(d, name) == 2, 30, what="2 pending changes")

    reply = d.put("/_commit", json={"mount": name})
    assert reply.status_code == 200, reply.text
    assert _pending(d, name) == 0
    assert _files(client, repo) == {"/keep.txt": b"k", "/new.txt": b"fresh"}

    (root / "scratch.txt").write_bytes(b"oops")
    reply = d.put("/pachtray/v1/_discard", json={"mount": name})
    assert reply.status_code == 200, reply.text
    assert not (root / "scratch.txt").exists()

    (root / "last.txt").write_bytes(b"L")
    reply = d.put("/_unmount", json={"mounts": [name]})  # commits pending changes first
    assert reply.status_code == 200, reply.text
    assert _files(client, repo) == {"/keep.txt": b"k", "/new.txt": b"fresh", "/last.txt": b"L"}


def test_rw_mount_of_a_new_branch_creates_it_on_commit(shared_daemon, client, unique_name):
    d = shared_daemon
    name = unique_name("newbr")
    repo = _repo(client, name)
    reply = d.put("/_mount", json={"mounts": [{"name": name, "repo": name, "branch": "feature", "mode": "rw"}]})
    assert reply.status_code == 200, reply.text
    (d.mount_dir / name / "f.txt").write_bytes(b"F")
    assert d.put("/_unmount", json={"mounts": [name]}).status_code == 200
    assert _files(client, repo, "feature") == {"/f.txt": b"F"}


def test_datum_mode_over_the_api(shared_daemon, client, unique_name):
    d = shared_daemon
    name = unique_name("dat")
    repo = _repo(client, name)
    _commit(client, repo, {"/1.txt": b"one", "/2.txt": b"two"})
    reply = d.put("/datums/_mount", json={"input": {"pfs": {"repo": name, "glob": "/*"}}})
    assert reply.status_code == 200, reply.text
    try:
        assert reply.json() == {"id": "", "idx": 0, "num_datums": 2, "all_datums_received": True}
        state = d.get("/datums").json()
        assert state["num_datums"] == 2 and state["idx"] == 0
        assert state["input"]["pfs"]["name"] == f"default_{name}" and state["input"]["pfs"]["branch"] == "master"
        input_dir = d.mount_dir / f"default_{name}"
        seen = set(os.listdir(input_dir))
        assert (d.mount_dir / "out").is_dir()
        assert d.put("/datums/_prev").text == "already at first datum\n"
        assert d.put("/datums/_next").json()["idx"] == 1
        seen |= set(os.listdir(input_dir))
        assert seen == {"1.txt", "2.txt"}
        assert d.put("/datums/_next").text == "already at last datum\n"
        blocked = d.put("/_mount", json={"mounts": [{"name": "x", "repo": name}]})
        assert blocked.status_code == 400 and "datum mode" in blocked.text
    finally:
        assert d.put("/_unmount_all").status_code == 200
    assert d.put("/datums/_next").text == "no datums mounted\n"
    empty = d.put("/datums/_mount", json={"input": {"pfs": {"repo": name, "glob": "/nothing-*"}}})
    assert (empty.status_code, empty.text) == (500, "error listing spec's datums: no datums to mount\n")


def test_a_bad_datum_spec_leaves_nothing_mounted_as_the_reference(shared_daemon, client, unique_name):
    """The reference unmounts everything and leaves datum mode before it reads the spec;
    jupyterlab-pachyderm relies on it (after an error it hides the datums: they must be gone)."""
    d = shared_daemon
    name = unique_name("bad")
    repo = _repo(client, name)
    _commit(client, repo, {"/1.txt": b"one", "/2.txt": b"two"})
    assert d.put("/_mount", json={"mounts": [{"name": f"plain_{name}", "repo": name}]}).status_code == 200
    try:
        assert d.put("/datums/_mount", json={"input": {"pfs": {"repo": name, "glob": "/*"}}}).status_code == 200
        assert d.put("/datums/_next").json()["idx"] == 1
        for bad in ({"input": {"pfs": {"repo": unique_name("nosuch"), "glob": "/*"}}}, {}):
            assert d.put("/datums/_mount", json={"input": {"pfs": {"repo": name, "glob": "/*"}}}).status_code == 200
            reply = d.put("/datums/_mount", json=bad)
            assert reply.status_code == 400, reply.text
            assert d.get("/mounts").json()["mounted"] == [] and not (d.mount_dir / "out").exists()
            assert d.get("/datums").json() == {"num_datums": 0, "input": None, "idx": 0, "all_datums_received": False}
    finally:
        d.put("/_unmount_all")
