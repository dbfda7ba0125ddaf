"""`/pachtray/v1` management of the embedded local server: create and delete repos and branches.
Only there: a shared cluster is not ours to reshape from a tray menu (use pachctl or the console)."""

from __future__ import annotations

from pachyderm_sdk.api import pfs

from pachtray.api import models
from pachtray.errors import ApiError

PREFIX = "/pachtray/v1"


def _require_local(app) -> None:
    if not app.is_local:
        raise ApiError(403, "repos and branches can only be created or deleted on the embedded local server; "
                            "use pachctl or the console for a shared cluster")


def _mounted(app, repo: pfs.Repo, branch: str | None = None) -> bool:
    return any(m["repo"] == repo.name and m["project"] == repo.project.name and (branch is None or m["branch"] == branch)
               for m in app.manager.all_mounts())


def create_repo(req, app):
    _require_local(app)
    data = req.json_object()
    repo = models.repo_of(data)
    app.client().pfs.create_repo(repo=repo, description=models.text_field(data, "description"))
    return {"project": repo.project.name, "repo": repo.name}


def _check_only(data: dict) -> bool:
    """`"check": true`: answer whether the deletion would be refused (the GUI asks before it asks the
    user to confirm), deleting nothing."""
    check = data.get("check", False)
    if not isinstance(check, bool):
        raise ApiError(400, f"check must be true or false, got {check!r}")
    return check


def delete_repo(req, app):
    _require_local(app)
    data = req.json_object()
    repo = models.repo_of(data)
    if _mounted(app, repo):
        raise ApiError(400, f"repo {repo.project.name}/{repo.name} is mounted; unmount it first")
    if _check_only(data):
        app.client().pfs.inspect_repo(repo=repo)  # (not found: 404)
    else:
        app.client().pfs.delete_repo(repo=repo, force=bool(data.get("force", False)))
    return {"project": repo.project.name, "repo": repo.name}


def create_branch(req, app):
    """New branch at `head` (a commit id) or at another branch's head (`from`), or empty."""
    _require_local(app)
    data = req.json_object()
    repo = models.repo_of(data)
    name = models.pach_name(data.get("branch"), "branch")
    head = None
    if data.get("head"):
        head = pfs.Commit(id=models.commit_id(data["head"], "head commit id"), repo=repo)
    elif data.get("from"):
        head = pfs.Commit(branch=pfs.Branch(repo=repo, name=models.pach_name(data["from"], "source branch")))
    client = app.client()
    if client.pfs.branch_exists(pfs.Branch(repo=repo, name=name)):
        raise ApiError(409, f"branch {name} already exists in {repo.project.name}/{repo.name}")
    client.pfs.create_branch(branch=pfs.Branch(repo=repo, name=name), head=head)
    return {"project": repo.project.name, "repo": repo.name, "branch": name}


def delete_branch(req, app):
    _require_local(app)
    data = req.json_object()
    repo = models.repo_of(data)
    name = models.pach_name(data.get("branch"), "branch")
    if _mounted(app, repo, name):
        raise ApiError(400, f"branch {name} of {repo.project.name}/{repo.name} is mounted; unmount it first")
    if _check_only(data):
        app.client().pfs.inspect_branch(branch=pfs.Branch(repo=repo, name=name))  # (not found: 404)
    else:
        app.client().pfs.delete_branch(branch=pfs.Branch(repo=repo, name=name), force=bool(data.get("force", False)))
    return {"project": repo.project.name, "repo": repo.name, "branch": name}


def body_schema(required: list[str], **props: str) -> dict:
    types = {"paths": {"type": "array", "items": {"type": "string"}}, "force": {"type": "boolean"},
             "check": {"type": "boolean", "description": "only say whether it would be refused; delete nothing"}}
    return {"type": "object", "required": required,
            "properties": {k: types.get(k, {"type": "string", "description": v}) for k, v in props.items()}}


REPO_FIELDS = {"project": "project name (default: default)", "repo": "repo name"}


def register(router) -> None:
    router.add("PUT", PREFIX + "/_create_repo", create_repo, "Create a repo (embedded local server only)",
               body_schema=body_schema(["repo"], **REPO_FIELDS, description="repo description"), requires="auth")
    router.add("PUT", PREFIX + "/_delete_repo", delete_repo, "Delete a repo (embedded local server only)",
               body_schema=body_schema(["repo"], **REPO_FIELDS, force="delete even if used", check=""), requires="auth")
    router.add("PUT", PREFIX + "/_create_branch", create_branch, "Create a branch (embedded local server only)",
               body_schema=body_schema(["repo", "branch"], **REPO_FIELDS, branch="new branch",
                                       head="commit id to start at", **{"from": "branch whose head to start at"}),
               requires="auth")
    router.add("PUT", PREFIX + "/_delete_branch", delete_branch, "Delete a branch (embedded local server only)",
               body_schema=body_schema(["repo", "branch"], **REPO_FIELDS, branch="branch", check=""),
               requires="auth")
