"""The change feed follows the cluster (daemon.watch) and the activity log (pachtray.activity),
against the real daemon and embedded server; changes are made with the SDK, as anyone would."""

from __future__ import annotations

import time

from apihelpers import commit_files as _commit, new_repo as _repo, shared_daemon  # noqa: F401 - fixture
from pachyderm_sdk.api import pfs


def _feed(d, **params) -> dict:
    reply = d.get("/pachtray/v1/events", params=params, timeout=70)
    assert reply.ok, reply.text
    return reply.json()


def _wait_cluster_move(d, state: dict, what: str, within: float = 20.0) -> dict:
    """Long-poll (as the GUI does) until the cluster generation moves; fails after `within` s."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        answer = _feed(d, since=state["generation"], cluster=state["cluster"], timeout=min(5, within))
        if answer["cluster"] != state["cluster"]:
            return answer
        state = answer
    raise AssertionError(f"the cluster generation did not move within {within:g} s after {what}")


def _settle(d) -> dict:
    """Listen until the feed is quiet (moves made by earlier tests have been seen)."""
    state = _feed(d, since=-1, cluster=-1)
    for _ in range(20):
        answer = _feed(d, since=state["generation"], cluster=state["cluster"], timeout=2.5)
        if answer["cluster"] == state["cluster"]:
            return answer
        state = answer
    return state


def test_feed_moves_on_commits_branches_and_repos_made_with_the_sdk(shared_daemon, client, unique_name):
    d = shared_daemon
    state = _settle(d)
    assert set(state) == {"generation", "cluster", "activity"}
    name = unique_name("live")
    repo = _repo(client, name)
    state = _wait_cluster_move(d, state, "a new repo")
    _commit(client, repo, {"/a.txt": b"a"})
    state = _wait_cluster_move(d, state, "a commit")
    client.pfs.create_branch(branch=pfs.Branch(repo=repo, name="dev"),
                             head=pfs.Commit(branch=pfs.Branch(repo=repo, name="master")))
    state = _wait_cluster_move(d, state, "a new branch")
    # Nothing changed: the long poll waits its time out and answers the same generations.
    started = time.monotonic()
    quiet = _feed(d, since=state["generation"], cluster=state["cluster"], timeout=3)
    assert quiet["cluster"] == state["cluster"] and time.monotonic() - started >= 2.5


def test_feed_without_cluster_keeps_the_old_contract(shared_daemon, client, unique_name):
    """A client that does not ask for `cluster` is answered on mount changes only, as before."""
    d = shared_daemon
    start = _feed(d, since=-1)
    _commit(client, _repo(client, unique_name("old")), {"/a": b"a"})
    started = time.monotonic()
    answer = _feed(d, since=start["generation"], timeout=3)
    assert answer["generation"] == start["generation"] and time.monotonic() - started >= 2.5


def test_activity_lists_mount_commit_and_one_error_newest_first(shared_daemon, client, unique_name):
    d = shared_daemon
    name = unique_name("act")
    _commit(client, _repo(client, name), {"/a.txt": b"a"})
    last = d.get("/pachtray/v1/activity").json()["last"]
    mount = f"a_{name}"
    assert d.put("/_mount", {"mounts": [{"name": mount, "repo": name, "mode": "rw"}]}).ok
    try:
        (d.mount_dir / mount / "b.txt").write_bytes(b"b")
        assert d.put("/pachtray/v1/_commit", {"mount": mount}).ok
        bad = d.put("/_mount", {"mounts": [{"name": f"x_{name}", "repo": name, "branch": "no-such-branch"}]})
        assert not bad.ok
    finally:
        d.put("/_unmount", {"mounts": [mount]})
    listing = d.get("/pachtray/v1/activity", params={"after": last}).json()
    entries = listing["entries"]
    assert [e["kind"] for e in entries] == ["unmount", "error", "commit", "mount"], entries
    assert [e["id"] for e in entries] == sorted((e["id"] for e in entries), reverse=True)
    assert listing["last"] == entries[0]["id"]
    unmount, error, commit, mounted = entries
    assert mounted["mount"] == mount and "read-write" in mounted["message"] and mounted["time"].endswith("Z")
    assert commit["title"] == "Committed" and name in commit["message"]
    assert error["title"] == "Mount failed" and error["message"] == bad.text.strip()
    assert unmount["mount"] == mount


def test_upstream_move_of_a_mounted_branch_is_noted_once(shared_daemon, client, unique_name):
    import re

    d = shared_daemon
    name = unique_name("up")
    repo = _repo(client, name)
    _commit(client, repo, {"/a.txt": b"a"})
    mount = f"u_{name}"
    assert d.put("/_mount", {"mounts": [{"name": mount, "repo": name}]}).ok
    try:
        last = d.get("/pachtray/v1/activity").json()["last"]
        _commit(client, repo, {"/b.txt": b"b"})
        _commit(client, repo, {"/c.txt": b"c"})

        def moves():
            entries = d.get("/pachtray/v1/activity", params={"after": last}).json()["entries"]
            return [e for e in entries if e["kind"] == "upstream" and e["mount"] == mount]

        deadline = time.monotonic() + 30
        while sum(int(re.match(r"(\d+) new commits? on ", e["message"]).group(1)) for e in moves()) < 2:
            assert time.monotonic() < deadline, moves()
            time.sleep(0.3)
        assert all(e["message"].endswith(f" on {name}@master") for e in moves())
        noted = moves()
        time.sleep(6)  # another refresh round of the daemon (mount.manager, every 5 s): no repeat
        assert moves() == noted
    finally:
        d.put("/_unmount", {"mounts": [mount]})


def test_a_dead_cluster_does_not_hang_the_feed(local_pachd_factory, daemon_factory):
    server = local_pachd_factory()
    d = daemon_factory(server.address)
    state = _feed(d, since=-1, cluster=-1)
    server.kill()
    for _ in range(3):  # the watcher meets the dead cluster meanwhile; each poll still ends on time
        started = time.monotonic()
        answer = _feed(d, since=state["generation"], cluster=state["cluster"], timeout=2)
        assert time.monotonic() - started < 6, "the feed waited on the dead cluster"
        state = answer
    assert d.get("/health").ok


def test_a_branch_move_is_recorded_once_and_never_for_a_pinned_mount(shared_daemon, client, unique_name):
    """Two mounts of a branch and one of its commit: a new commit is one `upstream` entry (it names a
    mount that follows the branch); the commit's mount is pinned, and is not moved by /_refresh."""
    d = shared_daemon
    name = unique_name("once")
    repo = _repo(client, name)
    first = _commit(client, repo, {"/a.txt": b"a"})
    mounts = {f"a_{name}": {"repo": name}, f"b_{name}": {"repo": name, "paths": ["/a.txt"]},
              f"pin_{name}": {"repo": name, "commit": first}}
    assert d.put("/_mount", {"mounts": [{"name": k, **v} for k, v in mounts.items()]}).ok
    try:
        last = d.get("/pachtray/v1/activity").json()["last"]
        _commit(client, repo, {"/b.txt": b"b"})

        def moves():
            entries = d.get("/pachtray/v1/activity", params={"after": last}).json()["entries"]
            return [e for e in entries if e["kind"] == "upstream" and e["mount"] in mounts]

        deadline = time.monotonic() + 30
        while not moves():
            assert time.monotonic() < deadline
            time.sleep(0.3)
        time.sleep(6)  # another refresh round of the daemon: every mount has seen the move by now
        assert len(moves()) == 1 and moves()[0]["mount"] != f"pin_{name}", moves()
        states = {m["name"]: m for m in d.get("/pachtray/v1/mounts").json()["mounted"] if m["name"] in mounts}
        assert {k: (s["pinned"], s["how_many_commits_behind"]) for k, s in states.items()} == {
            f"a_{name}": (False, 1), f"b_{name}": (False, 1), f"pin_{name}": (True, 1)}
        refused = d.put("/pachtray/v1/_refresh", {"mount": f"pin_{name}"})
        assert refused.status_code == 400 and "is pinned to commit" in refused.text
        assert (d.mount_dir / f"pin_{name}" / "a.txt").exists() and not (d.mount_dir / f"pin_{name}" / "b.txt").exists()
    finally:
        d.put("/_unmount", {"mounts": list(mounts)})
