"""The naming rules, once: pachd's for projects, repos and branches (ancestry.ValidateName) and
commit ids, and the mount-server's for mount names (one folder in the mount dir). Callers word
their own messages; the rule is here."""

from __future__ import annotations

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
    """One folder name in the mount dir: not empty, '.' or '..', no '/', '\\' or NUL, UTF-8 text (no
    lone surrogate, which no file name or JSON answer can carry), at most 255 bytes."""
    return (isinstance(value, str) and value not in ("", ".", "..") and not any(c in value for c in "/\\\0")
            and is_text(value) and len(value.encode("utf-8")) <= NAME_MAX)


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
