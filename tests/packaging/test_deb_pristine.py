"""The .deb on a pristine Debian 12 (debootstrap minbase, from this machine's own apt sources; see
pristine_root.py): `apt-get install ./pachtray_*.deb` adds exactly the closure of its Depends, and with
nothing else a regular user runs the local server, `mount-server` (as jupyterlab-pachyderm starts it)
mounts a repo that reads back through FUSE (fusermount3), the menu entry's app starts offscreen, and
`dpkg -r` stops them all and removes the package but none of the user's data.

The root is cached between runs (a cold run makes it with debootstrap); the timings are printed and
recorded as properties (docs/packaging.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from pachyderm_sdk import Client
from pachyderm_sdk.api import pfs

from conftest import free_port, grpc_serving, stop_process, wait_for
from pristine_root import (CachedRoot, Chroot, depends_closure, mounts_under, parse_available, parse_relations,
                           pristine_root)

pytestmark = [pytest.mark.packaging, pytest.mark.slow, pytest.mark.timeout(1800),
              pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("debootstrap"),
                                 reason="needs root (chroot, bind mounts) and debootstrap (scripts/setup.sh)")]

USER, UID = "alice", 1000  # the machine's only regular account: postinst gives /pfs to it
HOME = f"/home/{USER}"
USER_ENV = {"HOME": HOME, "USER": USER, "LOGNAME": USER}
# Only Qt's Wayland plugins need these; the package recommends them (Qt falls back to xcb).
RECOMMENDED_ONLY = {"libwayland-client.so.0", "libwayland-cursor.so.0", "libwayland-egl.so.1"}


@dataclass
class Installed:
    chroot: Chroot
    deb: Path
    cached: CachedRoot
    before: dict[str, str]
    available: dict[str, dict[str, str]]
    after: dict[str, str]
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def root(self) -> Path:
        return self.chroot.path

    def field(self, name: str) -> str:
        return subprocess.run(["dpkg-deb", "--field", str(self.deb), name], capture_output=True, text=True,
                              check=True).stdout


@pytest.fixture(scope="module")
def installed(built_deb, tmp_path_factory):
    """A fresh copy of the pristine root with a regular user and the .deb installed by apt (no Recommends)."""
    _, deb = built_deb
    started = time.monotonic()
    try:
        context = pristine_root(tmp_path_factory.mktemp("pristine"))
        chroot, cached = context.__enter__()
    except LookupError as e:
        pytest.skip(str(e))
    try:
        timings = {"root_cache": "made (cold)" if cached.made else "reused (warm)",
                   "root_cache_s": round(cached.seconds, 1), "root_ready_s": round(time.monotonic() - started, 1)}
        chroot.run(["useradd", "--create-home", "--uid", str(UID), "--shell", "/bin/bash", USER])
        before = chroot.installed()
        available = parse_available(chroot.run(["apt-cache", "dumpavail"]).stdout)
        shutil.copy2(deb, chroot.path / "tmp" / deb.name)
        t = time.monotonic()
        chroot.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", f"/tmp/{deb.name}"],
                   env={"DEBIAN_FRONTEND": "noninteractive"})
        timings["apt_install_s"] = round(time.monotonic() - t, 1)
        yield Installed(chroot, deb, cached, before, available, chroot.installed(), timings)
    finally:
        context.__exit__(None, None, None)
        print(f"pristine .deb test: {timings} (whole module incl. teardown {time.monotonic() - started:.0f} s)")


def test_apt_adds_exactly_the_depends_closure(installed, record_property):
    """Nothing the Depends do not ask for (no Recommends, no strays) and nothing on top of them: with just
    these the other tests run everything. The Recommends exist in the archive."""
    declared = installed.field("Pre-Depends") + "," + installed.field("Depends")
    expected = depends_closure(declared, installed.available, installed.before) | {"pachtray"}
    added = set(installed.after) - set(installed.before)
    assert added == expected, f"apt added but not in the closure: {sorted(added - expected)}; " \
                              f"in the closure but not added: {sorted(expected - added)}"
    recommends = [alt[0] for alt in parse_relations(installed.field("Recommends"))]
    assert recommends and all(name in installed.available for name in recommends), recommends
    for name, value in installed.timings.items():
        record_property(name, value)
    print(f"pristine root: {len(installed.before)} packages; the .deb added {len(added)}; {installed.timings}")


def test_every_library_resolves_in_the_pristine_root(installed):
    """ldd inside the root for each ELF file of the bundle, with the bundle's folder on the library path as
    its bootloader sets it: only the Wayland plugins' recommended libraries may be missing (the host's
    extra libraries cannot hide a missing Depends, or a bundled library nothing can load, here)."""
    script = ("find /usr/lib/pachtray -type f \\( -name '*.so*' -o -name pachtray \\) -exec sh -c "
              "'for f; do ldd \"$f\" 2>/dev/null | sed -n \"s|^\\t*\\([^ ]*\\) => not found|$f: \\1|p\"; done' _ {} +")
    out = installed.chroot.run(["sh", "-c", script], env={"LD_LIBRARY_PATH": "/usr/lib/pachtray/_internal"}).stdout
    missing = sorted({line for line in out.splitlines() if line.rsplit(": ", 1)[1] not in RECOMMENDED_ONLY})
    assert not missing, "\n".join(missing)
    ldd = installed.chroot.run(["ldd", "/usr/lib/pachtray/_internal/PySide6/Qt/plugins/platforms/libqxcb.so"]).stdout
    assert "libxcb-cursor.so.0 =>" in ldd and "not found" not in ldd, ldd  # the check above can see a miss


def test_run_mount_gui_then_remove_keeps_user_data(installed, tmp_path):
    """As the user: local server, mount-server's FUSE mounts, the menu entry's app; then dpkg -r."""
    chroot, root = installed.chroot, installed.root
    assert (root / "pfs").stat().st_uid == UID  # postinst gave /pfs to the only regular account
    procs: list[subprocess.Popen] = []
    gui_daemon_pid = None

    def start(argv: list[str], name: str, **env: str) -> subprocess.Popen:
        proc = chroot.popen(argv, tmp_path / f"{name}.log", user=UID, env={**USER_ENV, **env})
        procs.append(proc)
        return proc

    def log(name: str) -> str:
        return (tmp_path / f"{name}.log").read_text(errors="replace")[-3000:]

    def wait_running(proc: subprocess.Popen, name: str, ready):
        """Until `ready()` is truthy (its value is returned), failing at once if the process exits."""
        value = wait_for(lambda: proc.poll() is not None or ready(), 120, interval=0.2, what=f"{name} to be ready")
        assert proc.poll() is None, f"{name} exited with {proc.returncode}: {log(name)}"
        return value

    try:
        # The embedded server, run by the user.
        pachd_port = free_port()
        pachd = start(["pachtray", "local-pachd", "--port", str(pachd_port), "--data-dir", f"{HOME}/pachd"], "pachd")
        wait_running(pachd, "pachd", lambda: grpc_serving(pachd_port))
        client = Client(host="127.0.0.1", port=pachd_port)
        client.pfs.create_repo(repo=pfs.Repo(name="smoke"))
        with client.pfs.commit(branch=pfs.Branch.from_uri("smoke@master")) as commit:
            commit.put_file_from_bytes(path="/hello.txt", data=b"hello from a pristine Debian\n")
        commit.wait()
        write_user_file(root, ".pachyderm/config.json", json.dumps({"v2": {"active_context": "local", "contexts": {
            "local": {"pachd_address": f"grpc://127.0.0.1:{pachd_port}"}}}}))

        # mount-server as jupyterlab-pachyderm starts it (its default --allow-other included), on a free port.
        api_port = free_port()
        server = start(["mount-server", "--mount-dir", "/pfs", "--port", str(api_port)], "mount-server")
        api = f"http://127.0.0.1:{api_port}"
        wait_running(server, "mount-server", lambda: requests.get(f"{api}/health", timeout=2).ok)
        resp = requests.put(f"{api}/_mount", json={"mounts": [
            {"name": "smoke", "repo": "smoke", "branch": "master", "mode": "ro"},
            {"name": "draft", "repo": "smoke", "branch": "master", "mode": "rw"}]}, timeout=60)
        assert resp.status_code == 200, f"{resp.status_code} {resp.text}\n{log('mount-server')}"
        mount = next(line for line in Path("/proc/self/mountinfo").read_text().splitlines()
                     if line.split()[4] == str(root / "pfs"))
        assert " fuse.pachtray " in mount and f"user_id={UID}" in mount, mount  # the user's mount (fusermount3)
        read = chroot.run(["cat", "/pfs/smoke/hello.txt"], user=UID, env=USER_ENV)
        assert read.stdout == "hello from a pristine Debian\n"
        chroot.run(["sh", "-c", "echo 'not committed yet' > /pfs/draft/notes.txt"], user=UID, env=USER_ENV)
        server.send_signal(signal.SIGTERM)
        assert server.wait(60) == 0, log("mount-server")
        assert not mounts_under(root / "pfs")

        # The menu entry, as the desktop starts it (offscreen): the app starts its own daemon.
        exec_line = re.search(r"^Exec=(.*)$", (root / "usr/share/applications/pachtray.desktop").read_text(), re.M)[1]
        gui_port = free_port()
        settings = {"api_port": gui_port, "cluster_address": f"grpc://127.0.0.1:{pachd_port}", "restore_mounts": False}
        write_user_file(root, ".config/pachtray/settings.json", json.dumps(settings))
        gui = start(exec_line.split(), "gui", QT_QPA_PLATFORM="offscreen")

        info = wait_running(gui, "gui", lambda: requests.get(f"http://127.0.0.1:{gui_port}/pachtray/v1/info",
                                                             timeout=2).json())
        gui_daemon_pid = info["pid"]
        assert info["mount_dir"] == "/pfs", info
        time.sleep(2)
        assert gui.poll() is None, log("gui")
        self_test = chroot.run(["pachtray", "--self-test"], user=UID, env={**USER_ENV, "QT_QPA_PLATFORM": "offscreen"})
        report = json.loads(self_test.stdout)
        assert report["ok"] and report["icons_render"] and report["fuse"] == "ok", report

        # dpkg -r: prerm stops every process of the package (the app, its daemon, the local server).
        removed = chroot.run(["dpkg", "-r", "pachtray"])
        assert "pachtray: stopping running Pachtray processes" in removed.stdout, removed.stdout
        for proc in procs:
            proc.wait(60)
        wait_for(lambda: not pid_alive(gui_daemon_pid), 60, what="the app's daemon to stop")
        assert not mounts_under(root / "pfs") and not (root / "pfs").exists()  # postrm: the /pfs it made
        assert not (root / "usr/lib/pachtray").exists() and not (root / "usr/bin/mount-server").exists()
        assert "pachtray" not in chroot.installed()
        # The user's data stays: settings, pachctl context, the local server's repos, the staged rw change.
        home = root / HOME.lstrip("/")
        assert json.loads((home / ".config/pachtray/settings.json").read_text()) == settings
        assert (home / ".pachyderm/config.json").is_file()
        assert any(p.is_file() for p in (home / "pachd").rglob("*"))
        assert staged_contents(home / ".local/share/pachtray/staging/draft") == [b"not committed yet\n"]
    finally:
        for proc in procs:
            stop_process(proc)
        if gui_daemon_pid and pid_alive(gui_daemon_pid):
            os.kill(gui_daemon_pid, signal.SIGKILL)


def staged_contents(staging_dir: Path) -> list[bytes]:
    """The content of every staged file kept for the next start: small ones live in the journal's
    `inline` table, the others in `files/` (mount/staging.py)."""
    with contextlib.closing(sqlite3.connect(f"file:{staging_dir / 'journal.sqlite'}?mode=ro", uri=True)) as db:
        inline = [bytes(data) for (data,) in db.execute("SELECT data FROM inline")]
    return inline + [p.read_bytes() for p in (staging_dir / "files").iterdir()]


def write_user_file(root: Path, relative: str, text: str) -> None:
    """A file in the user's home, owned by them (folders too), as they would have written it."""
    path = root / HOME.lstrip("/") / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    for p in [path, *path.relative_to(root / HOME.lstrip("/")).parents]:
        target = root / HOME.lstrip("/") / p
        os.chown(target, UID, UID)


def pid_alive(pid: int) -> bool:
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
