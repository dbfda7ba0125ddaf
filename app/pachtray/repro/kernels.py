"""Running notebook kernels on this machine: Jupyter servers -> their sessions -> kernel processes.

Servers are found the way `jupyter server list` finds them (the `jpserver-*.json` files, and the
classic notebook's `nbserver-*.json`, in Jupyter's runtime dir, for servers still running); each
one's sessions API says which notebook runs in which kernel, and a kernel's process is the one
whose command line names its connection file `kernel-<id>.json`.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from pachtray import localhttp
from pachtray.jupyter.server import _alive  # noqa: PLC2701 - one liveness rule (zombies are dead)

SESSIONS_TIMEOUT = 5.0


@dataclass(frozen=True)
class Server:
    url: str
    token: str
    root_dir: str
    pid: int
    sock: str = ""


@dataclass(frozen=True)
class Kernel:
    notebook: str  # absolute path of the notebook file
    kernel_id: str
    kernel_name: str
    pid: int | None  # None: the kernel runs elsewhere (a gateway) or has just exited
    server: str  # the Jupyter server's URL

    def as_json(self) -> dict:
        return {"notebook": self.notebook, "kernel_id": self.kernel_id, "kernel_name": self.kernel_name,
                "pid": self.pid, "server": self.server}


class KernelNotFound(LookupError):
    """No running kernel for a notebook; the message says where we looked."""


class KernelAmbiguous(LookupError):
    """More than one kernel on this machine has the notebook open: which one ran it is not ours to guess."""


def jupyter_data_dir() -> Path:
    """As jupyter_core's `jupyter_data_dir()`."""
    if os.environ.get("JUPYTER_DATA_DIR"):
        return Path(os.environ["JUPYTER_DATA_DIR"])
    home = Path.home()
    if sys.platform == "darwin":
        return home / "Library" / "Jupyter"
    if os.name == "nt":
        return Path(os.environ.get("APPDATA") or home) / "jupyter"
    return Path(os.environ.get("XDG_DATA_HOME") or home / ".local" / "share") / "jupyter"


def runtime_dir() -> Path:
    """As jupyter_core's `jupyter_runtime_dir()`: where servers write their `jpserver-<pid>.json`."""
    if os.environ.get("JUPYTER_RUNTIME_DIR"):
        return Path(os.environ["JUPYTER_RUNTIME_DIR"])
    return jupyter_data_dir() / "runtime"


def servers(directory: Path | None = None) -> list[Server]:
    """The running servers recorded in the runtime dir (stale files of dead servers are skipped)."""
    directory = directory or runtime_dir()
    found = []
    for pattern in ("jpserver-*.json", "nbserver-*.json"):
        for f in sorted(directory.glob(pattern)):
            try:
                info = json.loads(f.read_text())
                pid = int(info["pid"])
                server = Server(url=str(info["url"]), token=str(info.get("token") or ""),
                                root_dir=str(info.get("root_dir") or info.get("notebook_dir") or ""),
                                pid=pid, sock=str(info.get("sock") or ""))
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if _alive(server.pid) and server not in found:
                found.append(server)
    return found


def sessions(server: Server) -> list[dict]:
    """The server's sessions (GET api/sessions); raises OSError/ValueError saying why not."""
    url = server.url.rstrip("/") + "/api/sessions"
    headers = {"Authorization": f"token {server.token}"} if server.token else {}
    status, body = localhttp.request("GET", url, sock_path=server.sock, headers=headers, timeout=SESSIONS_TIMEOUT)
    if status != 200:
        raise ValueError(f"{url} answered HTTP {status}")
    data = json.loads(body)
    if not isinstance(data, list):
        raise ValueError(f"{url} did not answer a list of sessions")
    return data


