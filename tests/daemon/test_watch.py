"""The cluster watcher's rules (daemon.watch), fast: a small fake cluster answering the three RPCs
the watcher makes (ListBranch answered as pfs.client.list_branch_heads does). The feed end to end is in tests/api/test_api_live.py."""

from __future__ import annotations

import datetime as dt
import threading
import time

import grpc
import pytest
from conftest import RpcFailure as Rpc
from pachyderm_sdk.api import pfs

from pachtray.daemon.watch import ClusterWatch, Fingerprinter

pytestmark = pytest.mark.fast
DONE = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


class Cluster:
    """heads: (repo, branch) -> (commit id, finished); `readable` None = every repo."""

    def __init__(self):
        self.heads: dict[tuple[str, str], tuple[str, bool]] = {}
        self.auth_on = False
        self.readable: set[str] | None = None
        self.down = False
        self.calls: list[str] = []
        self.pfs = self

    def _rpc(self, name: str) -> None:
        self.calls.append(name)
        if self.down:
            raise Rpc(grpc.StatusCode.UNAVAILABLE, "connection refused")

    @staticmethod
    def _repo(name: str) -> pfs.Repo:
        return pfs.Repo(name=name, type="user", project=pfs.Project(name="default"))

    def list_repo(self, type: str):  # noqa: A002 - the SDK's name
        self._rpc("ListRepo")
        names = sorted({r for r, _ in self.heads})
        return [pfs.RepoInfo(repo=self._repo(n), branches=[pfs.Branch(repo=self._repo(n), name=b)
                                                            for r, b in self.heads if r == n]) for n in names]

    def list_branch_heads(self, client, repo: pfs.Repo | None = None):
        """As pfs.client.list_branch_heads: (project, repo, repo type, branch, head id)."""
        self._rpc("ListBranch" if repo is None else f"ListBranch {repo.name}")
        if repo is None and self.auth_on:
            raise Rpc(grpc.StatusCode.UNKNOWN, "Cannot list branches from all repos with auth activated")
        if repo is not None and self.readable is not None and repo.name not in self.readable:
            raise Rpc(grpc.StatusCode.PERMISSION_DENIED, "not authorized")
        return [("default", r, "user", b, cid)
                for (r, b), (cid, _) in sorted(self.heads.items()) if repo is None or r == repo.name]

    def inspect_commit(self, commit: pfs.Commit):
        self._rpc(f"InspectCommit {commit.id}")
        finished = next(f for cid, f in self.heads.values() if cid == commit.id)
        return pfs.CommitInfo(commit=commit, finished=DONE if finished else None)


def test_a_moved_head_is_inspected_until_it_is_finished_then_never_again():
    c = Cluster()
    c.heads[("images", "master")] = ("c1", False)
    f = Fingerprinter(heads=c.list_branch_heads)
    f.take(c)
    assert c.calls == ["ListRepo", "ListBranch"], "the first round takes the heads as they are: no burst"
    c.heads[("images", "master")] = ("c2", False)  # someone started a commit
    c.calls.clear()
    open_commit = f.take(c)
    assert c.calls == ["ListRepo", "ListBranch", "InspectCommit c2"]
    assert f.take(c) == open_commit  # still open: asked again, nothing new
    c.heads[("images", "master")] = ("c2", True)
    finished = f.take(c)
    assert finished != open_commit, "a commit's files arriving (it finished) is a change"
    c.calls.clear()
    assert f.take(c) == finished
    assert c.calls == ["ListRepo", "ListBranch"], "a finished head costs no more RPCs"


