"""`/pachtray/v1` browsing for the GUI: repos with their size and access, branches, commits and
folder entries, each paginated so the window never asks for 100,000 entries at once."""

from __future__ import annotations

import datetime as dt

from pachyderm_sdk.api import pfs

from pachtray.api import models
from pachtray.errors import ApiError
from pachtray.pfs import errors
from pachtray.pfs.auth import AUTH_OFF
from pachtray.pfs.commits import timestamp_set
from pachtray.pfs.repos import list_repos

PREFIX = "/pachtray/v1"
MAX_PAGE = 1000
BRANCH_DETAIL_LIMIT = 200
ACCESS_REASONS = {
    "none": "no access: ask the repo owner for the repoReader role",
    "read": "read-only: the repoWriter role is needed to write",
}


def _time(value) -> str | None:
    if not timestamp_set(value):
        return None
    return value.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def _cancel(stream) -> None:
    """Stop a server stream we read enough of (a generator closes the call underneath)."""
    stop = getattr(stream, "cancel", None) or getattr(stream, "close", None)
    if callable(stop):
        stop()


def repos(req, app):
    """All projects and repos (one ListProject, one ListRepo); the GUI pages through them itself."""
    client = app.client()
    auth_on = app.auth_state() != AUTH_OFF
    projects = [{"name": p.project.name, "description": p.description} for p in client.pfs.list_project()]
    out = [{"project": r.project, "repo": r.repo, "description": r.description, "size_bytes": r.size_bytes,
            "created": _time(r.created), "branches": sorted(r.branches), "authorization": r.access,
            "access_reason": ACCESS_REASONS.get(r.access, "")} for r in list_repos(client, auth_on)]
    known = {p["name"] for p in projects}
    projects += [{"name": n, "description": ""} for n in sorted({r["project"] for r in out} - known)]
    out.sort(key=lambda r: (r["project"], r["repo"]))
    projects.sort(key=lambda p: p["name"])
    return {"projects": projects, "repos": out}


def branches(req, app):
    """Branches with their head commit's time (details for the first 200 branches)."""
    repo = models.repo_of(req.query)
    client = app.client()
    infos = sorted(client.pfs.list_branch(repo=repo), key=lambda b: b.branch.name)
    out = []
    for i, bi in enumerate(infos):
        entry = {"name": bi.branch.name, "head": bi.head.id if bi.head is not None else "", "started": None,
                 "finished": None, "description": ""}
        if i < BRANCH_DETAIL_LIMIT and entry["head"]:
            try:
                ci = client.pfs.inspect_commit(commit=pfs.Commit(id=entry["head"], repo=repo))
                entry.update(started=_time(ci.started), finished=_time(ci.finished), description=ci.description)
            except errors.RPC_ERRORS:
                pass  # the branch listing is still useful without one head's time
        out.append(entry)
    return {"branches": out}


def _commit_json(ci) -> dict:
    details = ci.details
    size = details.size_bytes if details is not None and details.size_bytes else ci.size_bytes_upper_bound
    branch = ci.commit.branch
    return {
        "id": ci.commit.id,
        "branch": branch.name if branch is not None else "",
        "started": _time(ci.started),
        "finished": _time(ci.finished),
        "description": ci.description,
        "size_bytes": size,
        "error": ci.error,
    }


def commits(req, app):
    """Commits reachable from a branch head, newest first."""
    repo = models.repo_of(req.query)
    branch = models.pach_name(models.param(req.query, "branch"), "branch")
    offset = models.number_param(req.query, "offset", 0, 0, 10**9)
    limit = models.number_param(req.query, "limit", 100, 1, MAX_PAGE)
    want = offset + limit + 1
    stream = app.client().pfs.list_commit(repo=repo, to=pfs.Commit(branch=pfs.Branch(repo=repo, name=branch)),
                                          number=want)
    found = []
    try:
        for ci in stream:
            found.append(ci)
            if len(found) >= want:
                break
    finally:
        _cancel(stream)
    page = found[offset:offset + limit]
    more = len(found) > offset + limit
    return {"commits": [_commit_json(ci) for ci in page], "next_offset": offset + limit if more else None}


def files(req, app):
    """One page of a folder's entries, in path order, starting after `after`."""
    repo = models.repo_of(req.query)
    commit_id = models.param(req.query, "commit", "")
    branch = req.query.get("branch", "")
    if commit_id:
        commit = pfs.Commit(id=models.commit_id(commit_id), repo=repo)
    elif branch:
        commit = pfs.Commit(branch=pfs.Branch(repo=repo, name=models.pach_name(branch, "branch")))
    else:
        raise ApiError(400, "missing query parameter 'commit' (or 'branch')")
    folder = models.browse_path(req.query.get("path", "/") or "/")
    after = req.query.get("after", "")
    if after:
        after = models.browse_path(after, "after")
    limit = models.number_param(req.query, "limit", 200, 1, MAX_PAGE)
    marker = pfs.File(commit=commit, path=after) if after else None
    stream = app.client().pfs.list_file(file=pfs.File(commit=commit, path=folder), pagination_marker=marker,
                                        number=limit + 1)
    entries = []
    try:
        for fi in stream:
            if after and fi.file.path.rstrip("/") <= after:
                continue  # servers that ignore the marker still list in path order
            entries.append(fi)
            if len(entries) > limit:
                break
    finally:
        _cancel(stream)
    page = entries[:limit]
    out = [{"path": fi.file.path, "name": fi.file.path.rstrip("/").rsplit("/", 1)[-1],
            "type": "dir" if fi.file_type == pfs.FileType.DIR else "file", "size_bytes": fi.size_bytes}
           for fi in page]
    more = len(entries) > limit
    return {"files": out, "next": page[-1].file.path.rstrip("/") if more and page else None}


def register(router) -> None:
    for path, handler, summary in (
            ("/repos", repos, "Projects and repos with size, description and access"),
            ("/branches", branches, "Branches of a repo (`project`, `repo`) with their head commit"),
            ("/commits", commits, "Commits of a branch (`project`, `repo`, `branch`), newest first, paged by "
                                  "`offset`/`limit`"),
            ("/files", files, "Entries of a folder (`path`) in a `commit` or at a `branch` head, paged by "
                              "`after`/`limit`")):
        router.add("GET", PREFIX + path, handler, summary=summary, requires="auth")
