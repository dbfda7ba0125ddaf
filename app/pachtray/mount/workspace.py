"""The workspace: the mounts active now, kept in data_dir/workspace.json so the next start (after
an exit or a crash) can mount them again, as Mountain Duck's workspace does."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

FIELDS = ("name", "project", "repo", "branch", "commit", "paths", "mode")


class Workspace:
    """Reads and atomically rewrites workspace.json; an unreadable file counts as empty."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def load(self) -> list[dict]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as e:
            log.warning("ignoring unreadable workspace %s: %s", self.path, e)
            return []
        mounts = data.get("mounts") if isinstance(data, dict) else None
        if not isinstance(mounts, list):
            log.warning("ignoring workspace %s: no \"mounts\" list", self.path)
            return []
        return [{k: m.get(k) for k in FIELDS} for m in mounts
                if isinstance(m, dict) and isinstance(m.get("name"), str) and isinstance(m.get("repo"), str)]

    def save(self, mounts: list[dict]) -> None:
        """Write-then-rename, so a crash mid-write leaves the previous workspace intact."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w") as f:
            json.dump({"mounts": [{k: m.get(k) for k in FIELDS} for m in mounts]}, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
