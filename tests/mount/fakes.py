"""Fake parts for the fast tests of the MountManager: a cluster model answering the few RPCs the
manager makes (with the SDK's own message classes), a file system that only records its views,
and views that count pending changes in a file (so recovery after a "restart" works)."""

from __future__ import annotations

import itertools
import uuid
from pathlib import Path
from types import SimpleNamespace

import grpc
from conftest import RpcFailure as Rpc
from pachyderm_sdk.api import admin, auth, pfs

from pachtray.pfs.auth import READ_PERMISSIONS


def new_id() -> str:
    return uuid.uuid4().hex


class FakeCluster:
    """repos: (project, repo) -> {branch: [commit ids, oldest first]} (branch "": commits of deleted
    branches); `calls` counts RPCs."""

    def __init__(self, *, auth_on: bool = False):
        self.repos: dict[tuple[str, str], dict[str, list[str]]] = {}
        self.access: dict[tuple[str, str], str] = {}  # "none" | "read" | "write" when auth is on
        self.auth_on = auth_on
        self.down = False  # every RPC: UNAVAILABLE
        self.calls = 0
        self.pfs = _Pfs(self)
        self.auth = _Auth(self)
        self.admin = _Admin(self)
        self.cluster_id = new_id()
        self.pachd_address = SimpleNamespace(url=f"grpc://{self.cluster_id[:8]}.example:30650")

    def add_repo(self, repo: str, project: str = "default", access: str = "write") -> None:
        self.repos[(project, repo)] = {}
        self.access[(project, repo)] = access

    def commit(self, repo: str, branch: str = "master", project: str = "default") -> str:
        cid = new_id()
        self.repos[(project, repo)].setdefault(branch, []).append(cid)
        return cid

    def delete_branch(self, repo: str, branch: str, project: str = "default") -> None:
        """As pachd: the branch goes, its commits stay."""
        self.repos[(project, repo)].setdefault("", []).extend(self.repos[(project, repo)].pop(branch))

    def _rpc(self) -> None:
        self.calls += 1
        if self.down:
            raise Rpc(grpc.StatusCode.UNAVAILABLE, "connection refused")


class _Admin:
    def __init__(self, cluster: FakeCluster):
        self.c = cluster

    def inspect_cluster(self):
        self.c._rpc()
        return admin.ClusterInfo(id=self.c.cluster_id)


class _Auth:
    def __init__(self, cluster: FakeCluster):
        self.c = cluster

    def who_am_i(self):
        self.c._rpc()
        if not self.c.auth_on:
            raise Rpc(grpc.StatusCode.UNIMPLEMENTED, "the auth service is not activated")
        return auth.WhoAmIResponse(username="user:alice")


class _Pfs:
    def __init__(self, cluster: FakeCluster):
        self.c = cluster

    def _branches(self, repo: pfs.Repo) -> dict[str, list[str]]:
        self.c._rpc()
        key = (repo.project.name or "default", repo.name)
        if key not in self.c.repos:
            raise Rpc(grpc.StatusCode.NOT_FOUND, f"repo {key[0]}/{key[1]} not found")
        return self.c.repos[key]

    def inspect_project(self, project: pfs.Project):
        self.c._rpc()
        if not any(p == project.name for p, _ in self.c.repos) and project.name != "default":
            raise Rpc(grpc.StatusCode.NOT_FOUND, f'project "{project.name}" not found')
        return pfs.ProjectInfo(project=project)

    def inspect_repo(self, repo: pfs.Repo):
        self._branches(repo)
        info = pfs.RepoInfo(repo=repo)
        if self.c.auth_on:
            access = self.c.access[(repo.project.name, repo.name)]
            perms = {"none": set(), "read": set(READ_PERMISSIONS),
                     "write": set(READ_PERMISSIONS) | {auth.Permission.REPO_WRITE}}[access]
            info.auth_info = pfs.AuthInfo(permissions=sorted(perms))
        return info

    def inspect_branch(self, branch: pfs.Branch):
        commits = self._branches(branch.repo).get(branch.name)
        if commits is None:
            raise Rpc(grpc.StatusCode.NOT_FOUND, f'branch "{branch.name}" not found in repo {branch.repo.name}')
        head = pfs.Commit(repo=branch.repo, id=commits[-1], branch=branch) if commits else None
        return pfs.BranchInfo(branch=branch, head=head)

    def inspect_commit(self, commit: pfs.Commit):
        branches = self._branches(commit.repo)
        if commit.id:
            for name, ids in branches.items():
                if commit.id in ids:
                    on = pfs.Branch(repo=commit.repo, name=name) if name else None
                    return pfs.CommitInfo(commit=pfs.Commit(repo=commit.repo, id=commit.id, branch=on))
            raise Rpc(grpc.StatusCode.NOT_FOUND, f"commit {commit.repo.name}@{commit.id} not found")
        ids = branches.get(commit.branch.name)
        if not ids:
            raise Rpc(grpc.StatusCode.NOT_FOUND, f'branch "{commit.branch.name}" not found')
        return pfs.CommitInfo(commit=pfs.Commit(repo=commit.repo, id=ids[-1], branch=commit.branch))

    def list_commit(self, repo: pfs.Repo, to: pfs.Commit):
        for ids in self._branches(repo).values():
            if to.id in ids:
                return [pfs.CommitInfo(commit=pfs.Commit(repo=repo, id=i)) for i in reversed(ids[:ids.index(to.id) + 1])]
        return []


