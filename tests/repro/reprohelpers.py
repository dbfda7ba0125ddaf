"""Shared pieces of the reproducible-notebook tests: a reading process, the CLI, mounting."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import PY, stop_process, wait_for

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "mount"))
from mounthelpers import put_commit  # noqa: E402,F401 - one helper for making commits, shared with tests/mount


class Reader:
    """tests/repro/reader.py: a long-lived process that reads files when asked (a kernel stand-in)."""

    def __init__(self, python: str = PY):
        self.proc = subprocess.Popen([python, str(HERE / "reader.py")], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)
        assert self.proc.stdout.readline().strip() == "ready"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def ask(self, command: str) -> str:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().strip()
        assert not answer.startswith("error"), f"{command}: {answer}"
        return answer

    def read(self, path) -> str:
        return self.ask(f"read {path}")

    def stop(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        stop_process(self.proc)


def digest(data: bytes) -> str:
    return f"{hashlib.sha256(data).hexdigest()} {len(data)}"


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "pachtray", *args], capture_output=True, text=True, timeout=timeout)


def mount(daemon, name: str, repo: str, *, branch: str | None = "master", commit: str | None = None,
          mode: str = "ro", project: str = "default") -> dict:
    request = {"name": name, "repo": repo, "project": project, "mode": mode}
    if branch:
        request["branch"] = branch
    if commit:
        request["commit"] = commit
    r = daemon.put("/_mount", {"mounts": [request]})
    assert r.status_code == 200, r.text
    return mounted(daemon)[name]


def mounted(daemon) -> dict[str, dict]:
    return {m["name"]: m for m in daemon.get("/pachtray/v1/mounts").json()["mounted"]}


def unmount(daemon, *names: str) -> None:
    r = daemon.put("/_unmount", {"mounts": list(names)})
    assert r.status_code == 200, r.text
    wait_for(lambda: not set(names) & set(mounted(daemon)), 20, what=f"{names} unmounted")


def load(path) -> dict:
    return json.loads(Path(path).read_text())


def pinned_read(daemon, repo: str, lock_path: Path, path: str = "a.txt") -> dict:
    """Mount `repo` read-only as `data`, let a Reader read `path` there, and pin that with
    `pachtray lock --pid` into `lock_path`; the reader has exited when this returns the lock."""
    mount(daemon, "data", repo)
    r = Reader()
    try:
        r.read(daemon.mount_dir / "data" / path)
        proc = cli("lock", "--pid", str(r.pid), "-o", str(lock_path), "--port", str(daemon.port))
        assert proc.returncode == 0, proc.stderr
    finally:
        r.stop()
    return load(lock_path)


# ---------------------------------------------------------------- a real Jupyter server and kernel

NOTEBOOK = {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}

RUN_IN_KERNEL = """
import sys
from jupyter_client import BlockingKernelClient
kc = BlockingKernelClient(connection_file=sys.argv[1])
kc.load_connection_file()
kc.start_channels()
kc.wait_for_ready(timeout=60)
reply = kc.execute_interactive(sys.argv[2], timeout=60, output_hook=lambda msg: None)
print(reply["content"]["status"])
kc.stop_channels()
"""


class JupyterClient:
    """Drives a running Jupyter server as JupyterLab does: opens notebooks (sessions), runs cells."""

    def __init__(self, url: str, token: str, root: Path, venv: Path):
        self.url, self.token, self.root, self.venv = url.rstrip("/"), token, Path(root), Path(venv)

    def request(self, method: str, route: str, body=None):
        from pachtray import localhttp

        status, data = localhttp.request(method, self.url + route, body=body,
                                         headers={"Authorization": f"token {self.token}"}, timeout=60)
        return status, (json.loads(data) if data.strip() else None)

    def open_notebook(self, name: str) -> tuple[Path, str]:
        """Create the notebook and start its kernel the way JupyterLab does (a session); (path, kernel id)."""
        path = self.root / name
        path.write_text(json.dumps(NOTEBOOK))
        status, session = self.request("POST", "/api/sessions", {"path": name, "type": "notebook", "name": name,
                                                                   "kernel": {"name": "python3"}})
        assert status == 201, session
        return path, session["kernel"]["id"]

    def run(self, kernel_id: str, code: str) -> None:
        """Execute `code` in the kernel (as a notebook cell would) and wait for it."""
        from pachtray.repro.kernels import runtime_dir

        conn = runtime_dir() / f"kernel-{kernel_id}.json"
        wait_for(conn.exists, 30, what="the kernel's connection file")
        proc = subprocess.run([str(self.venv / "bin" / "python"), "-c", RUN_IN_KERNEL, str(conn), code],
                              capture_output=True, text=True, timeout=120)
        assert proc.stdout.strip() == "ok", proc.stdout + proc.stderr


class Jupyter(JupyterClient):
    """`jupyter server` (of .venv-jlab) on a free loopback port, found as `jupyter server list` finds
    servers: through its jpserver-<pid>.json in Jupyter's runtime dir (under the test's XDG_DATA_HOME)."""

    def __init__(self, tmp: Path, venv: Path):
        from conftest import free_port

        tmp = Path(tmp)
        port = free_port()
        super().__init__(f"http://127.0.0.1:{port}", "t" + os.urandom(8).hex(), tmp / "notebooks", venv)
        self.root.mkdir(parents=True, exist_ok=True)
        self.log = tmp / "jupyter.log"
        home = tmp / "jhome"
        env = dict(os.environ, HOME=str(home), JUPYTER_CONFIG_DIR=str(home / ".jupyter"))
        cmd = [str(self.venv / "bin" / "jupyter"), "server", "--no-browser", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
               f"--ServerApp.root_dir={self.root}", "--ServerApp.jpserver_extensions={'jupyterlab_pachyderm': False}",
               "--allow-root"]
        self.proc = subprocess.Popen(cmd, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT, env=env)
        wait_for(lambda: self.proc.poll() is not None or self.request("GET", "/api/status")[0] == 200, 60,
                 what="jupyter server")
        assert self.proc.poll() is None, self.log.read_text()[-3000:]

    def stop(self) -> None:
        stop_process(self.proc)
