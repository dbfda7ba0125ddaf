"""The cluster watcher: notices repos, branches and commits that anyone made (the app, the SDK,
pachctl, a pipeline) so the change feed (/pachtray/v1/events) tells the GUI within seconds.

PFS has no cluster-wide change stream (SubscribeCommit is one open stream per repo), so the
watcher takes a cheap fingerprint every INTERVAL s, and only while someone listens to the feed:
one ListRepo (repos, their descriptions and branch names) and one ListBranch over all repos
(every head); pachd refuses the all-repos ListBranch when auth is on, and then the heads come
from one ListBranch per repo (the first PER_REPO_LIMIT repos). A head that moved is inspected until
it is finished (at most MAX_INSPECTS a round: no burst on a big cluster), so a commit moves the
feed when it starts and again when its files are there; the heads of the first round are taken as
they are (what a listener read before then was read the same way). Nobody listening: no RPCs at
all. A dead cluster: one failed call per INTERVAL, never a spin, and the feed itself never waits on
the cluster. A fingerprint's cost grows with the number of branches (the embedded server: about
0.9 ms per branch, client and server together): the rounds are spaced so that at most DUTY of the
time goes to them (100 branches: every 1.7 s).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

from pachyderm_sdk.api import pfs

from pachtray.pfs import commits, errors
from pachtray.pfs.client import list_branch_heads
from pachtray.pfs.errors import RPC_ERRORS

log = logging.getLogger(__name__)

INTERVAL = 1.5  # s between fingerprints while someone listens
DUTY = 0.05  # at most this share of the time is spent fingerprinting (a big cluster is looked at less often)
LINGER = 10.0  # s to keep watching after the last listener left (a client between two long polls)
PER_REPO_LIMIT = 200
MAX_INSPECTS = 20  # InspectCommits of moved heads per round; the others wait for the next round


@dataclass(frozen=True)
class Fingerprint:
    repos: frozenset  # (project, repo, description, branch names)
    heads: frozenset  # (project, repo, branch, head id, finished)


def _key(repo: pfs.Repo) -> tuple[str, str]:
    return repo.project.name or "default", repo.name


class Fingerprinter:
    """Takes fingerprints of one cluster, each compared with the last for which heads moved.
    ``heads(client, repo=None)`` lists (project, repo, repo type, branch, head id) of a repo's
    branches, or of every repo's (pfs.client.list_branch_heads)."""

    def __init__(self, per_repo_limit: int = PER_REPO_LIMIT, heads=list_branch_heads):
        self.per_repo_limit = per_repo_limit
        self._heads = heads
        self._last: dict[tuple[str, str, str], tuple[str, bool]] | None = None  # branch -> (head, finished)
        self.all_repos_listing = True  # False once pachd refused ListBranch over all repos (auth on)

    def take(self, client) -> Fingerprint:
        infos = list(client.pfs.list_repo(type="user"))
        repos = frozenset((*_key(ri.repo), ri.description, tuple(sorted(b.name for b in ri.branches)))
                          for ri in infos)
        last, now, inspects = self._last, {}, 0
        for project, repo, kind, branch, head in self._branches(client, [ri.repo for ri in infos]):
            if (kind or "user") != "user" or not head:
                continue
            key = (project or "default", repo, branch)
            seen = last.get(key) if last is not None else (head, True)
            if seen is not None and seen[0] == head and seen[1]:
                finished = True
            elif inspects < MAX_INSPECTS:
                inspects += 1
                finished = self._finished(client, key, head)
            else:
                finished = False
            now[key] = (head, finished)
        self._last = now
        return Fingerprint(repos, frozenset((*key, head, done) for key, (head, done) in now.items()))

    def _branches(self, client, repos: list[pfs.Repo]):
        if self.all_repos_listing:
            try:
                return list(self._heads(client))
            except RPC_ERRORS as e:
                if errors.is_unreachable(e):
                    raise
                log.info("listing all branches at once was refused (%s); listing them per repo", errors.details(e))
                self.all_repos_listing = False
        out = []
        for repo in repos[:self.per_repo_limit]:
            try:
                out.extend(self._heads(client, repo))
            except RPC_ERRORS as e:
                if errors.is_unreachable(e):
                    raise
                # no access to this repo, or it went away meanwhile: its heads are not watched
        return out

    @staticmethod
    def _finished(client, key: tuple[str, str, str], commit_id: str) -> bool:
        repo = pfs.Repo(name=key[1], type="user", project=pfs.Project(name=key[0]))
        try:
            info = client.pfs.inspect_commit(commit=pfs.Commit(id=commit_id, repo=repo))
        except RPC_ERRORS as e:
            if errors.is_unreachable(e):
                raise
            return False
        return commits.timestamp_set(info.finished)


class ClusterWatch:
    """Runs the fingerprints (``run`` is the thread's loop) while someone listens; ``generation``
    moves on every change and ``on_change`` runs (on the watcher's thread) after each move.

    ``client`` answers the current client, or None while there is no reachable cluster."""

    def __init__(self, client: Callable[[], object], on_change: Callable[[], None], *,
                 interval: float = INTERVAL, linger: float = LINGER, heads=list_branch_heads):
        self._heads = heads
        self._client = client
        self.on_change = on_change
        self.interval, self.linger = interval, linger
        self._cond = threading.Condition()
        self._listeners = 0
        self._last_left = float("-inf")
        self._costs: collections.deque[float] = collections.deque(maxlen=3)  # seconds the last looks took
        self._generation = 0
        self._last: Fingerprint | None = None
        self._fingerprinter = Fingerprinter(heads=heads)
        self._fingerprinted: object = None  # the client the fingerprinter knows
        self.polls = 0  # fingerprints taken (tests check that an idle watcher takes none)

    @property
    def generation(self) -> int:
        return self._generation

    @contextlib.contextmanager
    def listening(self):
        """While inside, the watcher watches (and LINGER s after the last listener leaves)."""
        with self._cond:
            self._listeners += 1
            self._cond.notify_all()
        try:
            yield
        finally:
            with self._cond:
                self._listeners -= 1
                self._last_left = time.monotonic()

    def _wanted(self) -> bool:
        return self._listeners > 0 or time.monotonic() - self._last_left < self.linger

    def run(self, stopping: threading.Event) -> None:
        while not stopping.is_set():
            with self._cond:
                if not self._wanted():
                    self._cond.wait(2.0)  # idle: no RPCs, one wake-up now and then to see `stopping`
                    continue
            started = time.monotonic()
            self.check()
            self._costs.append(time.monotonic() - started)
            # the cheapest of the last looks: one slowed by a busy machine must not put the next 20x off
            stopping.wait(max(self.interval, min(self._costs) / DUTY))

    def check(self) -> bool:
        """Take one fingerprint; True (and the generation moved) when it differs from the last."""
        client = self._client()
        if client is None:
            return False
        if client is not self._fingerprinted:
            self._fingerprinter, self._fingerprinted = Fingerprinter(heads=self._heads), client
        try:
            now = self._fingerprinter.take(client)
        except Exception as e:  # noqa: BLE001 - pachd away or confused: try again next round
            log.debug("cluster fingerprint failed: %s", errors.details(e))
            return False
        finally:
            self.polls += 1
        if now == self._last:
            return False
        self._last = now  # the first one counts as a change too: a listener may have read the cluster earlier
        with self._cond:
            self._generation += 1
        try:
            self.on_change()
        except Exception:  # noqa: BLE001 - a failed follow-up must not stop the watcher
            log.exception("after a cluster change")
        return True
