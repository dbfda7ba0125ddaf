"""The command lines users and jupyterlab-pachyderm run."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from conftest import PY

from pachtray import __version__


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "pachtray", *args], capture_output=True, text=True, timeout=60)


def test_version():
    proc = _run("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"pachtray {__version__}"


def test_mount_server_help_shows_the_reference_flags_and_defaults():
    proc = _run("mount-server", "--help")
    assert proc.returncode == 0
    for flag in ("--mount-dir", "--sock-path", "--allow-other", "--log-file", "--port", "--no-tcp"):
        assert flag in proc.stdout
    assert "/pfs" in proc.stdout and "9002" in proc.stdout


def test_mount_server_console_script_is_installed():
    script = Path(PY).parent / "mount-server"
    found = shutil.which("mount-server", path=str(script.parent)) or shutil.which("mount-server")
    assert found, "the mount-server console script is not on PATH"
    proc = subprocess.run([found, "--help"], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PATH=f"{script.parent}:{os.environ['PATH']}"))
    assert proc.returncode == 0 and "--mount-dir" in proc.stdout


def test_daemon_help_lists_its_flags():
    proc = _run("daemon", "--help")
    assert proc.returncode == 0
    for flag in ("--data-dir", "--pachd-address", "--local-pachd-port", "--mount-dir", "--port", "--sock-path"):
        assert flag in proc.stdout


def test_bad_flags_are_usage_errors():
    proc = _run("mount-server", "--allow-other=maybe")
    assert proc.returncode == 2 and "expected true or false, got 'maybe'" in proc.stderr
    proc = _run("daemon", "--pachd-address", "ftp://nowhere", "--port", "1", "--mount-dir", "/tmp/x-unused")
    assert proc.returncode == 2 and "either empty or poorly formatted cluster endpoint" in proc.stderr
