"""Reviewing a rw mount's changes before a commit (Pachtray's routes): GET
/pachtray/v1/mounts/{name}/changes lists them (with what changed upstream meanwhile) and PUT
/pachtray/v1/mounts/{name}/_discard reverts single paths to the base. The commit's description
goes with PUT /_commit or /pachtray/v1/_commit (routes_mounts)."""

from __future__ import annotations

from pachtray.api import models
from pachtray.api.routes_mounts import PACHTRAY_MOUNTS_SCHEMA
from pachtray.api.routing import Router

PREFIX = "/pachtray/v1/mounts/{name}"

CHANGES_SCHEMA = {
    "type": "object", "required": ["changes", "upstream_checked"],
    "properties": {
        "changes": {"type": "array", "description": "files only (folders are implied), sorted by path",
                    "items": {"type": "object", "required": ["path", "change", "size", "upstream"], "properties": {
                        "path": {"type": "string"},
                        "change": {"type": "string", "enum": ["added", "modified", "deleted"]},
                        "size": {"type": ["integer", "null"], "description": "bytes of the new content; for a "
                                 "deleted file the base's size; null when it cannot be told (a link to nothing)"},
                        "upstream": {"type": "boolean", "description": "the branch changed this path since the "
                                     "changes' base commit: committing overwrites that version"}}}},
        "upstream_checked": {"type": "boolean", "description": "false when the cluster could not be asked "
                             "(then every `upstream` is false)"},
        "review": {"type": "string", "description": "give it to PUT /pachtray/v1/_commit as `review`: the commit "
                   "then sends exactly these changes, or answers 409 if the mount changed since"}},
}
PATHS_BODY = {"type": "object", "required": ["paths"],
              "properties": {"paths": {"type": "array", "items": {"type": "string"}, "minItems": 1,
                                       "description": "paths in the mount (as GET changes lists them)"}}}


def changes(req, app):
    return app.manager.changes(models.mount_name(req.params.get("name"), "mount"))


def discard_paths(req, app):
    name = models.mount_name(req.params.get("name"), "mount")
    app.manager.discard_paths(name, models.paths_field(req.json_object(), "paths"))
    return {"mounted": app.manager.all_mounts()}


def register(router: Router) -> None:
    router.add("GET", PREFIX + "/changes", changes, "The changes a commit of a rw mount (or of recovered changes) "
               "would make: 404 unknown mount, 400 read-only mount", response_schema=CHANGES_SCHEMA)
    router.add("PUT", PREFIX + "/_discard", discard_paths, "Revert single paths of a rw mount (or of recovered "
               "changes) to the base: a changed file shows the base's again, a deleted one comes back, an added "
               "one goes (works without a cluster)", body_schema=PATHS_BODY, response_schema=PACHTRAY_MOUNTS_SCHEMA)
