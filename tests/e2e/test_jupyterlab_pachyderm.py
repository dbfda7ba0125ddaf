"""End-to-end: the unmodified jupyterlab-pachyderm 2.8.x server extension against our daemon.

A real `jupyter server` from .venv-jlab (scripts/jlab-venv.sh) loads the extension; the tests
call its /pachyderm/v2/* routes the way its frontend does, and read mounted files through its
file browser route (/pachyderm/v2/pfs/..., the Jupyter contents API rooted at PFS_MOUNT_DIR).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
from pachyderm_sdk.api import pfs

from conftest import ROOT, force_unmount, wait_for
from jlab_support import JupyterServer, seeded  # noqa: F401 - fixture
from netns_run import Forwarder

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def jupyter(jlab_venv, tmp_path):
    """Starts Jupyter servers with the extension; stops them (and anything they spawned) after."""
    started: list[JupyterServer] = []

    def make(env: dict[str, str], netns_forward: tuple[int, str] | None = None) -> JupyterServer:
        server = JupyterServer(tmp_path / f"jl{len(started)}", env, netns_forward).start()
        started.append(server)
        try:
            wait_for(server.ready_or_exited, 90, interval=0.2, what="jupyter server with jupyterlab-pachyderm")
        except TimeoutError:
            raise RuntimeError(f"jupyter server did not start: {server.log_tail()}")
        if server.proc.poll() is not None:
            raise RuntimeError(f"jupyter server exited with {server.proc.returncode}: {server.log_tail()}")
        return server

    yield make
    for server in started:
        spawned = descendants(server.proc.pid)
        autostarted = any(b"mount-server" in cmdline(pid) for pid in spawned)
        server.stop()
        for pid in spawned:
            terminate_pid(pid)
        if autostarted and os.path.ismount(server.env["PFS_MOUNT_DIR"]):  # the mount-server's, now stopped
            force_unmount(server.env["PFS_MOUNT_DIR"])


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def terminate_pid(pid: int) -> None:
    """SIGTERM a process this test started indirectly, SIGKILL it if it lingers."""
    try:
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not Path(f"/proc/{pid}").exists() or "Z" in stat_state(pid), 30, what=f"pid {pid} to exit")
    except ProcessLookupError:
        pass
    except TimeoutError:
        os.kill(pid, signal.SIGKILL)


def stat_state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def netns_available() -> bool:
    return subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode == 0


def frontend_mount_body(repo: str, branch: str = "master", mode: str = "ro") -> dict:
    """What the 2.8 frontend's Mount button sends."""
    return {"mounts": [{"name": f"default_{repo}", "repo": repo, "branch": branch, "project": "default", "mode": mode}]}


def listing(jl: JupyterServer, path: str) -> dict[str, str]:
    """Names and types in a folder of the extension's file browser."""
    resp = jl.ext("GET", f"pfs/{path}?content=1".replace("//", "/"))
    assert resp.status == 200, resp
    model = resp.json()
    assert model["type"] == "directory", model
    return {item["name"]: item["type"] for item in model["content"]}


def read_text(jl: JupyterServer, path: str) -> str:
    resp = jl.ext("GET", f"pfs/{path}?content=1&type=file&format=text")
    assert resp.status == 200, resp
    return resp.json()["content"]


def browse_mount_read_unmount(jl: JupyterServer, repo: str, pachd_port: int) -> None:
    """The user's path through the extension: config, repo list, Mount, file browser, Unmount."""
    assert jl.ext("GET", "health").json()["status"] == "running"
    config = jl.ext("GET", "config").json()
    assert config["cluster_status"] == "AUTH_DISABLED", config
    assert config["pachd_address"].endswith(f":{pachd_port}"), config

    repos = {(r["project"], r["repo"]): r for r in jl.ext("GET", "repos").json()}
    assert repos[("default", repo)]["branches"] == ["master"]
    assert "default" in {p["project"]["name"] for p in jl.ext("GET", "projects").json()}

    name = f"default_{repo}"
    resp = jl.ext("PUT", "_mount", frontend_mount_body(repo))
    assert resp.status == 200, resp
    mounted = {m["name"]: m for m in resp.json()["mounted"]}
    assert mounted[name]["repo"] == repo and mounted[name]["mode"] == "ro"
    mounts = jl.ext("GET", "mounts").json()
    assert [m["state"] for m in mounts["mounted"] if m["name"] == name] == ["mounted"], mounts
    assert repo in {r["repo"] for r in mounts["unmounted"]}

    assert name in listing(jl, "")
    assert listing(jl, name) == {"a.txt": "file", "dir": "directory"}
    assert listing(jl, f"{name}/dir") == {"b.txt": "file"}
    assert read_text(jl, f"{name}/a.txt") == "hello from pachyderm\n"
    assert read_text(jl, f"{name}/dir/b.txt") == "bee\n"

    resp = jl.ext("PUT", "_unmount", {"mounts": [name]})
    assert resp.status == 200, resp
    assert name not in {m["name"] for m in resp.json()["mounted"]}
    wait_for(lambda: name not in listing(jl, ""), 30, what="unmounted folder gone from the file browser")


