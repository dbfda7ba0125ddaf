"""The MountManager: the named mounts in the one FUSE mount and what can be done to them.

Rules and texts follow the reference mount-server (src/server/pfs/fuse/server.go at v2.8.0), with
Pachtray's differences: a failed commit keeps every change and the mount usable; rw changes staged
by a killed daemon (or left by a repo deleted upstream) are kept as `pending` entries, outside the
mount dir, to commit or discard; the mount set can be saved as a workspace.

The rooms it delegates to: mount.state (what a mount is), mount.table (the table and change
feed), mount.resolve (requests -> mounts), mount.upstream (what the cluster says now),
mount.records (staged changes on disk), mount.datum_mode, mount.workspace (restore), mount.parts
(FUSE, views, cache). Listing (`mounted`, `all_mounts`) only reads; `refresh()` asks the cluster
and drops what was deleted upstream (the daemon runs it in a loop, and GET /mounts before it lists).

Locking: the table's lock guards the table and is never held across an RPC or an upload;
`_mode_lock` serializes changes of the mount set (mount, unmount, datum mode); each mount's `op`
lock serializes commit/discard/unmount of that mount.
"""

from __future__ import annotations

import errno
import logging
import threading
from pathlib import Path
from typing import Callable

from pachtray.errors import ApiError
from pachtray.mount import resolve, upstream
from pachtray.mount.cache import DEFAULT_CACHE_BYTES
from pachtray.mount.datum_mode import DatumMode
from pachtray.mount.parts import FuseParts
from pachtray.mount.reads import ReadTracker
from pachtray.mount.records import StagingRecords
from pachtray.mount.staging import ChangedSinceReview, CommitFailed
from pachtray.mount.state import (MOUNT_STATE_FIELDS, Mount, MountRequest, MountState, Problem, ProblemKind,
                                  StagedElsewhere, Upstream)
from pachtray.mount.table import MountTable
from pachtray.mount.workspace import Restorer, Workspace
from pachtray.pfs import errors
from pachtray.pfs.auth import AUTH_OFF, who_am_i
from pachtray.pfs.client import short_deadline

log = logging.getLogger(__name__)

__all__ = ["MOUNT_STATE_FIELDS", "MountManager", "MountRequest", "MountState", "NOT_CONNECTED"]
NOT_CONNECTED = "not connected to a cluster"
CLUSTER_ID_DEADLINE = 5.0  # seconds for InspectCluster (asked once per connection)
RECHECK_DEADLINE = 2.0  # seconds a commit gives a cluster the health checks last found away


