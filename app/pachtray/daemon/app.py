"""DaemonApp: what the API handlers work with, in one place. It holds the rooms: the cluster
connection (daemon.connection), login (daemon.login), the MountManager and its loops, the upload
jobs (pachtray.uploads), the cluster watcher (daemon.watch) and the activity log
(pachtray.activity); the handlers' contract is its methods below (docs/architecture.md)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from pachtray import config
from pachtray.activity import Activity
from pachtray.api.server import build_router
from pachtray.daemon.connection import STARTUP_WAIT, Connection
from pachtray.daemon.local_server import LOCAL_PACHD_PORT
from pachtray.daemon.login import Login
from pachtray.daemon.watch import ClusterWatch
from pachtray.errors import ApiError
from pachtray.pfs.auth import AUTH_SIGNED_OUT
from pachtray.pfs import errors
from pachtray.pfs.client import Address
from pachtray.uploads import Uploads

log = logging.getLogger(__name__)

MOUNT_REFRESH_INTERVAL = 5.0  # seconds between looks at the mounts' upstream (commits behind, deletions)


class DaemonApp:
    def __init__(self, *, settings: config.Settings, data_dir: Path, mount_dir: Path, allow_other: bool,
                 mode: str, local_port: int = LOCAL_PACHD_PORT, restore: bool = False):
        self.settings, self.data_dir, self.mount_dir = settings, data_dir, mount_dir
        self.allow_other, self.mode = allow_other, mode
        # Restore the saved workspace at start; the daemon keeps the workspace either way, the
        # drop-in only when restoring (it starts empty, and must not overwrite the daemon's).
        self.restore = restore
        self.keep_workspace = mode == "daemon" or restore
        self.router = build_router()
        self.stopping = threading.Event()
        self.connection = Connection(settings=settings, data_dir=data_dir, mode=mode, local_port=local_port,
                                     stopping=self.stopping)
        self.connection.on_client = self._client_changed
        self.connection.on_reachable = self._reachable_changed
        self.login = Login(self.connection, settings)
        self.activity = Activity()
        self.activity.on_record = self._wake_feed
        self.uploads = Uploads(record=self.activity.record)
        self.watch = ClusterWatch(self._watch_client, self._cluster_changed)
        self._manager = None
        self._manager_error = ""
        self._manager_ready = threading.Event()

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
        return self.connection.client()

    def connection_state(self) -> str:
        return self.connection.state()

    @property
    def address(self) -> Address:
        return self.connection.address

    @property
    def is_local(self) -> bool:
        return self.connection.is_local

    def check_access(self, requires: str) -> None:
        """The reference's initial checks: a cluster (else 404) and, for most routes, a signed-in user."""
        self.client()
        if requires != "auth" or self.connection_state() != "connected":
            return
        try:
            signed_out = self.auth_state() == AUTH_SIGNED_OUT
        except errors.RPC_ERRORS as e:
            if not errors.is_unreachable(e):
                raise
            return  # pachd stopped answering before the health checks noticed: the route says what it can
        if signed_out:
            raise ApiError(401, "user unauthenticated")

    def auth_state(self) -> str:
        return self.connection.auth_state()

    def cluster_status(self) -> str:
        return self.connection.cluster_status()

    def token_for(self, address: Address) -> str | None:
        return self.connection.token_for(address)

    def switch_cluster(self, address_text: str, server_cas: str) -> None:
        """PUT /config; the old cluster's mounts are unmounted first (a busy one stops the switch)."""
        self.connection.switch(address_text, server_cas, before=self._unmount_for_switch)

    def start_login(self) -> dict:
        return self.login.start()

    def finish_login(self, oidc_state: str) -> dict:
        return self.login.finish(oidc_state)

    def logout(self) -> None:
        self.manager.unmount_all()
        self.login.logout()

    # ---- start and the loops --------------------------------------------------------------------
    def connect_at_start(self, pachd_address: str | None) -> None:
        self.connection.connect_at_start(pachd_address)

    def watch_connection(self) -> None:
        self.connection.watch()

    def start_manager(self) -> None:
        """Create and start the MountManager; on failure the API stays up and says why (503)."""
        try:
            from pachtray.mount.manager import MountManager

            manager = MountManager(str(self.mount_dir), str(self.data_dir), allow_other=self.allow_other,
                                   cache_bytes=self.settings.cache_size_mb * 2**20,
                                   keep_workspace=self.keep_workspace, auth_state=self.auth_state,
                                   record=self.activity.record)
            manager.start()
            self._manager = manager
        except Exception as e:  # noqa: BLE001 - reported through the API and the log
            self._manager_error = f"{type(e).__name__}: {e}" if not str(e).startswith(type(e).__name__) else str(e)
            log.exception("the mount engine could not start")
        finally:
            self._manager_ready.set()

    def watch_cluster(self) -> None:
        """The cluster watcher's loop (it takes fingerprints only while the change feed has listeners)."""
        self.watch.run(self.stopping)

    def _watch_client(self):
        if self.connection_state() != "connected":
            return None
        try:
            return self.client()
        except ApiError:
            return None

    def _cluster_changed(self) -> None:
        """Someone changed repos, branches or commits: wake the feed, and look at the mounts'
        upstream now rather than at the next MOUNT_REFRESH_INTERVAL."""
        self._wake_feed()
        if self._manager is not None:
            self._manager.refresh()

    def _wake_feed(self) -> None:
        if self._manager is not None:
            self._manager.table.wake()

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
        self.connection.started.wait()
        if self._manager is None:
            return
        try:
            self._manager.restore()  # what needs the cluster waits for it inside the manager
        except Exception:  # noqa: BLE001 - a failed restore must not take the daemon down
            log.exception("restoring the previous mounts failed")

    def _client_changed(self, client) -> None:
        if self._manager is not None:
            self._manager.set_client(client)

    def _reachable_changed(self, reachable: bool) -> None:
        if self._manager is not None:
            self._manager.set_reachable(reachable)

    def _unmount_for_switch(self) -> None:
        if self._manager is not None:
            self._manager.unmount_all()  # the mounts belong to the old cluster

    # ---- shutdown -----------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Unmount everything (rw changes stay staged on disk), stop the local server."""
        self.stopping.set()
        self.uploads.cancel_all()
        if self._manager is not None:
            try:
                self._manager.stop()
            except Exception:  # noqa: BLE001 - keep shutting down the rest
                log.exception("unmounting at exit failed")
        self.connection.close()
