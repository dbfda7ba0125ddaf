"""`/pachtray/v1/*`: what the tray app needs beyond the mount-server API.

Listings are paginated so the GUI never asks for 100,000 files at once; repo and branch
management is allowed on the embedded local server only (a shared cluster is not ours to
reshape from a tray menu); uploads read the paths the user dropped (same machine) and report
progress through a job id; `/events` is a long poll on the mount manager's generation counter,
so the GUI sees REST-initiated changes (JupyterLab) without polling RPCs.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import threading
import uuid
from dataclasses import dataclass, field, fields

import grpc

from pachtray import __version__, tokens
from pachtray.errors import ApiError
from pachtray.pfs.auth import AUTH_OFF, who_am_i
from pachtray.pfs.auth import authorization as authorization_of

PREFIX = "/pachtray/v1"
NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,63}$")
COMMIT_RE = re.compile(r"^[0-9a-f]{32}$")
MAX_PAGE = 1000
MAX_EVENT_WAIT = 60.0
BRANCH_DETAIL_LIMIT = 200
UPLOAD_CHUNK = 4 * 1024 * 1024
KEEP_FINISHED_UPLOADS = 50

# ---------------------------------------------------------------- parameters

def _name(value, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ApiError(400, f"missing {what} name")
    if not NAME_RE.match(value):
        raise ApiError(400, f"invalid {what} name {value!r}: use 1-63 letters, digits, '_' or '-'")
    return value


def _param(query: dict, key: str, default: str | None = None) -> str:
    value = query.get(key, default)
    if value is None:
        raise ApiError(400, f"missing query parameter {key!r}")
    return value


def _number_param(query: dict, key: str, default, low, high, kind=int):
    """An int (or, with kind=float, a number) query parameter within [low, high]; 400 otherwise."""
    raw = query.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        noun = "an integer" if kind is int else "a number"
        raise ApiError(400, f"query parameter {key!r} must be {noun}, got {raw!r}") from None
    if not low <= value <= high:
        show = (lambda v: f"{v:g}") if kind is float else str
        got = raw if kind is float else value
        raise ApiError(400, f"query parameter {key!r} must be between {show(low)} and {show(high)}, got {got}")
    return value


def _pfs_path(value, what: str = "path") -> str:
    if not isinstance(value, str) or not value.startswith("/"):
        raise ApiError(400, f"{what} must be an absolute path starting with '/', got {value!r}")
    parts = [p for p in value.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise ApiError(400, f"{what} must not contain '.' or '..' components: {value!r}")
    return "/" + "/".join(parts)


def _repo_of(data: dict):
    from pachyderm_sdk.api import pfs

    project = data.get("project", "default") or "default"
    return pfs.Repo(name=_name(data.get("repo"), "repo"), type="user",
                    project=pfs.Project(name=_name(project, "project")))


def _require_local(app) -> None:
    if not app.is_local:
        raise ApiError(403, "repos and branches can only be created or deleted on the embedded local server; "
                            "use pachctl or the console for a shared cluster")


def _time(value) -> str | None:
    if not isinstance(value, dt.datetime) or value.timestamp() <= 0:
        return None
    return value.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")


# ---------------------------------------------------------------- identity and feed

def info(req, app):
    """Who we are (the GUI tells a Pachtray daemon from a foreign mount-server by this route)."""
    out = {
        "pachtray": __version__,
        "pid": os.getpid(),
        "connection": app.connection_state(),
        "local": bool(app.is_local),
        "mount_dir": str(app.mount_dir),
        "token_storage": tokens.storage(app.settings.token_storage),
        "generation": -1,
        "mount_engine": "",
        "auth": AUTH_OFF,
        "user": "",
    }
    try:
        out["generation"] = app.manager.generation
    except ApiError as e:
        out["mount_engine"] = e.message  # still a Pachtray daemon, just without mounts
    if out["connection"] == "connected":
        try:
            out["auth"], out["user"] = who_am_i(app.client())
        except (grpc.RpcError, ApiError):
            out["connection"] = "disconnected"
    return out


def mounts(req, app):
    """Pachtray's view of the mounts (with recovered changes, pending counts and errors), without
    the repo listing GET /mounts makes (a ListRepo): the GUI polls this."""
    return {"mounted": app.manager.all_mounts()}


def events(req, app):
    """Answer as soon as the manager's generation differs from `since` (or at `timeout`)."""
    since = _number_param(req.query, "since", -1, -1, 2**62)
    timeout = _number_param(req.query, "timeout", 25.0, 0.0, MAX_EVENT_WAIT, float)
    if since < 0:
        return {"generation": app.manager.generation}
    return {"generation": app.manager.wait_change(since, timeout)}


