"""Make a lock (daemon side): the commits and files a process tree read, with Pachyderm's hashes."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor

from pachyderm_sdk.api import pfs

from pachtray import __version__
from pachtray.errors import ApiError
from pachtray.pfs import commits, errors, names
from pachtray.pfs.errors import RPC_ERRORS
from pachtray.mount.reads import Read
from pachtray.repro.lockfile import VERSION

INSPECT_THREADS = 8


def rpc_failure(e: BaseException, what: str) -> ApiError:
    """An RPC error as the answer of Pachtray's routes (503 when the cluster does not answer)."""
    return errors.to_api_error(e, what, reference=False)


def cluster_identity(app) -> dict:
    """{"id", "address"} of the cluster the daemon uses (locks are only valid there)."""
    client = app.client()
    try:
        cluster_id = client.admin.inspect_cluster().id
    except RPC_ERRORS as e:
        raise rpc_failure(e, "cannot ask the cluster for its id") from None
    return {"id": cluster_id, "address": app.address.url}


def inspect_files(app, commit: pfs.Commit, paths: list[str]) -> dict[str, pfs.FileInfo | None]:
    """path -> FileInfo (None when the commit has no such file), a few RPCs at a time."""
    client = app.client()

    def one(path: str):
        try:
            return path, client.pfs.inspect_file(file=pfs.File(commit=commit, path=path))
        except RPC_ERRORS as e:
            if errors.is_not_found(e):
                return path, None
            raise rpc_failure(e, f"cannot inspect {path} in commit {commit.id}") from None

    with ThreadPoolExecutor(max_workers=min(INSPECT_THREADS, max(1, len(paths)))) as pool:
        return dict(pool.map(one, paths))


def _require_finished(app, commit: pfs.Commit, where: str) -> None:
    """409 unless `commit` exists and is finished: an open commit's files can still change, so its
    hashes pin nothing."""
    try:
        info = app.client().pfs.inspect_commit(commit=commit)
    except RPC_ERRORS as e:
        if errors.is_not_found(e):
            raise ApiError(409, f"{where} no longer exists (the repo was deleted or the commit dropped): "
                                "nothing is left to pin") from None
        raise rpc_failure(e, f"cannot inspect {where}") from None
    if not commits.timestamp_set(info.finished):
        raise ApiError(409, f"{where} is not finished yet, so its files can still change: lock again once it is "
                            "finished (and the notebook has read the finished files)")


def build_lock(app, pid: int) -> dict:
    """{"lock": ..., "pid": pid, "warnings": [...]} for what process `pid` and its subprocesses read."""
    tracker = app.manager.reads
    found = tracker.reads(pid)
    if found is None:
        raise ApiError(404, f"no process {pid} is running")
    reads, truncated = found
    if not reads and not truncated:
        raise ApiError(404, f"process {pid} has not opened any file under {app.mount_dir} since the daemon "
                            "started (nor have its subprocesses)")
    by_mount: dict[str, dict[str, list[Read]]] = {}
    for r in reads:
        by_mount.setdefault(r.mount, {}).setdefault(r.commit, []).append(r)
    for name, commit in truncated:
        by_mount.setdefault(name, {}).setdefault(commit, [])
    for name, commits in by_mount.items():
        if len(commits) > 1:
            ids = ", ".join(sorted(c[:8] or "(none)" for c in commits))
            raise ApiError(409, f"process {pid} read mount {name!r} at {len(commits)} different commits ({ids}); "
                                "a lock pins one commit per mount: restart the kernel and run it again")
    cluster = cluster_identity(app)
    mounts, warnings = [], []
    for name in sorted(by_mount):
        (commit_id, mount_reads), = by_mount[name].items()
        entry = _mount_entry(app, pid, name, commit_id, mount_reads, warnings)
        if entry is not None:
            if (name, commit_id) in truncated:
                entry["files_complete"] = False
                warnings.append(f"mount {name!r}: more files were read than Pachtray keeps in memory; the lock "
                                f"pins the commit but lists only {len(entry['files'])} of the files")
            mounts.append(entry)
    if not mounts:
        raise ApiError(409, f"nothing to pin: process {pid} read only uncommitted local changes ({'; '.join(warnings)})")
    created = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    lock = {"version": VERSION, "cluster": cluster, "created": created, "pachtray": __version__, "mounts": mounts}
    return {"lock": lock, "pid": pid, "warnings": warnings}


def _mount_entry(app, pid: int, name: str, commit_id: str, reads: list[Read], warnings: list[str]) -> dict | None:
    modified = {r.path: r.size for r in reads if r.modified}
    if not commit_id:
        warnings.append(f"mount {name!r}: its branch had no commit yet, so the {len(modified)} files read there "
                        "were uncommitted local changes; commit them and lock again to pin them")
        return None
    info = app.manager.reads.mount_info(name, commit_id)
    if info is None:
        raise ApiError(500, f"process {pid} read mount {name!r} at commit {commit_id}, but the daemon no longer "
                            "knows which repo that was")
    if info.get("conflict"):
        raise ApiError(409, f"mount {name!r} showed commit {commit_id} of more than one repo while process {pid} "
                            "ran, so the lock cannot tell which one it read: restart the kernel and run it again")
    commit = names.commit(info["project"], info["repo"], commit_id)
    where = f"mount {name!r}: commit {commit_id} of {info['project']}/{info['repo']}"
    _require_finished(app, commit, where)
    committed = sorted({r.path for r in reads if not r.modified} - set(modified))
    read_size = {r.path: r.size for r in reads if not r.modified}
    infos = inspect_files(app, commit, committed)
    files = []
    for path in committed:
        fi = infos[path]
        if fi is None:
            raise ApiError(409, f"{where} has no file {path}, which was read from it")
        if read_size[path] >= 0 and fi.size_bytes != read_size[path]:
            raise ApiError(409, f"{where}: {path} was {read_size[path]} bytes when it was read and is "
                                f"{fi.size_bytes} bytes now (the commit was not finished then): the lock would pin "
                                "other bytes than the ones read; run the notebook again and lock then")
        files.append({"path": path, "size": fi.size_bytes, "hash": bytes(fi.hash).hex()})
    for path, size in modified.items():
        files.append({"path": path, "size": max(size, 0), "hash": None, "modified": True})
    files.sort(key=lambda f: f["path"])
    if modified:
        warnings.append(f"mount {name!r}: {len(modified)} file(s) were read with uncommitted local changes "
                        f"({', '.join(sorted(modified)[:3])}{', …' if len(modified) > 3 else ''}); the lock pins "
                        f"the commit they were based on, which does not have those changes")
    return {"name": name, "project": info["project"], "repo": info["repo"], "branch": info["branch"] or "",
            "commit": commit_id, "paths": list(info["paths"]), "files": files}
