"""A Jupyter of the user's own (chosen in Settings), started wired to the daemon.

The extension must be importable by the Python that runs *that* `jupyter` (the server side of
jupyterlab-pachyderm runs in the Jupyter server, not in a kernel), so we find the interpreter
from the script's shebang and ask it directly. jupyterlab-pachyderm 2.8's panel is built for
JupyterLab 3: under JupyterLab 4 the server side loads but the panel does not.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pachtray.errors import PachtrayError
from pachtray.jupyter.server import Wiring

EXTENSION_MODULE = "jupyterlab_pachyderm"
EXTENSION_REQUIREMENT = "jupyterlab-pachyderm>=2.8,<2.9"


class ExtensionMissing(PachtrayError):
    """jupyterlab-pachyderm is not installed where the chosen `jupyter` runs."""

    def __init__(self, python: str, detail: str = ""):
        self.pip_command = pip_command(python)
        super().__init__(f"jupyterlab-pachyderm is not installed in the environment of this Jupyter "
                         f"({python}){': ' + detail if detail else ''}.\n\nInstall it with:\n\n"
                         f"    {self.pip_command}\n\nthen choose Open JupyterLab again, or use Pachtray's own "
                         "JupyterLab (Settings).", title="JupyterLab extension missing")


class PanelWillNotLoad(PachtrayError):
    """The user's JupyterLab is 4 or newer: the 2.8 extension's panel is built for JupyterLab 3."""

    def __init__(self, jupyterlab: str, extension: str | None):
        self.jupyterlab, self.extension = jupyterlab, extension
        has = f"jupyterlab-pachyderm {extension}" if extension else "no jupyterlab-pachyderm"
        super().__init__(f"This Jupyter has JupyterLab {jupyterlab} and {has}. jupyterlab-pachyderm 2.8's panel is "
                         "built for JupyterLab 3, so it will not load in this JupyterLab.\n\nPachtray's own "
                         "JupyterLab (3.6, with the panel) can run your notebooks with your kernels instead.",
                         title="The Pachyderm panel will not load")


@dataclass
class Launch:
    jupyter: str
    python: str
    pid: int
    env: dict


def find_jupyter(configured: str) -> str:
    path = Path(configured).expanduser()
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise PachtrayError(f"The Jupyter program chosen in Settings is not an executable file: {path}",
                            title="Jupyter not found")
    return str(path)


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


_PROBE = f"""
import importlib, importlib.metadata as md, json
def version(name):
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None
try:
    importlib.import_module({EXTENSION_MODULE!r})
    error = ""
except Exception as e:
    error = "%s: %s" % (type(e).__name__, e)
print(json.dumps({{"jupyterlab": version("jupyterlab"), "extension": version("jupyterlab-pachyderm"), "error": error}}))
"""


def inspect(python: str) -> dict:
    """{"jupyterlab": version|None, "extension": version|None, "error": why the extension does not import}."""
    try:
        proc = subprocess.run([python, "-c", _PROBE], capture_output=True, text=True, timeout=60)
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError) as e:
        raise ExtensionMissing(python, f"cannot run it: {e}") from None
    except (ValueError, IndexError):
        lines = proc.stderr.strip().splitlines()
        raise ExtensionMissing(python, lines[-1] if lines else f"exit status {proc.returncode}") from None


def check_extension(python: str) -> dict:
    """Raise PanelWillNotLoad for JupyterLab >= 4, ExtensionMissing unless the extension imports."""
    found = inspect(python)
    lab = found.get("jupyterlab")
    if lab and _major(lab) >= 4 and not _major_minor(found.get("extension") or "") > (2, 8):
        raise PanelWillNotLoad(lab, found.get("extension"))
    if found.get("error"):
        raise ExtensionMissing(python, found["error"].splitlines()[-1])
    return found


def _major(version: str) -> int:
    return _major_minor(version)[0]


def _major_minor(version: str) -> tuple[int, int]:
    parts = (version.split(".") + ["0", "0"])[:2]
    try:
        return int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or 0)
    except ValueError:
        return 0, 0


def open_user_jupyter(configured: str, wiring: Wiring, log_path: str) -> Launch:
    """Check everything, then start `jupyter lab` detached from the tray (it outlives a GUI restart)."""
    jupyter = find_jupyter(configured)
    python = jupyter_python(jupyter)
    check_extension(python)
    extension_env = wiring.env()
    env = dict(os.environ, **extension_env)
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([jupyter, "lab"], env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True, cwd=os.path.expanduser("~"))
    return Launch(jupyter, python, proc.pid, extension_env)