def test_moved_heads_are_inspected_a_few_at_a_time():
    from pachtray.daemon.watch import MAX_INSPECTS

    c = Cluster()
    for i in range(MAX_INSPECTS + 5):
        c.heads[(f"r{i}", "master")] = (f"a{i}", True)
    f = Fingerprinter(heads=c.list_branch_heads)
    f.take(c)
    for i in range(MAX_INSPECTS + 5):
        c.heads[(f"r{i}", "master")] = (f"b{i}", True)
    c.calls.clear()
    f.take(c)
    assert sum(call.startswith("InspectCommit") for call in c.calls) == MAX_INSPECTS
    c.calls.clear()
    f.take(c)
    assert sum(call.startswith("InspectCommit") for call in c.calls) == 5, "the rest in the next round"


def test_with_auth_on_heads_come_per_readable_repo_and_the_refusal_is_remembered():
    c = Cluster()
    c.auth_on, c.readable = True, {"mine"}
    c.heads[("mine", "master")] = ("m1", True)
    c.heads[("theirs", "master")] = ("t1", True)
    f = Fingerprinter(heads=c.list_branch_heads)
    first = f.take(c)
    assert {h[:4] for h in first.heads} == {("default", "mine", "master", "m1")}
    assert {r[1] for r in first.repos} == {"mine", "theirs"}, "repos are still listed (names, branches)"
    c.calls.clear()
    f.take(c)
    assert "ListBranch" not in c.calls and "ListBranch mine" in c.calls


def test_changes_move_the_generation_once_and_a_dead_cluster_moves_nothing():
    c = Cluster()
    c.heads[("images", "master")] = ("c1", True)
    moved = []
    w = ClusterWatch(lambda: c, lambda: moved.append(1), heads=c.list_branch_heads)
    assert w.check() and w.generation == 1  # the first look counts: a listener may hold older data
    assert not w.check() and w.generation == 1
    c.heads[("images", "dev")] = ("c1", True)
    assert w.check() and w.generation == 2 and len(moved) == 2
    c.down = True
    assert not w.check() and w.generation == 2
    c.down = False
    assert not w.check(), "the cluster coming back unchanged is no change"


def test_no_listener_no_rpcs_and_a_dead_cluster_is_not_polled_in_a_loop():
    c = Cluster()
    c.heads[("images", "master")] = ("c1", True)
    w = ClusterWatch(lambda: c, lambda: None, interval=0.1, linger=0.3, heads=c.list_branch_heads)
    stop = threading.Event()
    thread = threading.Thread(target=w.run, args=(stop,), daemon=True)
    thread.start()
    try:
        time.sleep(0.5)
        assert w.polls == 0 and c.calls == [], "nobody listens: the watcher makes no calls"
        c.down = True
        with w.listening():
            time.sleep(1.0)
        assert 3 <= w.polls <= 13, f"{w.polls} looks at a dead cluster in 1 s at a 0.1 s interval"
        time.sleep(0.6)  # the linger is over
        polls = w.polls
        time.sleep(0.5)
        assert w.polls == polls, "the watcher stops after the last listener left (and the linger)"
    finally:
        stop.set()
        thread.join(5)


def test_one_slow_look_does_not_put_the_next_ones_far_off():
    """The rounds are spaced by what a look costs (DUTY); one look slowed by a busy machine (0.3 s:
    6 s at DUTY 0.05) put the next one that far off, and a repo made meanwhile waited for it."""
    c = Cluster()
    c.heads[("images", "master")] = ("c1", True)
    looks = []

    def heads(client, repo=None):
        looks.append(time.monotonic())
        if len(looks) == 3:
            time.sleep(0.3)
        return c.list_branch_heads(client, repo)

    w = ClusterWatch(lambda: c, lambda: None, interval=0.05, linger=5, heads=heads)
    stop = threading.Event()
    thread = threading.Thread(target=w.run, args=(stop,), daemon=True)
    try:
        with w.listening():
            thread.start()
            deadline = time.monotonic() + 4
            while len(looks) < 6 and time.monotonic() < deadline:
                time.sleep(0.05)
        assert len(looks) >= 6, f"{len(looks)} looks in 4 s after a slow one"
    finally:
        stop.set()
        thread.join(5)
