"""The embedded local server as the daemon's child process (`pachtray local-pachd`), kept alive."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from pachtray import frozen
from pachtray.daemon.health import probe
from pachtray.pfs.client import Address

log = logging.getLogger(__name__)

LOCAL_PACHD_PORT = 30650
LOCAL_START_TIMEOUT = 60.0
CLUSTER_ID_FILE = "cluster-id"  # in its data dir; what its InspectCluster answers (local.server)


class LocalPachd:
    def __init__(self, port: int, data_dir: Path, log_path: Path):
        self.port, self.data_dir, self.log_path = port, data_dir, log_path
        self.address = Address("127.0.0.1", port)
        self.proc: subprocess.Popen | None = None

    def command(self) -> list[str]:
        return frozen.pachtray_command("local-pachd", "--port", str(self.port), "--data-dir", str(self.data_dir),
                                       "--host", "127.0.0.1")

    def start(self, stop: threading.Event) -> None:
        """Start and wait until it serves; raises RuntimeError saying why it did not."""
        if probe(self.address, None):
            # Ours from an earlier run (same data), or another server: a `pachctl port-forward` to a
            # real cluster listens on 30650 too, and must never be taken for the embedded one.
            theirs = self._cluster_id()
            if theirs and theirs == self._own_cluster_id():
                log.warning("the embedded local server already answers on 127.0.0.1:%d; using it", self.port)
                return
            raise RuntimeError(
                f"another Pachyderm server answers on 127.0.0.1:{self.port} (cluster id {theirs or 'unknown'}; a "
                "`pachctl port-forward` uses that port too), so the embedded local server cannot start there: "
                "stop that server, choose it as the cluster in Settings, or give the embedded server another port there")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as out:
            # The child dies with us even on kill -9 (PR_SET_PDEATHSIG, Linux), so no orphan keeps the port.
            self.proc = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        log.info("started the embedded local server (pid %d) on 127.0.0.1:%d, data in %s",
                 self.proc.pid, self.port, self.data_dir)
        deadline = time.monotonic() + LOCAL_START_TIMEOUT
        while not stop.is_set():
            if self.proc.poll() is not None:
                tail = self._log_tail()
                if "Address already in use" in tail or "Failed to add port" in tail:
                    raise RuntimeError(f"the embedded local server cannot listen on 127.0.0.1:{self.port}: another "
                                       "program uses that port; stop it, or choose another embedded server port in "
                                       "Settings")
                raise RuntimeError(f"the embedded local server exited with code {self.proc.returncode}: {tail}")
            if probe(self.address, None, timeout=1.0):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the embedded local server did not answer within {LOCAL_START_TIMEOUT:g}s: "
                                   f"{self._log_tail()}")
            stop.wait(0.2)

    def _own_cluster_id(self) -> str:
        try:
            return (self.data_dir / CLUSTER_ID_FILE).read_text().strip()
        except OSError:
            return ""

    def _cluster_id(self) -> str:
        """The id of the cluster answering on the port ("" if it does not say)."""
        from pachtray.pfs.client import connect

        client = connect(self.address, rpc_timeout=5.0)
        try:
            return client.admin.inspect_cluster().id
        except Exception as e:  # noqa: BLE001 - any failure: it is not known to be ours
            log.info("asking 127.0.0.1:%d for its cluster id: %s", self.port, e)
            return ""
        finally:
            client.close()

    def restart_if_dead(self, stop: threading.Event) -> None:
        """The embedded server is ours to keep alive: start it again if it died (same port, same data).
        Call it from a long-lived thread: PR_SET_PDEATHSIG follows the thread that started the child."""
        if self.proc is None or self.proc.poll() is None or stop.is_set():
            return
        log.warning("the embedded local server exited (code %s); starting it again", self.proc.returncode)
        try:
            self.start(stop)
        except RuntimeError as e:
            log.error("%s", e)

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return f"(no log at {self.log_path})"
        return " | ".join(lines[-2:]) or f"(empty log {self.log_path})"

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            log.warning("the embedded local server did not stop within 20s; killing it")
            self.proc.kill()
            self.proc.wait(10)


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
