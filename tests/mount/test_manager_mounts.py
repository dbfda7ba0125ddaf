"""MountManager against the real embedded server and real FUSE: mount rules, states and status
texts, rw commit/discard, upstream deletion, busy unmount, the change feed and datum mode."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from pachyderm_sdk.api import pfs

from conftest import force_unmount, free_port
from test_datums_compute import put_files
from pachtray.errors import ApiError
from pachtray.mount.manager import MOUNT_STATE_FIELDS, MountManager, MountRequest
from pachtray.pfs.client import connect


@pytest.fixture
def make_manager(tmp_path, pachd):
    """Start managers on tmp mount dirs; every FUSE mount is unmounted at the end, even on failure."""
    started: list[MountManager] = []

    def make(data_dir: Path | None = None, client="pachd") -> MountManager:
        mount_dir = tmp_path / f"pfs{len(started)}"
        mount_dir.mkdir()
        m = MountManager(mount_dir, data_dir or tmp_path / "data")
        started.append(m)
        m.start()
        if client == "pachd":
            client = connect(pachd.address, rpc_timeout=5)
        m.set_client(client)
        return m

    yield make
    for m in started:
        try:
            m.stop()
        finally:
            if os.path.ismount(m.mount_dir):
                force_unmount(m.mount_dir)


@pytest.fixture
def mgr(make_manager):
    return make_manager()


def state(m: MountManager, name: str) -> dict | None:
    """Pachtray's view of one mount (recovered changes included), after a refresh (as the daemon's loop)."""
    m.refresh()
    return next((s for s in m.all_mounts() if s["name"] == name), None)


def repo_msg(name: str, project: str = "default") -> pfs.Repo:
    return pfs.Repo(name=name, type="user", project=pfs.Project(name=project))


def file_at(client, repo: str, branch: str, path: str) -> bytes:
    f = pfs.File(commit=pfs.Commit(branch=pfs.Branch(repo=repo_msg(repo), name=branch)), path=path)
    return client.pfs.pfs_file(f).read()


def api_error(fn, *args) -> ApiError:
    with pytest.raises(ApiError) as e:
        fn(*args)
    return e.value


# --------------------------------------------------------------------------- read-only mounts

def test_ro_branch_mount_resolves_head_and_tracks_commits_behind(mgr, client, unique_name):
    repo = unique_name()
    c1 = put_files(client, repo, {"/a.txt": b"one", "/dir/b.txt": b"two"})
    mgr.mount([MountRequest(name="data", repo=repo)])
    s = state(mgr, "data")
    assert {k: s[k] for k in ("name", "project", "repo", "branch", "commit", "paths", "mode", "state")} == {
        "name": "data", "project": "default", "repo": repo, "branch": "master", "commit": c1, "paths": ["/"],
        "mode": "ro", "state": "mounted"}
    assert s["status"] == f"up to date on latest commit {c1[:8]}"
    assert s["latest_commit"] == c1 and s["how_many_commits_behind"] == 0 and s["pending_changes"] == 0
    assert s["mountpoint"] == str(mgr.mount_dir / "data")
    assert (mgr.mount_dir / "data" / "dir" / "b.txt").read_bytes() == b"two"

    c2 = put_files(client, repo, {"/a.txt": b"changed"})
    s = state(mgr, "data")
    assert s["commit"] == c1 and s["latest_commit"] == c2 and s["how_many_commits_behind"] == 1
    history = [ci.commit.id for ci in client.pfs.list_commit(repo=repo_msg(repo), reverse=True)]  # oldest first
    assert s["status"] == (f"1 commits behind latest; current = {c1[:8]} ({history.index(c1)}'th), "
                           f"latest = {c2[:8]} ({len(history) - 1}'th)")
    assert (mgr.mount_dir / "data" / "a.txt").read_bytes() == b"one"  # still the mounted commit


def test_ro_commit_mount_and_paths_subset(mgr, client, unique_name):
    repo = unique_name()
    c1 = put_files(client, repo, {"/keep/x.txt": b"x", "/other.txt": b"o"})
    put_files(client, repo, {"/keep/x.txt": b"newer"})
    mgr.mount([MountRequest(name="old", repo=repo, commit=c1.upper()),
               MountRequest(name="part", repo=repo, paths=["/keep"])])
    old = state(mgr, "old")
    assert old["commit"] == c1 and old["branch"] == "master" and old["how_many_commits_behind"] == 1
    assert (mgr.mount_dir / "old" / "keep" / "x.txt").read_bytes() == b"x"
    assert state(mgr, "part")["paths"] == ["/keep"]
    assert sorted(os.listdir(mgr.mount_dir / "part")) == ["keep"]


@pytest.mark.parametrize("request_kw, status, text", [
    ({"name": "n", "repo": "REPO", "branch": "nobranch"}, 400, "mount request 'n'"),
    ({"name": "n", "repo": "REPO", "commit": "0" * 32}, 400, "mount request 'n'"),
    ({"name": "n", "repo": "REPO", "commit": "xyz"}, 400, "invalid commit ID 'xyz'"),
    ({"name": "n", "repo": "no-such-repo-x"}, 400, "mount request 'n'"),
    ({"name": "n", "repo": "no-such-repo-x", "mode": "rw"}, 400, "mount request 'n'"),
    ({"name": "n", "repo": "REPO", "project": "no-such-project"}, 400, "mount request 'n'"),
    ({"name": "n", "repo": "REPO", "mode": "wo"}, 400, "mount mode can only be 'ro' or 'rw'"),
    ({"name": "", "repo": "REPO"}, 400, "invalid mount name"),
    ({"name": "a/b", "repo": "REPO"}, 400, "invalid mount name"),
    ({"name": "..", "repo": "REPO"}, 400, "invalid mount name"),
    ({"name": "n", "repo": ""}, 400, "no repo specified"),
])
def test_bad_mount_requests_are_rejected(mgr, client, unique_name, request_kw, status, text):
    repo = unique_name()
    put_files(client, repo, {"/a": b"a"})
    kw = {k: (repo if v == "REPO" else v) for k, v in request_kw.items()}
    e = api_error(mgr.mount, [MountRequest(**kw)])
    assert e.status == status and text in e.message
    assert mgr.mounted() == []


def test_validation_is_all_or_nothing_and_name_reuse_rules(mgr, client, unique_name):
    repo, other = unique_name(), unique_name()
    put_files(client, repo, {"/a": b"a"})
    put_files(client, other, {"/b": b"b"})
    e = api_error(mgr.mount, [MountRequest(name="ok", repo=repo), MountRequest(name="bad", repo=repo, branch="x")])
    assert e.status == 400 and mgr.mounted() == []
    mgr.mount([MountRequest(name="m", repo=repo)])
    gen = mgr.generation
    mgr.mount([MountRequest(name="m", repo=repo, branch="master")])  # same source: no-op
    assert mgr.generation == gen and len(mgr.mounted()) == 1
    e = api_error(mgr.mount, [MountRequest(name="m", repo=other)])
    assert e.status == 500 and "mount at 'm' already in use" in e.message
    e = api_error(mgr.mount, [MountRequest(name="m", repo=repo, mode="rw")])
    assert e.status == 500 and "already in use" in e.message


def test_not_connected_is_404(make_manager):
    m = make_manager(client=None)
    e = api_error(m.mount, [MountRequest(name="x", repo="y")])
    assert e.status == 404 and e.message == "not connected to a cluster"


# --------------------------------------------------------------------------- read-write mounts

def test_rw_commit_is_one_commit_and_unmount_commits_first(mgr, client, unique_name):
    repo = unique_name()
    put_files(client, repo, {"/old.txt": b"old", "/gone.txt": b"bye"})
    mgr.mount([MountRequest(name="w", repo=repo, mode="rw")])
    root = mgr.mount_dir / "w"
    (root / "new.txt").write_bytes(b"new")
    (root / "sub").mkdir()
    (root / "sub" / "deep.txt").write_bytes(b"deep")
    (root / "gone.txt").unlink()
    assert state(mgr, "w")["pending_changes"] > 0
    before = client.pfs.inspect_branch(branch=pfs.Branch(repo=repo_msg(repo), name="master")).head.id
    mgr.commit("w")
    head = client.pfs.inspect_branch(branch=pfs.Branch(repo=repo_msg(repo), name="master")).head.id
    to = pfs.Commit(repo=repo_msg(repo), id=head)
    parents = [c.commit.id for c in client.pfs.list_commit(repo=repo_msg(repo), to=to)]
    assert parents[:2] == [head, before]  # exactly one new commit
    assert file_at(client, repo, "master", "/new.txt") == b"new"
    assert file_at(client, repo, "master", "/sub/deep.txt") == b"deep"
    assert not client.pfs.path_exists(pfs.File(commit=pfs.Commit(repo=repo_msg(repo), id=head), path="/gone.txt"))
    s = state(mgr, "w")
    assert s["state"] == "mounted" and s["pending_changes"] == 0 and s["commit"] == head
    assert s["status"] == f"up to date on latest commit {head[:8]}"

    (root / "last.txt").write_bytes(b"last")
    mgr.unmount(["w"])
    assert mgr.mounted() == [] and not (mgr.mount_dir / "w").exists()
    assert file_at(client, repo, "master", "/last.txt") == b"last"


def test_rw_on_new_branch_and_commit_rules(mgr, client, unique_name):
    repo = unique_name()
    put_files(client, repo, {"/a": b"a"})
    mgr.mount([MountRequest(name="w", repo=repo, branch="feature", mode="rw", commit="f" * 32),
               MountRequest(name="r", repo=repo)])
    s = state(mgr, "w")
    assert s["commit"] == "" and s["status"] == "branch does not contain any commits"
    (mgr.mount_dir / "w" / "f.txt").write_bytes(b"feature")
    mgr.commit("w")
    assert file_at(client, repo, "feature", "/f.txt") == b"feature"
    assert api_error(mgr.commit, "r").status == 500
    assert "not mounted" in api_error(mgr.commit, "nope").message
    assert api_error(mgr.unmount, ["nope"]).status == 500


def test_failed_commit_keeps_changes_and_mount_usable(mgr, pachd, client, unique_name):
    repo = unique_name()
    put_files(client, repo, {"/a": b"a"})
    mgr.mount([MountRequest(name="w", repo=repo, mode="rw")])
    (mgr.mount_dir / "w" / "keep.txt").write_bytes(b"precious")
    mgr.set_client(connect(f"grpc://127.0.0.1:{free_port()}", rpc_timeout=2))  # nothing listens there
    e = api_error(mgr.commit, "w")
    assert e.status == 500 and "failed, changes kept" in e.message
    s = state(mgr, "w")
    assert s["state"] == "mounted" and "failed, changes kept" in s["error"] and s["pending_changes"] >= 1
    assert "failed" not in next(r for r in mgr.mounted() if r["name"] == "w")["status"]  # the reference's texts only
    (mgr.mount_dir / "w" / "more.txt").write_bytes(b"more")  # still writable
    mgr.set_client(connect(pachd.address, rpc_timeout=5))
    mgr.commit("w")
    assert file_at(client, repo, "master", "/keep.txt") == b"precious"
    assert file_at(client, repo, "master", "/more.txt") == b"more"
    assert state(mgr, "w")["error"] == ""


def test_discard_drops_staged_changes(mgr, client, unique_name):
    repo = unique_name()
    put_files(client, repo, {"/a": b"a"})
    mgr.mount([MountRequest(name="w", repo=repo, mode="rw"), MountRequest(name="r", repo=repo)])
    (mgr.mount_dir / "w" / "junk.txt").write_bytes(b"junk")
    assert state(mgr, "w")["pending_changes"] == 1
    mgr.discard("w")
    assert state(mgr, "w")["pending_changes"] == 0
    assert not (mgr.mount_dir / "w" / "junk.txt").exists()
    assert api_error(mgr.discard, "r").status == 400


# --------------------------------------------------------------------------- upstream deletion

def test_deleting_a_mounted_branch_keeps_its_mounts_deleting_the_repo_drops_them(mgr, client, unique_name):
    """The reference's TestDeletingMountedRepo: the mounted commits outlive their branch."""
    repo = unique_name()
    put_files(client, repo, {"/dir/file1": b"foo"}, branch="b1")
    b2 = put_files(client, repo, {"/dir/file1": b"foo"}, branch="b2")
    mgr.mount([MountRequest(name="repo_b1", repo=repo, branch="b1"),
               MountRequest(name="repo_b1_dup", repo=repo, branch="b1"),
               MountRequest(name="repo_b2", repo=repo, branch="b2"),
               MountRequest(name="rw_b1", repo=repo, branch="b1", mode="rw")])
    mgr.refresh()
    before = {s["name"]: s for s in mgr.mounted()}
    client.pfs.delete_branch(branch=pfs.Branch(repo=repo_msg(repo), name="b1"), force=True)
    mgr.refresh()
    after = {s["name"]: s for s in mgr.mounted()}
    assert set(after) == {"repo_b1", "repo_b1_dup", "repo_b2", "rw_b1"}
    assert after == before  # state, status and commits behind stay as they were (the refresh keeps them)
    assert (mgr.mount_dir / "repo_b1" / "dir" / "file1").read_bytes() == b"foo"
    assert after["repo_b2"]["status"] == f"up to date on latest commit {b2[:8]}"

    client.pfs.delete_repo(repo=repo_msg(repo), force=True)
    assert len(mgr.mounted()) == 4  # listing only reads: the refresh drops them
    mgr.refresh()
    assert mgr.mounted() == [] and mgr.all_mounts() == []
    assert not [p for p in mgr.mount_dir.iterdir()]


