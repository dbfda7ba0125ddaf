"""`/pachtray/v1` uploads: local files and folders (dropped on a branch in the window, same
machine) committed to a branch as one commit; the daemon's job service (pachtray.uploads) runs
them, these routes start, follow and cancel them."""

from __future__ import annotations

import os

from pachyderm_sdk.api import pfs

from pachtray import uploads
from pachtray.api import models
from pachtray.api.routes_local import REPO_FIELDS, body_schema
from pachtray.errors import ApiError
from pachtray.pfs import names
from pachtray.pfs.paths import path_reason

PREFIX = "/pachtray/v1"


def start_upload(req, app):
    data = req.json_object()
    repo = models.repo_of(data)
    branch = models.pach_name(data.get("branch", "master") or "master", "branch")
    paths = data.get("paths")
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) and p for p in paths):
        raise ApiError(400, "paths must be a non-empty list of local file or folder paths")
    for p in paths:
        if not os.path.isabs(p):
            raise ApiError(400, f"upload path must be absolute: {p!r}")
        if not os.path.exists(p):
            raise ApiError(400, f"upload path does not exist: {p}")
        if not os.access(p, os.R_OK):
            raise ApiError(400, f"upload path is not readable: {p}")
    dest = models.browse_path(data.get("dest", "/") or "/", "dest")
    description = models.text_field(data, "description")
    client = app.client()
    if not client.pfs.repo_exists(repo):
        raise ApiError(404, f"repo {repo.project.name}/{repo.name} not found")
    files = uploads.plan(paths, dest)
    if not files:
        raise ApiError(400, "nothing to upload: the dropped folders contain no files")
    refused = [(local, reason) for local, path, _ in files if (reason := path_reason(path)) is not None]
    if refused:  # (pachd would refuse them at the end of the upload, and nothing would be committed)
        local, reason = refused[0]
        raise ApiError(400, f"{len(refused)} of {len(files)} file(s) cannot be stored in PFS, e.g. "
                            f"{names.quoted(local, 200)}: {reason}; rename them or leave them out")
    description = description or f"Uploaded {len(files)} file(s) with Pachtray"
    return app.uploads.start(client, pfs.Branch(repo=repo, name=branch), files, description).snapshot()


def _job(app, job_id: str) -> uploads.UploadJob:
    job = app.uploads.get(job_id)
    if job is None:
        raise ApiError(404, f"no upload job {job_id!r}")
    return job


def upload_status(req, app):
    return _job(app, models.param(req.query, "job")).snapshot()


def cancel_upload(req, app):
    """Stop a running upload: it ends `cancelled` and the branch stays as it was."""
    data = req.json_object()
    job_id = data.get("job")
    if not isinstance(job_id, str) or not job_id:
        raise ApiError(400, "missing upload job: expected {\"job\": JOB}")
    app.uploads.cancel(_job(app, job_id).job)
    return _job(app, job_id).snapshot()


def register(router) -> None:
    router.add("PUT", PREFIX + "/_upload", start_upload,
               "Upload local files/folders to a branch as one commit; answers a job to poll",
               body_schema=body_schema(["repo", "paths"], **REPO_FIELDS, branch="target branch (default master)",
                                       paths="absolute local paths of files or folders",
                                       dest="folder in the repo (default /)", description="commit description"),
               requires="auth")
    router.add("GET", PREFIX + "/upload", upload_status, "Progress of an upload `job`")
    router.add("PUT", PREFIX + "/_cancel_upload", cancel_upload,
               "Cancel a running upload `job` (the branch stays as it was)", body_schema=body_schema(["job"], job="job id"))
