"""Shared pieces of the reproducible-notebook tests: a reading process, the CLI, mounting."""

from __future__ import annotations

import hashlib
import json
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
