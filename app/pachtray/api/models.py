"""Request bodies -> typed values, or ApiError(400) saying exactly what is wrong.

Shapes and syntax are checked here; whether a repo, branch or commit exists is the manager's job.
Unknown fields are ignored (as the reference's JSON decoder does) and `null` means "not given".
"""

from __future__ import annotations

from typing import Any

from pachtray.api.routing import Request
from pachtray.errors import ApiError
from pachtray.mount.state import MODES
from pachtray.pfs import names
from pachtray.pfs.paths import mount_path


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
    if (problem := names.mount_name_problem(value)) is not None:
        raise ApiError(400, f"{where}: invalid name {names.quoted(value)}: {problem}")
    return value


def _pach_name(value: str, what: str, where: str) -> str:
    if not names.is_name(value):
        raise ApiError(400, f"{where}: invalid {what} name {value!r}: only letters, digits, '_' and '-' are allowed")
    return value


def pfs_path(value: Any, where: str) -> str:
    """A path inside a repo: absolute, normalized, no '..' (pfs.paths.mount_path)."""
    path, problem = mount_path(value)
    if problem:
        raise ApiError(400, f"{where}: {problem}")
    return path


def mount_requests(req: Request) -> list:
    """PUT /_mount: {"mounts": [{name, repo, project?, branch?, commit?, paths?, mode?}, ...]}."""
    from pachtray.mount.state import MountRequest

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
        if mode == "ro" and commit and not names.is_commit_id(commit.lower()):
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
    given = body.get("mounts")
    if not isinstance(given, list):
        raise ApiError(400, 'expected {"mounts": [NAME, ...]}: "mounts" must be a list of mount names')
    return [mount_name(n, f"mounts[{i}]") for i, n in enumerate(given)]


def single_mount(req: Request) -> str:
    """PUT /_commit and /pachtray/v1/_discard: {"mount": name}."""
    body = req.json_object()
    if "mount" not in body:
        raise ApiError(400, 'expected {"mount": NAME}: no mount specified')
    return mount_name(body.get("mount"), "mount")


def paths_field(data: dict, key: str) -> list[str]:
    """A non-empty list of absolute paths in a repo, normalized (PUT .../_discard {"paths"})."""
    value = data.get(key)
    if not isinstance(value, list) or not value:
        raise ApiError(400, f"{key} must be a non-empty list of paths")
    return [browse_path(p, f"each of {key}") for p in value]


def commit_description(req: Request) -> str:
    """PUT /_commit's optional `description` (the reference's body has only `mount`: absent = "")."""
    return text_field(req.json_object(), "description")


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


# ---- Pachtray's routes (/pachtray/v1): query parameters and small bodies

def param(query: dict, key: str, default: str | None = None) -> str:
    value = query.get(key, default)
    if value is None:
        raise ApiError(400, f"missing query parameter {key!r}")
    return value


def number_param(query: dict, key: str, default, low, high, kind=int):
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


def pach_name(value, what: str) -> str:
    """A project, repo or branch name (pfs.names' rule)."""
    if not isinstance(value, str) or not value:
        raise ApiError(400, f"missing {what} name")
    if not names.is_name(value):
        raise ApiError(400, f"invalid {what} name {value!r}: use letters, digits, '_' or '-'")
    return value


def commit_id(value, what: str = "commit id") -> str:
    if not names.is_commit_id(value):
        raise ApiError(400, f"invalid {what} {value!r}: expected 32 hexadecimal characters")
    return value


def browse_path(value, what: str = "path") -> str:
    """An absolute path in a repo, normalized; no '.' or '..' components."""
    if not isinstance(value, str) or not value.startswith("/"):
        raise ApiError(400, f"{what} must be an absolute path starting with '/', got {value!r}")
    if "\0" in value:
        raise ApiError(400, f"{what} {value!r} contains a NUL byte")
    parts = [p for p in value.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise ApiError(400, f"{what} must not contain '.' or '..' components: {value!r}")
    return "/" + "/".join(parts)


def repo_of(data: dict):
    """`project` (default "default") and `repo` of a query or body, as a pfs.Repo."""
    repo = pach_name(data.get("repo"), "repo")
    return names.repo(pach_name(data.get("project", "default") or "default", "project"), repo)


def text_field(data: dict, key: str) -> str:
    value = data.get(key, "")
    if not isinstance(value, str):
        raise ApiError(400, f"{key} must be a string")
    return value
