"""The workspace: the mounts active now, kept in data_dir/workspace.json so the next start (after
an exit or a crash) can mount them again, as Mountain Duck's workspace does."""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Callable

from pachtray.errors import ApiError
from pachtray.files import write_json
from pachtray.mount.state import MountRequest, StagedElsewhere
from pachtray.pfs.errors import ClusterUnreachable

log = logging.getLogger(__name__)

FIELDS = ("name", "project", "repo", "branch", "commit", "paths", "mode")
RETRY_SECONDS = 3.0


class Workspace:
    """Reads and atomically rewrites workspace.json; an unreadable file counts as empty."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def load(self) -> list[dict]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as e:
            log.warning("ignoring unreadable workspace %s: %s", self.path, e)
            return []
        mounts = data.get("mounts") if isinstance(data, dict) else None
        if not isinstance(mounts, list):
            log.warning("ignoring workspace %s: no \"mounts\" list", self.path)
            return []
        return [{k: m.get(k) for k in FIELDS} for m in mounts
                if isinstance(m, dict) and isinstance(m.get("name"), str) and isinstance(m.get("repo"), str)]

    def save(self, mounts: list[dict]) -> None:
        """A crash mid-write leaves the previous workspace intact (and a written one survives power loss)."""
        write_json(self.path, {"mounts": [{k: m.get(k) for k in FIELDS} for m in mounts]}, indent=1, durable=True)


class Restorer:
    """Mounts a saved workspace again, retrying in the background what must wait for the cluster,
    and saves the workspace when the mount set changes (entries not restored yet included).

    ``mount`` mounts requests (the manager's), ``connected`` says whether there is a client,
    ``active`` gives the workspace entries of the mounts there are now."""

    def __init__(self, workspace: Workspace, mount: Callable[[list[MountRequest]], None],
                 connected: Callable[[], bool], active: Callable[[], list[dict]]):
        self.workspace = workspace
        self._mount, self._connected, self._active = mount, connected, active
        self._lock = threading.Lock()
        self._unrestored: list[dict] = []
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._waiting_for = ""  # why the last try had to wait (logged once, not at every retry)

    def save(self) -> None:
        active = self._active()
        names = {e["name"] for e in active}
        with self._lock:
            waiting = [e for e in self._unrestored if e["name"] not in names]
        try:
            self.workspace.save(active + waiting)
        except OSError as e:
            log.error("cannot save workspace %s: %s", self.workspace.path, e)

    def restore(self) -> bool:
        """Mount the saved entries not mounted now; True when some wait for the cluster (retried)."""
        active = {e["name"] for e in self._active()}
        with self._lock:
            self._unrestored = [e for e in self.workspace.load() if e["name"] not in active]
        waiting = self._try()
        if waiting and self._thread is None:
            self._stopped.clear()
            self._thread = threading.Thread(target=self._loop, name="workspace-restore", daemon=True)
            self._thread.start()
        return waiting

    def forget(self) -> None:
        """Stop restoring (everything was unmounted on purpose)."""
        with self._lock:
            self._unrestored = []

    def wake(self) -> None:
        """A cluster connection appeared: try again now."""
        self._wake.set()

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10)

    def _try(self) -> bool:
        with self._lock:
            entries = list(self._unrestored)
        for entry in entries:
            if not self._connected():
                return True
            try:
                self._mount([MountRequest.from_entry(entry)])
                self._waiting_for = ""
            except StagedElsewhere as e:  # kept: restored when the daemon runs on their cluster again
                log.warning("not restoring mount %s here: %s", entry["name"], e.message)
                continue
            except ClusterUnreachable as e:
                if e.message != self._waiting_for:  # once per reason, not at every retry
                    log.info("workspace restore waits for the cluster: %s", e.message)
                    self._waiting_for = e.message
                return True
            except ApiError as e:
                if e.status == 404:
                    return True
                log.warning("not restoring mount %s: %s", entry["name"], e.message)
            with self._lock:
                self._unrestored = [x for x in self._unrestored if x["name"] != entry["name"]]
        self.save()
        return False

    def _loop(self) -> None:
        try:
            while not self._stopped.is_set():
                self._wake.wait(RETRY_SECONDS)
                self._wake.clear()
                with self._lock:
                    pending = bool(self._unrestored)
                if self._stopped.is_set() or not pending or not self._try():
                    return
        finally:
            self._thread = None