class FakeFs:
    """The FUSE mount: views by name, and processes holding them (for busy unmounts)."""

    def __init__(self):
        self.views: dict[str, object] = {}
        self.holders: dict[str, list[str]] = {}  # cwd or a file open for reading under a view
        self.writers: dict[str, list[str]] = {}  # a file open for writing
        self.running = False

    def start(self):
        self.running = True

    def stop(self):
        self.running = False

    def add_view(self, name, view):
        self.views[name] = view

    def remove_view(self, name):
        self.views.pop(name, None)

    def busy_holders(self, name, writing=False):
        return self.writers.get(name, []) + ([] if writing else self.holders.get(name, []))


class FakeRoView:
    def __init__(self, m):
        self.commit = m.commit
        self.broken = False

    def prepare(self):
        if self.broken:
            raise OSError(5, "Input/output error")


class FakeRwView:
    """Staged changes are a count kept in `<staging dir>/pending`; a commit makes a commit on the
    fake cluster (or fails when `fail` is set) and keeps everything on failure."""

    _ids = itertools.count()

    def __init__(self, cluster: FakeCluster, staging_dir: Path, m, client_fn=lambda: True):
        self.cluster, self.dir, self.m, self.client_fn = cluster, Path(staging_dir), m, client_fn
        self.dir.mkdir(parents=True, exist_ok=True)
        self.base_commit_id = m.commit or None
        self.fail = ""
        self.closed = False

    @property
    def _file(self) -> Path:
        return self.dir / "pending"

    def write(self, n: int = 1) -> None:
        self._file.write_text(str(self.pending_count() + n))

    def pending_count(self) -> int:
        return int(self._file.read_text()) if self._file.exists() else 0

    def prepare(self):
        pass

    def commit(self, description: str = "", review: str | None = None):
        self.description = description
        if self.client_fn() is None:  # as the real view's require_client: the health checks say it is away
            raise OSError(5, "commit: cluster unreachable")
        if self.fail:
            raise Rpc(grpc.StatusCode.INTERNAL, self.fail)
        if not self.pending_count():
            return None
        cid = self.cluster.commit(self.m.repo, self.m.branch, self.m.project)
        self.base_commit_id = cid
        self._file.unlink()
        return cid

    def discard(self):
        self._file.unlink(missing_ok=True)

    def close(self):
        self.closed = True


class FakeParts:
    def __init__(self, cluster: FakeCluster):
        self.cluster = cluster
        self.fs = FakeFs()

    def file_system(self, mount_dir, allow_other, reads):
        return self.fs

    def ro_view(self, client_fn, m):
        return FakeRoView(m)

    def rw_view(self, client_fn, staging_dir, m):
        return FakeRwView(self.cluster, staging_dir, m, client_fn)

    def local_view(self, path):
        return object()
