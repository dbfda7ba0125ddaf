"""Nothing lost across restarts: rw changes staged by a kill -9'd daemon come back as `pending`
entries (not mounted: commit or discard them), and the saved workspace is mounted again, also
when the cluster only becomes reachable later."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from conftest import force_unmount, stop_process, wait_for
from test_datums_compute import put_files
from test_manager_mounts import api_error, file_at, make_manager, repo_msg, state  # noqa: F401 - make_manager is a fixture
from pachtray.mount.manager import MountRequest
from pachtray.mount.workspace import Workspace
from pachtray.pfs.client import connect

CRASHER = r"""
import sys, time
from pachtray.mount.manager import MountManager, MountRequest
from pachtray.pfs.client import connect
mount_dir, data_dir, address, repo = sys.argv[1:5]
m = MountManager(mount_dir, data_dir)
m.start()
m.set_client(connect(address))
m.mount([MountRequest(name="w", repo=repo, mode="rw"), MountRequest(name="r", repo=repo)])
print("ready", flush=True)
time.sleep(600)
"""


@pytest.fixture
def crashed(tmp_path, pachd, client, unique_name):
    """A manager process that mounted `w` (rw) and `r` (ro), got two writes, then was kill -9'd."""
    repo = unique_name()
    put_files(client, repo, {"/base.txt": b"base"})
    mount_dir, data_dir = tmp_path / "crash-pfs", tmp_path / "data"
    mount_dir.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", CRASHER, str(mount_dir), str(data_dir), pachd.address, repo],
                            stdout=subprocess.PIPE, stderr=open(tmp_path / "crasher.log", "wb"), text=True)
    try:
        assert proc.stdout.readline().strip() == "ready", (tmp_path / "crasher.log").read_text()
        (mount_dir / "w" / "one.txt").write_bytes(b"one")
        with open(mount_dir / "w" / "two.txt", "wb") as f:
            f.write(b"two")
            f.flush()
            os.fsync(f.fileno())
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        stop_process(proc)
        force_unmount(mount_dir)
    return repo, data_dir


def test_killed_daemon_changes_come_back_pending_and_commit(crashed, make_manager, client):
    repo, data_dir = crashed
    mgr = make_manager(data_dir=data_dir)
    s = state(mgr, "w")
    assert s["state"] == "pending" and s["pending_changes"] == 2 and s["repo"] == repo and s["mode"] == "rw"
    assert "2 uncommitted changes recovered" in s["status"]
    assert state(mgr, "r") is None  # ro mounts are not recovered (restore brings them back)
    assert not (mgr.mount_dir / "w").exists()
    assert mgr.mounted() == []  # not mounted: GET /mounts starts as the reference's
    assert "not mounted" in api_error(mgr.commit, "w").message  # the reference's /_commit
    mgr.commit("w", recovered=True)
    assert file_at(client, repo, "master", "/one.txt") == b"one"
    assert file_at(client, repo, "master", "/two.txt") == b"two"
    assert state(mgr, "w") is None


def test_killed_daemon_changes_can_be_discarded(crashed, make_manager, client):
    repo, data_dir = crashed
    mgr = make_manager(data_dir=data_dir)
    assert state(mgr, "w")["state"] == "pending"
    mgr.discard("w")
    assert mgr.all_mounts() == []
    assert not (data_dir / "staging" / "w").exists()


def test_restore_after_crash_adopts_the_staged_changes(crashed, make_manager):
    repo, data_dir = crashed
    saved = Workspace(data_dir / "workspace.json").load()
    assert {(e["name"], e["mode"]) for e in saved} == {("w", "rw"), ("r", "ro")}
    mgr = make_manager(data_dir=data_dir)
    mgr.restore()
    listing = {s["name"]: s for s in mgr.all_mounts()}
    assert listing["w"]["state"] == "mounted" and listing["w"]["pending_changes"] == 2
    assert listing["r"]["state"] == "mounted"
    assert (mgr.mount_dir / "w" / "one.txt").read_bytes() == b"one"
    assert (mgr.mount_dir / "r" / "base.txt").read_bytes() == b"base"


def test_clean_stop_keeps_changes_and_workspace(make_manager, tmp_path, client, unique_name):
    repo = unique_name()
    put_files(client, repo, {"/a": b"a"})
    first = make_manager(data_dir=tmp_path / "data")
    first.mount([MountRequest(name="w", repo=repo, mode="rw"), MountRequest(name="r", repo=repo, paths=["/a"])])
    (first.mount_dir / "w" / "kept.txt").write_bytes(b"kept")
    first.stop()
    second = make_manager(data_dir=tmp_path / "data")
    assert state(second, "w")["state"] == "pending"
    second.restore()
    assert state(second, "r")["paths"] == ["/a"]
    assert (second.mount_dir / "w" / "kept.txt").read_bytes() == b"kept"
    second.unmount(["w"])  # commits first
    assert file_at(client, repo, "master", "/kept.txt") == b"kept"
    assert [e["name"] for e in Workspace(tmp_path / "data" / "workspace.json").load()] == ["r"]


