"""The naming rules, once: pachd's for projects, repos and branches (ancestry.ValidateName) and
commit ids, and the mount-server's for mount names (one folder in the mount dir). Callers word
their own messages, except a mount name's problem (`mount_name_problem`: every refusal says it so)."""

from __future__ import annotations

import hashlib
import re

NAME_RE = re.compile(r"[a-zA-Z0-9_-]+")  # used with fullmatch: `$` would let a final newline through
COMMIT_ID_RE = re.compile(r"[0-9a-f]{32}")  # (fullmatch) pachd's ids: UUIDv4 without dashes, lower case
NAME_MAX = 255  # bytes of one file name (statfs f_namemax)


def is_name(value: object) -> bool:
    """A project, repo or branch name pachd accepts (letters, digits, '_', '-')."""
    return isinstance(value, str) and NAME_RE.fullmatch(value) is not None


def is_commit_id(value: object) -> bool:
    """A commit id as pachd writes it (32 lower-case hexadecimal characters)."""
    return isinstance(value, str) and COMMIT_ID_RE.fullmatch(value) is not None


def is_mount_name(value: object) -> bool:
    """One folder name in the mount dir (`mount_name_problem` says why not)."""
    return mount_name_problem(value) is None


def mount_name_problem(value: object) -> str | None:
    """Why ``value`` cannot be a mount name, None if it can: not empty, '.' or '..', no '/', '\\' or
    NUL, UTF-8 text (no lone surrogate, which no file name or JSON answer can carry), at most 255 bytes."""
    if not isinstance(value, str) or value == "":
        return "a mount name must not be empty"
    if value in (".", ".."):
        return "a mount name must not be '.' or '..'"
    for char, what in (("/", "'/'"), ("\\", "'\\'"), ("\0", "a NUL character")):
        if char in value:
            return f"a mount name must not contain {what}"
    if not is_text(value):
        return "a mount name must be UTF-8 text (it has a lone surrogate)"
    size = len(value.encode("utf-8"))
    if size > NAME_MAX:
        return f"a mount name must not be longer than {NAME_MAX} bytes (it has {size})"
    return None


def cut(value: str, limit: int = 120) -> str:
    """``value`` with its middle cut to ``limit`` characters, for a message (a link target, a path)."""
    return value if len(value) <= limit else value[:limit // 2 - 1] + "…" + value[-(limit // 2):]


def quoted(value: str, limit: int = 64) -> str:
    """``value`` quoted for a message, its middle cut beyond ``limit`` characters (names reach 255 bytes,
    and what is refused may be longer still)."""
    if len(value) <= limit:
        return repr(value)
    return repr(value[:limit // 2]) + "…" + repr(value[-(limit // 2):]) + f" ({len(value)} characters)"


def digest_fit(name: str) -> str:
    """``name`` if it fits NAME_MAX bytes, else cut and ended with a digest of the whole, so two long
    names stay distinct (default mount names join project, repo and branch: each may be 255 bytes)."""
    if len(name.encode("utf-8")) <= NAME_MAX:
        return name
    return fit_name(name, "_" + hashlib.sha256(name.encode("utf-8")).hexdigest()[:8])


def fit_name(base: str, suffix: str = "") -> str:
    """``base`` + ``suffix`` with ``base`` cut (on a character boundary) so the whole fits NAME_MAX bytes."""
    room = NAME_MAX - len(suffix.encode("utf-8"))
    return base.encode("utf-8")[:max(room, 0)].decode("utf-8", errors="ignore") + suffix


def is_text(value: str) -> bool:
    """Whether `value` can be written as UTF-8 (JSON's "\\ud800" decodes to a string that cannot)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# The SDK's messages for names (imported when used: the lock file's checks need no SDK).

def repo(project: str, name: str):
    from pachyderm_sdk.api import pfs

    return pfs.Repo(name=name, type="user", project=pfs.Project(name=project or "default"))


def branch(project: str, repo_name: str, name: str):
    from pachyderm_sdk.api import pfs

    return pfs.Branch(repo=repo(project, repo_name), name=name)


def commit(project: str, repo_name: str, commit_id: str):
    from pachyderm_sdk.api import pfs

    return pfs.Commit(repo=repo(project, repo_name), id=commit_id)
