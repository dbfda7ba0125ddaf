"""What a mount is: its request, its state, what is wrong with it, and the two ways it is shown
(the reference's MountState for GET /mounts, Pachtray's view for /pachtray/v1/mounts).

Plain data: no RPC, no FUSE, no locks taken here.
"""

from __future__ import annotations

import enum
import threading
from dataclasses import dataclass, field
from pathlib import Path

from pachtray.errors import ApiError

MODES = ("ro", "rw")
# The reference's MountState, exactly: GET /mounts's `mounted` entries carry these keys and no others.
MOUNT_STATE_FIELDS = ("name", "project", "repo", "branch", "commit", "paths", "mode", "state", "status",
                      "mountpoint", "latest_commit", "how_many_commits_behind")


class MountState(enum.Enum):
    """The reference's states a mount passes through, and Pachtray's `pending`."""

    MOUNTING = "mounting"
    MOUNTED = "mounted"
    COMMITTING = "committing"
    UNMOUNTING = "unmounting"
    RECOVERED = "pending"  # staged rw changes kept outside the mount dir (an earlier run's, or a repo deleted upstream)


BUSY_STATES = frozenset({MountState.MOUNTING, MountState.COMMITTING, MountState.UNMOUNTING})


class ProblemKind(enum.Enum):
    COMMIT_FAILED = "commit failed"  # every change kept, the mount usable
    DELETED_UPSTREAM = "deleted upstream"  # the repo went; the changes are kept as RECOVERED
    OTHER_CLUSTER = "other cluster"  # recovered changes staged on another cluster than the one in use


class StagedElsewhere(ApiError):
    """Recovered rw changes belong to another cluster than the one in use: not mounted or committed
    here (the workspace keeps their entry, to restore it on their cluster)."""


@dataclass(frozen=True)
class Problem:
    """What is wrong with a mount until the next success; `message` is what the user reads."""

    kind: ProblemKind
    message: str


@dataclass(kw_only=True)
class MountRequest:
    """One mount of PUT /_mount, shape-checked by api.models; existence is checked when resolved."""

    name: str
    project: str = "default"
    repo: str
    branch: str | None = None
    commit: str | None = None
    paths: list[str] = field(default_factory=lambda: ["/"])
    mode: str = "ro"

    @classmethod
    def from_entry(cls, entry: dict) -> "MountRequest":
        """A workspace entry (or a lock's mount) as a request."""
        return cls(name=entry["name"], project=entry.get("project") or "default", repo=entry["repo"],
                   branch=entry.get("branch"), commit=entry.get("commit"), paths=entry.get("paths") or ["/"],
                   mode=entry.get("mode") or "ro")


@dataclass(eq=False)
class Mount:
    """One named mount (or set of recovered changes) in the table; fields change under the table's lock."""

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
    state: MountState = MountState.MOUNTING
    status: str = ""  # the reference's texts ("up to date on latest commit ...")
    problem: Problem | None = None
    latest_commit: str = ""
    behind: int = 0
    pending: int = 0  # last pending count seen (the change feed compares against it)
    cluster: dict | None = None  # rw: {"id", "address"} of the cluster its changes are staged for
    op: threading.Lock = field(default_factory=threading.Lock)  # one commit/discard/unmount at a time

    @property
    def recovered(self) -> bool:
        return self.state is MountState.RECOVERED

    @property
    def kept_because(self) -> str:
        """Why a RECOVERED mount's changes wait outside the mount dir (its status and refusals say it)."""
        if self.problem is not None and self.problem.kind is ProblemKind.DELETED_UPSTREAM:
            return "kept when the repo was deleted upstream"
        if self.problem is not None and self.problem.kind is ProblemKind.OTHER_CLUSTER:
            return f"staged on {(self.cluster or {}).get('address') or 'another cluster'}"
        return "recovered from an earlier run"

    def source(self) -> tuple:
        return (self.project, self.repo, self.branch, self.mode)

    def describe(self) -> str:
        return f"{self.project}/{self.repo}@{self.branch or self.commit} ({self.mode})"

    def workspace_entry(self) -> dict:
        return {"name": self.name, "project": self.project, "repo": self.repo, "branch": self.branch,
                "commit": self.commit if self.pinned else None, "paths": list(self.paths), "mode": self.mode}

    def record(self) -> dict:
        """What a staging dir belongs to (mount.records keeps it beside the staged changes)."""
        return {"name": self.name, "project": self.project, "repo": self.repo, "branch": self.branch,
                "base": self.commit, "paths": list(self.paths), "cluster": self.cluster}

    def reference_state(self) -> dict:
        """The reference's MountState (MOUNT_STATE_FIELDS); its `mountpoint` is always "" (declared, never set)."""
        return {"name": self.name, "project": self.project, "repo": self.repo, "branch": self.branch,
                "commit": self.commit, "paths": list(self.paths), "mode": self.mode, "state": self.state.value,
                "status": self.status, "mountpoint": "",
                "latest_commit": self.latest_commit, "how_many_commits_behind": self.behind}

    def pachtray_state(self, mount_dir: Path, pending: int) -> dict:
        """Pachtray's view: the reference's fields with `mountpoint` the mount's folder, `pending_changes`,
        `error` ("" when nothing is wrong) and `pinned` (shows one commit: never moved to a branch's head)."""
        out = self.reference_state()
        out["mountpoint"] = str(mount_dir / self.name)
        out["pinned"] = self.pinned
        if self.recovered:
            todo = ("connect to it to commit them, or discard them"
                    if self.problem is not None and self.problem.kind is ProblemKind.OTHER_CLUSTER
                    else "commit or discard them")
            out["status"] = f"{pending} uncommitted changes {self.kept_because}: {todo}"
        out["pending_changes"] = pending
        out["error"] = self.problem.message if self.problem is not None else ""
        return out


@dataclass
class Upstream:
    """What the cluster says about a mount's source (mount.upstream computes it; the manager applies it)."""

    gone: str = ""  # what was deleted ("repo p/r", "commit c"); "" while it exists
    status: str = ""
    latest_commit: str = ""
    behind: int = 0
