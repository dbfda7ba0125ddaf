"""The MountManager's rules against a fake cluster and fake FUSE parts (fast: no server, no FUSE):
listing only reads, the refresh applies the reference's deletion rules, typed states and problems,
access checks, name reuse, recovery after a restart, the change feed."""

from __future__ import annotations

import threading

import pytest
from fakes import FakeCluster, FakeParts

from pachtray.errors import ApiError
from pachtray.mount.manager import MountManager
from pachtray.mount.state import MountRequest, MountState, ProblemKind
from pachtray.pfs.errors import ClusterUnreachable

pytestmark = pytest.mark.fast


@pytest.fixture
def cluster():
    c = FakeCluster()
    c.add_repo("images")
    c.commit("images")
    return c


@pytest.fixture
def make(tmp_path, cluster):
    made = []

    def make(data_dir=None, *, connected=True, auth_state=None) -> MountManager:
        parts = FakeParts(cluster)
        m = MountManager(tmp_path / "pfs", data_dir or tmp_path / "data", keep_workspace=False, parts=parts,
                         auth_state=auth_state)
        m.start()
        if connected:
            m.set_client(cluster)
        made.append(m)
        return m

    yield make
    for m in made:
        m.stop()


def view(mgr: MountManager, name: str) -> dict | None:
    return next((s for s in mgr.all_mounts() if s["name"] == name), None)


def error_of(fn, *args, **kwargs) -> ApiError:
    with pytest.raises(ApiError) as e:
        fn(*args, **kwargs)
    return e.value


def test_listing_only_reads_and_the_refresh_follows_the_branch(make, cluster):
    mgr = make()
    first = cluster.repos[("default", "images")]["master"][-1]
    mgr.mount([MountRequest(name="img", repo="images")])
    mgr.refresh()
    assert view(mgr, "img")["status"] == f"up to date on latest commit {first[:8]}"
    second = cluster.commit("images")
    calls = cluster.calls
    assert mgr.mounted()[0]["how_many_commits_behind"] == 0 and view(mgr, "img")["latest_commit"] == first
    assert cluster.calls == calls  # mounted() and all_mounts() make no RPC
    gen = mgr.generation
    mgr.refresh()
    s = view(mgr, "img")
    assert (s["commit"], s["latest_commit"], s["how_many_commits_behind"]) == (first, second, 1)
    assert s["status"] == f"1 commits behind latest; current = {first[:8]} (0'th), latest = {second[:8]} (1'th)"
    assert mgr.generation > gen  # the change is on the feed
    gen = mgr.generation
    mgr.refresh()
    assert mgr.generation == gen  # nothing changed: no bump


def test_a_deleted_repo_drops_its_mounts_at_the_refresh_and_keeps_rw_changes(make, cluster):
    mgr = make()
    cluster.add_repo("work")
    cluster.commit("work")
    mgr.mount([MountRequest(name="img", repo="images"), MountRequest(name="w", repo="work", mode="rw"),
               MountRequest(name="clean", repo="work", branch="b", mode="rw")])
    mgr.parts.fs.views["w"].write(2)
    del cluster.repos[("default", "images")], cluster.repos[("default", "work")]
    assert {s["name"] for s in mgr.mounted()} == {"img", "w", "clean"}  # until the refresh
    mgr.refresh()
    assert mgr.mounted() == [] and set(mgr.parts.fs.views) == set()
    (kept,) = mgr.all_mounts()
    assert (kept["name"], kept["state"], kept["pending_changes"]) == ("w", "pending", 2)
    assert kept["error"].startswith("deleted upstream: repo default/work no longer exists; 2 uncommitted changes")
    assert kept["status"] == "2 uncommitted changes kept when the repo was deleted upstream: commit or discard them"
    m = mgr.table.get("w")
    assert m.state is MountState.RECOVERED and m.problem.kind is ProblemKind.DELETED_UPSTREAM
    assert "not mounted" in error_of(mgr.commit, "w").message  # the reference's routes do not see it
    m.view.fail = "repo default/work not found"  # committed before the repo is back: say what helps
    e = error_of(lambda: mgr.commit("w", recovered=True))
    assert e.message.endswith("repo default/work not found (recreate the repo and commit again, or discard the "
                              "changes)"), e.message
    mgr.discard("w")
    assert mgr.all_mounts() == []