def test_a_repo_deleted_upstream_keeps_uncommitted_changes_out_of_the_mount_dir(mgr, client, unique_name):
    rw_repo, clean_repo = unique_name(), unique_name()
    for r in (rw_repo, clean_repo):
        put_files(client, r, {"/a": b"a"})
    mgr.mount([MountRequest(name="rw", repo=rw_repo, mode="rw"), MountRequest(name="clean", repo=clean_repo, mode="rw")])
    (mgr.mount_dir / "rw" / "unsaved.txt").write_bytes(b"unsaved")
    client.pfs.delete_repo(repo=repo_msg(rw_repo), force=True)
    client.pfs.delete_repo(repo=repo_msg(clean_repo), force=True)
    mgr.refresh()
    assert mgr.mounted() == []  # as the reference: no mount outlives its repo
    assert not (mgr.mount_dir / "rw").exists() and not (mgr.mount_dir / "clean").exists()
    kept = {s["name"]: s for s in mgr.all_mounts()}
    assert set(kept) == {"rw"} and kept["rw"]["state"] == "pending" and kept["rw"]["pending_changes"] == 1
    assert "deleted upstream" in kept["rw"]["error"] and "kept" in kept["rw"]["error"]
    assert "not mounted" in api_error(mgr.commit, "rw").message  # the reference's /_commit does not see it

    put_files(client, rw_repo, {"/b": b"b"})  # the repo is back: mounting it again brings the changes back
    mgr.mount([MountRequest(name="rw", repo=rw_repo, mode="rw")])
    assert (mgr.mount_dir / "rw" / "unsaved.txt").read_bytes() == b"unsaved"
    client.pfs.delete_repo(repo=repo_msg(rw_repo), force=True)
    assert state(mgr, "rw")["state"] == "pending"
    mgr.discard("rw")
    assert mgr.all_mounts() == []


