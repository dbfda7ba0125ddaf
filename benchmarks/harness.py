"""Processes and measurements for the benchmarks: our own local server and daemon, /proc readings.

Uses only the documented command lines (docs/architecture.md), free ports and temporary folders,
so a run never touches port 9002, port 30650, /tmp/pfs.sock or the user's settings.
"""

from __future__ import annotations

import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

PY = sys.executable
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - keep polling, report the last error
            last = e
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}" + (f": {last!r}" if last else ""))


def isolated_env(home: Path) -> dict[str, str]:
    """Environment with its own pachctl config, data dir and XDG dirs, so the daemon ignores the user's."""
    home.mkdir(parents=True, exist_ok=True)
    return dict(os.environ,
                PACH_CONFIG=str(home / "pachctl-config.json"),
                PACHTRAY_DATA_DIR=str(home / "data"),
                XDG_CONFIG_HOME=str(home / "config"),
                XDG_DATA_HOME=str(home / "share"),
                PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring")


def stop_process(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout``; only ever a process we started."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def is_mounted(path: Path) -> bool:
    """From /proc/self/mounts: os.path.ismount is False for a dead FUSE mount (ENOTCONN)."""
    target = os.path.abspath(path)
    with open("/proc/self/mounts") as f:
        return any(line.split()[1].encode().decode("unicode_escape") == target for line in f)


def force_unmount(path: Path) -> None:
    if is_mounted(path):
        subprocess.run(["fusermount3", "-uz", str(path)], capture_output=True)


def grpc_serving(port: int) -> bool:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        resp = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=1)
        return resp.status == health_pb2.HealthCheckResponse.SERVING


class LocalServer:
    """`pachtray local-pachd` on a free port."""

    def __init__(self, tmp: Path, port: int | None = None):
        self.data_dir = tmp / f"local-pachd-{id(self)}"
        self.port = port or free_port()
        self.log = tmp / f"local-pachd-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"grpc://127.0.0.1:{self.port}"

    def start(self) -> "LocalServer":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [PY, "-m", "pachtray", "local-pachd", "--port", str(self.port), "--data-dir", str(self.data_dir)]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: self.proc.poll() is None and grpc_serving(self.port), 60, f"local-pachd on {self.port}")
        except TimeoutError as e:
            self.stop()
            raise RuntimeError(f"{e}; log tail: {self.log.read_text(errors='replace')[-2000:]}") from None
        return self

    def client(self):
        from pachyderm_sdk import Client

        return Client(host="127.0.0.1", port=self.port)

    def stop(self) -> None:
        if self.proc:
            stop_process(self.proc)


