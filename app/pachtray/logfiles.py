"""Reading the logs of processes Pachtray starts, for the messages that say why they failed."""

from __future__ import annotations

import os


def tail(path: str | os.PathLike, lines: int = 15) -> str:
    """The last `lines` lines (of the last 8 KiB), or why the log cannot be read."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 8192))
            return "\n".join(f.read().decode(errors="replace").splitlines()[-lines:])
    except OSError as e:
        return f"(cannot read the log: {e})"