def test_mounted_is_the_reference_shape_and_all_mounts_adds_pachtray_fields(mgr, client, unique_name):
    repo = unique_name()
    put_files(client, repo, {"/a": b"a"})
    mgr.mount([MountRequest(name="r", repo=repo), MountRequest(name="w", repo=repo, mode="rw")])
    (mgr.mount_dir / "w" / "x").write_bytes(b"x")
    assert [tuple(s) for s in mgr.mounted()] == [MOUNT_STATE_FIELDS] * 2
    extras = {s["name"]: s for s in mgr.all_mounts()}
    assert set(extras["w"]) == {*MOUNT_STATE_FIELDS, "pending_changes", "error", "pinned"}
    assert extras["w"]["pending_changes"] == 1 and extras["r"]["pending_changes"] == 0


# --------------------------------------------------------------------------- busy unmount

def test_an_unmount_waits_for_no_reader_but_for_a_writer_and_does_not_wedge(mgr, client, unique_name):
    repo = unique_name()
    put_files(client, repo, {"/a.txt": b"a"})
    mgr.mount([MountRequest(name="read", repo=repo), MountRequest(name="write", repo=repo, mode="rw")])
    with open(mgr.mount_dir / "read" / "a.txt", "rb"), open(mgr.mount_dir / "write" / "b.txt", "wb") as w:
        mgr.unmount(["read"])  # a reader does not keep a mount (as the reference)
        assert state(mgr, "read") is None
        e = api_error(mgr.unmount, ["write"])
        assert e.status == 409 and str(os.getpid()) in e.message
        assert state(mgr, "write")["state"] == "mounted"
        mgr.mount([MountRequest(name="other", repo=repo)])  # the manager is not wedged
        e = api_error(mgr.unmount_all)
        assert e.status == 409 and "'write'" in e.message and state(mgr, "other") is None
        w.write(b"b")
    mgr.unmount(["write"])
    assert mgr.mounted() == []


