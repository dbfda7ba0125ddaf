"""How the long-running processes (daemon, local server) give memory back to the system.

glibc serves a big allocation from the heap once a freed block has raised its mmap threshold,
and freed heap memory between live objects stays with the process (in each thread's arena): a
1 GiB read through a mount left the daemon at ~210 MiB RSS. `trim()` after a burst of big buffers
hands the free pages back (~107 MiB after the same read). A fixed mmap threshold would too, but
each 1-4 MiB buffer then costs fresh page faults: it doubled the CPU per MiB read.
"""

from __future__ import annotations

import ctypes
import sys
import threading

_lock = threading.Lock()
_trim = None


def _libc_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return fn


def trim() -> bool:
    """Give the free pages of every malloc arena back to the system (glibc; elsewhere a no-op).
    Costs about a millisecond: call it after a burst of big buffers, not per buffer."""
    global _trim
    if _trim is None:
        with _lock:
            _trim = _libc_trim() or (lambda _pad: 0)
    return bool(_trim(0))
