"""pfs_v2.API of the local server: projects, repos, branches, commits and files, as pachd 2.8 does them."""

from __future__ import annotations

import bisect
import collections
import re
import tarfile
import threading
from collections.abc import Iterator
from datetime import datetime, timezone

import betterproto
import grpc
from betterproto.lib.google.protobuf import BytesValue, Empty
from pachyderm_sdk.api import auth as auth_pb
from pachyderm_sdk.api import pfs

from pachtray import malloc
from pachtray.local import filesets
from pachtray.local.rpc import RpcFailure, invalid, not_found, precondition, unknown
from pachtray.local.store import (CHUNK, FILESET_TTL_MAX, ORIGIN_USER, CommitRow, Entry, RepoRow, Store,
                                  ancestors)
from pachtray.pfs import codec, names
from pachtray.pfs.glob import GLOB_CHARS, GlobError, clean_path, literal_prefix, matcher
from pachtray.pfs.paths import path_problem

ANCESTRY_RE = re.compile(r"^(.*?)((?:[\^~][0-9]*|\.[0-9]+)*)$")
PROJECT_NAME_LIMIT = 63 - 8 - len("-v99")
REPO_NAME_LIMIT = 255
MAX_LIST = 100000
LISTINGS_KEPT = 1_000_000  # entries of finished commits' folders kept listed and encoded
# GetFile answers: 4 MiB messages (pachd sends up to ~20 MiB; the SDK and pachctl accept 20 MiB), so a
# reader whose chunks are 4 MiB gets each in one message, with no joining (and 4x fewer messages).
GET_FILE_CHUNK = 4 << 20
REPO_INFOS_KEPT = 100_000  # encoded ListRepo answers kept (see repo_info_encoded)
INLINE_BATCH = 32 << 20  # small contents held by one ModifyFile before they are stored early
P = auth_pb.Permission


def ts(t: float | None) -> datetime | None:
    return None if t is None else datetime.fromtimestamp(t, tz=timezone.utc)


def validate_name(name: str) -> None:
    if not names.is_name(name):
        raise invalid(f"name ({name}) invalid: only alphanumeric characters, underscores, and dashes are allowed")


def validate_project_name(name: str) -> None:
    if name == "default":
        return
    if len(name) > PROJECT_NAME_LIMIT:
        raise invalid(f'project name "{name}" is {len(name) - PROJECT_NAME_LIMIT} characters longer than the '
                      f"{PROJECT_NAME_LIMIT} max")
    validate_name(name)
    if not name[0].isalnum():
        raise invalid("project names must start with an alphanumeric character")


def validate_repo_name(name: str) -> None:
    if len(name) > REPO_NAME_LIMIT:
        raise invalid(f'repo name "{name}" is {len(name) - REPO_NAME_LIMIT} characters longer than the '
                      f"{REPO_NAME_LIMIT} max")
    validate_name(name)


def validate_file_path(path: str) -> str:
    """pachd's ValidateFilename, returning the clean path."""
    if (problem := path_problem(path)) is not None:
        raise invalid(problem)
    p = clean_path(path)
    if p == "/":
        raise invalid(f"path ({path}) invalid: a file needs a name")
    return p


class SharedCommit(pfs.Commit):
    """A Commit embedded in every message of a response, serialized once.

    betterproto re-serializes nested messages on every bytes() call, which dominated the cost of
    listing large folders; the content is still produced by the SDK's own serializer.
    """

    @classmethod
    def of(cls, commit: pfs.Commit) -> "SharedCommit":
        return cls(repo=commit.repo, id=commit.id, branch=commit.branch)

    def __bytes__(self) -> bytes:
        cached = self.__dict__.get("_shared_bytes")
        if cached is None:
            cached = self.__dict__["_shared_bytes"] = super().__bytes__()
        return cached


# betterproto resolves field type hints in the message class's module.
SharedCommit.__module__ = pfs.Commit.__module__


def present(msg) -> bool:
    return msg is not None and betterproto.serialized_on_wire(msg)


class FolderPages:
    """The entries ListFile answers for one path, paged by marker without rescanning the folder.

    Each entry's FileInfo is encoded (by the SDK's class) the first time a page holds it and kept:
    a finished commit never changes, so later listings and pages of a big folder only copy bytes.
    """

    def __init__(self, entries: list[Entry], encode):
        self.entries = entries
        self.paths = [e.path for e in entries]
        self.encoded: list[bytes | None] = [None] * len(entries)
        self.encode = encode

    def page(self, marker: pfs.File, number: int, reverse: bool) -> Iterator[bytes]:
        for i in page_indices(self.paths, marker, number, reverse):
            data = self.encoded[i]
            if data is None:
                data = self.encoded[i] = self.encode(self.entries[i])
            yield data


