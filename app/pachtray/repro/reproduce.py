"""Mount a lock again (daemon side): each pinned commit read-only under its mount name, checked first.

Everything is checked before anything is mounted (the cluster, each commit, each name, each
pinned file's size and hash), so a failure mounts nothing and a name in use is never unmounted:
the caller gets a conflict that suggests another name.
"""

from __future__ import annotations

from dataclasses import dataclass

from pachyderm_sdk.api import pfs

from pachtray.errors import ApiError
from pachtray.mount.state import MountRequest
from pachtray.pfs import errors, names
from pachtray.pfs.errors import RPC_ERRORS
from pachtray.repro import lockfile
from pachtray.repro.pinning import cluster_identity, inspect_files, rpc_failure


@dataclass
class _Planned:
    entry: dict  # the lock's mount
    name: str  # the name it gets here (renamed or not)
    branch: str  # "" when the lock's branch is gone (then nobody can say how far behind it is)
    reuse: bool = False  # already mounted exactly so


def reproduce(app, lock, rename: dict | None = None, check: bool = False) -> dict:
    """Mount the lock's commits (or, with `check`, only say what would happen and which names clash).

    Answers {"mounts": [...], "conflicts": [...], "verified_files": n, "warnings": [...]}.
    """
    try:
        lock = lockfile.validate(lock)
    except lockfile.LockFormatError as e:
        raise ApiError(400, str(e)) from None
    rename = _check_rename(lock, {} if rename is None else rename)
    here = cluster_identity(app)
    there = lock["cluster"]
    if there["id"] and here["id"] != there["id"]:
        raise ApiError(409, f"this lock was made on another cluster ({there['address'] or 'unknown address'}, id "
                            f"{there['id']}); the daemon is connected to {here['address']} (id {here['id']}): "
                            "connect Pachtray to that cluster first")
    # Recovered changes (state "pending") hold their name too, though they are not in the mount dir.
    states = {m["name"]: m for m in app.manager.all_mounts()}
    plan, conflicts = [], []
    taken = set(states) | {rename.get(m["name"], m["name"]) for m in lock["mounts"]}
    for entry in lock["mounts"]:
        p = _Planned(entry, rename.get(entry["name"], entry["name"]), _existing_branch(app, entry))
        state = states.get(p.name)
        if state is not None:
            if _same(state, entry):
                p.reuse = True
            else:
                suggestion = _free_name(names.fit_name(entry["name"], f"_{entry['commit'][:8]}"), taken)
                taken.add(suggestion)
                conflicts.append({"name": entry["name"], "taken": p.name, "suggestion": suggestion,
                                  "by": _source(state)})
        plan.append(p)
    verified, warnings = _verify(app, plan)
    if not there["id"]:
        warnings.append("the lock names no cluster id, so it was not checked that it was made on this cluster")
    if conflicts and not check:
        c = conflicts[0]
        raise ApiError(409, f"mount name {c['taken']!r} is already used by {c['by']}; reproduce it under another "
                            f"name (e.g. --rename {c['name']}={c['suggestion']}) or unmount {c['taken']!r} first")
    if not check:
        _mount(app, [p for p in plan if not p.reuse])
        for p in plan:
            if p.reuse:  # a branch's mount at the lock's commit: it stays there now
                app.manager.pin(p.name)
    if not check:
        app.manager.refresh([p.name for p in plan])
        in_dir = {m["name"] for m in app.manager.mounted()}  # (recovered changes share names, not the mount dir)
        states = {m["name"]: m for m in app.manager.all_mounts() if m["name"] in in_dir}
    mounts = [_result(p, states.get(p.name) if p.reuse or not check else None, check) for p in plan]
    return {"mounts": mounts, "conflicts": conflicts, "verified_files": verified, "warnings": warnings}


def _check_rename(lock: dict, rename) -> dict[str, str]:
    if not isinstance(rename, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in rename.items()):
        raise ApiError(400, "rename must be an object of old mount name -> new mount name")
    locked = [m["name"] for m in lock["mounts"]]
    for old, new in rename.items():
        if old not in locked:
            raise ApiError(400, f"cannot rename {old!r}: the lock has no mount of that name "
                                f"(it has {', '.join(map(repr, locked))})")
        if (problem := names.mount_name_problem(new)) is not None:
            raise ApiError(400, f"invalid mount name {names.quoted(new)}: {problem}")
    finals = [rename.get(n, n) for n in locked]
    dupes = sorted({n for n in finals if finals.count(n) > 1})
    if dupes:
        raise ApiError(400, f"two mounts of the lock would both be called {dupes[0]!r}")
    return dict(rename)