def test_a_deleted_branch_keeps_its_mounts_and_their_status(make, cluster):
    mgr = make()
    cluster.commit("images", branch="b1")
    mgr.mount([MountRequest(name="b1", repo="images", branch="b1"), MountRequest(name="w", repo="images",
                                                                                  branch="b1", mode="rw")])
    mgr.refresh()
    before = mgr.mounted()
    cluster.delete_branch("images", "b1")
    mgr.refresh()
    assert mgr.mounted() == before


def test_a_failed_commit_is_a_typed_problem_until_the_next_success(make, cluster):
    mgr = make()
    mgr.mount([MountRequest(name="w", repo="images", mode="rw")])
    rw = mgr.parts.fs.views["w"]
    rw.write()
    rw.fail = "disk on fire"
    e = error_of(mgr.commit, "w")
    assert e.status == 500 and e.message == "commit of 'w' failed, changes kept: disk on fire"
    m = mgr.table.get("w")
    assert m.problem.kind is ProblemKind.COMMIT_FAILED and m.state is MountState.MOUNTED
    assert view(mgr, "w")["error"] == e.message and view(mgr, "w")["pending_changes"] == 1
    assert "failed" not in mgr.mounted()[0]["status"]  # the reference's texts only
    rw.fail = ""
    mgr.commit("w")
    assert m.problem is None and view(mgr, "w")["error"] == "" and view(mgr, "w")["pending_changes"] == 0
    assert m.commit == cluster.repos[("default", "images")]["master"][-1]


def test_with_auth_on_access_is_checked_once_with_the_references_answers(make, cluster):
    cluster.auth_on = True
    cluster.add_repo("secret", access="none")
    cluster.add_repo("shared", access="read")
    cluster.commit("secret")
    cluster.commit("shared")
    auth = {"state": "on"}
    mgr = make(auth_state=lambda: auth["state"])
    e = error_of(mgr.mount, [MountRequest(name="s", repo="secret")])
    assert e.status == 400 and e.message.startswith("mount request 's': user doesn't have read permission on repo secret")
    e = error_of(mgr.mount, [MountRequest(name="s", repo="secret", mode="rw")])
    assert e.status == 500 and "user doesn't have read permission on repo secret" in e.message
    assert "no read access" in e.message
    e = error_of(mgr.mount, [MountRequest(name="w", repo="shared", mode="rw")])
    assert e.status == 500 and "can't create writable mount since user doesn't have write access" in e.message
    assert "read-only access" in e.message
    mgr.mount([MountRequest(name="r", repo="shared")])
    assert [s["name"] for s in mgr.mounted()] == ["r"]
    auth["state"], cluster.auth_on = "off", False  # auth off: nothing to check
    mgr.mount([MountRequest(name="s", repo="secret"), MountRequest(name="w", repo="shared", mode="rw")])


def test_an_unreachable_cluster_is_try_again_later_and_a_refresh_keeps_the_last_state(make, cluster):
    mgr = make()
    cluster.add_repo("other")
    cluster.commit("other")
    mgr.mount([MountRequest(name="a", repo="images"), MountRequest(name="b", repo="other")])
    mgr.refresh()
    before = mgr.mounted()
    cluster.down = True
    calls = cluster.calls
    mgr.refresh()
    assert cluster.calls == calls + 1  # one timeout per refresh, not one per mount
    assert mgr.mounted() == before
    e = error_of(mgr.mount, [MountRequest(name="c", repo="other")])
    assert isinstance(e, ClusterUnreachable) and e.status == 500 and "cluster unreachable" in e.message


def test_name_reuse_and_validation_are_all_or_nothing(make, cluster):
    mgr = make()
    cluster.add_repo("other")
    cluster.commit("other")
    mgr.mount([MountRequest(name="m", repo="images")])
    gen = mgr.generation
    mgr.mount([MountRequest(name="m", repo="images")])  # same source: nothing to do
    assert mgr.generation == gen
    e = error_of(mgr.mount, [MountRequest(name="m", repo="other")])
    assert e.status == 500 and e.message == "mount at 'm' already in use by default/images@master (ro)"
    e = error_of(mgr.mount, [MountRequest(name="ok", repo="other"), MountRequest(name="bad", repo="nope")])
    assert e.status == 400 and "repo default/nope not found" in e.message
    assert [s["name"] for s in mgr.mounted()] == ["m"]  # the valid one was not mounted either
    assert error_of(mgr.mount, [MountRequest(name="a/b", repo="images")]).status == 400
    assert error_of(mgr.mount, [MountRequest(name="x", repo="images", commit="xyz")]).status == 400


