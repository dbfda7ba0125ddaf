"""Find, identify and start the daemon the GUI talks to (no Qt: called from workers and tests).

`probe()` tells apart our daemon, a foreign server (e.g. an old Go `mount-server` on 9002 or
/tmp/pfs.sock), something that takes the connection and never answers (a stopped or hung daemon)
and nothing at all; `start_daemon()` spawns `pachtray daemon` in its own session
so it survives the GUI (mounts keep running when the user quits the tray only).
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import time
from dataclasses import dataclass

from pachtray import config, frozen
from pachtray.errors import PachtrayError
from pachtray.localhttp import UnixHTTPConnection
from pachtray.logfiles import tail

OURS, FOREIGN, HUNG, ABSENT = "pachtray", "foreign", "hung", "absent"
INFO_PATH = "/pachtray/v1/info"


@dataclass
class Probe:
    """What answers where the settings say the daemon lives."""

    state: str  # OURS, FOREIGN, HUNG or ABSENT
    where: str = ""  # "127.0.0.1:9002" or the socket path that answered (for messages)
    detail: str = ""


def _identify(conn: http.client.HTTPConnection) -> tuple[str, str]:
    """GET our info route: a Pachtray daemon answers it, a foreign mount-server says 404."""
    try:
        conn.request("GET", INFO_PATH, headers={"Host": "localhost"})
        resp = conn.getresponse()
        body = resp.read()
    except TimeoutError:
        return HUNG, f"it took the connection but did not answer within {conn.timeout:g} s"
    except (OSError, http.client.HTTPException) as e:
        return FOREIGN, f"it does not speak HTTP like a Pachtray daemon ({e})"
    finally:
        conn.close()
    if resp.status == 200:
        try:
            if "pachtray" in json.loads(body):
                return OURS, ""
        except ValueError:
            pass
    server = resp.getheader("Server") or "unknown server"
    return FOREIGN, f"it answered {INFO_PATH} with HTTP {resp.status} ({server})"


def probe(port: int, sock_path: str = "", timeout: float = 3.0) -> Probe:
    """Who holds the daemon's TCP port, else its socket."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            pass
    except OSError:
        pass
    else:
        state, detail = _identify(http.client.HTTPConnection("127.0.0.1", port, timeout=timeout))
        return Probe(state, f"127.0.0.1:{port}", detail)
    if sock_path and os.path.exists(sock_path):
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(timeout)
                s.connect(sock_path)
        except OSError:
            return Probe(ABSENT)  # a stale socket file: the daemon removes it when it starts
        state, detail = _identify(UnixHTTPConnection(sock_path, timeout))
        return Probe(state, sock_path, detail)
    return Probe(ABSENT)


def hung_message(found: Probe) -> str:
    """What the user reads when the daemon's address is held by a process that does not answer."""
    pid = listener_pid(found.where)
    who = f"process {pid}" if pid else "a process"
    fix = (f"Resume it (kill -CONT {pid}) or end it (kill {pid}), then choose Start the daemon."
           if pid else "Resume or end it, then choose Start the daemon.")
    return (f"The Pachtray daemon's address {found.where} is held by {who} that does not answer: {found.detail}. "
            f"It may be a daemon that was stopped (Ctrl-Z, kill -STOP) or is hung.\n\n{fix}")


def listener_pid(where: str) -> int | None:
    """The pid of the process listening on "127.0.0.1:PORT" or on a unix socket path (Linux /proc)."""
    try:
        if where.startswith("127.0.0.1:"):
            port = f"{int(where.rsplit(':', 1)[1]):04X}"
            with open("/proc/net/tcp") as f:
                inodes = {cols[9] for cols in (line.split() for line in list(f)[1:])
                          if cols[1].endswith(":" + port) and cols[3] == "0A"}  # 0A: LISTEN
        else:
            with open("/proc/net/unix") as f:
                inodes = {cols[6] for cols in (line.split() for line in list(f)[1:]) if len(cols) > 7 and cols[7] == where}
    except (OSError, ValueError, IndexError):
        return None
    wanted = {f"socket:[{i}]" for i in inodes}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{entry}/fd")
            if any(os.readlink(f"/proc/{entry}/fd/{fd}") in wanted for fd in fds):
                return int(entry)
        except OSError:
            continue
    return None