# --------------------------------------------------------------------------- change feed

def test_generation_bumps_on_mount_set_and_pending_changes(mgr, client, unique_name):
    repo = unique_name()
    put_files(client, repo, {"/a": b"a"})
    g0 = mgr.generation
    assert mgr.wait_change(g0, 0.1) == g0  # nothing changed: returns at the timeout
    mgr.mount([MountRequest(name="w", repo=repo, mode="rw")])
    g1 = mgr.generation
    assert g1 > g0
    result: list[int] = []
    waiter = threading.Thread(target=lambda: result.append(mgr.wait_change(g1, 30)))
    waiter.start()
    (mgr.mount_dir / "w" / "x").write_bytes(b"x")  # a write changes the pending count
    waiter.join(40)
    assert result and result[0] > g1
    g2 = mgr.generation
    mgr.unmount(["w"])
    assert mgr.wait_change(g2, 0) > g2


# --------------------------------------------------------------------------- datum mode

def test_datum_mode_mounts_each_datum_with_an_out_folder(mgr, client, unique_name):
    images, labels = unique_name("img"), unique_name("lbl")
    put_files(client, images, {"/1.png": b"i1", "/2.png": b"i2"})
    put_files(client, labels, {"/1.txt": b"l1", "/2.txt": b"l2"})
    put_files(client, labels, {"/other": b"o"}, branch="dev")
    mgr.mount([MountRequest(name="plain", repo=images)])
    spec = {"input": {"join": [{"pfs": {"repo": images, "glob": "/(*).png", "join_on": "$1", "name": "img"}},
                               {"pfs": {"repo": labels, "glob": "/(*).txt", "join_on": "$1", "name": "lbl"}}]}}
    assert mgr.datums_mount(spec) == {"id": "", "idx": 0, "num_datums": 2, "all_datums_received": True}
    names = {s["name"]: s for s in mgr.mounted()}
    assert set(names) == {"img", "lbl"}  # entering datum mode unmounted `plain`
    assert names["img"]["paths"] == ["/1.png"] and names["lbl"]["paths"] == ["/1.txt"]
    assert (mgr.mount_dir / "img" / "1.png").read_bytes() == b"i1"
    assert os.listdir(mgr.mount_dir / "img") == ["1.png"]
    (mgr.mount_dir / "out" / "result.txt").write_text("r1")
    st = mgr.datums_state()
    assert st["num_datums"] == 2 and st["idx"] == 0 and st["all_datums_received"] is True
    assert st["input"]["join"][0]["pfs"] == {"project": "default", "name": "img", "repo": images,
                                             "branch": "master", "glob": "/(*).png", "join_on": "$1"}

    assert api_error(mgr.datums_prev).message == "already at first datum"
    assert mgr.datums_next()["idx"] == 1
    assert (mgr.mount_dir / "lbl" / "2.txt").read_bytes() == b"l2"
    assert os.listdir(mgr.mount_dir / "out") == []  # each datum's out starts empty, as in a pipeline
    (mgr.mount_dir / "out" / "result.txt").write_text("r2")
    assert api_error(mgr.datums_next).message == "already at last datum"
    assert mgr.datums_prev()["idx"] == 0
    assert os.listdir(mgr.mount_dir / "out") == []

    e = api_error(mgr.mount, [MountRequest(name="x", repo=images)])
    assert e.status == 400 and "datum mode" in e.message
    assert api_error(mgr.unmount, ["img"]).status == 400
    mgr.unmount_all()
    assert mgr.mounted() == [] and not (mgr.mount_dir / "out").exists() and not mgr.out_dir.exists()
    assert mgr.datums_state() == {"num_datums": 0, "input": None, "idx": 0, "all_datums_received": False}
    assert api_error(mgr.datums_next).message == "no datums mounted"


def test_datum_mount_errors(mgr, client, unique_name):
    repo = unique_name()
    put_files(client, repo, {"/a": b"a"})
    e = api_error(mgr.datums_mount, {"input": {"pfs": {"repo": repo, "glob": "/zzz*"}}})
    assert (e.status, e.message) == (500, "error listing spec's datums: no datums to mount")  # the reference's
    e = api_error(mgr.datums_mount, {"input": {"pfs": {"repo": unique_name("missing"), "glob": "/*"}}})
    assert e.status == 400 and e.message.startswith("error converting datum inputs to mounts")
    e = api_error(mgr.datums_mount, {"input": {"pfs": {"repo": repo, "glob": "/*", "commit": "a" * 32}}})
    assert e.status == 400 and "cannot specify commit" in e.message
    assert mgr.datums_state()["num_datums"] == 0