class PfsService:
    def __init__(self, store: Store, auth):
        self.store = store
        self.auth = auth
        self._folders: collections.OrderedDict[tuple[int, str], FolderPages] = collections.OrderedDict()
        self._folders_size = 0
        self._folders_lock = threading.Lock()
        self._repo_infos: collections.OrderedDict[tuple, bytes] = collections.OrderedDict()

    # --- message helpers ----------------------------------------------------------------------
    def repo_row(self, repo: pfs.Repo) -> RepoRow:
        if not repo.name:
            raise invalid("repo cannot be nil")
        project = repo.project.name if present(repo.project) and repo.project.name else "default"
        return self.store.get_repo(project, repo.name, repo.type or "user")

    def find_repo(self, project: str, name: str, type_: str) -> RepoRow | None:
        try:
            return self.store.get_repo(project, name, type_ or "user")
        except RpcFailure as exc:
            if exc.code == grpc.StatusCode.NOT_FOUND:
                return None
            raise

    @staticmethod
    def repo_msg(r: RepoRow) -> pfs.Repo:
        return pfs.Repo(name=r.name, type=r.type, project=pfs.Project(name=r.project))

    def commit_msg(self, r: RepoRow, c: CommitRow) -> pfs.Commit:
        repo = self.repo_msg(r)
        return pfs.Commit(repo=repo, id=c.id, branch=pfs.Branch(repo=repo, name=c.branch))

    def commit_info(self, r: RepoRow, c: CommitRow) -> pfs.CommitInfo:
        size = self.store.lookup(self.store.chain(c.seq), "/").size
        info = pfs.CommitInfo(
            commit=self.commit_msg(r, c),
            origin=pfs.CommitOrigin(kind=pfs.OriginKind(c.origin)),
            description=c.description,
            child_commits=[self.commit_msg(r, ch) for ch in self.store.children(c.seq)],
            started=ts(c.started),
            error=c.error,
            size_bytes_upper_bound=size,
            details=pfs.CommitInfoDetails(size_bytes=size),
        )
        if c.parent_seq is not None:
            info.parent_commit = self.commit_msg(r, self.store.commit(c.parent_seq))
        if c.finishing is not None:
            info.finishing = ts(c.finishing)
        if c.finished is not None:
            info.finished = ts(c.finished)
        return info

    def file_info_maker(self, r: RepoRow, c: CommitRow):
        """A FileInfo builder for entries of one commit (its Commit message is built and serialized once)."""
        commit = SharedCommit.of(self.commit_msg(r, c))
        committed = ts(c.finishing or c.started)

        def make(e: Entry) -> pfs.FileInfo:
            return pfs.FileInfo(
                file=pfs.File(commit=commit, path=e.path),
                file_type=pfs.FileType.DIR if e.is_dir else pfs.FileType.FILE,
                committed=committed,
                size_bytes=e.size,
                hash=bytes.fromhex(e.blob) if e.blob else b"",
            )
        return make

    def file_info_encoder(self, r: RepoRow, c: CommitRow):
        """Like `file_info_maker`, but the encoded FileInfo, for listings of many entries: one
        message refilled per entry (building a betterproto message costs more than encoding it),
        its commit and time held encoded (`codec.twin_of`)."""
        info = codec.twin_of(self.file_info_maker(r, c)(Entry("/", False, None, 0, 0)), share=(pfs.Commit,))
        lock = threading.Lock()

        def encode(e: Entry) -> bytes:
            with lock:
                info.file.path = e.path
                info.file_type = pfs.FileType.DIR if e.is_dir else pfs.FileType.FILE
                info.size_bytes = e.size
                info.hash = bytes.fromhex(e.blob) if e.blob else b""
                return codec.serialize(info)
        return encode

    def commit_repo(self, commit: pfs.Commit) -> RepoRow:
        repo = commit.repo if present(commit.repo) and commit.repo.name else commit.branch.repo
        return self.repo_row(repo)

    def resolve(self, commit: pfs.Commit) -> tuple[RepoRow, CommitRow]:
        """A Commit message (id, branch, or 'branch^N'-style ancestry) -> its rows; NOT_FOUND if missing."""
        repo = self.commit_repo(commit)
        return repo, self.resolve_in(repo, commit.id, commit.branch.name if present(commit.branch) else "")

    def resolve_in(self, repo: RepoRow, commit_id: str, branch: str) -> CommitRow:
        ref = commit_id or branch
        if not ref:
            raise invalid("commit must have an id or a branch")
        base, suffix = ANCESTRY_RE.match(ref).groups()
        if names.is_commit_id(base):
            row = self.store.commit_by_id(repo, base)
        else:
            head = self.store.branch_head(repo.id, base)
            if head is None:
                raise not_found(f'branch "{base}" not found in repo {repo}')
            row = self.store.commit(head)
        for step in re.findall(r"[\^~][0-9]*|\.[0-9]+", suffix):
            if step[0] == ".":
                raise invalid(f"forward ancestry ({ref}) is not supported by the local server")
            for _ in range(int(step[1:] or 1)):
                if row.parent_seq is None:
                    raise not_found(f"commit {repo}@{ref} not found")
                row = self.store.commit(row.parent_seq)
        return row

    def read_commit(self, ctx, commit: pfs.Commit) -> tuple[RepoRow, CommitRow]:
        repo, row = self.resolve(commit)
        self.auth.require(ctx, repo, P.REPO_READ)
        return repo, row

    # --- projects -----------------------------------------------------------------------------
    def CreateProject(self, req: pfs.CreateProjectRequest, ctx) -> Empty:
        validate_project_name(req.project.name)
        exists = any(row[0] == req.project.name for row in self.store.list_projects())
        if exists and req.update:
            self.auth.require_project(ctx, req.project.name, P.PROJECT_MODIFY_BINDINGS)
        else:
            self.auth.require_cluster(ctx, P.PROJECT_CREATE)
        self.store.create_project(req.project.name, req.description, req.update)
        if not exists:
            self.auth.project_created(ctx, req.project.name)
        return Empty()

    def project_info(self, ctx, name: str, description: str, created: float) -> pfs.ProjectInfo:
        return pfs.ProjectInfo(project=pfs.Project(name=name), description=description, created_at=ts(created),
                               auth_info=self.auth.project_auth_info(ctx, name))

    def InspectProject(self, req: pfs.InspectProjectRequest, ctx) -> pfs.ProjectInfo:
        return self.project_info(ctx, *self.store.get_project(req.project.name))

    def ListProject(self, req: pfs.ListProjectRequest, ctx) -> Iterator[pfs.ProjectInfo]:
        for row in self.store.list_projects():
            yield self.project_info(ctx, *row)

    def DeleteProject(self, req: pfs.DeleteProjectRequest, ctx) -> Empty:
        if req.project.name == "default":
            raise invalid("cannot delete the default project")
        self.store.get_project(req.project.name)
        self.auth.require_project(ctx, req.project.name, P.PROJECT_DELETE)
        self.store.delete_project(req.project.name, req.force)
        self.store.collect_garbage()
        return Empty()

    # --- repos --------------------------------------------------------------------------------
    def CreateRepo(self, req: pfs.CreateRepoRequest, ctx) -> Empty:
        validate_repo_name(req.repo.name)
        project = req.repo.project.name or "default"
        existing = self.find_repo(project, req.repo.name, req.repo.type) if req.update else None
        if existing is not None:
            self.auth.require(ctx, existing, P.REPO_WRITE)
        else:
            self.store.get_project(project)
            self.auth.require_project(ctx, project, P.PROJECT_CREATE_REPO)
        created = self.store.create_repo(project, req.repo.name, req.repo.type or "user", req.description, req.update)
        if created:
            self.auth.repo_created(ctx, self.store.get_repo(project, req.repo.name, req.repo.type or "user"))
        return Empty()

    def repo_info(self, ctx, r: RepoRow, branches: list[tuple[str, int]] | None = None,
                  auth_info=...) -> pfs.RepoInfo:
        if branches is None:
            branches = self.store.list_branches(r.id)
        size = 0
        for name, head in branches:
            if name == "master":
                size = self.store.lookup(self.store.chain(head), "/").size
        repo = self.repo_msg(r)
        info = pfs.RepoInfo(
            repo=repo, created=ts(r.created), size_bytes_upper_bound=size, description=r.description,
            branches=[pfs.Branch(repo=repo, name=name) for name, _ in branches],
            details=pfs.RepoInfoDetails(size_bytes=size),
        )
        if auth_info is ...:
            auth_info = self.auth.repo_auth_info(ctx, r)
        if auth_info is not None:
            info.auth_info = auth_info
        return info

    def repo_info_encoded(self, ctx, r: RepoRow) -> bytes:
        """`repo_info`, encoded; kept while the repo, its branches' heads and the caller's access
        stay the same (a finished head never changes, so neither does the repo's size)."""
        branches = tuple(self.store.list_branches(r.id))
        auth_info = self.auth.repo_auth_info(ctx, r)
        key = (r, branches, None if auth_info is None else codec.serialize(auth_info))
        found = self._repo_infos.get(key)
        if found is not None:
            return found
        data = codec.serialize(self.repo_info(ctx, r, list(branches), auth_info))
        master = dict(branches).get("master")
        if master is None or self.store.commit(master).finishing is not None:
            with self._folders_lock:
                self._repo_infos[key] = data
                while len(self._repo_infos) > REPO_INFOS_KEPT:
                    self._repo_infos.popitem(last=False)
        return data

    def InspectRepo(self, req: pfs.InspectRepoRequest, ctx) -> pfs.RepoInfo:
        return self.repo_info(ctx, self.repo_row(req.repo))

    def ListRepo(self, req: pfs.ListRepoRequest, ctx) -> Iterator[bytes]:
        projects = {p.name for p in req.projects if p.name} or None
        type_ = req.type or "user"
        for r in self.store.list_repos(projects, type_):
            if self.auth.can_list(ctx, r):
                yield self.repo_info_encoded(ctx, r)

    def DeleteRepo(self, req: pfs.DeleteRepoRequest, ctx) -> pfs.DeleteRepoResponse:
        r = self.find_repo(req.repo.project.name or "default", req.repo.name, req.repo.type)
        if r is None:  # pachd answers deleted=false for a missing repo
            return pfs.DeleteRepoResponse(deleted=False)
        self.auth.require(ctx, r, P.REPO_DELETE)
        self.store.delete_repo(r)
        self.store.collect_garbage()
        return pfs.DeleteRepoResponse(deleted=True)

    def DeleteRepos(self, req: pfs.DeleteReposRequest, ctx) -> pfs.DeleteReposResponse:
        projects = None if req.all else ({p.name for p in req.projects} or None)
        if projects is None and not req.all:
            raise invalid("either all or projects must be set")
        deleted = []
        for r in self.store.list_repos(projects, ""):
            self.auth.require(ctx, r, P.REPO_DELETE)
            self.store.delete_repo(r)
            deleted.append(self.repo_msg(r))
        self.store.collect_garbage()
        return pfs.DeleteReposResponse(repos=deleted)

    def DeleteAll(self, req, ctx) -> Empty:
        self.auth.require_cluster(ctx, P.CLUSTER_DELETE_ALL)
        for r in self.store.list_repos(None, ""):
            self.store.delete_repo(r)
        for name, _, _ in self.store.list_projects():
            if name != "default":
                self.store.delete_project(name, True)
        self.store.collect_garbage()
        return Empty()

    # --- commits ------------------------------------------------------------------------------
    def StartCommit(self, req: pfs.StartCommitRequest, ctx) -> pfs.Commit:
        if not present(req.branch) or not req.branch.name:
            raise invalid("branch cannot be nil")
        validate_name(req.branch.name)
        repo = self.repo_row(req.branch.repo)
        self.auth.require(ctx, repo, P.REPO_WRITE)
        parent_seq = None
        if present(req.parent) and (req.parent.id or (present(req.parent.branch) and req.parent.branch.name)):
            _, parent = self.resolve(req.parent)
            parent_seq = parent.seq
        row = self.store.start_commit(repo, req.branch.name, parent_seq, req.description)
        return self.commit_msg(repo, row)

    def FinishCommit(self, req: pfs.FinishCommitRequest, ctx) -> Empty:
        repo, row = self.resolve(req.commit)
        self.auth.require(ctx, repo, P.REPO_WRITE)
        self.store.finish_commit(repo, row.seq, req.description or None, req.error)
        return Empty()

    def InspectCommit(self, req: pfs.InspectCommitRequest, ctx) -> pfs.CommitInfo:
        repo, row = self.resolve(req.commit)
        self.auth.require(ctx, repo, P.REPO_INSPECT_COMMIT)
        if req.wait in (pfs.CommitState.FINISHING, pfs.CommitState.FINISHED):
            while row.finishing is None:
                if not ctx.is_active():
                    raise unknown("context canceled")
                self.store.wait_change(1.0)
                row = self.store.commit(row.seq)
        return self.commit_info(repo, row)

    def ListCommit(self, req: pfs.ListCommitRequest, ctx) -> Iterator[pfs.CommitInfo]:
        repo = self.repo_row(req.repo)
        self.auth.require(ctx, repo, P.REPO_LIST_COMMIT)
        number = req.number or None
        want = req.origin_kind if not req.all and req.origin_kind else None
        has_from = present(req.from_) and (req.from_.id or req.from_.branch.name)
        has_to = present(req.to) and (req.to.id or req.to.branch.name)
        if has_from and not has_to:
            raise unknown("cannot use `from` commit without `to` commit")
        if has_to:
            if req.reverse:
                raise unknown("cannot use 'Reverse' while also using 'From' or 'To'")
            stop = self.resolve_in(repo, req.from_.id, req.from_.branch.name).seq if has_from else None
            rows = []
            cur: int | None = self.resolve_in(repo, req.to.id, req.to.branch.name).seq
            while cur is not None and cur != stop and (number is None or len(rows) < number):
                row = self.store.commit(cur)
                if want is None or row.origin == want:
                    rows.append(row)
                cur = row.parent_seq
        else:
            rows = [r for r in self.store.repo_commits(repo.id, newest_first=not req.reverse)
                    if want is None or r.origin == want]
            if number is not None:
                rows = rows[:number]
        for row in rows:
            yield self.commit_info(repo, row)

    def SubscribeCommit(self, req: pfs.SubscribeCommitRequest, ctx) -> Iterator[pfs.CommitInfo]:
        repo = self.repo_row(req.repo)
        self.auth.require(ctx, repo, P.REPO_LIST_COMMIT)
        after = 0
        if present(req.from_) and (req.from_.id or req.from_.branch.name):
            after = self.resolve_in(repo, req.from_.id, req.from_.branch.name).seq
        need_finished = req.state in (pfs.CommitState.FINISHING, pfs.CommitState.FINISHED)
        want = req.origin_kind if not req.all and req.origin_kind else None
        while ctx.is_active():
            for row in self.store.repo_commits(repo.id, newest_first=False):
                if row.seq <= after or (req.branch and row.branch != req.branch):
                    continue
                if need_finished and row.finishing is None:
                    break
                after = row.seq
                if want is None or row.origin == want:
                    yield self.commit_info(repo, row)
            self.store.wait_change(0.5)

    def commit_set(self, ctx, commit_set_id: str, permission) -> list[tuple[RepoRow, CommitRow]]:
        rows = self.store.commits_by_id(commit_set_id)
        if not rows:
            raise not_found(f"no commits found for commitset {commit_set_id}")
        repos = {r.id: r for r in self.store.list_repos(None, "")}
        out = [(repos[row.repo_id], row) for row in rows]
        for repo, _ in out:
            self.auth.require(ctx, repo, permission)
        return out

    def InspectCommitSet(self, req: pfs.InspectCommitSetRequest, ctx) -> Iterator[pfs.CommitInfo]:
        for repo, row in self.commit_set(ctx, req.commit_set.id, P.REPO_INSPECT_COMMIT):
            while req.wait and row.finishing is None and ctx.is_active():
                self.store.wait_change(1.0)
                row = self.store.commit(row.seq)
            yield self.commit_info(repo, row)

    def DropCommitSet(self, req: pfs.DropCommitSetRequest, ctx) -> Empty:
        for repo, row in self.commit_set(ctx, req.commit_set.id, P.REPO_DELETE_COMMIT):
            self.store.drop_commit(repo, row.seq)
        return Empty()

    # --- branches -----------------------------------------------------------------------------
    def CreateBranch(self, req: pfs.CreateBranchRequest, ctx) -> Empty:
        validate_name(req.branch.name)
        repo = self.repo_row(req.branch.repo)
        self.auth.require(ctx, repo, P.REPO_CREATE_BRANCH)
        head_seq = None
        if present(req.head) and (req.head.id or (present(req.head.branch) and req.head.branch.name)):
            head_repo, head = self.resolve(req.head)
            if head_repo.id != repo.id:
                raise invalid(f"branch {repo}@{req.branch.name} cannot point at a commit of repo {head_repo}")
            head_seq = head.seq
        self.store.set_branch(repo.id, req.branch.name, head_seq)
        return Empty()

    def InspectBranch(self, req: pfs.InspectBranchRequest, ctx) -> pfs.BranchInfo:
        repo = self.repo_row(req.branch.repo)
        self.auth.require(ctx, repo, P.REPO_LIST_BRANCH)
        head = self.store.branch_head(repo.id, req.branch.name)
        if head is None:
            raise not_found(f'branch "{req.branch.name}" not found in repo {repo}')
        return self.branch_info(repo, req.branch.name, head)

    def branch_info(self, repo: RepoRow, name: str, head: int) -> pfs.BranchInfo:
        commit = self.commit_msg(repo, self.store.commit(head))
        return pfs.BranchInfo(branch=pfs.Branch(repo=self.repo_msg(repo), name=name), head=commit)

    def ListBranch(self, req: pfs.ListBranchRequest, ctx) -> Iterator[pfs.BranchInfo]:
        repos = [self.repo_row(req.repo)] if present(req.repo) and req.repo.name else self.store.list_repos(None, "")
        for repo in repos:
            self.auth.require(ctx, repo, P.REPO_LIST_BRANCH)
            branches = self.store.list_branches(repo.id)
            if req.reverse:
                branches.reverse()
            for name, head in branches:
                yield self.branch_info(repo, name, head)

    def DeleteBranch(self, req: pfs.DeleteBranchRequest, ctx) -> Empty:
        repo = self.repo_row(req.branch.repo)
        self.auth.require(ctx, repo, P.REPO_DELETE_BRANCH)
        self.store.delete_branch(repo.id, req.branch.name)
        return Empty()

    # --- files: writing -----------------------------------------------------------------------
    def ModifyFile(self, requests: Iterator[pfs.ModifyFileRequest], ctx) -> Empty:
        try:
            with self.store.writing():
                self.modify(requests, ctx)
        finally:
            malloc.trim()  # a stream of big contents leaves freed buffers behind
        return Empty()

    def modify(self, requests: Iterator[pfs.ModifyFileRequest], ctx) -> None:
        batch: ModifyBatch | None = None
        try:
            for req in requests:
                kind, body = betterproto.which_one_of(req, "body")
                if kind == "set_commit":
                    if batch is not None:
                        batch.commit_changes()
                    batch = ModifyBatch(self, ctx, body)
                elif batch is None:
                    raise invalid("ModifyFile: the first request must set the commit")
                elif kind == "add_file":
                    batch.add_file(body)
                elif kind == "delete_file":
                    batch.delete_file(validate_path_or_root(body.path))
                elif kind == "copy_file":
                    batch.copy_file(body)
            if batch is not None:
                batch.commit_changes()
                batch = None
        finally:
            if batch is not None:
                batch.abort()

    def copy_sources(self, ctx, copy: pfs.CopyFile) -> list[tuple[str, Entry]]:
        """(destination path, source file) of each file a CopyFile copies (a folder: all under it)."""
        dst = validate_path_or_root(copy.dst)
        src_repo, src_commit = self.read_commit(ctx, copy.src.commit)
        src_path = clean_path(copy.src.path)
        chain = self.store.chain(src_commit.seq)
        src = self.store.lookup(chain, src_path)
        if src is None:
            raise not_found(f"file {src_path} not found in repo {src_repo} at commit {src_commit.id}")
        if not src.is_dir:
            return [(validate_file_path(dst), src)]
        return [(validate_file_path(dst.rstrip("/") + "/" + e.path[len(src.path):]), e)
                for e in self.store.walk(chain, src_path) if not e.is_dir]

    # --- temporary file sets (local.filesets) ------------------------------------------------
    def CreateFileSet(self, requests: Iterator[pfs.ModifyFileRequest], ctx) -> pfs.CreateFileSetResponse:
        self.store.expire_filesets()
        writer = filesets.FileSetWriter(self)
        try:
            with self.store.writing():
                writer.consume(requests, ctx)
                fid = self.store.create_fileset(writer.ops, writer.inline)
        finally:
            malloc.trim()
        return pfs.CreateFileSetResponse(file_set_id=fid)

    def AddFileSet(self, req: pfs.AddFileSetRequest, ctx) -> Empty:
        """Layer a file set over what the open commit has (its ops replayed as ModifyFile would)."""
        self.store.expire_filesets()
        repo, row = self.resolve(req.commit)
        self.auth.require(ctx, repo, P.REPO_WRITE)
        if row.finishing is not None:
            raise precondition(f"commit {repo}@{row.id} has already finished")
        with self.store.writing():
            ops = self.store.fileset(req.file_set_id)
            batch = ModifyBatch(self, ctx, pfs.Commit(id=row.id, repo=self.repo_msg(repo)))
            try:
                filesets.replay(ops, batch)
                batch.commit_changes()
            finally:
                batch.abort()
        return Empty()

    def RenewFileSet(self, req: pfs.RenewFileSetRequest, ctx) -> Empty:
        if not 1 <= req.ttl_seconds <= FILESET_TTL_MAX:
            raise invalid(f"ttl ({req.ttl_seconds} s) must be between 1 and {FILESET_TTL_MAX:.0f} seconds")
        self.store.expire_filesets()
        self.store.renew_fileset(req.file_set_id, req.ttl_seconds)
        return Empty()

    # --- files: reading -----------------------------------------------------------------------
    def GetFile(self, req: pfs.GetFileRequest, ctx) -> Iterator[BytesValue]:
        repo, commit = self.read_commit(ctx, req.file.commit)
        entry = self.single_file(repo, commit, req.file.path)
        if present(req.path_range) and not in_range(entry.path, req.path_range):
            raise not_found(f"file {entry.path} not found in repo {repo} at commit {commit.id}")
        try:
            with self.store.open_blob(entry.blob, entry.size) as f:
                f.seek(max(0, req.offset))
                while chunk := f.read(GET_FILE_CHUNK):
                    yield BytesValue(value=chunk)
        finally:
            malloc.trim()  # hand the chunks' memory back (a reader may stop early: cancelled)

    def single_file(self, repo: RepoRow, commit: CommitRow, path: str) -> Entry:
        chain = self.store.chain(commit.seq)
        p = clean_path(path)
        missing = not_found(f"file {p} not found in repo {repo} at commit {commit.id}")
        if GLOB_CHARS.search(p):
            matches = self.glob(chain, p)
            if not matches:
                raise missing
            if len(matches) > 1:
                raise unknown("matched multiple files. Use GetFileTAR instead")
            entry = matches[0]
        else:
            entry = self.store.lookup(chain, p)
            if entry is None:
                raise missing
        if entry.is_dir:
            raise unknown("cannot get directory or non-regular file. Use GetFileTAR instead")
        return entry

    def glob(self, chain: tuple[int, ...], pattern: str) -> list[Entry]:
        pattern = clean_path(pattern)
        try:
            match = matcher(pattern)
        except GlobError as exc:
            raise invalid(str(exc)) from None
        prefix = literal_prefix(pattern)
        base = prefix.rpartition("/")[0] or "/"
        root = self.store.lookup(chain, base)
        if root is None or not root.is_dir:
            return [root] if root is not None and match(root.path) else []
        candidates = [root] + self.store.walk(chain, base)
        return [e for e in candidates if e.path.startswith(prefix) and match(e.path)]

    def GetFileTAR(self, req: pfs.GetFileRequest, ctx) -> Iterator[BytesValue]:
        repo, commit = self.read_commit(ctx, req.file.commit)
        chain = self.store.chain(commit.seq)
        p = clean_path(req.file.path)
        if GLOB_CHARS.search(p):
            roots = self.glob(chain, p)
        else:
            e = self.store.lookup(chain, p)
            roots = [] if e is None else [e]
        if not roots:
            raise not_found(f"file {p} not found in repo {repo} at commit {commit.id}")
        mtime = commit.finishing or commit.started
        seen = set()
        for root in roots:
            entries = [root] + (self.store.walk(chain, root.path.rstrip("/") or "/") if root.is_dir else [])
            for e in entries:
                if e.path in seen or e.path == "/":
                    continue
                seen.add(e.path)
                info = tarfile.TarInfo(e.path.rstrip("/") if not e.is_dir else e.path)
                info.mtime = int(mtime)
                info.mode = 0o755 if e.is_dir else 0o644
                info.type = tarfile.DIRTYPE if e.is_dir else tarfile.REGTYPE
                info.size = 0 if e.is_dir else e.size
                yield BytesValue(value=info.tobuf(tarfile.PAX_FORMAT))
                if not e.is_dir:
                    with self.store.open_blob(e.blob, e.size) as f:
                        while chunk := f.read(CHUNK):
                            yield BytesValue(value=chunk)
                    if pad := (-e.size) % tarfile.BLOCKSIZE:
                        yield BytesValue(value=b"\0" * pad)
        yield BytesValue(value=b"\0" * (2 * tarfile.BLOCKSIZE))

    def InspectFile(self, req: pfs.InspectFileRequest, ctx) -> pfs.FileInfo:
        repo, commit = self.read_commit(ctx, req.file.commit)
        p = clean_path(req.file.path)
        entry = self.store.lookup(self.store.chain(commit.seq), p)
        if entry is None:
            raise not_found(f"file {p} not found in repo {repo} at commit {commit.id}")
        return self.file_info_maker(repo, commit)(entry)

    def ListFile(self, req: pfs.ListFileRequest, ctx) -> Iterator[bytes]:
        repo, commit = self.read_commit(ctx, req.file.commit)
        check_pagination(req.number, req.reverse)
        yield from self.folder_pages(repo, commit, clean_path(req.file.path)).page(
            req.pagination_marker, req.number, req.reverse)

    def folder_pages(self, repo: RepoRow, commit: CommitRow, path: str) -> FolderPages:
        """What ListFile of ``path`` answers; kept for finished (immutable) commits."""
        key = (commit.seq, path)
        with self._folders_lock:
            found = self._folders.get(key)
            if found is not None:
                self._folders.move_to_end(key)
                return found
        chain = self.store.chain(commit.seq)
        entry = self.store.lookup(chain, path)  # pachd lists nothing (no error) for a missing path
        entries = [] if entry is None else self.store.list_dir(chain, path) if entry.is_dir else [entry]
        pages = FolderPages(entries, self.file_info_encoder(repo, commit))
        if commit.finishing is None:
            return pages
        with self._folders_lock:
            if key not in self._folders:
                self._folders[key] = pages
                self._folders_size += len(entries)
            while self._folders_size > LISTINGS_KEPT and len(self._folders) > 1:
                _, old = self._folders.popitem(last=False)
                self._folders_size -= len(old.entries)
        return pages

    def WalkFile(self, req: pfs.WalkFileRequest, ctx) -> Iterator[pfs.FileInfo]:
        repo, commit = self.read_commit(ctx, req.file.commit)
        check_pagination(req.number, req.reverse)
        chain = self.store.chain(commit.seq)
        p = clean_path(req.file.path)
        entry = self.store.lookup(chain, p)  # pachd walks nothing (no error) for a missing path
        entries = [] if entry is None else [entry] + (self.store.walk(chain, p) if entry.is_dir else [])
        make = self.file_info_maker(repo, commit)
        for i in page_indices([e.path for e in entries], req.pagination_marker, req.number, req.reverse):
            yield make(entries[i])

    def GlobFile(self, req: pfs.GlobFileRequest, ctx) -> Iterator[pfs.FileInfo]:
        repo, commit = self.read_commit(ctx, req.commit)
        make = self.file_info_maker(repo, commit)
        for e in self.glob(self.store.chain(commit.seq), req.pattern):
            if not present(req.path_range) or in_range(e.path, req.path_range):
                yield make(e)

    def DiffFile(self, req: pfs.DiffFileRequest, ctx) -> Iterator[pfs.DiffFileResponse]:
        new_repo, new_commit = self.read_commit(ctx, req.new_file.commit)
        new_path = clean_path(req.new_file.path)
        if present(req.old_file) and present(req.old_file.commit) and (
                req.old_file.commit.id or req.old_file.commit.branch.name):
            old_repo, old_commit = self.read_commit(ctx, req.old_file.commit)
            old_path = clean_path(req.old_file.path)
        elif new_commit.parent_seq is not None:
            old_repo, old_commit, old_path = new_repo, self.store.commit(new_commit.parent_seq), new_path
        else:
            old_repo, old_commit, old_path = new_repo, None, new_path
        new = self.subtree(self.store.chain(new_commit.seq), new_path)
        old = self.subtree(self.store.chain(old_commit.seq), old_path) if old_commit else {}
        changed_files = {rel for rel in new.keys() | old.keys()
                         if not rel.endswith("/") and (new.get(rel) is None or old.get(rel) is None
                                                       or new[rel].blob != old[rel].blob)}
        changed = set(changed_files)
        for rel in changed_files:
            parts = rel.split("/")
            for i in range(1, len(parts)):
                changed.add("/".join(parts[:i]) + "/")
            changed.add("")
        make_new = self.file_info_maker(new_repo, new_commit)
        make_old = self.file_info_maker(old_repo, old_commit) if old_commit else None
        for rel in sorted(changed):
            resp = pfs.DiffFileResponse()
            if (e := new.get(rel)) is not None:
                resp.new_file = make_new(e)
            if (e := old.get(rel)) is not None:
                resp.old_file = make_old(e)
            if present(resp.new_file) or present(resp.old_file):
                yield resp

    def subtree(self, chain: tuple[int, ...], path: str) -> dict[str, Entry]:
        """Entries at and under ``path`` keyed by their path relative to it ('' for ``path`` itself)."""
        top = self.store.lookup(chain, path)
        if top is None:
            return {}
        if not top.is_dir:
            return {"": top}
        base = top.path
        out = {"": top}
        for e in self.store.walk(chain, path):
            out[e.path[len(base):]] = e
        return out