# ---------------------------------------------------------------- listings

ACCESS_REASONS = {
    "none": "no access: ask the repo owner for the repoReader role",
    "read": "read-only: the repoWriter role is needed to write",
}


def repos(req, app):
    """All projects and repos in one ListRepo RPC; the GUI pages through them itself."""
    client = app.client()
    auth_on = app.auth_state() != AUTH_OFF
    projects = [{"name": p.project.name, "description": p.description}
                for p in client.pfs.list_project()]
    out = []
    for ri in client.pfs.list_repo(type="user"):
        authorization = authorization_of(ri, auth_on)
        size = ri.details.size_bytes if ri.details and ri.details.size_bytes else ri.size_bytes_upper_bound
        out.append({
            "project": ri.repo.project.name or "default",
            "repo": ri.repo.name,
            "description": ri.description,
            "size_bytes": size,
            "created": _time(ri.created),
            "branches": sorted(b.name for b in ri.branches),
            "authorization": authorization,
            "access_reason": ACCESS_REASONS.get(authorization, ""),
        })
    known = {p["name"] for p in projects}
    projects += [{"name": n, "description": ""} for n in sorted({r["project"] for r in out} - known)]
    out.sort(key=lambda r: (r["project"], r["repo"]))
    projects.sort(key=lambda p: p["name"])
    return {"projects": projects, "repos": out}


def branches(req, app):
    """Branches with their head commit's time (details for the first 200 branches)."""
    from pachyderm_sdk.api import pfs

    repo = _repo_of(req.query)
    client = app.client()
    infos = sorted(client.pfs.list_branch(repo=repo), key=lambda b: b.branch.name)
    out = []
    for i, bi in enumerate(infos):
        entry = {"name": bi.branch.name, "head": bi.head.id if bi.head else "", "started": None,
                 "finished": None, "description": ""}
        if i < BRANCH_DETAIL_LIMIT and entry["head"]:
            try:
                ci = client.pfs.inspect_commit(commit=pfs.Commit(id=entry["head"], repo=repo))
                entry.update(started=_time(ci.started), finished=_time(ci.finished), description=ci.description)
            except grpc.RpcError:
                pass  # the branch listing is still useful without one head's time
        out.append(entry)
    return {"branches": out}


def _commit_json(ci) -> dict:
    size = ci.details.size_bytes if ci.details and ci.details.size_bytes else ci.size_bytes_upper_bound
    return {
        "id": ci.commit.id,
        "branch": ci.commit.branch.name if ci.commit.branch else "",
        "started": _time(ci.started),
        "finished": _time(ci.finished),
        "description": ci.description,
        "size_bytes": size,
        "error": ci.error,
    }


