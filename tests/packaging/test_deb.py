"""Build the PyInstaller bundle and the .deb (packaging/build.sh), install the .deb into a scratch
root with dpkg (maintainer scripts included), and run the installed binary headless.

dpkg runs the maintainer scripts outside a chroot (`--force-script-chrootless`) with DPKG_ROOT
set to the scratch root, which the scripts honour; dependencies are those of this machine
(scripts/setup.sh installs them), hence `--force-depends` for the empty scratch database.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest
import requests
from pachyderm_sdk import Client
from pachyderm_sdk.api import pfs

from conftest import Daemon, free_port, wait_for
from pachtray import __version__

pytestmark = [pytest.mark.packaging, pytest.mark.slow, pytest.mark.timeout(900)]

HICOLOR_SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)


def dpkg(root: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = ["dpkg", f"--root={root}", f"--log={root}/var/log/dpkg.log", "--force-script-chrootless", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=dict(os.environ, **(env or {})))


def scratch_root(path: Path) -> Path:
    for d in ("var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers", "var/log"):
        (path / d).mkdir(parents=True, exist_ok=True)
    for f in ("var/lib/dpkg/status", "var/lib/dpkg/available"):
        (path / f).touch()
    return path


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def unix_get(sock_path: str, url: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("localhost", timeout=30)
    conn.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.sock.connect(sock_path)
    try:
        conn.request("GET", url)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


class InstalledDaemon(Daemon):
    """The conftest Daemon, run from the installed package's binary instead of the source tree."""

    def __init__(self, binary: Path, tmp: Path, local_port: int):
        super().__init__(tmp, None, extra=["--local-pachd-port", str(local_port)])
        self.binary = binary

    def command(self) -> list[str]:
        source_cmd = super().command()
        assert source_cmd[1:4] == ["-m", "pachtray", "daemon"], source_cmd
        return [str(self.binary), *source_cmd[3:]]


@pytest.fixture(scope="module")
def unpacked(built_deb, tmp_path_factory):
    """The .deb's files (dpkg-deb -x)."""
    root = tmp_path_factory.mktemp("unpacked")
    subprocess.run(["dpkg-deb", "-x", str(built_deb[1]), str(root)], check=True)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_deb_contents(built_deb, unpacked):
    _, deb = built_deb
    info = subprocess.run(["dpkg-deb", "--field", str(deb), "Package", "Architecture", "Depends"],
                          capture_output=True, text=True, check=True).stdout
    assert "Package: pachtray" in info
    depends = {d.strip().split()[0] for d in info.split("Depends:", 1)[1].replace("\n", " ").split(",")}
    assert {"fuse3", "libfuse3-3", "libxcb-cursor0", "libxkbcommon-x11-0"} <= depends
    # apt accepts the package and can satisfy its Depends (Debian 12 package names, versions).
    sim = subprocess.run(["apt-get", "install", "--simulate", "-q", str(deb)], capture_output=True, text=True,
                         timeout=300)
    assert sim.returncode == 0 and re.search(r"^Inst pachtray ", sim.stdout, re.M), sim.stdout + sim.stderr

    root = unpacked  # the files as installed
    for name in ("pachtray", "mount-server"):
        link = root / "usr/bin" / name
        assert link.is_symlink() and os.readlink(link) == "../lib/pachtray/pachtray", link
    desktop = (root / "usr/share/applications/pachtray.desktop").read_text()
    assert re.search(r"^Exec=pachtray$", desktop, re.M) and re.search(r"^Icon=pachtray$", desktop, re.M)
    assert "NoDisplay" not in desktop  # shows in the applications menu
    assert "Exec=pachtray" in (root / "usr/share/pachtray/pachtray-autostart.desktop").read_text()
    icons = root / "usr/share/icons/hicolor"
    assert (icons / "scalable/apps/pachtray.svg").read_bytes().lstrip().startswith(b"<svg")
    for size in HICOLOR_SIZES:
        assert png_size(icons / f"{size}x{size}/apps/pachtray.png") == (size, size)

    internal = root / "usr/lib/pachtray/_internal"
    plugins = internal / "PySide6/Qt/plugins"
    for plugin in ("platforms/libqxcb.so", "platforms/libqoffscreen.so", "iconengines/libqsvgicon.so",
                   "imageformats/libqsvg.so"):
        assert (plugins / plugin).is_file(), plugin
    assert (internal / "certifi/cacert.pem").is_file()
    assert (internal / "pachtray/resources/pachtray.svg").is_file()
    assert not list(internal.glob("libfuse3.so*")), "libfuse3 must come from the system (Depends)"


