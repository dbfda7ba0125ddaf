"""Pachtray's JupyterLab server: started on a free loopback port with a token, wired to the daemon,
recorded (pid, port, token) so the next Open finds it, and stopped on request.

It runs detached (its own session), so it outlives the tray app and `pachtray jupyter`. Its
Jupyter configuration folder is Pachtray's (a JupyterLab 4 of the user's keeps its own settings);
its kernels are the user's: Jupyter's data folders are left alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from pachtray import config
from pachtray.errors import PachtrayError
from pachtray.files import write_json
from pachtray.logfiles import tail
from pachtray.jupyter import environment
from pachtray.jupyter.environment import ManagedEnv, Progress

START_TIMEOUT = 120.0
_children: dict[int, subprocess.Popen] = {}  # servers this process started (a zombie is not running)


@dataclass(frozen=True)
class Wiring:
    """Which daemon the extension talks to, and where it finds the mounts."""

    mount_dir: str
    sock_path: str
    api_port: int

    @classmethod
    def from_settings(cls, settings: config.Settings, mount_dir: str = "") -> "Wiring":
        return cls(mount_dir or settings.effective_mount_dir(), settings.sock_path, settings.api_port)

    def env(self) -> dict[str, str]:
        """The extension's variables (its env.py): it reaches a TCP daemon only at localhost:9002."""
        env = {"PFS_MOUNT_DIR": self.mount_dir}
        if self.sock_path:
            env.update(DEFAULT_SCHEMA="http_unix", PFS_SOCK_PATH=self.sock_path)
        elif self.api_port == 9002:
            env["DEFAULT_SCHEMA"] = "http"
        else:
            raise PachtrayError(f"jupyterlab-pachyderm can only reach the daemon on port 9002 or through a socket; "
                                f"set a socket path in Settings (the API port is {self.api_port}).",
                                title="Cannot open JupyterLab")
        return env


@dataclass
class Lab:
    """A JupyterLab server Pachtray started (what the record file holds)."""

    pid: int
    port: int
    token: str
    env_path: str
    stamp: str
    wiring: dict
    log_path: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/lab?token={self.token}"

    def request(self, method: str, path: str, timeout: float = 5.0) -> int:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            resp.read()
            return resp.status

    def answering(self, timeout: float = 5.0) -> bool:
        """It is up, and it is ours (it takes our token)."""
        try:
            return self.request("GET", "/api/status", timeout) == 200
        except (OSError, urllib.error.URLError, ValueError):
            return False


def state_dir() -> Path:
    return config.data_dir() / "jupyterlab"


def record_path() -> Path:
    return state_dir() / "server.json"


def load_record(path: Path | None = None) -> Lab | None:
    try:
        raw = json.loads((path or record_path()).read_text(encoding="utf-8"))
        return Lab(**raw)
    except (OSError, ValueError, TypeError):
        return None


def _save_record(lab: Lab, path: Path) -> None:
    """Owner-only (it holds the token), replaced atomically."""
    write_json(path, asdict(lab), indent=None)


def running(path: Path | None = None) -> Lab | None:
    """The recorded server if it answers with its token."""
    lab = load_record(path)
    return lab if lab is not None and lab.answering() else None


def open_managed(wiring: Wiring, env: ManagedEnv | None = None, progress: Progress | None = None,
                 cancel: threading.Event | None = None, path: Path | None = None) -> tuple[Lab, bool]:
    """The running server if it has this wiring and environment (reused=True), else a new one.

    A server wired to other settings, or made from older pins, is stopped first.
    """
    report = progress or (lambda _m, _f: None)
    cancel = cancel or threading.Event()
    env = env or ManagedEnv()
    path = path or record_path()
    wiring.env()  # an unreachable daemon is an error before anything is installed
    path.parent.mkdir(parents=True, exist_ok=True)
    with environment.exclusive(path.with_name(path.name + ".lock"), cancel, report, what="start"):
        lab = running(path)
        if lab is not None:
            if lab.wiring == asdict(wiring) and lab.env_path == str(env.path) and lab.stamp == environment.stamp():
                report(f"JupyterLab is already running on port {lab.port}", 1.0)
                return lab, True
            report("Restarting JupyterLab with the current settings", None)
        stop(path)
        env.ensure(report, cancel)
        return start(env, wiring, progress=report, cancel=cancel, path=path), False


