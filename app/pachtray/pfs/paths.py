"""pachd's rule for the file paths it stores (its ValidateFilename), shared by the embedded server
(which refuses such writes as pachd does) and rw mounts (which refuse such names with EINVAL, so
a name that can never be committed is never created)."""

from __future__ import annotations

import re

from pachtray.pfs.glob import GLOB_CHARS

PRINTABLE_ASCII = re.compile(r"^[ -~]+$")


def path_problem(path: str) -> str | None:
    """Why pachd refuses to store a file at ``path`` (in pachd's words), or None if it accepts it."""
    reason = path_reason(path)
    return None if reason is None else f"path ({path}) invalid: {reason}"


def path_reason(path: str) -> str | None:
    """The reason of `path_problem`, without the path (for messages that quote it their own way)."""
    if not path or not PRINTABLE_ASCII.match(path):
        return "only printable ASCII characters allowed"
    if m := GLOB_CHARS.search(path):
        return f"globbing character ({m.group()}) not allowed in path"
    if any(part in (".", "..") for part in path.split("/")):
        return "relative file paths are not allowed"
    return None


def mount_path(value: object) -> tuple[str | None, str | None]:
    """A path a mount shows of its commit (`paths` of /_mount and of a lock): ("/a/b" normalized,
    None), or (None, why not)."""
    if not isinstance(value, str) or not value:
        return None, "paths must be non-empty strings"
    if "\0" in value:
        return None, f"path {value!r} contains a NUL byte"
    parts = [p for p in value.split("/") if p not in ("", ".")]
    if ".." in parts:
        return None, f"path {value!r} must not contain '..'"
    return "/" + "/".join(parts), None
