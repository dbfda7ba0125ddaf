"""The embedded server's store leaves DISK_RESERVE of its disk free: content that would eat into it
(a 1 TiB sparse file committed from a rw mount streams as 1 TiB of zeros) is refused with ENOSPC
and a message that says why, and what was written of it is removed."""

from __future__ import annotations

import errno
import os

import pytest

from pachtray.local import store as store_mod
from pachtray.local.store import INLINE_MAX, Store

pytestmark = pytest.mark.fast


def free_bytes(path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def test_content_that_would_take_the_reserve_is_refused_and_removed(tmp_path, monkeypatch):
    store = Store(tmp_path / "data")
    try:
        ok = store.blob_writer()
        ok.write(b"x" * (INLINE_MAX + 1))  # spills to a file: the free space is looked at
        digest, size, inline = ok.finish()
        assert size == INLINE_MAX + 1 and inline is None and os.path.exists(store.blob_path(digest))

        monkeypatch.setattr(store_mod, "DISK_RESERVE", free_bytes(tmp_path) + (1 << 30))
        big = store.blob_writer()
        big.write(b"y" * 1000)  # in memory: no look at the disk yet
        with pytest.raises(OSError) as e:
            big.write(b"y" * INLINE_MAX)
        assert e.value.errno == errno.ENOSPC and "nearly full" in str(e.value) and "keeps" in str(e.value)
        big.abort()
        assert os.listdir(store.tmp_dir) == []  # nothing of it left behind
    finally:
        store.close()


def test_the_free_space_is_looked_at_once_per_check_interval(tmp_path, monkeypatch):
    store = Store(tmp_path / "data")
    looks = []
    real = os.statvfs
    monkeypatch.setattr(store_mod.os, "statvfs", lambda p: looks.append(p) or real(p))
    monkeypatch.setattr(store_mod, "SPACE_CHECK_EVERY", 1 << 20)
    try:
        w = store.blob_writer()
        for _ in range(40):
            w.write(b"z" * (256 << 10))  # 10 MiB in all
        w.finish()
        assert 9 <= len(looks) <= 11
    finally:
        store.close()
