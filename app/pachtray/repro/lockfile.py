"""The lock file: which commits (and which of their files) a notebook read, in a stable JSON form.

    {"version": 1,
     "cluster": {"id": CLUSTER_ID, "address": "grpc://host:port"},
     "created": "2026-01-02T03:04:05Z",
     "pachtray": "0.1.0",
     "mounts": [{"name": "images", "project": "default", "repo": "images", "branch": "master",
                 "commit": "<32 hex>", "paths": ["/"],
                 "files": [{"path": "/a.png", "size": 123, "hash": "<hex>"}]}]}

`hash` is Pachyderm's file hash (InspectFile/ListFile). A file of a read-write mount read with
local changes not yet committed has `"modified": true` and `"hash": null` (its bytes are in no
commit); a mount whose file list was cut short to bound the daemon's memory has
`"files_complete": false`. Only this module knows the layout; the daemon validates with it.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from pachtray.files import write_atomic
from pachtray.pfs import names
from pachtray.pfs.paths import mount_path

VERSION = 1
SUFFIX = ".pachyderm.lock"
DEFAULT_NAME = "pachyderm.lock"
HASH_RE = re.compile(r"^[0-9a-f]*$")


class LockFormatError(ValueError):
    """The text is not a lock this version of Pachtray understands; the message says where."""


def default_path(notebook: str | os.PathLike | None) -> Path:
    """NOTEBOOK.pachyderm.lock beside the notebook; pachyderm.lock in the current folder otherwise."""
    if notebook is None:
        return Path(DEFAULT_NAME)
    nb = Path(notebook)
    stem = nb.name[:-len(".ipynb")] if nb.name.endswith(".ipynb") else nb.name
    return nb.with_name(stem + SUFFIX)


def dumps(lock: dict) -> str:
    return json.dumps(lock, indent=2, ensure_ascii=False) + "\n"


def write(path: str | os.PathLike, lock: dict) -> Path:
    """Write atomically (a reader never sees half a lock); returns the absolute path."""
    return write_atomic(Path(path).absolute(), dumps(lock))


def read(path: str | os.PathLike) -> dict:
    """The lock in `path`, validated; OSError when it cannot be read, LockFormatError when it is not a lock."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except ValueError as e:
        raise LockFormatError(f"{path} is not JSON: {e}") from None
    return validate(data)


def _need(cond: bool, where: str, what: str) -> None:
    if not cond:
        raise LockFormatError(f"{where}: {what}")


def _str(obj: dict, key: str, where: str, *, empty: bool = False) -> str:
    value = obj.get(key)
    _need(isinstance(value, str) and (empty or bool(value)), where,
          f"'{key}' must be a{'' if empty else ' non-empty'} string")
    return value


def validate(data) -> dict:
    """The lock if it is well-formed (version 1); LockFormatError naming the first problem otherwise."""
    _need(isinstance(data, dict), "lock", "must be a JSON object")
    version = data.get("version")
    _need(type(version) is int and version == VERSION, "lock", f"unsupported version {version!r} (this Pachtray reads version {VERSION})")
    cluster = data.get("cluster")
    _need(isinstance(cluster, dict), "lock", "'cluster' must be an object with 'id' and 'address'")
    _str(cluster, "id", "lock cluster", empty=True)
    _str(cluster, "address", "lock cluster", empty=True)
    _str(data, "created", "lock", empty=True)
    mounts = data.get("mounts")
    _need(isinstance(mounts, list) and bool(mounts), "lock", "'mounts' must be a non-empty list")
    seen = set()
    for i, m in enumerate(mounts):
        where = f"lock mounts[{i}]"
        _need(isinstance(m, dict), where, "must be an object")
        name = _str(m, "name", where)
        where = f"lock mount {name!r}"
        _need(names.is_mount_name(name), where, names.mount_name_problem(name) or "")
        _need(name not in seen, where, "appears twice")
        seen.add(name)
        for key in ("project", "repo"):
            _need(names.is_name(_str(m, key, where)), where, f"invalid {key} name {m[key]!r}")
        branch = _str(m, "branch", where, empty=True)
        _need(not branch or names.is_name(branch), where, f"invalid branch name {branch!r}")
        _need(names.is_commit_id(_str(m, "commit", where)), where,
              "'commit' must be a commit id (32 hexadecimal characters)")
        paths = m.get("paths")
        _need(isinstance(paths, list) and bool(paths) and all(isinstance(p, str) and p.startswith("/") for p in paths),
              where, "'paths' must be a non-empty list of paths starting with '/'")
        normalized = []
        for p in paths:
            path, problem = mount_path(p)
            _need(problem is None, where, str(problem))
            normalized.append(path)
        m["paths"] = list(dict.fromkeys(normalized))
        files = m.get("files")
        _need(isinstance(files, list), where, "'files' must be a list")
        for j, f in enumerate(files):
            fw = f"{where} files[{j}]"
            _need(isinstance(f, dict), fw, "must be an object")
            _need(_str(f, "path", fw).startswith("/"), fw, "'path' must start with '/'")
            size = f.get("size")
            _need(isinstance(size, int) and not isinstance(size, bool) and size >= 0, fw,
                  "'size' must be a non-negative integer")
            modified = f.get("modified", False)
            _need(isinstance(modified, bool), fw, "'modified' must be true or false")
            h = f.get("hash")
            if modified:
                _need(h is None or isinstance(h, str), fw, "'hash' must be a string or null")
            else:
                _need(isinstance(h, str) and HASH_RE.match(h) is not None, fw, "'hash' must be a hexadecimal string")
        _need(isinstance(m.get("files_complete", True), bool), where, "'files_complete' must be true or false")
    return data