def test_a_restart_on_another_cluster_keeps_the_changes_for_theirs(make_manager, local_pachd_factory, tmp_path,
                                                                    client, unique_name):
    """Staged on one cluster, restarted against another with a repo of the same name (Settings: Local
    -> Cluster): the changes stay pending, are not committed there, and go where they belong later."""
    repo = unique_name()
    put_files(client, repo, {"/a.txt": b"here"})
    first = make_manager(data_dir=tmp_path / "data")
    first.mount([MountRequest(name="w", repo=repo, mode="rw")])
    (first.mount_dir / "w" / "a.txt").write_bytes(b"changed here")
    first.stop()

    other = local_pachd_factory()
    put_files(other.client(), repo, {"/a.txt": b"theirs"})
    second = make_manager(data_dir=tmp_path / "data", client=connect(other.address, rpc_timeout=5))
    second.restore()
    listing = state(second, "w")
    assert listing["state"] == "pending" and "were staged on cluster" in listing["error"], listing
    with pytest.raises(Exception) as refused:
        second.commit("w", recovered=True)
    assert refused.value.status == 409
    assert file_at(other.client(), repo, "master", "/a.txt") == b"theirs"
    second.stop()

    third = make_manager(data_dir=tmp_path / "data")  # back on the cluster they were staged on
    third.restore()
    assert state(third, "w")["state"] == "mounted"
    third.unmount(["w"])  # commits first
    assert file_at(client, repo, "master", "/a.txt") == b"changed here"


def test_restore_waits_for_an_unreachable_cluster(make_manager, tmp_path, pachd, client, unique_name):
    repo, deleted = unique_name(), unique_name()
    put_files(client, repo, {"/a": b"a"})
    put_files(client, deleted, {"/a": b"a"})
    ws = Workspace(tmp_path / "data" / "workspace.json")
    ws.save([{"name": "one", "project": "default", "repo": repo, "branch": "master", "commit": None,
              "paths": ["/"], "mode": "ro"},
             {"name": "two", "project": "default", "repo": deleted, "branch": "master", "commit": None,
              "paths": ["/"], "mode": "ro"}])
    before = ws.path.read_text()
    mgr = make_manager(data_dir=tmp_path / "data", client=None)
    mgr.restore()
    assert mgr.mounted() == []
    assert ws.path.read_text() == before  # not overwritten with an empty set
    client.pfs.delete_repo(repo=repo_msg(deleted), force=True)
    mgr.set_client(connect(pachd.address, rpc_timeout=5))
    wait_for(lambda: state(mgr, "one"), 30, what="workspace restored")
    assert (mgr.mount_dir / "one" / "a").read_bytes() == b"a"
    wait_for(lambda: [e["name"] for e in ws.load()] == ["one"], 30, what="workspace without the deleted repo")
    assert state(mgr, "two") is None


def test_workspace_file_is_atomic_and_tolerant(tmp_path):
    ws = Workspace(tmp_path / "ws.json")
    assert ws.load() == []
    ws.path.write_text("{not json")
    assert ws.load() == []
    ws.save([{"name": "a", "repo": "r", "mode": "ro", "extra": 1}])
    assert json.loads(ws.path.read_text()) == {"mounts": [
        {"name": "a", "project": None, "repo": "r", "branch": None, "commit": None, "paths": None, "mode": "ro"}]}
    assert not list(tmp_path.glob("*.tmp"))


def test_staging_without_a_mount_record_is_set_aside_not_uploaded(make_manager, tmp_path, client, unique_name):
    repo = unique_name()
    put_files(client, repo, {"/a": b"a"})
    stray = tmp_path / "data" / "staging" / "w"
    stray.mkdir(parents=True)
    (stray / "mystery").write_bytes(b"?")
    mgr = make_manager(data_dir=tmp_path / "data")
    assert mgr.mounted() == []
    aside = list((tmp_path / "data" / "orphaned-staging").iterdir())
    assert len(aside) == 1 and (aside[0] / "mystery").read_bytes() == b"?"
    mgr.mount([MountRequest(name="w", repo=repo, mode="rw")])
    assert state(mgr, "w")["pending_changes"] == 0


def test_restore_retries_until_the_cluster_comes_back(make_manager, local_pachd_factory, tmp_path):
    """The client is set but pachd is down at restore time; no set_client call comes later."""
    server = local_pachd_factory()
    put_files(server.client(), "comeback", {"/a": b"back"})
    server.stop()
    Workspace(tmp_path / "data" / "workspace.json").save([{"name": "cb", "repo": "comeback", "mode": "ro"}])
    mgr = make_manager(data_dir=tmp_path / "data", client=connect(server.address, rpc_timeout=2))
    mgr.restore()
    assert mgr.mounted() == []
    assert [e["name"] for e in mgr.restorer.workspace.load()] == ["cb"]
    local_pachd_factory(port=server.port, data_dir=server.data_dir)
    wait_for(lambda: state(mgr, "cb"), 60, what="restore after the cluster came back")
    assert (mgr.mount_dir / "cb" / "a").read_bytes() == b"back"


def test_a_restore_waiting_for_the_cluster_says_so_once_per_reason(tmp_path, caplog):
    """It retries every few seconds for as long as the cluster is away: the log says why once, not
    at every retry (a day away was ~29,000 lines)."""
    import logging

    from pachtray.mount.workspace import Restorer
    from pachtray.pfs.errors import ClusterUnreachable

    ws = Workspace(tmp_path / "ws.json")
    ws.save([{"name": "a", "repo": "r", "mode": "ro"}])
    reasons = iter(["connection refused"] * 5 + ["timed out"] * 3)

    def mount(_requests):
        raise ClusterUnreachable(f"cannot list default/r@master: {next(reasons)}")
    restorer = Restorer(ws, mount, lambda: True, lambda: [])
    restorer._unrestored = ws.load()
    with caplog.at_level(logging.INFO, logger="pachtray.mount.workspace"):
        for _ in range(8):
            assert restorer._try()  # still waiting
    said = [r.getMessage() for r in caplog.records if "waits for the cluster" in r.getMessage()]
    assert len(said) == 2 and "connection refused" in said[0] and "timed out" in said[1], said