def commits(req, app):
    """Commits reachable from a branch head, newest first."""
    from pachyderm_sdk.api import pfs

    repo = _repo_of(req.query)
    branch = _name(_param(req.query, "branch"), "branch")
    offset = _number_param(req.query, "offset", 0, 0, 10**9)
    limit = _number_param(req.query, "limit", 100, 1, MAX_PAGE)
    client = app.client()
    want = offset + limit + 1
    stream = client.pfs.list_commit(repo=repo, to=pfs.Commit(branch=pfs.Branch(repo=repo, name=branch)),
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
    from pachyderm_sdk.api import pfs

    repo = _repo_of(req.query)
    commit_id = _param(req.query, "commit", "")
    branch = req.query.get("branch", "")
    if commit_id:
        if not COMMIT_RE.match(commit_id):
            raise ApiError(400, f"invalid commit id {commit_id!r}: expected 32 hexadecimal characters")
        commit = pfs.Commit(id=commit_id, repo=repo)
    elif branch:
        commit = pfs.Commit(branch=pfs.Branch(repo=repo, name=_name(branch, "branch")))
    else:
        raise ApiError(400, "missing query parameter 'commit' (or 'branch')")
    folder = _pfs_path(req.query.get("path", "/") or "/")
    after = req.query.get("after", "")
    if after:
        after = _pfs_path(after, "after")
    limit = _number_param(req.query, "limit", 200, 1, MAX_PAGE)
    marker = pfs.File(commit=commit, path=after) if after else None
    stream = app.client().pfs.list_file(file=pfs.File(commit=commit, path=folder),
                  pagination_marker=marker, number=limit + 1)
    entries = []
    try:
        for fi in stream:
            path = fi.file.path
            if after and path.rstrip("/") <= after:
                continue  # servers that ignore the marker still list in path order
            entries.append(fi)
            if len(entries) > limit:
                break
    finally:
        _cancel(stream)
    page = entries[:limit]
    out = []
    for fi in page:
        path = fi.file.path
        is_dir = fi.file_type == pfs.FileType.DIR
        out.append({"path": path, "name": path.rstrip("/").rsplit("/", 1)[-1],
                    "type": "dir" if is_dir else "file", "size_bytes": fi.size_bytes})
    more = len(entries) > limit
    return {"files": out, "next": page[-1].file.path.rstrip("/") if more and page else None}


def _cancel(stream) -> None:
    """Stop a server stream we read enough of (a generator closes the call underneath)."""
    stop = getattr(stream, "cancel", None) or getattr(stream, "close", None)
    if callable(stop):
        stop()


# ---------------------------------------------------------------- local server management

def create_repo(req, app):
    _require_local(app)
    data = req.json_object()
    repo = _repo_of(data)
    description = data.get("description", "")
    if not isinstance(description, str):
        raise ApiError(400, "description must be a string")
    app.client().pfs.create_repo(repo=repo, description=description)
    return {"project": repo.project.name, "repo": repo.name}


def delete_repo(req, app):
    _require_local(app)
    data = req.json_object()
    repo = _repo_of(data)
    if any(m["repo"] == repo.name and m["project"] == repo.project.name for m in app.manager.all_mounts()):
        raise ApiError(400, f"repo {repo.project.name}/{repo.name} is mounted; unmount it first")
    app.client().pfs.delete_repo(repo=repo, force=bool(data.get("force", False)))
    return {"project": repo.project.name, "repo": repo.name}


def create_branch(req, app):
    """New branch at `head` (a commit id) or at another branch's head (`from`), or empty."""
    from pachyderm_sdk.api import pfs

    _require_local(app)
    data = req.json_object()
    repo = _repo_of(data)
    name = _name(data.get("branch"), "branch")
    head = None
    if data.get("head"):
        if not isinstance(data["head"], str) or not COMMIT_RE.match(data["head"]):
            raise ApiError(400, f"invalid head commit id {data['head']!r}: expected 32 hexadecimal characters")
        head = pfs.Commit(id=data["head"], repo=repo)
    elif data.get("from"):
        head = pfs.Commit(branch=pfs.Branch(repo=repo, name=_name(data["from"], "source branch")))
    client = app.client()
    if client.pfs.branch_exists(pfs.Branch(repo=repo, name=name)):
        raise ApiError(409, f"branch {name} already exists in {repo.project.name}/{repo.name}")
    client.pfs.create_branch(branch=pfs.Branch(repo=repo, name=name), head=head)
    return {"project": repo.project.name, "repo": repo.name, "branch": name}


def delete_branch(req, app):
    from pachyderm_sdk.api import pfs

    _require_local(app)
    data = req.json_object()
    repo = _repo_of(data)
    name = _name(data.get("branch"), "branch")
    if any(m["repo"] == repo.name and m["project"] == repo.project.name and m.get("branch") == name
           for m in app.manager.all_mounts()):
        raise ApiError(400, f"branch {name} of {repo.project.name}/{repo.name} is mounted; unmount it first")
    app.client().pfs.delete_branch(branch=pfs.Branch(repo=repo, name=name), force=bool(data.get("force", False)))
    return {"project": repo.project.name, "repo": repo.name, "branch": name}


# ---------------------------------------------------------------- uploads

@dataclass
class UploadJob:
    """Progress of one upload; read by GET /upload while a worker thread fills it in."""

    job: str
    project: str
    repo: str
    branch: str
    files_total: int
    bytes_total: int
    files_done: int = 0
    bytes_done: int = 0
    state: str = "running"
    commit: str = ""
    error: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def snapshot(self) -> dict:
        with self.lock:
            return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "lock"}