def kernel_pids(kernel_ids: set[str], proc_root: str = "/proc") -> dict[str, int]:
    """kernel id -> the outermost process whose command line names `kernel-<id>.json`."""
    wanted = {f"kernel-{k}.json".encode(): k for k in kernel_ids}
    matches: dict[str, dict[int, int]] = {}
    if not wanted:
        return {}
    try:
        pids = [int(p) for p in os.listdir(proc_root) if p.isdigit()]
    except OSError:
        return {}
    for pid in pids:
        try:
            with open(f"{proc_root}/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        for needle, kernel_id in wanted.items():
            if needle in cmdline:
                matches.setdefault(kernel_id, {})[pid] = _parent(pid, proc_root)
    out = {}
    for kernel_id, found in matches.items():
        outermost = [pid for pid, ppid in found.items() if ppid not in found]  # e.g. a wrapper script
        out[kernel_id] = min(outermost or found)
    return out


def _parent(pid: int, proc_root: str) -> int:
    try:
        with open(f"{proc_root}/{pid}/stat", "rb") as f:
            data = f.read()
        return int(data[data.rindex(b")") + 2:].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def all_servers(extra_servers: list[Server] | None = None) -> list[Server]:
    """Those of the runtime dir, and `extra_servers` (the one Pachtray manages, from its own record)
    unless the runtime dir already has that process (its file says exactly where it serves from)."""
    found = servers()
    pids = {s.pid for s in found}
    return found + [s for s in extra_servers or [] if s.pid not in pids and _alive(s.pid)]


def notebook_kernels(extra_servers: list[Server] | None = None, *,
                     asked: list[Server] | None = None) -> tuple[list[Kernel], list[str]]:
    """Every notebook kernel of every running server (or of `asked`), and one line per server that
    did not answer."""
    kernels, problems = [], []
    for server in asked if asked is not None else all_servers(extra_servers):
        try:
            found = sessions(server)
        except (OSError, ValueError) as e:
            problems.append(f"Jupyter server {server.url} (pid {server.pid}): {e}")
            continue
        for s in found:
            kernel = s.get("kernel") or {}
            path = s.get("path") or (s.get("notebook") or {}).get("path") or ""
            if not kernel.get("id") or not path:
                continue
            notebook = os.path.normpath(os.path.join(server.root_dir or os.sep, path))
            kernels.append(Kernel(notebook, str(kernel["id"]), str(kernel.get("name") or ""), None, server.url))
    pids = kernel_pids({k.kernel_id for k in kernels})
    kernels = [Kernel(k.notebook, k.kernel_id, k.kernel_name, pids.get(k.kernel_id), k.server) for k in kernels]
    return kernels, problems


def find_kernel(notebook: str, extra_servers: list[Server] | None = None) -> Kernel:
    """The running kernel of this notebook (an absolute path); KernelNotFound says where we looked."""
    want = os.path.realpath(notebook)
    asked = all_servers(extra_servers)
    kernels, problems = notebook_kernels(asked=asked)
    matching = [k for k in kernels if os.path.realpath(k.notebook) == want]
    local = list({k.pid: k for k in matching if k.pid is not None}.values())
    if len(local) > 1:
        which = ", ".join(f"pid {k.pid} (kernel {k.kernel_id[:8]}, {k.server})" for k in local)
        raise KernelAmbiguous(f"{len(local)} kernels have {notebook} open: {which}; lock the one you ran with "
                              "`pachtray lock --pid PID`, or shut the others down")
    if local:
        return local[0]
    if matching:
        raise KernelNotFound(f"the kernel of {notebook} (id {matching[0].kernel_id}) does not run on this "
                             "machine, so Pachtray cannot see what it read")
    count = len(asked)
    where = f"{count} running Jupyter server{'s' if count != 1 else ''} (runtime dir {runtime_dir()})"
    detail = f"; {'; '.join(problems)}" if problems else ""
    raise KernelNotFound(f"no running kernel has {notebook} open in {where}{detail}; open the notebook "
                         "and run it, or use `pachtray lock --pid PID`")
