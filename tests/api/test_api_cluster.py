"""The cluster-facing endpoints: /config, /repos, /projects, and the 400 rules for every body."""

from __future__ import annotations

import base64
import json
import os
import subprocess

import pytest

from apihelpers import shared_daemon, tcp_request, unix_request  # noqa: F401 - fixture
from conftest import PY, free_port, stop_process, wait_for
from pachyderm_sdk.api import pfs


def _make_repo(client, name: str, branches=("master",), project: str = "default") -> None:
    repo = pfs.Repo(name=name, type="user", project=pfs.Project(name=project))
    client.pfs.create_repo(repo=repo, description="made by a test")
    for b in branches:
        client.pfs.create_branch(branch=pfs.Branch(repo=repo, name=b))


def test_config_reports_the_cluster(shared_daemon, pachd):
    cfg = shared_daemon.get("/config").json()
    assert cfg == {"cluster_status": "AUTH_DISABLED", "pachd_address": pachd.address}


def test_repos_lists_every_repo_with_branches_and_access(shared_daemon, client, unique_name):
    name = unique_name("repos")
    _make_repo(client, name, branches=("master", "dev"))
    repos = shared_daemon.get("/repos").json()
    mine = [r for r in repos if r["repo"] == name]
    assert len(mine) == 1
    assert mine[0]["project"] == "default" and mine[0]["authorization"] == "off"
    assert sorted(mine[0]["branches"]) == ["dev", "master"]
    assert set(mine[0]) == {"project", "repo", "branches", "authorization"}


def test_mounts_lists_every_repo_as_unmounted(shared_daemon, client, unique_name):
    name = unique_name("unm")
    _make_repo(client, name)
    listing = shared_daemon.get("/mounts").json()
    assert set(listing) == {"mounted", "unmounted"}
    assert any(r["repo"] == name and r["branches"] == ["master"] for r in listing["unmounted"])


def test_projects_lists_project_infos(shared_daemon, client, unique_name):
    project = unique_name("proj")
    client.pfs.create_project(project=pfs.Project(name=project), description="p <&> q")
    r = shared_daemon.get("/projects")
    assert r.status_code == 200
    mine = [p for p in r.json() if p["project"]["name"] == project]
    assert mine and mine[0]["description"] == "p <&> q"
    assert b"p <&> q" in r.content  # JSON is not HTML-escaped


