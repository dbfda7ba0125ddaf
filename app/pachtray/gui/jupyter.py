"""Open JupyterLab wired to the daemon (no Qt: runs on a worker thread).

The extension must be importable by the Python that runs *that* `jupyter` (the server side of
jupyterlab-pachyderm runs in the Jupyter server, not in a kernel), so we find the interpreter
from the script's shebang and ask it directly.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pachtray.errors import PachtrayError

EXTENSION_MODULE = "jupyterlab_pachyderm"
EXTENSION_REQUIREMENT = "jupyterlab-pachyderm>=2.8,<2.9"


class ExtensionMissing(PachtrayError):
    """jupyterlab-pachyderm is not installed where the chosen `jupyter` runs."""

    def __init__(self, python: str, detail: str = ""):
        self.pip_command = pip_command(python)
        super().__init__(f"jupyterlab-pachyderm is not installed in the environment of this Jupyter "
                         f"({python}){': ' + detail if detail else ''}.\n\nInstall it with:\n\n"
                         f"    {self.pip_command}\n\nthen choose Open JupyterLab again.",
                         title="JupyterLab extension missing")


@dataclass
class Launch:
    jupyter: str
    python: str
    pid: int
    env: dict


def find_jupyter(configured: str = "") -> str:
    """The user's pick from Settings, else `jupyter` on PATH."""
    if configured:
        path = Path(configured).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise PachtrayError(f"The Jupyter program chosen in Settings is not an executable file: {path}",
                                title="Jupyter not found")
        return str(path)
    found = shutil.which("jupyter")
    if not found:
        raise PachtrayError("No `jupyter` program was found on PATH. Install JupyterLab and the extension "
                            f"(`python3 -m pip install jupyterlab \"{EXTENSION_REQUIREMENT}\"`), or choose the "
                            "jupyter program in Settings.", title="Jupyter not found")
    return found


def jupyter_python(jupyter: str) -> str:
    """The interpreter that runs this `jupyter` script (from its shebang, else a sibling python)."""
    try:
        with open(jupyter, "rb") as f:
            first = f.readline(4096).decode(errors="replace").strip()
    except OSError as e:
        raise PachtrayError(f"Cannot read {jupyter}: {e}", title="Jupyter not usable") from None
    if first.startswith("#!"):
        words = shlex.split(first[2:])
        if words and os.path.basename(words[0]) == "env" and len(words) > 1:
            found = shutil.which(words[1])
            if found:
                return found
        elif words and "python" in os.path.basename(words[0]):
            return words[0]
    folder = Path(jupyter).resolve().parent
    for name in ("python3", "python"):
        if (folder / name).exists():
            return str(folder / name)
    raise PachtrayError(f"Cannot tell which Python runs {jupyter} (no python shebang, no python next to it). "
                        "Choose the jupyter program of your JupyterLab environment in Settings.",
                        title="Jupyter not usable")


def pip_command(python: str) -> str:
    return f"{shlex.quote(python)} -m pip install {shlex.quote(EXTENSION_REQUIREMENT)}"


def check_extension(python: str) -> None:
    """Raise ExtensionMissing unless `python` can import the extension's server module."""
    try:
        proc = subprocess.run([python, "-c", f"import {EXTENSION_MODULE}"], capture_output=True, text=True,
                              timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ExtensionMissing(python, f"cannot run it: {e}") from None
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        raise ExtensionMissing(python, lines[-1] if lines else f"exit status {proc.returncode}")


def jupyter_env(mount_dir: str, sock_path: str, api_port: int) -> dict:
    """Make the extension talk to this daemon and browse this mount dir.

    The extension reaches a TCP daemon only at localhost:9002, so any other port needs the socket.
    """
    env = dict(os.environ, PFS_MOUNT_DIR=mount_dir)
    if sock_path:
        env.update(DEFAULT_SCHEMA="http_unix", PFS_SOCK_PATH=sock_path)
    elif api_port == 9002:
        env["DEFAULT_SCHEMA"] = "http"
    else:
        raise PachtrayError(f"jupyterlab-pachyderm can only reach the daemon on port 9002 or through a socket; "
                            f"set a socket path in Settings (the API port is {api_port}).",
                            title="Cannot open JupyterLab")
    return env


def open_jupyterlab(configured: str, mount_dir: str, sock_path: str, api_port: int, log_path: str) -> Launch:
    """Check everything, then start `jupyter lab` detached from the tray (it outlives a GUI restart)."""
    jupyter = find_jupyter(configured)
    python = jupyter_python(jupyter)
    check_extension(python)
    env = jupyter_env(mount_dir, sock_path, api_port)
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([jupyter, "lab"], env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                cwd=os.path.expanduser("~"))
    return Launch(jupyter, python, proc.pid, {k: env[k] for k in ("PFS_MOUNT_DIR", "DEFAULT_SCHEMA", "PFS_SOCK_PATH")
                                              if k in env})
