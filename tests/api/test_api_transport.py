"""Where and to whom the API answers: TCP loopback + unix socket, Host/Origin guard, start-up conflicts."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess

from apihelpers import shared_daemon, tcp_request, unix_request  # noqa: F401 - fixture
from conftest import PY, free_port, wait_for

REFERENCE_ROUTES = {
    ("get", "/health"), ("get", "/config"), ("put", "/config"), ("get", "/repos"), ("get", "/projects"),
    ("get", "/mounts"), ("put", "/_mount"), ("put", "/_unmount"), ("put", "/_commit"), ("put", "/_unmount_all"),
    ("put", "/datums/_mount"), ("put", "/datums/_next"), ("put", "/datums/_prev"), ("get", "/datums"),
    ("put", "/auth/_login"), ("put", "/auth/_login_token"), ("put", "/auth/_logout"),
}


def _listening_addresses(port: int) -> set[str]:
    """Local addresses (hex, as in /proc/net/tcp*) of sockets listening on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            next(f)
            for line in f:
                fields = line.split()
                addr, hexport = fields[1].rsplit(":", 1)
                if int(hexport, 16) == port and fields[3] == "0A":  # 0A = LISTEN
                    found.add(addr)
    return found


def test_health_on_tcp_and_socket_with_private_socket(shared_daemon):
    assert shared_daemon.get("/health").json() == {"status": "running"}
    reply = unix_request(shared_daemon.sock_path, "GET", "/health")
    assert reply.status == 200 and reply.json() == {"status": "running"}
    mode = os.stat(shared_daemon.sock_path).st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600


def test_tcp_listens_on_loopback_only(shared_daemon):
    addresses = _listening_addresses(shared_daemon.port)
    assert "0100007F" in addresses  # 127.0.0.1
    assert addresses <= {"0100007F", "00000000000000000000000001000000"}  # 127.0.0.1, ::1


def test_foreign_host_is_forbidden_on_tcp(shared_daemon):
    evil = tcp_request(shared_daemon.port, "GET", "/repos", headers={"Host": "evil.example:9002"})
    assert evil.status == 403 and "evil.example" in evil.text and evil.text.endswith("\n")
    rebinding = tcp_request(shared_daemon.port, "PUT", "/_unmount_all", body={}, headers={"Host": "attacker.test"})
    assert rebinding.status == 403
    for host in (f"localhost:{shared_daemon.port}", f"127.0.0.1:{shared_daemon.port}", f"[::1]:{shared_daemon.port}", "localhost"):
        assert tcp_request(shared_daemon.port, "GET", "/health", headers={"Host": host}).status == 200, host


def test_foreign_origin_is_forbidden_on_tcp_and_socket(shared_daemon):
    r = shared_daemon.put("/_unmount_all", headers={"Origin": "https://evil.example"})
    assert r.status_code == 403 and "Origin" in r.text
    assert shared_daemon.get("/health", headers={"Origin": "null"}).status_code == 403
    assert shared_daemon.get("/health", headers={"Origin": "http://localhost:8888"}).status_code == 200
    assert shared_daemon.get("/health", headers={"Origin": "http://127.0.0.1:8888"}).status_code == 200
    # One more origin comes from the daemon's settings file (allowed_origins).
    assert shared_daemon.get("/health", headers={"Origin": "http://notebooks.internal:8000"}).status_code == 200
    assert shared_daemon.get("/health", headers={"Origin": "http://notebooks.internal:9999"}).status_code == 403
    sock = unix_request(shared_daemon.sock_path, "GET", "/mounts", headers={"Origin": "http://evil.example"})
    assert sock.status == 403
    # A browser cannot reach the socket, so its Host is not checked there.
    assert unix_request(shared_daemon.sock_path, "GET", "/health", headers={"Host": "whatever"}).status == 200


def test_unknown_path_and_wrong_method(shared_daemon):
    r = shared_daemon.get("/no/such/thing")
    assert r.status_code == 404 and r.text == "no such endpoint: /no/such/thing\n"
    r = shared_daemon.get("/_mount")
    assert r.status_code == 405 and "PUT" in r.text


def test_openapi_documents_every_route(shared_daemon):
    doc = shared_daemon.get("/openapi.json").json()
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert REFERENCE_ROUTES <= documented
    assert ("put", "/pachtray/v1/_discard") in documented and ("get", "/openapi.json") in documented
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op["summary"], f"{method} {path} has no summary"
    assert "requestBody" in doc["paths"]["/_mount"]["put"]


def _daemon_cmd(tmp_path, port, sock, *extra):
    return [PY, "-m", "pachtray", "daemon", "--mount-dir", str(tmp_path / "pfs"), "--data-dir",
            str(tmp_path / "data"), "--port", str(port), "--sock-path", str(sock), *extra]


def test_live_socket_of_another_server_is_an_error(tmp_path, pachd):
    sock_path = tmp_path / "busy.sock"
    holder = socket.socket(socket.AF_UNIX)
    holder.bind(str(sock_path))
    holder.listen(1)
    try:
        proc = subprocess.run(_daemon_cmd(tmp_path, free_port(), sock_path, "--pachd-address", pachd.address),
                              capture_output=True, text=True, timeout=120)
    finally:
        holder.close()
    assert proc.returncode == 1
    assert f"socket {sock_path} is in use by another running server" in proc.stderr


def test_port_used_by_another_program_is_an_error(tmp_path, pachd):
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    port = blocker.getsockname()[1]
    try:
        proc = subprocess.run(_daemon_cmd(tmp_path, port, tmp_path / "s.sock", "--pachd-address", pachd.address),
                              capture_output=True, text=True, timeout=120)
    finally:
        blocker.close()
    assert proc.returncode == 1
    assert f"port {port} on 127.0.0.1 is in use by another program" in proc.stderr


def test_second_daemon_on_a_taken_port_still_serves_its_socket(daemon, tmp_path, pachd):
    """As jupyterlab-pachyderm's auto-start does while the app's daemon already has the port;
    SIGTERM then stops it cleanly (exit 0) and removes its socket."""
    second = tmp_path / "second"
    second.mkdir()
    log = open(second / "log", "wb")
    proc = subprocess.Popen(_daemon_cmd(second, daemon.port, second / "s.sock", "--pachd-address", pachd.address),
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: unix_request(str(second / "s.sock"), "GET", "/health").status == 200, 60,
                 what="second daemon's socket")
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    assert not (second / "s.sock").exists()
    assert daemon.get("/health").ok