def foreign_message(found: Probe) -> str:
    """What the user reads when something else holds the daemon's address."""
    return (f"Something that is not a Pachtray daemon is listening on {found.where}: {found.detail}.\n\n"
            "This is usually an old Pachyderm mount-server (for example one started by jupyterlab-pachyderm "
            "before Pachtray was installed). Stop it (its mounts are under its --mount-dir; unmount them with "
            "`fusermount -u DIR`) and start Pachtray again, or choose another API port and socket path in "
            "Settings (they open next).")


class PortTaken(PachtrayError):
    """A port the restarted daemon needs is held by another program (the running daemon is kept)."""


def check_ports_free(running: config.Settings, wanted: config.Settings) -> None:
    """Before a restart stops anything: the API port and the embedded server's port the new daemon
    takes, where they change, must be free (PortTaken says which is not, and by what)."""
    if wanted.api_port != running.api_port:
        found = probe(wanted.api_port, timeout=2.0)
        if found.state != ABSENT:
            what = found.detail or ("another Pachtray daemon" if found.state == OURS else found.state)
            raise PortTaken(f"Something already listens on 127.0.0.1:{wanted.api_port} ({what}), "
                            "the API port in your settings. The daemon was not restarted and runs as before; choose "
                            "another API port in Settings.", title="API port in use")
    if wanted.sock_path and wanted.sock_path != running.sock_path and (
            (found := probe(0, wanted.sock_path, timeout=2.0)).state != ABSENT):  # (port 0: the socket only)
        what = found.detail or ("another Pachtray daemon" if found.state == OURS else found.state)
        raise PortTaken(f"Another server answers on the socket {wanted.sock_path} ({what}), the API socket in your "
                        "settings. The daemon was not restarted and runs as before; choose another socket path in "
                        "Settings.", title="API socket in use")
    embedded_before = not running.cluster_address  # (else no embedded server of ours holds its port now)
    if not wanted.cluster_address and (wanted.local_port != running.local_port or not embedded_before) \
            and _listening(wanted.local_port):
        raise PortTaken(f"Something already listens on 127.0.0.1:{wanted.local_port}, the embedded server's port in "
                        "your settings. The daemon was not restarted and runs as before; choose another embedded "
                        "server port in Settings.", title="Embedded server port in use")


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2.0):
            return True
    except OSError:
        return False


def daemon_command(settings: config.Settings) -> list[str]:
    """`pachtray daemon` with the settings that decide where it listens and mounts."""
    cmd = frozen.pachtray_command("daemon", "--port", str(settings.api_port), "--mount-dir",
                                  settings.effective_mount_dir(), "--sock-path", settings.sock_path,
                                  "--local-pachd-port", str(settings.local_port))
    if settings.cluster_address:
        cmd += ["--pachd-address", settings.cluster_address]
    return cmd


def start_daemon(settings: config.Settings, timeout: float = 60.0) -> subprocess.Popen:
    """Spawn the daemon detached from the GUI and wait until /health answers."""
    data = config.data_dir()
    data.mkdir(parents=True, exist_ok=True)
    log_path = data / "daemon.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(daemon_command(settings), stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise PachtrayError(f"The Pachtray daemon exited with status {proc.returncode} while starting. "
                                f"Last lines of {log_path}:\n{tail(log_path)}", title="Daemon failed to start")
        if probe(settings.api_port, timeout=1.0).state == OURS:
            return proc
        time.sleep(0.2)
    raise PachtrayError(f"The Pachtray daemon did not answer on 127.0.0.1:{settings.api_port} within "
                        f"{timeout:g} s. See {log_path}.", title="Daemon failed to start")


def wait_stopped(port: int, timeout: float = 60.0) -> bool:
    """True once nothing answers on the port any more."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe(port, timeout=1.0).state == ABSENT:
            return True
        time.sleep(0.2)
    return False
