"""The kernels Pachtray's JupyterLab offers: the user's, found where Jupyter looks for them.

A notebook's libraries live in its kernel's environment, not in JupyterLab's, so the user's own
Python environments become kernels (a kernelspec in the user's kernel folder), and JupyterLab
finds them there like any Jupyter would. The managed environment adds a default Python kernel.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from pachtray.errors import PachtrayError
from pachtray.files import write_json


@dataclass
class KernelSpec:
    name: str
    display_name: str
    language: str
    argv: list[str]
    folder: str


class IpykernelMissing(PachtrayError):
    """The chosen Python cannot run a kernel: ipykernel is not installed there."""

    def __init__(self, python: str):
        self.command = f"{shlex.quote(python)} -m pip install ipykernel"
        super().__init__(f"ipykernel is not installed in {python}, so it cannot run notebooks.\n\nInstall it in that "
                         f"environment:\n\n    {self.command}\n\n(or `conda install -p <env> ipykernel` for a conda "
                         "environment), then add it again.", title="ipykernel missing")


def user_data_dir() -> Path:
    """Jupyter's per-user data folder (jupyter_core's rule)."""
    if os.environ.get("JUPYTER_DATA_DIR"):
        return Path(os.environ["JUPYTER_DATA_DIR"])
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Jupyter"
    if os.name == "nt":
        return Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming") / "jupyter"
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "jupyter"


def kernel_dirs(env_path: str | os.PathLike | None = None) -> list[Path]:
    """Where Jupyter looks for kernelspecs, in its order: JUPYTER_PATH, the user's, the environment's, the system's."""
    data = [Path(p) for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p]
    data.append(user_data_dir())
    if env_path:
        data.append(Path(env_path) / "share" / "jupyter")
    if os.name == "nt":
        data.append(Path(os.environ.get("PROGRAMDATA", r"C:\ProgramData")) / "jupyter")
    else:
        data += [Path("/usr/local/share/jupyter"), Path("/usr/share/jupyter")]
    return [d / "kernels" for d in data]


def list_kernels(env_path: str | os.PathLike | None = None) -> list[KernelSpec]:
    """Every kernelspec found; the first of each name wins, as in Jupyter."""
    found: dict[str, KernelSpec] = {}
    for folder in kernel_dirs(env_path):
        try:
            entries = sorted(folder.iterdir())
        except OSError:
            continue
        for entry in entries:
            spec = _read_spec(entry)
            if spec is not None and spec.name not in found:
                found[spec.name] = spec
    return sorted(found.values(), key=lambda s: s.display_name.lower())


def _read_spec(folder: Path) -> KernelSpec | None:
    try:
        raw = json.loads((folder / "kernel.json").read_text(encoding="utf-8"))
        return KernelSpec(folder.name, str(raw.get("display_name") or folder.name), str(raw.get("language", "")),
                          list(raw["argv"]), str(folder))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def python_of(path: str | os.PathLike) -> str:
    """The interpreter of an environment folder (venv or conda), or the interpreter itself."""
    p = Path(path).expanduser()
    if p.is_dir():
        for candidate in (p / "bin" / "python", p / "bin" / "python3", p / "Scripts" / "python.exe",
                          p / "python.exe"):
            if candidate.exists():
                return str(candidate)
        raise PachtrayError(f"{p} is not a Python environment (no bin/python in it). Choose the environment's "
                            "folder or its python program.", title="Not a Python environment")
    if not (p.is_file() and os.access(p, os.X_OK)):
        raise PachtrayError(f"{p} is not a Python program. Choose the environment's folder or its python program.",
                            title="Not a Python environment")
    return str(p)


_PROBE = ("import json, sys, importlib.util\n"
          "print(json.dumps({'prefix': sys.prefix, 'version': '%d.%d' % sys.version_info[:2],\n"
          "                  'ipykernel': importlib.util.find_spec('ipykernel') is not None}))")


def add_python_kernel(path: str | os.PathLike, display_name: str = "") -> KernelSpec:
    """Write a kernelspec for that environment into the user's kernel folder (replacing one of the same name)."""
    python = python_of(path)
    try:
        out = subprocess.run([python, "-c", _PROBE], capture_output=True, text=True, timeout=60)
        info = json.loads(out.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        raise PachtrayError(f"{python} does not run as a Python interpreter.", title="Not a Python environment") from None
    if not info["ipykernel"]:
        raise IpykernelMissing(python)
    label = _env_label(info["prefix"])
    name = f"{label}-py{info['version'].replace('.', '')}"
    folder = user_data_dir() / "kernels" / name
    folder.mkdir(parents=True, exist_ok=True)
    spec = {"argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": display_name or f"Python {info['version']} ({label})", "language": "python",
            "metadata": {"debugger": True, "pachtray": {"added_from": str(path)}}}
    write_json(folder / "kernel.json", spec, indent=1, mode=0o644)
    return _read_spec(folder)


def _env_label(prefix: str) -> str:
    """A kernel name part from the environment's folder name (`/usr` is the system's Python)."""
    p = Path(prefix)
    name = p.name.lower()
    if name in ("usr", "local", ""):
        name = "system"
    if name in (".venv", "venv", "env", ".env") and p.parent.name:
        name = f"{p.parent.name.lower()}-{name.lstrip('.')}"
    return re.sub(r"[^a-z0-9._-]+", "-", name).strip("-.") or "python"
