"""What the cluster says about a mount's source now: the reference's deletion check and its
RefreshMountState (latest commit, commits behind, status text). RPCs only: the manager applies
the answer to its table.

A ro mount lasts as long as its commit exists and an rw mount as long as its repo does: deleting
the branch keeps both (the reference's TestDeletingMountedRepo), and with the branch gone the
status stays as it was.
"""

from __future__ import annotations

from pachyderm_sdk.api import pfs

from pachtray.mount.resolve import head_of
from pachtray.pfs.client import diff_files
from pachtray.mount.state import Mount, Upstream
from pachtray.pfs import errors, names
from pachtray.pfs.errors import RPC_ERRORS

NO_COMMITS = "branch does not contain any commits"


def check(client, m: Mount) -> Upstream:
    """The mount's source as the cluster has it (raises RPC errors other than "not found").

    A mount still on its branch's head needs one call (the head exists, and so does its repo):
    every few seconds, for every mount, that is what an idle daemon costs."""
    head = head_of(client, names.branch(m.project, m.repo, m.branch)) if m.branch else ""
    if not (m.commit and head == m.commit):
        try:
            if m.mode == "rw":
                client.pfs.inspect_repo(repo=names.repo(m.project, m.repo))
            else:
                client.pfs.inspect_commit(commit=names.commit(m.project, m.repo, m.commit))
        except RPC_ERRORS as e:
            if not errors.is_not_found(e):
                raise
            return Upstream(gone=f"repo {m.project}/{m.repo}" if m.mode == "rw" else f"commit {m.commit}")
    if not m.commit:
        return Upstream(status=NO_COMMITS, latest_commit=m.latest_commit, behind=m.behind)
    if not head:  # the branch is gone (or empty): nothing to be behind of
        return Upstream(status=m.status, latest_commit=m.latest_commit, behind=m.behind)
    if head == m.commit:
        return Upstream(status=up_to_date(head), latest_commit=head, behind=0)
    head_commit = names.commit(m.project, m.repo, head)
    ids = [ci.commit.id for ci in client.pfs.list_commit(repo=head_commit.repo, to=head_commit)]
    ids.reverse()
    current = ids.index(m.commit) if m.commit in ids else -1
    latest = len(ids) - 1
    behind = latest - current
    if behind <= 0:
        return Upstream(status=up_to_date(head), latest_commit=head, behind=behind)
    return Upstream(status=(f"{behind} commits behind latest; current = {m.commit[:8]} ({current}'th), "
                            f"latest = {head[:8]} ({latest}'th)"), latest_commit=head, behind=behind)


def up_to_date(head: str) -> str:
    return f"up to date on latest commit {head[:8]}"


def changed_since(client, m: Mount, base: str, paths: set[str]) -> set[str]:
    """Which of ``paths`` (files) the branch changed since commit ``base``: one DiffFile between
    the base and the branch's head (nothing to ask when the head is still the base)."""
    head = head_of(client, names.branch(m.project, m.repo, m.branch)) if m.branch else ""
    if not paths or not head or head == base:
        return set()
    found = set()
    for new, old in diff_files(client, new_file=pfs.File(commit=names.commit(m.project, m.repo, head), path="/"),
                               old_file=pfs.File(commit=names.commit(m.project, m.repo, base), path="/")):
        found.update(p for p in (new, old) if p in paths)
    return found
