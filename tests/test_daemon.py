"""The daemon process: embedded local server as a child, clean stop on signals, token handling."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest
import requests
from conftest import PY, free_port, grpc_serving, stale_fuse_mount, stop_process, wait_for
from pachyderm_sdk import Client
from pachyderm_sdk.api import pfs

from pachtray import daemon


def test_without_a_cluster_the_daemon_runs_the_local_server_and_stops_it_on_sigint(daemon_factory, unique_name):
    port = free_port()
    d = daemon_factory(None, extra=["--local-pachd-port", str(port)])
    cfg = d.get("/config").json()
    assert cfg == {"pachd_address": f"grpc://127.0.0.1:{port}", "cluster_status": "AUTH_DISABLED"}
    assert d.get("/pachtray/v1/info").json()["local"] is True
    assert (d.data_dir / "local-pachd").is_dir()

    name = unique_name("local")
    Client(host="127.0.0.1", port=port).pfs.create_repo(repo=pfs.Repo(name=name, type="user"))
    assert d.put("/_mount", json={"mounts": [{"name": name, "repo": name, "mode": "rw"}]}).status_code == 200
    (d.mount_dir / name / "draft.txt").write_bytes(b"not committed")

    d.proc.send_signal(signal.SIGINT)
    assert d.proc.wait(60) == 0
    assert not os.path.ismount(d.mount_dir)
    assert not grpc_serving_quietly(port)

    # Nothing was committed silently: the change is still staged at the next start.
    again = daemon_factory(None, extra=["--local-pachd-port", str(port)], tmp=d.tmp)
    state = wait_for(lambda: next((m for m in again.get("/pachtray/v1/mounts").json()["mounted"]
                                   if m["name"] == name), None), 30, what="recovered mount")
    assert state["state"] == "pending" and state["pending_changes"] == 1
    assert again.get("/config").status_code == 200  # waits for the embedded server to be back
    heads = [b.head.id for b in Client(host="127.0.0.1", port=port).pfs.list_branch(repo=pfs.Repo(name=name))]
    assert heads == []  # no branch was created: nothing was ever committed


def grpc_serving_quietly(port: int) -> bool:
    try:
        return grpc_serving(port)
    except Exception:  # noqa: BLE001 - nothing listening is the expected answer
        return False


def test_parse_bool_accepts_go_style_values():
    assert daemon.parse_bool("true") and daemon.parse_bool("1") and daemon.parse_bool("T")
    assert not daemon.parse_bool("false") and not daemon.parse_bool("0")
    with pytest.raises(Exception, match="expected true or false"):
        daemon.parse_bool("maybe")


def test_server_cas_must_be_base64():
    assert daemon.decode_server_cas("") is None
    assert daemon.decode_server_cas("UEVN") == b"PEM"
    with pytest.raises(Exception, match="could not decode server CA certs"):
        daemon.decode_server_cas("not base64!")


def test_a_second_daemon_on_the_same_data_dir_is_refused(daemon, pachd):
    cmd = [PY, "-m", "pachtray", "daemon", "--mount-dir", str(daemon.tmp / "pfs-2"), "--data-dir", str(daemon.data_dir),
           "--port", str(free_port()), "--sock-path", str(daemon.tmp / "other.sock"), "--pachd-address", pachd.address]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert f"the data dir {daemon.data_dir} is in use by another Pachtray daemon (pid {daemon.proc.pid})" in proc.stderr


def _children(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue  # exited meanwhile
            if ppid == pid:
                kids.append(int(entry))
    return kids


def test_the_embedded_server_is_started_again_when_it_dies(daemon_factory):
    port = free_port()
    d = daemon_factory(None, extra=["--local-pachd-port", str(port)])
    assert d.get("/config").status_code == 200  # answers once the start-up connection is made
    assert d.get("/pachtray/v1/info").json()["local"] is True
    (child,) = _children(d.proc.pid)
    os.kill(child, signal.SIGKILL)
    wait_for(lambda: _children(d.proc.pid) and _children(d.proc.pid) != [child], 60, what="a new local server")
    wait_for(lambda: d.get("/pachtray/v1/info").json()["connection"] == "connected", 60, what="connected again")
    assert d.get("/repos").status_code == 200


def test_a_stale_fuse_mount_at_the_mount_dir_is_cleaned_at_start(tmp_path, pachd):
    mount_dir = tmp_path / "pfs"
    daemon_proc = None
    with stale_fuse_mount(mount_dir):
        try:
            port = free_port()
            daemon_proc = subprocess.Popen(
                [PY, "-m", "pachtray", "daemon", "--mount-dir", str(mount_dir), "--data-dir", str(tmp_path / "data"),
                 "--port", str(port), "--sock-path", "", "--pachd-address", pachd.address],
                stdout=open(tmp_path / "daemon.log", "wb"), stderr=subprocess.STDOUT)
            wait_for(lambda: requests.get(f"http://127.0.0.1:{port}/mounts", timeout=5).status_code == 200, 60,
                     what="daemon with its own FUSE mount")
            assert os.listdir(mount_dir) == []  # our (empty) mount, not the dead one
        finally:
            if daemon_proc is not None:
                stop_process(daemon_proc, 60)
    assert daemon_proc.returncode == 0


def test_a_local_port_another_program_holds_is_said_plainly(daemon_factory):
    import socket

    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    try:
        port = holder.getsockname()[1]
        d = daemon_factory(None, extra=["--local-pachd-port", str(port)])
        info = wait_for(lambda: (i := d.get("/pachtray/v1/info").json())["connection_error"] and i, 90,
                        what="the embedded server's failure")
        assert info["connection_error"] == (
            f"the embedded local server cannot listen on 127.0.0.1:{port}: another program uses that port; stop "
            "it, or choose another embedded server port in Settings"), info["connection_error"]
    finally:
        holder.close()
    # what held it stopped: the daemon starts its embedded server there by itself
    info = wait_for(lambda: (i := d.get("/pachtray/v1/info").json())["connection"] == "connected" and i, 90,
                    what="the embedded server once its port is free")
    assert info["local"] is True and info["connection_error"] == ""


def test_another_server_on_the_local_port_is_never_taken_for_the_embedded_one(daemon_factory, pachd):
    """A `pachctl port-forward` to a real cluster listens on 30650 too: the daemon must not use it as
    its embedded server (Pachtray would create and delete repos there as if they were local)."""
    d = daemon_factory(None, extra=["--local-pachd-port", str(pachd.port)])
    wait_for(lambda: "another Pachyderm server answers" in d.log.read_text(errors="replace"), 60,
             what="the refusal in the daemon's log")
    info = d.get("/pachtray/v1/info").json()
    assert info["connection"] != "connected" and info["local"] is False
    assert "another Pachyderm server answers" in info["connection_error"]  # the GUI tells it once
    repos = d.get("/repos")  # what the window shows in place of the repos
    assert repos.status_code == 404 and "another Pachyderm server answers" in repos.text, repos.text
