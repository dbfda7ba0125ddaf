"""A mount request made concrete, as the reference's verifyMountRequest and its mount step do it:
defaults, the project, repo, branch or commit exist, the user may read (and for rw, write) the
repo, a branch becomes its head commit. RPCs only; the table is the manager's."""

from __future__ import annotations

from pachyderm_sdk.api import pfs

from pachtray.errors import ApiError
from pachtray.mount.state import MODES, Mount, MountRequest
from pachtray.pfs import errors, names
from pachtray.pfs.auth import authorization
from pachtray.pfs.errors import RPC_ERRORS


def access_refusal(info, auth_on: bool, mode: str) -> str | None:
    """Why this user may not mount the repo of ``info`` in ``mode`` (None: allowed). The reference's
    texts, then what to ask for."""
    access = authorization(info, auth_on)
    project, repo = info.repo.project.name or "default", info.repo.name
    if access == "none":
        return (f"user doesn't have read permission on repo {repo}: you have no read access to "
                f"{project}/{repo} (the repoReader role is needed)")
    if mode == "rw" and access == "read":
        return (f"can't create writable mount since user doesn't have write access on repo {repo}: you have "
                f"read-only access to {project}/{repo} (the repoWriter role is needed)")
    return None


def resolve(client, r: MountRequest, *, auth_on: bool) -> Mount:
    """The mount ``r`` asks for (view not built yet). 400 for a bad or missing source or a ro mount
    the user may not read, 500 (as the reference's mount step) for an rw mount the user may not make,
    ClusterUnreachable when pachd does not answer."""
    mode = r.mode or "ro"
    if (problem := names.mount_name_problem(r.name)) is not None:
        raise ApiError(400, f"invalid mount name {names.quoted(r.name)}: {problem}")
    if not r.repo:
        raise ApiError(400, f"mount request {r.name!r}: no repo specified")
    if mode not in MODES:
        raise ApiError(400, f"mount request {r.name!r}: mount mode can only be 'ro' or 'rw', got {mode!r}")
    project = r.project or "default"
    paths = list(r.paths or ["/"])
    where = f"mount request {r.name!r}"
    commit = (r.commit or "").lower()
    if mode == "ro" and commit and not names.is_commit_id(commit):
        raise ApiError(400, f"{where}: invalid commit ID {r.commit!r}: expected 32 hexadecimal characters")
    try:
        client.pfs.inspect_project(project=pfs.Project(name=project))
        info = client.pfs.inspect_repo(repo=names.repo(project, r.repo))
        refusal = access_refusal(info, auth_on, mode)
        if refusal is not None:
            # The reference: a ro mount fails its request check (InspectCommit is denied: 400), an rw
            # mount its mount step (500).
            raise ApiError(400 if mode == "ro" else 500, f"{where}: {refusal}")
        if mode == "rw":
            branch = r.branch or "master"
            return Mount(name=r.name, project=project, repo=r.repo, branch=branch,
                         commit=head_of(client, names.branch(project, r.repo, branch)), paths=paths, mode="rw",
                         view=None)
        branch = r.branch or ("" if commit else "master")
        ref = pfs.Commit(repo=names.repo(project, r.repo), id=commit,
                         branch=names.branch(project, r.repo, branch) if branch else None)
        ci = client.pfs.inspect_commit(commit=ref)
    except RPC_ERRORS as e:
        raise errors.to_api_error(e, where, reference=True, not_found=400) from None
    got = ci.commit.branch
    return Mount(name=r.name, project=project, repo=r.repo, branch=got.name if got is not None and got.name else branch,
                 commit=ci.commit.id, paths=paths, mode="ro", view=None, pinned=bool(commit))


def head_of(client, branch: pfs.Branch) -> str:
    """The branch's head commit id; "" when the branch does not exist (yet)."""
    try:
        head = client.pfs.inspect_branch(branch=branch).head
    except RPC_ERRORS as e:
        if not errors.is_not_found(e):
            raise
        return ""
    return head.id if head is not None else ""
