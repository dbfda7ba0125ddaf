"""Repos and mounts: GET /repos /projects /mounts, PUT /_mount /_unmount /_commit /_unmount_all
(answering exactly the reference's shapes), and Pachtray's PUT /pachtray/v1/_commit and
/pachtray/v1/_discard (which also reach rw changes recovered from an earlier run)."""

from __future__ import annotations

import logging

from pachtray.api import models
from pachtray.pfs.gojson import go_json
from pachtray.api.routing import Router
from pachtray.errors import ApiError
from pachtray.mount.state import MOUNT_STATE_FIELDS
from pachtray.pfs import errors
from pachtray.pfs.auth import AUTH_OFF
from pachtray.pfs import repos as pfs_repos

log = logging.getLogger(__name__)

REPO_SCHEMA = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "project": {"type": "string"},
        "repo": {"type": "string"},
        "branches": {"type": ["array", "null"], "items": {"type": "string"},
                     "description": "null when the repo has no branches or you may not read it (as the reference)"},
        "authorization": {"type": "string", "enum": ["off", "none", "read", "write"]},
    },
}
_FIELD_TYPES = {"paths": {"type": "array", "items": {"type": "string"}}, "how_many_commits_behind": {"type": "integer"}}
MOUNT_STATE_SCHEMA = {
    "type": "object", "additionalProperties": False, "required": list(MOUNT_STATE_FIELDS),
    "properties": {k: _FIELD_TYPES.get(k, {"type": "string"}) for k in MOUNT_STATE_FIELDS},
}
MOUNTS_SCHEMA = {
    "type": "object",
    "properties": {"mounted": {"type": "array", "items": MOUNT_STATE_SCHEMA},
                   "unmounted": {"type": "array", "items": REPO_SCHEMA}},
}
PACHTRAY_MOUNT_SCHEMA = {
    "type": "object", "required": [*MOUNT_STATE_FIELDS, "pending_changes", "error", "pinned"],
    "properties": MOUNT_STATE_SCHEMA["properties"] | {
        "state": {"type": "string", "description": "the reference's states, and `pending`: rw changes kept "
                                                   "outside the mount dir (an earlier run's, or a repo deleted "
                                                   "upstream) to commit or discard"},
        "pending_changes": {"type": "integer", "description": "staged, uncommitted changes of a rw mount"},
        "error": {"type": "string", "description": "why the last commit failed or why changes were kept; "
                                                   "empty when nothing is wrong"},
        "pinned": {"type": "boolean", "description": "shows one commit (mounted by commit, or a lock was reproduced "
                                                     "on it): never moved to its branch's head"},
        "mountpoint": {"type": "string", "description": "the mount's folder (the reference's field is always "
                                                        "empty)"}},
}
PACHTRAY_MOUNTS_SCHEMA = {"type": "object",
                          "properties": {"mounted": {"type": "array", "items": PACHTRAY_MOUNT_SCHEMA}}}
MOUNT_BODY = {
    "type": "object", "required": ["mounts"],
    "properties": {"mounts": {"type": "array", "items": {
        "type": "object", "required": ["name", "repo"],
        "properties": {"name": {"type": "string"}, "project": {"type": "string", "default": "default"},
                       "repo": {"type": "string"}, "branch": {"type": "string"},
                       "commit": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
                       "paths": {"type": "array", "items": {"type": "string"}, "default": ["/"]},
                       "mode": {"type": "string", "enum": ["ro", "rw"], "default": "ro"}}}}},
}
NAMES_BODY = {"type": "object", "required": ["mounts"],
              "properties": {"mounts": {"type": "array", "items": {"type": "string"}}}}
ONE_MOUNT_BODY = {"type": "object", "required": ["mount"], "properties": {"mount": {"type": "string"}}}
COMMIT_BODY = {"type": "object", "required": ["mount"], "properties": {
    "mount": {"type": "string"},
    "description": {"type": "string", "description": "Pachtray: the commit's description (absent: none, as the "
                                                     "reference's commits)"}}}
PACHTRAY_COMMIT_BODY = {**COMMIT_BODY, "properties": {**COMMIT_BODY["properties"], "review": {
    "type": "string", "description": "the `review` token of GET /pachtray/v1/mounts/NAME/changes: 409 and no "
                                     "commit if the changes are no longer those"}}}


def repo_entries(app) -> list[dict]:
    """Every repo with its branches and the caller's access, in ONE ListRepo call (pfs.repos)."""
    auth_on = app.auth_state() != AUTH_OFF
    # The reference's nil slice: null, not [], when there is nothing to list (or no read access).
    return [{"project": r.project, "repo": r.repo,
             "branches": (list(r.branches) or None) if r.access != "none" else None, "authorization": r.access}
            for r in pfs_repos.list_repos(app.client(), auth_on)]


def mounts_listing(app) -> dict:
    """GET /mounts: the mounts after the reference's refresh (which drops those deleted upstream),
    plus every repo as `unmounted` (as the reference lists them).

    When the cluster is unreachable the mounts are still listed (they are local state), with no repos.
    """
    answered = app.manager.refresh()
    mounted = app.manager.mounted()
    try:
        if not answered:  # no second deadline for the repos (the health checks may not know yet)
            raise ApiError(404, "the cluster does not answer")
        repos = repo_entries(app)
    except ApiError as e:
        if e.status != 404:
            raise
        repos = []  # not connected (only reachable from the Pachtray routes that do not need a cluster)
    except errors.RPC_ERRORS as e:
        if not errors.is_unreachable(e):
            raise
        log.info("listing mounts without repos: the cluster is unreachable (%s)", errors.details(e))
        repos = []
    return {"mounted": mounted, "unmounted": repos}


