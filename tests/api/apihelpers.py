"""HTTP over the daemon's unix socket (no new dependencies) and small shared helpers for API tests."""

from __future__ import annotations

import http.client
import json
import socket
from dataclasses import dataclass

import pytest
from clusterhelpers import isolated_env
from conftest import Daemon


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over AF_UNIX; the Host header is `localhost` as curl's --unix-socket sends it."""

    def __init__(self, path: str, timeout: float = 60):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


@dataclass
class Reply:
    status: int
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


def unix_request(path: str, method: str, url: str, body=None, headers: dict | None = None) -> Reply:
    conn = UnixHTTPConnection(path)
    try:
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        conn.request(method, url, body=data, headers=headers or {})
        resp = conn.getresponse()
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


def tcp_request(port: int, method: str, url: str, body=None, headers: dict | None = None,
                host: str = "127.0.0.1") -> Reply:
    """Raw http.client request, so tests can send any Host header and bodies requests would fix up."""
    conn = http.client.HTTPConnection(host, port, timeout=60)
    try:
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        hdrs = dict(headers or {})
        conn.putrequest(method, url, skip_host="Host" in hdrs, skip_accept_encoding=True)
        for k, v in hdrs.items():
            conn.putheader(k, v)
        if data is not None:
            conn.putheader("Content-Length", str(len(data)))
        conn.endheaders(data)
        resp = conn.getresponse()
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


SHARED_ORIGINS = ["http://localhost:8888", "http://127.0.0.1:8888", "http://notebooks.internal:8000"]


@pytest.fixture(scope="module")
def shared_daemon(pachd, tmp_path_factory):
    """One daemon per test module (starting one per test costs seconds); tests that mount clean up
    after themselves. Module scope: a fixture imported into several modules is one per module anyway.

    Its settings allow one origin beyond the defaults, so the allow-list is shown to be configurable.

    It gets its own pachctl config, XDG dirs and null keyring explicitly: module fixtures are
    set up before the per-test `_isolate` environment.
    """
    tmp = tmp_path_factory.mktemp("shared-daemon")
    (tmp / "config" / "pachtray").mkdir(parents=True)
    (tmp / "config" / "pachtray" / "settings.json").write_text(json.dumps({"allowed_origins": SHARED_ORIGINS}))
    d = Daemon(tmp, pachd.address, env=isolated_env(tmp)).start()
    yield d
    d.stop()


def new_repo(client, name: str):
    """A user repo `name` in the default project (pachyderm_sdk's Repo)."""
    from pachyderm_sdk.api import pfs

    repo = pfs.Repo(name=name, type="user", project=pfs.Project(name="default"))
    client.pfs.create_repo(repo=repo)
    return repo


def commit_files(client, repo, files: dict[str, bytes], branch: str = "master") -> str:
    """One commit of `files` (path -> bytes) on `branch`; its id."""
    from pachyderm_sdk.api import pfs

    with client.pfs.commit(branch=pfs.Branch(repo=repo, name=branch)) as c:
        for path, data in files.items():
            c.put_file_from_bytes(path=path, data=data)
    return c.id
