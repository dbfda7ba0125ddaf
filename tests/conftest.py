"""Shared fixtures: the real embedded server and the real daemon, each in its own process.

Every test runs with its own pachctl config, data dir, XDG dirs and a file-less keyring, so
nothing touches the user's real settings, /tmp/pfs.sock, port 9002 or port 30650.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import grpc
import pytest

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


class RpcFailure(grpc.RpcError):
    """A gRPC failure as the SDK raises it (code and details), for tests without a server."""

    def __init__(self, code, details: str = ""):
        super().__init__(details)
        self._code, self._details = code, details

    def code(self):
        return self._code

    def details(self):
        return self._details


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout``; only ever the process we started."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def folder_files(folder) -> dict[str, bytes]:
    """Every file under a local folder (e.g. a mount) with its content, keyed "/relative/path"."""
    out = {}
    for root, _, names in os.walk(folder):
        for n in names:
            full = os.path.join(root, n)
            with open(full, "rb") as f:
                out["/" + os.path.relpath(full, folder)] = f.read()
    return out


def force_unmount(path: str | os.PathLike) -> None:
    for cmd in (["fusermount3", "-uz", str(path)], ["fusermount", "-uz", str(path)], ["umount", "-l", str(path)]):
        if shutil.which(cmd[0]):
            subprocess.run(cmd, capture_output=True)
            if not is_mounted(path):
                return


def is_mounted(path: str | os.PathLike) -> bool:
    """True for live and dead (ENOTCONN) mounts alike; os.path.ismount misses the dead ones."""
    target = os.path.realpath(path)
    with open("/proc/self/mounts") as f:
        return any(line.split()[1].replace("\\040", " ") == target for line in f)


_DEAD_FS = """
import errno, sys
import mfusepy as fuse

class Root(fuse.Operations):
    def getattr(self, path, fh=None):
        if path == "/":
            return dict(st_mode=0o40755, st_nlink=2)
        raise fuse.FuseOSError(errno.ENOENT)

fuse.FUSE(Root(), sys.argv[1], foreground=True)
"""


@contextlib.contextmanager
def stale_fuse_mount(mount_dir: Path):
    """A FUSE mount whose process was killed: every stat of it fails with ENOTCONN, as after a crash."""
    mount_dir.mkdir(parents=True, exist_ok=True)
    script = mount_dir.parent / f".dead_fs_{uuid.uuid4().hex[:8]}.py"
    script.write_text(_DEAD_FS)
    fs = subprocess.Popen([PY, str(script), str(mount_dir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: os.path.ismount(mount_dir), 30, what="the soon-dead file system")
        fs.kill()
        fs.wait(10)
        try:
            os.listdir(mount_dir)  # a stat of the mount point itself can be answered from the kernel's cache
        except OSError:
            pass
        else:
            raise AssertionError(f"{mount_dir} still answers after its file system was killed")
        yield mount_dir
    finally:
        if fs.poll() is None:
            fs.kill()
        force_unmount(mount_dir)


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - keep polling, report the last error
            last = e
        time.sleep(interval)
    raise TimeoutError(f"timed out waiting for {what}" + (f": {last!r}" if last else ""))


def grpc_serving(port: int) -> bool:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        resp = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=1)
        return resp.status == health_pb2.HealthCheckResponse.SERVING


class LocalPachd:
    """`pachtray local-pachd` in a subprocess."""

    def __init__(self, data_dir: Path, port: int | None = None, extra: list[str] | None = None):
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.extra = list(extra or [])
        self.proc: subprocess.Popen | None = None
        self.log = self.data_dir.parent / f"local-pachd-{self.port}.log"

    @property
    def address(self) -> str:
        return f"grpc://127.0.0.1:{self.port}"

    def start(self) -> "LocalPachd":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [PY, "-m", "pachtray", "local-pachd", "--port", str(self.port), "--data-dir", str(self.data_dir), *self.extra]
        self.proc = subprocess.Popen(cmd, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: self.proc.poll() is None and grpc_serving(self.port), 30, what=f"local-pachd on {self.port}")
        except TimeoutError:
            stop_process(self.proc)
            raise RuntimeError(f"local-pachd did not start: {self.log.read_text()[-3000:]}")
        return self

    def stop(self) -> None:
        if self.proc:
            stop_process(self.proc)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def client(self, **kw):
        from pachyderm_sdk import Client

        return Client(host="127.0.0.1", port=self.port, **kw)


class Daemon:
    """`pachtray daemon` (or, with kind="mount-server", the drop-in) in a subprocess, with its own
    mount dir, data dir, port and socket."""

    def __init__(self, tmp: Path, pachd_address: str | None, extra: list[str] | None = None,
                 env: dict | None = None, mount_dir: Path | None = None, data_dir: Path | None = None,
                 kind: str = "daemon"):
        self.tmp = Path(tmp)
        self.kind = kind
        self.mount_dir = Path(mount_dir or self.tmp / "pfs")
        self.data_dir = Path(data_dir or self.tmp / "data")
        self.port = free_port()
        self.sock_path = str(self.tmp / "pfs.sock")
        self.pachd_address = pachd_address
        self.extra = list(extra or [])
        self.env = env
        self.proc: subprocess.Popen | None = None
        self.log = self.tmp / f"daemon-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        cmd = [PY, "-m", "pachtray", self.kind, "--mount-dir", str(self.mount_dir), "--data-dir", str(self.data_dir),
               "--port", str(self.port), "--sock-path", self.sock_path]
        if self.pachd_address:
            cmd += ["--pachd-address", self.pachd_address]
        return cmd + self.extra

    def start(self, timeout: float = 30) -> "Daemon":
        import requests

        with contextlib.suppress(OSError):  # a stale FUSE mount (ENOTCONN) is the daemon's to clean
            self.mount_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, **(self.env or {}))
        self.proc = subprocess.Popen(self.command(), stdout=open(self.log, "ab"), stderr=subprocess.STDOUT, env=env)
        try:
            wait_for(lambda: self.proc.poll() is None and requests.get(self.url + "/health", timeout=1).ok,
                     timeout, what="daemon /health")
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"daemon did not start: {self.log.read_text()[-3000:]}")
        return self

    def get(self, path: str, **kw):
        import requests

        kw.setdefault("timeout", 30)
        return requests.get(self.url + path, **kw)

    def put(self, path: str, json=None, **kw):
        import requests

        kw.setdefault("timeout", 60)
        return requests.put(self.url + path, json={} if json is None else json, **kw)

    def stop(self) -> None:
        if self.proc:
            stop_process(self.proc, timeout=30)
        if is_mounted(self.mount_dir):
            force_unmount(self.mount_dir)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture(autouse=True)
def _isolate(tmp_path_factory, monkeypatch):
    """Own pachctl config, data dir, XDG dirs and a file-less keyring for every test."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("PACH_CONFIG", str(home / "pachctl-config.json"))
    monkeypatch.setenv("PACHTRAY_DATA_DIR", str(home / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "share"))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")
    monkeypatch.setenv("QT_QPA_PLATFORM", os.environ.get("QT_QPA_PLATFORM", "offscreen"))
    yield


