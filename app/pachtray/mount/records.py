"""Staged rw changes on disk and what they belong to, so a restart after kill -9 knows where they go.

Layout under the data dir: `staging/<name>` (an RwView's journal and blobs), `mounts/<name>.json`
(its repo, branch and base), `orphaned-staging/` (staging dirs without a record: set aside, never
uploaded anywhere, never deleted).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from pathlib import Path

from pachtray.files import write_json
from pachtray.mount.state import Mount, MountState
from pachtray.pfs.names import NAME_MAX

log = logging.getLogger(__name__)


class StagingRecords:
    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir)
        self.staging_root = self.data_dir / "staging"
        self.meta_root = self.data_dir / "mounts"

    def prepare(self) -> None:
        for d in (self.staging_root, self.meta_root):
            d.mkdir(parents=True, exist_ok=True)

    def staging_dir(self, name: str) -> Path:
        return self.staging_root / name

    def _meta_path(self, name: str) -> Path:
        """`<name>.json`, or for a name too long for that (mount names may take all 255 bytes) a
        digest of it: the record holds the name, so nothing reads it from the file's."""
        if len(name.encode()) + len(".json") <= NAME_MAX:
            return self.meta_root / f"{name}.json"
        return self.meta_root / f"{hashlib.sha256(name.encode()).hexdigest()}.json"

    def write(self, m: Mount) -> None:
        """Record what the staging dir of ``m`` belongs to (before a change can be staged in it)."""
        write_json(self._meta_path(m.name), m.record(), indent=None)

    def drop(self, name: str) -> None:
        """Forget a staging dir whose changes are committed, discarded or moot."""
        shutil.rmtree(self.staging_dir(name), ignore_errors=True)
        self._meta_path(name).unlink(missing_ok=True)

    def recover(self) -> list[Mount]:
        """The staged changes an earlier run left, as RECOVERED mounts without a view (the caller
        opens each and drops the empty ones); staging dirs without a record are set aside."""
        records = []
        for meta_file in sorted(self.meta_root.glob("*.json")):
            try:
                meta = json.loads(meta_file.read_text())
                m = Mount(name=meta["name"], project=meta["project"], repo=meta["repo"], branch=meta["branch"],
                          commit=meta.get("base") or "", paths=meta.get("paths") or ["/"], mode="rw", view=None,
                          state=MountState.RECOVERED,
                          cluster=meta["cluster"] if isinstance(meta.get("cluster"), dict) else None)
            except (OSError, ValueError, KeyError, TypeError) as e:
                log.warning("ignoring unreadable mount record %s: %s", meta_file, e)
                continue
            records.append((meta_file, m))
        known = {m.name for _, m in records}
        for orphan in sorted(self.staging_root.iterdir()):
            if orphan.name not in known:
                stem = orphan.name.encode()[:NAME_MAX - 16].decode(errors="ignore")
                aside = self.data_dir / "orphaned-staging" / f"{stem}-{int(time.time())}"
                aside.parent.mkdir(parents=True, exist_ok=True)
                orphan.rename(aside)
                log.warning("staging dir %s has no mount record; moved it to %s", orphan, aside)
        found = []
        for meta_file, m in records:
            if not self.staging_dir(m.name).is_dir():
                meta_file.unlink(missing_ok=True)
                continue
            found.append(m)
        return found