def test_a_mount_that_cannot_list_never_appears(make, cluster):
    mgr = make()
    parts = mgr.parts
    real = parts.ro_view

    def broken(client_fn, m):
        v = real(client_fn, m)
        v.broken = True
        return v

    parts.ro_view = broken
    e = error_of(mgr.mount, [MountRequest(name="img", repo="images")])
    assert isinstance(e, ClusterUnreachable) and "cannot list default/images@" in e.message
    assert mgr.mounted() == [] and parts.fs.views == {}


@pytest.mark.parametrize("name", ["w", "é" * 127 + "w"], ids=["short", "255 bytes"])
def test_changes_staged_before_a_restart_are_recovered_and_committed(make, cluster, tmp_path, name):
    """(A name of 255 bytes, the most a mount name may have, leaves no room for more in a file name:
    its record is stored under a digest.)"""
    first = make(tmp_path / "data")
    first.mount([MountRequest(name=name, repo="images", mode="rw")])
    first.parts.fs.views[name].write(3)
    first.stop()  # no commit: the changes stay staged

    again = make(tmp_path / "data")
    assert again.mounted() == [] and again.parts.fs.views == {}
    (s,) = again.all_mounts()
    assert (s["name"], s["state"], s["pending_changes"], s["error"]) == (name, "pending", 3, "")
    assert s["status"] == "3 uncommitted changes recovered from an earlier run: commit or discard them"
    assert not (tmp_path / "data" / "orphaned-staging").exists()
    assert error_of(again.unmount, [name]).status == 500
    again.commit(name, recovered=True)
    assert again.all_mounts() == [] and not (tmp_path / "data" / "staging" / name).exists()
    assert list((tmp_path / "data" / "mounts").iterdir()) == []
    assert len(cluster.repos[("default", "images")]["master"]) == 2


def test_recovered_changes_go_only_to_the_cluster_they_were_staged_on(make, cluster, tmp_path):
    """A restart with other settings (Local -> a cluster with a repo of the same name) used to put
    the changes back and commit them there, over that cluster's files."""
    first = make(tmp_path / "data")
    first.mount([MountRequest(name="w", repo="images", mode="rw")])
    first.parts.fs.views["w"].write(2)
    first.stop()

    other = FakeCluster()
    other.add_repo("images")
    other.commit("images")
    again = make(tmp_path / "data", connected=False)
    again.set_client(other)
    e = error_of(again.mount, [MountRequest(name="w", repo="images", mode="rw")])
    assert e.status == 500 and f"were staged on cluster {cluster.pachd_address.url} (id {cluster.cluster_id})" in e.message
    assert f"not on {other.pachd_address.url}" in e.message and "w" not in again.parts.fs.views
    (s,) = again.all_mounts()
    assert s["status"] == (f"2 uncommitted changes staged on {cluster.pachd_address.url}: connect to it to commit "
                           "them, or discard them")
    assert s["error"].startswith("2 uncommitted changes of default/images@master were staged on cluster")
    e = error_of(again.commit, "w", recovered=True)
    assert e.status == 409 and "connect to that cluster to commit them" in e.message
    assert error_of(again.changes, "w").status == 409  # their base is on the other cluster
    assert error_of(again.discard_paths, "w", ["/f0"]).status == 409
    assert len(other.repos[("default", "images")]["master"]) == 1  # nothing went there

    again.set_client(cluster)  # back on the cluster they belong to
    again.mount([MountRequest(name="w", repo="images", mode="rw")])
    assert view(again, "w")["pending_changes"] == 2 and view(again, "w")["error"] == ""
    again.commit("w")
    assert len(cluster.repos[("default", "images")]["master"]) == 2


def test_mounting_the_source_of_recovered_changes_puts_them_back(make, cluster, tmp_path):
    first = make(tmp_path / "data")
    first.mount([MountRequest(name="w", repo="images", mode="rw")])
    first.parts.fs.views["w"].write()
    first.stop()
    again = make(tmp_path / "data")
    e = error_of(again.mount, [MountRequest(name="w", repo="images", branch="dev", mode="rw")])
    assert e.status == 500 and "1 uncommitted changes of default/images@master (recovered from an earlier run) wait" in e.message
    again.mount([MountRequest(name="w", repo="images", mode="rw")])
    assert again.table.get("w").state is MountState.MOUNTED and "w" in again.parts.fs.views
    assert view(again, "w")["pending_changes"] == 1