_uploads: dict[str, UploadJob] = {}
_uploads_lock = threading.Lock()


def _upload_plan(paths: list[str], dest: str) -> list[tuple[str, str, int]]:
    """(local file, pfs path, size) for every regular file under the dropped paths."""
    plan = []
    for raw in paths:
        local = os.path.abspath(raw)
        base = os.path.basename(local.rstrip(os.sep))
        if os.path.isfile(local):
            plan.append((local, f"{dest.rstrip('/')}/{base}", os.path.getsize(local)))
            continue
        for root, dirs, names in os.walk(local):
            dirs.sort()
            rel = os.path.relpath(root, local)
            prefix = f"{dest.rstrip('/')}/{base}" + ("" if rel == "." else "/" + rel.replace(os.sep, "/"))
            for n in sorted(names):
                full = os.path.join(root, n)
                if os.path.isfile(full):
                    plan.append((full, f"{prefix}/{n}", os.path.getsize(full)))
    return plan


def start_upload(req, app):
    from pachyderm_sdk.api import pfs

    data = req.json_object()
    repo = _repo_of(data)
    branch = _name(data.get("branch", "master") or "master", "branch")
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
    dest = _pfs_path(data.get("dest", "/") or "/", "dest")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise ApiError(400, "description must be a string")
    client = app.client()
    if not client.pfs.repo_exists(repo):
        raise ApiError(404, f"repo {repo.project.name}/{repo.name} not found")
    plan = _upload_plan(paths, dest)
    if not plan:
        raise ApiError(400, "nothing to upload: the dropped folders contain no files")
    job = UploadJob(job=uuid.uuid4().hex, project=repo.project.name, repo=repo.name, branch=branch,
                    files_total=len(plan), bytes_total=sum(size for _, _, size in plan))
    with _uploads_lock:
        finished = [k for k, j in _uploads.items() if j.state != "running"]
        for k in finished[:max(0, len(finished) - KEEP_FINISHED_UPLOADS)]:
            del _uploads[k]  # oldest first (dicts keep insertion order)
        _uploads[job.job] = job
    description = description or f"Uploaded {len(plan)} file(s) with Pachtray"
    threading.Thread(target=_run_upload, args=(client, pfs.Branch(repo=repo, name=branch), plan, description, job),
                     name=f"upload-{job.job[:8]}", daemon=True).start()
    return job.snapshot()


def _run_upload(client, branch, plan, description, job: UploadJob) -> None:
    """All files in one ModifyFile stream inside one commit; the commit is dropped on failure."""
    from pachyderm_sdk.api import pfs

    commit = None
    try:
        commit = client.pfs.start_commit(branch=branch, description=description)

        def operations():
            yield pfs.ModifyFileRequest(set_commit=commit)
            for local, path, _ in plan:
                yield pfs.ModifyFileRequest(delete_file=pfs.DeleteFile(path=path))
                yield pfs.ModifyFileRequest(add_file=pfs.AddFile(path=path, raw=b""))
                with open(local, "rb") as f:
                    while chunk := f.read(UPLOAD_CHUNK):
                        yield pfs.ModifyFileRequest(add_file=pfs.AddFile(path=path, raw=chunk))
                        with job.lock:
                            job.bytes_done += len(chunk)
                with job.lock:
                    job.files_done += 1

        client.pfs.modify_file(operations())
        client.pfs.finish_commit(commit=commit)
        with job.lock:
            job.state, job.commit = "done", commit.id
    except (grpc.RpcError, OSError) as e:
        message = e.details() if isinstance(e, grpc.RpcError) and hasattr(e, "details") else str(e)
        if commit is not None:
            try:
                client.pfs.drop_commit_set(commit_set=pfs.CommitSet(id=commit.id))
            except grpc.RpcError:
                try:
                    client.pfs.finish_commit(commit=commit, error=f"upload failed: {message}")
                except grpc.RpcError:
                    pass  # the job error below is what the user sees
        with job.lock:
            job.state, job.error = "error", f"upload failed: {message}"


def upload_status(req, app):
    job_id = _param(req.query, "job")
    with _uploads_lock:
        job = _uploads.get(job_id)
    if job is None:
        raise ApiError(404, f"no upload job {job_id!r}")
    return job.snapshot()


# ---------------------------------------------------------------- mounts and lifecycle

