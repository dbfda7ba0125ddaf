"""Helpers for the jupyterlab-pachyderm end-to-end tests: HTTP over unix sockets, a byte
forwarder between socket addresses, and a Jupyter server with the extension in a subprocess.

jupyterlab-pachyderm 2.8 in `DEFAULT_SCHEMA=http` mode always talks to localhost:9002, a port
tests must not take on the host. So that variant runs Jupyter in its own network namespace
(`unshare -n`, see netns_run.py), where 9002 is private and is forwarded, through a unix socket
on the shared file system, to the daemon's real TCP port on the host.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import stop_process  # tests/conftest.py (pytest puts tests/ on sys.path)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
JLAB_VENV = Path(os.environ.get("JLAB_VENV", ROOT / ".venv-jlab"))


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over an AF_UNIX stream socket (Host header stays `localhost`)."""

    def __init__(self, path: str, timeout: float = 60):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


class Response:
    def __init__(self, status: int, reason: str, body: bytes):
        self.status, self.reason, self.body = status, reason, body

    def json(self):
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"<{self.status} {self.reason}: {self.body[:300]!r}>"


def unix_request(path: str, method: str, url: str, body=None, headers: dict | None = None,
                 timeout: float = 60) -> Response:
    conn = UnixHTTPConnection(path, timeout)
    try:
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        conn.request(method, url, body=data, headers=headers or {})
        resp = conn.getresponse()
        return Response(resp.status, resp.reason, resp.read())
    finally:
        conn.close()


class JupyterServer:
    """`jupyter server` from .venv-jlab with jupyterlab-pachyderm enabled, listening on a unix socket.

    `env` carries the extension's settings (PFS_MOUNT_DIR, DEFAULT_SCHEMA, PFS_SOCK_PATH);
    `netns_forward` = (port, unix_path) runs it in a private network namespace with that
    port on localhost forwarded to the unix socket.
    """

    def __init__(self, tmp: Path, env: dict[str, str], netns_forward: tuple[int, str] | None = None):
        self.tmp = Path(tmp)
        self.sock = str(self.tmp / "jl.sock")
        self.token = secrets.token_hex(16)
        self.log = self.tmp / "jupyter.log"
        self.env = env
        self.netns_forward = netns_forward
        self.proc: subprocess.Popen | None = None

    def command(self) -> list[str]:
        cmd = [str(JLAB_VENV / "bin" / "jupyter"), "server", "--no-browser", f"--ServerApp.sock={self.sock}",
               f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.tmp / 'notebooks'}",
               "--allow-root"]  # CI runs as root; Jupyter refuses that without the flag
        if self.netns_forward:
            port, target = self.netns_forward
            cmd = [shutil.which("unshare") or "unshare", "--net", sys.executable, str(HERE / "netns_run.py"),
                   "--forward", f"{port}={target}", "--", *cmd]
        return cmd

    def start(self) -> "JupyterServer":
        home = self.tmp / "home"
        for d in (home, self.tmp / "notebooks"):
            d.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, HOME=str(home), JUPYTER_CONFIG_DIR=str(home / ".jupyter"),
                   JUPYTER_DATA_DIR=str(home / "jupyter-data"), JUPYTER_RUNTIME_DIR=str(home / "jupyter-runtime"),
                   PACHYDERM_EXT_DEBUG="true", **self.env)
        self.proc = subprocess.Popen(self.command(), stdout=open(self.log, "ab"), stderr=subprocess.STDOUT, env=env)
        return self

    def ready_or_exited(self) -> bool:
        if self.proc.poll() is not None:
            return True
        return os.path.exists(self.sock) and self.request("GET", "/api/status").status == 200

    def request(self, method: str, url: str, body=None, timeout: float = 90) -> Response:
        return unix_request(self.sock, method, url, body, {"Authorization": f"token {self.token}"}, timeout)

    def ext(self, method: str, endpoint: str, body=None) -> Response:
        """A call of the extension's REST API as the frontend makes it (/pachyderm/v2/<endpoint>)."""
        return self.request(method, f"/pachyderm/v2/{endpoint}", body)

    def log_tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc:
            stop_process(self.proc)


@pytest.fixture
def seeded(client, unique_name):
    """A repo whose master holds a.txt and dir/b.txt (test modules import this fixture)."""
    from pachyderm_sdk.api import pfs

    repo = unique_name("jl")
    client.pfs.create_repo(repo=pfs.Repo(name=repo))
    with client.pfs.commit(branch=pfs.Branch.from_uri(f"{repo}@master")) as commit:
        commit.put_file_from_bytes(path="/a.txt", data=b"hello from pachyderm\n")
        commit.put_file_from_bytes(path="/dir/b.txt", data=b"bee\n")
    commit.wait()
    return repo
