"""The daemon's cluster connection: which cluster (at start, on PUT /config), its client and
token, its health (a watch loop), its auth state, and the last cluster used.

The last cluster chosen through PUT /config is state of the daemon (`<data dir>/last-cluster.json`),
not a setting: settings.json is the user's, written only by the GUI. It is used at the next start
as long as the `cluster_address` setting is what it was when it was recorded (a changed setting
is a new choice and wins).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import socket
import threading
import time
from pathlib import Path
from typing import Callable

from pachtray import config, tokens
from pachtray.daemon.health import probe
from pachtray.daemon.local_server import LocalPachd
from pachtray.errors import ApiError
from pachtray.files import write_json
from pachtray.pfs import errors
from pachtray.pfs.auth import AUTH_OFF, who_am_i
from pachtray.pfs.client import Address, connect, parse_address

log = logging.getLogger(__name__)

HEALTH_INTERVAL = 2.0  # seconds between connection checks
UNREACHABLE_AFTER = 2  # failed checks in a row before the mounts stop waiting for pachd
CONNECT_TIMEOUT = 5.0  # PUT /config: as the reference's dial timeout
STARTUP_WAIT = 60.0  # how long a request waits for the start-up connection attempt
CONTEXT_DIAL_TIMEOUT = 5.0  # the reference's dial timeout for the pachctl context's cluster at start
AUTH_CACHE_SECONDS = 2.0
CONNECTED, DISCONNECTED, UNCONNECTED = "connected", "disconnected", "unconnected"


def decode_server_cas(server_cas: str) -> bytes | None:
    if not server_cas:
        return None
    try:
        return base64.b64decode(server_cas, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ApiError(400, f"could not decode server CA certs (expected base64 PEM): {e}") from None


class LastCluster:
    """`<data dir>/last-cluster.json`: {"address": url ("" = the embedded local server), "server_cas":
    base64 PEM, "setting": the `cluster_address` setting it overrode}."""

    def __init__(self, data_dir: Path):
        self.path = Path(data_dir) / "last-cluster.json"

    def save(self, address: str, server_cas: str, setting: str) -> None:
        try:
            write_json(self.path, {"address": address, "server_cas": server_cas, "setting": setting})
        except OSError as e:
            log.warning("cannot keep the last cluster used in %s: %s", self.path, e)

    def load(self, setting: str) -> tuple[str, str] | None:
        """(address, server CAs) of the last cluster used, when the setting is still the one it
        overrode (else None)."""
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            log.warning("ignoring %s: %s", self.path, e)
            return None
        if not isinstance(data, dict) or data.get("setting") != setting or not isinstance(data.get("address"), str):
            return None
        cas = data.get("server_cas")
        return data["address"], cas if isinstance(cas, str) else ""


class Connection:
    """The client the API and the mounts use. ``mode`` is "daemon" or "mount-server"; ``on_client``
    and ``on_reachable`` tell the mounts (set by DaemonApp)."""

    def __init__(self, *, settings: config.Settings, data_dir: Path, mode: str, local_port: int,
                 stopping: threading.Event):
        self.settings, self.data_dir, self.mode, self.local_port = settings, Path(data_dir), mode, local_port
        self.stopping = stopping
        self.last = LastCluster(self.data_dir)
        self.local_pachd: LocalPachd | None = None
        self.on_client: Callable[[object], None] = lambda client: None
        self.on_reachable: Callable[[bool], None] = lambda reachable: None
        self.started = threading.Event()  # the start-up connection attempt is over
        self.token_problem = ""  # why no stored token could be read (a locked keychain), "" when none
        self._embedded_failed = False  # the embedded server could not start at start-up (its port held)
        self._lock = threading.RLock()  # guards the fields below
        self.switch_lock = threading.Lock()  # one PUT /config or login at a time
        self._client = None
        self._address: Address | None = None
        self._root_certs: bytes | None = None
        self._server_cas = ""
        self._token: str | None = None
        self._state = UNCONNECTED
        self._error = ""
        self._auth_cache: tuple[float, object, str] | None = None

    # ---- what the handlers ask
    def client(self):
        """The client; ApiError 404 (the reference's) when there is no cluster."""
        self.started.wait(STARTUP_WAIT)
        with self._lock:
            if self._client is None:
                detail = f" ({self._error})" if self._error else ""
                raise ApiError(404, "not connected to a cluster" + detail)
            return self._client

    def state(self) -> str:
        with self._lock:
            return self._state

    @property
    def error(self) -> str:
        """Why the daemon has no cluster ("" when it has one, or none was tried)."""
        with self._lock:
            return self._error if self._client is None else ""

    @property
    def address(self) -> Address:
        self.client()  # 404 when there is none
        return self._address

    def details(self) -> tuple[Address | None, bytes | None, str]:
        """(address, root certs, server CAs) of the cluster in use."""
        with self._lock:
            return self._address, self._root_certs, self._server_cas

    @property
    def is_local(self) -> bool:
        """Connected to the embedded local server we started (repo management is allowed there)."""
        with self._lock:
            return self.local_pachd is not None and self._address == self.local_pachd.address

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
        address, certs, _ = self.details()
        if address is None or not probe(address, certs):
            return "INVALID"
        try:
            return "AUTH_DISABLED" if self.auth_state() == AUTH_OFF else "AUTH_ENABLED"
        except errors.RPC_ERRORS as e:
            log.info("cluster %s: auth status unknown (%s)", address.url, errors.details(e))
            return "INVALID"

    # ---- tokens
    def token_for(self, address: Address) -> str | None:
        """The stored token for this cluster (tokens.for_address); a locked keychain is noted in
        `token_problem` (the GUI shows it) and the daemon goes on without a token."""
        try:
            token = tokens.for_address(address, self.settings.token_storage)
        except tokens.KeychainLocked as e:
            log.warning("%s", e.message)
            self.token_problem = e.message
            return None
        self.token_problem = ""
        return token

    # ---- switching
    def use(self, address: Address, *, root_certs: bytes | None = None, server_cas: str = "",
            token: str | None = None) -> None:
        """Point the daemon (and the mounts) at a cluster; gRPC connects lazily, this never blocks long."""
        tokens.remember(token)
        client = connect(address, token=token, root_certs=root_certs)
        reachable = probe(address, root_certs)
        with self._lock:
            old = self._client
            self._client, self._address, self._root_certs = client, address, root_certs
            self._server_cas, self._token, self._auth_cache = server_cas, token, None
            self._state = CONNECTED if reachable else DISCONNECTED
            self._error = ""
        self.on_client(client)
        if old is not None and old is not client:
            old.close()
        log.info("using cluster %s (%s)", address.url, self._state)

    def switch(self, address_text: str, server_cas: str, *, before: Callable[[], None]) -> None:
        """PUT /config: validate, check it answers, ``before`` (the old cluster's mounts go; a busy one
        stops the switch), record the `mount-server` context and the last cluster, connect."""
        try:
            address = parse_address(address_text)
        except ValueError:
            raise ApiError(400, "either empty or poorly formatted cluster endpoint") from None
        root_certs = decode_server_cas(server_cas)
        with self.switch_lock:
            with self._lock:
                same = self._client is not None and self._address == address and \
                    (not server_cas or server_cas == self._server_cas)
            if same:
                return
            if not probe(address, root_certs, CONNECT_TIMEOUT):
                raise ApiError(500, f"error creating new client: could not connect to {address.url}")
            if self._client is not None:
                before()
            try:
                config.record_context(address.url, server_cas)
            except (OSError, ValueError) as e:
                raise ApiError(500, f"error creating new client: issue updating config: {e}") from None
            if self.mode == "daemon":
                local = self.local_pachd is not None and address == self.local_pachd.address
                self.last.save("" if local else address.url, server_cas, self.settings.cluster_address)
            self.use(address, root_certs=root_certs, server_cas=server_cas, token=self.token_for(address))

    def reconnect(self, token: str | None) -> None:
        """The same cluster with another token (login, logout)."""
        address, certs, cas = self.details()
        with self.switch_lock:
            self.use(address, root_certs=certs, server_cas=cas, token=token)

    # ---- start
    def connect_at_start(self, pachd_address: str | None) -> None:
        """--pachd-address, else (daemon) the last cluster used, else the settings' cluster, else the
        pachctl active context, else the embedded local server (daemon) or no cluster (mount-server,
        as the reference)."""
        try:
            target = self._start_target(pachd_address)
            if target is None and self.mode == "daemon":
                self.local_pachd = LocalPachd(self.local_port, self.data_dir / "local-pachd",
                                              self.data_dir / "local-pachd.log")
                self._embedded_failed = True  # until it runs: the watcher starts it once its port is free
                self.local_pachd.start(self.stopping)
                self._embedded_failed = False
                target = (self.local_pachd.address, None, "")
            if target is not None and self.mode != "daemon" and not pachd_address:
                # The reference dials the pachctl context's cluster for 5 s and, if it does not answer,
                # starts unconnected (404 until PUT /config), rather than connected to a dead cluster.
                address, certs, _ = target
                if not probe(address, certs, timeout=CONTEXT_DIAL_TIMEOUT):
                    raise RuntimeError(f"could not connect to {address.url} (the active pachctl context)")
            if target is not None and not self.stopping.is_set():
                address, certs, cas = target
                self.use(address, root_certs=certs, server_cas=cas, token=self.token_for(address))
        except (RuntimeError, ValueError, OSError, ApiError) as e:
            message = e.message if isinstance(e, ApiError) else str(e)
            log.error("not connected to a cluster: %s", message)
            with self._lock:
                self._error = message
        finally:
            self.started.set()

    def _start_target(self, pachd_address: str | None) -> tuple[Address, bytes | None, str] | None:
        if pachd_address:
            return parse_address(pachd_address), None, ""
        if self.mode == "daemon":
            last = self.last.load(self.settings.cluster_address)
            if last is not None:
                address, cas = last
                if not address:
                    return None  # the embedded local server
                return parse_address(address), decode_server_cas(cas), cas
            if self.settings.cluster_address:
                tls = self.settings.tls_ca_file
                certs = Path(tls).expanduser().read_bytes() if tls else None
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

    # ---- health
    def watch(self) -> None:
        """Mark the connection connected/disconnected; on reconnect hand the mounts a fresh client;
        keep the embedded server alive."""
        failed = 0  # health checks failed in a row
        while not self.stopping.wait(HEALTH_INTERVAL):
            with self._lock:
                client, address, certs = self._client, self._address, self._root_certs
                was = self._state
            if client is None:
                self._retry_embedded()
                continue
            ok = probe(address, certs)
            if ok and was == DISCONNECTED:
                # A fresh client first (the old channel may still be backing off), then "connected".
                log.info("cluster %s is back", address.url)
                with self.switch_lock:
                    with self._lock:
                        if self._client is not client:
                            continue  # switched cluster meanwhile; the next round checks the new one
                        token, cas = self._token, self._server_cas
                    self.use(address, root_certs=certs, server_cas=cas, token=token)
                failed = 0
                continue
            with self._lock:
                if self._client is not client:
                    continue
                self._state = CONNECTED if ok else DISCONNECTED
            failed = 0 if ok else failed + 1
            # Two checks in a row (one slow answer on a busy machine is not an outage).
            self.on_reachable(failed < UNREACHABLE_AFTER)
            if not ok:
                if was == CONNECTED:
                    log.warning("cluster %s does not answer", address.url)
                if self.is_local:
                    self.local_pachd.restart_if_dead(self.stopping)

    def _retry_embedded(self) -> None:
        """The embedded server could not start because its port was held: start it once the port is
        free (the user stopped what held it), without a restart of the daemon."""
        pachd = self.local_pachd
        if not self._embedded_failed or pachd is None or _listening(pachd.address):
            return
        with self.switch_lock:
            with self._lock:
                if self._client is not None:
                    return
            try:
                pachd.start(self.stopping)
            except RuntimeError as e:
                log.error("not connected to a cluster: %s", e)
                with self._lock:
                    self._error = str(e)
                return
            self._embedded_failed = False
            log.info("the embedded local server's port is free again; it runs now")
            self.use(pachd.address, token=self.token_for(pachd.address))

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()
        if self.local_pachd is not None:
            self.local_pachd.stop()


def _listening(address: Address) -> bool:
    """Whether something takes connections at ``address`` (a port held, whatever holds it)."""
    try:
        with socket.create_connection((address.host, address.port), timeout=1.0):
            return True
    except OSError:
        return False