def refresh_mount(req, app):
    """Remount a read-only branch mount at the branch's current head (keeps its name)."""
    from pachtray.mount.manager import MountRequest

    data = req.json_object()
    name = data.get("mount")
    if not isinstance(name, str) or not name:
        raise ApiError(400, "missing mount name: expected {\"mount\": NAME}")
    state = next((m for m in app.manager.mounted() if m["name"] == name), None)
    if state is None:
        raise ApiError(404, f"{name} is not mounted")
    if state["mode"] != "ro" or not state.get("branch"):
        raise ApiError(400, f"{name} is not a read-only branch mount; nothing to refresh")
    request = MountRequest(name=name, project=state["project"], repo=state["repo"], branch=state["branch"],
                           paths=list(state.get("paths") or ["/"]), mode="ro")
    app.manager.unmount([name])
    app.manager.mount([request])
    app.manager.refresh([name])
    return {"mounted": app.manager.all_mounts()}


def shutdown(req, app):
    """Stop the daemon the same way SIGTERM does, right after answering."""
    threading.Timer(0.2, os.kill, args=(os.getpid(), signal.SIGTERM)).start()
    return {"stopping": True}


# ---------------------------------------------------------------- routes

def _body_schema(required: list[str], **props: str) -> dict:
    types = {"paths": {"type": "array", "items": {"type": "string"}}, "force": {"type": "boolean"}}
    return {"type": "object", "required": required,
            "properties": {k: types.get(k, {"type": "string", "description": v}) for k, v in props.items()}}


REPO_FIELDS = {"project": "project name (default: default)", "repo": "repo name"}
ROUTES = [
    ("GET", "/info", info, "", None, "Daemon identity, connection, user and change generation"),
    ("GET", "/mounts", mounts, "", None, "The mounts (as GET /mounts's `mounted`) without listing the repos"),
    ("GET", "/events", events, "", None,
     "Long poll (`since`, `timeout` s): answers when the mount generation differs from `since`"),
    ("GET", "/repos", repos, "auth", None, "Projects and repos with size, description and access"),
    ("GET", "/branches", branches, "auth", None, "Branches of a repo (`project`, `repo`) with their head commit"),
    ("GET", "/commits", commits, "auth", None,
     "Commits of a branch (`project`, `repo`, `branch`), newest first, paged by `offset`/`limit`"),
    ("GET", "/files", files, "auth", None,
     "Entries of a folder (`path`) in a `commit` or at a `branch` head, paged by `after`/`limit`"),
    ("PUT", "/_create_repo", create_repo, "auth",
     _body_schema(["repo"], **REPO_FIELDS, description="repo description"), "Create a repo (embedded local server only)"),
    ("PUT", "/_delete_repo", delete_repo, "auth", _body_schema(["repo"], **REPO_FIELDS, force="delete even if used"),
     "Delete a repo (embedded local server only)"),
    ("PUT", "/_create_branch", create_branch, "auth",
     _body_schema(["repo", "branch"], **REPO_FIELDS, branch="new branch", head="commit id to start at",
                  **{"from": "branch whose head to start at"}), "Create a branch (embedded local server only)"),
    ("PUT", "/_delete_branch", delete_branch, "auth", _body_schema(["repo", "branch"], **REPO_FIELDS, branch="branch"),
     "Delete a branch (embedded local server only)"),
    ("PUT", "/_upload", start_upload, "auth",
     _body_schema(["repo", "paths"], **REPO_FIELDS, branch="target branch (default master)",
                  paths="absolute local paths of files or folders", dest="folder in the repo (default /)",
                  description="commit description"),
     "Upload local files/folders to a branch as one commit; answers a job to poll"),
    ("GET", "/upload", upload_status, "", None, "Progress of an upload `job`"),
    ("PUT", "/_refresh", refresh_mount, "auth", _body_schema(["mount"], mount="mount name"),
     "Move a read-only branch mount to the branch's current head"),
    ("PUT", "/_shutdown", shutdown, "", _body_schema([]), "Stop the daemon cleanly (as SIGTERM does)"),
]


def register(router) -> None:
    """Add the GUI routes to the daemon's router (called by api.server)."""
    for method, path, handler, requires, body, summary in ROUTES:
        router.add(method, PREFIX + path, handler, summary=summary, body_schema=body, requires=requires)
