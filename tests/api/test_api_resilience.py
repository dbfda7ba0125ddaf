"""Nothing lost, fails fast, recovers: a killed daemon, a cluster that goes away, busy mounts, restore."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import time

import pytest
from apihelpers import unix_request
from conftest import wait_for
from pachyderm_sdk.api import pfs

from pachtray import config

# The daemon's deadline per call (or between two messages of a stream) is 10 s.
FIRST_CALL_EIO_WITHIN = 20
FIRST_LISTING_EIO_WITHIN = 15  # the daemon's 10 s deadline, once


def _repo_with(client, name: str, files: dict[str, bytes]) -> pfs.Repo:
    repo = pfs.Repo(name=name, type="user", project=pfs.Project(name="default"))
    client.pfs.create_repo(repo=repo)
    with client.pfs.commit(branch=pfs.Branch(repo=repo, name="master")) as c:
        for path, data in files.items():
            c.put_file_from_bytes(path=path, data=data)
    return repo


def _files(client, repo: pfs.Repo) -> dict[str, bytes]:
    head = pfs.Commit(branch=pfs.Branch(repo=repo, name="master"))
    return {fi.file.path: b"".join(m.value for m in client.pfs.get_file(file=fi.file))
            for fi in client.pfs.walk_file(file=pfs.File(commit=head, path="/")) if fi.file_type == pfs.FileType.FILE}


def _mount_state(d, name: str) -> dict | None:
    """Pachtray's view of one mount (recovered changes included)."""
    return next((m for m in d.get("/pachtray/v1/mounts").json()["mounted"] if m["name"] == name), None)


def _connection(d) -> str:
    return d.get("/pachtray/v1/info").json()["connection"]


def _kill_during_writes(d, names: list[str], complete: int) -> None:
    """Write ``complete`` whole files into each mount, start one more and kill -9 the daemon mid-write."""
    for name in names:
        for i in range(complete):
            (d.mount_dir / name / f"f{i}.txt").write_bytes(f"content {i}".encode() * 100)
    partial = open(d.mount_dir / names[-1] / "partial.bin", "wb")
    partial.write(b"x" * 65536)
    partial.flush()
    d.kill()
    try:
        partial.close()
    except OSError:
        pass  # the file system went away with the daemon


def test_killed_daemon_leaves_pending_changes_that_can_be_committed_or_discarded(
        daemon_factory, pachd, client, unique_name):
    keep, drop = unique_name("keep"), unique_name("drop")
    repos = {n: _repo_with(client, n, {"/base.txt": b"base"}) for n in (keep, drop)}
    d = daemon_factory(pachd.address)
    body = {"mounts": [{"name": n, "repo": n, "mode": "rw"} for n in (keep, drop)]}
    assert d.put("/_mount", json=body).status_code == 200
    _kill_during_writes(d, [keep, drop], complete=3)

    # Same data dir, mount dir and socket: the stale FUSE mount and socket are cleaned at start.
    # Restore off: otherwise the restored rw mounts take the changes back (state `mounted`).
    config.Settings(restore_mounts=False).save()
    again = daemon_factory(pachd.address, tmp=d.tmp)
    assert unix_request(again.sock_path, "GET", "/health").status == 200
    kept = wait_for(lambda: _mount_state(again, keep), 30, what="recovered mount")
    dropped = wait_for(lambda: _mount_state(again, drop), 30, what="recovered mount")
    assert kept["state"] == dropped["state"] == "pending"
    assert kept["pending_changes"] == 3 and "3" in kept["status"]
    assert dropped["pending_changes"] in (3, 4)  # the interrupted file may or may not have been staged

    assert again.get("/mounts").json()["mounted"] == []  # not mounted: GET /mounts is the reference's
    assert again.put("/pachtray/v1/_commit", json={"mount": keep}).status_code == 200
    assert again.put("/pachtray/v1/_discard", json={"mount": drop}).status_code == 200
    expected = {f"/f{i}.txt": f"content {i}".encode() * 100 for i in range(3)} | {"/base.txt": b"base"}
    assert _files(client, repos[keep]) == expected
    assert _files(client, repos[drop]) == {"/base.txt": b"base"}
    for name in (keep, drop):
        after = _mount_state(again, name)
        assert after is None or after["pending_changes"] == 0


def test_cluster_outage_fails_fast_then_recovers_without_remount(daemon_factory, local_pachd_factory, unique_name):
    server = local_pachd_factory()
    name = unique_name("outage")
    _repo_with(server.client(), name, {"/cached.txt": b"seen before", "/later.txt": b"read after restart",
                                       "/sub/x.txt": b"x"})
    d = daemon_factory(server.address)
    assert d.put("/_mount", json={"mounts": [{"name": name, "repo": name}]}).status_code == 200
    root = d.mount_dir / name
    assert (root / "cached.txt").read_bytes() == b"seen before"

    server.stop()
    with pytest.raises(OSError) as failed:
        (root / "later.txt").read_bytes()
    assert failed.value.errno == errno.EIO
    with pytest.raises(OSError):
        os.listdir(root / "sub")
    wait_for(lambda: _connection(d) == "disconnected", 30, what="connection shown as disconnected")
    assert (root / "cached.txt").read_bytes() == b"seen before"

    local_pachd_factory(port=server.port, data_dir=server.data_dir)
    wait_for(lambda: _connection(d) == "connected", 60, what="reconnected")
    assert wait_for(lambda: (root / "later.txt").read_bytes(), 60, what="read after restart") == b"read after restart"
    assert os.listdir(root / "sub") == ["x.txt"]


