"""pachtray.frozen outside a bundle: name dispatch, the FUSE prerequisite messages, the self-test."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT
from pachtray import __version__, frozen


@pytest.mark.parametrize("argv0, name", [("/usr/bin/mount-server", "mount-server"), ("mount-server.exe", "mount-server"),
                                         (r"C:\Pachtray\MOUNT-SERVER.EXE", r"C:\Pachtray\MOUNT-SERVER"),
                                         ("/usr/lib/pachtray/pachtray", "pachtray")])
def test_invoked_as(argv0, name):
    assert frozen.invoked_as(argv0) == name


def test_main_dispatches_on_program_name(capsys):
    with pytest.raises(SystemExit) as exited:
        frozen.main(["/usr/bin/mount-server", "--help"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith("usage: mount-server")

    assert frozen.main(["/usr/bin/pachtray", "--version"]) == 0
    assert capsys.readouterr().out.strip() == f"pachtray {__version__}"


def test_fuse_prerequisite_on_this_machine():
    assert frozen.check_fuse_prerequisite() is None  # /dev/fuse, fusermount3 and libfuse3 are here


def test_fuse_prerequisite_messages_say_what_to_install(monkeypatch):
    message = frozen.check_fuse_prerequisite("win32")  # no winreg on Linux: WinFsp counts as missing
    assert "WinFsp" in message and "https://winfsp.dev/rel/" in message
    assert "no supported FUSE" in frozen.check_fuse_prerequisite("sunos5")

    monkeypatch.setattr(frozen.shutil, "which", lambda name: None)
    message = frozen.check_fuse_prerequisite("linux")
    assert "fusermount3 helper is missing" in message and "apt-get install fuse3" in message


def test_self_test_through_the_bundle_entry_script():
    """`pachtray --self-test` through packaging/pachtray_entry.py, in its own process (it makes a Qt app)."""
    proc = subprocess.run([sys.executable, str(ROOT / "packaging" / "pachtray_entry.py"), "--self-test"],
                          capture_output=True, text=True, timeout=120, env=dict(os.environ, QT_QPA_PLATFORM="offscreen"))
    report = json.loads(proc.stdout)
    assert proc.returncode == 0 and report["ok"], (report, proc.stderr)
    assert report["frozen"] is False and "pachtray.svg" in report["icons"] and report["icons_render"]


def test_allow_other_needs_root_or_user_allow_other(tmp_path, monkeypatch):
    """fusermount3 refuses a user's whole mount when allow_other is asked for and /etc/fuse.conf does not
    permit it (a stock Debian's does not), so the daemon asks for it only when permitted."""
    conf = tmp_path / "fuse.conf"
    conf.write_text("# user_allow_other - lets users pass allow_other\n#user_allow_other\n")
    monkeypatch.setattr(frozen.os, "geteuid", lambda: 1000)
    assert not frozen.allow_other_permitted(str(conf))
    assert not frozen.allow_other_permitted(str(tmp_path / "missing.conf"))
    conf.write_text("mount_max = 1000\n user_allow_other \n")
    assert frozen.allow_other_permitted(str(conf))
    monkeypatch.setattr(frozen.os, "geteuid", lambda: 0)
    assert frozen.allow_other_permitted(str(tmp_path / "missing.conf"))
