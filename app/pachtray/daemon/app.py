"""The daemon: REST API + FUSE mounts + the cluster connection (+ the embedded local server).

`pachtray daemon` uses the app's defaults (settings file, embedded local server when no cluster
is configured, the saved workspace restored); `mount-server` is the drop-in for Pachyderm's binary
that jupyterlab-pachyderm spawns (reference defaults: no local server, starts with no mounts, the
workspace only with --restore-mounts). Both serve TCP on loopback and a unix socket.

The API answers /health as soon as it listens; everything slower (FUSE, starting the local
server, restoring mounts) happens after, and requests that need it wait for it briefly.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import errno
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc

from pachtray import __version__, config, frozen, tokens
from pachtray.api.server import ApiServer, BindError, build_router
from pachtray.errors import ApiError
from pachtray.pfs import errors
from pachtray.pfs.auth import AUTH_OFF, AUTH_SIGNED_OUT, who_am_i
from pachtray.pfs.client import Address, connect, parse_address

log = logging.getLogger(__name__)

LOCAL_PACHD_PORT = 30650
HEALTH_INTERVAL = 2.0  # seconds between connection checks
MOUNT_REFRESH_INTERVAL = 5.0  # seconds between looks at the mounts' upstream (commits behind, deletions)
PROBE_TIMEOUT = 2.0
UNREACHABLE_AFTER = 2  # failed checks in a row before the mounts stop waiting for pachd
CONNECT_TIMEOUT = 5.0  # PUT /config: as the reference's dial timeout
LOCAL_START_TIMEOUT = 60.0
STARTUP_WAIT = 60.0  # how long a request waits for the mounts/connection being set up
AUTH_CACHE_SECONDS = 2.0
LOGIN_TIMEOUT = 300.0  # Authenticate(oidc_state) waits until the user finished in the browser


def parse_bool(text: str) -> bool:
    """Go-style booleans, as the reference's `--allow-other=false`."""
    value = str(text).strip().lower()
    if value in ("1", "t", "true", "yes", "y", "on"):
        return True
    if value in ("0", "f", "false", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def probe(address: Address, root_certs: bytes | None, timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether pachd answers its gRPC health service within ``timeout`` (a fresh channel: no backoff)."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    if root_certs is not None or address.tls:
        channel = grpc.secure_channel(address.target, grpc.ssl_channel_credentials(root_certificates=root_certs))
    else:
        channel = grpc.insecure_channel(address.target)
    try:
        resp = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout)
        return resp.status == health_pb2.HealthCheckResponse.SERVING
    except grpc.RpcError:
        return False
    finally:
        channel.close()


def decode_server_cas(server_cas: str) -> bytes | None:
    if not server_cas:
        return None
    try:
        return base64.b64decode(server_cas, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ApiError(400, f"could not decode server CA certs (expected base64 PEM): {e}") from None


class LocalPachd:
    """The embedded local server as our child process (`pachtray local-pachd`)."""

    def __init__(self, port: int, data_dir: Path, log_path: Path):
        self.port, self.data_dir, self.log_path = port, data_dir, log_path
        self.address = Address("127.0.0.1", port)
        self.proc: subprocess.Popen | None = None

    def command(self) -> list[str]:
        base = [sys.executable] if getattr(sys, "frozen", False) else [sys.executable, "-m", "pachtray"]
        return [*base, "local-pachd", "--port", str(self.port), "--data-dir", str(self.data_dir),
                "--host", "127.0.0.1"]

    def start(self, stop: threading.Event) -> None:
        """Start and wait until it serves; raises RuntimeError saying why it did not."""
        if probe(self.address, None):
            log.warning("a local server already answers on 127.0.0.1:%d; using it", self.port)
            return
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
                raise RuntimeError(f"the embedded local server exited with code {self.proc.returncode}: "
                                   f"{self._log_tail()}")
            if probe(self.address, None, timeout=1.0):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the embedded local server did not answer within {LOCAL_START_TIMEOUT:g}s: "
                                   f"{self._log_tail()}")
            stop.wait(0.2)

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


class DaemonApp:
    """What the API handlers work with: settings, the cluster connection and the MountManager."""

    def __init__(self, *, settings: config.Settings, data_dir: Path, mount_dir: Path, allow_other: bool,
                 mode: str, local_port: int = LOCAL_PACHD_PORT, restore: bool = False):
        self.settings, self.data_dir, self.mount_dir = settings, data_dir, mount_dir
        self.allow_other, self.mode, self.local_port = allow_other, mode, local_port
        # Restore the saved workspace at start; the daemon keeps the workspace either way, the
        # drop-in only when restoring (it starts empty, and must not overwrite the daemon's).
        self.restore = restore
        self.keep_workspace = mode == "daemon" or restore
        self.router = build_router()
        self.local_pachd: LocalPachd | None = None
        self.stopping = threading.Event()
        self._manager = None
        self._manager_error = ""
        self._manager_ready = threading.Event()
        self._connected_once = threading.Event()  # the start-up connection attempt is over
        self._lock = threading.RLock()  # guards the connection fields below
        self._switch_lock = threading.Lock()  # one PUT /config or login at a time
        self._client = None
        self._address: Address | None = None
        self._root_certs: bytes | None = None
        self._server_cas = ""
        self._token: str | None = None
        self._state = "unconnected"
        self._connection_error = ""
        self._auth_cache: tuple[float, object, str] | None = None

    # ---- contract for the handlers ------------------------------------------------------------
    @property
    def manager(self):
        """The MountManager (waits while it is being set up; 503 when it could not start)."""
        if not self._manager_ready.wait(STARTUP_WAIT):
            raise ApiError(503, "the mount engine is still starting; try again")
        if self._manager is None:
            raise ApiError(503, f"the mount engine is not running: {self._manager_error}")
        return self._manager

    def client(self):
        self._connected_once.wait(STARTUP_WAIT)
        with self._lock:
            if self._client is None:
                detail = f" ({self._connection_error})" if self._connection_error else ""
                raise ApiError(404, "not connected to a cluster" + detail)
            return self._client

    def connection_state(self) -> str:
        with self._lock:
            return self._state

    @property
    def address(self) -> Address:
        self.client()  # 404 when there is none
        return self._address

    @property
    def is_local(self) -> bool:
        """Connected to the embedded local server we started (repo management is allowed there)."""
        with self._lock:
            return self.local_pachd is not None and self._address == self.local_pachd.address

    def check_access(self, requires: str) -> None:
        """The reference's initial checks: a cluster (else 404) and, for most routes, a signed-in user."""
        self.client()
        if requires == "auth" and self.connection_state() == "connected" and self.auth_state() == AUTH_SIGNED_OUT:
            raise ApiError(401, "user unauthenticated")

    def auth_state(self) -> str:
        """AUTH_OFF / AUTH_ON / AUTH_SIGNED_OUT, from one WhoAmI call cached for a moment."""
        client = self.client()
        with self._lock:
            cached = self._auth_cache
        if cached and cached[1] is client and time.monotonic() - cached[0] < AUTH_CACHE_SECONDS:
            return cached[2]
        state, _ = who_am_i(client)
        with self._lock:
            self._auth_cache = (time.monotonic(), client, state)
        return state

    def cluster_status(self) -> str:
        with self._lock:
            address, certs = self._address, self._root_certs
        if address is None or not probe(address, certs):
            return "INVALID"
        try:
            return "AUTH_DISABLED" if self.auth_state() == AUTH_OFF else "AUTH_ENABLED"
        except errors.RPC_ERRORS as e:
            log.info("cluster %s: auth status unknown (%s)", address.url, errors.details(e))
            return "INVALID"

    # ---- connection ---------------------------------------------------------------------------
    def token_for(self, address: Address) -> str | None:
        """The active pachctl context's token for this address, else the keychain's, else any context's."""
        try:
            cfg = config.read_pachctl_config()
        except ValueError as e:
            log.warning("%s", e)
            cfg = {"v2": {"active_context": "", "contexts": {}}}
        contexts = cfg["v2"]["contexts"]
        active = contexts.get(cfg["v2"].get("active_context") or "")
        candidates = ([active] if isinstance(active, dict) else []) + [None] + \
            [c for c in contexts.values() if isinstance(c, dict)]
        for ctx in candidates:
            if ctx is None:
                token = tokens.load(address.url, self.settings.token_storage)
            elif _same_address(ctx.get("pachd_address"), address):
                token = ctx.get("session_token")
            else:
                continue
            if token:
                tokens.remember(token)
                return token
        return None

    def use_cluster(self, address: Address, *, root_certs: bytes | None = None, server_cas: str = "",
                    token: str | None = None) -> None:
        """Point the daemon (and the mounts) at a cluster; gRPC connects lazily, this never blocks long."""
        tokens.remember(token)
        client = connect(address, token=token, root_certs=root_certs)
        reachable = probe(address, root_certs)
        with self._lock:
            old = self._client
            self._client, self._address, self._root_certs = client, address, root_certs
            self._server_cas, self._token, self._auth_cache = server_cas, token, None
            self._state = "connected" if reachable else "disconnected"
            self._connection_error = ""
        if self._manager is not None:
            self._manager.set_client(client)
        if old is not None and old is not client:
            old.close()
        log.info("using cluster %s (%s)", address.url, self._state)

    def switch_cluster(self, address_text: str, server_cas: str) -> None:
        """PUT /config: validate, check it answers, unmount the old cluster's mounts (a busy one stops
        the switch), record the `mount-server` context, and connect."""
        try:
            address = parse_address(address_text)
        except ValueError:
            raise ApiError(400, "either empty or poorly formatted cluster endpoint") from None
        root_certs = decode_server_cas(server_cas)
        with self._switch_lock:
            with self._lock:
                same = self._client is not None and self._address == address and \
                    (not server_cas or server_cas == self._server_cas)
            if same:
                return
            if not probe(address, root_certs, CONNECT_TIMEOUT):
                raise ApiError(500, f"error creating new client: could not connect to {address.url}")
            if self._manager is not None and self._client is not None:
                self._manager.unmount_all()  # the mounts belong to the old cluster
            try:
                config.record_context(address.url, server_cas)
            except (OSError, ValueError) as e:
                raise ApiError(500, f"error creating new client: issue updating config: {e}") from None
            if self.mode == "daemon":
                self._remember_cluster_setting(address)
            self.use_cluster(address, root_certs=root_certs, server_cas=server_cas, token=self.token_for(address))

    def _remember_cluster_setting(self, address: Address) -> None:
        """The GUI's cluster choice follows PUT /config ("" = the embedded local server)."""
        local = self.local_pachd is not None and address == self.local_pachd.address
        try:
            settings = config.Settings.load()
            settings.cluster_address = "" if local else address.url
            settings.save()
            self.settings.cluster_address = settings.cluster_address
        except (OSError, ValueError) as e:
            log.warning("cannot save the cluster in the settings: %s", e)

    def connect_at_start(self, pachd_address: str | None) -> None:
        """--pachd-address, else the settings' cluster (daemon), else the pachctl active context,
        else the embedded local server (daemon) or no cluster (mount-server, as the reference)."""
        try:
            target = self._start_target(pachd_address)
            if target is None and self.mode == "daemon":
                self.local_pachd = LocalPachd(self.local_port, self.data_dir / "local-pachd",
                                              self.data_dir / "local-pachd.log")
                self.local_pachd.start(self.stopping)
                target = (self.local_pachd.address, None, "")
            if target is not None and not self.stopping.is_set():
                address, certs, cas = target
                self.use_cluster(address, root_certs=certs, server_cas=cas, token=self.token_for(address))
        except (RuntimeError, ValueError, OSError, ApiError) as e:
            message = e.message if isinstance(e, ApiError) else str(e)
            log.error("not connected to a cluster: %s", message)
            with self._lock:
                self._connection_error = message
        finally:
            self._connected_once.set()

    def _start_target(self, pachd_address: str | None) -> tuple[Address, bytes | None, str] | None:
        if pachd_address:
            return parse_address(pachd_address), None, ""
        if self.mode == "daemon" and self.settings.cluster_address:
            certs = Path(self.settings.tls_ca_file).expanduser().read_bytes() if self.settings.tls_ca_file else None
            cas = base64.b64encode(certs).decode() if certs else ""
            return parse_address(self.settings.cluster_address), certs, cas
        ctx = config.active_context()
        if ctx is None:
            return None
        try:
            address = parse_address(ctx["pachd_address"])
        except ValueError:
            raise ValueError(f"the active pachctl context has an invalid pachd_address {ctx['pachd_address']!r}") from None
        cas = ctx.get("server_cas") or ""
        try:
            certs = decode_server_cas(cas)
        except ApiError as e:
            raise ValueError(f"the active pachctl context: {e.message}") from None
        return address, certs, cas

    def watch_connection(self) -> None:
        """Mark the connection connected/disconnected; on reconnect hand the mounts a fresh client."""
        failed = 0  # health checks failed in a row
        while not self.stopping.wait(HEALTH_INTERVAL):
            with self._lock:
                client, address, certs = self._client, self._address, self._root_certs
                was = self._state
            if client is None:
                continue
            ok = probe(address, certs)
            if ok and was == "disconnected":
                # A fresh client first (the old channel may still be backing off), then "connected".
                log.info("cluster %s is back", address.url)
                with self._switch_lock:
                    with self._lock:
                        if self._client is not client:
                            continue  # switched cluster meanwhile; the next round checks the new one
                        token, cas = self._token, self._server_cas
                    self.use_cluster(address, root_certs=certs, server_cas=cas, token=token)
                failed = 0
                continue
            with self._lock:
                if self._client is not client:
                    continue
                self._state = "connected" if ok else "disconnected"
            failed = 0 if ok else failed + 1
            if self._manager is not None:
                # Two checks in a row (one slow answer on a busy machine is not an outage).
                self._manager.set_reachable(failed < UNREACHABLE_AFTER)
            if not ok:
                if was == "connected":
                    log.warning("cluster %s does not answer", address.url)
                if self.is_local:
                    self._restart_local_pachd()

    def _restart_local_pachd(self) -> None:
        """The embedded server is ours to keep alive: start it again if it died (same port, same data)."""
        local = self.local_pachd
        if local.proc is None or local.proc.poll() is None or self.stopping.is_set():
            return
        log.warning("the embedded local server exited (code %s); starting it again", local.proc.returncode)
        try:
            local.start(self.stopping)  # from this long-lived thread: PR_SET_PDEATHSIG follows the thread
        except RuntimeError as e:
            log.error("%s", e)

    # ---- mounts -------------------------------------------------------------------------------
    def start_manager(self) -> None:
        """Create and start the MountManager; on failure the API stays up and says why (503)."""
        try:
            from pachtray.mount.manager import MountManager

            manager = MountManager(str(self.mount_dir), str(self.data_dir), allow_other=self.allow_other,
                                   cache_bytes=self.settings.cache_size_mb * 2**20,
                                   keep_workspace=self.keep_workspace, auth_state=self.auth_state)
            manager.start()
            self._manager = manager
        except Exception as e:  # noqa: BLE001 - reported through the API and the log
            self._manager_error = f"{type(e).__name__}: {e}" if not str(e).startswith(type(e).__name__) else str(e)
            log.exception("the mount engine could not start")
        finally:
            self._manager_ready.set()

    def refresh_mounts(self) -> None:
        """Every MOUNT_REFRESH_INTERVAL s, while pachd answers: the mounts' latest commits and
        commits behind, and mounts deleted upstream dropped (listings only read the table)."""
        while not self.stopping.wait(MOUNT_REFRESH_INTERVAL):
            if self._manager is None or self.connection_state() != "connected":
                continue
            try:
                self._manager.refresh()
            except Exception:  # noqa: BLE001 - the next round tries again
                log.exception("refreshing the mounts failed")

    def restore_mounts(self) -> None:
        """Mount again what was mounted at the last exit or crash (`restore`)."""
        self._connected_once.wait()
        if self._manager is None:
            return
        try:
            self._manager.restore()  # what needs the cluster waits for it inside the manager
        except Exception:  # noqa: BLE001 - a failed restore must not take the daemon down
            log.exception("restoring the previous mounts failed")

    # ---- auth ---------------------------------------------------------------------------------
    def start_login(self) -> dict:
        client = self.client()
        if self.auth_state() == AUTH_OFF:
            raise ApiError(500, "auth isn't activated on the cluster")
        try:
            resp = client.auth.get_oidc_login()
        except errors.RPC_ERRORS:
            raise ApiError(500, "no authentication providers configured") from None
        return {"auth_url": resp.login_url, "oidc_state": resp.state}

    def finish_login(self, oidc_state: str) -> dict:
        """Wait for the browser login to finish, keep the token, answer the pachctl config with it."""
        self.client()
        with self._lock:
            address, certs, cas = self._address, self._root_certs, self._server_cas
        login_client = connect(address, root_certs=certs, rpc_timeout=LOGIN_TIMEOUT)
        try:
            token = login_client.auth.authenticate(oidc_state=oidc_state).pach_token
        except errors.RPC_ERRORS as e:
            raise ApiError(500, f"login failed: {errors.details(e)}") from None
        finally:
            login_client.close()
        tokens.remember(token)
        where = tokens.save(address.url, token, self.settings.token_storage)
        log.info("logged in to %s; token kept in %s", address.url, where)
        with self._switch_lock:
            self.use_cluster(address, root_certs=certs, server_cas=cas, token=token)
        return _config_with_token(address, cas, token)

    def logout(self) -> None:
        self.manager.unmount_all()
        with self._lock:
            address, certs, cas = self._address, self._root_certs, self._server_cas
        tokens.forget(address.url)
        with self._switch_lock:
            self.use_cluster(address, root_certs=certs, server_cas=cas, token=None)
        log.info("logged out of %s", address.url)

    # ---- shutdown -----------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Unmount everything (rw changes stay staged on disk), stop the local server."""
        self.stopping.set()
        if self._manager is not None:
            try:
                self._manager.stop()
            except Exception:  # noqa: BLE001 - keep shutting down the rest
                log.exception("unmounting at exit failed")
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()
        if self.local_pachd is not None:
            self.local_pachd.stop()


def _same_address(text: object, address: Address) -> bool:
    try:
        return isinstance(text, str) and parse_address(text) == address
    except ValueError:
        return False


def _config_with_token(address: Address, server_cas: str, token: str) -> dict:
    """The pachctl config as the extension expects it back: active context = this cluster, with the token."""
    cfg = config.read_pachctl_config()
    contexts = cfg["v2"]["contexts"]
    name = cfg["v2"].get("active_context") or ""
    if not (isinstance(contexts.get(name), dict) and _same_address(contexts[name].get("pachd_address"), address)):
        name = config.MOUNT_SERVER_CONTEXT
        contexts[name] = {"pachd_address": address.url, **({"server_cas": server_cas} if server_cas else {})}
    contexts[name]["session_token"] = token
    cfg["v2"]["active_context"] = name
    return cfg


# ---- command lines ------------------------------------------------------------------------------

def _parser(mode: str, settings: config.Settings) -> argparse.ArgumentParser:
    daemon = mode == "daemon"
    p = argparse.ArgumentParser(
        prog="pachtray daemon" if daemon else "mount-server",
        description=("Pachtray's daemon: FUSE mounts, the mount-server REST API and the embedded local server."
                     if daemon else "Pachtray's drop-in for Pachyderm's mount-server (jupyterlab-pachyderm)."))
    # The default is worked out only when no --mount-dir is given: it looks at /pfs, which may be
    # a dead FUSE mount this very start is about to clean.
    p.add_argument("--mount-dir", default=None,
                   help="folder where repos are mounted (default: %s)" % (
                       "the app setting, else /pfs if usable, else ~/pfs" if daemon else "/pfs"))
    p.add_argument("--sock-path", default=settings.sock_path,
                   help="also serve the API on this unix socket; empty for none (default: %(default)s)")
    p.add_argument("--port", type=int, default=settings.api_port if daemon else 9002,
                   help="serve the API on 127.0.0.1 and ::1 at this port (default: %(default)s)")
    p.add_argument("--no-tcp", action="store_true", help="serve only the unix socket")
    p.add_argument("--allow-other", type=parse_bool, nargs="?", const=True, default=not daemon,
                   metavar="BOOL", help="let other users see the mounts (default: %(default)s)")
    p.add_argument("--log-file", help="write the log here instead of stderr")
    p.add_argument("--data-dir", help="state: staged changes, cache, workspace "
                                      "(default: $PACHTRAY_DATA_DIR or $XDG_DATA_HOME/pachtray)")
    p.add_argument("--pachd-address", help="cluster to use, e.g. grpc://localhost:30650 "
                                           "(default: the pachctl active context)")
    if daemon:
        p.add_argument("--local-pachd-port", type=int, default=LOCAL_PACHD_PORT,
                       help="port of the embedded local server when no cluster is configured (default: %(default)s)")
    else:
        p.add_argument("--restore-mounts", action="store_true",
                       help="mount again what was mounted when the last Pachtray daemon or mount-server with "
                            "this flag stopped (default: start with no mounts, as Pachyderm's mount-server)")
    p.add_argument("--version", action="version", version=f"pachtray {__version__}")
    return p


def _lock_data_dir(data_dir: Path):
    """One daemon per data dir (staged changes must have one writer); returns the open lock file.

    The kernel drops the lock when the process dies, so a killed daemon never blocks the next one.
    """
    import fcntl

    lock = open(data_dir / "daemon.lock", "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "unknown"
        lock.close()
        raise RuntimeError(f"the data dir {data_dir} is in use by another Pachtray daemon (pid {holder}); "
                           "stop it or use another --data-dir") from None
    lock.seek(0)
    lock.truncate()
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    return lock


def _setup_logging(log_file: str | None) -> None:
    handler = logging.FileHandler(log_file) if log_file else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(tokens.RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def _run(argv: list[str], mode: str) -> int:
    try:
        settings = config.Settings.load()
        settings_problem = ""
    except ValueError as e:
        settings, settings_problem = config.Settings(), str(e)
    args = _parser(mode, settings).parse_args(argv)
    _setup_logging(args.log_file)
    if settings_problem:
        log.warning("%s; using default settings", settings_problem)
    if args.allow_other and not frozen.allow_other_permitted():
        log.warning("mounting without allow_other (other users will not see the mounts): only root may use it "
                    "unless /etc/fuse.conf has a `user_allow_other` line")
        args.allow_other = False
    if args.pachd_address:
        try:
            parse_address(args.pachd_address)
        except ValueError:
            print(f"{mode}: invalid --pachd-address {args.pachd_address!r}: either empty or poorly formatted "
                  "cluster endpoint", file=sys.stderr)
            return 2

    data_dir = config.data_dir(args.data_dir)
    if args.mount_dir is None:
        args.mount_dir = settings.effective_mount_dir() if mode == "daemon" else "/pfs"
    mount_dir = Path(args.mount_dir).expanduser().absolute()
    try:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            mount_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            if e.errno not in (errno.EEXIST, errno.ENOTCONN):
                raise
            # A live or stale FUSE mount (stat fails on a dead one): FuseMount cleans or reports it.
    except OSError as e:
        print(f"{mode}: cannot create {e.filename}: {e.strerror}", file=sys.stderr)
        return 1
    try:
        data_lock = _lock_data_dir(data_dir)
    except (RuntimeError, OSError) as e:
        print(f"{mode}: {e}", file=sys.stderr)
        return 1

    restore = settings.restore_mounts if mode == "daemon" else args.restore_mounts
    app = DaemonApp(settings=settings, data_dir=data_dir, mount_dir=mount_dir, allow_other=args.allow_other,
                    mode=mode, local_port=getattr(args, "local_pachd_port", LOCAL_PACHD_PORT), restore=restore)
    # Before FUSE starts: libfuse takes over these signals where they are still at their default.
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: app.stopping.set())

    api = ApiServer(app, app.router, port=None if args.no_tcp else args.port, sock_path=args.sock_path or "")
    try:
        api.start()
    except BindError as e:
        log.error("%s", e)
        print(f"{mode}: {e}", file=sys.stderr)
        return 1
    log.info("pachtray %s %s (pid %d): mount dir %s, data dir %s", __version__, mode, os.getpid(), mount_dir, data_dir)

    try:
        app.start_manager()
        app.connect_at_start(args.pachd_address)
        threading.Thread(target=app.watch_connection, name="connection-watch", daemon=True).start()
        threading.Thread(target=app.refresh_mounts, name="mount-refresh", daemon=True).start()
        if app.restore and not app.stopping.is_set():
            threading.Thread(target=app.restore_mounts, name="restore-mounts", daemon=True).start()
        while not app.stopping.wait(1.0):
            pass
        log.info("stopping: unmounting (uncommitted changes stay staged in %s)", data_dir)
    finally:
        api.stop()
        app.shutdown()
        data_lock.close()
    log.info("stopped")
    return 0


def daemon_main(argv: list[str]) -> int:
    """`pachtray daemon`: the app's daemon (see docs/architecture.md for the flags)."""
    return _run(argv, "daemon")


def mount_server_main(argv: list[str]) -> int:
    """`mount-server`: the drop-in for Pachyderm's mount-server."""
    return _run(argv, "mount-server")
