"""pachtray.malloc: freed big buffers leave the process (the daemon's RSS after a big read)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import PY

# Big buffers freed between small live objects, after one freed big block raised glibc's threshold.
SCRIPT = """
import gc, sys
from pachtray.malloc import trim
def rss_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
first = bytearray(1 << 20); del first
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