def test_a_mount_in_use_is_unmounted_unless_a_file_in_it_is_open_for_writing(make, cluster):
    """As the reference, processes using a mount (their cwd, files they read) do not keep it; an rw
    mount with a file open for writing does (what is written next would be lost)."""
    mgr = make()
    mgr.mount([MountRequest(name="img", repo="images"), MountRequest(name="w", repo="images", mode="rw")])
    mgr.parts.fs.holders["img"] = ["python (pid 41)"]
    mgr.parts.fs.writers["img"] = ["cat (pid 40)"]  # (a ro mount: cannot be written)
    mgr.parts.fs.holders["w"] = ["bash (pid 43)"]
    mgr.parts.fs.writers["w"] = ["python (pid 42)"]
    mgr.unmount(["img"])
    e = error_of(mgr.unmount, ["w"])
    assert e.status == 409 and "open for writing by python (pid 42)" in e.message and "bash" not in e.message
    assert mgr.table.get("w").state is MountState.MOUNTED
    del mgr.parts.fs.writers["w"]
    mgr.unmount(["w"])
    assert mgr.mounted() == []


def test_unmount_commits_first_and_without_a_cluster_nothing_is_lost(make, cluster):
    mgr = make()
    mgr.mount([MountRequest(name="w", repo="images", mode="rw")])
    mgr.parts.fs.views["w"].write()
    mgr.set_client(None)
    e = error_of(mgr.unmount, ["w"])
    assert e.status == 404 and view(mgr, "w")["pending_changes"] == 1
    mgr.set_client(cluster)
    mgr.unmount(["w"])
    assert mgr.all_mounts() == [] and len(cluster.repos[("default", "images")]["master"]) == 2


def test_the_feed_wakes_a_waiter_on_writes_nobody_reported(make, cluster):
    mgr = make()
    mgr.mount([MountRequest(name="w", repo="images", mode="rw")])
    gen = mgr.generation
    answer = {}
    waiter = threading.Thread(target=lambda: answer.setdefault("gen", mgr.wait_change(gen, 10)))
    waiter.start()
    mgr.parts.fs.views["w"].write()  # a write in the mount: the manager is not told
    waiter.join(5)
    assert not waiter.is_alive() and answer["gen"] != gen
    assert mgr.wait_change(mgr.generation, 0.01) == mgr.generation  # times out with the same generation


def test_a_mount_on_its_branch_head_costs_one_call_per_refresh_and_a_dropped_head_is_still_seen(make, cluster):
    """An idle daemon refreshes every mount every few seconds: a mount still on its branch's head
    needs no second call (the head exists, so does its repo). The check it skips is made as soon
    as the head is not the mount's commit: here the head commit is dropped."""
    mgr = make()
    first = cluster.repos[("default", "images")]["master"][-1]
    second = cluster.commit("images")
    mgr.mount([MountRequest(name="img", repo="images"), MountRequest(name="old", repo="images", commit=first)])
    mgr.refresh(["img"])
    calls = cluster.calls
    mgr.refresh(["img"])
    assert cluster.calls == calls + 1 and view(mgr, "img")["status"] == f"up to date on latest commit {second[:8]}"
    cluster.repos[("default", "images")]["master"].remove(second)  # the head commit dropped: the parent is head
    mgr.refresh()
    assert {s["name"] for s in mgr.mounted()} == {"old"}  # 'img' showed the dropped commit: gone with it
    assert view(mgr, "old")["status"] == f"up to date on latest commit {first[:8]}"


def test_a_commit_right_after_the_cluster_came_back_asks_it_instead_of_the_last_health_check(make, cluster):
    """The health checks run every 2 s; a commit in between used to fail with "unreachable"."""
    mgr = make()
    mgr.mount([MountRequest(name="w", repo="images", mode="rw")])
    mgr.parts.fs.views["w"].write(1)
    cluster.down = True
    mgr.set_reachable(False)
    assert error_of(mgr.commit, "w").status == 500  # away: it fails, changes kept
    assert view(mgr, "w")["pending_changes"] == 1
    cluster.down = False  # back, and the health checks have not seen it yet
    mgr.commit("w")
    assert view(mgr, "w")["pending_changes"] == 0 and len(cluster.repos[("default", "images")]["master"]) == 2