def test_a_hung_cluster_gives_eio_in_seconds_not_a_hung_process(daemon_factory, local_pachd_factory, unique_name):
    """A pachd that accepts connections but never answers (here: stopped with SIGSTOP, as a
    wedged server or a half-dead VPN looks) must not hang `cat` or `ls` in the mount: the first
    call gets EIO when the daemon's per-call deadline passes; once two health checks in a row have
    failed, anything not cached is EIO at once; cached files keep reading throughout."""
    server = local_pachd_factory()
    name = unique_name("hung")
    _repo_with(server.client(), name, {"/cached.txt": b"seen before", "/later.txt": b"never read",
                                       "/sub/x.txt": b"x", "/other/y.txt": b"y", "/first/z.txt": b"z"})
    d = daemon_factory(server.address)
    assert d.put("/_mount", json={"mounts": [{"name": name, "repo": name}]}).status_code == 200
    root = d.mount_dir / name
    assert (root / "cached.txt").read_bytes() == b"seen before"
    assert sorted(os.listdir(root)) == ["cached.txt", "first", "later.txt", "other", "sub"]
    os.kill(server.proc.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(OSError) as failed:  # one deadline: no second try once the health checks know
            os.listdir(root / "first")
        assert failed.value.errno == errno.EIO
        assert time.monotonic() - started < FIRST_LISTING_EIO_WITHIN
        started = time.monotonic()
        with pytest.raises(OSError) as failed:
            (root / "later.txt").read_bytes()
        assert failed.value.errno == errno.EIO
        assert time.monotonic() - started < FIRST_CALL_EIO_WITHIN
        wait_for(lambda: _connection(d) == "disconnected", 30, what="disconnected")
        started = time.monotonic()  # the mounts are local state: listed at once, without repos
        listing = d.get("/mounts")
        assert listing.status_code == 200 and time.monotonic() - started < 5  # (it took 10-20 s when it waited)
        assert [m["name"] for m in listing.json()["mounted"]] == [name] and listing.json()["unmounted"] == []

        def fails_at_once() -> bool:
            started = time.monotonic()
            with pytest.raises(OSError) as failed:
                os.listdir(root / "sub")
            assert failed.value.errno == errno.EIO
            return time.monotonic() - started < 1.0

        wait_for(fails_at_once, 30, interval=0.5, what="an uncached listing to fail at once")
        assert (root / "cached.txt").read_bytes() == b"seen before"
        assert d.get("/health").ok
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)
    assert wait_for(lambda: (root / "later.txt").read_bytes(), 60, what="read after the cluster answers") == b"never read"
    assert os.listdir(root / "other") == ["y.txt"]


def test_a_mount_in_use_is_unmounted_as_the_reference_does_unless_a_file_is_being_written(
        daemon_factory, pachd, client, unique_name, tmp_path):
    """Pachyderm 2.8's mount-server removes a mount whatever uses it (jupyterlab-pachyderm unmounts
    everything to show datums, while a kernel may have its cwd in a mount). Pachtray does the same,
    except for an rw mount with a file open for writing: 409 names the writer, and the bytes it
    writes before closing are in the commit the unmount makes."""
    name = unique_name("busy")
    _repo_with(client, name, {"/f.txt": b"f"})
    d = daemon_factory(pachd.address)
    assert d.put("/_mount", json={"mounts": [{"name": name, "repo": name},
                                             {"name": name + "_rw", "repo": name, "mode": "rw"}]}).status_code == 200
    reader = open(d.mount_dir / name / "f.txt", "rb")
    sleeper = subprocess.Popen(["sleep", "60"], cwd=d.mount_dir / name)
    writer = open(d.mount_dir / (name + "_rw") / "new.txt", "wb")
    try:
        reply = d.put("/_unmount", json={"mounts": [name]})
        assert reply.status_code == 200, reply.text
        assert not (d.mount_dir / name).exists()
        reply = d.put("/_unmount", json={"mounts": [name + "_rw"]})
        assert reply.status_code == 409, reply.text
        assert "open for writing by python" in reply.text and str(os.getpid()) in reply.text
        assert str(sleeper.pid) not in reply.text
        writer.write(b"written while busy")
    finally:
        writer.close()
        reader.close()
        sleeper.kill()
        sleeper.wait()
    assert d.put("/_unmount", json={"mounts": [name + "_rw"]}).status_code == 200
    assert d.get("/mounts").json()["mounted"] == []
    assert _files(client, pfs.Repo(name=name, type="user")) == {"/f.txt": b"f", "/new.txt": b"written while busy"}


def test_mounts_are_restored_at_the_next_start_only_when_enabled(daemon_factory, pachd, client, unique_name):
    settings = os.path.join(os.environ["XDG_CONFIG_HOME"], "pachtray", "settings.json")
    os.makedirs(os.path.dirname(settings), exist_ok=True)
    name = unique_name("restore")
    _repo_with(client, name, {"/r.txt": b"r"})
    d = daemon_factory(pachd.address)
    assert d.put("/_mount", json={"mounts": [{"name": name, "repo": name}]}).status_code == 200
    d.stop()

    with open(settings, "w") as f:
        json.dump({"restore_mounts": False}, f)
    off = daemon_factory(pachd.address, tmp=d.tmp)
    assert _mount_state(off, name) is None and not (off.mount_dir / name).exists()
    off.stop()

    with open(settings, "w") as f:
        json.dump({"restore_mounts": True}, f)
    on = daemon_factory(pachd.address, tmp=d.tmp)
    wait_for(lambda: (_mount_state(on, name) or {}).get("state") == "mounted", 30, what="restored mount")
    assert (on.mount_dir / name / "r.txt").read_bytes() == b"r"