def start(env: ManagedEnv, wiring: Wiring, progress: Progress | None = None, cancel: threading.Event | None = None,
          path: Path | None = None, attempts: int = 3) -> Lab:
    """Start JupyterLab from `env` and wait until it answers; record it."""
    report = progress or (lambda _m, _f: None)
    cancel = cancel or threading.Event()
    path = path or record_path()
    log_path = path.parent / "jupyterlab.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    _configure(env, path.parent / "config")
    for attempt in range(attempts):
        lab = Lab(pid=0, port=_free_port(), token=secrets.token_hex(24), env_path=str(env.path),
                  stamp=environment.stamp(), wiring=asdict(wiring), log_path=str(log_path))
        report(f"Starting JupyterLab on 127.0.0.1:{lab.port}", None)
        proc = _spawn(env, lab, wiring, path.parent / "config")
        lab.pid = proc.pid
        if _wait_ready(proc, lab, cancel):
            _save_record(lab, path)
            return lab
        if "is already in use" not in tail(log_path) or attempt == attempts - 1:  # else: lost a race for the port
            break
    raise PachtrayError(f"JupyterLab did not start. Last lines of {log_path}:\n{tail(log_path)}",
                        title="Cannot start JupyterLab")


def _configure(env: ManagedEnv, config_dir: Path) -> None:
    """Settings of Pachtray's JupyterLab, written at each start (so they follow Pachtray's version).

    No news feed and no "JupyterLab 4 is out" notices (it is pinned to 3.6 on purpose), and the
    extension's click tracking (its `telemetry` plugin sends clicks to a third party) is off.
    """
    overrides = env.path / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    write_json(overrides, {"@jupyterlab/apputils-extension:notification": {"checkForUpdates": False,
                                                                          "fetchNews": "false"}}, mode=0o644)
    write_json(config_dir / "labconfig" / "page_config.json",
               {"disabledExtensions": {"jupyterlab-pachyderm:telemetry": True}}, mode=0o644)


def _spawn(env: ManagedEnv, lab: Lab, wiring: Wiring, config_dir: Path) -> subprocess.Popen:
    cmd = [str(env.bin("jupyter-lab")), "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={lab.port}",
           "--ServerApp.port_retries=0", f"--ServerApp.root_dir={Path.home()}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # Jupyter refuses root without it (containers, CI)
    # The token travels in the environment: command lines are visible to other users.
    child_env = dict(os.environ, JUPYTER_TOKEN=lab.token, JUPYTER_CONFIG_DIR=str(config_dir), **wiring.env())
    child_env.pop(environment.ENV_VAR, None)
    with open(lab.log_path, "ab") as log:
        proc = subprocess.Popen(cmd, env=child_env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                cwd=str(Path.home()), start_new_session=True)
    _children[proc.pid] = proc
    return proc


def _wait_ready(proc: subprocess.Popen, lab: Lab, cancel: threading.Event) -> bool:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if cancel.is_set():
            _end(proc.pid)
            raise environment.SetupCancelled()
        if lab.answering(timeout=2):
            return True
        time.sleep(0.2)
    _end(proc.pid)
    return False


def stop(path: Path | None = None, timeout: float = 30.0) -> Lab | None:
    """Shut the recorded server down (its kernels with it); returns it, or None if none was running."""
    path = path or record_path()
    lab = load_record(path)
    if lab is None:
        return None
    was_running = False
    if lab.answering():
        was_running = True
        with contextlib.suppress(OSError, urllib.error.URLError):
            lab.request("POST", "/api/shutdown", timeout=10)  # Jupyter ends its kernels, then itself
        deadline = time.monotonic() + timeout
        while _alive(lab.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
    if _alive(lab.pid) and _is_ours(lab):
        was_running = True
        _end(lab.pid)
    path.unlink(missing_ok=True)
    return lab if was_running else None


def _child(pid: int) -> subprocess.Popen | None:
    """The server this process started with that pid, until it has been reaped: after that the pid
    may be another process's (pid_max is 32768 on many systems), which must not be taken for ours."""
    proc = _children.get(pid)
    if proc is not None and proc.returncode is not None:
        del _children[pid]
        return None
    return proc


def _alive(pid: int) -> bool:
    if (proc := _child(pid)) is not None:
        return proc.poll() is None
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie has exited; its parent has not yet collected it
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _is_ours(lab: Lab) -> bool:
    """Before signalling a pid from the record: is it still that JupyterLab (pids get reused)?"""
    if _child(lab.pid) is not None:
        return True
    try:
        return lab.env_path.encode() in Path(f"/proc/{lab.pid}/cmdline").read_bytes()
    except OSError:
        return False  # no /proc (macOS): only the shutdown request is used


def _end(pid: int) -> None:
    """SIGTERM the server's session (it and its kernels), SIGKILL what is left after a while."""
    for sig, wait in ((signal.SIGTERM, 15.0), (getattr(signal, "SIGKILL", signal.SIGTERM), 5.0)):
        with contextlib.suppress(OSError):
            if hasattr(os, "killpg"):
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not _alive(pid):
            break
    proc = _children.pop(pid, None)
    if proc is not None:
        with contextlib.suppress(subprocess.SubprocessError):
            proc.wait(1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
