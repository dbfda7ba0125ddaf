"""pachtray.malloc: freed big buffers leave the process (the daemon's RSS after a big read)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import PY
from pachtray import malloc

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


# Threads that each allocate while the others hold their memory: glibc gives each an arena of its own
# unless M_ARENA_MAX says otherwise. malloc_info's XML has one <heap> per arena.
ARENAS_SCRIPT = """
import ctypes, os, sys, tempfile, threading
from pachtray import malloc
if sys.argv[1] == "limited":
    assert malloc.limit_arenas()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
start, held, done = threading.Barrier(8), threading.Semaphore(0), threading.Event()
def work():
    start.wait()
    blocks = [libc.malloc(64 << 10) for _ in range(64)]
    held.release()
    done.wait()
    for b in blocks:
        libc.free(b)
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads:
    t.start()
for _ in threads:
    held.acquire()
with tempfile.TemporaryFile() as f:
    libc.fdopen.restype = ctypes.c_void_p
    stream = libc.fdopen(os.dup(f.fileno()), b"w")
    libc.malloc_info(0, ctypes.c_void_p(stream))
    libc.fclose(ctypes.c_void_p(stream))
    f.seek(0)
    print(f.read().decode().count("<heap nr="))
done.set()
for t in threads:
    t.join()
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_threads_share_at_most_two_arenas():
    heaps = {mode: int(subprocess.run([PY, "-c", ARENAS_SCRIPT, mode], capture_output=True, text=True,
                                      check=True, timeout=60).stdout)
             for mode in ("default", "limited")}
    assert heaps["default"] > 2  # what left the daemon at 99-146 MiB after a 1 GiB read
    assert heaps["limited"] <= malloc.ARENAS
