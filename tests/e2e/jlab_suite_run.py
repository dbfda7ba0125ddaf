"""Run jupyterlab-pachyderm's own integration suite, unmodified, against Pachtray; started inside
a fresh network namespace (`unshare --net`), because the suite hard-codes localhost:30650 (pachd),
localhost:8888 (its dev server) and, over TCP, localhost:9002 (the mount-server).

In the namespace: bring `lo` up, start the embedded server (`pachtray local-pachd --port 30650`),
then run the suite with the extension's venv and jlab_suite_plugin, as a user's JupyterLab would:
one HOME for the whole run (pachctl config, Pachtray's data and settings all under it), our
`mount-server` first on PATH, spawned by the extension itself. Exits with pytest's status.

Usage: unshare --net PY jlab_suite_run.py --tmp DIR --transport unix|tcp --jlab-python PY2 --suite FILE
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from netns_run import loopback_up
from proctree import become_subreaper, end_descendants

HERE = Path(__file__).resolve().parent
PACHD_PORT = 30650  # what the suite's Client() and its PUT /config use
START_TIMEOUT = 60.0
# Our test environment's per-test isolation; a user's JupyterLab has only HOME.
DROP_ENV = ("PACH_CONFIG", "PACHTRAY_DATA_DIR", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_RUNTIME_DIR",
            "PFS_MOUNT_DIR", "PFS_SOCK_PATH", "DEFAULT_SCHEMA", "MOUNT_SERVER_LOG_FILE", "PYTHONPATH")


def serving(port: int) -> bool:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        try:
            resp = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=1)
        except grpc.RpcError:
            return False
        return resp.status == health_pb2.HealthCheckResponse.SERVING


def start_local_pachd(tmp: Path) -> subprocess.Popen:
    log = open(tmp / "local-pachd.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "pachtray", "local-pachd", "--port", str(PACHD_PORT),
                             "--data-dir", str(tmp / "pachd")], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + START_TIMEOUT
    while not serving(PACHD_PORT):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"local-pachd did not start: {(tmp / 'local-pachd.log').read_text()[-2000:]}")
        time.sleep(0.2)
    return proc


def suite_env(tmp: Path, transport: str) -> dict[str, str]:
    home = tmp / "home"
    (home / ".config" / "pachtray").mkdir(parents=True, exist_ok=True)
    # Without --sock-path (the TCP schema) mount-server also serves the socket of the user's settings;
    # this user's is in the run's temp dir, never the machine's /tmp/pfs.sock.
    (home / ".config" / "pachtray" / "settings.json").write_text(json.dumps({"sock_path": str(tmp / "settings.sock")}))
    # Only our mount-server goes first on PATH (as an installed one would be), not the rest of our venv.
    bin_dir = tmp / "bin"
    bin_dir.mkdir(exist_ok=True)
    if not (bin_dir / "mount-server").exists():
        (bin_dir / "mount-server").symlink_to(Path(sys.executable).parent / "mount-server")
    env = {k: v for k, v in os.environ.items() if k not in DROP_ENV}
    env.update(HOME=str(home), PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
               PFS_MOUNT_DIR=str(tmp / "pfs"), MOUNT_SERVER_LOG_FILE=str(tmp / "mount-server.log"),
               PYTHONPATH=str(HERE))  # for `-p jlab_suite_plugin` (and its proctree)
    if transport == "unix":
        env.update(DEFAULT_SCHEMA="http_unix", PFS_SOCK_PATH=str(tmp / "pfs.sock"))
    else:
        env.update(DEFAULT_SCHEMA="http", PFS_SOCK_PATH=str(tmp / "unused.sock"))
    return env


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tmp", required=True, type=Path)
    ap.add_argument("--transport", required=True, choices=("unix", "tcp"))
    ap.add_argument("--jlab-python", required=True)
    ap.add_argument("--suite", required=True, help="the installed test_integrations.py")
    args = ap.parse_args()
    tmp = args.tmp.resolve()
    (tmp / "pfs").mkdir(parents=True, exist_ok=True)
    (tmp / "pytest.ini").write_text("[pytest]\n")  # no rootdir config from the venv or the checkout
    loopback_up()
    become_subreaper()
    pachd = start_local_pachd(tmp)
    try:
        # cwd: the venv root, an ancestor of the suite's data files (its notebook paths are relative to it).
        venv_root = Path(args.jlab_python).parent.parent
        cmd = [args.jlab_python, "-m", "pytest", "-p", "jlab_suite_plugin", "-p", "no:cacheprovider",
               "-c", str(tmp / "pytest.ini"), "--rootdir", str(tmp), "-v", "-rA", args.suite]
        print("+", " ".join(cmd), flush=True)
        return subprocess.run(cmd, cwd=venv_root, env=suite_env(tmp, args.transport)).returncode
    finally:
        pachd.terminate()
        try:
            pachd.wait(20)
        except subprocess.TimeoutExpired:
            pachd.kill()
        end_descendants(os.getpid())  # nothing of the run outlives it


if __name__ == "__main__":
    raise SystemExit(main())