def list_repos(req, app):
    return repo_entries(app)


def list_projects(req, app):
    """ProjectInfo as the reference's encoding/json writes it (e.g. created_at as {seconds, nanos})."""
    return [go_json(p) for p in app.client().pfs.list_project()]


def list_mounts(req, app):
    return mounts_listing(app)


def mount(req, app):
    app.manager.mount(models.mount_requests(req))
    return mounts_listing(app)


def unmount(req, app):
    app.manager.unmount(models.unmount_names(req))
    return mounts_listing(app)


def commit(req, app):
    """As the reference: a read-only mount has nothing to commit (200, nothing done)."""
    app.manager.commit(models.single_mount(req), description=models.commit_description(req), read_only_ok=True)
    return mounts_listing(app)


def unmount_all(req, app):
    if req.body.strip():  # the reference reads no body; one that is there must at least be JSON
        req.json()
    app.manager.unmount_all()
    return mounts_listing(app)


def pachtray_commit(req, app):
    """Like /_commit, and also for changes recovered from an earlier run; answers Pachtray's view."""
    body = req.json_object()
    review = body.get("review")
    if review is not None and not isinstance(review, str):
        raise ApiError(400, "review must be the `review` token of the mount's changes")
    app.manager.commit(models.single_mount(req), recovered=True, description=models.commit_description(req),
                       review=review)
    return {"mounted": app.manager.all_mounts()}


def discard(req, app):
    if "paths" in req.json_object():  # every change would go, where the caller meant some
        raise ApiError(400, 'this route discards every change of a mount; discard single paths with PUT '
                            '/pachtray/v1/mounts/<name>/_discard {"paths": [...]}')
    app.manager.discard(models.single_mount(req))
    return {"mounted": app.manager.all_mounts()}


def pachtray_mounts(req, app):
    """Pachtray's view of the mounts (with recovered changes, pending counts and errors), as the
    daemon last refreshed them: no RPC, no repo listing (the GUI polls this)."""
    return {"mounted": app.manager.all_mounts()}


def refresh_mount(req, app):
    """Remount a read-only branch mount at the branch's current head (keeps its name)."""
    data = req.json_object()
    name = data.get("mount")
    if not isinstance(name, str) or not name:
        raise ApiError(400, "missing mount name: expected {\"mount\": NAME}")
    app.manager.update_to_head(name)
    return {"mounted": app.manager.all_mounts()}


def register(router: Router) -> None:
    router.add("GET", "/repos", list_repos, "Every repo with its branches and your access level (one ListRepo call)",
               response_schema={"type": "array", "items": REPO_SCHEMA}, requires="auth")
    router.add("GET", "/projects", list_projects, "Every project (ProjectInfo as JSON)",
               response_schema={"type": "array", "items": {"type": "object"}}, requires="auth")
    router.add("GET", "/mounts", list_mounts, "Mounted folders and every repo (as `unmounted`)",
               response_schema=MOUNTS_SCHEMA, requires="auth")
    router.add("PUT", "/_mount", mount, "Mount repos (ro: branch or commit, optionally a subset of paths; rw: branch)",
               body_schema=MOUNT_BODY, response_schema=MOUNTS_SCHEMA, requires="auth")
    router.add("PUT", "/_unmount", unmount, "Unmount by name (rw mounts commit their pending changes first)",
               body_schema=NAMES_BODY, response_schema=MOUNTS_SCHEMA, requires="auth")
    router.add("PUT", "/_commit", commit, "Commit every change of a rw mount since its last commit, as one commit",
               body_schema=COMMIT_BODY, response_schema=MOUNTS_SCHEMA, requires="auth")
    router.add("PUT", "/_unmount_all", unmount_all, "Unmount everything (and leave datum mode)",
               body_schema={"type": "object"}, response_schema=MOUNTS_SCHEMA, requires="auth")
    router.add("PUT", "/pachtray/v1/_commit", pachtray_commit, "Commit the staged changes of a rw mount, or "
               "changes recovered from an earlier run (state `pending`), as one commit",
               body_schema=PACHTRAY_COMMIT_BODY, response_schema=PACHTRAY_MOUNTS_SCHEMA, requires="auth")
    router.add("GET", "/pachtray/v1/mounts", pachtray_mounts,
               "The mounts (as GET /mounts's `mounted`, with recovered changes) without listing the repos",
               response_schema=PACHTRAY_MOUNTS_SCHEMA)
    router.add("PUT", "/pachtray/v1/_refresh", refresh_mount, "Move a read-only branch mount to the branch's "
               "current head", body_schema=ONE_MOUNT_BODY, response_schema=PACHTRAY_MOUNTS_SCHEMA, requires="auth")
    router.add("PUT", "/pachtray/v1/_discard", discard, "Drop the staged (uncommitted) changes of a rw mount, or "
               "changes recovered from an earlier run (works without a cluster: the changes are local)",
               body_schema=ONE_MOUNT_BODY, response_schema=PACHTRAY_MOUNTS_SCHEMA)