BAD_BODIES = [
    ("PUT", "/_mount", b"{nope", "request body is not valid JSON"),
    ("PUT", "/_mount", b"", "request body is empty"),
    ("PUT", "/_mount", b"\xff\xfe", "not UTF-8"),
    ("PUT", "/_mount", [1, 2], "request body must be a JSON object, got an array"),
    ("PUT", "/_mount", {"mounts": "a"}, '"mounts" must be a list'),
    ("PUT", "/_mount", {"mounts": [5]}, "mounts[0]: must be an object"),
    ("PUT", "/_mount", {"mounts": [{"repo": "r"}]}, "mounts[0]: no name specified"),
    ("PUT", "/_mount", {"mounts": [{"name": "a"}]}, "mounts[0]: no repo specified"),
    ("PUT", "/_mount", {"mounts": [{"name": "a", "repo": 7}]}, "'repo' must be a string"),
    ("PUT", "/_mount", {"mounts": [{"name": "a/b", "repo": "r"}]}, "must not contain '/'"),
    ("PUT", "/_mount", {"mounts": [{"name": "..", "repo": "r"}]}, "a mount name must not be '.' or '..'"),
    ("PUT", "/_mount", {"mounts": [{"name": "a\\b", "repo": "r"}]}, "a mount name must not contain '\\'"),
    ("PUT", "/_mount", {"mounts": [{"name": "a\0b", "repo": "r"}]}, "a mount name must not contain a NUL character"),
    ("PUT", "/_mount", {"mounts": [{"name": "n" * 256, "repo": "r"}]}, "must not be longer than 255 bytes (it has 256)"),
    ("PUT", "/_mount", {"mounts": [{"name": "a", "repo": "r/../x"}]}, "invalid repo name"),
    ("PUT", "/_mount", {"mounts": [{"name": "a", "repo": "r", "project": "../p"}]}, "invalid project name"),
    ("PUT", "/_mount", {"mounts": [{"name": "a", "repo": "r", "branch": "a b"}]}, "invalid branch name"),
    ("PUT", "/_mount", {"mounts": [{"name": "a", "repo": "r", "mode": "rx"}]}, "mount mode can only be 'ro' or 'rw'"),
    ("PUT", "/_mount", {"mounts": [{"name": "a", "repo": "r", "commit": "xyz"}]}, "invalid commit ID"),
    ("PUT", "/_mount", {"mounts": [{"name": "a", "repo": "r", "paths": "/x"}]}, "'paths' must be a list"),
    ("PUT", "/_mount", {"mounts": [{"name": "a", "repo": "r", "paths": ["/a/../../etc"]}]}, "must not contain '..'"),
    ("PUT", "/_mount", {"mounts": [{"name": "a", "repo": "r"}, {"name": "a", "repo": "s"}]}, "appears twice"),
    ("PUT", "/_unmount", {"mounts": "a"}, '"mounts" must be a list of mount names'),
    ("PUT", "/_unmount", {"mounts": ["../x"]}, "invalid name"),
    ("PUT", "/_commit", {}, "no mount specified"),
    ("PUT", "/_commit", {"mount": "a/b"}, "invalid name"),
    ("PUT", "/pachtray/v1/_discard", {"mount": ""}, "no name specified"),
    ("PUT", "/pachtray/v1/_discard", {"mount": "a", "paths": ["/x"]}, "discard single paths with PUT"),
    ("PUT", "/config", {"pachd_address": 5}, "'pachd_address' must be a string"),
    ("PUT", "/config", {"pachd_address": ""}, "either empty or poorly formatted cluster endpoint"),
    ("PUT", "/config", {"pachd_address": "ftp://host:1"}, "either empty or poorly formatted cluster endpoint"),
    ("PUT", "/config", {"pachd_address": "grpc://h:1", "server_cas": "%%%"}, "could not decode server CA certs"),
    ("PUT", "/datums/_mount", {"input": 3}, 'expected an object with an "input" object'),
    ("PUT", "/datums/_mount", {"input": {"pfs": {"repo": "r", "glob": "/*", "name": "a\0b"}}},
     "input name 'a\\x00b' cannot be a mount name: a mount name must not contain a NUL character"),
    ("PUT", "/datums/_mount", b'{"input": {"pfs": {"repo": "r", "glob": "/*", "name": "\\ud800"}}}',
     "cannot be a mount name: a mount name must be UTF-8 text (it has a lone surrogate)"),
    ("PUT", "/datums/_mount", {"input": {"pfs": {"repo": "r", "glob": "/*", "name": "n" * 256}}},
     "cannot be a mount name: a mount name must not be longer than 255 bytes (it has 256)"),
    ("PUT", "/auth/_login_token", {}, "no oidc state given"),
    ("PUT", "/_mount", b'{"mounts": [{"name": "a\\ud800b", "repo": "r"}]}', "must be UTF-8 text (it has a lone surrogate)"),
    ("PUT", "/_mount", b'{"mounts": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
    ("PUT", "/_unmount_all", b"{junk", "request body is not valid JSON"),
    ("PUT", "/pachtray/v1/_pin", {"pid": 1.5}, "pid must be a process id"),
    ("PUT", "/pachtray/v1/_pin", b'{"pid": 1e999}', "pid must be a process id"),
    ("PUT", "/pachtray/v1/_pin", {"pid": True}, "pid must be a process id"),
]


def test_login_on_a_cluster_without_auth_is_500(shared_daemon):
    r = shared_daemon.put("/auth/_login")
    assert r.status_code == 500 and r.text == "auth isn't activated on the cluster\n"


def test_malformed_requests_get_400_with_a_specific_message(shared_daemon):
    wrong = []
    for method, path, body, message in BAD_BODIES:
        reply = tcp_request(shared_daemon.port, method, path, body=body, headers={"Content-Type": "application/json"})
        if not (reply.status == 400 and message in reply.text and reply.text.endswith("\n")
                and reply.headers["content-type"].startswith("text/plain")):
            wrong.append(f"{method} {path} {body!r}: {reply.status} {reply.text!r} (expected 400 {message!r})")
    assert not wrong, "\n".join(wrong)


def test_put_config_unreachable_cluster_is_500_and_changes_nothing(shared_daemon, pachd):
    dead = f"grpc://127.0.0.1:{free_port()}"
    r = shared_daemon.put("/config", json={"pachd_address": dead})
    assert r.status_code == 500 and r.text == f"error creating new client: could not connect to {dead}\n"
    assert shared_daemon.get("/config").json()["pachd_address"] == pachd.address


def test_put_config_switches_cluster_and_records_the_mount_server_context(daemon, daemon_factory, local_pachd_factory,
                                                                         client, unique_name):
    other = local_pachd_factory()
    only_there, mounted_before = unique_name("other"), unique_name("before")
    _make_repo(other.client(), only_there)
    _make_repo(client, mounted_before)
    assert daemon.put("/_mount", json={"mounts": [{"name": "old", "repo": mounted_before}]}).status_code == 200
    r = daemon.put("/config", json={"pachd_address": f"localhost:{other.port}"})
    assert r.status_code == 200, r.text
    assert daemon.get("/mounts").json()["mounted"] == []  # the old cluster's mounts are gone
    assert r.json()["pachd_address"] == f"grpc://localhost:{other.port}"
    assert r.json()["cluster_status"] == "AUTH_DISABLED"
    assert any(x["repo"] == only_there for x in daemon.get("/repos").json())
    cfg = json.loads(open(os.environ["PACH_CONFIG"]).read())
    assert cfg["v2"]["active_context"] == "mount-server"
    assert cfg["v2"]["contexts"]["mount-server"]["pachd_address"] == f"grpc://localhost:{other.port}"
    # The same address again is a no-op that still answers the status.
    again = daemon.put("/config", json={"pachd_address": f"grpc://localhost:{other.port}"})
    assert again.status_code == 200 and again.json() == r.json()
    # The daemon keeps the last cluster used as its own state; settings.json is the user's.
    from pachtray import config

    assert not config.settings_path().exists()
    last = json.loads((daemon.data_dir / "last-cluster.json").read_text())
    assert last == {"address": f"grpc://localhost:{other.port}", "server_cas": "", "setting": ""}
    daemon.stop()
    restarted = daemon_factory(None, tmp=daemon.tmp, extra=["--local-pachd-port", str(free_port())])
    assert restarted.get("/config").json()["pachd_address"] == f"grpc://localhost:{other.port}"
    assert restarted.get("/pachtray/v1/info").json()["local"] is False


def test_mount_server_without_a_context_starts_unconnected_and_can_be_configured(tmp_path, pachd):
    port, sock = free_port(), str(tmp_path / "ms.sock")
    cmd = [PY, "-m", "pachtray", "mount-server", "--mount-dir", str(tmp_path / "pfs"), "--sock-path", sock,
           "--port", str(port), "--data-dir", str(tmp_path / "data"), "--allow-other=false",
           "--log-file", str(tmp_path / "ms-own.log")]
    log = open(tmp_path / "ms.log", "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: unix_request(sock, "GET", "/health").status == 200, 60, what="mount-server socket")
        for path in ("/config", "/repos", "/mounts", "/projects", "/datums"):
            reply = unix_request(sock, "GET", path)
            assert reply.status == 404 and reply.text.startswith("not connected to a cluster"), path
        assert tcp_request(port, "GET", "/health").status == 200
        reply = unix_request(sock, "PUT", "/config", body={"pachd_address": pachd.address})
        assert reply.status == 200 and reply.json()["cluster_status"] == "AUTH_DISABLED"
        assert unix_request(sock, "GET", "/repos").status == 200
        cfg = json.loads(open(os.environ["PACH_CONFIG"]).read())
        assert cfg["v2"]["contexts"]["mount-server"]["pachd_address"] == pachd.address
    finally:
        stop_process(proc, 60)
    assert proc.returncode == 0
    assert f"using cluster {pachd.address}" in (tmp_path / "ms-own.log").read_text()  # --log-file


def test_mount_server_uses_the_active_pachctl_context_and_can_skip_tcp(tmp_path, pachd):
    cas = base64.b64encode(b"unused").decode()
    with open(os.environ["PACH_CONFIG"], "w") as f:
        json.dump({"v2": {"active_context": "dev", "contexts": {
            "dev": {"pachd_address": pachd.address.replace("grpc://", "")},
            "tls": {"pachd_address": "grpcs://elsewhere:443", "server_cas": cas}}}}, f)
    port, sock = free_port(), str(tmp_path / "only.sock")
    cmd = [PY, "-m", "pachtray", "mount-server", "--mount-dir", str(tmp_path / "pfs"), "--sock-path", sock,
           "--port", str(port), "--no-tcp", "--data-dir", str(tmp_path / "data")]
    proc = subprocess.Popen(cmd, stdout=open(tmp_path / "ms.log", "wb"), stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: unix_request(sock, "GET", "/health").status == 200, 60, what="mount-server socket")
        assert unix_request(sock, "GET", "/config").json()["pachd_address"] == pachd.address
        with pytest.raises(ConnectionRefusedError):  # --no-tcp
            tcp_request(port, "GET", "/health")
    finally:
        stop_process(proc, 60)


def test_mount_server_whose_pachctl_context_does_not_answer_starts_unconnected(tmp_path, pachd):
    """As the reference: it dials the context's cluster for 5 s and, without an answer, starts
    unconnected (404 everywhere but /health and PUT /config) instead of connected to a dead cluster;
    PUT /config of that same address then tries again (500 while it still does not answer)."""
    dead = f"grpc://127.0.0.1:{free_port()}"
    with open(os.environ["PACH_CONFIG"], "w") as f:
        json.dump({"v2": {"active_context": "dev", "contexts": {"dev": {"pachd_address": dead}}}}, f)
    port, sock = free_port(), str(tmp_path / "ms.sock")
    cmd = [PY, "-m", "pachtray", "mount-server", "--mount-dir", str(tmp_path / "pfs"), "--sock-path", sock,
           "--port", str(port), "--data-dir", str(tmp_path / "data")]
    proc = subprocess.Popen(cmd, stdout=open(tmp_path / "ms.log", "wb"), stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: unix_request(sock, "GET", "/health").status == 200, 60, what="mount-server socket")
        for path in ("/config", "/mounts"):
            reply = unix_request(sock, "GET", path)
            assert reply.status == 404 and reply.text.startswith("not connected to a cluster"), (path, reply.text)
        reply = unix_request(sock, "PUT", "/config", body={"pachd_address": dead})
        assert reply.status == 500 and reply.text == f"error creating new client: could not connect to {dead}\n"
        reply = unix_request(sock, "PUT", "/config", body={"pachd_address": pachd.address})
        assert reply.status == 200 and reply.json()["cluster_status"] == "AUTH_DISABLED"
    finally:
        stop_process(proc, 60)
