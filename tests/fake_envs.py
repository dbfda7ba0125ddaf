"""Python environments of a given make-up for the Jupyter tests, made in a second (no downloads),
and a pip that sees only one index.

A real venv (`--without-pip`) whose site-packages holds stand-in packages: importable modules and
the dist-info metadata importlib.metadata reads, so the code under test asks a real interpreter.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def fake_env(folder: Path, dists: dict[str, str] | None = None, modules: tuple[str, ...] = ()) -> Path:
    """A venv at `folder` with distributions `dists` (name -> version) and importable `modules`; returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=120)
    python = folder / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    for name, version in (dists or {}).items():
        info = site / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    for module in modules:
        (site / module).mkdir(parents=True, exist_ok=True)
        (site / module / "__init__.py").write_text("")
    return python


def fake_jupyter(folder: Path, python: str | Path) -> Path:
    """A `jupyter` script run by `python` that records its arguments and environment in ran.json."""
    script = folder / "jupyter"
    script.write_text(f"#!{python}\nimport json, os, sys\n"
                      f"json.dump({{'argv': sys.argv[1:], 'env': dict(os.environ)}}, "
                      f"open({str(folder / 'ran.json')!r}, 'w'))\n")
    script.chmod(0o755)
    return script


def pip_index_only(monkeypatch, port: int) -> None:
    """pip with no configuration files and only the index at 127.0.0.1:port, tried once."""
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{port}/simple/")
    monkeypatch.setenv("PIP_RETRIES", "0")
    for name in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_NO_INDEX"):
        monkeypatch.delenv(name, raising=False)
