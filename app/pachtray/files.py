"""Writing a small file so that a crash (or a reader at the same moment) never sees half of it:
the one implementation (settings, pachctl config, workspace, mount records, lock files, the
JupyterLab record)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

TEMP_STEM = 64  # bytes of the target's name in its temp file's name


def write_atomic(path: str | os.PathLike, text: str, *, mode: int = 0o600, durable: bool = False) -> Path:
    """Write ``text`` to a temp file beside ``path`` (born with ``mode``: no window where others may
    read it), then rename it over ``path``. ``durable``: fsync first, so the new content survives a
    power loss too. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stem = path.name.encode()[:TEMP_STEM].decode(errors="ignore")  # a 255-byte name leaves no room for more
    fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | os.PathLike, value, *, mode: int = 0o600, durable: bool = False,
               indent: int | None = 2) -> Path:
    """``value`` as JSON (with a trailing newline when indented), written atomically."""
    text = json.dumps(value, indent=indent, ensure_ascii=False)
    return write_atomic(path, text + ("\n" if indent is not None else ""), mode=mode, durable=durable)
