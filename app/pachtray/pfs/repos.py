"""Listing repos, once: every user repo with its branches and the caller's access, from ONE ListRepo
call. GET /repos (the reference's shape) and the GUI's /pachtray/v1/repos both format this."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pachtray.pfs.auth import authorization


@dataclass(frozen=True)
class RepoEntry:
    project: str
    repo: str
    branches: tuple[str, ...]  # in pachd's order
    access: str  # pfs.auth.authorization: off, none, read or write
    description: str
    size_bytes: int
    created: dt.datetime | None


def list_repos(client, auth_on: bool) -> list[RepoEntry]:
    """Every user repo in pachd's order (``auth_on`` from pfs.auth.who_am_i)."""
    out = []
    for ri in client.pfs.list_repo(type="user"):
        details = ri.details
        size = details.size_bytes if details is not None and details.size_bytes else ri.size_bytes_upper_bound
        out.append(RepoEntry(project=ri.repo.project.name or "default", repo=ri.repo.name,
                             branches=tuple(b.name for b in ri.branches), access=authorization(ri, auth_on),
                             description=ri.description, size_bytes=size, created=ri.created))
    return out
