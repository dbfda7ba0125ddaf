"""The MountManager: the named mounts in the one FUSE mount, their states, datum mode, recovery.

Rules and texts follow the reference mount-server (src/server/pfs/fuse/server.go at v2.8.0), with
Pachtray's differences: a failed commit keeps every change and the mount usable; rw changes staged
by a killed daemon (or left by a repo deleted upstream) are kept as `pending` entries, outside the
mount dir, to commit or discard; the mount set can be saved as a workspace. `mounted()` is what
the reference's GET /mounts shows; `all_mounts()` adds Pachtray's view (recovered changes, counts).

Locking: `_lock` guards the mount table and is never held across an RPC or an upload;
`_mode_lock` serializes changes of the mount set (mount, unmount, datum mode); each mount's `op`
lock serializes commit/discard/unmount of that mount.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from pachyderm_sdk.api import auth, pfs

from pachtray.errors import ApiError
from pachtray.mount import datums as datum_mod
from pachtray.mount.cache import DEFAULT_CACHE_BYTES, ChunkCache
from pachtray.mount.reads import ReadTracker
from pachtray.mount.staging import CommitFailed
from pachtray.mount.workspace import Workspace
from pachtray.pfs import errors
from pachtray.pfs.errors import RPC_ERRORS, ClusterUnreachable

log = logging.getLogger(__name__)

MODES = ("ro", "rw")
# The reference's MountState, exactly: GET /mounts's `mounted` entries carry these keys and no others.
MOUNT_STATE_FIELDS = ("name", "project", "repo", "branch", "commit", "paths", "mode", "state", "status",
                      "mountpoint", "latest_commit", "how_many_commits_behind")
RECOVERED = "pending"  # the state of staged changes kept outside the mount dir (not a reference state)
NOT_CONNECTED = "not connected to a cluster"
_CHANGE_POLL = 0.5  # s between looks at the rw mounts' pending counts while someone waits for a change


@dataclass(kw_only=True)
class MountRequest:
    """One mount of PUT /_mount, shape-checked by api.models; existence is checked here."""

    name: str
    project: str = "default"
    repo: str
    branch: str | None = None
    commit: str | None = None
    paths: list[str] = field(default_factory=lambda: ["/"])
    mode: str = "ro"


@dataclass(eq=False)
class _Mount:
    name: str
    project: str
    repo: str
    branch: str
    commit: str  # ro: the commit shown; rw: the commit the staged changes are based on ("" if none)
    paths: list[str]
    mode: str
    view: object
    pinned: bool = False  # ro mount of an explicit commit (not following a branch)
    datum: bool = False
    state: str = "mounting"
    status: str = ""
    error: str = ""  # sticky status (failed commit, deleted upstream) until the next success
    latest_commit: str = ""
    behind: int = 0
    pending: int = 0
    op: threading.Lock = field(default_factory=threading.Lock)

    def source(self) -> tuple:
        return (self.project, self.repo, self.branch, self.mode)

    def workspace_entry(self) -> dict:
        return {"name": self.name, "project": self.project, "repo": self.repo, "branch": self.branch,
                "commit": self.commit if self.pinned else None, "paths": list(self.paths), "mode": self.mode}


@dataclass
class _DatumMode:
    input: object  # pps.Input with defaults filled
    datums: list
    idx: int = 0


def _repo(project: str, repo: str) -> pfs.Repo:
    return pfs.Repo(name=repo, type="user", project=pfs.Project(name=project))


def _branch(project: str, repo: str, branch: str) -> pfs.Branch:
    return pfs.Branch(repo=_repo(project, repo), name=branch)


class MountManager:
    """Owns the FUSE mount at ``mount_dir``; state lives under ``data_dir`` (staging, cache, workspace)."""

    def __init__(self, mount_dir, data_dir, *, allow_other: bool = False, cache_bytes: int = DEFAULT_CACHE_BYTES,
                 keep_workspace: bool = True):
        self.mount_dir = Path(mount_dir)
        self.data_dir = Path(data_dir)
        self.allow_other = allow_other
        self.cache_bytes = cache_bytes
        self.staging_root = self.data_dir / "staging"
        self.meta_root = self.data_dir / "mounts"
        self.out_dir = self.data_dir / "out"
        # The drop-in mount-server leaves the workspace alone unless asked to restore it: it starts
        # empty like the reference, and must not overwrite the tray daemon's saved mounts.
        self.workspace = Workspace(self.data_dir / "workspace.json") if keep_workspace else None
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._mode_lock = threading.RLock()
        self._mounts: dict[str, _Mount] = {}
        self._datum: _DatumMode | None = None
        self._generation = 0
        self._client = None
        self._reachable = True  # False while the daemon's health checks say pachd does not answer
        self._fs = None
        self._cache = None
        self.reads = ReadTracker()  # which files each process read (reproducible notebooks)
        self._unrestored: list[dict] = []
        self._restore_wake = threading.Event()
        self._restore_thread: threading.Thread | None = None
        self._stopped = threading.Event()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Mount the FUSE file system and bring back rw changes a killed daemon left staged."""
        from pachtray.mount.fs import FuseMount

        for d in (self.staging_root, self.meta_root, self.data_dir / "cache"):
            d.mkdir(parents=True, exist_ok=True)
        self._cache = ChunkCache(self.data_dir / "cache", self.cache_bytes)
        self._fs = FuseMount(self.mount_dir, allow_other=self.allow_other, reads=self.reads)
        self._fs.start()
        self.reads.start()
        self._stopped.clear()
        self._recover()

    def stop(self) -> None:
        """Unmount FUSE without committing: staged rw changes stay on disk for the next start."""
        self._stopped.set()
        self._restore_wake.set()
        if self._restore_thread is not None:
            self._restore_thread.join(10)
        with self._lock:
            mounts, self._mounts = list(self._mounts.values()), {}
            self._datum = None
            self._bump()
        for m in mounts:
            if m.mode != "rw":
                continue
            try:
                m.view.close()
            except Exception:  # noqa: BLE001 - closing the rest matters more
                log.exception("closing mount %s", m.name)
        if self._fs is not None:
            self._fs.stop()
            self._fs = None
        self.reads.stop()

    def set_client(self, client) -> None:
        """Switch the cluster connection (None = not connected); views pick it up on their next RPC."""
        self._client = client
        self._reachable = True
        if client is not None:
            self._restore_wake.set()

    def set_reachable(self, reachable: bool) -> None:
        """What the daemon's health checks say: while pachd does not answer, the views get no client,
        so a read or listing of anything not cached is EIO at once instead of after a deadline
        (a hung pachd would otherwise cost every `ls` and every kernel retry the full deadline)."""
        self._reachable = reachable

    def client(self):
        """The current client or None; the views call this on every RPC (it changes on PUT /config)."""
        return self._client if self._reachable else None

    def _need_client(self):
        c = self._client
        if c is None:
            raise ApiError(404, NOT_CONNECTED)
        return c

    # ------------------------------------------------------------------ change feed

    @property
    def generation(self) -> int:
        return self._generation

    def _bump(self) -> None:
        with self._lock:
            self._generation += 1
            self._changed.notify_all()

    def wait_change(self, gen: int, timeout: float) -> int:
        """Block until the generation differs from ``gen`` (or ``timeout`` s); return it.

        Writes into rw mounts change pending counts without telling the manager, so while waiting
        it looks at those counts (local, no RPC) every half second.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            with self._changed:
                if self._generation != gen:
                    return self._generation
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return self._generation
                self._changed.wait(min(remaining, _CHANGE_POLL))
                if self._generation != gen:
                    return self._generation
            self._poll_pending()

    def _poll_pending(self) -> None:
        with self._lock:
            rw = [m for m in self._mounts.values() if m.mode == "rw" and m.state in ("mounted", RECOVERED)]
        for m in rw:
            self._update_pending(m)

    def _update_pending(self, m: _Mount) -> int:
        try:
            count = m.view.pending_count()
        except Exception as e:  # noqa: BLE001 - a broken staging dir must not break listings
            log.warning("pending count of %s: %s", m.name, e)
            return m.pending
        if count != m.pending:
            m.pending = count
            self._bump()
        return count

    def _changed_set(self) -> None:
        """The mount set changed: tell waiters and save the workspace (when this manager keeps one)."""
        with self._lock:
            if self.workspace is not None:
                entries = [m.workspace_entry() for m in self._mounts.values() if not m.datum and m.state != RECOVERED]
                names = {e["name"] for e in entries}
                entries += [e for e in self._unrestored if e["name"] not in names]
                try:
                    self.workspace.save(entries)
                except OSError as e:
                    log.error("cannot save workspace %s: %s", self.workspace.path, e)
            self._bump()

    # ------------------------------------------------------------------ listing

    def mounted(self) -> list[dict]:
        """GET /mounts's `mounted`: the reference's MountState (MOUNT_STATE_FIELDS) of each mount in the
        mount dir, after the reference's refresh (drops mounts whose repo or commit is gone)."""
        return [self._state_dict(m) for m in self._refreshed() if m.state != RECOVERED]

    def all_mounts(self) -> list[dict]:
        """Pachtray's view (/pachtray/v1/mounts): every mount and every set of recovered changes
        (state `pending`), each with `pending_changes` and `error` (why the last action failed,
        or why changes were kept; "" when nothing is wrong)."""
        out = []
        for m in self._refreshed():
            d = self._state_dict(m)
            if m.state == RECOVERED:
                d["status"] = (f"{m.pending} uncommitted changes recovered from an earlier run: "
                               "commit or discard them")
            out.append(d | {"pending_changes": m.pending, "error": m.error})
        return out

    def _refreshed(self) -> list[_Mount]:
        """The mounts after refreshing latest commit / commits behind and dropping those deleted upstream."""
        with self._lock:
            mounts = list(self._mounts.values())
        client = self._client
        for m in mounts:
            if m.mode == "rw":
                self._update_pending(m)
            if client is not None and m.state == "mounted" and not m.op.locked():
                try:
                    self._refresh(client, m)
                except Exception as e:  # noqa: BLE001 - keep the last known state when pachd is away
                    log.info("refreshing mount %s: %s", m.name, errors.details(e))
                    if errors.is_unreachable(e):
                        client = None  # one timeout per listing, not one per mount
        with self._lock:
            return list(self._mounts.values())

    def _state_dict(self, m: _Mount) -> dict:
        return {"name": m.name, "project": m.project, "repo": m.repo, "branch": m.branch, "commit": m.commit,
                "paths": list(m.paths), "mode": m.mode, "state": m.state, "status": m.status,
                "mountpoint": str(self.mount_dir / m.name), "latest_commit": m.latest_commit,
                "how_many_commits_behind": m.behind}

    def _refresh(self, client, m: _Mount) -> None:
        """The reference's deletion check and RefreshMountState, for one mount.

        A ro mount lasts as long as its commit exists and an rw mount as long as its repo does:
        deleting the branch keeps both (the reference's TestDeletingMountedRepo). With the branch
        gone the refresh keeps the last status, as the reference's does.
        """
        try:
            if m.mode == "rw":
                client.pfs.inspect_repo(repo=_repo(m.project, m.repo))
            else:
                client.pfs.inspect_commit(commit=pfs.Commit(repo=_repo(m.project, m.repo), id=m.commit))
        except RPC_ERRORS as e:
            if not errors.is_not_found(e):
                raise
            self._gone(m, f"repo {m.project}/{m.repo}" if m.mode == "rw" else f"commit {m.commit}")
            return
        try:
            head = client.pfs.inspect_branch(branch=_branch(m.project, m.repo, m.branch)).head
        except RPC_ERRORS as e:
            if not errors.is_not_found(e):
                raise
            head = None
        if not m.commit:
            latest, behind, status = m.latest_commit, m.behind, "branch does not contain any commits"
        elif head is None:
            latest, behind, status = m.latest_commit, m.behind, m.status
        else:
            latest, behind, status = self._behind(client, m, head)
        with self._lock:
            changed = (status, latest, behind) != (m.status, m.latest_commit, m.behind)
            m.status, m.latest_commit, m.behind = status, latest, behind
        if changed:
            self._bump()

    def _behind(self, client, m: _Mount, head) -> tuple[str, int, str]:
        if not m.commit:
            return head.id, 0, "branch does not contain any commits"
        if head.id == m.commit:
            return head.id, 0, f"up to date on latest commit {head.id[:8]}"
        ids = [ci.commit.id for ci in client.pfs.list_commit(repo=head.repo or _repo(m.project, m.repo), to=head)]
        ids.reverse()
        current = ids.index(m.commit) if m.commit in ids else -1
        latest = len(ids) - 1
        behind = latest - current
        if behind > 0:
            return head.id, behind, (f"{behind} commits behind latest; current = {m.commit[:8]} ({current}'th), "
                                     f"latest = {head.id[:8]} ({latest}'th)")
        return head.id, behind, f"up to date on latest commit {head.id[:8]}"

    def _gone(self, m: _Mount, what: str) -> None:
        """Upstream deleted what the mount shows: drop it; uncommitted changes stay staged (state
        `pending`, out of the mount dir) to commit once the repo is back, or to discard."""
        if not m.op.acquire(blocking=False):
            return
        try:
            if m.mode == "rw" and self._update_pending(m) > 0:
                log.warning("mount %s: %s was deleted upstream; keeping its %d uncommitted changes",
                            m.name, what, m.pending)
                self._fs.remove_view(m.name)
                with self._lock:
                    m.state = RECOVERED
                    m.error = (f"deleted upstream: {what} no longer exists; {m.pending} uncommitted changes are "
                               "kept (recreate it and commit them, or discard them)")
                self._changed_set()
                return
            log.info("dropping mount %s: %s was deleted upstream", m.name, what)
            self._remove(m)
        finally:
            m.op.release()

    # ------------------------------------------------------------------ mount

    def mount(self, requests: list[MountRequest]) -> None:
        """Validate every request (400s), then mount each; an existing name with the same source is a no-op."""
        with self._mode_lock:
            if self._datum is not None:
                raise ApiError(400, "can't mount repos while in mounted datum mode")
            resolved = [self._resolve(r) for r in requests]
            for r in resolved:
                self._add(r)

    def _resolve(self, r: MountRequest) -> _Mount:
        """The reference's verifyMountRequest: defaults, existence, branch -> head commit."""
        mode = r.mode or "ro"
        if not r.name or r.name in (".", "..") or "/" in r.name or "\0" in r.name:
            raise ApiError(400, f"invalid mount name {r.name!r}: a mount name must not be empty, contain '/' "
                                "or be '.' or '..'")
        if not r.repo:
            raise ApiError(400, f"mount request {r.name!r}: no repo specified")
        if mode not in MODES:
            raise ApiError(400, f"mount request {r.name!r}: mount mode can only be 'ro' or 'rw', got {mode!r}")
        project = r.project or "default"
        paths = list(r.paths or ["/"])
        client = self._need_client()
        where = f"mount request {r.name!r}"
        try:
            client.pfs.inspect_project(project=pfs.Project(name=project))
            info = client.pfs.inspect_repo(repo=_repo(project, r.repo))
            self._check_permissions(info, mode, r.repo)
            if mode == "rw":
                branch = r.branch or "master"
                try:
                    base = client.pfs.inspect_branch(branch=_branch(project, r.repo, branch)).head
                except RPC_ERRORS as e:
                    if not errors.is_not_found(e):
                        raise
                    base = None
                return _Mount(name=r.name, project=project, repo=r.repo, branch=branch,
                              commit=base.id if base else "", paths=paths, mode="rw", view=None)
            commit = (r.commit or "").lower()
            if commit and (len(commit) != 32 or any(c not in "0123456789abcdef" for c in commit)):
                raise ApiError(400, f"{where}: invalid commit ID {r.commit!r}: expected 32 hexadecimal characters")
            branch = r.branch or ("" if commit else "master")
            ref = pfs.Commit(repo=_repo(project, r.repo), id=commit,
                             branch=_branch(project, r.repo, branch) if branch else None)
            ci = client.pfs.inspect_commit(commit=ref)
        except RPC_ERRORS as e:
            raise errors.to_api_error(e, where, reference=True, not_found=400) from None
        got_branch = ci.commit.branch.name if ci.commit.branch and ci.commit.branch.name else branch
        return _Mount(name=r.name, project=project, repo=r.repo, branch=got_branch, commit=ci.commit.id,
                      paths=paths, mode="ro", view=None, pinned=bool(commit))

    @staticmethod
    def _check_permissions(info, mode: str, repo: str) -> None:
        if info.auth_info is None or not info.auth_info.permissions:
            return
        perms = set(info.auth_info.permissions)
        read = {auth.Permission.REPO_READ, auth.Permission.REPO_LIST_COMMIT, auth.Permission.REPO_LIST_BRANCH,
                auth.Permission.REPO_LIST_FILE}
        if not read <= perms:
            raise ApiError(500, f"user doesn't have read permission on repo {repo}")
        if mode == "rw" and auth.Permission.REPO_WRITE not in perms:
            raise ApiError(500, f"can't create writable mount since user doesn't have write access on repo {repo}")

    def _add(self, m: _Mount) -> None:
        with self._lock:
            existing = self._mounts.get(m.name)
        if existing is not None:
            self._adopt_or_reject(existing, m)
            return
        if m.mode == "rw":
            self._write_meta(m)
            m.view = self._rw_view(m)
            m.pending = m.view.pending_count()
        else:
            m.view = self._ro_view(m)
        try:
            self._publish(m)
        except ApiError:
            if m.mode == "rw":
                m.view.close()
                self._drop_staging(m.name)
            raise
        self._changed_set()

    def _publish(self, m: _Mount) -> None:
        """Register a mount whose view is built and show it in the file system, once it can answer:
        a mount never appears with a listing that is empty only because it was not fetched yet."""
        try:
            m.view.prepare()
        except OSError as e:
            raise ClusterUnreachable(f"mount request {m.name!r}: cannot list {m.project}/{m.repo}@"
                                     f"{m.commit or m.branch}: {e.strerror or e}") from None
        with self._lock:
            self._mounts[m.name] = m
        self._note_source(m)
        self._fs.add_view(m.name, m.view)
        with self._lock:
            m.state = "mounted"

    def _adopt_or_reject(self, existing: _Mount, m: _Mount) -> None:
        same = existing.source() == m.source() and (not m.pinned or existing.commit == m.commit)
        if not same and existing.state == RECOVERED:
            raise ApiError(500, f"mount at '{m.name}' already in use: {existing.pending} uncommitted changes of "
                                f"{existing.project}/{existing.repo}@{existing.branch} recovered from an earlier run "
                                "are kept under that name; commit or discard them in Pachtray first")
        if not same:
            raise ApiError(500, f"mount at '{m.name}' already in use by {existing.project}/{existing.repo}"
                                f"@{existing.branch or existing.commit} ({existing.mode})")
        if existing.state != RECOVERED:
            return
        # Mounting the source of recovered changes again puts them back in the mount dir.
        with existing.op:
            self._note_source(existing)
            self._fs.add_view(existing.name, existing.view)
            with self._lock:
                existing.state, existing.error, existing.paths = "mounted", "", m.paths
        self._changed_set()

    def _note_source(self, m: _Mount) -> None:
        """Tell the read tracker what the mount shows from now on (reads record only name and commit)."""
        commit = (m.view.base_commit_id or "") if m.mode == "rw" else m.commit  # what the reads record
        self.reads.mount_seen(m.name, commit, {"project": m.project, "repo": m.repo, "branch": m.branch,
                                               "paths": list(m.paths), "mode": m.mode})

    def _ro_view(self, m: _Mount):
        from pachtray.mount.fs import CommitView

        return CommitView(self.client, m.project, m.repo, m.commit, m.paths, self._cache)

    def _rw_view(self, m: _Mount):
        from pachtray.mount.fs import RwView

        return RwView(self.staging_root / m.name, self.client, m.project, m.repo, m.branch, m.commit or None,
                      self._cache)

    # ------------------------------------------------------------------ rw metadata and recovery

    def _meta_path(self, name: str) -> Path:
        return self.meta_root / f"{name}.json"

    def _write_meta(self, m: _Mount) -> None:
        """What a staging dir belongs to, so a restart after kill -9 knows where its changes go."""
        path = self._meta_path(m.name)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps({"name": m.name, "project": m.project, "repo": m.repo, "branch": m.branch,
                                   "base": m.commit, "paths": m.paths}))
        tmp.replace(path)

    def _drop_staging(self, name: str) -> None:
        shutil.rmtree(self.staging_root / name, ignore_errors=True)
        self._meta_path(name).unlink(missing_ok=True)

    def _recover(self) -> None:
        known = {f.name[:-len(".json")] for f in self.meta_root.glob("*.json")}
        for orphan in sorted(self.staging_root.iterdir()):
            if orphan.name not in known:
                # Changes with no record of their repo: never upload them anywhere, never delete them.
                aside = self.data_dir / "orphaned-staging" / f"{orphan.name}-{int(time.time())}"
                aside.parent.mkdir(parents=True, exist_ok=True)
                orphan.rename(aside)
                log.warning("staging dir %s has no mount record; moved it to %s", orphan, aside)
        for meta_file in sorted(self.meta_root.glob("*.json")):
            try:
                meta = json.loads(meta_file.read_text())
                name = meta["name"]
                m = _Mount(name=name, project=meta["project"], repo=meta["repo"], branch=meta["branch"],
                           commit=meta.get("base") or "", paths=meta.get("paths") or ["/"], mode="rw", view=None,
                           state=RECOVERED)
            except (OSError, ValueError, KeyError, TypeError) as e:
                log.warning("ignoring unreadable mount record %s: %s", meta_file, e)
                continue
            if not (self.staging_root / name).is_dir():
                meta_file.unlink(missing_ok=True)
                continue
            m.view = self._rw_view(m)
            m.pending = m.view.pending_count()
            if m.pending == 0:
                m.view.close()
                self._drop_staging(name)
                continue
            log.info("recovered %d uncommitted changes of mount %s", m.pending, name)
            with self._lock:
                self._mounts[name] = m
        self._bump()

    # ------------------------------------------------------------------ commit / discard

    def _get(self, name: str, action: str, *, recovered: bool = False) -> _Mount:
        """The mount ``name``; recovered changes count only where ``recovered`` (Pachtray's routes):
        for the reference's routes they are not mounted."""
        with self._lock:
            m = self._mounts.get(name)
        if m is None or (m.state == RECOVERED and not recovered):
            raise ApiError(500, f"can't {action} {name!r}: not mounted")
        return m

    def commit(self, name: str, *, recovered: bool = False) -> None:
        """Upload every staged change of rw mount ``name`` as one commit (all-or-nothing); with
        ``recovered``, also changes recovered from an earlier run (which then leave the table)."""
        m = self._get(name, "commit", recovered=recovered)
        if m.mode != "rw":
            raise ApiError(500, f"can't commit {name!r}: it is mounted read-only")
        with m.op:
            self._commit_locked(m)
            if m.state == RECOVERED:
                self._remove(m)

    def _commit_locked(self, m: _Mount) -> None:
        self._need_client()
        before = m.state
        with self._lock:
            m.state = "committing"
        self._bump()
        try:
            new_id = m.view.commit()
        except Exception as e:  # noqa: BLE001 - any failure: everything stays staged
            msg = e.message if isinstance(e, CommitFailed) else \
                f"commit of {m.name!r} failed, changes kept: {errors.details(e)}"
            with self._lock:
                m.state = before
                m.error = msg
            self._update_pending(m)
            self._bump()
            raise ApiError(500, msg) from None
        with self._lock:
            if new_id:
                m.commit = new_id
            m.state = before
            m.error = ""
        self._note_source(m)
        if m.state != RECOVERED:
            self._write_meta(m)
        self._update_pending(m)
        self._bump()

    def discard(self, name: str) -> None:
        """Drop the staged changes of rw mount ``name`` (mounted or recovered)."""
        m = self._get(name, "discard changes of", recovered=True)
        if m.mode != "rw":
            raise ApiError(400, f"can't discard changes of {name!r}: it is mounted read-only")
        with m.op:
            m.view.discard()
            if m.state == RECOVERED:
                self._remove(m)
                return
            with self._lock:
                m.error = ""
            self._update_pending(m)
            self._bump()

    # ------------------------------------------------------------------ unmount

    def unmount(self, names: list[str]) -> None:
        """Commit pending rw changes, then remove each mount; a busy mount answers 409 naming its holders."""
        with self._mode_lock:
            if self._datum is not None:
                raise ApiError(400, "can't unmount repos while in mounted datum mode")
            for name in names:
                self._unmount_one(self._get(name, "unmount"))

    def _unmount_one(self, m: _Mount) -> None:
        with m.op:
            holders = self._fs.busy_holders(m.name)
            if holders:
                raise ApiError(409, f"can't unmount {m.name!r}: it is in use by {', '.join(holders)}; "
                                    "close those files or leave that folder, then retry")
            if m.mode == "rw" and self._update_pending(m) > 0:
                self._commit_locked(m)
            with self._lock:
                m.state = "unmounting"
            self._bump()
            self._remove(m)

    def _remove(self, m: _Mount) -> None:
        """Take ``m`` out of the mount dir and the table (its staged changes must be committed or moot)."""
        with self._lock:
            if self._mounts.get(m.name) is not m:
                return
            del self._mounts[m.name]
            in_fs = m.state != RECOVERED
        if in_fs:
            self._fs.remove_view(m.name)
        if m.mode == "rw":
            try:
                m.view.close()
            finally:
                self._drop_staging(m.name)
        self._changed_set()

    def unmount_all(self) -> None:
        """Leave datum mode and unmount every mount (recovered changes stay pending)."""
        with self._mode_lock:
            self._unrestored = []
            self._leave_datum_mode()
            with self._lock:
                mounts = [m for m in self._mounts.values() if m.state != RECOVERED]
            errors = []
            for m in mounts:
                try:
                    self._unmount_one(m)
                except ApiError as e:
                    errors.append(e)
            self._changed_set()
            if errors:
                raise ApiError(errors[0].status, "; ".join(e.message for e in errors))

    # ------------------------------------------------------------------ datum mode

    def datums_mount(self, spec: dict) -> dict:
        """Enter datum mode with the datums of ``spec['input']`` and mount the first one."""
        try:
            inp = datum_mod.parse_spec(spec)
        except datum_mod.SpecError as e:
            raise ApiError(400, f"error converting datum inputs to mounts: {e}") from None
        client = self._need_client()
        try:
            all_datums = datum_mod.compute_datums(client, inp)
        except datum_mod.SpecError as e:
            raise ApiError(400, f"error listing spec's datums: {e}") from None
        except RPC_ERRORS as e:
            if errors.is_not_found(e):
                raise ApiError(400, f"error converting datum inputs to mounts: {errors.details(e)}") from None
            raise errors.to_api_error(e, "error listing spec's datums", reference=True) from None
        if not all_datums:
            raise ApiError(400, "spec produces zero datums; nothing to mount")
        with self._mode_lock:
            self.unmount_all()
            self._datum = _DatumMode(inp, all_datums)
            # A fresh `out` for a fresh run; it persists across next/prev and after leaving datum mode.
            shutil.rmtree(self.out_dir, ignore_errors=True)
            self.out_dir.mkdir(parents=True)
            from pachtray.mount.fs import LocalDirView

            self._fs.add_view(datum_mod.OUT_NAME, LocalDirView(self.out_dir))
            try:
                self._show_datum()
            except ApiError:
                self._leave_datum_mode()
                raise
            return self._datum_response()

    def datums_next(self) -> dict:
        return self._step(+1)

    def datums_prev(self) -> dict:
        return self._step(-1)

    def _step(self, delta: int) -> dict:
        with self._mode_lock:
            d = self._datum
            if d is None:
                raise ApiError(400, "no datums mounted")
            if delta < 0 and d.idx == 0:
                raise ApiError(400, "already at first datum")
            if delta > 0 and d.idx == len(d.datums) - 1:
                raise ApiError(400, "already at last datum")
            self._hide_datum()
            d.idx += delta
            self._show_datum()
            return self._datum_response()

    def datums_state(self) -> dict:
        d = self._datum
        if d is None:
            return {"num_datums": 0, "input": None, "idx": 0, "all_datums_received": False}
        return {"num_datums": len(d.datums), "input": datum_mod.input_json(d.input), "idx": d.idx,
                "all_datums_received": True}

    def _datum_response(self) -> dict:
        d = self._datum
        return {"id": "", "idx": d.idx, "num_datums": len(d.datums), "all_datums_received": True}

    def _show_datum(self) -> None:
        d = self._datum
        for spec in datum_mod.datum_mounts(d.datums[d.idx]):
            m = _Mount(name=spec["name"], project=spec["project"], repo=spec["repo"], branch=spec["branch"],
                       commit=spec["commit"], paths=spec["paths"], mode="ro", view=None, pinned=True, datum=True)
            with self._lock:
                if m.name in self._mounts:
                    raise ApiError(500, f"mount at '{m.name}' already in use (recovered changes): commit or "
                                        "discard them first")
            m.view = self._ro_view(m)
            self._publish(m)
        self._bump()

    def _hide_datum(self) -> None:
        with self._lock:
            mounts = [m for m in self._mounts.values() if m.datum]
        # Read-only and replaced at once: open files keep reading their commit, nothing to protect.
        for m in mounts:
            with m.op:
                self._remove(m)

    def _leave_datum_mode(self) -> None:
        if self._datum is None:
            return
        self._hide_datum()
        self._fs.remove_view(datum_mod.OUT_NAME)
        self._datum = None
        self._bump()

    # ------------------------------------------------------------------ workspace restore

    def restore(self) -> None:
        """Mount the saved workspace again; what cannot be mounted yet (no cluster) is retried."""
        if self.workspace is None:
            raise ValueError("this MountManager keeps no workspace (keep_workspace=False)")
        with self._lock:
            active = {n for n, m in self._mounts.items() if m.state != RECOVERED}
            self._unrestored = [e for e in self.workspace.load() if e["name"] not in active]
        if self._try_restore() and self._restore_thread is None:
            self._restore_thread = threading.Thread(target=self._restore_loop, name="workspace-restore", daemon=True)
            self._restore_thread.start()

    def _try_restore(self) -> bool:
        """Mount each unrestored entry; True if some must wait for the cluster."""
        for entry in list(self._unrestored):
            if self._client is None:
                return True
            request = MountRequest(name=entry["name"], project=entry.get("project") or "default", repo=entry["repo"],
                                   branch=entry.get("branch"), commit=entry.get("commit"),
                                   paths=entry.get("paths") or ["/"], mode=entry.get("mode") or "ro")
            try:
                self.mount([request])
            except ClusterUnreachable as e:
                log.info("workspace restore waits for the cluster: %s", e.message)
                return True
            except ApiError as e:
                if e.status == 404:
                    return True
                log.warning("not restoring mount %s: %s", entry["name"], e.message)
            with self._lock:
                self._unrestored = [x for x in self._unrestored if x["name"] != entry["name"]]
        self._changed_set()
        return False

    def _restore_loop(self) -> None:
        try:
            while not self._stopped.is_set():
                self._restore_wake.wait(3.0)
                self._restore_wake.clear()
                if self._stopped.is_set() or not self._unrestored or not self._try_restore():
                    return
        finally:
            self._restore_thread = None