def _existing_branch(app, entry: dict) -> str:
    """The lock's branch if it still exists; checks that the pinned commit does (404 otherwise)."""
    client = app.client()
    where = f"mount {entry['name']!r} ({entry['project']}/{entry['repo']}@{entry['commit']})"
    try:
        client.pfs.inspect_commit(commit=names.commit(entry["project"], entry["repo"], entry["commit"]))
    except RPC_ERRORS as e:
        if errors.is_not_found(e):
            raise ApiError(404, f"{where}: the pinned commit no longer exists on {app.address.url} "
                                f"({errors.details(e)}); the data this lock pins is gone") from None
        raise rpc_failure(e, where) from None
    if not entry["branch"]:
        return ""
    branch = pfs.Branch(repo=names.commit(entry["project"], entry["repo"], "").repo, name=entry["branch"])
    try:
        client.pfs.inspect_branch(branch=branch)
    except RPC_ERRORS as e:
        if errors.is_not_found(e):
            return ""
        raise rpc_failure(e, where) from None
    return entry["branch"]


def _same(state: dict, entry: dict) -> bool:
    return (state.get("mode") == "ro" and state.get("commit") == entry["commit"] and state.get("repo") == entry["repo"]
            and (state.get("project") or "default") == entry["project"]
            and sorted(state.get("paths") or ["/"]) == sorted(entry["paths"]) and state.get("state") == "mounted")


def _source(state: dict) -> str:
    ref = state.get("branch") or state.get("commit") or ""
    return f"{state.get('project') or 'default'}/{state.get('repo')}@{ref} ({state.get('mode')})"


def _free_name(base: str, taken: set[str]) -> str:
    name, n = base, 2
    while name in taken:
        name, n = names.fit_name(base, f"_{n}"), n + 1
    return name


def _verify(app, plan: list[_Planned]) -> tuple[int, list[str]]:
    """Every pinned file is in its commit with the lock's size and hash (409 naming the first that is not)."""
    verified, warnings = 0, []
    for p in plan:
        e = p.entry
        pinned = [f for f in e["files"] if not f.get("modified")]
        infos = inspect_files(app, names.commit(e["project"], e["repo"], e["commit"]), [f["path"] for f in pinned])
        for f in pinned:
            fi = infos[f["path"]]
            where = f"mount {e['name']!r}: {f['path']} in commit {e['commit']}"
            if fi is None:
                raise ApiError(409, f"{where} does not exist: this lock does not describe that commit")
            got = (fi.size_bytes, bytes(fi.hash).hex())
            if got != (f["size"], f["hash"]):
                raise ApiError(409, f"{where} has size {got[0]} and hash {got[1] or '(none)'}, the lock says size "
                                    f"{f['size']} and hash {f['hash'] or '(none)'}: this lock does not describe "
                                    "that commit")
            verified += 1
        changed = len(e["files"]) - len(pinned)
        if changed:
            warnings.append(f"mount {e['name']!r}: {changed} file(s) had uncommitted local changes when the lock was "
                            "made; the pinned commit has them as they were before those changes")
        if e["branch"] and not p.branch:
            warnings.append(f"mount {e['name']!r}: branch {e['branch']} no longer exists, so how far the commit is "
                            "behind cannot be shown")
        if e.get("files_complete") is False:
            warnings.append(f"mount {e['name']!r}: the lock lists only some of the files that were read")
    return verified, warnings


def _mount(app, plan: list[_Planned]) -> None:
    """Mount all or none: if one fails, the ones mounted here are unmounted again (never anything else)."""
    if not plan:
        return
    requests = [MountRequest(name=p.name, project=p.entry["project"], repo=p.entry["repo"], branch=p.branch or None,
                             commit=p.entry["commit"], paths=list(p.entry["paths"]), mode="ro") for p in plan]
    before = {m["name"] for m in app.manager.mounted()}
    try:
        app.manager.mount(requests)
    except ApiError:
        added = [r.name for r in requests if r.name not in before and
                 any(m["name"] == r.name for m in app.manager.mounted())]
        if added:
            app.manager.unmount(added)
        raise


def _result(p: _Planned, state: dict | None, check: bool) -> dict:
    e = p.entry
    out = {"name": p.name, "locked_name": e["name"], "project": e["project"], "repo": e["repo"], "branch": p.branch,
           "commit": e["commit"], "paths": list(e["paths"]), "reused": p.reuse, "mounted": not check or p.reuse}
    state = state or {}
    out.update(mountpoint=state.get("mountpoint", ""), latest_commit=state.get("latest_commit", ""),
               how_many_commits_behind=state.get("how_many_commits_behind", 0), status=state.get("status", ""))
    return out
