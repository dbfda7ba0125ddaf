"""The GUI's model of the daemon: cached status, actions, notifications.

The tray and the window only read the cached snapshot (no I/O on the GUI thread) and call the
action methods here; each action is one REST call on a worker thread. The change feed
(`/pachtray/v1/events`) and a slow periodic refresh keep the snapshot current, so changes made
through the REST API by JupyterLab show up within a second or two; the feed's cluster generation
(repos, branches, commits changed by anyone) refreshes the repos and tells the window
(`cluster_changed`), its activity id tells the Activity tab (`activity_changed`). The cluster is
followed only while someone looks (`follow_cluster`: the window is shown, a tray menu is open):
the daemon's watcher makes RPCs for it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from urllib.parse import quote

from PySide6.QtCore import QObject, QTimer, Signal

from pachtray.errors import ApiError, PachtrayError
from pachtray.gui.client import EXTRAS, DaemonClient, MountInfo
from pachtray.gui.models import PAGE
from pachtray.gui.tasks import Poller, Tasks
from pachtray.pfs import names

log = logging.getLogger(__name__)

EVENT_WAIT = 20.0
IDLE_EVENT_WAIT = 5.0  # not following the cluster: shorter polls, so following starts soon when asked
STATUS_INTERVAL_MS = 5000  # connection changes do not bump the generation: poll for them
RETRY_INTERVAL_MS = 1000  # sooner while the daemon or its cluster is not there yet
REPOS_INTERVAL_MS = 30000  # repos made elsewhere (pachctl, the SDK) do not bump the generation either


@dataclass
class Status:
    """What the daemon said last; `reachable` False means every other field is stale."""

    reachable: bool = False
    config: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    mounted: list[MountInfo] = field(default_factory=list)

    @property
    def connection(self) -> str:
        if not self.reachable:
            return "daemon not running"
        return self.info.get("connection") or ("connected" if self.config.get("cluster_status") not in (None, "INVALID")
                                               else "disconnected")

    @property
    def cluster(self) -> str:
        if self.info.get("local"):
            return "Local (embedded)"
        return self.config.get("pachd_address") or "no cluster"

    @property
    def user(self) -> str:
        """The signed-in user as people write it: `alice` for `user:alice`, `robot:ci` as is."""
        name = self.info.get("user", "")
        return name.removeprefix("user:")

    @property
    def auth(self) -> str:
        return self.info.get("auth", "off")

    @property
    def local(self) -> bool:
        return bool(self.info.get("local"))

    @property
    def connection_error(self) -> str:
        """Why the daemon has no cluster (the embedded server could not start, ...); "" when none."""
        return self.info.get("connection_error", "")

    @property
    def token_problem(self) -> str:
        """Why the daemon could not read the stored login token (a locked keychain); "" when none."""
        return self.info.get("token_problem", "")

    def pending_total(self) -> int:
        return sum(m.pending for m in self.mounted)

    def mount(self, name: str) -> MountInfo | None:
        return next((m for m in self.mounted if m.name == name), None)


def mount_name(project: str, repo: str, branch: str | None = None, commit: str | None = None) -> str:
    """The jupyterlab-pachyderm naming: `<project>_<repo>`, `_<branch>` unless master; a name longer
    than a file name may be (255 bytes; repo and branch names may be that long each) is cut and ends
    with a digest of the whole, so it stays distinct."""
    name = f"{project}_{repo}"
    if commit:
        name += f"_{commit[:8]}"
    elif branch and branch != "master":
        name += f"_{branch}"
    return names.digest_fit(name)


class Controller(QObject):
    """Owns the daemon client, the task pool, the change feed and the status snapshot."""

    status_changed = Signal()
    repos_changed = Signal()
    cluster_changed = Signal()  # repos, branches or commits changed (by anyone): reload what is shown
    activity_changed = Signal()
    notify = Signal(str, str, bool)  # title, message, is_error
    busy_changed = Signal(bool)

    def __init__(self, client: DaemonClient, parent: QObject | None = None):
        super().__init__(parent)
        self.client = client
        self.tasks = Tasks(self)
        self.tasks.busy_changed.connect(self.busy_changed)
        self.status = Status()
        self.repos: dict = {"projects": [], "repos": []}
        self.repos_error = ""
        self._repos_asked = self._repos_shown = 0  # refresh_repos calls made, and the newest one shown
        self.repos_loaded = False  # a listing of the cluster arrived (until then the tray says "Loading…")
        self._listing_of: tuple[str, str] | None = None  # (cluster, user) of the last status answered
        self._refreshing = False
        self._refresh_again = False
        self._poller: Poller | None = None
        self._feed: dict | None = None  # the feed's last answer
        self._following: set[str] = set()  # why the cluster is followed now ("window", "menu")
        self._timer = QTimer(self)
        self._timer.setInterval(STATUS_INTERVAL_MS)
        self._timer.timeout.connect(self.refresh)
        self._repos_timer = QTimer(self)
        self._repos_timer.setInterval(REPOS_INTERVAL_MS)
        self._repos_timer.timeout.connect(self.refresh_repos)

    # ------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Begin (or resume) following the daemon: refresh now, then the feed and the timers."""
        self.stop()
        self._feed = None
        self.refresh()
        self.refresh_repos()
        self._poller = Poller(self._wait_change, None, self)
        self._poller.answered.connect(self._on_change)
        self._poller.start()
        self._timer.start()
        self._repos_timer.start()

    def set_client(self, client: DaemonClient) -> None:
        """Talk to another daemon (after a restart on a new port); takes effect at start()."""
        self.client = client

    def stop(self) -> None:
        """Stop following the daemon (quit, or while it restarts: no 'unreachable' alarms)."""
        self._timer.stop()
        self._repos_timer.stop()
        if self._poller is not None:
            self._poller.stop()
            self._poller = None

    def _wait_change(self, last: dict | None) -> dict:
        """One long poll of the feed: the mount generation, the cluster's and the newest activity."""
        seen = last or {}
        wait = EVENT_WAIT if self._following else IDLE_EVENT_WAIT
        params = {"since": seen.get("generation", -1), "activity": seen.get("activity", -1), "timeout": wait}
        if self._following:
            params["cluster"] = seen.get("cluster", -1)
        return self.client.request("GET", EXTRAS + "/events", params=params, timeout=wait + 10)

    def follow_cluster(self, why: str, on: bool) -> None:
        """Follow the cluster while ``why`` holds (the window shown, a tray menu open). Starting
        reads the repos and tells the views to reload (they may have missed changes meanwhile)
        and wakes the daemon's watcher at once."""
        was = bool(self._following)
        if on:
            self._following.add(why)
        else:
            self._following.discard(why)
        if self._following and not was and self.status.reachable:
            client = self.client
            self.tasks.run(lambda: client.get(EXTRAS + "/events", since=-1, cluster=-1), None, lambda _e: None)
            self.refresh_repos()
            self.cluster_changed.emit()

    def _on_change(self, answer: dict) -> None:
        before, self._feed = self._feed, answer
        if before is None or before.get("generation") != answer.get("generation"):
            self.refresh()
        if before is not None and before.get("cluster") != answer.get("cluster"):
            self.refresh_repos()
            self.cluster_changed.emit()
        if before is None or before.get("activity") != answer.get("activity"):
            self.activity_changed.emit()

    # ------------------------------------------------------------- status

    @property
    def busy(self) -> bool:
        return self.tasks.busy or any(m.busy for m in self.status.mounted)

    def state(self) -> str:
        """The tray icon state: busy (work the user waits for), error, disconnected, mounted or connected."""
        status = self.status
        if self.busy:
            return "busy"
        if not status.reachable or any(m.error for m in status.mounted):
            return "error"
        if status.connection != "connected":
            return "disconnected"
        return "mounted" if status.mounted else "connected"

    def refresh(self) -> None:
        """Fetch /config, /pachtray/v1/info and /mounts together (one refresh at a time)."""
        if self._refreshing:
            self._refresh_again = True
            return
        self._refreshing = True
        self.tasks.run(self._fetch_status, self._apply_status, self._status_failed)

    def _fetch_status(self) -> Status:
        info = self.client.info()
        try:
            config = self.client.config()
        except ApiError as e:
            if e.status != 404:
                raise
            config = {"cluster_status": "INVALID"}
        return Status(reachable=True, config=config, info=info, mounted=self.client.mounts())

    def _apply_status(self, status: Status) -> None:
        self._refresh_done()
        was_connected = self.status.connection == "connected"
        if status.token_problem and status.token_problem != self.status.token_problem:
            self.notify.emit("Keychain locked", status.token_problem, True)
        if status.connection_error and status.connection_error != self.status.connection_error:
            self.notify.emit("Not connected to a cluster", status.connection_error, True)
        if status.reachable:
            whose = (status.cluster, status.user)
            if self._listing_of not in (None, whose):  # another cluster's or user's listing: not kept
                self.repos, self.repos_loaded = {"projects": [], "repos": []}, False
                self.repos_changed.emit()
            self._listing_of = whose
        self.status = status
        if status.connection == "connected" and not was_connected:
            self.refresh_repos()
        self._timer.setInterval(STATUS_INTERVAL_MS if status.connection == "connected" else RETRY_INTERVAL_MS)
        self.status_changed.emit()

    def _status_failed(self, error: Exception) -> None:
        self._refresh_done()
        if not isinstance(error, PachtrayError):
            log.warning("status refresh failed: %s", error)
        if self.status.reachable:
            self.notify.emit("Pachtray daemon unreachable",
                             f"{error} Choose Start the daemon in the tray menu or the window's toolbar to start it "
                             "again.", True)
        self.status = Status(reachable=False)
        self._timer.setInterval(RETRY_INTERVAL_MS)
        self.status_changed.emit()

    def _refresh_done(self) -> None:
        self._refreshing = False
        if self._refresh_again:
            self._refresh_again = False
            self.refresh()

    def refresh_repos(self) -> None:
        """List the repos on a worker; of answers that cross (four workers), an older one never
        replaces a newer one."""
        self._repos_asked += 1
        asked = self._repos_asked

        def answered(repos: dict) -> None:
            if asked >= self._repos_shown:
                self._repos_shown = asked
                self._apply_repos(repos)

        def failed(error: Exception) -> None:
            if asked >= self._repos_shown:
                self._repos_shown = asked
                self._repos_failed(error)
        self.tasks.run(lambda: self.client.get(EXTRAS + "/repos"), answered, failed)

    def _apply_repos(self, repos: dict) -> None:
        loaded, self.repos_loaded = self.repos_loaded, True
        if repos == self.repos and not self.repos_error and loaded:
            return  # unchanged: keep the views' scroll positions and selections
        self.repos = repos
        self.repos_error = ""
        self.repos_changed.emit()

    def _repos_failed(self, error: Exception) -> None:
        """The last listing stays (the window keeps what the user selected while the cluster does not
        answer); `repos_error` says it is old. Another cluster or user drops it (`_apply_status`)."""
        self.repos_error = str(error)
        self.repos_changed.emit()

    # ------------------------------------------------------------- actions

    def act(self, call, success: str | None, title: str, *, then=None, refresh_repos: bool = False,
            failed_to=None) -> None:
        """Run one REST call as a user action: busy state, notification, error dialog (or, with
        ``failed_to``, the caller's own way of showing the error: it is shown once)."""
        def done(result):
            if success:
                self.notify.emit(title, success, False)
            if then is not None:
                then(result)
            self.refresh()
            if refresh_repos:
                self.refresh_repos()

        def failed(error: Exception):
            if failed_to is not None:
                failed_to(error)
            else:
                heading = getattr(error, "title", "") or f"{title} failed"
                self.notify.emit(heading, str(error), True)
            self.refresh()

        self.tasks.run(call, done, failed, busy=True)

    def mount(self, project: str, repo: str, *, branch: str | None = None, commit: str | None = None,
              mode: str = "ro", name: str | None = None) -> str:
        name = name or mount_name(project, repo, branch, commit)
        if mode == "rw" and any(m.name == name and m.mode != "rw" for m in self.status.mounted):
            name += "_rw"
        request = {"name": name, "project": project, "repo": repo, "mode": mode}
        if commit:
            request["commit"] = commit
        else:
            request["branch"] = branch or "master"
        source = f"{project}/{repo}@{commit or branch or 'master'}"
        self.act(lambda: self.client.put("/_mount", {"mounts": [request]}),
                 f"{source} mounted {'read-write' if mode == 'rw' else 'read-only'} as {name}", "Mounted")
        return name

    def unmount(self, name: str) -> None:
        self.act(lambda: self.client.put("/_unmount", {"mounts": [name]}), f"{name} unmounted", "Unmounted")

    def commit(self, name: str, description: str = "", *, review: str | None = None, then=None,
               failed_to=None) -> None:
        """Pachtray's commit route: it also takes changes recovered from an earlier run (state
        `pending`); ``description`` becomes the commit's; with ``review`` (the token of the changes
        shown) nothing is committed if the changes are no longer those."""
        body = {"mount": name, **({"description": description} if description else {}),
                **({"review": review} if review else {})}
        self.act(lambda: self.client.put(EXTRAS + "/_commit", body), f"Changes in {name} committed",
                 "Committed", then=then, failed_to=failed_to)

    def changes(self, name: str, answered, failed) -> None:
        """What a commit of rw mount ``name`` would change (GET .../changes), on a worker."""
        client = self.client
        self.tasks.run(lambda: client.get(f"{EXTRAS}/mounts/{quote(name, safe='')}/changes"), answered, failed,
                       busy=True)

    def discard_paths(self, name: str, paths: list[str], *, then=None, failed_to=None) -> None:
        """Revert single changed paths of rw mount ``name`` to the base."""
        self.act(lambda: self.client.put(f"{EXTRAS}/mounts/{quote(name, safe='')}/_discard", {"paths": paths}),
                 None, "Discard", then=then, failed_to=failed_to)

    def discard(self, name: str) -> None:
        self.act(lambda: self.client.put(EXTRAS + "/_discard", {"mount": name}),
                 f"Uncommitted changes in {name} discarded", "Discarded")

    def refresh_mount(self, name: str) -> None:
        self.act(lambda: self.client.put(EXTRAS + "/_refresh", {"mount": name}),
                 f"{name} now shows the latest commit", "Refreshed")

    def unmount_all(self, then=None) -> None:
        self.act(lambda: self.client.put("/_unmount_all", {}), "Everything unmounted", "Unmounted", then=then)

    def create_repo(self, project: str, repo: str, description: str = "", then=None, failed_to=None) -> None:
        body = {"project": project, "repo": repo, "description": description}
        self.act(lambda: self.client.put(EXTRAS + "/_create_repo", body), f"Repo {project}/{repo} created",
                 "Repo created", then=then, refresh_repos=True, failed_to=failed_to)

    def may_delete(self, project: str, repo: str, branch: str | None, then) -> None:
        """Ask the daemon whether it would delete the repo (or branch) — it refuses a mounted one —
        and call `then()` if so; else its reason is shown, before the user is asked to confirm."""
        body = {"project": project, "repo": repo, "check": True}
        route = EXTRAS + ("/_delete_branch" if branch else "/_delete_repo")
        if branch:
            body["branch"] = branch
        what = "branch" if branch else "repo"

        def refused(error: Exception) -> None:  # nothing failed: it was not tried
            heading = error.title if getattr(error, "status", 0) in (401, 403) else f"Cannot delete {what}"
            self.notify.emit(heading, str(error), True)
        self.act(lambda: self.client.put(route, body), None, f"Delete {what}", then=lambda _: then(), failed_to=refused)

    def delete_repo(self, project: str, repo: str) -> None:
        body = {"project": project, "repo": repo}
        self.act(lambda: self.client.put(EXTRAS + "/_delete_repo", body), f"Repo {project}/{repo} deleted",
                 "Repo deleted", refresh_repos=True)

    def create_branch(self, project: str, repo: str, branch: str, from_branch: str = "", then=None,
                      failed_to=None) -> None:
        body = {"project": project, "repo": repo, "branch": branch}
        if from_branch:
            body["from"] = from_branch
        self.act(lambda: self.client.put(EXTRAS + "/_create_branch", body),
                 f"Branch {branch} created in {project}/{repo}", "Branch created", then=then, refresh_repos=True,
                 failed_to=failed_to)

    def delete_branch(self, project: str, repo: str, branch: str, then=None) -> None:
        body = {"project": project, "repo": repo, "branch": branch}
        self.act(lambda: self.client.put(EXTRAS + "/_delete_branch", body),
                 f"Branch {branch} deleted from {project}/{repo}", "Branch deleted", then=then, refresh_repos=True)

    def logout(self) -> None:
        self.act(lambda: self.client.put("/auth/_logout", {}), "Logged out", "Logged out", refresh_repos=True)

    # ------------------------------------------------------------- browsing (loaders run on workers)

    def branches_loader(self, project: str, repo: str):
        """A page loader (cursor -> (rows, next cursor)) of a repo's branches, for gui.models."""
        client = self.client

        def load(_cursor):
            return client.get(EXTRAS + "/branches", project=project, repo=repo)["branches"], None
        return load

    def commits_loader(self, project: str, repo: str, branch: str):
        client = self.client

        def load(offset):
            page = client.get(EXTRAS + "/commits", project=project, repo=repo, branch=branch, offset=offset or 0,
                              limit=PAGE)
            return page["commits"], page["next_offset"]
        return load

    def files_loader(self, project: str, repo: str, folder: str, *, commit: str | None = None,
                     branch: str | None = None):
        """Entries of ``folder`` at ``commit``, else at the head of ``branch``."""
        client = self.client
        source = {"commit": commit} if commit else {"branch": branch}

        def load(after):
            page = client.get(EXTRAS + "/files", project=project, repo=repo, path=folder, after=after, limit=PAGE,
                              **source)
            return page["files"], page["next"]
        return load

    # ------------------------------------------------------------- uploads (the daemon's jobs)

    def start_upload(self, project: str, repo: str, branch: str, paths: list[str], started, failed) -> None:
        client = self.client
        body = {"project": project, "repo": repo, "branch": branch, "paths": paths}
        self.tasks.run(lambda: client.put(EXTRAS + "/_upload", body), started, failed, busy=True)

    def upload_status(self, job: str, answered, failed) -> None:
        client = self.client
        self.tasks.run(lambda: client.get(EXTRAS + "/upload", job=job), answered, failed)

    def cancel_upload(self, job: str) -> None:
        client = self.client
        self.tasks.run(lambda: client.put(EXTRAS + "/_cancel_upload", {"job": job}), lambda _job: None,
                       lambda e: self.notify.emit(getattr(e, "title", "Cancel failed"), str(e), True))
