"""The .deb's maintainer scripts run directly against a scratch root (DPKG_ROOT), without a build."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT, stop_process

SCRIPTS = ROOT / "packaging" / "linux"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the scripts chown /pfs, which needs root")


def run(script: str, root: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("SUDO_UID", "PKEXEC_UID")}
    proc = subprocess.run(["sh", str(SCRIPTS / script), *args], capture_output=True, text=True, timeout=120,
                          env=dict(clean, DPKG_ROOT=str(root), **env))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def write_passwd(root: Path, *users: tuple[str, int, str]) -> None:
    (root / "etc").mkdir(parents=True, exist_ok=True)
    lines = ["root:x:0:0:root:/root:/bin/bash", "nobody:x:65534:65534::/nonexistent:/usr/sbin/nologin"]
    lines += [f"{name}:x:{uid}:{uid + 100}::/home/{name}:{shell}" for name, uid, shell in users]
    (root / "etc/passwd").write_text("\n".join(lines) + "\n")


def test_postinst_gives_pfs_to_the_sudo_user_and_postrm_removes_it(tmp_path):
    run("postinst", tmp_path, "configure", SUDO_UID="4321")
    pfs = tmp_path / "pfs"
    assert pfs.is_dir() and pfs.stat().st_uid == 4321 and (pfs.stat().st_mode & 0o777) == 0o755
    run("postrm", tmp_path, "remove")
    assert not pfs.exists() and not (tmp_path / "var/lib/pachtray").exists()


def test_postinst_picks_the_only_regular_account(tmp_path):
    write_passwd(tmp_path, ("alice", 1000, "/bin/bash"), ("svc", 1001, "/usr/sbin/nologin"))
    run("postinst", tmp_path, "configure")
    assert (tmp_path / "pfs").stat().st_uid == 1000 and (tmp_path / "pfs").stat().st_gid == 1100


def test_postinst_leaves_pfs_to_root_when_the_user_is_unknown(tmp_path):
    write_passwd(tmp_path, ("alice", 1000, "/bin/bash"), ("bob", 1001, "/bin/zsh"))
    run("postinst", tmp_path, "configure")
    assert (tmp_path / "pfs").stat().st_uid == 0


def test_postinst_keeps_a_pfs_that_is_in_use(tmp_path):
    pfs = tmp_path / "pfs"
    pfs.mkdir()
    (pfs / "data.csv").write_text("x\n")
    run("postinst", tmp_path, "configure", SUDO_UID="4321")
    assert pfs.stat().st_uid == 0
    run("postrm", tmp_path, "remove")
    assert (pfs / "data.csv").exists()  # not created by the package: kept


def test_prerm_stops_only_processes_of_the_package_binary(tmp_path):
    """A copy of `sleep` installed as the package's binary stands in for a running Pachtray."""
    binary = tmp_path / "usr/lib/pachtray/pachtray"
    binary.parent.mkdir(parents=True)
    shutil.copy2(shutil.which("sleep"), binary)
    ours = subprocess.Popen([str(binary), "300"])
    other = subprocess.Popen([shutil.which("sleep"), "300"])
    try:
        proc = run("prerm", tmp_path, "remove")
        assert f"stopping running Pachtray processes: {ours.pid}" in proc.stdout, proc.stdout
        assert ours.wait(30) != 0  # SIGTERM
        assert other.poll() is None
    finally:
        stop_process(ours)
        stop_process(other)
