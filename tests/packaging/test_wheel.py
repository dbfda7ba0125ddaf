"""`pip install` of the project as a user does it: build the wheel from a copy of the checkout,
install it into a fresh venv (pinned deps from constraints.txt) and start the installed GUI
offscreen. The editable install the tests run from finds the icons in the checkout, which hid that
the wheel had none."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import requests

from conftest import ROOT, free_port, stop_process, wait_for

pytestmark = [pytest.mark.packaging, pytest.mark.slow, pytest.mark.timeout(600)]

ICONS = sorted(p.name for p in (ROOT / "resources").glob("*.svg"))


def checkout_copy(dest: Path) -> Path:
    """The files git would commit (tracked and untracked-but-not-ignored), without .venv or build output."""
    names = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, names):
        src = ROOT / name
        if src.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(src.read_bytes())
    return dest


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory):
    """(wheel, venv python): the built wheel installed with its pinned dependencies into a new venv."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = checkout_copy(tmp / "src")
    out = tmp / "dist"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(src)],
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = out.glob("pachtray-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", "-c", str(ROOT / "constraints.txt"), str(wheel)],
                             capture_output=True, text=True, timeout=400)
    assert install.returncode == 0, install.stdout + install.stderr
    return wheel, python


def test_wheel_carries_the_icons(wheel_venv):
    wheel, _ = wheel_venv
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    assert {f"pachtray/resources/{icon}" for icon in ICONS} <= names, sorted(names)


def test_installed_self_test_finds_and_renders_the_icons(wheel_venv, tmp_path):
    """The installed package (not the checkout) loads its icons with Qt's SVG plugin."""
    _, python = wheel_venv
    proc = subprocess.run([str(python), "-m", "pachtray.frozen", "--self-test"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env=dict(os.environ, QT_QPA_PLATFORM="offscreen"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] and report["icons_render"] and report["icons"] == ICONS, report
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    assert Path(report["resources"]) == site / "pachtray" / "resources", report


def test_installed_gui_starts_offscreen_with_its_icons(wheel_venv, tmp_path, pachd):
    """`pachtray` from the venv, offscreen: the app loads its icons, starts the venv's daemon (which only
    happens after the icons loaded) and quits on SIGTERM with status 0."""
    _, python = wheel_venv
    settings = {"api_port": free_port(), "sock_path": str(tmp_path / "gui.sock"), "mount_dir": str(tmp_path / "pfs"),
                "cluster_address": pachd.address, "restore_mounts": False}
    path = Path(os.environ["XDG_CONFIG_HOME"]) / "pachtray" / "settings.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings))
    log = tmp_path / "gui.log"
    gui = subprocess.Popen([str(python.parent / "pachtray")], cwd=tmp_path, stdout=open(log, "ab"),
                           stderr=subprocess.STDOUT, env=dict(os.environ, QT_QPA_PLATFORM="offscreen"))
    daemon_pid = None
    try:
        def exited_or_daemon_info():
            if gui.poll() is not None:
                return True
            resp = requests.get(f"http://127.0.0.1:{settings['api_port']}/pachtray/v1/info", timeout=2)
            return resp.ok and resp.json()

        info = wait_for(exited_or_daemon_info, 120, interval=0.2, what="the installed app to start its daemon")
        assert gui.poll() is None, f"the app exited with {gui.returncode}: {log.read_text()[-3000:]}"
        daemon_pid = info["pid"]
        argv = Path(f"/proc/{daemon_pid}/cmdline").read_bytes().split(b"\0")
        assert argv[0].decode() == str(python), argv  # the venv's daemon, not the checkout's
        time.sleep(1)
        assert gui.poll() is None, log.read_text()[-3000:]
        gui.send_signal(signal.SIGTERM)
        assert gui.wait(30) == 0, log.read_text()[-3000:]
        assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
    finally:
        stop_process(gui)
        if daemon_pid:
            stop_pid(daemon_pid)


def stop_pid(pid: int, timeout: float = 30) -> None:
    """SIGTERM a process this test caused (the app's daemon, not our child), then SIGKILL."""
    try:
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text(),
                 timeout, what=f"pid {pid} to exit")
    except ProcessLookupError:
        return
    except TimeoutError:
        os.kill(pid, signal.SIGKILL)