def validate_path_or_root(path: str) -> str:
    return "/" if clean_path(path) == "/" else validate_file_path(path)


def in_range(path: str, path_range: pfs.PathRange) -> bool:
    if path_range.lower and path < path_range.lower:
        return False
    return not (path_range.upper and path >= path_range.upper)


def check_pagination(number: int, reverse: bool) -> None:
    if number == 0 and reverse:
        raise unknown("number must be > 0 when reverse is true")
    if number > MAX_LIST:
        raise unknown(f"cannot return more than {MAX_LIST} files at a time")


def page_indices(paths: list[str], marker: pfs.File, number: int, reverse: bool) -> Iterator[int]:
    """pachd's list/walk paging over sorted paths (directories end in '/'): from the marker's path
    as given on (before it, reversed), skipping the marker itself, at most ``number`` (0: all)."""
    lower, upper = 0, len(paths)
    skip = None
    if present(marker) and marker.path:
        skip = clean_path(marker.path)
        if reverse:
            upper = bisect.bisect_left(paths, marker.path)
        else:
            lower = bisect.bisect_left(paths, marker.path)
    left = number or len(paths)
    for i in range(upper - 1, lower - 1, -1) if reverse else range(lower, upper):
        if left == 0:
            return
        if skip is not None and (paths[i].rstrip("/") or "/") == skip:
            continue
        left -= 1
        yield i