class Daemon:
    """`pachtray daemon` with its own mount dir, data dir, port and socket."""

    def __init__(self, tmp: Path, pachd_address: str | None, extra: list[str] | None = None):
        self.tmp = tmp / f"daemon-{id(self)}"
        self.mount_dir = self.tmp / "pfs"
        self.data_dir = self.tmp / "data"
        self.port = free_port()
        self.pachd_address = pachd_address
        self.extra = list(extra or [])
        self.log = self.tmp / "daemon.log"
        self.proc: subprocess.Popen | None = None
        self.session = requests.Session()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        cmd = [PY, "-m", "pachtray", "daemon", "--mount-dir", str(self.mount_dir), "--data-dir", str(self.data_dir),
               "--port", str(self.port), "--sock-path", str(self.tmp / "pfs.sock")]
        if self.pachd_address:
            cmd += ["--pachd-address", self.pachd_address]
        return cmd + self.extra

    def launch(self) -> float:
        """Start the process; returns the monotonic time it was started at."""
        self.mount_dir.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                         env=isolated_env(self.tmp / "home"))
        return t0

    def wait_healthy(self, timeout: float = 60) -> None:
        try:
            wait_for(lambda: self.proc.poll() is None and self.session.get(self.url + "/health", timeout=2).ok,
                     timeout, "daemon /health", interval=0.01)
        except TimeoutError as e:
            self.stop()
            raise RuntimeError(f"{e}; log tail: {self.log.read_text(errors='replace')[-2000:]}") from None

    def start(self) -> "Daemon":
        self.launch()
        self.wait_healthy()
        return self

    def get(self, path: str, timeout: float = 120):
        r = self.session.get(self.url + path, timeout=timeout)
        r.raise_for_status()
        return r.json()

    def put(self, path: str, body: dict, timeout: float = 600):
        r = self.session.put(self.url + path, json=body, timeout=timeout)
        if not r.ok:
            raise RuntimeError(f"PUT {path} -> {r.status_code}: {r.text.strip()}")
        return r.json() if r.content else None

    def mount(self, name: str, repo: str, mode: str = "ro", branch: str = "master") -> None:
        """Mount and wait until the mount is usable (the answer says so when mounting is synchronous)."""
        answer = self.put("/_mount", {"mounts": [{"name": name, "repo": repo, "branch": branch, "mode": mode}]})
        if not any(m["name"] == name and m["state"] == "mounted" for m in answer["mounted"]):
            wait_for(lambda: self.state(name) == "mounted", 120, f"mount {name} to be mounted", interval=0.002)

    def state(self, name: str) -> str | None:
        for m in self.get("/mounts")["mounted"]:
            if m["name"] == name:
                return m["state"]
        return None

    def stop(self) -> None:
        if self.proc:
            stop_process(self.proc)
        force_unmount(self.mount_dir)


class _FloorProcess:
    """A benchmarks/ FUSE file system (a script that prints "ready" once mounted and unmounts when
    its stdin closes) at a mount dir of its own."""

    script = ""

    def __init__(self, tmp: Path, name: str, *args: str):
        self.mount_dir = tmp / f"{Path(self.script).stem}-{id(self)}"
        self.path = self.mount_dir / name
        self.args = args
        self.proc: subprocess.Popen | None = None

    def __enter__(self):
        self.mount_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([PY, str(Path(__file__).with_name(self.script)), str(self.mount_dir), *self.args],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        if self.proc.stdout.readline().strip() != "ready":
            self.__exit__()
            raise RuntimeError(f"benchmarks/{self.script} did not mount")
        return self

    def __exit__(self, *_exc) -> None:
        if self.proc is not None:
            self.proc.stdin.close()  # it unmounts and exits
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                stop_process(self.proc)
        force_unmount(self.mount_dir)


class FuseFloor(_FloorProcess):
    """benchmarks/fuse_floor.py showing one local file: the kernel's FUSE path with no daemon work
    behind it (benchmark 2's baseline)."""

    script = "fuse_floor.py"

    def __init__(self, tmp: Path, source: Path):
        super().__init__(tmp, source.name, str(source))


class StreamFloor(_FloorProcess):
    """benchmarks/stream_floor.py streaming one file of a commit from a server: the cold read of a
    daemon that does nothing but pass GetFile's content to the kernel (benchmark 1's floor)."""

    script = "stream_floor.py"

    def __init__(self, tmp: Path, port: int, uri: str):
        super().__init__(tmp, uri.rsplit("/", 1)[-1], str(port), uri)


# /proc readings ------------------------------------------------------------------------------

def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (the daemon's embedded local server is its child)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, []))
    return tree


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise ValueError(f"no VmRSS for pid {pid}")


def machine() -> dict[str, str]:
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
                 platform.processor() or "unknown")
    mem_kib = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal:"))
    return {"CPU": model, "cores": str(os.cpu_count()), "RAM": f"{mem_kib / 2**20:.1f} GiB",
            "kernel": platform.release(), "Python": platform.python_version(),
            "disk": _disk_of(Path(os.environ.get("TMPDIR", "/tmp")))}


def _disk_of(path: Path) -> str:
    usage = shutil.disk_usage(path)
    return f"{path} ({usage.free / 2**30:.0f} GiB free)"