def test_socket_browse_and_mount(daemon_factory, pachd, jupyter, seeded):
    """DEFAULT_SCHEMA=http_unix (the extension's default): pycurl over our daemon's unix socket."""
    d = daemon_factory(pachd.address)
    jl = jupyter({"PFS_MOUNT_DIR": str(d.mount_dir), "DEFAULT_SCHEMA": "http_unix", "PFS_SOCK_PATH": d.sock_path})
    browse_mount_read_unmount(jl, seeded, pachd.port)

    bad = jl.ext("PUT", "_mount", {"mounts": [{"name": "x", "repo": seeded, "mode": "sideways"}]})
    assert bad.status == 400, bad  # our 400 passes through the extension unchanged

    # The config panel's "Update" (the extension answers 500 for any failure of PUT config).
    resp = jl.ext("PUT", "config", {"pachd_address": pachd.address})
    assert resp.status == 200, resp
    assert resp.json()["cluster_status"] == "AUTH_DISABLED"
    assert jl.ext("PUT", "config", {"pachd_address": "not a url::"}).status == 500
    assert jl.ext("GET", "config").json()["pachd_address"].endswith(f":{pachd.port}")


def test_socket_datums_and_rw(daemon_factory, pachd, jupyter, seeded, client):
    """Datum mode as the frontend's Test panel drives it, then a read-write mount committed on unmount."""
    d = daemon_factory(pachd.address)
    jl = jupyter({"PFS_MOUNT_DIR": str(d.mount_dir), "DEFAULT_SCHEMA": "http_unix", "PFS_SOCK_PATH": d.sock_path})
    input_name = f"default_{seeded}"

    resp = jl.ext("PUT", "datums/_mount", {"input": {"pfs": {"repo": seeded, "glob": "/*"}}})
    assert resp.status == 200, resp
    assert resp.json()["num_datums"] == 2 and resp.json()["idx"] == 0, resp
    state = jl.ext("GET", "datums").json()
    assert state["num_datums"] == 2 and state["input"]["pfs"]["name"] == input_name, state
    assert {"out", input_name} <= set(listing(jl, ""))
    seen = set(listing(jl, input_name))
    assert jl.ext("PUT", "datums/_next").json()["idx"] == 1
    seen |= set(listing(jl, input_name))
    assert seen == {"a.txt", "dir"}  # each datum shows its own glob match
    assert jl.ext("PUT", "datums/_prev").json()["idx"] == 0
    assert jl.ext("PUT", "datums/_prev").status == 400  # already at first datum
    assert jl.ext("PUT", "_unmount_all").status == 200

    name = f"default_{seeded}"
    resp = jl.ext("PUT", "_mount", frontend_mount_body(seeded, mode="rw"))
    assert resp.status == 200, resp
    (d.mount_dir / name / "from-notebook.txt").write_text("written in jupyter\n")
    assert jl.ext("POST", "_commit", {"mount": name}).status == 200  # a no-op in the 2.8 client
    resp = jl.ext("PUT", "_unmount", {"mounts": [name]})
    assert resp.status == 200, resp
    written = client.pfs.pfs_file(pfs.File.from_uri(f"{seeded}@master:/from-notebook.txt")).read()
    assert written == b"written in jupyter\n"


def test_tcp_browse_and_mount(daemon_factory, pachd, jupyter, seeded, tmp_path):
    """DEFAULT_SCHEMA=http: the extension hard-codes http://localhost:9002. Jupyter runs in its own
    network namespace whose localhost:9002 leads to our daemon's TCP port on the host."""
    if not netns_available():
        pytest.skip("`unshare --net` is not permitted here, and tests may not take the host's port 9002")
    d = daemon_factory(pachd.address)
    bridge = str(tmp_path / "tcp-bridge.sock")
    forwarder = Forwarder(("unix", bridge), ("tcp", "127.0.0.1", d.port)).start()
    try:
        jl = jupyter({"PFS_MOUNT_DIR": str(d.mount_dir), "DEFAULT_SCHEMA": "http",
                      "PFS_SOCK_PATH": str(tmp_path / "unused.sock")}, netns_forward=(9002, bridge))
        browse_mount_read_unmount(jl, seeded, pachd.port)
    finally:
        forwarder.close()


def test_extension_autostarts_mount_server(pachd, jupyter, seeded, tmp_path):
    """With nothing answering, the extension runs `mount-server --mount-dir M --sock-path S` from PATH,
    which must come up connected to the active pachctl context (in a private network namespace, so
    its default TCP port 9002 is its own; the context's pachd port is bridged to the host's pachd)."""
    if not netns_available():
        pytest.skip("`unshare --net` is not permitted here, and mount-server's default port 9002 may be taken")
    mount_dir = tmp_path / "pfs"
    mount_dir.mkdir()
    bridge = str(tmp_path / "pachd-bridge.sock")
    forwarder = Forwarder(("unix", bridge), ("tcp", "127.0.0.1", pachd.port)).start()
    config = tmp_path / "pachctl.json"
    config.write_text(json.dumps({"v2": {"active_context": "e2e", "contexts": {
        "e2e": {"pachd_address": f"grpc://127.0.0.1:{pachd.port}"}}}}))
    try:
        jl = jupyter({"PFS_MOUNT_DIR": str(mount_dir), "DEFAULT_SCHEMA": "http_unix",
                      "PFS_SOCK_PATH": str(tmp_path / "auto.sock"), "PACH_CONFIG": str(config),
                      "MOUNT_SERVER_LOG_FILE": str(tmp_path / "mount-server.log"),
                      "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}"},
                     netns_forward=(pachd.port, bridge))
        repos = jl.ext("GET", "repos")
        assert repos.status == 200, (repos, jl.log_tail())
        assert seeded in {r["repo"] for r in repos.json()}
        assert jl.ext("PUT", "_mount", frontend_mount_body(seeded)).status == 200
        assert read_text(jl, f"default_{seeded}/a.txt") == "hello from pachyderm\n"
    finally:
        forwarder.close()