class ModifyBatch:
    """The writes one ModifyFile stream makes to one commit, applied all at once at the end.

    Content streams into blobs as it arrives; ``overlay`` maps a path to its new (blob, size) or
    None (deleted); ``writers`` hold files still being appended to in this stream.
    """

    def __init__(self, service: PfsService, ctx, commit: pfs.Commit):
        self.service = service
        self.store = service.store
        self.repo = service.commit_repo(commit)
        service.auth.require(ctx, self.repo, P.REPO_WRITE)
        self.ctx = ctx
        self.overlay: dict[str, tuple[str, int] | None] = {}
        self.overlay_dirs: set[str] = set()  # folders with overlay paths under them (a delete looks there only)
        self.writers: dict = {}
        self.inline: dict[str, bytes] = {}  # small contents not yet in the store
        self.inline_bytes = 0
        branch = commit.branch.name if present(commit.branch) else ""
        commit_id = commit.id
        if not branch and commit_id and not names.is_commit_id(commit_id):
            branch, commit_id = commit_id, ""
        self.branch = branch
        self.open_seq: int | None = None  # writing into this open commit
        try:
            row = service.resolve_in(self.repo, commit_id, branch)
        except RpcFailure as exc:  # a missing branch gets a new commit
            if exc.code != grpc.StatusCode.NOT_FOUND or not branch or commit_id:
                raise
            self.base: tuple[int, ...] = ()
            return
        if row.finishing is not None:
            if commit_id:
                raise precondition(f"commit {self.repo}@{row.id} has already finished")
            self.base = self.store.chain(row.seq)
        else:
            self.open_seq = row.seq
            self.base = self.store.chain(row.seq)
            if not self.store.has_entries(row.seq):
                # A commit just started (pfs.commits' every commit): nothing of its own to look up
                # yet, so each path is looked up in its parent's layers only (none for a new branch).
                self.base = self.base[1:]

    def current(self, path: str) -> Entry | None:
        if path in self.overlay:
            v = self.overlay[path]
            return None if v is None else Entry(path, False, v[0], v[1], 1)
        e = self.store.lookup(self.base, path) if self.base else None
        return e

    def writer_for(self, path: str):
        """The writer appending to ``path``; other paths' writers are settled first (one open at a time)."""
        for other in [p for p in self.writers if p != path]:
            self.settle(other)
        w = self.writers.get(path)
        if w is None:
            w = self.store.blob_writer()
            cur = self.current(path)
            if cur is not None and not cur.is_dir:
                w.write_blob(cur.blob, cur.size)
            self.writers[path] = w
        return w

    def settle(self, path: str) -> None:
        """Move a finished writer's blob into the overlay (before another op touches the path)."""
        w = self.writers.pop(path, None)
        if w is None:
            return
        digest, size, inline = w.finish()
        self.put(path, (digest, size))
        if inline is not None:
            self.inline[digest] = inline
            self.inline_bytes += len(inline)
            if self.inline_bytes > INLINE_BATCH:
                self.store.put_inline(self.inline)
                self.inline, self.inline_bytes = {}, 0

    def add_file(self, add: pfs.AddFile) -> None:
        kind, _ = betterproto.which_one_of(add, "source")
        if kind == "url":
            raise unknown("AddFile from a URL is not supported by the Pachtray local server")
        path = validate_file_path(add.path)
        w = self.writer_for(path)
        if add.raw:
            w.write(add.raw)

    def put(self, path: str, value: tuple[str, int] | None) -> None:
        if path not in self.overlay:
            for d in ancestors(path):
                if d in self.overlay_dirs:
                    break
                self.overlay_dirs.add(d)
        self.overlay[path] = value

    def delete_file(self, path: str) -> None:
        under = "/" if path == "/" else path + "/"
        for p in [p for p in self.writers if p == path or p.startswith(under)]:
            self.writers.pop(p).abort()
        if path in self.overlay:
            self.overlay[path] = None
        if path in self.overlay_dirs:  # not scanned for every file deleted before it is written
            for p in [p for p in self.overlay if p.startswith(under)]:
                self.overlay[p] = None
        entry = self.store.lookup(self.base, path) if self.base else None
        if entry is None:
            return
        if entry.is_dir:
            for e in self.store.walk(self.base, path):
                if not e.is_dir and e.path not in self.overlay:
                    self.put(e.path, None)
        elif path not in self.overlay:
            self.put(path, None)

    def copy_file(self, copy: pfs.CopyFile) -> None:
        for target, e in self.service.copy_sources(self.ctx, copy):
            self.settle(target)
            if copy.append and self.current(target) is not None:
                self.writer_for(target).write_blob(e.blob, e.size)
            else:
                self.put(target, (e.blob, e.size))

    def commit_changes(self) -> None:
        for path in list(self.writers):
            self.settle(path)
        if self.open_seq is not None:
            with self.store.commit_lock(self.open_seq):
                self.store.apply(self.repo, self.open_seq, self.overlay, self.inline)
            return
        # pachd's one-off write: a new commit on the branch, finished once the writes are in.
        parent = self.base[0] if self.base else None
        row = self.store.start_commit(self.repo, self.branch, parent, "", ORIGIN_USER)
        with self.store.commit_lock(row.seq):
            self.store.apply(self.repo, row.seq, self.overlay, self.inline)
        self.store.finish_commit(self.repo, row.seq, None, "")

    def abort(self) -> None:
        for w in self.writers.values():
            w.abort()
        self.writers.clear()

