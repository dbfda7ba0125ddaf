"""Request bodies -> typed values, or ApiError(400) saying exactly what is wrong.

Shapes and syntax are checked here; whether a repo, branch or commit exists is the manager's job.
Unknown fields are ignored (as the reference's JSON decoder does) and `null` means "not given".
"""

from __future__ import annotations

import re
from typing import Any

from pachtray.api.routing import Request
from pachtray.errors import ApiError

NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")  # Pachyderm's rule for project, repo and branch names
COMMIT_RE = re.compile(r"^[0-9a-fA-F]{32}$")
MODES = ("ro", "rw")


def _optional_str(obj: dict, key: str, where: str) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ApiError(400, f"{where}: {key!r} must be a string, got {type(value).__name__}")
    return value


def mount_name(value: Any, where: str = "mount") -> str:
    """A mount name is a single folder name in the mount dir."""
    if not isinstance(value, str) or not value:
        raise ApiError(400, f"{where}: no name specified")
    if value in (".", "..") or "/" in value or "\\" in value or "\0" in value:
        raise ApiError(400, f"{where}: invalid name {value!r}: a mount name must not contain '/' or be '.' or '..'")
    if len(value.encode()) > 255:
        raise ApiError(400, f"{where}: name is longer than 255 bytes")
    return value


def _pach_name(value: str, what: str, where: str) -> str:
    if not NAME_RE.match(value):
        raise ApiError(400, f"{where}: invalid {what} name {value!r}: only letters, digits, '_' and '-' are allowed")
    return value


def pfs_path(value: Any, where: str) -> str:
    """A path inside a repo: absolute, normalized, no '..'."""
    if not isinstance(value, str) or not value:
        raise ApiError(400, f"{where}: paths must be non-empty strings")
    if "\0" in value:
        raise ApiError(400, f"{where}: path {value!r} contains a NUL byte")
    parts = [p for p in value.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ApiError(400, f"{where}: path {value!r} must not contain '..'")
    return "/" + "/".join(parts)


def mount_requests(req: Request) -> list:
    """PUT /_mount: {"mounts": [{name, repo, project?, branch?, commit?, paths?, mode?}, ...]}."""
    from pachtray.mount.manager import MountRequest

    body = req.json_object()
    mounts = body.get("mounts")
    if not isinstance(mounts, list):
        raise ApiError(400, 'expected {"mounts": [{"name": ..., "repo": ..., ...}]}: "mounts" must be a list')
    out = []
    seen: set[str] = set()
    for i, m in enumerate(mounts):
        where = f"mounts[{i}]"
        if not isinstance(m, dict):
            raise ApiError(400, f"{where}: must be an object")
        name = mount_name(m.get("name"), where)
        if name in seen:
            raise ApiError(400, f"{where}: name {name!r} appears twice in the request")
        seen.add(name)
        repo = _optional_str(m, "repo", where)
        if not repo:
            raise ApiError(400, f"{where}: no repo specified")
        _pach_name(repo, "repo", where)
        project = _pach_name(_optional_str(m, "project", where) or "default", "project", where)
        branch = _optional_str(m, "branch", where)
        if branch:
            _pach_name(branch, "branch", where)
        commit = _optional_str(m, "commit", where)
        mode = _optional_str(m, "mode", where) or "ro"
        if mode not in MODES:
            raise ApiError(400, f"{where}: mount mode can only be 'ro' or 'rw', got {mode!r}")
        if mode == "ro" and commit and not COMMIT_RE.match(commit):
            raise ApiError(400, f"{where}: invalid commit ID {commit!r}: expected 32 hexadecimal characters")
        if mode == "rw":
            commit = ""  # rw mounts follow a branch head (reference behaviour)
        paths = m.get("paths")
        if paths is None or paths == []:
            paths = ["/"]
        if not isinstance(paths, list):
            raise ApiError(400, f"{where}: 'paths' must be a list of strings")
        paths = [pfs_path(p, where) for p in paths]
        out.append(MountRequest(name=name, project=project, repo=repo, branch=branch or None,
                                commit=commit.lower() or None, paths=paths, mode=mode))
    return out


def unmount_names(req: Request) -> list[str]:
    """PUT /_unmount: {"mounts": [name, ...]}."""
    body = req.json_object()
    names = body.get("mounts")
    if not isinstance(names, list):
        raise ApiError(400, 'expected {"mounts": [NAME, ...]}: "mounts" must be a list of mount names')
    return [mount_name(n, f"mounts[{i}]") for i, n in enumerate(names)]


def single_mount(req: Request) -> str:
    """PUT /_commit and /pachtray/v1/_discard: {"mount": name}."""
    body = req.json_object()
    if "mount" not in body:
        raise ApiError(400, 'expected {"mount": NAME}: no mount specified')
    return mount_name(body.get("mount"), "mount")


def config_request(req: Request) -> tuple[str, str]:
    """PUT /config: (pachd_address, server_cas base64) -- the address is parsed by the caller."""
    body = req.json_object()
    address = _optional_str(body, "pachd_address", "config")
    server_cas = _optional_str(body, "server_cas", "config")
    return address, server_cas


def oidc_state(req: Request) -> str:
    """PUT /auth/_login_token: {"oidc": state}."""
    body = req.json_object()
    state = _optional_str(body, "oidc", "login")
    if not state:
        raise ApiError(400, 'expected {"oidc": STATE} from /auth/_login: no oidc state given')
    return state


def datum_spec(req: Request) -> dict:
    """PUT /datums/_mount: a pipeline spec (or its input part) with an `input` object."""
    body = req.json_object()
    if not isinstance(body.get("input"), dict):
        raise ApiError(400, 'error reading the pipeline spec: expected an object with an "input" object')
    return body
