"""How the long-running processes (daemon, local server) give memory back to the system.

glibc serves a big allocation from the heap once a freed block has raised its mmap threshold,
and freed heap memory between live objects stays with the process (in each thread's arena): a
1 GiB read through a mount left the daemon at ~210 MiB RSS. `trim()` after a burst of big buffers
hands the free pages back (~107 MiB after the same read). A fixed mmap threshold would too, but
each 1-4 MiB buffer then costs fresh page faults: it doubled the CPU per MiB read.

glibc also gives threads arenas of their own (up to 8 per core), and what each keeps between live
objects is not trimmed: after the same read the daemon sat anywhere from 99 to 146 MiB. With
`limit_arenas()` (two) it sat at 78-85 MiB, at the same speed (benchmark 1, session 9).
"""

from __future__ import annotations

import ctypes
import sys
import threading

_lock = threading.Lock()
_trim = None

M_ARENA_MAX = -8  # mallopt's parameter (malloc.h)
ARENAS = 2  # the threads that allocate big buffers are few: the gRPC poller and the FUSE workers


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.malloc_trim, libc.mallopt  # noqa: B018 (glibc has both; musl has neither)
    except (OSError, AttributeError):
        return None
    return libc


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Let at most `arenas` malloc arenas serve this process's threads (glibc; elsewhere a no-op).
    Call it first thing in a long-running process: arenas made before stay."""
    libc = _libc()
    if libc is None:
        return False
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    return libc.mallopt(M_ARENA_MAX, arenas) == 1


def _libc_trim():
    libc = _libc()
    if libc is None:
        return None
    fn = libc.malloc_trim
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
