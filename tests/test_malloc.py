"""pachtray.malloc: freed big buffers leave the process (the daemon's RSS after a big read)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import PY

# Big buffers freed between small live objects, with glibc's mmap threshold raised as a freed big block
# raises it in a long-running process (set here, so the case does not depend on this machine's glibc).
SCRIPT = """
import ctypes, gc, sys
from pachtray.malloc import trim
libc = ctypes.CDLL(None)
libc.mallopt(-3, 64 << 20)  # M_MMAP_THRESHOLD: big buffers come from the heap
libc.mallopt(-1, 512 << 20)  # M_TRIM_THRESHOLD: no automatic trim at the top of the heap
def rss_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
base = rss_mib()
big, small = [], []
for _ in range(200):
    big.append(bytearray(1 << 20)); small.append(bytearray(100))
del big; gc.collect()
if sys.argv[1] == "trimmed":
    assert trim()
print(rss_mib() - base)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_freed_big_buffers_go_back_to_the_system():
    kept = {mode: int(subprocess.run([PY, "-c", SCRIPT, mode], capture_output=True, text=True, check=True).stdout)
            for mode in ("default", "trimmed")}
    assert kept["default"] > 100  # what the daemon suffered from: ~200 MiB still held
    assert kept["trimmed"] < 20