@pytest.fixture(scope="session")
def pachd(tmp_path_factory):
    """One embedded server for the session (tests use unique repo names)."""
    server = LocalPachd(tmp_path_factory.mktemp("pachd") / "data").start()
    yield server
    server.stop()


@pytest.fixture
def local_pachd_factory(tmp_path):
    started: list[LocalPachd] = []

    def make(port: int | None = None, extra: list[str] | None = None, data_dir: Path | None = None) -> LocalPachd:
        s = LocalPachd(data_dir or tmp_path / f"pachd{len(started)}", port=port, extra=extra).start()
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()


@pytest.fixture
def client(pachd):
    c = pachd.client()
    yield c
    with contextlib.suppress(Exception):
        c.close()


@pytest.fixture
def daemon_factory(tmp_path):
    started: list[Daemon] = []

    def make(pachd_address: str | None, **kw) -> Daemon:
        d = Daemon(kw.pop("tmp", None) or tmp_path / f"d{len(started)}", pachd_address, **kw)
        d.tmp.mkdir(parents=True, exist_ok=True)
        started.append(d)
        return d.start()

    yield make
    for d in started:
        d.stop()


@pytest.fixture
def daemon(daemon_factory, pachd):
    return daemon_factory(pachd.address)


@pytest.fixture
def unique_name():
    def make(prefix: str = "r") -> str:
        return f"{prefix}-{uuid.uuid4().hex[:10]}"

    return make


@pytest.fixture(scope="session")
def built_deb(tmp_path_factory):
    """(bundle dir, .deb): `bash packaging/build.sh` from scratch into temporary dist/ and build/ folders,
    once per session (PyInstaller takes minutes) for every packaging test that needs it."""
    dist = tmp_path_factory.mktemp("dist")
    work = tmp_path_factory.mktemp("build")
    env = dict(os.environ, PACHTRAY_DIST=str(dist), PACHTRAY_BUILD=str(work))
    proc = subprocess.run(["bash", str(ROOT / "packaging" / "build.sh")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=720)
    assert proc.returncode == 0, f"packaging/build.sh failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    debs = list(dist.glob("pachtray_*.deb"))
    assert len(debs) == 1, f"expected one .deb in {dist}: {sorted(p.name for p in dist.iterdir())}"
    yield dist / "pachtray", debs[0]
    for folder in (dist, work):  # ~500 MB together
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def jlab_venv() -> Path:
    """Pachtray's JupyterLab environment, cached at .venv-jlab (scripts/jlab-venv.sh): made once, then reused."""
    venv = Path(os.environ.get("JLAB_VENV", ROOT / ".venv-jlab"))
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "jlab-venv.sh")], capture_output=True, text=True,
                          timeout=1200, env=dict(os.environ, JLAB_VENV=str(venv)))
    if proc.returncode == 3:
        pytest.skip(f"cannot install JupyterLab: {proc.stderr.strip().splitlines()[-1]}")
    if proc.returncode != 0:
        pytest.fail(f"scripts/jlab-venv.sh failed ({proc.returncode}): {proc.stderr[-3000:]}")
    return venv