class MountManager:
    """Owns the FUSE mount at ``mount_dir``; state lives under ``data_dir`` (staging, cache, workspace).

    ``auth_state`` (the daemon's cached answer: "off", "on", "unauthenticated") decides whether mount
    requests are checked against the user's access; without it the manager asks pachd. ``parts``
    builds the file system and views (mount.parts.FuseParts unless given). ``record(kind, title,
    message, mount)`` notes what happened in the daemon's activity log (pachtray.activity).
    """

    def __init__(self, mount_dir, data_dir, *, allow_other: bool = False, cache_bytes: int = DEFAULT_CACHE_BYTES,
                 keep_workspace: bool = True, auth_state: Callable[[], str] | None = None, parts=None,
                 record: Callable[..., object] | None = None):
        self.mount_dir = Path(mount_dir)
        self.data_dir = Path(data_dir)
        self.allow_other = allow_other
        self.out_dir = self.data_dir / "out"
        self.records = StagingRecords(self.data_dir)
        self.parts = parts if parts is not None else FuseParts(self.data_dir / "cache", cache_bytes)
        self.table = MountTable()
        self.datums = DatumMode(self)
        self.reads = ReadTracker()  # which files each process read (reproducible notebooks)
        # The drop-in mount-server leaves the workspace alone unless asked to restore it: it starts
        # empty like the reference, and must not overwrite the tray daemon's saved mounts.
        self._moves_told: dict[tuple[str, str, str], str] = {}  # (project, repo, branch) -> head announced
        self.restorer = Restorer(Workspace(self.data_dir / "workspace.json"), self.mount,
                                 lambda: self._client is not None, self._workspace_entries) if keep_workspace else None
        self._auth_state = auth_state
        self._record_to = record or (lambda *args, **kw: None)  # pachtray.activity
        self._quiet = threading.local()  # set while one action is recorded as a whole (update_to_head)
        self._mode_lock = threading.RLock()
        self._client = None
        self._identity: tuple[object, dict] | None = None  # (client, {"id", "address"} of its cluster)
        self._reachable = True  # False while the daemon's health checks say pachd does not answer
        self.fs = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Mount the FUSE file system and bring back rw changes a killed daemon left staged."""
        self.records.prepare()
        self.fs = self.parts.file_system(self.mount_dir, self.allow_other, self.reads)
        self.fs.start()
        self.reads.start()
        self._recover()

    def stop(self) -> None:
        """Unmount FUSE without committing: staged rw changes stay on disk for the next start."""
        if self.restorer is not None:
            self.restorer.stop()
        mounts = self.table.clear()
        self.datums = DatumMode(self)
        self.table.bump()
        for m in mounts:
            if m.mode != "rw":
                continue
            try:
                m.view.close()
            except Exception:  # noqa: BLE001 - closing the rest matters more
                log.exception("closing mount %s", m.name)
        if self.fs is not None:
            self.fs.stop()
            self.fs = None
        self.reads.stop()

    def set_client(self, client) -> None:
        """Switch the cluster connection (None = not connected); views pick it up on their next RPC."""
        self._client = client
        self._reachable = True
        if client is not None and self.restorer is not None:
            self.restorer.wake()

    def set_reachable(self, reachable: bool) -> None:
        """What the daemon's health checks say: while pachd does not answer, the views get no client,
        so a read or listing of anything not cached is EIO at once instead of after a deadline
        (a hung pachd would otherwise cost every `ls` and every kernel retry the full deadline)."""
        self._reachable = reachable

    def client(self):
        """The current client or None; the views call this on every RPC (it changes on PUT /config)."""
        return self._client if self._reachable else None

    def _cluster(self) -> dict | None:
        """{"id", "address"} of the cluster in use (asked once per client), None if it does not say."""
        client, known = self._client, self._identity
        if client is None:
            return None
        if known is not None and known[0] is client:
            return known[1]
        try:
            with short_deadline(CLUSTER_ID_DEADLINE):
                identity = {"id": client.admin.inspect_cluster().id, "address": client.pachd_address.url}
        except errors.RPC_ERRORS as e:
            log.warning("cannot ask the cluster for its id: %s", errors.details(e))
            return None
        self._identity = (client, identity)
        return identity

    def _other_cluster(self, m: Mount) -> str | None:
        """Why recovered changes must not go to the cluster in use: they were staged on another one
        (a restart with other settings). None when they may (same cluster, or either is unknown)."""
        here = self._cluster() if m.cluster else None
        if not m.cluster or not here or m.cluster.get("id") in ("", here["id"]):
            return None
        why = (f"{m.pending} uncommitted changes of {m.project}/{m.repo}@{m.branch} were staged on cluster "
               f"{m.cluster.get('address')} (id {m.cluster.get('id')}), not on {here['address']} (id {here['id']}) "
               "in use now: connect to that cluster to commit them, or discard them")
        self.table.set(m, problem=Problem(ProblemKind.OTHER_CLUSTER, why))
        return why

    def need_client(self):
        c = self._client
        if c is None:
            raise ApiError(404, NOT_CONNECTED)
        return c

    # ------------------------------------------------------------------ change feed

    @property
    def generation(self) -> int:
        return self.table.generation

    def wait_change(self, gen: int, timeout: float, until: Callable[[], bool] | None = None) -> int:
        """Block until the generation differs from ``gen`` or ``until()`` (or ``timeout`` s); return
        it. Writes into rw mounts change pending counts without telling the manager: it looks (local,
        no RPC)."""
        return self.table.wait_change(gen, timeout, self._poll_pending, until)

    def _poll_pending(self) -> None:
        for m in self.table.mounts():
            if m.mode == "rw" and m.state in (MountState.MOUNTED, MountState.RECOVERED):
                self._update_pending(m)

    def _update_pending(self, m: Mount) -> int:
        """Note the pending count of rw mount ``m`` (bumps the generation when it changed)."""
        count = self._pending(m)
        self.table.set(m, pending=count)
        return count

    @staticmethod
    def _pending(m: Mount) -> int:
        if m.mode != "rw":
            return 0
        try:
            return m.view.pending_count()
        except Exception as e:  # noqa: BLE001 - a broken staging dir must not break listings
            log.warning("pending count of %s: %s", m.name, e)
            return m.pending

    def _workspace_entries(self) -> list[dict]:
        return [m.workspace_entry() for m in self.table.mounts() if not m.datum and not m.recovered]

    def _changed_set(self) -> None:
        """The mount set changed: save the workspace (when this manager keeps one) and tell waiters."""
        if self.restorer is not None:
            self.restorer.save()
        self.table.bump()

    # ------------------------------------------------------------------ listing (reads only)

    def mounted(self) -> list[dict]:
        """GET /mounts's `mounted`: the reference's MountState (MOUNT_STATE_FIELDS) of each mount in
        the mount dir, as last refreshed (call `refresh()` first for the reference's GET /mounts)."""
        return [m.reference_state() for m in self.table.mounts() if not m.recovered]

    def all_mounts(self) -> list[dict]:
        """Pachtray's view (/pachtray/v1/mounts): every mount and every set of recovered changes
        (state `pending`), each with `pending_changes` (counted now) and `error` (why the last
        action failed, or why changes were kept; "" when nothing is wrong)."""
        return [m.pachtray_state(self.mount_dir, self._pending(m)) for m in self.table.mounts()]

    # ------------------------------------------------------------------ refresh

    def refresh(self, names: list[str] | None = None) -> bool:
        """Ask the cluster about every mount (or those ``names``): latest commit, commits behind,
        status; drop those deleted upstream, as the reference does before each listing (uncommitted
        changes of a dropped rw mount are kept as `pending`). Without a cluster (or while it does not
        answer) only pending counts are updated. False when the cluster did not answer."""
        client = self.client()
        answered = client is not None
        for m in self.table.mounts():
            if names is not None and m.name not in names:
                continue
            if m.mode == "rw":
                self._update_pending(m)
            if client is None or m.state is not MountState.MOUNTED or m.op.locked():
                continue
            try:
                found = upstream.check(client, m)
            except Exception as e:  # noqa: BLE001 - keep the last known state when pachd is away
                log.info("refreshing mount %s: %s", m.name, errors.details(e))
                if errors.is_unreachable(e):
                    client, answered = None, False  # one timeout per refresh, not one per mount
                continue
            self._apply(m, found)
        return answered

    def _apply(self, m: Mount, found: Upstream) -> None:
        if found.gone:
            self._gone(m, found.gone)
            return
        with self.table.lock:  # compare and set at once: concurrent refreshes note a move once
            before, behind = m.latest_commit, m.behind
            self.table.set(m, status=found.status, latest_commit=found.latest_commit, behind=found.behind)
        new = found.behind - behind
        if before and found.latest_commit != before and new > 0 and not m.pinned:
            with self.table.lock:  # one entry per move of a branch, however many mounts show it
                key = (m.project, m.repo, m.branch)
                told = self._moves_told.get(key) == found.latest_commit
                self._moves_told[key] = found.latest_commit
            if told:
                return
            where = f"{m.repo}@{m.branch}" if m.project == "default" else f"{m.project}/{m.repo}@{m.branch}"
            self.record("upstream", "New commits upstream",
                        f"{new} new commit{'s' if new != 1 else ''} on {where}", mount=m.name)

    def _gone(self, m: Mount, what: str) -> None:
        """Upstream deleted what the mount shows: drop it; uncommitted changes stay staged (state
        `pending`, out of the mount dir) to commit once the repo is back, or to discard."""
        if not m.op.acquire(blocking=False):
            return
        try:
            if m.mode == "rw" and self._update_pending(m) > 0:
                log.warning("mount %s: %s was deleted upstream; keeping its %d uncommitted changes",
                            m.name, what, m.pending)
                self.fs.remove_view(m.name)
                problem = Problem(ProblemKind.DELETED_UPSTREAM, (
                    f"deleted upstream: {what} no longer exists; {m.pending} uncommitted changes are "
                    "kept (recreate it and commit them, or discard them)"))
                self.table.set(m, state=MountState.RECOVERED, problem=problem)
                self._changed_set()
                self.record("error", "Deleted upstream", problem.message, mount=m.name)
                return
            log.info("dropping mount %s: %s was deleted upstream", m.name, what)
            self.remove(m)
            self.record("unmount", "Deleted upstream", f"{m.name} unmounted: {what} was deleted upstream",
                        mount=m.name)
        finally:
            m.op.release()

    # ------------------------------------------------------------------ mount

    def mount(self, requests: list[MountRequest]) -> None:
        """Validate every request (400s), then mount each; an existing name with the same source is a no-op."""
        with self._mode_lock:
            if self.datums.active:
                raise ApiError(400, "can't mount repos while in mounted datum mode")
            client = self.need_client()
            auth_on = self._auth_on(client)
            resolved = [resolve.resolve(client, r, auth_on=auth_on) for r in requests]
            for m in resolved:
                self._add(m)

    def _auth_on(self, client) -> bool:
        """Whether mount requests are checked against the user's access (auth is on)."""
        try:
            state = self._auth_state() if self._auth_state is not None else who_am_i(client)[0]
        except errors.RPC_ERRORS as e:
            raise errors.to_api_error(e, "cannot tell whether auth is on", reference=True) from None
        return state != AUTH_OFF

    def _add(self, m: Mount) -> None:
        existing = self.table.get(m.name)
        if existing is not None:
            self._adopt_or_reject(existing, m)
            return
        if m.mode == "rw":
            m.cluster = self._cluster()
            self.records.write(m)
            m.view = self.parts.rw_view(self.client, self.records.staging_dir(m.name), m)
            m.pending = m.view.pending_count()
        else:
            m.view = self.parts.ro_view(self.client, m)
        try:
            self.publish(m)
        except ApiError:
            if m.mode == "rw":
                m.view.close()
                self.records.drop(m.name)
            raise
        self._changed_set()
        self.record("mount", "Mounted", f"{m.project}/{m.repo}@{m.commit if m.pinned else m.branch} mounted "
                    f"{'read-write' if m.mode == 'rw' else 'read-only'} as {m.name}", mount=m.name)

    def publish(self, m: Mount) -> None:
        """Register a mount whose view is built and show it in the file system, once it can answer:
        a mount never appears with a listing that is empty only because it was not fetched yet."""
        try:
            m.view.prepare()
        except OSError as e:
            raise errors.ClusterUnreachable(f"mount request {m.name!r}: cannot list {m.project}/{m.repo}@"
                                            f"{m.commit or m.branch}: {e.strerror or e}") from None
        self.table.put(m)
        self._note_source(m)
        self.fs.add_view(m.name, m.view)
        self.table.set(m, state=MountState.MOUNTED)

    def _adopt_or_reject(self, existing: Mount, m: Mount) -> None:
        same = existing.source() == m.source() and (not m.pinned or existing.commit == m.commit)
        if not same and existing.recovered:
            raise ApiError(500, f"mount at '{m.name}' already in use: {existing.pending} uncommitted changes of "
                                f"{existing.project}/{existing.repo}@{existing.branch} ({existing.kept_because}) "
                                "wait under that name; commit or discard them in Pachtray first")
        if not same:
            raise ApiError(500, f"mount at '{m.name}' already in use by {existing.project}/{existing.repo}"
                                f"@{existing.branch or existing.commit} ({existing.mode})")
        if not existing.recovered:
            return
        if (why := self._other_cluster(existing)) is not None:
            raise StagedElsewhere(500, f"mount at '{m.name}' refused: {why}")
        # Mounting the source of recovered changes again puts them back in the mount dir.
        with existing.op:
            self._note_source(existing)
            self.fs.add_view(existing.name, existing.view)
            self.table.set(existing, state=MountState.MOUNTED, problem=None, paths=m.paths)
        self._changed_set()

    def _note_source(self, m: Mount) -> None:
        """Tell the read tracker what the mount shows from now on (reads record only name and commit)."""
        commit = (m.view.base_commit_id or "") if m.mode == "rw" else m.commit  # what the reads record
        self.reads.mount_seen(m.name, commit, {"project": m.project, "repo": m.repo, "branch": m.branch,
                                               "paths": list(m.paths), "mode": m.mode})

    def _recover(self) -> None:
        for m in self.records.recover():
            m.view = self.parts.rw_view(self.client, self.records.staging_dir(m.name), m)
            m.pending = m.view.pending_count()
            if m.pending == 0:
                m.view.close()
                self.records.drop(m.name)
                continue
            log.info("recovered %d uncommitted changes of mount %s", m.pending, m.name)
            self.table.put(m)
        self.table.bump()

    def record(self, kind: str, title: str, message: str, **kw) -> None:
        if not getattr(self._quiet, "on", False):
            self._record_to(kind, title, message, **kw)

    def update_to_head(self, name: str) -> None:
        """Show read-only branch mount ``name`` at its branch's head, under the same name: one action,
        one activity entry (not an unmount and a mount)."""
        m = self.table.get(name)
        if m is None or m.recovered:
            raise ApiError(404, f"{name} is not mounted")
        if m.pinned:
            raise ApiError(400, f"{name} is pinned to commit {m.commit[:12]}: it does not follow "
                                f"{m.branch or 'a branch'}; nothing to refresh")
        if m.mode != "ro" or not m.branch:
            raise ApiError(400, f"{name} is not a read-only branch mount; nothing to refresh")
        request = MountRequest(name=name, project=m.project, repo=m.repo, branch=m.branch, paths=list(m.paths),
                               mode="ro")
        self._quiet.on = True
        try:
            self.unmount([name])
            self.mount([request])
        finally:
            self._quiet.on = False
        self.refresh([name])
        now = self.table.get(name)
        shown = now.commit[:8] if now is not None else "?"
        self.record("mount", "Updated", f"{name} now shows {shown}, the head of {m.repo}@{m.branch}", mount=name)

    def pin(self, name: str) -> None:
        """Keep read-only mount ``name`` at the commit it shows (a lock was reproduced on it): it no
        longer follows its branch, and the workspace restores it at that commit."""
        m = self.table.get(name)
        if m is not None and m.mode == "ro" and not m.recovered and self.table.set(m, pinned=True):
            self._changed_set()

    # ------------------------------------------------------------------ commit / discard

    def _get(self, name: str, action: str) -> Mount:
        """The mount ``name`` for the reference's routes (recovered changes are not mounted there)."""
        m = self.table.get(name)
        if m is None or m.recovered:
            raise ApiError(500, f"can't {action} {name!r}: not mounted")
        return m

    def commit(self, name: str, *, recovered: bool = False, description: str = "",
               read_only_ok: bool = False, review: str | None = None) -> None:
        """Upload every staged change of rw mount ``name`` as one commit (all-or-nothing) with
        ``description``; with ``recovered``, also changes recovered from an earlier run (which then
        leave the table). A read-only mount is an error, or with ``read_only_ok`` nothing to do (the
        reference's /_commit answers it as a commit of no changes). With ``review`` (the token of
        `changes`), 409 instead of a commit when the changes are no longer the reviewed ones."""
        m = self._rw(name, "commit") if recovered else self._get(name, "commit")
        if m.mode != "rw":
            if read_only_ok:
                return
            raise ApiError(500, f"can't commit {name!r}: it is mounted read-only")
        if m.recovered and (why := self._other_cluster(m)) is not None:
            raise StagedElsewhere(409, f"can't commit {name!r}: {why}")
        with m.op:
            self._commit_locked(m, description, review)
            if m.recovered:
                self.remove(m)

    def _commit_locked(self, m: Mount, description: str = "", review: str | None = None) -> None:
        client = self.need_client()
        if not self._reachable:  # the health checks run every 2 s: a user's commit asks once itself
            try:
                with short_deadline(RECHECK_DEADLINE):
                    client.admin.inspect_cluster()
                self._reachable = True
            except errors.RPC_ERRORS:
                pass  # still away: the commit fails at once, saying so
        before = m.state
        self.table.set(m, state=MountState.COMMITTING)
        try:
            new_id = m.view.commit(description, review=review)
        except ChangedSinceReview as e:
            self.table.set(m, state=before)
            raise ApiError(409, f"can't commit {m.name!r}: {e.message}") from None
        except Exception as e:  # noqa: BLE001 - any failure: everything stays staged
            msg = e.message if isinstance(e, CommitFailed) else \
                f"commit of {m.name!r} failed, changes kept: {errors.details(e)}"
            if before is MountState.RECOVERED and errors.is_not_found(e):  # kept changes of a repo that is gone
                msg += " (recreate the repo and commit again, or discard the changes)"
            self.table.set(m, state=before, problem=Problem(ProblemKind.COMMIT_FAILED, msg))
            self._update_pending(m)
            raise ApiError(500, msg) from None
        self.table.set(m, state=before, problem=None, **({"commit": new_id} if new_id else {}))
        if new_id:
            self.record("commit", "Committed", f"{m.name}: commit {new_id[:12]} on {m.project}/{m.repo}@{m.branch}",
                        mount=m.name)
        self._note_source(m)
        if not m.recovered:
            m.cluster = m.cluster or self._cluster()
            self.records.write(m)
        self._update_pending(m)

    def discard(self, name: str) -> None:
        """Drop the staged changes of rw mount ``name`` (mounted or recovered)."""
        m = self._rw(name, "discard changes of")
        with m.op:
            m.view.discard()
            if m.recovered:
                self.remove(m)
                return
            self.table.set(m, problem=None)
            self._update_pending(m)

    def _rw(self, name: str, action: str) -> Mount:
        """The rw mount (or recovered changes) ``name`` for Pachtray's routes: 404 unknown, 400
        read-only (the reference's routes answer 500 for both, `_get`)."""
        m = self.table.get(name)
        if m is None:
            raise ApiError(404, f"no mount named {name!r}")
        if m.mode != "rw":
            raise ApiError(400, f"can't {action} {name!r}: it is mounted read-only, it has no changes")
        return m

    def changes(self, name: str) -> dict:
        """What a commit of rw mount ``name`` (mounted or recovered) would change: files sorted by
        path, each marked `upstream` when the branch changed it since the changes' base (then a
        commit would overwrite someone else's version). `upstream_checked` is false when the
        cluster could not be asked (not connected, unreachable, repo gone). `review`: the token a
        commit of exactly these changes is given."""
        m = self._rw(name, "list changes of")
        if m.recovered and (why := self._other_cluster(m)) is not None:  # (their base is on that cluster)
            raise StagedElsewhere(409, f"can't list the changes of {name!r} here: {why}")
        try:
            review = m.view.review_token()  # first: a change made while listing makes the token stale, not wrong
            found = m.view.changes()
        except OSError as e:
            raise _review_error(f"list the changes of {name!r}", e) from None
        moved, checked = set(), False
        client = self.client()
        if client is not None and (base := m.view.base_commit_id):
            try:
                moved, checked = upstream.changed_since(client, m, base, {c.path for c in found}), True
            except errors.RPC_ERRORS as e:
                log.info("changes of %s: upstream not checked: %s", name, errors.details(e))
        return {"changes": [{"path": c.path, "change": c.change, "size": c.size, "upstream": c.path in moved}
                            for c in found], "upstream_checked": checked, "review": review}

    def discard_paths(self, name: str, paths: list[str]) -> None:
        """Revert those paths of rw mount ``name`` (mounted or recovered) to the base; recovered
        changes with nothing left leave the table."""
        m = self._rw(name, "discard changes of")
        if m.recovered and (why := self._other_cluster(m)) is not None:
            raise StagedElsewhere(409, f"can't discard single changes of {name!r} here (discard them all, or "
                                       f"connect to their cluster): {why}")
        with m.op:
            try:
                m.view.discard_paths(paths)
            except OSError as e:
                raise _review_error(f"discard changes of {name!r}", e) from None
            finally:
                count = self._update_pending(m)
            if m.recovered and count == 0:
                self.remove(m)

    # ------------------------------------------------------------------ unmount

    def unmount(self, names: list[str]) -> None:
        """Commit pending rw changes, then remove each mount. As the reference, a mount that processes
        use (their cwd, files open for reading) is removed from under them; only an rw mount with a
        file open for writing answers 409 naming its holders, since what they write next would be lost."""
        with self._mode_lock:
            if self.datums.active:
                raise ApiError(400, "can't unmount repos while in mounted datum mode")
            mounts = [self._get(name, "unmount") for name in dict.fromkeys(names)]  # a refused request changes nothing
            for m in mounts:
                self._refuse_if_written(m)
            for m in mounts:
                self._unmount_one(m)

    def _refuse_if_written(self, m: Mount) -> None:
        holders = self.fs.busy_holders(m.name, writing=True) if m.mode == "rw" else []
        if holders:
            raise ApiError(409, f"can't unmount {m.name!r}: files in it are open for writing by "
                                f"{', '.join(holders)}; close them, then retry")

    def _unmount_one(self, m: Mount) -> None:
        with m.op:
            self._refuse_if_written(m)  # again under the mount's lock: a writer may have opened since
            if m.mode == "rw" and self._update_pending(m) > 0:
                self._commit_locked(m)
            self.table.set(m, state=MountState.UNMOUNTING)
            self.remove(m)
            self.record("unmount", "Unmounted", f"{m.name} unmounted", mount=m.name)

    def remove(self, m: Mount) -> None:
        """Take ``m`` out of the mount dir and the table (its staged changes must be committed or moot)."""
        in_fs = not m.recovered
        if not self.table.take(m):
            return
        if in_fs:
            self.fs.remove_view(m.name)
        if m.mode == "rw":
            try:
                m.view.close()
            finally:
                self.records.drop(m.name)
        self._changed_set()

    def unmount_all(self) -> None:
        """Leave datum mode and unmount every mount (recovered changes stay pending)."""
        with self._mode_lock:
            if self.restorer is not None:
                self.restorer.forget()
            self.datums.leave()
            problems = []
            for m in [m for m in self.table.mounts() if not m.recovered]:
                try:
                    self._unmount_one(m)
                except ApiError as e:
                    problems.append(e)
            self._changed_set()
            if problems:
                raise ApiError(problems[0].status, "; ".join(e.message for e in problems))

    # ------------------------------------------------------------------ datum mode

    def datums_mount(self, spec: dict) -> dict:
        """Enter datum mode with the datums of ``spec['input']`` and mount the first one."""
        datums = self.datums.compute(spec)
        with self._mode_lock:
            return self.datums.enter(datums)

    def datums_next(self) -> dict:
        with self._mode_lock:
            return self.datums.step(+1)

    def datums_prev(self) -> dict:
        with self._mode_lock:
            return self.datums.step(-1)

    def datums_state(self) -> dict:
        return self.datums.state()

    # ------------------------------------------------------------------ workspace restore

    def restore(self) -> None:
        """Mount the saved workspace again; what cannot be mounted yet (no cluster) is retried."""
        if self.restorer is None:
            raise ValueError("this MountManager keeps no workspace (keep_workspace=False)")
        self.restorer.restore()


def _review_error(action: str, e: OSError) -> ApiError:
    """The base could not be read (EIO: the cluster is away, 503), or the request cannot be done (400)."""
    if e.errno == errno.EIO:
        return ApiError(503, f"can't {action}: the cluster did not answer ({e.strerror or e}); try again later")
    return ApiError(400, f"can't {action}: {e.strerror or e}")