def test_deb_is_what_a_software_centre_shows(built_deb, unpacked):
    """The control fields a package installer lists (name, summary, description, section, homepage,
    size), and the AppStream metadata and menu entry it reads from the package, valid as installed."""
    _, deb = built_deb
    fields = dict(re.findall(r"^([A-Za-z-]+): ?(.*(?:\n .*)*)", subprocess.run(
        ["dpkg-deb", "--field", str(deb)], capture_output=True, text=True, check=True).stdout, re.M))
    assert fields["Package"] == "pachtray" and fields["Version"] == __version__
    assert fields["Section"] == "utils" and fields["Priority"] == "optional"
    assert re.fullmatch(r"https://\S+", fields["Homepage"]) and re.search(r"<[^@>]+@[^>]+>", fields["Maintainer"])
    synopsis, *body = fields["Description"].split("\n")
    assert 10 < len(synopsis) <= 80 and not synopsis.lower().startswith("pachtray"), synopsis
    assert len(body) >= 2 and all(line.startswith(" ") for line in body), body
    files = [f for f in unpacked.rglob("*") if f.is_file() and not f.is_symlink()]
    actual_kib = sum(f.stat().st_size for f in files) / 1024
    assert 0.95 * actual_kib <= int(fields["Installed-Size"]) <= 1.15 * actual_kib, (fields["Installed-Size"], actual_kib)

    metainfo = unpacked / "usr/share/metainfo/io.github.pachtray.Pachtray.metainfo.xml"
    assert metainfo.is_file()
    # The installed tree as a software centre sees it: metainfo, the desktop entry it launches, the icon.
    proc = subprocess.run(["appstreamcli", "validate-tree", "--no-net", str(unpacked)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for desktop in ("usr/share/applications/pachtray.desktop", "usr/share/pachtray/pachtray-autostart.desktop"):
        proc = subprocess.run(["desktop-file-validate", str(unpacked / desktop)], capture_output=True, text=True)
        assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout


def test_bundle_self_test(built_deb):
    """Inside the frozen bundle: Qt platform + SVG/PNG plugins, icons, CA bundle, lazily imported modules."""
    bundle, _ = built_deb
    proc = subprocess.run([str(bundle / "pachtray"), "--self-test"], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, QT_QPA_PLATFORM="offscreen"))
    report = json.loads(proc.stdout)
    assert proc.returncode == 0 and report["ok"], (report, proc.stderr[-2000:])
    assert report["frozen"] is True and report["qt_platform"] == "offscreen"
    assert report["fuse"] == "ok"
    if shutil.which("xvfb-run"):  # the xcb plugin against a real X server, with the system's xcb libraries
        proc = subprocess.run(["xvfb-run", "-a", str(bundle / "pachtray"), "--self-test"], capture_output=True,
                              text=True, timeout=120, env=dict(os.environ, QT_QPA_PLATFORM="xcb"))
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert json.loads(proc.stdout)["qt_platform"] == "xcb"


# Libraries only Qt's Wayland plugins need: recommended, not required (Qt falls back to xcb).
WAYLAND_LIBS = {"libwayland-client.so.0": "libwayland-client0", "libwayland-cursor.so.0": "libwayland-cursor0",
                "libwayland-egl.so.1": "libwayland-egl1"}


def test_bundle_libraries_resolve(built_deb):
    """Every ELF file in the bundle finds its shared libraries: bundled, from the Depends, or (Wayland
    plugins only) from the Recommends."""
    bundle, deb = built_deb
    recommends = subprocess.run(["dpkg-deb", "--field", str(deb), "Recommends"], capture_output=True, text=True,
                                check=True).stdout
    unresolved = {}
    for path in [bundle / "pachtray", *(bundle / "_internal").rglob("*.so*")]:
        if path.is_symlink() or not path.is_file():
            continue
        with open(path, "rb") as f:
            if f.read(4) != b"\x7fELF":
                continue
        out = subprocess.run(["ldd", str(path)], capture_output=True, text=True).stdout
        missing = {line.split()[0] for line in out.splitlines() if "not found" in line}
        if not all(lib in WAYLAND_LIBS and WAYLAND_LIBS[lib] in recommends for lib in missing):
            unresolved[str(path.relative_to(bundle))] = sorted(missing)
    assert not unresolved, unresolved


def test_install_run_headless_uninstall(built_deb, tmp_path, record_property):
    """dpkg installs; the installed `pachtray daemon` serves /health on TCP and the socket with its
    embedded local server; a ro mount reads a file back; `mount-server --help` works from PATH;
    dpkg -r stops the running daemon and leaves no mount behind."""
    bundle, deb = built_deb
    root = scratch_root(tmp_path / "root")
    proc = dpkg(root, "--force-depends", "-i", str(deb), env={"SUDO_UID": "4242"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (root / "pfs").is_dir() and (root / "pfs").stat().st_uid == 4242  # postinst: /pfs for the installing user

    bin_dir = root / "usr/bin"
    help_out = subprocess.run(["mount-server", "--help"], capture_output=True, text=True, timeout=120,
                              env=dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}"))
    assert help_out.returncode == 0 and "--mount-dir" in help_out.stdout, help_out.stderr
    assert help_out.stdout.startswith("usage: mount-server")

    local_port = free_port()
    daemon = InstalledDaemon(bin_dir / "pachtray", tmp_path / "run", local_port)
    daemon.tmp.mkdir()
    started = time.monotonic()
    daemon.start(timeout=180)
    try:
        healthy = time.monotonic() - started
        # /health answers at once; the embedded local server and the connection to it follow.
        wait_for(lambda: daemon.get("/config", timeout=5).status_code == 200, 120, interval=0.1,
                 what="the daemon to connect to its embedded local server")
        connected = time.monotonic() - started
        metrics = {"cold_start_to_healthy_s": round(healthy, 2), "cold_start_to_connected_s": round(connected, 2),
                   "deb_mb": round(deb.stat().st_size / 2**20, 1),
                   "bundle_mb": round(sum(f.stat().st_size for f in bundle.rglob("*")
                                         if f.is_file() and not f.is_symlink()) / 2**20)}
        for name, value in metrics.items():
            record_property(name, value)
        print(f"packaging metrics (docs/packaging.md): {metrics}")
        assert daemon.get("/health").json()["status"] == "running"
        status, body = unix_get(daemon.sock_path, "/health")
        assert status == 200 and json.loads(body)["status"] == "running"

        client = Client(host="127.0.0.1", port=local_port)
        client.pfs.create_repo(repo=pfs.Repo(name="smoke"))
        with client.pfs.commit(branch=pfs.Branch.from_uri("smoke@master")) as commit:
            commit.put_file_from_bytes(path="/hello.txt", data=b"hello from the .deb\n")
        commit.wait()
        resp = daemon.put("/_mount", {"mounts": [{"name": "smoke", "repo": "smoke", "branch": "master", "mode": "ro"}]})
        assert resp.status_code == 200, resp.text
        assert (daemon.mount_dir / "smoke" / "hello.txt").read_bytes() == b"hello from the .deb\n"

        gui = start_menu_entry(root, tmp_path, f"grpc://127.0.0.1:{local_port}")
        try:
            proc = dpkg(root, "-r", "pachtray")
            assert proc.returncode == 0, proc.stdout + proc.stderr
            assert "pachtray: stopping running Pachtray processes" in proc.stdout, proc.stdout  # prerm did it
            assert daemon.proc.wait(60) == 0, daemon.log.read_text()[-3000:]
            gui.wait(60)  # raises TimeoutExpired when prerm left the app running
            wait_for(lambda: not os.path.ismount(daemon.mount_dir), 30, what="the mount to go away")
            assert not [pid for pid in running_pids() if pid_exe(pid).startswith(str(root))], "prerm left processes"
            assert not (root / "usr/lib/pachtray").exists() and not (root / "usr/bin/mount-server").exists()
            assert not (root / "pfs").exists()  # postrm removed the /pfs it created
        finally:
            if gui.poll() is None:
                gui.kill()
    finally:
        daemon.stop()


def start_menu_entry(root: Path, tmp: Path, cluster: str) -> subprocess.Popen:
    """Run the installed .desktop entry's Exec line as a menu would (offscreen Qt), with settings
    that keep its daemon off the user's port, socket and mount dir; returns once its daemon is healthy."""
    exec_line = re.search(r"^Exec=(.*)$", (root / "usr/share/applications/pachtray.desktop").read_text(), re.M)[1]
    settings = {"api_port": free_port(), "sock_path": str(tmp / "gui.sock"), "mount_dir": str(tmp / "gui-pfs"),
                "cluster_address": cluster, "restore_mounts": False}
    path = Path(os.environ["XDG_CONFIG_HOME"]) / "pachtray" / "settings.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings))
    env = dict(os.environ, PATH=f"{root / 'usr/bin'}{os.pathsep}{os.environ['PATH']}", QT_QPA_PLATFORM="offscreen")
    log = tmp / "gui.log"
    gui = subprocess.Popen(exec_line.split(), env=env, stdout=open(log, "ab"), stderr=subprocess.STDOUT)

    def healthy() -> bool:
        assert gui.poll() is None, f"the app exited with {gui.returncode}: {log.read_text()[-3000:]}"
        return requests.get(f"http://127.0.0.1:{settings['api_port']}/health", timeout=2).ok

    wait_for(healthy, 120, interval=0.2, what="the menu entry's app to start its daemon")
    return gui


def running_pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def pid_exe(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""
