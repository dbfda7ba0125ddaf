"""The parts a MountManager builds mounts from: the FUSE mount, the views and the chunk cache.

The real ones by default (FUSE is imported only when used); the fast tests pass fakes with the
same methods, so the manager's rules run without a server or FUSE.
"""

from __future__ import annotations

from pathlib import Path

from pachtray.mount.state import Mount


class FuseParts:
    def __init__(self, cache_dir: Path, cache_bytes: int):
        self.cache_dir, self.cache_bytes = cache_dir, cache_bytes
        self._cache = None

    def file_system(self, mount_dir: Path, allow_other: bool, reads):
        """A FuseMount (`start`, `stop`, `add_view`, `remove_view`, `busy_holders`)."""
        from pachtray.mount.cache import ChunkCache
        from pachtray.mount.fs import FuseMount

        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self._cache = ChunkCache(self.cache_dir, self.cache_bytes)
        return FuseMount(mount_dir, allow_other=allow_other, reads=reads)

    def ro_view(self, client_fn, m: Mount):
        from pachtray.mount.fs import CommitView

        return CommitView(client_fn, m.project, m.repo, m.commit, m.paths, self._cache)

    def rw_view(self, client_fn, staging_dir: Path, m: Mount):
        from pachtray.mount.fs import RwView

        return RwView(staging_dir, client_fn, m.project, m.repo, m.branch, m.commit or None, self._cache)

    def local_view(self, path: Path):
        from pachtray.mount.fs import LocalDirView

        return LocalDirView(path)
